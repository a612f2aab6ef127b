package wasmbin

import (
	"cmp"
	"slices"
)

// bodyFacts is what GuardCalls needs of one function body: where its
// size, locals and instructions start and where it ends in the module's
// bytes, its instruction count, its calls, whether it calls through a
// table, and whether every entry passes a loop header first.
type bodyFacts struct {
	size, locals, code, end int
	instructions            uint64
	calls                   []callSite
	loops                   []loopSite
	indirect                bool
	entryChecked            bool
}

// callSite is one call of a body: the function called (indirectCall for
// call_indirect) and the offset of the instruction after it, with
// checkedBit set when a loop follows the call at once. Eight bytes: a
// module of nothing but calls holds one per two bytes.
type callSite struct {
	callee uint32
	at     uint32
}

// checkedBit marks, in callSite.at, a call a loop follows at once (a
// module is far below 2 GiB).
const checkedBit = 1 << 31

func (c callSite) after() int    { return int(c.at &^ checkedBit) }
func (c callSite) checked() bool { return c.at&checkedBit != 0 }

// loopSite is one loop of a body: the offset just after its block type,
// where a check goes, the offset after its end, and the instructions
// written inside it (nested loops included). With what the calls among
// them cost (needGuards: an unguarded callee at most guardBudget, one
// that checks by itself nothing), that is at most what an iteration runs
// before it passes another check: the check's weight. Twelve bytes: a loop
// takes at least three.
type loopSite struct {
	at, end, instructions uint32
}

// openBlock is a block open while a body is read (parser.open).
type openBlock struct {
	loop         uint32 // index in parser.loops, or noLoop
	instructions uint64 // the module's instruction count at the loop
}

// noLoop marks an openBlock that is not a loop.
const noLoop = ^uint32(0)

// indirectCall is the callee of a call_indirect.
const indirectCall = ^uint32(0)

// guardPlan is where one body gets the loop: at its entry, and after the
// calls listed (offsets in the module's bytes, ascending).
type guardPlan struct {
	entry bool
	after []uint32
}

// entryLoop is an empty loop, `loop end`: wazero compiled with
// WithCloseOnContextDone checks at every loop header whether the call's
// context is done, in Go. The host no longer compiles so: Instrument puts
// `call $check` where GuardCalls puts this loop (and at every loop
// header); GuardCalls stays as the plan's plainest form, for its tests.
var entryLoop = []byte{0x03, 0x40, 0x0b}

// guardBudget bounds, in instructions, the straight-line work one
// unguarded function may stand for, its unguarded callees included: past
// it, the function gets the entry check.
const guardBudget = 512

// GuardCalls returns wasm with an empty loop at the start of the bodies
// that need one, and how many it changed. wazero checks for a cancelled
// or timed-out call only at loop headers, so a guest that recurses, or
// whose functions call each other in a tree, without ever looping, runs
// for as long as it likes past its timeout, on a goroutine no garbage
// collection can stop: the whole process waits for it.
//
// A body needs the loop at its entry unless every entry already passes a
// loop header (a loop after straight-line code, as Go's functions begin)
// or what one call of it can run without passing a check is small: every
// function that can recurse (directly, through others, or through a
// table) gets it, and every one whose body plus what the functions it
// calls cost it (their own such totals, nothing for those that check at
// entry, the dearest function a table holds for a call through it),
// counted once per call site (a loop's header checks each iteration), is
// over guardBudget instructions. A function that can recurse also gets
// the loop after every call that can come back into its cycle, so that
// unwinding a deep recursion checks at every frame. Between two checks a
// guest then runs what a few frames of unguarded code stand for, at most
// guardBudget instructions each, plus what each non-recursive frame on
// the stack runs after its call, once per function.
//
// Only the code section is re-encoded; every other byte is copied as it
// is, and no index moves. It returns wasm itself when no body needs the
// loop.
func (m *Module) GuardCalls(wasm []byte) ([]byte, int) {
	plans, _ := m.needGuards()
	n, _ := countPlans(plans)
	if n == 0 {
		return wasm, 0
	}
	content, _ := m.codeContent(wasm, plans, nil, func(dst []byte, _ uint32) []byte { return append(dst, entryLoop...) }, false, 0)
	sec := m.codeSection
	out := make([]byte, 0, len(wasm)+len(content)-(sec[1]-sec[0])+8)
	out = append(out, wasm[:sec[0]]...)
	out = append(out, 10)
	out = appendU32(out, uint32(len(content)))
	out = append(out, content...)
	out = append(out, wasm[sec[1]:]...)
	return out, n
}

