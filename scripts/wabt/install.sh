#!/bin/bash
# Finish the WAT assembler's install in SHARE, which holds wabt.wasm and exports.json
# (extract.js wrote them): write pf-wabt, the command pf keeps resident, run by PYTHON
# (the Python environment pf is installed in), and compile the wasm once beside it.
#
#   scripts/wabt/install.sh SHARE PYTHON
#
# pf-wabt names the wasm's SHA-256: pf sees a new wasm as a new tool (its cache key
# changes), and the assembler refuses a wasm that is not that one. The compiled module
# (wabt-<digest>.cwasm) lets a resident start in milliseconds instead of a third of a
# second. Used by scripts/setup.sh and the Dockerfile.
set -euo pipefail
share=$1
python=$2
digest=$(sha256sum "$share/wabt.wasm" | cut -d' ' -f1)
cat >"$share/pf-wabt" <<LAUNCHER
#!/bin/sh
# The WAT assembler pf keeps resident (pf.toolchains.wabt), for wabt.wasm $digest.
exec "$python" -I -B -m pf.toolchains.wabt --sha256 $digest "\$@"
LAUNCHER
chmod 755 "$share/pf-wabt"
"$share/pf-wabt" --precompile
