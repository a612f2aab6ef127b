package wasmbin

// Reserved export names of an instrumented module (Instrument). A module
// that exports a name with ReservedPrefix is refused by the host.
const (
	ReservedPrefix = "nanovm:guard/"
	// StopExport is the appended global the host sets to 1 to stop the
	// instance.
	StopExport = ReservedPrefix + "stop"
	// StartExport is the module's start function, when it has one: the
	// instrumented copy has no start section, so the host runs it once
	// the stop flag is armed.
	StartExport = ReservedPrefix + "start"
)

// ExitBudget is how many instructions, counted as the rewriter weighs
// them (loopSite, bodyFacts.bodyWeight), a guest runs between two exits to
// Go, the instance's safe points for the garbage collector and the
// scheduler: each check subtracts its weight from a counter and exits when
// it runs out. A check that weighs ExitBudget or more exits every time.
// Measured (BenchmarkCloseOnContextDone, BenchmarkGoTool): see the rationale entry "Why are
// termination checks written into the guest instead of wazero's
// close-on-context-done?".
const ExitBudget = 1 << 16

// Instrumented says what Instrument added.
type Instrumented struct {
	// Start is set when the module had a start section, now exported as
	// StartExport.
	Start bool
	// Checks is how many calls of the check the bodies got.
	Checks int
	// Bodies is how many bodies changed.
	Bodies int
	// TableMax is the effective maximum of each defined table (HoldTables).
	TableMax []uint32
	// Globals names the exports of the module's mutable globals and of
	// the check's counter, for a resettable module (Resettable); nil for
	// any other. The stop flag is not among them.
	Globals []string
}

