// The few WASI preview-1 calls a command-style module (a Fortran or C `main`) makes to
// print and exit, for the demo page and the playground: stdout and stderr are captured as
// text, stdin is empty, and any other WASI call answers ENOSYS, so a module importing more
// still instantiates. Plain ES module, loaded as /_pf/wasi.js.

const ERRNO = { SUCCESS: 0, BADF: 8, NOSYS: 52, SPIPE: 70 };
const FILETYPE_CHARACTER_DEVICE = 2;

/** Thrown by proc_exit to unwind out of `_start`; `code` is the exit status. */
export class WasiExit extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.name = "WasiExit";
    this.code = code;
  }
}

export class Wasi {
  constructor() {
    this.memory = null;
    this.stdout = "";
    this.stderr = "";
    this.decoders = { 1: new TextDecoder(), 2: new TextDecoder() };
  }

  view() {
    return new DataView(this.memory.buffer);
  }

  /**
   * The import object for `module`: the calls below, ENOSYS for any other WASI call, and
   * for a non-WASI function import a stub that throws when called.
   */
  imports(module) {
    const calls = {
      fd_write: (fd, iovs, count, written) => this.fdWrite(fd, iovs, count, written),
      fd_fdstat_get: (fd, out) => this.fdstat(fd, out),
      fd_seek: (fd) => (fd <= 2 ? ERRNO.SPIPE : ERRNO.BADF),
      fd_close: (fd) => (fd <= 2 ? ERRNO.SUCCESS : ERRNO.BADF),
      fd_read: (fd, iovs, count, read) => this.fdRead(fd, read),
      proc_exit: (code) => {
        throw new WasiExit(code);
      },
      args_sizes_get: (argc, size) => this.zeros(argc, size),
      args_get: () => ERRNO.SUCCESS,
      environ_sizes_get: (count, size) => this.zeros(count, size),
      environ_get: () => ERRNO.SUCCESS,
      clock_time_get: (id, precision, out) => {
        this.view().setBigUint64(out, BigInt(Date.now()) * 1000000n, true);
        return ERRNO.SUCCESS;
      },
      random_get: (buf, len) => {
        crypto.getRandomValues(new Uint8Array(this.memory.buffer, buf, len));
        return ERRNO.SUCCESS;
      },
    };
    const out = {};
    for (const entry of WebAssembly.Module.imports(module)) {
      if (entry.kind !== "function") continue;
      const space = (out[entry.module] ??= {});
      if (entry.module.startsWith("wasi")) {
        space[entry.name] = calls[entry.name] ?? (() => ERRNO.NOSYS);
      } else {
        // Not WASI: nothing here can stand in for it, so calling it says so.
        space[entry.name] = () => {
          throw new Error(`the import ${entry.module}.${entry.name} is not provided here`);
        };
      }
    }
    return out;
  }

  /** Runs a command's `_start`; answers its exit code (0 when it returns). */
  start(instance) {
    this.memory = instance.exports.memory;
    try {
      instance.exports._start();
      return 0;
    } catch (error) {
      if (error instanceof WasiExit) return error.code;
      throw error;
    } finally {
      this.flush();
    }
  }

  /** For exports called one by one: binds the memory and runs a reactor's `_initialize`. */
  initialize(instance) {
    this.memory = instance.exports.memory ?? null;
    instance.exports._initialize?.();
  }

  fdWrite(fd, iovs, count, written) {
    if (fd !== 1 && fd !== 2) return ERRNO.BADF;
    const view = this.view();
    let total = 0;
    for (let i = 0; i < count; i += 1) {
      const ptr = view.getUint32(iovs + i * 8, true);
      const len = view.getUint32(iovs + i * 8 + 4, true);
      const text = this.decoders[fd].decode(new Uint8Array(this.memory.buffer, ptr, len), {
        stream: true,
      });
      if (fd === 1) this.stdout += text;
      else this.stderr += text;
      total += len;
    }
    view.setUint32(written, total, true);
    return ERRNO.SUCCESS;
  }

  fdRead(fd, read) {
    if (fd !== 0) return ERRNO.BADF;
    this.view().setUint32(read, 0, true);
    return ERRNO.SUCCESS;
  }

  fdstat(fd, out) {
    if (fd > 2) return ERRNO.BADF;
    const view = this.view();
    for (let i = 0; i < 24; i += 1) view.setUint8(out + i, 0);
    view.setUint8(out, FILETYPE_CHARACTER_DEVICE);
    view.setBigUint64(out + 8, 0xffffffffn, true);
    return ERRNO.SUCCESS;
  }

  zeros(a, b) {
    const view = this.view();
    view.setUint32(a, 0, true);
    view.setUint32(b, 0, true);
    return ERRNO.SUCCESS;
  }

  flush() {
    this.stdout += this.decoders[1].decode();
    this.stderr += this.decoders[2].decode();
  }
}
