package wasmbin

import "slices"

// Immediate kinds of the one-byte opcodes.
const (
	opBad     = iota // not an opcode wazero v1.12 accepts by default
	opNone           // no immediate
	opBlock          // block type
	opEnd            // end
	opU32            // one u32
	opU32x2          // two u32
	opBrTable        // vec(u32) u32
	opSelectT        // vec(valtype) of length 1
	opMemarg         // u32 align, u32 offset
	opZero           // one reserved 0x00 byte
	opS32            // s32
	opS64            // s64
	opF32            // 4 bytes
	opF64            // 8 bytes
	opRefNull        // reftype byte
	opMisc           // 0xfc prefix
	opVec            // 0xfd prefix
)

var opKinds = func() (k [256]byte) {
	set := func(lo, hi int, kind byte) {
		for i := lo; i <= hi; i++ {
			k[i] = kind
		}
	}
	set(0x00, 0x01, opNone)  // unreachable nop
	set(0x02, 0x04, opBlock) // block loop if
	k[0x05] = opNone         // else
	k[0x0b] = opEnd
	set(0x0c, 0x0d, opU32) // br br_if
	k[0x0e] = opBrTable
	k[0x0f] = opNone  // return
	k[0x10] = opU32   // call
	k[0x11] = opU32x2 // call_indirect
	set(0x1a, 0x1b, opNone)
	k[0x1c] = opSelectT
	set(0x20, 0x26, opU32) // local.* global.* table.get table.set
	set(0x28, 0x3e, opMemarg)
	set(0x3f, 0x40, opZero) // memory.size memory.grow
	k[0x41] = opS32
	k[0x42] = opS64
	k[0x43] = opF32
	k[0x44] = opF64
	set(0x45, 0xc4, opNone) // numeric, sign extension
	k[0xd0] = opRefNull
	k[0xd1] = opNone // ref.is_null
	k[0xd2] = opU32  // ref.func
	k[0xfc] = opMisc
	k[0xfd] = opVec
	return k
}()

// proposalOps names the opcodes of proposals wazero accepts only when
// enabled, for a clearer refusal.
var proposalOps = map[byte]string{
	0x06: "try (exception handling)", 0x07: "catch (exception handling)", 0x08: "throw (exception handling)",
	0x09: "rethrow (exception handling)", 0x0a: "throw_ref (exception handling)", 0x12: "return_call (tail call)",
	0x13: "return_call_indirect (tail call)", 0x14: "call_ref (function references)", 0x15: "return_call_ref (tail call)",
	0x18: "delegate (exception handling)", 0x19: "catch_all (exception handling)", 0x1f: "try_table (exception handling)",
	0xd3: "ref.eq (GC)", 0xd4: "ref.as_non_null (function references)", 0xd5: "br_on_null (function references)",
	0xd6: "br_on_non_null (function references)", 0xfb: "GC prefix", 0xfe: "atomics prefix (threads)",
}

// Immediate kinds of the 0xfd (SIMD) sub-opcodes.
const (
	vecBad     = iota
	vecNone    // no immediate
	vecMemarg  // memarg
	vecBytes16 // 16 bytes (v128.const, i8x16.shuffle)
	vecLane    // one lane byte
	vecMemLane // memarg then lane byte
)

var vecKinds = func() (k [256]byte) {
	for i := range k {
		k[i] = vecNone
	}
	for i := 0x00; i <= 0x0b; i++ {
		k[i] = vecMemarg
	}
	k[0x0c], k[0x0d] = vecBytes16, vecBytes16
	for i := 0x15; i <= 0x22; i++ {
		k[i] = vecLane
	}
	for i := 0x54; i <= 0x5b; i++ {
		k[i] = vecMemLane
	}
	k[0x5c], k[0x5d] = vecMemarg, vecMemarg
	// Gaps in the SIMD opcode space (reserved, or dropped from the
	// proposal); wazero v1.12 defines no instruction there.
	for _, i := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		k[i] = vecBad
	}
	return k
}()

