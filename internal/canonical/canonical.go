package canonical

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/nanovm/nano-vm-mcp/internal/jsonlimit"
)

// MaxDepth is how deeply arrays and objects may nest. It matches the limit of
// encoding/json's decoder, so anything that decoder accepted can be encoded;
// it is far above jsonlimit.MaxRecordDepth, the depth every stored record
// stays within.
const MaxDepth = 10000

// Append appends the canonical JSON encoding of v to dst and returns the
// extended buffer; on error the returned buffer holds a partial encoding.
//
// v is JSON data: nil, bool, string, float64, float32, every int and uint kind,
// json.Number, []any, map[string]any, []string, map[string]string and
// json.RawMessage (parsed and re-canonicalized, so duplicate names and
// malformed JSON are errors). A Go integer beyond ±2^53 is accepted only when a
// float64 holds it exactly, and is then printed as that float64; a float32 is
// taken at its shortest float32 decimal, as encoding/json writes it. Any other
// type is first marshalled with encoding/json and the result canonicalized, so
// structs with json tags and json.Marshaler implementations work.
func Append(dst []byte, v any) ([]byte, error) {
	dst, err := appendValue(dst, v, 0)
	if err != nil {
		return dst, fmt.Errorf("canonicalize: %w", err)
	}
	return dst, nil
}

// Marshal returns the canonical JSON encoding of v; see Append for the types
// it accepts.
func Marshal(v any) ([]byte, error) {
	return Append(nil, v)
}

// Hash returns the lowercase hexadecimal SHA-256 of Marshal(v).
func Hash(v any) (string, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := Append((*bp)[:0], v)
	if cap(b) <= maxPooledBuf {
		*bp = b
	}
	if err != nil {
		return "", err
	}
	return hexSum(sha256.Sum256(b)), nil
}

// hexSum is hex.EncodeToString without its intermediate byte slice.
func hexSum(sum [sha256.Size]byte) string {
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// maxPooledBuf keeps one huge value from pinning a huge buffer in the pool.
const maxPooledBuf = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

var keysPool = sync.Pool{New: func() any { k := make([]string, 0, 16); return &k }}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case string:
		return appendString(dst, v, false)
	case float64:
		return appendFloat(dst, v)
	case float32:
		return appendFloat32(dst, v)
	case int:
		return appendInt(dst, int64(v))
	case int64:
		return appendInt(dst, v)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case uint:
		return appendUint(dst, uint64(v))
	case uint64:
		return appendUint(dst, v)
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case json.Number:
		return appendNumberText(dst, v)
	case map[string]any:
		return appendMap(dst, v, depth)
	case []any:
		if depth >= MaxDepth {
			return dst, fmt.Errorf("encode array: %w", ErrDepth)
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, atIndex(err, i)
			}
		}
		return append(dst, ']'), nil
	case map[string]string:
		return appendStringMap(dst, v)
	case []string:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendString(dst, e, false); err != nil {
				return dst, atIndex(err, i)
			}
		}
		return append(dst, ']'), nil
	case json.RawMessage:
		return appendRaw(dst, v, depth)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return dst, fmt.Errorf("encode %T: %w", v, err)
		}
		return appendRaw(dst, raw, depth)
	}
}

// appendNumberText canonicalizes a number given as JSON text.
func appendNumberText[T ~string | ~[]byte](dst []byte, s T) ([]byte, error) {
	if !validNumber(s) {
		return dst, fmt.Errorf("encode number %q: %w", jsonlimit.Excerpt(string(s), 40), ErrSyntax)
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		return dst, fmt.Errorf("encode number %q: %w", jsonlimit.Excerpt(string(s), 40), ErrNumber)
	}
	return appendFloat(dst, f)
}

// sortedKeys returns m's keys in JCS order in a pooled slice; hand the
// pointer back with releaseKeys.
func sortedKeys[V any](m map[string]V) *[]string {
	kp := keysPool.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, CompareKeys[string])
	*kp = keys
	return kp
}

func releaseKeys(kp *[]string) {
	clear(*kp) // drop references to the keys so the pool does not pin them
	if cap(*kp) <= 1<<16 {
		*kp = (*kp)[:0]
		keysPool.Put(kp)
	}
}

func appendMap(dst []byte, m map[string]any, depth int) ([]byte, error) {
	if depth >= MaxDepth {
		return dst, fmt.Errorf("encode object: %w", ErrDepth)
	}
	// Collect members with their values so the sorted walk needs no lookups.
	ep := entriesPool.Get().(*[]entry)
	es := (*ep)[:0]
	for k, v := range m {
		es = append(es, entry{k, v})
	}
	slices.SortFunc(es, func(a, b entry) int { return CompareKeys(a.k, b.k) })
	defer func() {
		clear(es) // drop references so the pool does not pin them
		if cap(es) <= 1<<16 {
			*ep = es[:0]
			entriesPool.Put(ep)
		}
	}()
	dst = append(dst, '{')
	for i, e := range es {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendString(dst, e.k, false); err != nil {
			return dst, atKey(err, e.k)
		}
		dst = append(dst, ':')
		if dst, err = appendValue(dst, e.v, depth+1); err != nil {
			return dst, atKey(err, e.k)
		}
	}
	return append(dst, '}'), nil
}

// entry is one member of a map[string]any being encoded.
type entry struct {
	k string
	v any
}

var entriesPool = sync.Pool{New: func() any { e := make([]entry, 0, 16); return &e }}

func appendStringMap(dst []byte, m map[string]string) ([]byte, error) {
	kp := sortedKeys(m)
	defer releaseKeys(kp)
	dst = append(dst, '{')
	for i, k := range *kp {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendString(dst, k, false); err != nil {
			return dst, atKey(err, k)
		}
		dst = append(dst, ':')
		if dst, err = appendString(dst, m[k], false); err != nil {
			return dst, atKey(err, k)
		}
	}
	return append(dst, '}'), nil
}
