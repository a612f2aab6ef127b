;; reset_probe is leak_probe for a module a fresh call may run in a kept
;; instance reset to its state after instantiation (tools/reset.go): it
;; changes no table and no segment, imports only stateless host functions,
;; and keeps its state in memory and mutable globals, none exported. Each
;; call prints what it finds, then leaves marks everywhere it can: a word
;; far into memory (0xF000), a mutable global, a counter in a data segment
;; (0x200, 42 at start), a stack pointer global (0x8000 at start) moved
;; down over a secret it pushed, a started flag (0x204) that traps a
;; second start as wasi-libc's _start does, and a global the start section
;; counts in. A call whose arguments are {"m":"<c>"} then ends its own
;; way: g grows memory by a page, x exits with 3, z exits with 0, t traps,
;; s spins until stopped, l loops long enough to take the termination
;; check's exit to Go (a table.grow by 0 of $t) and returns.
;; Output: {"mem":"..","global":"..","data":"..","sp":"..","stack":"..",
;; "inits":"..","tsize":N,"pages":N,"clock":"..","random":"..","stdin":".."}
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory 1)
  (table $t 3 funcref)
  (global $g (mut i64) (i64.const 0))
  (global $p (mut i32) (i32.const 0x4000)) ;; output cursor
  (global $sp (mut i32) (i32.const 0x8000)) ;; as clang's __stack_pointer
  (global $inits (mut i32) (i32.const 0))
  (func $f)
  (elem (i32.const 0) $f $f)
  (data (i32.const 0x100) "0123456789abcdef")
  (data (i32.const 0x200) "\2a\00\00\00")
  (data (i32.const 0x300) "{\"mem\":\"")
  (data (i32.const 0x310) "\",\"global\":\"")
  (data (i32.const 0x320) "\",\"data\":\"")
  (data (i32.const 0x330) "\",\"sp\":\"")
  (data (i32.const 0x340) "\",\"stack\":\"")
  (data (i32.const 0x350) "\",\"inits\":\"")
  (data (i32.const 0x360) "\",\"tsize\":")
  (data (i32.const 0x370) ",\"pages\":")
  (data (i32.const 0x380) ",\"clock\":\"")
  (data (i32.const 0x390) "\",\"random\":\"")
  (data (i32.const 0x3a0) "\",\"stdin\":\"")
  (data (i32.const 0x3b0) "\"}")
  (start $init)
  (func $init (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
  (func $lit (param $src i32) (param $n i32)
    (memory.copy (global.get $p) (local.get $src) (local.get $n))
    (global.set $p (i32.add (global.get $p) (local.get $n))))
  (func $digit (param $v i32)
    (i32.store8 (global.get $p) (i32.add (i32.const 0x30) (local.get $v)))
    (global.set $p (i32.add (global.get $p) (i32.const 1))))
  (func $hex (param $src i32) (param $n i32)
    (local $i i32) (local $b i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (local.get $src) (local.get $i))))
        (i32.store8 (global.get $p) (i32.load8_u (i32.add (i32.const 0x100) (i32.shr_u (local.get $b) (i32.const 4)))))
        (i32.store8 (i32.add (global.get $p) (i32.const 1)) (i32.load8_u (i32.add (i32.const 0x100) (i32.and (local.get $b) (i32.const 15)))))
        (global.set $p (i32.add (global.get $p) (i32.const 2)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  (func $run (result i32)
    (local $n i32) (local $mode i32) (local $i i32)
    (if (i32.load (i32.const 0x204)) (then unreachable)) ;; started twice
    (i32.store (i32.const 0x204) (i32.const 1))
    ;; stdin: one iovec {0x3000, 1024} at 0x2100, nread at 0x2108
    (i32.store (i32.const 0x2100) (i32.const 0x3000))
    (i32.store (i32.const 0x2104) (i32.const 1024))
    (drop (call $fd_read (i32.const 0) (i32.const 0x2100) (i32.const 1) (i32.const 0x2108)))
    (local.set $n (i32.load (i32.const 0x2108)))
    ;; {"m":"<c>" sets the mode
    (if (i64.eq (i64.and (i64.load (i32.const 0x3000)) (i64.const 0xffffffffffff)) (i64.const 0x223a226d227b))
      (then (local.set $mode (i32.load8_u (i32.const 0x3006)))))
    (i64.store (i32.const 0x2000) (global.get $g))
    (i32.store (i32.const 0x2008) (global.get $sp))
    (i32.store (i32.const 0x200c) (global.get $inits))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0x2010)))
    (drop (call $random (i32.const 0x2020) (i32.const 8)))
    (call $lit (i32.const 0x300) (i32.const 8))
    (call $hex (i32.const 0xF000) (i32.const 8))
    (call $lit (i32.const 0x310) (i32.const 12))
    (call $hex (i32.const 0x2000) (i32.const 8))
    (call $lit (i32.const 0x320) (i32.const 10))
    (call $hex (i32.const 0x200) (i32.const 4))
    (call $lit (i32.const 0x330) (i32.const 8))
    (call $hex (i32.const 0x2008) (i32.const 4))
    (call $lit (i32.const 0x340) (i32.const 11))
    (call $hex (i32.const 0x7ff0) (i32.const 8))
    (call $lit (i32.const 0x350) (i32.const 11))
    (call $hex (i32.const 0x200c) (i32.const 4))
    (call $lit (i32.const 0x360) (i32.const 10))
    (call $digit (table.size $t))
    (call $lit (i32.const 0x370) (i32.const 9))
    (call $digit (memory.size))
    (call $lit (i32.const 0x380) (i32.const 10))
    (call $hex (i32.const 0x2010) (i32.const 8))
    (call $lit (i32.const 0x390) (i32.const 12))
    (call $hex (i32.const 0x2020) (i32.const 8))
    (call $lit (i32.const 0x3a0) (i32.const 11))
    (call $hex (i32.const 0x3000) (local.get $n))
    (call $lit (i32.const 0x3b0) (i32.const 2))
    ;; stdout: one iovec {0x4000, p-0x4000} at 0x2200
    (i32.store (i32.const 0x2200) (i32.const 0x4000))
    (i32.store (i32.const 0x2204) (i32.sub (global.get $p) (i32.const 0x4000)))
    (drop (call $fd_write (i32.const 1) (i32.const 0x2200) (i32.const 1) (i32.const 0x2208)))
    ;; the marks, for the next call to look for
    (i64.store (i32.const 0xF000) (i64.const 0x3121544552434553)) ;; "SECRET!1"
    (global.set $g (i64.const 0x3221544552434553))                 ;; "SECRET!2"
    (i32.store (i32.const 0x200) (i32.add (i32.load (i32.const 0x200)) (i32.const 1)))
    (global.set $sp (i32.sub (global.get $sp) (i32.const 16)))     ;; a frame never popped
    (i64.store (global.get $sp) (i64.const 0x3421544552434553))    ;; "SECRET!4"
    (global.set $inits (i32.add (global.get $inits) (i32.const 100)))
    (if (i32.eq (local.get $mode) (i32.const 0x67)) (then (drop (memory.grow (i32.const 1)))))
    (if (i32.eq (local.get $mode) (i32.const 0x78)) (then (call $exit (i32.const 3))))
    (if (i32.eq (local.get $mode) (i32.const 0x7a)) (then (call $exit (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 0x74)) (then unreachable))
    (if (i32.eq (local.get $mode) (i32.const 0x73)) (then (loop $spin (br $spin))))
    (if (i32.eq (local.get $mode) (i32.const 0x6c))
      (then (loop $long
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $long (i32.lt_u (local.get $i) (i32.const 300000))))))
    (i32.const 0))
  (func (export "nanovm_call") (result i32) (call $run))
  (func (export "_start") (drop (call $run))))
