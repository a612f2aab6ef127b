// Package wasmbin reads the structure of a WebAssembly binary module before
// anything expensive is done with it: its sections, the signatures of its
// imports, its exports, the sizes it declares, and, for every function body,
// the number of locals, the body size, the block nesting depth and the size
// of each br_table, found by walking the instructions with the exact
// immediates of every opcode wazero v1.12 accepts by default (WebAssembly
// 2.0: MVP, sign extension, non-trapping float-to-int, bulk memory,
// reference types, multi-value and fixed-width SIMD). An instruction from
// any other proposal (threads, tail calls, exceptions, GC, ...) is refused,
// naming the opcode and its offset.
//
// Parse is not a validator: it checks structure, not types, and leaves the
// rest to wazero, which compiles only what Parse accepted. It does check
// that every function, table and global index the module's code, exports,
// segments, start section and constant expressions name is below the
// module's own count: wazero validates the instrumented copy (Instrument),
// in which such an index would name what the host appended. It is written to
// be run on hostile input: every length and count is read as a bounded
// LEB128, checked against the bytes that remain before anything is
// allocated for it, and checked against the caller's Limits; nothing is
// allocated in proportion to a count the bytes have not backed. An error
// names the section and the byte offset in the module where reading
// stopped, and wraps ErrMalformed, ErrUnsupported or ErrCeiling.
//
// The instruction walk reads the SIMD sub-opcode as one byte, as wazero
// v1.12 does (the spec says u32 LEB128; for every sub-opcode below 0x80 the
// two agree, and a canonical encoding of a larger one leaves a 0x01 byte
// that both then read as nop). Reading exactly what wazero reads keeps the
// two in step, so nothing can be hidden from the walk inside what it took
// for an immediate.
package wasmbin

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors that Parse wraps; test with errors.Is.
var (
	// ErrMalformed is returned for bytes that are not a well-formed module:
	// a bad magic number, a truncated LEB128, a count larger than the bytes
	// that remain, a section out of order.
	ErrMalformed = errors.New("malformed module")
	// ErrUnsupported is returned for a well-formed construct the host's
	// runtime does not accept by default: an opcode of a proposal outside
	// WebAssembly 2.0, a shared or 64-bit memory, a tag section.
	ErrUnsupported = errors.New("unsupported feature")
	// ErrCeiling is returned when a module declares more of something than
	// the caller's Limits allow.
	ErrCeiling = errors.New("ceiling exceeded")
)

// Error is the error Parse returns: where reading stopped, and why.
type Error struct {
	// Section is the section being read ("type", "code", "custom:name",
	// ...), or "header" before the first section.
	Section string
	// Offset is the byte offset in the module where the problem is.
	Offset int
	// Msg says what is wrong.
	Msg string
	// Kind is ErrMalformed, ErrUnsupported or ErrCeiling.
	Kind error
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s section at offset %#x: %s", e.Section, e.Offset, e.Msg)
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// Limits are the ceilings Parse enforces. A zero field means no ceiling
// beyond what the binary format itself allows.
type Limits struct {
	Types          uint32 // entries in the type section
	Params         uint32 // parameters of one function type
	Results        uint32 // results of one function type
	Imports        uint32 // entries in the import section
	Functions      uint32 // functions defined (function section)
	Tables         uint32 // tables defined or imported
	TableElements  uint32 // declared minimum of one table
	Globals        uint32 // globals defined or imported
	Exports        uint32 // entries in the export section
	ElemSegments   uint32 // element segments
	ElemEntries    uint32 // entries over all element segments
	DataSegments   uint32 // data segments
	FunctionLocals uint32 // locals of one function (not counting params)
	TotalLocals    uint64 // locals over all functions
	BodyBytes      uint32 // bytes of one function body
	Nesting        uint32 // block/loop/if nesting depth in one function
	BrTableTargets uint32 // targets of all br_tables in one function, defaults included
	Customs        uint32 // custom sections
}

// Value types.
const (
	I32       ValType = 0x7f
	I64       ValType = 0x7e
	F32       ValType = 0x7d
	F64       ValType = 0x7c
	V128      ValType = 0x7b
	FuncRef   ValType = 0x70
	ExternRef ValType = 0x6f
)

// ValType is a value type, by its binary encoding.
type ValType byte

// String is the type's text-format name.
func (v ValType) String() string {
	switch v {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F32:
		return "f32"
	case F64:
		return "f64"
	case V128:
		return "v128"
	case FuncRef:
		return "funcref"
	case ExternRef:
		return "externref"
	}
	return fmt.Sprintf("type(%#x)", byte(v))
}

func (v ValType) valid() bool {
	switch v {
	case I32, I64, F32, F64, V128, FuncRef, ExternRef:
		return true
	}
	return false
}

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValType
}

