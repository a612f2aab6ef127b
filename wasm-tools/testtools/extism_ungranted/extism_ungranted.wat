;; extism_ungranted: a hyper-mcp v2 plugin importing hyper-mcp's own
;; extism:host/user.create_message (never offered here) and
;; extism:host/env.http_request (only with nanovm:http). Registration
;; refuses it, naming both.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  (import "extism:host/user" "create_message" (func $create_message (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "list_tools") (result i32) (i32.const 0))
  (func (export "call_tool") (result i32)
    (drop (call $create_message (i64.const 0)))
    (i32.const 0)))
