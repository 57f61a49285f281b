// Rust written for wasm-pack: pf cannot make wasm-bindgen's glue here and says so.
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub fn greet(name: &str) -> String {
    format!("Hello, {}!", name)
}
