package mcpserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"testing"
)

// Ensure ServeStdio bounds what one line can make it hold: a request of
// 8 times the limit (lowered to 1 MiB here; 32 MiB by default) is answered
// with -32600 under its id, having cost the server about the limit, not
// the line's size (before: 4 times it; a 64 MiB line allocated 272 MB), a line that is
// not JSON gets -32700 under the id it carries, and the stream goes on
// serving requests after both.
func TestStdioBoundsMessages(t *testing.T) {
	const limit = 1 << 20
	old := stdioLineLimit.Swap(limit)
	t.Cleanup(func() { stdioLineLimit.Store(old) })
	s := newServer(t, nil)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.ServeStdio(context.Background(), inR, outW)
		outW.Close()
	}()
	const huge = 8 * limit
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() {
		w := bufio.NewWriterSize(inW, 1<<20)
		w.WriteString(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}` + "\n")
		w.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
		w.WriteString(`{"jsonrpc":"2.0","id":7,"method":"ping","params":{"pad":"`)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for n := 0; n < huge; n += len(chunk) {
			w.Write(chunk)
		}
		w.WriteString(`"}}` + "\n")
		w.WriteString(`{"jsonrpc":"2.0","id":8,"method":"ping"}` + "\n")
		w.WriteString(`{"jsonrpc":"2.0","id":9,"method":` + "\n")
		w.WriteString(`{"jsonrpc":"2.0","id":10,"method":"ping"}` + "\n")
		w.Flush()
	}()
	got := map[float64]map[string]any{}
	rd := bufio.NewReader(outR)
	for len(got) < 5 {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read the answers: %v (have %v)", err, got)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		id, ok := m["id"].(float64)
		if !ok {
			id = -1 // an answer without an id: kept, to show it
		}
		got[id] = m
	}
	runtime.ReadMemStats(&after)
	code := func(id float64) float64 {
		e, _ := got[id]["error"].(map[string]any)
		c, _ := e["code"].(float64)
		return c
	}
	if code(7) != -32600 {
		t.Errorf("a %d-byte request: %v; want error -32600", huge, got[7])
	}
	if code(9) != -32700 {
		t.Errorf("a line that is not JSON: %v; want error -32700 under its id (answered without one: %v)", got[9], got[-1])
	}
	for _, id := range []float64{1, 8, 10} {
		if got[id]["error"] != nil || got[id]["result"] == nil {
			t.Errorf("request %v after the bad lines: %v", id, got[id])
		}
	}
	// The reader holds a line up to the limit before it knows the line
	// is over it; past that it only scans.
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d-byte line over a %d-byte limit: %d bytes allocated while it was served", huge, limit, alloc)
	if alloc > huge/2 {
		t.Errorf("serving a %d-byte line allocated %d bytes; want it skipped past the %d-byte limit, not held", huge, alloc, limit)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("ServeStdio: %v", err)
	}
}
