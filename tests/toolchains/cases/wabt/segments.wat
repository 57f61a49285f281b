(module
  (import "env" "mem" (memory 1 2))
  (import "env" "log" (func $log (param i32 i32)))
  (import "env" "base" (global $base i32))
  (import "env" "table" (table 2 funcref))
  (global $counter (mut i32) (i32.const 0))
  (global (export "answer") i64 (i64.const 42))
  (data (global.get $base) "at base")
  (data (i32.const 16) "abc" "def\n")
  (elem (i32.const 0) $start $log)
  (func $start
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (call $log (i32.const 16) (i32.const 7)))
  (start $start))
