package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanovm/nano-vm-mcp/store"
)

// bbolt's page layout (go.etcd.io/bbolt/internal/common/page.go): a
// 16-byte header (id, flags, count, overflow), then count elements; a
// branch element is 16 bytes (pos, ksize, pgid), its key pos bytes after
// the element's own start.
const (
	boltPageHeader  = 16
	boltBranchFlag  = 0x01
	boltBranchElem  = 16
	boltDefaultPage = 4096
)

// stepBranchKeys returns, for every branch page of the steps bucket in
// the bbolt file data, the file offsets of its elements' keys (the first
// element's excepted: it is where every seek below the second lands).
func stepBranchKeys(data []byte, pageSize int) []int {
	var offs []int
	for p := 0; p+pageSize <= len(data); p += pageSize {
		page := data[p : p+pageSize]
		if binary.LittleEndian.Uint16(page[8:10])&boltBranchFlag == 0 {
			continue
		}
		count := int(binary.LittleEndian.Uint16(page[10:12]))
		if count < 2 || boltPageHeader+count*boltBranchElem > pageSize {
			continue
		}
		key := func(i int) (int, []byte) {
			e := boltPageHeader + i*boltBranchElem
			pos := int(binary.LittleEndian.Uint32(page[e : e+4]))
			n := int(binary.LittleEndian.Uint32(page[e+4 : e+8]))
			if e+pos+n > pageSize {
				return 0, nil
			}
			return p + e + pos, page[e+pos : e+pos+n]
		}
		if _, k := key(0); !bytes.HasPrefix(k, []byte("exec-")) || bytes.IndexByte(k, 0) < 0 {
			continue
		}
		for i := 1; i < count; i++ {
			if off, k := key(i); k != nil {
				offs = append(offs, off)
			}
		}
	}
	return offs
}

// Ensure a damaged branch page of the steps bucket cannot make verify
// walk the trace ids for ever: a branch key rewritten so that a seek past
// one run's steps lands back on them is reported as corruption (before
// the check, the walk sought the same key again and again). Every branch
// key of the file is damaged in turn, each in a copy; each verify must
// end, and at least one of them must meet the seek going back.
func TestVerifySeekBackIsCorruption(t *testing.T) {
	path := twoRunChain(t, 1200)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offs := stepBranchKeys(data, boltDefaultPage)
	if len(offs) == 0 {
		t.Fatal("no branch page of the steps bucket in the file: the test writes too few steps")
	}
	wentBack := 0
	for _, off := range offs {
		damaged := bytes.Clone(data)
		damaged[off] = '~' // sorts after every "exec-" key
		p := filepath.Join(t.TempDir(), "nano.db")
		if err := os.WriteFile(p, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			db, err := store.Open(p, &store.Options{NoSync: true})
			if err != nil {
				done <- err
				return
			}
			defer db.Close()
			_, err = db.VerifyChain(context.Background(), "")
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil && strings.Contains(err.Error(), "went back") {
				if !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("a seek going back: %v; want ErrCorrupt", err)
				}
				wentBack++
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("verify of the file with the branch key at offset %d damaged did not end", off)
		}
	}
	t.Logf("%d branch keys damaged in turn, %d sent a seek back", len(offs), wentBack)
	if wentBack == 0 {
		t.Fatal("no damaged branch key sent a seek back: the test no longer exercises the check")
	}
}
