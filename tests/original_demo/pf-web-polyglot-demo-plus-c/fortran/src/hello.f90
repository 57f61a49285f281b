! Fortran with a bind(C) export the page calls: built to /wasm/fortran/hello.wasm.
module hello
  use iso_c_binding
  implicit none
contains
  integer(c_int) function square(n) bind(C, name="square")
    integer(c_int), value :: n
    square = n * n
  end function square
end module hello
