package wasmbin

var sectionNames = [...]string{
	0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global",
	7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "data count", 13: "tag",
}

// sectionRank is the order non-custom sections must come in.
var sectionRank = [...]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// Parse reads wasm's structure, refusing what is malformed, what wazero
// v1.12 does not accept by default, and what exceeds lim.
func Parse(wasm []byte, lim Limits) (*Module, error) {
	r := &reader{b: wasm, end: len(wasm), section: "header"}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, r.err(ErrMalformed, "not a WebAssembly module (no \\0asm magic)")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, r.errAt(4, ErrMalformed, "binary version %x, want 1 (components and other layers are not modules)", wasm[4:8])
	}
	r.pos = 8
	m := &Module{}
	p := &parser{m: m, lim: &lim}
	last := 0
	var dataCount *uint32
	for r.pos < len(wasm) {
		r.section = "header"
		idAt := r.pos
		id, _ := r.byte()
		size, err := r.length(lbli("section", uint32(id)))
		if err != nil {
			return nil, err
		}
		if int(id) >= len(sectionNames) {
			return nil, r.errAt(idAt, ErrMalformed, "unknown section id %d", id)
		}
		s := &reader{b: wasm, pos: r.pos, end: r.pos + int(size), section: sectionNames[id]}
		r.pos = s.end
		if id != 0 {
			if sectionRank[id] <= last {
				return nil, s.errAt(idAt, ErrMalformed, "section out of order or repeated")
			}
			last = sectionRank[id]
		}
		switch id {
		case 0:
			err = p.custom(s)
		case 1:
			err = p.types(s)
		case 2:
			err = p.imports(s)
		case 3:
			err = p.functions(s)
		case 4:
			m.tableSectionHeader = idAt
			m.TableSection = [2]int{s.pos, s.end}
			err = p.tables(s)
		case 5:
			err = p.memories(s)
		case 6:
			err = p.globals(s)
		case 7:
			err = p.exports(s)
		case 8:
			at := s.pos
			if m.Start, err = s.u32(); err == nil && m.Start >= p.funcs() {
				err = s.errAt(at, ErrMalformed, "start function %d, the module has %d", m.Start, p.funcs())
			}
			m.HasStart = true
		case 9:
			err = p.elements(s)
		case 10:
			m.codeSection = [2]int{idAt, s.end}
			err = p.code(s)
		case 11:
			err = p.data(s, dataCount)
		case 12:
			var n uint32
			if n, err = s.u32(); err == nil {
				dataCount = &n
			}
		case 13:
			err = s.errAt(idAt, ErrUnsupported, "tag section (exception handling proposal)")
		}
		if err != nil {
			return nil, err
		}
		if s.pos != s.end {
			return nil, s.err(ErrMalformed, "%d bytes left over at the end of the section", s.end-s.pos)
		}
	}
	if len(m.Funcs) > 0 && !p.sawCode {
		r.section = "code"
		return nil, r.err(ErrMalformed, "%d functions declared, no code section", len(m.Funcs))
	}
	if dataCount != nil && *dataCount != m.DataSegments {
		r.section = "data count"
		return nil, r.err(ErrMalformed, "data count %d, but %d data segments", *dataCount, m.DataSegments)
	}
	return m, nil
}

type parser struct {
	m       *Module
	lim     *Limits
	sawCode bool
	sawName bool
	// sites gathers one body's calls, reused from body to body: each
	// body keeps an exact copy (growing a slice per body allocated five
	// times its final size).
	sites []callSite
	loops []loopSite
	// open holds the blocks open in the body being read: for a loop, its
	// index in loops and where its work started (see loopSite.weight);
	// loopless blocks are marked by noLoop. At most Limits.Nesting deep.
	open []openBlock
	// nFuncs, nTables and nGlobals are the module's own counts, imports
	// included, that the code section's indices are checked against; set
	// before the code section is read.
	nFuncs, nTables, nGlobals uint32
}

// funcs, globals and count are the module's own counts read so far,
// imports included: what its indices may name (see parser.index).
func (p *parser) funcs() uint32 { return p.m.importedFuncs + uint32(len(p.m.Funcs)) }

func (p *parser) nGlobalsSoFar() uint32 { return p.m.importedGlobals + uint32(len(p.m.Globals)) }

func (p *parser) count(k Kind) uint32 {
	switch k {
	case KindFunc:
		return p.funcs()
	case KindTable:
		return p.m.importedTables + uint32(len(p.m.Tables))
	case KindMemory:
		return p.m.importedMemories + uint32(len(p.m.Memories))
	}
	return p.nGlobalsSoFar()
}