// body reads one entry of the code section: locals, then the instruction
// stream, checking each per-function ceiling as soon as it is passed.
func (p *parser) body(r *reader, fn uint32) error {
	lim, st := p.lim, &p.m.Code
	sizeAt := r.pos
	size, err := r.length(lblip("function", fn, " body"))
	if err != nil {
		return err
	}
	if lim.BodyBytes > 0 && size > lim.BodyBytes {
		return r.errAt(sizeAt, ErrCeiling, "function %d body is %d bytes, ceiling is %d", fn, size, lim.BodyBytes)
	}
	if size > st.MaxBodyBytes {
		st.MaxBodyBytes, st.MaxBodyFunc = size, fn
	}
	b := &reader{b: r.b, pos: r.pos, end: r.pos + int(size), section: r.section}
	r.pos = b.end
	if size == 0 {
		return b.err(ErrMalformed, "function %d body is empty", fn)
	}

	decls, err := b.count(lblip("function", fn, " local declarations"), 2, 0)
	if err != nil {
		return err
	}
	var locals uint64
	for i := uint32(0); i < decls; i++ {
		at := b.pos
		n, err := b.u32()
		if err != nil {
			return err
		}
		if _, err := b.valType(lblip("function", fn, " local")); err != nil {
			return err
		}
		locals += uint64(n)
		if locals > 0xffffffff {
			return b.errAt(at, ErrMalformed, "function %d declares more than 2^32 locals", fn)
		}
		if lim.FunctionLocals > 0 && locals > uint64(lim.FunctionLocals) {
			return b.errAt(at, ErrCeiling, "function %d declares %d locals, ceiling is %d", fn, locals, lim.FunctionLocals)
		}
	}
	st.TotalLocals += locals
	if lim.TotalLocals > 0 && st.TotalLocals > lim.TotalLocals {
		return b.errAt(sizeAt, ErrCeiling, "functions up to %d declare %d locals in total, ceiling is %d", fn, st.TotalLocals, lim.TotalLocals)
	}
	if uint32(locals) > st.MaxLocals {
		st.MaxLocals, st.MaxLocalsFunc = uint32(locals), fn
	}
	f := bodyFacts{size: sizeAt, locals: b.end - int(size), code: b.pos, end: b.end}
	before := st.Instructions
	if c := int(size) / 2; cap(p.sites) < c {
		// At most one call every two bytes: sized once for the largest
		// body, so the buffer never grows by appending.
		p.sites = make([]callSite, 0, c)
	}
	p.sites = p.sites[:0]
	p.loops = p.loops[:0]
	p.open = p.open[:0]
	if err := p.instructions(b, fn, &f); err != nil {
		return err
	}
	if len(p.sites) > 0 {
		f.calls = slices.Clone(p.sites)
	}
	if len(p.loops) > 0 {
		f.loops = slices.Clone(p.loops)
	}
	f.instructions = st.Instructions - before
	p.m.bodies = append(p.m.bodies, f)
	return nil
}

