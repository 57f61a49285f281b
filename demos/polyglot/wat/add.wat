;; pf polyglot demo: a hand-written WebAssembly module exporting add.
(module
  (func $add (export "add") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.add))
