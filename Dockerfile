# pf's container image: `pf serve` by default, `pf worker` (or any pf command) by argument.
#
#   docker build -t pf .
#   podman build --format docker -t pf .    (OCI format has no HEALTHCHECK)
#
# Three stages. `toolchains` installs the compilers builds run, which are Debian
# packages (scripts/setup.sh's list): the build stage and the runtime both start from it,
# so they are downloaded once and never copied between stages. `build` bundles the pages'
# editor and installs pf into a venv. `runtime` is the toolchains plus that venv, run as
# an unprivileged user.

ARG BASE_IMAGE=debian:12-slim
# The toolchains the image holds: `all`, or a comma-separated subset of scripts/setup.sh's
# groups (c, rust, fortran, wat, emscripten, tasks). `--build-arg TOOLCHAINS=wat` makes an
# image of 0.46 GB that compiles WAT only, built in minutes instead of half an hour.
ARG TOOLCHAINS=all
# Where the pages' editor bundle and uPlot come from: `npm` installs them from the lock
# file and bundles the editor here; `context` takes the ones scripts/setup.sh made in the
# checkout (src/pf/server/web/vendor and node_modules/uplot/dist), which spares the build
# Debian's npm (about 380 packages) and the npm registry.
ARG WEB_ASSETS=npm

FROM ${BASE_IMAGE} AS toolchains
ARG TOOLCHAINS
COPY scripts/setup.sh /tmp/pf-setup/scripts/setup.sh
RUN /tmp/pf-setup/scripts/setup.sh toolchains "$TOOLCHAINS" \
    && rm -rf /tmp/pf-setup /var/lib/apt/lists/*

FROM toolchains AS build
ARG WEB_ASSETS
# pip and npm trust the system's CA store, so a site's own CA (an HTTPS proxy) works.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# npm when the bundle is made here; a C compiler for pf-confine when the toolchains bring
# no clang (gcc is the smaller download).
RUN case "$WEB_ASSETS" in \
      npm) packages=npm ;; \
      context) packages= ;; \
      *) echo "WEB_ASSETS is npm or context, not '$WEB_ASSETS'" >&2; exit 2 ;; \
    esac \
    && { command -v clang-14 >/dev/null || packages="$packages gcc libc6-dev"; } \
    && if [ -n "$packages" ]; then \
      apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
         $packages \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY demos ./demos
COPY scripts/wabt ./scripts/wabt
# The pages' libraries, pinned by the lock file, and the editor bundle (scripts/setup.sh
# does the same in a checkout); the wheel takes vendor/editor.js as package data.
RUN web=src/pf/server/web \
    && if [ "$WEB_ASSETS" = npm ]; then \
      rm -rf "$web/vendor" "$web/node_modules" \
      && npm ci --prefix "$web" --no-audit --no-fund --silent \
      && npm run --prefix "$web" --silent build-editor; \
    elif [ ! -f "$web/vendor/editor.js" ] || [ ! -d "$web/node_modules/uplot/dist" ]; then \
      echo "WEB_ASSETS=context: $web/vendor/editor.js or node_modules/uplot/dist is" \
           "missing; run scripts/setup.sh in the checkout first" >&2; \
      exit 1; \
    fi
# The WAT assembler's wasm (wabt built to WebAssembly), extracted from the pinned npm
# package as scripts/setup.sh does, or taken from the checkout's scripts/wabt/dist.
RUN wabt=scripts/wabt \
    && if [ "$WEB_ASSETS" = npm ]; then \
      rm -rf "$wabt/dist" "$wabt/node_modules" \
      && npm ci --prefix "$wabt" --no-audit --no-fund --silent \
      && node "$wabt/extract.js" "$wabt/dist"; \
    elif [ ! -f "$wabt/dist/wabt.wasm" ]; then \
      echo "WEB_ASSETS=context: $wabt/dist/wabt.wasm is missing; run scripts/setup.sh" \
           "in the checkout first" >&2; \
      exit 1; \
    fi
# A wheel, not an editable install: the image holds no source tree. uPlot is served
# from node_modules/uplot/dist beside the package, so only that folder is carried over.
RUN python3.11 -m venv /opt/pf/venv \
    && /opt/pf/venv/bin/pip install -q 'pip>=24' \
    && /opt/pf/venv/bin/pip install -q . \
    && web=$(/opt/pf/venv/bin/python -c 'import pf, pathlib; print(pathlib.Path(pf.__file__).parent / "server/web")') \
    && mkdir -p "$web/node_modules/uplot" \
    && cp -r src/pf/server/web/node_modules/uplot/dist "$web/node_modules/uplot/dist" \
    && cc=clang-14 && { command -v clang-14 >/dev/null || cc=gcc; } \
    && "$cc" -O2 -Wall -Wextra -Werror -o /opt/pf/venv/bin/pf-confine src/pf/sandbox/confine.c \
    && cp -r demos /opt/pf/demos \
    && share=/opt/pf/venv/share/pf/wabt && mkdir -p "$share" \
    && cp scripts/wabt/dist/wabt.wasm scripts/wabt/dist/exports.json "$share/" \
    && scripts/wabt/install.sh "$share" /opt/pf/venv/bin/python

FROM toolchains AS runtime
# pf runs as this user. The compile sandbox (bubblewrap) then needs user namespaces in
# the container: see docs/production.md, "Containers", for the engine's options.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pf --create-home \
    --shell /usr/sbin/nologin pf
COPY --from=build /opt/pf /opt/pf
ENV PATH=/opt/pf/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PF_DATABASE_URL=sqlite:////var/lib/pf/pf.db \
    PF_CACHE_DIR=/var/lib/pf/cache
WORKDIR /var/lib/pf
VOLUME /var/lib/pf
USER pf
EXPOSE 8080
# /api/health answers from the event loop alone: a hung server fails it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/pf/venv/bin/python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/health', timeout=4).status != 200)"]
ENTRYPOINT ["/opt/pf/venv/bin/pf"]
# Listening beyond loopback needs a token first:
#   docker run --rm -v pf-data:/var/lib/pf pf token create admin --scope admin
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--projects", "/opt/pf/demos", \
     "--root", "/opt/pf/demos/polyglot/web"]
