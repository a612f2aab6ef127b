package tools

import (
	"fmt"
	"strconv"
	"strings"
)

// refPrefix starts every vault reference (store.RefPrefix).
const refPrefix = "vault://secret/"

// maxAttempts bounds the refused secret_get calls a call's log lists one by
// one; the rest are counted.
const maxAttempts = 16

// argRefs returns every vault reference that appears in the call's
// arguments: string values that are, or contain, "vault://secret/<id>"
// (id of [A-Za-z0-9._-], as kernel/projection reads them). Keys are not
// searched. A call may resolve these and no others: a guest that names an
// id it was not given is guessing.
func argRefs(args map[string]any) map[string]bool {
	refs := map[string]bool{}
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 256 {
			return
		}
		switch x := v.(type) {
		case string:
			for s := x; ; {
				i := strings.Index(s, refPrefix)
				if i < 0 {
					break
				}
				s = s[i+len(refPrefix):]
				n := 0
				for n < len(s) && isRefIDByte(s[n]) {
					n++
				}
				if n > 0 {
					refs[refPrefix+s[:n]] = true
				}
				s = s[n:]
			}
		case map[string]any:
			for _, e := range x {
				walk(e, depth+1)
			}
		case []any:
			for _, e := range x {
				walk(e, depth+1)
			}
		}
	}
	walk(args, 0)
	return refs
}

func isRefIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// secretAccess returns "" when this call may resolve ref, else why not:
// the ref must appear in the call's arguments and the policy must grant
// the tool that secret.
func (s *callState) secretAccess(ref string) string {
	if !s.argRefs[ref] {
		return "not in this call's arguments (a tool resolves only the refs its call is given)"
	}
	t := s.tool
	if !secretAllowed(t.secretGrant, strings.TrimPrefix(ref, refPrefix)) {
		where := "tool_secrets." + t.Manifest.Name
		if !t.Source.Trusted() {
			where = "uploads.tools." + t.Manifest.Name + ".secrets"
		}
		return fmt.Sprintf("the policy does not grant tool %q this secret (%s)", t.Manifest.Name, where)
	}
	return ""
}

// maxAttemptRef is the longest ref an attempt line quotes; a longer one is
// named by its length. Cutting it instead could leave part of a secret
// value the scrubber would no longer recognise.
const maxAttemptRef = 160

// attempt records a refused secret_get for the call's log.
func (s *callState) attempt(ref, why string) {
	if len(ref) > maxAttemptRef {
		ref = fmt.Sprintf("<a ref of %d bytes>", len(ref))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.attempts) >= maxAttempts {
		s.dropped++
		return
	}
	s.attempts = append(s.attempts, "nanovm: secret_get "+strconv.Quote(ref)+" denied: "+why)
}

// withAttempts appends the refused secret_get calls to log (already
// scrubbed). They are added after the guest's own capped output, so a guest
// that fills its log cannot hide them, and scrubbed like it: a guest could
// put a secret it resolved into the ref it asks for next.
func (s *callState) withAttempts(log string) string {
	s.mu.Lock()
	if len(s.attempts) == 0 {
		s.mu.Unlock()
		return log
	}
	var b strings.Builder
	for _, a := range s.attempts {
		b.WriteString(a)
		b.WriteByte('\n')
	}
	if s.dropped > 0 {
		fmt.Fprintf(&b, "nanovm: %d more secret_get attempts denied\n", s.dropped)
	}
	s.mu.Unlock()
	lines := string(s.scrub([]byte(b.String())))
	if log != "" && !strings.HasSuffix(log, "\n") {
		log += "\n"
	}
	return log + lines
}

// heldSecret reports whether the guest resolved any secret in this call.
func (s *callState) heldSecret() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolved
}