// String renders the signature as "(i32, i32) -> (i32)".
func (f FuncType) String() string {
	return typeList(f.Params) + " -> " + typeList(f.Results)
}

func typeList(ts []ValType) string {
	s := "("
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.String()
	}
	return s + ")"
}

// Equal reports whether f and g have the same params and results.
func (f FuncType) Equal(g FuncType) bool {
	if len(f.Params) != len(g.Params) || len(f.Results) != len(g.Results) {
		return false
	}
	for i := range f.Params {
		if f.Params[i] != g.Params[i] {
			return false
		}
	}
	for i := range f.Results {
		if f.Results[i] != g.Results[i] {
			return false
		}
	}
	return true
}

// Kind is the kind of an import or export.
type Kind byte

// Import and export kinds.
const (
	KindFunc   Kind = 0
	KindTable  Kind = 1
	KindMemory Kind = 2
	KindGlobal Kind = 3
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindFunc:
		return "function"
	case KindTable:
		return "table"
	case KindMemory:
		return "memory"
	case KindGlobal:
		return "global"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Limits of a table or memory.
type ResizableLimits struct {
	Min    uint32
	Max    uint32 // meaningful only if HasMax
	HasMax bool
}

// Table is a table type.
type Table struct {
	Elem ValType // FuncRef or ExternRef
	ResizableLimits
}

// Global is a global type.
type Global struct {
	Type    ValType
	Mutable bool
}

// Import is one entry of the import section.
type Import struct {
	Module, Name string
	Kind         Kind
	// Func is the signature of a function import (Kind == KindFunc).
	Func FuncType
	// Table, Memory and Global describe the other kinds.
	Table  Table
	Memory ResizableLimits
	Global Global
}

// Export is one entry of the export section.
type Export struct {
	Name  string
	Kind  Kind
	Index uint32
}

// Custom is a custom section. Data aliases the module's bytes.
type Custom struct {
	Name string
	Data []byte
}

// CodeStats summarises the function bodies, and which function holds each
// maximum (a function index, imports included).
type CodeStats struct {
	MaxBodyBytes, MaxBodyFunc  uint32
	MaxLocals, MaxLocalsFunc   uint32
	TotalLocals                uint64
	MaxNesting, MaxNestingFunc uint32
	MaxBrTable, MaxBrTableFunc uint32
	Instructions               uint64
}

// Module is what Parse read.
type Module struct {
	Types   []FuncType
	Imports []Import
	// Funcs holds the type index of each defined function.
	Funcs    []uint32
	Tables   []Table // defined tables, imported ones not included
	Memories []ResizableLimits
	Globals  []Global // defined globals
	Exports  []Export
	Start    uint32 // meaningful only if HasStart
	HasStart bool
	// ElemSegments and DataSegments count the segments; ElemEntries
	// counts the entries of all element segments and PassiveElemEntries
	// those of passive and declarative ones (copied per instance).
	ElemSegments, DataSegments      uint32
	ElemEntries, PassiveElemEntries uint64
	Customs                         []Custom
	Code                            CodeStats

	// TableSection is the byte range [start, end) of the table
	// section's content, when there is one, for WithTableMax.
	TableSection [2]int
	// tableSectionHeader is the offset of the section id byte.
	tableSectionHeader int
	// codeSection is the code section's byte range [id byte, end);
	// bodies is what GuardCalls needs of each defined function's body,
	// and tableFuncs the functions element segments name (all of them
	// when a segment's entries are expressions, not read here).
	codeSection [2]int
	bodies      []bodyFacts
	tableFuncs  []uint32
	anyInTable  bool
	// tableWrite and segmentOp name the first instruction in the guest's
	// code that changes a table (table.set, table.grow, table.fill,
	// table.copy, table.init, elem.drop) or uses a data segment at run
	// time (memory.init, data.drop), "" for none: see Resettable.
	tableWrite, segmentOp string

	importedFuncs, importedTables, importedGlobals, importedMemories uint32
}

// ImportedFuncs is the number of imported functions (they come first in
// the function index space).
func (m *Module) ImportedFuncs() uint32 { return m.importedFuncs }

// FuncType returns the signature of function idx (imports first), and
// false if idx is out of range.
func (m *Module) FuncType(idx uint32) (FuncType, bool) {
	if idx < m.importedFuncs {
		n := uint32(0)
		for _, im := range m.Imports {
			if im.Kind == KindFunc {
				if n == idx {
					return im.Func, true
				}
				n++
			}
		}
		return FuncType{}, false
	}
	idx -= m.importedFuncs
	if int(idx) >= len(m.Funcs) || int(m.Funcs[idx]) >= len(m.Types) {
		return FuncType{}, false
	}
	return m.Types[m.Funcs[idx]], true
}

// label names what is being read, for errors only: it is formatted when
// an error is, so that reading allocates nothing per entry.
type label struct {
	pre  string
	idx  uint64
	has  bool // idx is part of the name
	post string
}

func lbl(s string) label            { return label{pre: s} }
func lbli(s string, i uint32) label { return label{pre: s, idx: uint64(i), has: true} }
func lblip(s string, i uint32, post string) label {
	return label{pre: s, idx: uint64(i), has: true, post: post}
}

func (l label) String() string {
	if !l.has {
		return l.pre + l.post
	}
	return fmt.Sprintf("%s %d%s", l.pre, l.idx, l.post)
}

// reader reads one bounded region of the module.
type reader struct {
	b       []byte // the whole module
	pos     int
	end     int // reading stops here
	section string
}

func (r *reader) errAt(at int, kind error, format string, args ...any) error {
	return &Error{Section: r.section, Offset: at, Msg: fmt.Sprintf(format, args...), Kind: kind}
}

func (r *reader) err(kind error, format string, args ...any) error {
	return r.errAt(r.pos, kind, format, args...)
}

func (r *reader) remaining() int { return r.end - r.pos }

func (r *reader) byte() (byte, error) {
	if r.pos >= r.end {
		return 0, r.err(ErrMalformed, "unexpected end of section")
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

func (r *reader) take(n int) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, r.err(ErrMalformed, "needs %d bytes, %d remain", n, r.remaining())
	}
	s := r.b[r.pos : r.pos+n : r.pos+n]
	r.pos += n
	return s, nil
}

// leb reads the bytes of one LEB128 of at most maxLen bytes and returns
// them; it does not interpret them.
func (r *reader) leb(maxLen int) ([]byte, error) {
	start := r.pos
	for i := r.pos; i < r.end && i-start < maxLen; i++ {
		if r.b[i] < 0x80 {
			r.pos = i + 1
			return r.b[start:r.pos], nil
		}
	}
	if r.end-start < maxLen {
		r.pos = r.end
		return nil, r.err(ErrMalformed, "unexpected end of section")
	}
	return nil, r.errAt(start, ErrMalformed, "LEB128 longer than %d bytes", maxLen)
}

// u32 reads an unsigned LEB128 of 32 bits; one byte is the common case.
func (r *reader) u32() (uint32, error) {
	if r.pos < r.end {
		if c := r.b[r.pos]; c < 0x80 {
			r.pos++
			return uint32(c), nil
		}
	}
	return r.u32Long()
}

func (r *reader) u32Long() (uint32, error) {
	start := r.pos
	bs, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	var v uint32
	for i, c := range bs {
		if i == 4 && c&0xf0 != 0 {
			return 0, r.errAt(start, ErrMalformed, "LEB128 overflows 32 bits")
		}
		v |= uint32(c&0x7f) << (7 * i)
	}
	return v, nil
}

// s33 reads a signed LEB128 of at most 33 bits (a block type).
func (r *reader) s33() (int64, error) {
	bs, err := r.leb(5)
	if err != nil {
		return 0, err
	}
	var v int64
	shift := 0
	for _, c := range bs {
		v |= int64(c&0x7f) << shift
		shift += 7
	}
	if shift < 64 && bs[len(bs)-1]&0x40 != 0 {
		v |= -1 << shift
	}
	// Keep 33 bits, sign-extended.
	v = v << 31 >> 31
	return v, nil
}

// count reads a vector length that needs at least minEntry bytes an entry
// and may not exceed ceiling (0: none).
func (r *reader) count(what label, minEntry int, ceiling uint32) (uint32, error) {
	at := r.pos
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n)*uint64(minEntry) > uint64(r.remaining()) {
		return 0, r.errAt(at, ErrMalformed, "declares %d %s, but only %d bytes remain", n, what, r.remaining())
	}
	if ceiling > 0 && n > ceiling {
		return 0, r.errAt(at, ErrCeiling, "declares %d %s, ceiling is %d", n, what, ceiling)
	}
	return n, nil
}

