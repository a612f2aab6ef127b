package tools

import (
	"io"
	"sync"
)

// capWriter keeps up to max bytes. Past that, a strict writer fails the
// call (stdout: a truncated result would be wrong); a lenient one keeps
// the head and drops the rest (stderr: the log is best effort).
type capWriter struct {
	buf       []byte
	max       int
	strict    bool
	truncated bool
	state     *callState
	mu        sync.Mutex
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.buf); len(p) > room {
		w.buf = append(w.buf, p[:max(room, 0)]...)
		if w.strict {
			w.state.fail(detail(ErrOutputLimit, "stdout exceeded %d bytes", w.max))
			return max(room, 0), io.ErrShortWrite
		}
		w.truncated = true
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *capWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf
}
