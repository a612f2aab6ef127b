package mcpserver

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// clipped stands in for a value too large to return: its size and the
// start of its JSON, so a model sees what it is without flooding its
// context.
type clipped struct {
	Truncated bool   `json:"truncated"`
	Bytes     int    `json:"bytes"`
	Preview   string `json:"preview"`
}

// clip returns v unchanged when its JSON fits in max bytes, else a clipped
// with a preview of about max/2 bytes, and whether it clipped.
func clip(v any, max int) (any, bool) {
	b, err := json.Marshal(v)
	if err != nil || len(b) <= max {
		return v, false
	}
	return clipped{Truncated: true, Bytes: len(b), Preview: cutUTF8(string(b), max/2)}, true
}

// clipText shortens a string to its first max bytes on a rune boundary
// followed by "…(412,345 bytes in all)" (jsonlimit.Excerpt).
func clipText(s string, max int) string {
	return jsonlimit.Excerpt(s, max)
}

func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.ToValidUTF8(s[:n], "")
}