// instructions reads a body's instruction stream, noting in f what it
// calls and whether every entry reaches a loop header after nothing but
// straight-line code (blocks and instructions that neither branch, call
// nor end a block, as Go begins its functions): see GuardCalls.
func (p *parser) instructions(b *reader, fn uint32, f *bodyFacts) (err error) {
	lim, st := p.lim, &p.m.Code
	depth := uint32(1) // the function's own block
	var targets uint64 // over every br_table of the function
	prologue := true   // no loop yet, nothing but straight-line code
	for b.pos < b.end {
		at := b.pos
		op := b.b[b.pos]
		b.pos++
		st.Instructions++
		switch op {
		case 0x10, 0x11: // call, call_indirect
			prologue = false
		case 0x03: // loop
			if prologue {
				f.entryChecked, prologue = true, false
			}
			if n := len(p.sites); n > 0 && p.sites[n-1].after() == at {
				p.sites[n-1].at |= checkedBit
			}
		case 0x00, 0x04, 0x05, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f: // unreachable, if, else, end, br, br_if, br_table, return
			prologue = false
		}
		switch opKinds[op] {
		case opNone:
		case opEnd:
			depth--
			if depth == 0 && b.pos != b.end {
				return b.errAt(at, ErrMalformed, "function %d: %d bytes after the function's final end", fn, b.end-b.pos)
			}
			if n := len(p.open); depth > 0 && n > 0 {
				if o := p.open[n-1]; o.loop != noLoop {
					l := &p.loops[o.loop]
					l.end, l.instructions = uint32(b.pos), uint32(min(st.Instructions-o.instructions, ExitBudget))
				}
				p.open = p.open[:n-1]
			}
		case opBlock:
			if err = p.blockType(b, fn); err != nil {
				return err
			}
			depth++
			if lim.Nesting > 0 && depth > lim.Nesting {
				return b.errAt(at, ErrCeiling, "function %d nests blocks %d deep, ceiling is %d", fn, depth, lim.Nesting)
			}
			if depth > st.MaxNesting {
				st.MaxNesting, st.MaxNestingFunc = depth, fn
			}
			o := openBlock{loop: noLoop}
			if op == 0x03 {
				o = openBlock{loop: uint32(len(p.loops)), instructions: st.Instructions}
				p.loops = append(p.loops, loopSite{at: uint32(b.pos)})
			}
			p.open = append(p.open, o)
		case opU32:
			if op == 0x26 {
				p.m.tableWrite = orIs(p.m.tableWrite, "table.set")
			}
			var v uint32
			if v, err = b.u32(); err == nil {
				err = p.indexOK(b, fn, at, op, v)
			}
		case opU32x2:
			var ty, tb uint32
			if ty, err = b.u32(); err == nil {
				if tb, err = b.u32(); err == nil {
					err = p.index(b, fn, at, "call_indirect names type", ty, uint32(len(p.m.Types)))
					if err == nil {
						err = p.index(b, fn, at, "call_indirect names table", tb, p.nTables)
					}
				}
			}
		case opBrTable:
			var n uint32
			if n, err = b.count(lbl("br_table targets"), 1, 0); err != nil {
				return err
			}
			targets += uint64(n) + 1
			if lim.BrTableTargets > 0 && targets > uint64(lim.BrTableTargets) {
				return b.errAt(at, ErrCeiling, "function %d has br_tables of %d targets in all, ceiling is %d", fn, targets, lim.BrTableTargets)
			}
			if targets > uint64(st.MaxBrTable) {
				st.MaxBrTable, st.MaxBrTableFunc = uint32(targets), fn
			}
			for i := uint64(0); i <= uint64(n) && err == nil; i++ {
				_, err = b.u32()
			}
		case opSelectT:
			var c byte
			if c, err = b.byte(); err == nil {
				if c != 1 {
					return b.errAt(at, ErrMalformed, "function %d: select with %d types, want 1", fn, c)
				}
				_, err = b.valType(lblip("function", fn, " select"))
			}
		case opMemarg:
			err = memarg(b)
		case opZero:
			err = zeroByte(b, fn)
		case opS32:
			_, err = b.leb(5)
		case opS64:
			_, err = b.leb(10)
		case opF32:
			_, err = b.take(4)
		case opF64:
			_, err = b.take(8)
		case opRefNull:
			var c byte
			if c, err = b.byte(); err == nil && ValType(c) != FuncRef && ValType(c) != ExternRef {
				return b.errAt(at, ErrUnsupported, "function %d: ref.null of type %#x", fn, c)
			}
		case opMisc:
			err = p.misc(b, fn, at)
		case opVec:
			err = vec(b, fn, at)
		default:
			if name, ok := proposalOps[op]; ok {
				return b.errAt(at, ErrUnsupported, "function %d: opcode %#x %s is not enabled", fn, op, name)
			}
			return b.errAt(at, ErrUnsupported, "function %d: unknown opcode %#x", fn, op)
		}
		if err != nil {
			return err
		}
		switch op {
		case 0x10: // call: its callee, and where the instruction after it starts
			p.sites = append(p.sites, callSite{callee: readU32(b.b[at+1 : b.pos]), at: uint32(b.pos)})
		case 0x11:
			p.sites = append(p.sites, callSite{callee: indirectCall, at: uint32(b.pos)})
			f.indirect = true
		}
	}
	if depth != 0 {
		return b.err(ErrMalformed, "function %d: body ends inside %d open blocks", fn, depth)
	}
	return nil
}

func (p *parser) blockType(b *reader, fn uint32) error {
	at := b.pos
	v, err := b.s33()
	if err != nil {
		return err
	}
	if v >= 0 {
		if v >= int64(len(p.m.Types)) {
			return b.errAt(at, ErrMalformed, "function %d: block type %d, the module has %d types", fn, v, len(p.m.Types))
		}
		return nil
	}
	// A negative one-byte value is 0x40 (empty) or a value type.
	if c := b.b[at]; b.pos == at+1 && (c == 0x40 || ValType(c).valid()) {
		return nil
	}
	return b.errAt(at, ErrUnsupported, "function %d: block type %#x", fn, b.b[at])
}

func memarg(b *reader) error {
	at := b.pos
	align, err := b.u32()
	if err != nil {
		return err
	}
	if align >= 32 {
		return b.errAt(at, ErrMalformed, "memory alignment 2^%d", align)
	}
	_, err = b.u32()
	return err
}

func zeroByte(b *reader, fn uint32) error {
	at := b.pos
	c, err := b.byte()
	if err != nil {
		return err
	}
	if c != 0 {
		return b.errAt(at, ErrUnsupported, "function %d: memory index byte %#x, want 0x00 (multi-memory is not enabled)", fn, c)
	}
	return nil
}

