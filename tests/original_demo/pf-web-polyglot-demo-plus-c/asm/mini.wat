;; WebAssembly text in asm/, as the original keeps it: built to /wasm/asm/mini.wasm.
(module
  (func (export "answer") (result i32)
    i32.const 42)
  (func (export "add") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.add))