// length reads the byte length of what (a section, a body, a name) and
// holds it to what remains of r.
func (r *reader) length(what label) (uint32, error) {
	at := r.pos
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int64(n) > int64(r.remaining()) {
		return 0, r.errAt(at, ErrMalformed, "%s is %d bytes long, only %d remain", what, n, r.remaining())
	}
	return n, nil
}

func (r *reader) name(what string) (string, error) {
	at := r.pos
	n, err := r.length(lbl(what))
	if err != nil {
		return "", err
	}
	b, _ := r.take(int(n))
	if !utf8.Valid(b) {
		return "", r.errAt(at, ErrMalformed, "%s is not valid UTF-8", what)
	}
	return string(b), nil
}

func (r *reader) valType(what label) (ValType, error) {
	at := r.pos
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	v := ValType(c)
	if !v.valid() {
		return 0, r.errAt(at, ErrUnsupported, "%s has value type %#x, not one of WebAssembly 2.0", what, c)
	}
	return v, nil
}

func (r *reader) limits(what label, memory bool) (ResizableLimits, error) {
	at := r.pos
	flag, err := r.byte()
	if err != nil {
		return ResizableLimits{}, err
	}
	var l ResizableLimits
	switch flag {
	case 0x00, 0x01:
	case 0x02, 0x03:
		return l, r.errAt(at, ErrUnsupported, "%s is shared (threads proposal)", what)
	case 0x04, 0x05, 0x06, 0x07:
		return l, r.errAt(at, ErrUnsupported, "%s is 64-bit (memory64 proposal)", what)
	default:
		return l, r.errAt(at, ErrMalformed, "%s has limits flag %#x", what, flag)
	}
	if l.Min, err = r.u32(); err != nil {
		return l, err
	}
	if flag == 0x01 {
		if l.Max, err = r.u32(); err != nil {
			return l, err
		}
		l.HasMax = true
		if l.Max < l.Min {
			return l, r.errAt(at, ErrMalformed, "%s has maximum %d below its minimum %d", what, l.Max, l.Min)
		}
	}
	if memory && (l.Min > 65536 || (l.HasMax && l.Max > 65536)) {
		return l, r.errAt(at, ErrMalformed, "%s declares more than 65536 pages", what)
	}
	return l, nil
}

