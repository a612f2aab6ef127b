//go:build wasip1

package nanovm

import "unsafe"

//go:wasmimport nanovm log
func nanovmLog(level uint32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport nanovm secret_get
func nanovmSecretGet(ref unsafe.Pointer, refLen uint32, buf unsafe.Pointer, bufCap uint32, outLen unsafe.Pointer) uint32

//go:wasmimport nanovm http_request
func nanovmHTTPRequest(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, bufCap uint32, outLen unsafe.Pointer) uint32

//go:wasmimport nanovm state_get
func nanovmStateGet(buf unsafe.Pointer, bufCap uint32, outLen unsafe.Pointer) uint32

func hostLog(level uint32, msg string) {
	nanovmLog(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func secretGet(ref string, buf []byte) (uint32, uint32) {
	var n uint32
	st := nanovmSecretGet(unsafe.Pointer(unsafe.StringData(ref)), uint32(len(ref)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)), unsafe.Pointer(&n))
	return n, st
}

func httpRequest(req, buf []byte) (uint32, uint32) {
	var n uint32
	st := nanovmHTTPRequest(unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)), unsafe.Pointer(&n))
	return n, st
}

func stateGet(buf []byte) (uint32, uint32) {
	var n uint32
	st := nanovmStateGet(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)), unsafe.Pointer(&n))
	return n, st
}