// codeContent returns the content of the code section (its vector of
// bodies, extra more than the module's) with a check inserted where plans
// say, and, with loops, after every loop's block type too; and how many
// bodies changed. check appends one check of the given weight (weigh,
// loopSite; cost is needGuards') to dst.
func (m *Module) codeContent(wasm []byte, plans []guardPlan, cost []uint64, check func(dst []byte, weight uint32) []byte, loops bool, extra uint32) ([]byte, int) {
	sec := m.codeSection
	inserts, changed := 0, 0
	for i, p := range plans {
		k := len(p.after)
		if p.entry {
			k++
		}
		if loops {
			k += len(m.bodies[i].loops)
		}
		if k > 0 {
			changed++
		}
		inserts += k
	}
	// A check is at most 11 bytes (i32.const and call, five-byte LEBs).
	content := make([]byte, 0, sec[1]-sec[0]+inserts*11+changed*4+8)
	at := sectionContent(wasm, sec[0])
	if extra > 0 {
		// The count is rewritten; what follows it is copied.
		r := &reader{b: wasm, pos: at, end: sec[1]}
		n, _ := r.u32()
		content = appendU32(content, n+extra)
		at = r.pos
	}
	var scratch []byte
	var prefix []uint64 // what the calls of a body cost, summed: prefix[k] for its first k
	for i, f := range m.bodies {
		p := plans[i]
		var lp []loopSite
		if loops {
			lp = f.loops
		}
		if len(p.after)+len(lp) == 0 && !p.entry {
			continue
		}
		content = append(content, wasm[at:f.size]...)
		var whole uint32
		if cost != nil {
			prefix = append(prefix[:0], 0)
			for _, cs := range f.calls {
				var c uint64
				if v := m.callNode(cs); v >= 0 {
					c = cost[v]
				}
				prefix = append(prefix, prefix[len(prefix)-1]+c)
			}
			whole = weigh(uint64(f.instructions), prefix[len(prefix)-1])
		}
		body := append(scratch[:0], wasm[f.locals:f.code]...)
		if p.entry {
			body = check(body, whole)
		}
		from := f.code
		a, l := p.after, lp
		first := true
		for len(a) > 0 || len(l) > 0 {
			var off, w uint32
			if len(l) == 0 || (len(a) > 0 && a[0] < l[0].at) {
				off, w, a = a[0], whole, a[1:]
			} else {
				off, w = l[0].at, weigh(uint64(l[0].instructions), callsCost(f.calls, prefix, l[0].at, l[0].end))
				l = l[1:]
				if first && f.entryChecked {
					// The loop every entry passes first checks for the
					// whole body: what the body runs after the loop, once
					// per call, is charged here.
					w = max(w, whole)
				}
				first = false
			}
			body = append(body, wasm[from:off]...)
			body = check(body, w)
			from = int(off)
		}
		body = append(body, wasm[from:f.end]...)
		content = appendU32(content, uint32(len(body)))
		content = append(content, body...)
		scratch = body
		at = f.end
	}
	content = append(content, wasm[at:sec[1]]...)
	return content, changed
}

// weigh is a check's weight: the instructions it stands for and what the
// calls among them cost, at most ExitBudget.
func weigh(instructions, calls uint64) uint32 {
	return uint32(min(instructions+calls, ExitBudget))
}

// callsCost is what the calls of calls (a body's, in order, prefix their
// summed costs) between the offsets from and to cost.
func callsCost(calls []callSite, prefix []uint64, from, to uint32) uint64 {
	lo, _ := slices.BinarySearchFunc(calls, from, func(c callSite, at uint32) int { return cmp.Compare(uint32(c.after()), at) })
	hi, _ := slices.BinarySearchFunc(calls, to, func(c callSite, at uint32) int { return cmp.Compare(uint32(c.after()), at) })
	return prefix[hi] - prefix[lo]
}

// changes reports whether p adds a loop to its body.
func (p guardPlan) changes() bool { return p.entry || len(p.after) > 0 }

// countPlans counts the bodies plans change and the loops they add.
func countPlans(plans []guardPlan) (bodies, loops int) {
	for _, p := range plans {
		if p.changes() {
			bodies++
		}
		if p.entry {
			loops++
		}
		loops += len(p.after)
	}
	return bodies, loops
}

// callNode is the node of the call graph (needGuards) a call site
// reaches: a defined function's index among the bodies, len(m.bodies) for
// a call through a table, or -1 for an import.
func (m *Module) callNode(c callSite) int {
	nf := len(m.bodies)
	switch {
	case c.callee == indirectCall:
		return nf
	case c.callee >= m.importedFuncs && int(c.callee-m.importedFuncs) < nf:
		return int(c.callee - m.importedFuncs)
	}
	return -1
}

