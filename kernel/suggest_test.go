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
