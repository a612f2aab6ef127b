;; memtouch grows its memory 1 MiB at a time, writing to every new page so
;; that each one really costs the host a resident page, until the host
;; refuses, then traps. The memory-ceiling and memory-budget tests run it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (local $p i32) (local $end i32)
    (loop $grow
      (local.set $p (memory.grow (i32.const 16)))
      (if (i32.eq (local.get $p) (i32.const -1)) (then unreachable))
      (local.set $end (i32.add (local.get $p) (i32.const 16)))
      (loop $touch
        (i32.store8 (i32.shl (local.get $p) (i32.const 16)) (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $touch (i32.lt_u (local.get $p) (local.get $end))))
      (br $grow))))
