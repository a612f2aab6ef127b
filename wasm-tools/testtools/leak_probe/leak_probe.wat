;; leak_probe reads what an earlier call could have left behind in the
;; state an instance starts with, prints it, then leaves secrets there: a
;; word far into linear memory (0xF000), a mutable global, a table slot
;; (table 0, slot 1, null at start), a data segment's bytes it overwrites
;; (0x200, "pristine" at start), plus the first clock reading, the first
;; random bytes and all of stdin. Two calls of a fresh tool must print the
;; same (but stdin, their own arguments).
;; Output: {"mem":"..","global":"..","table":N,"data":"..","clock":"..","random":"..","stdin":".."}
;; (hex; table 1 when slot 1 is set).
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table $t 2 funcref)
  (global $g (mut i64) (i64.const 0))
  (global $p (mut i32) (i32.const 0x4000)) ;; output cursor
  (func $f)
  (elem declare func $f)
  (data (i32.const 0x100) "0123456789abcdef")
  (data (i32.const 0x200) "pristine")
  (data (i32.const 0x300) "{\"mem\":\"")
  (data (i32.const 0x310) "\",\"global\":\"")
  (data (i32.const 0x320) "\",\"table\":")
  (data (i32.const 0x330) ",\"data\":\"")
  (data (i32.const 0x340) "\",\"clock\":\"")
  (data (i32.const 0x350) "\",\"random\":\"")
  (data (i32.const 0x360) "\",\"stdin\":\"")
  (data (i32.const 0x370) "\"}")
  (func $lit (param $src i32) (param $n i32)
    (memory.copy (global.get $p) (local.get $src) (local.get $n))
    (global.set $p (i32.add (global.get $p) (local.get $n))))
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
    (local $n i32)
    (global.set $p (i32.const 0x4000)) ;; a pooled instance keeps $p
    ;; stdin: one iovec {0x3000, 1024} at 0x2100, nread at 0x2108
    (i32.store (i32.const 0x2100) (i32.const 0x3000))
    (i32.store (i32.const 0x2104) (i32.const 1024))
    (drop (call $fd_read (i32.const 0) (i32.const 0x2100) (i32.const 1) (i32.const 0x2108)))
    (local.set $n (i32.load (i32.const 0x2108)))
    (i64.store (i32.const 0x2000) (global.get $g))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0x2010)))
    (drop (call $random (i32.const 0x2020) (i32.const 8)))
    (call $lit (i32.const 0x300) (i32.const 8))
    (call $hex (i32.const 0xF000) (i32.const 8))
    (call $lit (i32.const 0x310) (i32.const 12))
    (call $hex (i32.const 0x2000) (i32.const 8))
    (call $lit (i32.const 0x320) (i32.const 10))
    (i32.store8 (global.get $p) (i32.sub (i32.const 0x31) (ref.is_null (table.get $t (i32.const 1)))))
    (global.set $p (i32.add (global.get $p) (i32.const 1)))
    (call $lit (i32.const 0x330) (i32.const 9))
    (call $hex (i32.const 0x200) (i32.const 8))
    (call $lit (i32.const 0x340) (i32.const 11))
    (call $hex (i32.const 0x2010) (i32.const 8))
    (call $lit (i32.const 0x350) (i32.const 12))
    (call $hex (i32.const 0x2020) (i32.const 8))
    (call $lit (i32.const 0x360) (i32.const 11))
    (call $hex (i32.const 0x3000) (local.get $n))
    (call $lit (i32.const 0x370) (i32.const 2))
    ;; the secrets, for the next call to look for
    (i64.store (i32.const 0xF000) (i64.const 0x3121544552434553)) ;; "SECRET!1"
    (global.set $g (i64.const 0x3221544552434553))                 ;; "SECRET!2"
    (table.set $t (i32.const 1) (ref.func $f))
    (i64.store (i32.const 0x200) (i64.const 0x3321544552434553))  ;; "SECRET!3"
    ;; stdout: one iovec {0x4000, p-0x4000} at 0x2200
    (i32.store (i32.const 0x2200) (i32.const 0x4000))
    (i32.store (i32.const 0x2204) (i32.sub (global.get $p) (i32.const 0x4000)))
    (drop (call $fd_write (i32.const 1) (i32.const 0x2200) (i32.const 1) (i32.const 0x2208)))
    (i32.const 0))
  (func (export "nanovm_call") (result i32) (call $run))
  (func (export "_start") (drop (call $run))))
