package projection

import (
	"regexp"
	"strings"
)

// Replacement texts. None contains '@', a digit or "vault://", so redacting
// redacted text changes nothing.
const (
	// Redacted replaces the value of a secret-looking field and of
	// "__webhook__" in the LLM projection.
	Redacted = "[REDACTED]"
	// Tombstone replaces a reference whose secret has been erased, in every
	// projection.
	Tombstone = "[REDACTED_TOMBSTONE]"
	// RedactedEmail replaces an e-mail address in the LLM projection.
	RedactedEmail = "[REDACTED_EMAIL]"
	// RedactedPhone replaces a phone number in the LLM projection.
	RedactedPhone = "[REDACTED_PHONE]"
	// RedactedCard replaces a payment card number in the LLM projection.
	RedactedCard = "[REDACTED_CARD]"
)

// emailRE matches the common shape of an address; it runs only on strings
// that contain '@'.
var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)

// redactPII replaces e-mail addresses, phone numbers and card numbers in s.
// It returns s itself, without allocating, when there is nothing to replace.
func redactPII(s string) string {
	if mayHaveEmail(s) {
		s = emailRE.ReplaceAllLiteralString(s, RedactedEmail)
	}
	return redactNumbers(s)
}

// mayHaveEmail is a cheap filter that spares most strings the regular
// expression (which allocates even when it finds nothing): some '@' must
// follow a local-part character and precede a '.'.
func mayHaveEmail(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == '@' && isLocal(s[i-1]) && strings.IndexByte(s[i:], '.') > 0 {
			return true
		}
	}
	return false
}

func isLocal(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || strings.IndexByte("._%+-", c) >= 0
}

// redactNumbers replaces phone and card numbers. A regular expression cannot
// count digits across separators or run the Luhn check, so this is a
// hand-written scanner over runs of digits joined by single separators.
func redactNumbers(s string) string {
	var b []byte // allocated at the first replacement
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		startsRun := isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1])
		if !startsRun || !boundary(s, i-1) {
			i++
			continue
		}
		r := scanRun(s, i)
		if repl := r.classify(); repl != "" && boundary(s, r.end) {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(b, s[last:i]...)
			b = append(b, repl...)
			last = r.end
		}
		i = r.end
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

// boundary reports whether s[i] (i may be -1 or len(s)) does not continue a
// word, so a number is not cut out of an identifier like "A1234567890".
func boundary(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return true
	}
	c := s[i]
	return !(isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_')
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// run describes a candidate number: digits joined by single separators.
type run struct {
	end     int      // just past the last digit
	digits  [19]byte // the first 19 digits, for the Luhn check
	n       int      // digit count (may exceed 19)
	plus    bool     // starts with '+'
	paren   bool     // has '(' or ')'
	dots    int      // '.' separators
	others  int      // ' ' and '-' separators
	groups  int      // maximal digit groups
	longest int      // longest group
}

// scanRun reads the run starting at s[i] (a digit, or '+' or '(' before one).
// Separators are one of ' ', '-', '.', "(", ")" or ") " between digits; a
// separator not followed by a digit ends the run before it.
func scanRun(s string, i int) run {
	var r run
	if s[i] == '+' {
		r.plus = true
		i++
	}
	if s[i] == '(' {
		r.paren = true
		i++
	}
	for i < len(s) {
		g := 0
		for i < len(s) && isDigit(s[i]) {
			if r.n < len(r.digits) {
				r.digits[r.n] = s[i]
			}
			r.n++
			g++
			i++
		}
		if g == 0 {
			break // '(' not followed by a digit; end stays at the last digit
		}
		r.groups++
		r.longest = max(r.longest, g)
		r.end = i
		// Try to cross one separator to the next group.
		j := i
		var sep byte
		paren := false
		if j < len(s) && s[j] == ')' {
			paren = true
			j++
		}
		if j < len(s) && (s[j] == ' ' || s[j] == '-' || s[j] == '.') {
			sep = s[j]
			j++
		}
		if j < len(s) && s[j] == '(' {
			paren = true
			j++
		}
		if j == i || j >= len(s) || !isDigit(s[j]) {
			break
		}
		r.paren = r.paren || paren
		switch sep {
		case '.':
			r.dots++
		case ' ', '-':
			r.others++
		}
		i = j
	}
	return r
}

// classify returns the replacement for the run, or "" to leave it alone.
func (r *run) classify() string {
	if !r.plus && !r.paren && r.dots == 0 && 13 <= r.n && r.n <= 19 && luhn(r.digits[:r.n]) {
		return RedactedCard
	}
	if r.plus && 8 <= r.n && r.n <= 15 {
		return RedactedPhone
	}
	if r.plus || r.n < 10 || r.n > 15 {
		return ""
	}
	// A dotted quad of short groups is an IPv4 address, and a dotted run of
	// groups is more often a version or a decimal than a phone number, unless
	// it is grouped like one (three or more groups of 2–4 digits).
	if r.dots > 0 && (r.longest > 4 || r.groups < 3 || r.groups == 4 && r.longest <= 3 && r.others == 0 && !r.paren) {
		return ""
	}
	return RedactedPhone
}

// luhn reports whether digits pass the Luhn (mod 10) check of ISO/IEC 7812.
func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
