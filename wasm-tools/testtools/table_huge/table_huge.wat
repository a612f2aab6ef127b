;; table_huge declares a table of 2^27 entries (1 GiB of references per
;; instance). The host refuses it at registration: a declared minimum
;; above the table ceiling.
(module
  (memory (export "memory") 1)
  (table 134217728 funcref)
  (func (export "_start")))
