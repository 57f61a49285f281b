// Reads the few sections of a wasm binary that give the exported functions' signatures
// (WebAssembly.Module.exports names them, but not their types).

const VALTYPES = { 0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128" };

/**
 * name -> {params, results} for the exported functions, from the type, import, function
 * and export sections; null when the binary uses something this reader does not know.
 */
export function signaturesOf(bytes) {
  let at = 8; // magic and version
  const u32 = () => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = bytes[at++];
      result |= (byte & 0x7f) << shift;
      if (!(byte & 0x80)) return result >>> 0;
      shift += 7;
    }
  };
  const name = () => {
    const length = u32();
    at += length;
    return new TextDecoder().decode(bytes.subarray(at - length, at));
  };
  const valtype = () => VALTYPES[bytes[at++]] ?? "ref";
  const vec = (read) => Array.from({ length: u32() }, read);
  const limits = () => {
    const flags = bytes[at++];
    u32();
    if (flags & 1) u32();
  };
  let types = [];
  const functions = []; // type index of every function, imported ones first
  const exports = new Map();
  try {
    while (at < bytes.length) {
      const id = bytes[at++];
      const size = u32();
      const end = at + size;
      if (id === 1) {
        types = vec(() => {
          if (bytes[at++] !== 0x60) throw new Error("not a function type");
          return { params: vec(valtype), results: vec(valtype) };
        });
      } else if (id === 2) {
        vec(() => {
          name();
          name();
          const kind = bytes[at++];
          if (kind === 0) functions.push(u32());
          else if (kind === 1) {
            at += 1; // the table's element type
            limits();
          } else if (kind === 2) limits();
          else if (kind === 3) at += 2;
          else throw new Error(`import kind ${kind}`);
        });
      } else if (id === 3) {
        functions.push(...vec(u32));
      } else if (id === 7) {
        vec(() => {
          const exported = name();
          const kind = bytes[at++];
          const index = u32();
          if (kind === 0) exports.set(exported, types[functions[index]]);
        });
      }
      at = end;
    }
  } catch {
    return null;
  }
  return exports;
}
