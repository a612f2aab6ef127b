package canonical

import (
	"fmt"

	"github.com/nanovm/nano-vm-mcp/internal/jsonwrite"
)

// AppendString appends s to dst as a JCS JSON string: only '"', '\\' and the
// control characters below U+0020 are escaped (\b \f \n \r \t in their short
// forms, the rest as \u00xx in lowercase hex); '<', '>', '&', U+2028 and
// U+2029 are written as themselves, unlike encoding/json. AppendString cannot
// fail, so each byte of an invalid UTF-8 sequence is written as U+FFFD; use
// Append to have invalid UTF-8 rejected instead.
func AppendString(dst []byte, s string) []byte {
	dst, _ = appendString(dst, s, true)
	return dst
}

// appendString writes s as a JCS string. With replace it substitutes U+FFFD
// for invalid UTF-8; without, it reports ErrUTF8.
func appendString[T ~string | ~[]byte](dst []byte, s T, replace bool) ([]byte, error) {
	style := jsonwrite.JCS
	if replace {
		style = jsonwrite.JCSReplace
	}
	dst, bad := jsonwrite.AppendQuoted(dst, s, style)
	if bad >= 0 {
		return dst, fmt.Errorf("encode string at byte %d: %w", bad, ErrUTF8)
	}
	return dst, nil
}
