;; log_levels calls nanovm.log once per level, once with an unknown level
;; (logged as info) and once with a message out of bounds (dropped), then
;; returns null.
(module
  (import "nanovm" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "zero")
  (data (i32.const 8) "one")
  (data (i32.const 16) "two")
  (data (i32.const 24) "three")
  (data (i32.const 32) "nine")
  (func (export "_start")
    (call $log (i32.const 0) (i32.const 0) (i32.const 4))
    (call $log (i32.const 1) (i32.const 8) (i32.const 3))
    (call $log (i32.const 2) (i32.const 16) (i32.const 3))
    (call $log (i32.const 3) (i32.const 24) (i32.const 5))
    (call $log (i32.const 9) (i32.const 32) (i32.const 4))
    (call $log (i32.const 1) (i32.const 65530) (i32.const 100))))
