;; loop never ends: the call's timeout must kill it.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
