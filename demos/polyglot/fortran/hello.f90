! Fortran demo for pf: a main program that prints (a WASI command under wasm) plus
! bind(C) functions that JavaScript or wasmtime can call directly.
module demo_math
  use iso_c_binding
  implicit none
contains
  integer(c_int) function add(a, b) bind(C, name="add")
    integer(c_int), value :: a, b
    add = a + b
  end function add

  integer(c_int) function fact(n) bind(C, name="fact")
    integer(c_int), value :: n
    integer(c_int) :: i
    fact = 1
    do i = 2, n
      fact = fact * i
    end do
  end function fact

  real(c_double) function dsum(n, x) bind(C, name="dsum")
    integer(c_int), value :: n
    real(c_double), intent(in) :: x(n)
    integer :: i
    dsum = 0
    do i = 1, n
      dsum = dsum + x(i)
    end do
  end function dsum
end module demo_math

program hello
  use demo_math
  implicit none
  print *, "Hello from Fortran", 42
  print *, "add(2,3) =", add(2, 3), " fact(10) =", fact(10)
  print *, "pi is about", 3.14159265d0, "and 1/4 is", 0.25, .true.
end program hello
