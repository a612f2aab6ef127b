package tools

import (
	"errors"
	"fmt"
	"testing"
)

// FuzzExtismKernel drives the kernel's memory functions with arbitrary
// offsets and sizes, as a hostile plugin would: every misuse must end in
// the kernel's own trap (errExtism), never another panic, and the budget
// charge must stay within the limit and go back in full at the end.
func FuzzExtismKernel(f *testing.F) {
	f.Add([]byte{0, 16, 1, 8, 2, 8, 3, 9, 4, 8})
	f.Add([]byte{0, 255, 0, 255, 5, 0, 6, 8, 7, 1})
	f.Add([]byte{3, 0, 4, 200, 1, 3})
	h := newHost(f, HostOptions{})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const limit = 4096
		st := &callState{tool: &Tool{lim: limits{stdout: 256, stderr: 256}, Manifest: Manifest{Config: map[string]string{"k": "v"}}}, cancel: func() {}}
		ek := newExtismCall(st, h, []byte(`{"in":1}`), limit)
		var last uint64
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%8, uint64(ops[i+1])
			func() {
				defer func() {
					if r := recover(); r != nil {
						if err, ok := r.(error); !ok || !errors.Is(err, errExtism) {
							t.Fatalf("op %d(%d): panic %v, want an errExtism trap", op, arg, r)
						}
					}
				}()
				switch op {
				case 0:
					last = ek.alloc(arg * 37)
				case 1:
					ek.free(arg)
				case 2:
					_ = ek.bytes(arg, 8)
				case 3:
					_ = ek.block(last + arg%3)
				case 4:
					ek.setOutput(last, arg)
				case 5:
					ek.setVar(ek.write([]byte(fmt.Sprint(arg))), last)
				case 6:
					_ = ek.inputBytes(arg, 4)
				case 7:
					last = ek.inputOffset()
				}
			}()
			if ek.charged > limit || uint64(len(ek.mem)) > limit {
				t.Fatalf("kernel holds %d bytes, charged %d, limit %d", len(ek.mem), ek.charged, limit)
			}
		}
		ek.release()
		if used := h.budget.used.Load(); used != 0 {
			t.Fatalf("budget holds %d bytes after release", used)
		}
	})
}
