;; memhold makes its memory 20 MiB (321 pages), writing to every 4 KiB, then
;; passes its stdin (the call's arguments, {"url": "..."}) to
;; nanovm.http_request and waits for the answer, holding the memory
;; meanwhile. The memory-budget tests use the request as a barrier: the
;; server answers once the test has seen every call arrive or fail. A warm
;; (pooled) instance keeps its 20 MiB and grows no more.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "nanovm" "http_request" (func $http (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: iovec {buf, len}; 8: nread; 12: out_len; 1024..5120: stdin;
  ;; 8192..40960: the response.
  (func $run (result i32) (local $p i32) (local $n i32)
    (if (i32.lt_u (memory.size) (i32.const 321))
      (then
        (local.set $p (memory.grow (i32.sub (i32.const 321) (memory.size))))
        (if (i32.eq (local.get $p) (i32.const -1)) (then unreachable))
        (local.set $p (i32.shl (local.get $p) (i32.const 16)))
        (loop $touch
          (i32.store8 (local.get $p) (i32.const 1))
          (local.set $p (i32.add (local.get $p) (i32.const 4096)))
          (br_if $touch (i32.lt_u (local.get $p) (i32.const 0x1410000))))))
    ;; read all of stdin into 1024.. (at most 4 KiB)
    (local.set $n (i32.const 0))
    (block $done
      (loop $read
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
        (i32.store (i32.const 4) (i32.sub (i32.const 4096) (local.get $n)))
        (br_if $done (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $n (i32.add (local.get $n) (i32.load (i32.const 8))))
        (br_if $read (i32.lt_u (local.get $n) (i32.const 4096)))))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    (call $http (i32.const 1024) (local.get $n) (i32.const 8192) (i32.const 32768) (i32.const 12)))
  (func (export "_start")
    (if (call $run) (then unreachable)))
  (func (export "nanovm_call") (result i32)
    (call $run)))