func (r *reader) tableType(what label, lim *Limits) (Table, error) {
	at := r.pos
	c, err := r.byte()
	if err != nil {
		return Table{}, err
	}
	t := Table{Elem: ValType(c)}
	if t.Elem != FuncRef && t.Elem != ExternRef {
		return t, r.errAt(at, ErrUnsupported, "%s has element type %#x, not funcref or externref", what, c)
	}
	if t.ResizableLimits, err = r.limits(what, false); err != nil {
		return t, err
	}
	if lim.TableElements > 0 && t.Min > lim.TableElements {
		return t, r.errAt(at, ErrCeiling, "%s declares %d elements at start, ceiling is %d", what, t.Min, lim.TableElements)
	}
	return t, nil
}

func (r *reader) globalType(what label) (Global, error) {
	t, err := r.valType(what)
	if err != nil {
		return Global{}, err
	}
	at := r.pos
	mut, err := r.byte()
	if err != nil {
		return Global{}, err
	}
	if mut > 1 {
		return Global{}, r.errAt(at, ErrMalformed, "%s has mutability %#x", what, mut)
	}
	return Global{Type: t, Mutable: mut == 1}, nil
}

// constExpr skips a constant expression, as wazero reads one, refusing a
// global.get of a global not below globals and a ref.func of a function
// not below funcs (the module's own counts: see parser.index).
func (r *reader) constExpr(what label, globals, funcs uint32) error {
	for {
		at := r.pos
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41, 0x42: // i32.const, i64.const
			n := 5
			if op == 0x42 {
				n = 10
			}
			if _, err := r.leb(n); err != nil {
				return err
			}
		case 0x43:
			_, err = r.take(4)
		case 0x44:
			_, err = r.take(8)
		case 0x23, 0xd2: // global.get, ref.func
			var v uint32
			if v, err = r.u32(); err == nil {
				n, kind := globals, "global"
				if op == 0xd2 {
					n, kind = funcs, "function"
				}
				if v >= n {
					return r.errAt(at, ErrMalformed, "%s: names %s %d, the module has %d", what, kind, v, n)
				}
			}
		case 0xd0: // ref.null
			var c byte
			if c, err = r.byte(); err == nil && ValType(c) != FuncRef && ValType(c) != ExternRef {
				return r.errAt(at, ErrUnsupported, "%s: ref.null of type %#x", what, c)
			}
		case 0xfd:
			var c byte
			if c, err = r.byte(); err == nil {
				if c != 0x0c {
					return r.errAt(at, ErrUnsupported, "%s: vector opcode %#x in a constant expression", what, c)
				}
				_, err = r.take(16)
			}
		default:
			return r.errAt(at, ErrUnsupported, "%s: opcode %#x in a constant expression", what, op)
		}
		if err != nil {
			return err
		}
	}
}
