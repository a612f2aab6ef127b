;; memtouch grows its memory 1 MiB at a time, writing to every 4 KiB of the
;; new memory so that all of it really becomes resident in the host, until
;; the host refuses, then traps. The memory-ceiling and memory-budget tests
;; run it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (local $a i32) (local $end i32)
    (loop $grow
      (local.set $a (memory.grow (i32.const 16)))
      (if (i32.eq (local.get $a) (i32.const -1)) (then unreachable))
      (local.set $a (i32.shl (local.get $a) (i32.const 16)))
      (local.set $end (i32.add (local.get $a) (i32.const 0x100000)))
      (loop $touch
        (i32.store8 (local.get $a) (i32.const 1))
        (local.set $a (i32.add (local.get $a) (i32.const 4096)))
        (br_if $touch (i32.lt_u (local.get $a) (local.get $end))))
      (br $grow))))
