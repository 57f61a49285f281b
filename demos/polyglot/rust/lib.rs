//! The pf polyglot demo in Rust: numbers in and out, and a greeting through linear memory.
//!
//! Strings cross the wasm boundary as (pointer, length) pairs in the module's exported
//! memory. A host writes a name into a buffer from `alloc`, calls `greet`, reads the
//! NUL-terminated reply at the returned pointer, and gives both buffers back with
//! `dealloc` (the reply's size is its length plus the NUL).

use std::alloc::{self, Layout};

#[no_mangle]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// fibonacci(0) = 0, fibonacci(1) = 1, fibonacci(10) = 55; wraps past fibonacci(47).
#[no_mangle]
pub extern "C" fn fibonacci(n: u32) -> u32 {
    let (mut a, mut b) = (0u32, 1u32);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

/// A buffer of `size` bytes in linear memory (null when `size` is 0).
#[no_mangle]
pub extern "C" fn alloc(size: usize) -> *mut u8 {
    match Layout::array::<u8>(size) {
        Ok(layout) if size > 0 => unsafe { alloc::alloc(layout) },
        _ => std::ptr::null_mut(),
    }
}

/// Frees a buffer from `alloc` (or `greet`) of the same `size`.
#[no_mangle]
pub extern "C" fn dealloc(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size == 0 {
        return;
    }
    if let Ok(layout) = Layout::array::<u8>(size) {
        unsafe { alloc::dealloc(ptr, layout) }
    }
}

/// "Hello, <name>!" as a NUL-terminated string in a new buffer (`name` is copied as bytes).
#[no_mangle]
pub extern "C" fn greet(name: *const u8, len: usize) -> *mut u8 {
    let name = if name.is_null() {
        &[][..]
    } else {
        unsafe { std::slice::from_raw_parts(name, len) }
    };
    let mut text = Vec::with_capacity(len + 9);
    text.extend_from_slice(b"Hello, ");
    text.extend_from_slice(name);
    text.extend_from_slice(b"!\0");
    let out = alloc(text.len());
    if !out.is_null() {
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out, text.len()) };
    }
    out
}
