(module
  (func (export "f") (param i32) (result i32)
    local.get 0
    i64.const 1
    i32.add)
  (func (result f32)
    call 0))
