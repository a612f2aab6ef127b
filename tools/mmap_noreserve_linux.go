package tools

import "syscall"

// mapNoReserve keeps a mapped ceiling from counting against the system's
// commit limit until its pages are touched.
const mapNoReserve = syscall.MAP_NORESERVE
