//go:build nvmpagestats

package store

// Page counts of journaled commits, for measuring layouts (a developer's
// tool, not in normal builds): build with -tags nvmpagestats and set
// NVM_PAGESTATS=FILE; Close appends to FILE the commits, the pages bbolt
// wrote (Tx.Stats().Write: overflow pages and the meta page included),
// its splits and spills, and per bucket the leaf and branch nodes the
// commits touched (read from bbolt's unexported node cache before each
// commit), the puts and the bytes put. docs/performance.md quotes it.

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"sync"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

var pageStats = struct {
	sync.Mutex
	on             bool
	commits        int64
	writes         int64
	nodes          map[string]int64
	branch         map[string]int64
	splits, spills int64
	bytes          map[string]int64
	puts           map[string]int64
	root           int64
}{on: os.Getenv("NVM_PAGESTATS") != "", nodes: map[string]int64{}, branch: map[string]int64{}, bytes: map[string]int64{}, puts: map[string]int64{}}

func unexp(v reflect.Value) reflect.Value {
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

func statsBefore(tx *bolt.Tx) {
	if !pageStats.on {
		return
	}
	pageStats.Lock()
	defer pageStats.Unlock()
	root := unexp(reflect.ValueOf(tx).Elem().FieldByName("root"))
	rn := unexp(root.FieldByName("nodes"))
	pageStats.root += int64(rn.Len())
	bs := unexp(root.FieldByName("buckets"))
	it := bs.MapRange()
	for it.Next() {
		b := it.Value().Elem()
		nm := unexp(b.FieldByName("nodes"))
		mi := nm.MapRange()
		for mi.Next() {
			nd := mi.Value().Elem()
			if unexp(nd.FieldByName("isLeaf")).Bool() {
				pageStats.nodes[it.Key().String()]++
			} else {
				pageStats.branch[it.Key().String()]++
			}
		}
	}
}

func statsOp(bucket, k, v []byte) {
	if !pageStats.on {
		return
	}
	pageStats.Lock()
	pageStats.bytes[string(bucket)] += int64(len(k) + len(v))
	pageStats.puts[string(bucket)]++
	pageStats.Unlock()
}

func statsAfter(tx *bolt.Tx) {
	if !pageStats.on {
		return
	}
	pageStats.Lock()
	pageStats.commits++
	st := tx.Stats()
	pageStats.writes += st.GetWrite()
	pageStats.splits += st.GetSplit()
	pageStats.spills += st.GetSpill()
	pageStats.Unlock()
}

func dumpPageStats(db *DB) {
	if !pageStats.on {
		return
	}
	pageStats.Lock()
	defer pageStats.Unlock()
	f, _ := os.OpenFile(os.Getenv("NVM_PAGESTATS"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	defer f.Close()
	pwrites := -1
	if db.pw != nil {
		pwrites = db.pw.writes
	}
	fmt.Fprintf(f, "commits %d pages_written %d pwrites %d root_nodes %d splits %d spills %d\n", pageStats.commits, pageStats.writes, pwrites, pageStats.root, pageStats.splits, pageStats.spills)
	var names []string
	for k := range pageStats.nodes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(f, "  %-18s leaves %8d branches %6d puts %8d bytes %10d\n", k, pageStats.nodes[k], pageStats.branch[k], pageStats.puts[k], pageStats.bytes[k])
	}
}
