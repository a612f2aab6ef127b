package primary

import (
	"encoding/json"
	"io"
	"sync/atomic"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlines"
)

// MaxMessageBytes bounds one JSON-RPC message (one line, without its
// newline) on stdin and on the primary's socket: room for register_tool
// with a 20 MiB module, which base64 makes about 27 MiB of JSON. A longer
// line is not read into memory: it is skipped up to its newline and
// answered with a JSON-RPC error (-32600, under the message's id when the
// id can be read from it), and the stream goes on. The reader is
// internal/jsonlines, which mcpserver.ServeStdio shares.
const MaxMessageBytes = jsonlines.MaxMessageBytes

// lineLimit is the limit readLines applies: MaxMessageBytes, lowered by
// tests (atomic, since readers of earlier tests may still be running).
var lineLimit atomic.Int64

func init() { lineLimit.Store(MaxMessageBytes) }

func maxLine() int { return int(lineLimit.Load()) }

// oversized is a line over maxLine that was skipped.
type oversized = jsonlines.Oversized

// readLines reads r's lines with the bounded reader (see jsonlines.Read)
// at maxLine.
func readLines(r io.Reader, dropTorn bool, fn func([]byte), tooLong func(oversized)) error {
	return jsonlines.Read(r, maxLine(), dropTorn, fn, tooLong)
}

// recoverID returns the id of a message that did not parse, when one can
// be read from it.
func recoverID(line []byte) json.RawMessage { return jsonlines.RecoverID(line) }
