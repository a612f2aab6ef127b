;; table_fill declares the largest table the default ceiling allows
;; (1,000,000 entries, 8 MB per instance), fills it, and then tries to grow
;; it by 0xF0000000 entries: table.grow returns -1 and the guest traps on
;; unreachable. Many concurrent calls stay within their ceilings.
(module
  (memory (export "memory") 1)
  (table $t 1000000 funcref)
  (func $f)
  (elem declare func $f)
  (func (export "_start")
    (table.fill $t (i32.const 0) (ref.func $f) (i32.const 1000000))
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 0xF0000000)) (i32.const -1))
      (then unreachable))
    (drop (i32.div_u (i32.const 1) (i32.const 0)))))
