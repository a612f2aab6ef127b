package store

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vmSizeKiB is the process's virtual size from /proc (Linux), 0 elsewhere.
func vmSizeKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmSize:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// TestDamagedFreelistRefused ensures a freelist page whose element count
// runs past its end is refused before bbolt opens the file. bbolt's Open
// allocates that many page ids: a count of 2^40 was a fatal out-of-memory
// of the whole process, and one past int's range a panic inside Open after
// the file was mapped, which left the journal's far-ahead mapping (64 GiB
// of address space) behind at every attempt, until a process retrying the
// file (a fuzz worker) could map nothing more and died.
func TestDamagedFreelistRefused(t *testing.T) {
	if vmSizeKiB() == 0 {
		t.Skip("needs /proc/self/status")
	}
	path := filepath.Join(t.TempDir(), "good.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := FileAfterClose(t, db)
	// The newer meta page names the freelist page; give that page an
	// element count far past its end.
	const ps = 4096
	meta := good[16:]
	// (The txid is at offset 48 of the meta; 56 is its checksum.)
	if other := good[ps+16:]; binary.LittleEndian.Uint64(other[48:]) > binary.LittleEndian.Uint64(meta[48:]) {
		meta = other
	}
	freelist := int(binary.LittleEndian.Uint64(meta[32:])) * ps
	before := vmSizeKiB()
	for i := range 20 {
		bad := append([]byte(nil), good...)
		binary.LittleEndian.PutUint16(bad[freelist+10:], 0xFFFF)
		binary.LittleEndian.PutUint64(bad[freelist+16:], []uint64{1 << 40, ^uint64(0) - 15}[i%2])
		p := filepath.Join(t.TempDir(), "bad.db")
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(p, nil)
		if err == nil {
			db.Close()
			t.Fatal("Open accepted a freelist page whose count runs past the file")
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
	}
	if grew := vmSizeKiB() - before; grew > 1<<20 {
		t.Fatalf("20 failed Opens grew the address space by %d MiB", grew>>10)
	}
}
