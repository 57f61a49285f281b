(module
  (func (export "consts") (result f64)
    i32.const -2147483648 drop
    i64.const 0xffff_ffff_ffff_ffff drop
    f32.const nan:0x200000 drop
    f32.const -inf drop
    f64.const 0x1.fffffffffffffp+1023 drop
    f64.const 1_000.000_1)
  (func (export "ops") (param i64) (result i32)
    (i32.extend8_s (i32.wrap_i64 (local.get 0)))
    (i32.trunc_sat_f64_s (f64.const 1e100))
    i32.add)
  (func (export "loop") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get $n)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (br_table 0 0 0 (local.get $acc) (i32.const 1))))
