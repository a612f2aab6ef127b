;; extism_hog: a hyper-mcp v1 plugin that breaks a limit, chosen by the
;; manifest's config.mode: "a" allocates kernel memory until refused, "g"
;; grows its linear memory until refused, "s" spins until the timeout; "c"
;; answers the WASI clock and 8 random bytes as hex (to show both are
;; deterministic unless wasi:clock and wasi:random are granted).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{\"tools\":[{\"name\":\"hog\",\"description\":\"Breaks a limit: config.mode a (kernel alloc), g (memory.grow), s (spin).\"}]}")
  (data (i32.const 3584) "mode")
  (data (i32.const 4096) "{\"content\":[],\"structuredContent\":{\"hex\":\"")
  (data (i32.const 4300) "0123456789abcdef")
  ;; kstr copies len bytes of guest memory at ptr into a new kernel block.
  (func $kstr (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.get $off))
  ;; echo sets the output to prefix ++ input ++ suffix.
  (func $echo (param $p i32) (param $plen i32) (param $s i32) (param $slen i32)
    (local $n i64) (local $off i64) (local $i i64) (local $at i64)
    (local.set $n (call $input_length))
    (local.set $off (call $alloc (i64.add (i64.add (i64.extend_i32_u (local.get $plen)) (local.get $n)) (i64.extend_i32_u (local.get $slen)))))
    (local.set $at (local.get $off))
    (local.set $i (i64.const 0))
    (block $d1 (loop $l1
      (br_if $d1 (i64.ge_u (local.get $i) (i64.extend_i32_u (local.get $plen))))
      (call $store_u8 (local.get $at) (i32.load8_u (i32.add (local.get $p) (i32.wrap_i64 (local.get $i)))))
      (local.set $at (i64.add (local.get $at) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l1)))
    (local.set $i (i64.const 0))
    (block $d2 (loop $l2
      (br_if $d2 (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (local.get $at) (call $input_load_u8 (local.get $i)))
      (local.set $at (i64.add (local.get $at) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l2)))
    (local.set $i (i64.const 0))
    (block $d3 (loop $l3
      (br_if $d3 (i64.ge_u (local.get $i) (i64.extend_i32_u (local.get $slen))))
      (call $store_u8 (local.get $at) (i32.load8_u (i32.add (local.get $s) (i32.wrap_i64 (local.get $i)))))
      (local.set $at (i64.add (local.get $at) (i64.const 1)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l3)))
    (call $output_set (local.get $off) (i64.sub (local.get $at) (local.get $off))))
;; hex16 writes the 16 bytes at 0 as 32 hex digits at 4138, after the
  ;; 42-byte prefix at 4096, and "}} after them.
  (func $hex16
    (local $i i32) (local $b i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.const 16)))
      (local.set $b (i32.load8_u (local.get $i)))
      (i32.store8 (i32.add (i32.const 4138) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 4300) (i32.shr_u (local.get $b) (i32.const 4)))))
      (i32.store8 (i32.add (i32.const 4139) (i32.shl (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 4300) (i32.and (local.get $b) (i32.const 15)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store8 (i32.const 4170) (i32.const 34))
    (i32.store8 (i32.const 4171) (i32.const 125))
    (i32.store8 (i32.const 4172) (i32.const 125)))
  (func (export "describe") (result i32)
    (call $output_set (call $kstr (i32.const 1024) (i32.const 115)) (i64.const 115))
    (i32.const 0))
  (func (export "call") (result i32)
    (local $mode i32)
    (local.set $mode (call $load_u8 (call $config_get (call $kstr (i32.const 3584) (i32.const 4)))))
    (if (i32.eq (local.get $mode) (i32.const 99)) ;; c
      (then
        (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 0)))
        (drop (call $random_get (i32.const 8) (i32.const 8)))
        (call $hex16)
        (call $output_set (call $kstr (i32.const 4096) (i32.const 77)) (i64.const 77))
        (return (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 97)) ;; a
      (then (loop $a (drop (call $alloc (i64.const 1048576))) (br $a))))
    (if (i32.eq (local.get $mode) (i32.const 103)) ;; g
      (then (loop $g (br_if $g (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)))
    (loop $s (br $s))
    (i32.const 0)))
