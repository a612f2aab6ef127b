;; recurse calls itself without end, each frame with 100 i64 locals:
;; wazero grows its call stack in Go memory (outside the memory budget)
;; until it overflows. The server's calls in flight must bound that.
(module
  (memory (export "memory") 1)
  (func $rec (param $n i32)
    (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
           i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
           i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
           i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
           i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64)
    (if (local.get $n)
      (then (call $rec (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "_start") (call $rec (i32.const 1073741824))))
