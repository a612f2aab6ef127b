package wasmbin

import "fmt"

// GlobalExportPrefix starts the reserved export names under which
// Instrument exports, for a resettable module (Resettable), each mutable
// global of the module and the check's counter, so that the host can read
// and restore them through the runtime's public API.
const GlobalExportPrefix = ReservedPrefix + "global/"

// Resettable reports why an instance of m could not be reset to the state
// it had right after instantiation by restoring its memory's contents and
// its mutable globals alone, or "" when it can. By the WebAssembly spec an
// instance's mutable state is its memories (contents and size), globals,
// tables (contents and size) and the dropped flags of its data and element
// segments. m qualifies when its own code holds no instruction that changes
// a table or a segment's flag (table.set, table.grow, table.fill,
// table.copy, table.init, elem.drop, data.drop; and memory.init, which
// reads segments), it imports no memory, table or global (whose state
// another module could hold), and it defines exactly one memory. Its
// memory's size is not fixed by this: the host sees a memory.grow and
// discards the instance. The functions m imports are the host's to judge.
//
// The check Instrument appends grows a table by 0, which by the spec (and
// in wazero, which returns before touching the table) changes nothing.
func (m *Module) Resettable() string {
	switch {
	case m.tableWrite != "":
		return fmt.Sprintf("its code changes a table (%s)", m.tableWrite)
	case m.segmentOp != "":
		return fmt.Sprintf("its code uses a segment at run time (%s)", m.segmentOp)
	case m.importedMemories > 0 || m.importedTables > 0 || m.importedGlobals > 0:
		return "it imports a memory, table or global"
	case len(m.Memories) != 1:
		return fmt.Sprintf("it defines %d memories, not one", len(m.Memories))
	}
	return ""
}

// resetGlobals is the exports Instrument adds for a resettable module:
// each defined mutable global, then the counter, by name and index.
func (m *Module) resetGlobals(counter uint32) (names []string, idx []uint32) {
	if m.Resettable() != "" {
		return nil, nil
	}
	for i, g := range m.Globals {
		if g.Mutable {
			names = append(names, fmt.Sprintf("%s%d", GlobalExportPrefix, i))
			idx = append(idx, m.importedGlobals+uint32(i))
		}
	}
	names = append(names, GlobalExportPrefix+"counter")
	idx = append(idx, counter)
	return names, idx
}
