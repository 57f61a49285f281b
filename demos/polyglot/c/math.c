/* pf polyglot demo: a C library compiled to a wasm reactor module.
 * add() is a plain export; checked_div() traps (wasm `unreachable`) on division by zero. */

int add(int a, int b) { return a + b; }

int checked_div(int a, int b) {
    if (b == 0) {
        __builtin_trap();
    }
    return a / b;
}

int trap_now(void) { __builtin_trap(); }
