package kernel

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Closest returns up to n of candidates nearest to name by edit distance
// (case-insensitive Levenshtein), nearest first and then by name: the
// "did you mean" of an unknown tool or variable. A candidate qualifies
// within a third of name's length (at least 2 edits), or when one name
// starts with the other (4 characters at least); an exact match is not
// a suggestion.
//
// With more than MaxClosestCandidates candidates it suggests nothing, so
// the work stays bounded (at most that many 64×64 comparisons) however
// many names a client supplied.
func Closest(name string, candidates []string, n int) []string {
	if len(candidates) > MaxClosestCandidates {
		return nil
	}
	type scored struct {
		name string
		d    int
	}
	lname := strings.ToLower(name)
	nr := utf8.RuneCountInString(name)
	limit := max(2, nr/3)
	var out []scored
	seen := make(map[string]bool, len(candidates))
	for _, c := range candidates {
		if c == name || seen[c] {
			continue
		}
		seen[c] = true
		lc := strings.ToLower(c)
		prefix := len(lname) >= 4 && len(lc) >= 4 && (strings.HasPrefix(lc, lname) || strings.HasPrefix(lname, lc))
		if diff := utf8.RuneCountInString(c) - nr; !prefix && (diff > limit || -diff > limit) {
			continue // too far apart in length to be within limit
		}
		if d := editDistance(lname, lc); d <= limit || prefix {
			out = append(out, scored{c, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d < out[j].d
		}
		return out[i].name < out[j].name
	})
	names := make([]string, 0, min(n, len(out)))
	for _, s := range out[:min(n, len(out))] {
		names = append(names, s.name)
	}
	return names
}

// MaxClosestCandidates is the most candidates Closest compares.
const MaxClosestCandidates = 1000

// editDistance is the Levenshtein distance between a and b, in runes.
// Names are short (tool names, variables); inputs longer than 64 runes
// are compared by their first 64, so a call costs at most 64×64 steps
// whatever a client wrote.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	ra, rb = ra[:min(len(ra), 64)], rb[:min(len(rb), 64)]
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
