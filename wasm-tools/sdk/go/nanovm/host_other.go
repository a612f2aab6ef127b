//go:build !wasip1

package nanovm

import (
	"fmt"
	"os"
)

func hostLog(level uint32, msg string) { fmt.Fprintf(os.Stderr, "%d: %s\n", level, msg) }

func secretGet(string, []byte) (uint32, uint32) { return 0, noHost }

func httpRequest([]byte, []byte) (uint32, uint32) { return 0, noHost }

func stateGet([]byte) (uint32, uint32) { return 0, noHost }