// Instrument returns a copy of wasm in which the guest checks, by itself,
// whether the host asked it to stop, and exits to Go every ExitBudget
// instructions or so (as the checks weigh them), with every defined table's maximum held to ceiling (as
// HoldTables). It appends, so that no index of the module moves:
//
//   - a mutable i32 global $stop (0), exported as StopExport, which only the
//     host writes (Parse refused any index of the module's own code,
//     exports, segments and constant expressions past its own counts, so no
//     guest instruction can name it), and a mutable i32 counter;
//   - an empty funcref table $t (minimum and maximum 0), unless the
//     module defines a table of its own, which serves as $t (the check
//     only grows it by 0, which changes nothing);
//   - a type (i32) -> () when the module has none;
//   - a function $check of that type, at the end of the function index
//     space: `global.get $stop; if unreachable end`, then its argument,
//     the weight of what ran since the last check, is taken from the
//     counter, and when that runs out the counter is reset and the check
//     runs `table.grow $t` by 0, which wazero runs in Go (a real call with a
//     stack check: a safe point for the collector);
//
// and it inserts `i32.const weight; call $check` after every loop's block
// type (so each iteration checks) and wherever GuardCalls would put its empty loop (the
// entries of bodies that call in trees or cycles, after the calls that can
// come back into a cycle). A start section is dropped and its function
// exported as StartExport instead, so that the host can run it once the
// flag is armed. A resettable module (Resettable) also gets each of its
// mutable globals and the counter exported under GlobalExportPrefix.
// Sections the module lacks are created in their place.
func (m *Module) Instrument(wasm []byte, ceiling uint32) ([]byte, Instrumented) {
	var info Instrumented
	checkFunc := m.importedFuncs + uint32(len(m.Funcs))
	stop := m.importedGlobals + uint32(len(m.Globals))
	counter := stop + 1
	// The check's table.grow by 0 needs a table; the module's first
	// defined one serves (an instance then builds one table fewer), else
	// an empty funcref table is appended.
	table := m.importedTables + uint32(len(m.Tables))
	nullRef := FuncRef
	ownTable := len(m.Tables) > 0
	if ownTable {
		table, nullRef = m.importedTables, m.Tables[0].Elem
	}
	typ := uint32(len(m.Types))
	for i, ft := range m.Types {
		if len(ft.Params) == 1 && ft.Params[0] == I32 && len(ft.Results) == 0 {
			typ = uint32(i)
			break
		}
	}

	// The check's body; its parameter is the weight of what the guest ran
	// since the last check.
	var body []byte
	body = append(body, 0x00) // no locals but the parameter
	body = append(body, 0x23)
	body = appendU32(body, stop)
	body = append(body, 0x04, 0x40, 0x00, 0x0b) // if unreachable end
	body = append(body, 0x23)
	body = appendU32(body, counter)
	body = append(body, 0x20, 0x00, 0x6b, 0x22, 0x00) // local.get 0 i32.sub local.tee 0
	body = append(body, 0x41, 0x00, 0x4c, 0x04, 0x40) // i32.const 0 i32.le_s if
	body = append(body, 0x41)
	body = appendS32(body, ExitBudget)
	body = append(body, 0x24)
	body = appendU32(body, counter)
	body = append(body, 0xd0, byte(nullRef), 0x41, 0x00, 0xfc, 0x0f) // ref.null of the table's type, i32.const 0, table.grow
	body = appendU32(body, table)
	body = append(body, 0x1a, 0x05, 0x20, 0x00, 0x24) // drop else local.get 0 global.set
	body = appendU32(body, counter)
	body = append(body, 0x0b, 0x0b)
	entry := appendU32(nil, uint32(len(body)))
	entry = append(entry, body...)

	check := func(dst []byte, weight uint32) []byte {
		dst = append(dst, 0x41)
		dst = appendS32(dst, int32(min(weight, ExitBudget)))
		dst = append(dst, 0x10)
		return appendU32(dst, checkFunc)
	}
	plans, cost := m.needGuards()
	var code []byte
	if m.codeSection[0] != 0 {
		code, info.Bodies = m.codeContent(wasm, plans, cost, check, true, 1)
		for i, p := range plans {
			info.Checks += len(p.after) + len(m.bodies[i].loops)
			if p.entry {
				info.Checks++
			}
		}
	} else {
		code = []byte{0x01}
	}
	code = append(code, entry...)

	// The new contents of the sections Instrument changes, by id.
	var ty []byte
	if typ == uint32(len(m.Types)) {
		ty = []byte{0x60, 0x01, byte(I32), 0x00}
	}
	var tables []byte
	var held []byte
	held, info.TableMax = m.HoldTables(wasm, ceiling)
	if m.TableSection[1] != 0 {
		if &held[0] != &wasm[0] {
			// HoldTables re-encoded the section in place of the original.
			tables = held[m.tableSectionHeader:]
		}
	}
	exports := append(name(nil, StopExport), byte(KindGlobal))
	exports = appendU32(exports, stop)
	added := uint32(1)
	if m.HasStart {
		info.Start = true
		exports = append(name(exports, StartExport), byte(KindFunc))
		exports = appendU32(exports, m.Start)
		added++
	}
	names, idx := m.resetGlobals(counter)
	for i, n := range names {
		exports = append(name(exports, n), byte(KindGlobal))
		exports = appendU32(exports, idx[i])
		added++
	}
	info.Globals = names
	global := func(v int32) []byte {
		g := []byte{byte(I32), 0x01, 0x41}
		g = appendS32(g, v)
		return append(g, 0x0b)
	}
	type change struct {
		id      byte
		added   uint32
		entries []byte
		whole   []byte // the section's content, when given in full
	}
	tableChange := change{id: 4, added: 1, entries: []byte{byte(FuncRef), 0x01, 0x00, 0x00}}
	if ownTable {
		tableChange = change{id: 4} // rewritten only if HoldTables changed it
	}
	changes := []change{
		{id: 1, entries: ty},
		{id: 3, added: 1, entries: appendU32(nil, typ)},
		tableChange,
		{id: 6, added: 2, entries: append(global(0), global(ExitBudget)...)},
		{id: 7, added: added, entries: exports},
		{id: 10, whole: code},
	}
	if len(ty) > 0 {
		changes[0].added = 1
	}
	done := make([]bool, len(changes))
	out := make([]byte, 0, len(wasm)+len(code)-(m.codeSection[1]-m.codeSection[0])+len(tables)+64)
	out = append(out, wasm[:8]...)
	emit := func(c change, content []byte) {
		if c.whole != nil {
			content = c.whole
		} else {
			n, rest := uint32(0), content
			if len(content) > 0 {
				r := &reader{b: content, end: len(content)}
				n, _ = r.u32()
				rest = content[r.pos:]
			}
			content = appendU32(nil, n+c.added)
			content = append(append(content, rest...), c.entries...)
		}
		out = append(out, c.id)
		out = appendU32(out, uint32(len(content)))
		out = append(out, content...)
	}
	present := map[byte]bool{}
	for r := (reader{b: wasm, pos: 8, end: len(wasm)}); r.pos < r.end; {
		id, _ := r.byte()
		size, _ := r.u32()
		present[id] = true
		r.pos += int(size)
	}
	flush := func(rank int) {
		for i, c := range changes {
			if !done[i] && !present[c.id] && sectionRank[c.id] < rank {
				emit(c, nil)
				done[i] = true
			}
		}
	}
	for r := (reader{b: wasm, pos: 8, end: len(wasm)}); r.pos < r.end; {
		idAt := r.pos
		id, _ := r.byte()
		size, _ := r.u32()
		content := wasm[r.pos : r.pos+int(size)]
		r.pos += int(size)
		if id == 0 {
			out = append(out, wasm[idAt:r.pos]...)
			continue
		}
		flush(sectionRank[id])
		if id == 8 {
			continue // the start section: exported instead
		}
		i := -1
		for j, c := range changes {
			if c.id == id {
				i = j
			}
		}
		if i < 0 {
			out = append(out, wasm[idAt:r.pos]...)
			continue
		}
		if id == 4 && tables != nil {
			tr := &reader{b: tables, pos: 1, end: len(tables)}
			n, _ := tr.u32()
			content = tables[tr.pos : tr.pos+int(n)]
		}
		emit(changes[i], content)
		done[i] = true
	}
	flush(1 << 30)
	return out, info
}

func name(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
