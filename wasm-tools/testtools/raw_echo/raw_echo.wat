;; raw_echo prints its "raw" argument verbatim as its result, so a test can
;; make a guest print any bytes: JSON nested 10,000 deep, a 900,000-digit
;; number, a huge "error" object, text that is not JSON at all.
;;
;; Its arguments must be exactly {"raw":"..."} as encoding/json writes
;; them; it copies the string's bytes, undoing only the escapes \" and \\
;; (any other escape keeps the escaped character without the backslash),
;; so the payload should avoid <, >, & and control characters, which
;; encoding/json writes as \u00XX. Up to about 4 MiB of arguments.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 65)
  ;; 0: iovec {ptr, len}; 8: bytes read or written; 1024..: stdin.
  (func (export "_start")
    (local $end i32) (local $n i32) (local $i i32) (local $o i32) (local $stop i32) (local $c i32)
    (local.set $end (i32.const 1024))
    (block $eof
      (loop $read
        (i32.store (i32.const 0) (local.get $end))
        (i32.store (i32.const 4) (i32.sub (i32.const 4259840) (local.get $end)))
        (br_if $eof (i32.eqz (i32.load (i32.const 4))))
        (br_if $eof (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (local.set $end (i32.add (local.get $end) (local.get $n)))
        (br $read)))
    ;; {"raw":"  is 8 bytes, "} 2 bytes.
    (if (i32.lt_u (local.get $end) (i32.const 1034)) (then (return)))
    (local.set $i (i32.const 1032))
    (local.set $o (i32.const 1032))
    (local.set $stop (i32.sub (local.get $end) (i32.const 2)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $stop)))
        (local.set $c (i32.load8_u (local.get $i)))
        (if (i32.and (i32.eq (local.get $c) (i32.const 92))
                     (i32.lt_u (i32.add (local.get $i) (i32.const 1)) (local.get $stop)))
          (then
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $c (i32.load8_u (local.get $i)))))
        (i32.store8 (local.get $o) (local.get $c))
        (local.set $o (i32.add (local.get $o) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (i32.store (i32.const 0) (i32.const 1032))
    (i32.store (i32.const 4) (i32.sub (local.get $o) (i32.const 1032)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
