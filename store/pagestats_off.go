//go:build !nvmpagestats

package store

// No page counting in normal builds: see pagestats_on.go.

import bolt "go.etcd.io/bbolt"

func statsBefore(*bolt.Tx)   {}
func statsAfter(*bolt.Tx)    {}
func statsOp(_, _, _ []byte) {}
func dumpPageStats(*DB)      {}
