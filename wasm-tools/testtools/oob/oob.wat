;; oob reads far past the end of its memory.
(module
  (memory (export "memory") 1)
  (func (export "_start") (drop (i32.load (i32.const 0x7ffffff0)))))