// needGuards says, per defined function, where it needs the loop (see
// GuardCalls), and what a call of each node of the call graph (callNode)
// may run before it passes a check: 0 for a function that checks at its
// entry (or passes a loop first, or can recurse), at most guardBudget
// for the others.
func (m *Module) needGuards() ([]guardPlan, []uint64) {
	nf := len(m.bodies)
	base := m.importedFuncs
	// The call graph over the defined functions plus one node for the
	// table (index nf): a call through a table may reach any function an
	// element segment names.
	table := nf
	indirect := false
	for _, f := range m.bodies {
		indirect = indirect || f.indirect
	}
	var inTable []int
	if indirect {
		held := make([]bool, nf)
		for _, g := range m.tableFuncs {
			if g >= base && int(g-base) < nf && !held[g-base] {
				held[g-base] = true
				inTable = append(inTable, int(g-base))
			}
		}
		if m.anyInTable {
			inTable = inTable[:0]
			for i := range nf {
				inTable = append(inTable, i)
			}
		}
	}
	node := m.callNode
	succ := func(v int, fn func(int)) {
		if v == table {
			for _, g := range inTable {
				fn(g)
			}
			return
		}
		for _, c := range m.bodies[v].calls {
			if w := node(c); w >= 0 {
				fn(w)
			}
		}
	}
	degree := func(v int) int {
		if v == table {
			return len(inTable)
		}
		return len(m.bodies[v].calls)
	}
	edge := func(v, i int) int {
		if v == table {
			return inTable[i]
		}
		return node(m.bodies[v].calls[i])
	}
	comps := sccs(nf+1, degree, edge)
	inComp := make([]int, nf+1)
	for c, comp := range comps {
		for _, v := range comp {
			inComp[v] = c
		}
	}

	plans := make([]guardPlan, nf)
	// cost is what a call of v may run before a check, as its caller
	// counts it: 0 when v checks at its entry.
	cost := make([]uint64, nf+1)
	for c, comp := range comps { // callees first
		recursive := len(comp) > 1
		if !recursive {
			v := comp[0]
			succ(v, func(g int) { recursive = recursive || g == v })
		}
		for _, v := range comp {
			if v == table {
				// A call through the table costs the dearest function it
				// holds outside this component (those inside check).
				var worst uint64
				for _, g := range inTable {
					if inComp[g] != c {
						worst = max(worst, cost[g])
					}
				}
				cost[table] = worst
				continue
			}
			f := &m.bodies[v]
			p := &plans[v]
			if recursive {
				// Checked at every entry, and after every call that can
				// come back into the component: unwinding a deep
				// recursion runs what follows each such call once per
				// frame, with no entry to check at.
				p.entry = !f.entryChecked
				back := 0
				for _, cs := range f.calls {
					if w := node(cs); w >= 0 && inComp[w] == c && !cs.checked() {
						back++
					}
				}
				p.after = make([]uint32, 0, back)
				for _, cs := range f.calls {
					if w := node(cs); w >= 0 && inComp[w] == c && !cs.checked() {
						p.after = append(p.after, uint32(cs.after()))
					}
				}
				continue
			}
			if f.entryChecked {
				continue
			}
			total := f.instructions
			succ(v, func(g int) { total = min(total+cost[g], guardBudget+1) })
			if total > guardBudget {
				p.entry = true
				continue
			}
			cost[v] = total
		}
	}
	return plans, cost
}

// sccs returns the strongly connected components of the graph of n nodes
// whose node v has degree(v) edges, the i-th to edge(v, i) (or to no node
// when that is negative), callees before callers (Tarjan's order),
// without recursion (a module may hold 200,000 functions) and without
// copying the edges.
func sccs(n int, degree func(int) int, edge func(v, i int) int) [][]int {
	const unvisited = -1
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = unvisited
	}
	var stack []int
	var out [][]int
	next := 0
	type frame struct{ v, i int }
	var work []frame
	for root := range n {
		if index[root] != unvisited {
			continue
		}
		work = append(work[:0], frame{v: root})
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(work) > 0 {
			fr := &work[len(work)-1]
			if fr.i < degree(fr.v) {
				w := edge(fr.v, fr.i)
				fr.i++
				switch {
				case w < 0:
				case index[w] == unvisited:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					work = append(work, frame{v: w})
				case onStack[w]:
					low[fr.v] = min(low[fr.v], index[w])
				}
				continue
			}
			v := fr.v
			work = work[:len(work)-1]
			if len(work) > 0 {
				p := work[len(work)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				out = append(out, comp)
			}
		}
	}
	return out
}

// sectionContent returns where the content of the section whose id byte
// is at idAt starts (after its size).
func sectionContent(wasm []byte, idAt int) int {
	i := idAt + 1
	for wasm[i]&0x80 != 0 {
		i++
	}
	return i + 1
}
