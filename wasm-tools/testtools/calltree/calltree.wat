;; calltree never loops: each call of $f makes two calls of itself, a tree
;; 2^40 calls wide and only 40 deep (no stack ceiling is near). wazero
;; checks a call's timeout only at loop headers, so without the entry
;; check the host adds (wasmbin.GuardCalls) it ran for hours past its
;; timeout, and no garbage collection could stop the world meanwhile.
(module
  (memory (export "memory") 1)
  (func $f (param $n i32)
    (if (local.get $n)
      (then
        (call $f (i32.sub (local.get $n) (i32.const 1)))
        (call $f (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "_start") (call $f (i32.const 40)))
  (func (export "nanovm_call") (result i32) (call $f (i32.const 40)) (i32.const 0)))
