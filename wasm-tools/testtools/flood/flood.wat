;; flood writes to stdout forever, ignoring errors: the stdout cap must stop it.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; iovec at 0: buf=1024, len=65536 (the buffer is whatever memory holds)
  (data (i32.const 0) "\00\04\00\00\00\00\01\00")
  (func (export "_start")
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
      (br $l))))