func (p *parser) misc(b *reader, fn uint32, at int) error {
	sub, err := b.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x07: // trunc_sat
		return nil
	case sub == 0x08: // memory.init
		p.m.segmentOp = orIs(p.m.segmentOp, "memory.init")
		if _, err := b.u32(); err != nil {
			return err
		}
		return zeroByte(b, fn)
	case sub == 0x09, sub == 0x0d: // data.drop elem.drop
		if sub == 0x09 {
			p.m.segmentOp = orIs(p.m.segmentOp, "data.drop")
		} else {
			p.m.tableWrite = orIs(p.m.tableWrite, "elem.drop")
		}
		_, err = b.u32()
		return err
	case sub == 0x0f, sub == 0x10, sub == 0x11: // table.grow/size/fill
		if sub == 0x0f {
			p.m.tableWrite = orIs(p.m.tableWrite, "table.grow")
		} else if sub == 0x11 {
			p.m.tableWrite = orIs(p.m.tableWrite, "table.fill")
		}
		var t uint32
		if t, err = b.u32(); err != nil {
			return err
		}
		return p.index(b, fn, at, "table instruction names table", t, p.nTables)
	case sub == 0x0a: // memory.copy
		if err := zeroByte(b, fn); err != nil {
			return err
		}
		return zeroByte(b, fn)
	case sub == 0x0b: // memory.fill
		return zeroByte(b, fn)
	case sub == 0x0c: // table.init: element segment, table
		p.m.tableWrite = orIs(p.m.tableWrite, "table.init")
		if _, err := b.u32(); err != nil {
			return err
		}
		var t uint32
		if t, err = b.u32(); err != nil {
			return err
		}
		return p.index(b, fn, at, "table.init names table", t, p.nTables)
	case sub == 0x0e: // table.copy: two tables
		p.m.tableWrite = orIs(p.m.tableWrite, "table.copy")
		for range 2 {
			var t uint32
			if t, err = b.u32(); err != nil {
				return err
			}
			if err := p.index(b, fn, at, "table.copy names table", t, p.nTables); err != nil {
				return err
			}
		}
		return nil
	}
	return b.errAt(at, ErrUnsupported, "function %d: opcode 0xfc %#x is not enabled", fn, sub)
}

func vec(b *reader, fn uint32, at int) error {
	sub, err := b.byte()
	if err != nil {
		return err
	}
	switch vecKinds[sub] {
	case vecNone:
		return nil
	case vecMemarg:
		return memarg(b)
	case vecBytes16:
		_, err = b.take(16)
		return err
	case vecLane:
		_, err = b.byte()
		return err
	case vecMemLane:
		if err := memarg(b); err != nil {
			return err
		}
		_, err = b.byte()
		return err
	}
	return b.errAt(at, ErrUnsupported, "function %d: SIMD opcode 0xfd %#x is not defined", fn, sub)
}

// indexOK checks the index immediate v of the one-u32 instruction op at
// at against the module's own counts (see indexBound).
func (p *parser) indexOK(b *reader, fn uint32, at int, op byte, v uint32) error {
	switch op {
	case 0x10:
		return p.index(b, fn, at, "call names function", v, p.nFuncs)
	case 0xd2:
		return p.index(b, fn, at, "ref.func names function", v, p.nFuncs)
	case 0x23, 0x24:
		return p.index(b, fn, at, "global instruction names global", v, p.nGlobals)
	case 0x25, 0x26:
		return p.index(b, fn, at, "table instruction names table", v, p.nTables)
	}
	return nil
}

// index refuses an index v not below n, the module's own count of what
// it names. wazero would refuse it too in the module as uploaded; it is
// checked here because wazero validates the instrumented copy, whose
// appended function, table and globals (Instrument) such an index would
// name: no guest code reaches them.
func (p *parser) index(b *reader, fn uint32, at int, what string, v, n uint32) error {
	if v >= n {
		return b.errAt(at, ErrMalformed, "function %d: %s %d, the module has %d", fn, what, v, n)
	}
	return nil
}

// readU32 decodes the unsigned LEB128 in b, which the reader has checked.
func readU32(b []byte) uint32 {
	var v uint32
	for i, c := range b {
		v |= uint32(c&0x7f) << (7 * i)
	}
	return v
}

// orIs returns s, or what when s is empty.
func orIs(s, what string) string {
	if s == "" {
		return what
	}
	return s
}
