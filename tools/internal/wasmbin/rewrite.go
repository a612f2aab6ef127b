package wasmbin

// HoldTables returns wasm with every defined table's maximum held to
// ceiling: a table that declares no maximum, or one above ceiling, gets
// ceiling (every declared minimum is at most ceiling once Parse accepted
// the module under a TableElements ceiling no larger). Only the table
// section is re-encoded; every other byte is copied as it is. It returns
// wasm itself when no table needs a change, and the effective maximum of
// each defined table.
func (m *Module) HoldTables(wasm []byte, ceiling uint32) ([]byte, []uint32) {
	maxes := make([]uint32, len(m.Tables))
	change := false
	for i, t := range m.Tables {
		maxes[i] = ceiling
		if t.HasMax && t.Max <= ceiling {
			maxes[i] = t.Max
			continue
		}
		change = true
	}
	if !change {
		return wasm, maxes
	}
	var content []byte
	content = appendU32(content, uint32(len(m.Tables)))
	for i, t := range m.Tables {
		content = append(content, byte(t.Elem), 0x01)
		content = appendU32(content, min(t.Min, maxes[i]))
		content = appendU32(content, maxes[i])
	}
	out := make([]byte, 0, len(wasm)+len(content)+8)
	out = append(out, wasm[:m.tableSectionHeader]...)
	out = append(out, 4)
	out = appendU32(out, uint32(len(content)))
	out = append(out, content...)
	out = append(out, wasm[m.TableSection[1]:]...)
	return out, maxes
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
