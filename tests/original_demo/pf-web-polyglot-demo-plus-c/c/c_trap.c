/* C written for Emscripten, as the original's web demo has it: the page imports the
   ES6 module emcc makes (/wasm/c/c_trap.js) and calls the KEEPALIVE functions. */
#include <emscripten.h>

EMSCRIPTEN_KEEPALIVE
int trigger_trap(void) {
    __builtin_trap();
    return 0;
}

EMSCRIPTEN_KEEPALIVE
int scale(int x, int k) { return x * k; }

EMSCRIPTEN_KEEPALIVE
int main(void) { return 42; }
