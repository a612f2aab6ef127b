;; extism_v1: an Extism plugin in hyper-mcp's v1 shape, written against the
;; extism:host/env imports directly. describe returns one tool, echo_v1;
;; call logs a line (nanovm:log) and answers a CallToolResult whose
;; structuredContent holds the input it was given ({"params": ...}).
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{\"tools\":[{\"name\":\"echo_v1\",\"description\":\"Echoes its call back (hyper-mcp v1 test plugin).\",\"inputSchema\":{\"type\":\"object\",\"properties\":{\"msg\":{\"type\":\"string\"}},\"required\":[\"msg\"]}}]}")
  (data (i32.const 2048) "{\"content\":[{\"type\":\"text\",\"text\":\"v1\"}],\"structuredContent\":{\"plugin\":\"v1\",\"input\":")
  (data (i32.const 3072) "}}")
  (data (i32.const 3584) "v1 call")
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
  (func (export "describe") (result i32)
    (call $output_set (call $kstr (i32.const 1024) (i32.const 185)) (i64.const 185))
    (i32.const 0))
  (func (export "call") (result i32)
    (call $log_info (call $kstr (i32.const 3584) (i32.const 7)))
    (call $echo (i32.const 2048) (i32.const 84) (i32.const 3072) (i32.const 2))
    (i32.const 0)))
