package wasmbin

// bodyFacts is what GuardCalls needs of one function body: where its
// size, locals and instructions start and where it ends in the module's
// bytes, its instruction count, the functions it calls directly, whether
// it calls through a table, and whether every entry passes a loop header
// first.
type bodyFacts struct {
	size, locals, code, end int
	instructions            uint64
	calls                   []uint32
	indirect                bool
	entryChecked            bool
}

// entryLoop is an empty loop, `loop end`: wazero (compiled with
// WithCloseOnContextDone) checks at every loop header whether the call's
// context is done, and the check is a call into Go, where the goroutine
// can also be stopped for a garbage collection.
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
// A body needs the loop unless every entry already passes a loop header
// (a loop after straight-line code, as Go's functions begin) or what one
// call of it can run without passing a check is small. Every function
// that can recurse (directly, through others, or through a table) gets
// it, every one a table holds when the module calls through tables, and
// every one whose body plus the bodies of the unguarded functions it
// calls, counted once per call site (a loop's header checks each
// iteration), is over guardBudget instructions. So between two checks a
// guest runs at most about guardBudget instructions per frame of
// unguarded callers, and those chains are at most guardBudget long.
//
// Only the code section is re-encoded; every other byte is copied as it
// is, and no index moves. It returns wasm itself when no body needs the
// loop.
func (m *Module) GuardCalls(wasm []byte) ([]byte, int) {
	need := m.needGuards()
	n := 0
	for _, b := range need {
		if b {
			n++
		}
	}
	if n == 0 {
		return wasm, 0
	}
	sec := m.codeSection
	var content []byte
	at := sectionContent(wasm, sec[0])
	for i, f := range m.bodies {
		if !need[i] {
			continue
		}
		content = append(content, wasm[at:f.size]...)
		content = appendU32(content, uint32(f.end-f.locals+len(entryLoop)))
		content = append(content, wasm[f.locals:f.code]...)
		content = append(content, entryLoop...)
		content = append(content, wasm[f.code:f.end]...)
		at = f.end
	}
	content = append(content, wasm[at:sec[1]]...)
	out := make([]byte, 0, len(wasm)+n*(len(entryLoop)+1)+8)
	out = append(out, wasm[:sec[0]]...)
	out = append(out, 10)
	out = appendU32(out, uint32(len(content)))
	out = append(out, content...)
	out = append(out, wasm[sec[1]:]...)
	return out, n
}

// needGuards says, per defined function, whether it needs the entry loop
// (see GuardCalls).
func (m *Module) needGuards() []bool {
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
	held := make([]bool, nf) // in inTable
	if indirect {
		if m.anyInTable {
			for i := range nf {
				inTable = append(inTable, i)
				held[i] = true
			}
		} else {
			for _, g := range m.tableFuncs {
				if g >= base && int(g-base) < nf && !held[g-base] {
					held[g-base] = true
					inTable = append(inTable, int(g-base))
				}
			}
		}
	}
	succ := func(v int, fn func(int)) {
		if v == table {
			for _, g := range inTable {
				fn(g)
			}
			return
		}
		for _, g := range m.bodies[v].calls {
			if g >= base && int(g-base) < nf {
				fn(int(g - base))
			}
		}
		if m.bodies[v].indirect {
			fn(table)
		}
	}
	comps := sccs(nf+1, succ)

	guarded := make([]bool, nf+1)
	need := make([]bool, nf)
	cost := make([]uint64, nf+1) // what a call of v costs its caller unchecked
	inComp := make([]int, nf+1)
	for c, comp := range comps {
		for _, v := range comp {
			inComp[v] = c
		}
	}
	for c, comp := range comps { // callees first
		recursive := len(comp) > 1
		if !recursive && comp[0] != table {
			v := comp[0]
			succ(v, func(g int) { recursive = recursive || g == v })
		}
		for _, v := range comp {
			if v == table {
				// Every function a table holds is guarded (below, as each
				// is reached), so a call through it costs nothing more.
				continue
			}
			f := &m.bodies[v]
			if f.entryChecked {
				// Checked at every entry already: free for its callers.
				guarded[v] = true
				continue
			}
			mustGuard := recursive || held[v]
			if !mustGuard {
				total := f.instructions
				succ(v, func(g int) {
					if inComp[g] != c && !guarded[g] {
						total = min(total+cost[g], guardBudget+1)
					}
				})
				cost[v] = total
				mustGuard = total > guardBudget
			}
			if mustGuard {
				guarded[v], cost[v] = true, 0
				need[v] = !f.entryChecked && (len(f.calls) > 0 || f.indirect || recursive)
			}
		}
	}
	return need
}

// sccs returns the strongly connected components of the graph of n nodes
// whose successors succ lists, callees before callers (Tarjan's order),
// without recursion (a module may hold 100,000 functions).
func sccs(n int, succ func(int, func(int))) [][]int {
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
	type frame struct {
		v     int
		succs []int
		i     int
	}
	successors := func(v int) []int {
		var s []int
		succ(v, func(g int) { s = append(s, g) })
		return s
	}
	for root := range n {
		if index[root] != unvisited {
			continue
		}
		work := []frame{{v: root, succs: successors(root)}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(work) > 0 {
			fr := &work[len(work)-1]
			if fr.i < len(fr.succs) {
				w := fr.succs[fr.i]
				fr.i++
				switch {
				case index[w] == unvisited:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					work = append(work, frame{v: w, succs: successors(w)})
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
