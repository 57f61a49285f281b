(module
  (type $pair (func (result i32 i64)))
  (func $swap (export "swap") (param i32 i64) (result i64 i32)
    local.get 1
    local.get 0)
  (func (export "pair") (type $pair)
    i32.const 1
    i64.const 2)
  (func (export "sum") (result i32)
    i32.const 40
    i32.const 2
    (block (param i32 i32) (result i32) i32.add))
  (func (export "ifs") (param i32) (result i32 i32)
    (if (result i32 i32) (local.get 0)
      (then (i32.const 1) (i32.const 2))
      (else (i32.const 3) (i32.const 4)))))