func (p *parser) types(r *reader) error {
	n, err := r.count(lbl("types"), 3, p.lim.Types)
	if err != nil {
		return err
	}
	p.m.Types = make([]FuncType, 0, n)
	for i := uint32(0); i < n; i++ {
		at := r.pos
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return r.errAt(at, ErrUnsupported, "type %d has form %#x, not a function type (0x60)", i, form)
		}
		var ft FuncType
		if ft.Params, err = p.valTypes(r, lblip("type", i, " params"), p.lim.Params); err != nil {
			return err
		}
		if ft.Results, err = p.valTypes(r, lblip("type", i, " results"), p.lim.Results); err != nil {
			return err
		}
		p.m.Types = append(p.m.Types, ft)
	}
	return nil
}

func (p *parser) valTypes(r *reader, what label, ceiling uint32) ([]ValType, error) {
	n, err := r.count(what, 1, ceiling)
	if err != nil || n == 0 {
		return nil, err
	}
	out := make([]ValType, n)
	for i := range out {
		if out[i], err = r.valType(what); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *parser) typeIndex(r *reader, what label) (uint32, error) {
	at := r.pos
	idx, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int64(idx) >= int64(len(p.m.Types)) {
		return 0, r.errAt(at, ErrMalformed, "%s names type %d, the module has %d", what, idx, len(p.m.Types))
	}
	return idx, nil
}

func (p *parser) imports(r *reader) error {
	n, err := r.count(lbl("imports"), 4, p.lim.Imports)
	if err != nil {
		return err
	}
	m := p.m
	m.Imports = make([]Import, 0, n)
	for i := uint32(0); i < n; i++ {
		var im Import
		if im.Module, err = r.name("import module name"); err != nil {
			return err
		}
		if im.Name, err = r.name("import name"); err != nil {
			return err
		}
		what := lbl("import " + im.Module + "." + im.Name)
		at := r.pos
		kind, err := r.byte()
		if err != nil {
			return err
		}
		im.Kind = Kind(kind)
		switch im.Kind {
		case KindFunc:
			idx, err := p.typeIndex(r, what)
			if err != nil {
				return err
			}
			im.Func = m.Types[idx]
			m.importedFuncs++
		case KindTable:
			if im.Table, err = r.tableType(what, p.lim); err != nil {
				return err
			}
			m.importedTables++
			if err := p.tableCount(r, at); err != nil {
				return err
			}
		case KindMemory:
			if im.Memory, err = r.limits(what, true); err != nil {
				return err
			}
			m.importedMemories++
			if m.importedMemories > 1 {
				return r.errAt(at, ErrUnsupported, "a second memory (multi-memory proposal)")
			}
		case KindGlobal:
			if im.Global, err = r.globalType(what); err != nil {
				return err
			}
			m.importedGlobals++
			if err := p.globalCount(r, at, 1); err != nil {
				return err
			}
		case 4:
			return r.errAt(at, ErrUnsupported, "%s is a tag (exception handling proposal)", what)
		default:
			return r.errAt(at, ErrMalformed, "%s has kind %#x", what, kind)
		}
		m.Imports = append(m.Imports, im)
	}
	return nil
}

func (p *parser) tableCount(r *reader, at int) error {
	total := uint64(p.m.importedTables) + uint64(len(p.m.Tables))
	if p.lim.Tables > 0 && total > uint64(p.lim.Tables) {
		return r.errAt(at, ErrCeiling, "more than %d tables", p.lim.Tables)
	}
	return nil
}

func (p *parser) globalCount(r *reader, at int, adding uint32) error {
	total := uint64(p.m.importedGlobals) + uint64(len(p.m.Globals)) + uint64(adding) - 1
	if p.lim.Globals > 0 && total > uint64(p.lim.Globals) {
		return r.errAt(at, ErrCeiling, "declares %d globals, ceiling is %d", total, p.lim.Globals)
	}
	return nil
}

func (p *parser) functions(r *reader) error {
	n, err := r.count(lbl("functions"), 1, p.lim.Functions)
	if err != nil {
		return err
	}
	p.m.Funcs = make([]uint32, n)
	for i := range p.m.Funcs {
		if p.m.Funcs[i], err = p.typeIndex(r, lbli("function", uint32(i)+p.m.importedFuncs)); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) tables(r *reader) error {
	n, err := r.count(lbl("tables"), 3, p.lim.Tables)
	if err != nil {
		return err
	}
	p.m.Tables = make([]Table, 0, n)
	for i := uint32(0); i < n; i++ {
		at := r.pos
		t, err := r.tableType(lbli("table", i+p.m.importedTables), p.lim)
		if err != nil {
			return err
		}
		p.m.Tables = append(p.m.Tables, t)
		if err := p.tableCount(r, at); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) memories(r *reader) error {
	at := r.pos
	n, err := r.count(lbl("memories"), 2, 0)
	if err != nil {
		return err
	}
	if uint64(n)+uint64(p.m.importedMemories) > 1 {
		return r.errAt(at, ErrUnsupported, "%d memories (multi-memory proposal)", uint64(n)+uint64(p.m.importedMemories))
	}
	for i := uint32(0); i < n; i++ {
		l, err := r.limits(lbl("memory"), true)
		if err != nil {
			return err
		}
		p.m.Memories = append(p.m.Memories, l)
	}
	return nil
}

func (p *parser) globals(r *reader) error {
	at := r.pos
	n, err := r.count(lbl("globals"), 3, p.lim.Globals)
	if err != nil {
		return err
	}
	if err := p.globalCount(r, at, n); err != nil && n > 0 {
		return err
	}
	p.m.Globals = make([]Global, 0, n)
	for i := uint32(0); i < n; i++ {
		what := lbli("global", i+p.m.importedGlobals)
		g, err := r.globalType(what)
		if err != nil {
			return err
		}
		if err := r.constExpr(what, p.m.importedGlobals+i, p.funcs()); err != nil {
			return err
		}
		p.m.Globals = append(p.m.Globals, g)
	}
	return nil
}

func (p *parser) exports(r *reader) error {
	n, err := r.count(lbl("exports"), 3, p.lim.Exports)
	if err != nil {
		return err
	}
	p.m.Exports = make([]Export, 0, n)
	for i := uint32(0); i < n; i++ {
		var e Export
		if e.Name, err = r.name("export name"); err != nil {
			return err
		}
		at := r.pos
		k, err := r.byte()
		if err != nil {
			return err
		}
		if k > 3 {
			return r.errAt(at, ErrMalformed, "export %q has kind %#x", e.Name, k)
		}
		e.Kind = Kind(k)
		iat := r.pos
		if e.Index, err = r.u32(); err != nil {
			return err
		}
		if n := p.count(e.Kind); e.Index >= n {
			return r.errAt(iat, ErrMalformed, "export %q names %s %d, the module has %d", e.Name, e.Kind, e.Index, n)
		}
		p.m.Exports = append(p.m.Exports, e)
	}
	return nil
}

func (p *parser) elements(r *reader) error {
	n, err := r.count(lbl("element segments"), 2, p.lim.ElemSegments)
	if err != nil {
		return err
	}
	p.m.ElemSegments = n
	for i := uint32(0); i < n; i++ {
		what := lbli("element segment", i)
		at := r.pos
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return r.errAt(at, ErrMalformed, "%s has flags %#x", what, flags)
		}
		passive := flags&1 != 0
		if flags&1 == 0 { // active: [table index] offset
			if flags&2 != 0 {
				tat := r.pos
				t, err := r.u32()
				if err != nil {
					return err
				}
				if n := p.m.importedTables + uint32(len(p.m.Tables)); t >= n {
					return r.errAt(tat, ErrMalformed, "%s names table %d, the module has %d", what, t, n)
				}
			}
			if err := r.constExpr(label{pre: what.pre, idx: what.idx, has: true, post: " offset"}, p.nGlobalsSoFar(), p.funcs()); err != nil {
				return err
			}
		}
		exprs := flags&4 != 0
		if flags&3 != 0 { // elemkind (0x00) or reftype
			kat := r.pos
			k, err := r.byte()
			if err != nil {
				return err
			}
			if !exprs && k != 0 {
				return r.errAt(kat, ErrMalformed, "%s has element kind %#x", what, k)
			}
			if exprs && ValType(k) != FuncRef && ValType(k) != ExternRef {
				return r.errAt(kat, ErrUnsupported, "%s has element type %#x", what, k)
			}
		}
		cat := r.pos
		c, err := r.count(lblip("element segment", i, " entries"), 1, 0)
		if err != nil {
			return err
		}
		p.m.ElemEntries += uint64(c)
		if passive {
			p.m.PassiveElemEntries += uint64(c)
		}
		if p.lim.ElemEntries > 0 && p.m.ElemEntries > uint64(p.lim.ElemEntries) {
			return r.errAt(cat, ErrCeiling, "element segments hold more than %d entries", p.lim.ElemEntries)
		}
		if exprs && c > 0 {
			p.m.anyInTable = true
		}
		for j := uint32(0); j < c; j++ {
			if exprs {
				err = r.constExpr(what, p.nGlobalsSoFar(), p.funcs())
			} else {
				fat := r.pos
				var f uint32
				if f, err = r.u32(); err == nil {
					if f >= p.funcs() {
						return r.errAt(fat, ErrMalformed, "%s names function %d, the module has %d", what, f, p.funcs())
					}
					p.m.tableFuncs = append(p.m.tableFuncs, f)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *parser) data(r *reader, dataCount *uint32) error {
	n, err := r.count(lbl("data segments"), 2, p.lim.DataSegments)
	if err != nil {
		return err
	}
	p.m.DataSegments = n
	for i := uint32(0); i < n; i++ {
		what := lbli("data segment", i)
		at := r.pos
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0:
			err = r.constExpr(label{pre: what.pre, idx: what.idx, has: true, post: " offset"}, p.nGlobalsSoFar(), p.funcs())
		case 1:
		case 2:
			if _, err = r.u32(); err == nil {
				err = r.constExpr(label{pre: what.pre, idx: what.idx, has: true, post: " offset"}, p.nGlobalsSoFar(), p.funcs())
			}
		default:
			return r.errAt(at, ErrMalformed, "%s has flags %#x", what, flags)
		}
		if err != nil {
			return err
		}
		c, err := r.count(lblip("data segment", i, " bytes"), 1, 0)
		if err != nil {
			return err
		}
		r.pos += int(c)
	}
	return nil
}

func (p *parser) code(r *reader) error {
	p.sawCode = true
	at := r.pos
	n, err := r.count(lbl("function bodies"), 2, 0)
	if err != nil {
		return err
	}
	if int64(n) != int64(len(p.m.Funcs)) {
		return r.errAt(at, ErrMalformed, "%d function bodies for %d functions", n, len(p.m.Funcs))
	}
	m := p.m
	p.nFuncs = m.importedFuncs + uint32(len(m.Funcs))
	p.nTables = m.importedTables + uint32(len(m.Tables))
	p.nGlobals = m.importedGlobals + uint32(len(m.Globals))
	for i := uint32(0); i < n; i++ {
		if err := p.body(r, i+p.m.importedFuncs); err != nil {
			return err
		}
	}
	return nil
}

// custom reads a custom section; the "name" section is read as wazero
// reads it, so that its counts are checked against its bytes too.
func (p *parser) custom(r *reader) error {
	name, err := r.name("custom section name")
	if err != nil {
		return err
	}
	r.section = "custom:" + name
	if p.lim.Customs > 0 && uint32(len(p.m.Customs)) >= p.lim.Customs {
		return r.err(ErrCeiling, "more than %d custom sections", p.lim.Customs)
	}
	p.m.Customs = append(p.m.Customs, Custom{Name: name, Data: r.b[r.pos:r.end:r.end]})
	if name != "name" {
		r.pos = r.end
		return nil
	}
	if p.sawName {
		return r.err(ErrMalformed, "a second name section")
	}
	p.sawName = true
	return p.names(r)
}

func (p *parser) names(r *reader) error {
	var localNames uint64
	for r.pos < r.end {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.length(lbli("name subsection", uint32(id)))
		if err != nil {
			return err
		}
		s := &reader{b: r.b, pos: r.pos, end: r.pos + int(size), section: r.section}
		r.pos = s.end
		switch id {
		case 0:
			_, err = s.name("module name")
		case 1:
			err = p.nameMap(s, lbl("function names"), p.lim.Functions+p.lim.Imports)
		case 2:
			var n uint32
			if n, err = s.count(lbl("functions with local names"), 2, p.lim.Functions); err != nil {
				return err
			}
			for i := uint32(0); i < n && err == nil; i++ {
				if _, err = s.u32(); err != nil {
					return err
				}
				at := s.pos
				var c uint32
				if c, err = s.count(lbl("local names"), 2, 0); err != nil {
					return err
				}
				localNames += uint64(c)
				if p.lim.TotalLocals > 0 && localNames > p.lim.TotalLocals+uint64(p.lim.Functions)*uint64(p.lim.Params) {
					return s.errAt(at, ErrCeiling, "more local names than the locals ceiling allows")
				}
				for j := uint32(0); j < c && err == nil; j++ {
					if _, err = s.u32(); err == nil {
						_, err = s.name("local name")
					}
				}
			}
		default:
			s.pos = s.end
		}
		if err != nil {
			return err
		}
		if s.pos != s.end {
			return s.err(ErrMalformed, "name subsection %d has %d bytes left over", id, s.end-s.pos)
		}
	}
	return nil
}

func (p *parser) nameMap(r *reader, what label, ceiling uint32) error {
	n, err := r.count(what, 2, ceiling)
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
		if _, err := r.name("function name"); err != nil {
			return err
		}
	}
	return nil
}
