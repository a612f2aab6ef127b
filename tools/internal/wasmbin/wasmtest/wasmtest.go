// Package wasmtest is a tiny WebAssembly binary encoder for tests: enough
// to write small hostile modules (huge declared sizes, deep nesting, big
// branch tables, wrong import signatures) byte by byte, without a
// toolchain. It checks nothing: it writes what it is told.
package wasmtest

// Section ids.
const (
	SecCustom    = 0
	SecType      = 1
	SecImport    = 2
	SecFunction  = 3
	SecTable     = 4
	SecMemory    = 5
	SecGlobal    = 6
	SecExport    = 7
	SecStart     = 8
	SecElement   = 9
	SecCode      = 10
	SecData      = 11
	SecDataCount = 12
)

// Value types.
const (
	I32     = 0x7f
	I64     = 0x7e
	F32     = 0x7d
	F64     = 0x7c
	FuncRef = 0x70
)

// Module is the header followed by the sections.
func Module(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

// Section is id, the size of content, then content.
func Section(id byte, content ...[]byte) []byte {
	c := Cat(content...)
	return Cat([]byte{id}, U32(uint32(len(c))), c)
}

// Vec is a count then the items.
func Vec(items ...[]byte) []byte { return Cat(U32(uint32(len(items))), Cat(items...)) }

// Cat concatenates.
func Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// U32 is an unsigned LEB128.
func U32(v uint32) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, c|0x80)
			continue
		}
		return append(out, c)
	}
}

// S32 is a signed LEB128.
func S32(v int32) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

// Name is a length-prefixed string.
func Name(s string) []byte { return Cat(U32(uint32(len(s))), []byte(s)) }

// FuncType is 0x60 params results.
func FuncType(params, results []byte) []byte {
	return Cat([]byte{0x60}, U32(uint32(len(params))), params, U32(uint32(len(results))), results)
}

// ImportFunc imports module.name with type index typ.
func ImportFunc(module, name string, typ uint32) []byte {
	return Cat(Name(module), Name(name), []byte{0x00}, U32(typ))
}

// Limits is flag, min[, max]; max < 0 means none.
func Limits(min uint32, max int64) []byte {
	if max < 0 {
		return Cat([]byte{0x00}, U32(min))
	}
	return Cat([]byte{0x01}, U32(min), U32(uint32(max)))
}

// Table is a funcref table type.
func Table(min uint32, max int64) []byte { return Cat([]byte{FuncRef}, Limits(min, max)) }

// Export exports index idx of kind (0 func, 1 table, 2 memory, 3 global).
func Export(name string, kind byte, idx uint32) []byte {
	return Cat(Name(name), []byte{kind}, U32(idx))
}

// Local is one local declaration: n locals of type t.
func Local(n uint32, t byte) []byte { return Cat(U32(n), []byte{t}) }

// Body is one code section entry: its size, the local declarations, then
// code (which must end with 0x0b).
func Body(locals [][]byte, code []byte) []byte {
	b := Cat(Vec(locals...), code)
	return Cat(U32(uint32(len(b))), b)
}

// Command is a minimal WASI-command-shaped module: one memory of memPages,
// one () -> () function exported as _start with the given locals and code,
// the memory exported as "memory", and extra sections placed by id order
// (extra holds complete sections for ids other than type, import,
// function, memory, export and code).
func Command(memPages uint32, locals [][]byte, code []byte, extra ...[]byte) []byte {
	byID := map[byte][]byte{}
	for _, s := range extra {
		byID[s[0]] = append(byID[s[0]], s...)
	}
	secs := [][]byte{Section(SecType, Vec(FuncType(nil, nil)))}
	secs = append(secs, Section(SecFunction, Vec(U32(0))))
	secs = append(secs, byID[SecTable])
	secs = append(secs, Section(SecMemory, Vec(Limits(memPages, -1))))
	secs = append(secs, byID[SecGlobal])
	secs = append(secs, Section(SecExport, Vec(Export("_start", 0, 0), Export("memory", 2, 0))))
	secs = append(secs, byID[SecElement], byID[SecDataCount])
	secs = append(secs, Section(SecCode, Vec(Body(locals, code))))
	secs = append(secs, byID[SecData], byID[SecCustom])
	return Module(secs...)
}
