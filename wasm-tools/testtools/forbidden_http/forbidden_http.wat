;; forbidden_http imports nanovm.http_request although its manifest does not
;; ask for nanovm:http: registration must name the import and refuse it.
(module
  (import "nanovm" "http_request" (func $http (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $http (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
