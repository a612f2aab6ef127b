;; table_grow declares a table with no maximum and grows it by 0xF0000000
;; entries (30 GiB). The host holds every table's maximum to its ceiling,
;; so table.grow returns -1, and the guest then traps on unreachable; had
;; the table grown, it would trap on a division by zero instead.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "_start")
    (if (i32.eq (table.grow $t (ref.null func) (i32.const 0xF0000000)) (i32.const -1))
      (then unreachable))
    (drop (i32.div_u (i32.const 1) (i32.const 0)))))
