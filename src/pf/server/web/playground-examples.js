// The file name and the starting example of each playground language.

export const FILES = { c: "main.c", rust: "lib.rs", fortran: "main.f90", wat: "main.wat" };

export const EXAMPLES = {
  c: `/* Every function is exported: compile to wasm and call them on the right. */
int add(int a, int b) {
    return a + b;
}

int square(int x) {
    return x * x;
}

/* Traps (wasm "unreachable") when b is 0. */
int checked_div(int a, int b) {
    if (b == 0) {
        __builtin_trap();
    }
    return a / b;
}
`,
  rust: `// #[no_mangle] pub extern "C" functions become the module's exports.
#[no_mangle]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// fibonacci(90) still fits: u64 crosses to JavaScript as a BigInt.
#[no_mangle]
pub extern "C" fn fibonacci(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}
`,
  fortran: `! bind(C) functions are exported; the program runs as a WASI command (_start).
module playground
  use iso_c_binding
  implicit none
contains
  integer(c_int) function fact(n) bind(C, name="fact")
    integer(c_int), value :: n
    integer(c_int) :: i
    fact = 1
    do i = 2, n
      fact = fact * i
    end do
  end function fact
end module playground

program main
  use playground
  implicit none
  print *, "Hello from Fortran: fact(10) =", fact(10)
end program main
`,
  wat: `;; A hand-written module: div traps on division by zero.
(module
  (func (export "add") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.add)
  (func (export "div") (param $a i32) (param $b i32) (result i32)
    local.get $a
    local.get $b
    i32.div_s))
`,
};
