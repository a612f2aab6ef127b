package kernel

import (
	"fmt"
	"testing"
)

// Ensure Closest suggests near names, nearest first, and nothing for a
// name unlike any candidate.
func TestClosest(t *testing.T) {
	names := []string{"validate_amount", "reserve_funds", "capture_payment", "send_receipt", "poll", "Amount"}
	tests := []struct {
		name string
		want string
	}{
		{"valdate_amount", "[validate_amount]"},
		{"validate_amout", "[validate_amount]"},
		{"reserve_fund", "[reserve_funds]"},
		{"capture", "[capture_payment]"},
		{"pol", "[poll]"},
		{"amount", "[Amount]"},
		{"zzzzzz", "[]"},
		{"validate_amount", "[]"},
		{"", "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(Closest(tt.name, names, 3)); got != tt.want {
			t.Errorf("Closest(%q) = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"héllo", "hello", 1}}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// Ensure Closest suggests nothing past MaxClosestCandidates candidates,
// and that RefWarnings on an input of many keys and a program of many
// unmatched references stays bounded: MaxRefWarnings warnings and one
// that counts the rest.
func TestSuggestionsBounded(t *testing.T) {
	many := make([]string, MaxClosestCandidates+1)
	for i := range many {
		many[i] = fmt.Sprintf("name_%06d", i)
	}
	if got := Closest("name_00000", many, 3); got != nil {
		t.Fatalf("Closest over %d candidates = %v", len(many), got)
	}
	if got := Closest("name_00000", many[:MaxClosestCandidates], 1); len(got) != 1 {
		t.Fatalf("Closest over %d candidates = %v", MaxClosestCandidates, got)
	}
	input := map[string]any{}
	for _, k := range many {
		input[k] = 1
	}
	args := map[string]any{}
	for i := range 100 {
		args[fmt.Sprintf("a%03d", i)] = fmt.Sprintf("$missing_%d", i)
	}
	p := &Program{Steps: []Step{{ID: "s", Type: StepTool, Tool: "t", Args: args}}}
	w := p.RefWarnings(input)
	if len(w) != MaxRefWarnings+1 || w[MaxRefWarnings].Msg != "…and 80 more $references that match no input key, step id or output_key" {
		t.Fatalf("%d warnings, last %v", len(w), w[len(w)-1])
	}
}
