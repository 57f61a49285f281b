# pf's container image: `pf serve` by default, `pf worker` (or any pf command) by argument.
#
#   docker build -t pf .
#   podman build --format docker -t pf .    (OCI format has no HEALTHCHECK)
#
# Three stages. `toolchains` installs the compilers builds run, which are Debian
# packages (scripts/setup.sh's list): the build stage and the runtime both start from it,
# so they are downloaded once and never copied between stages. `build` adds node and npm,
# bundles the pages' editor and installs pf into a venv. `runtime` is the toolchains plus
# that venv, run as an unprivileged user.

ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS toolchains
COPY scripts/setup.sh /tmp/pf-setup/scripts/setup.sh
RUN /tmp/pf-setup/scripts/setup.sh toolchains \
    && rm -rf /tmp/pf-setup /var/lib/apt/lists/*

FROM toolchains AS build
# pip and npm trust the system's CA store, so a site's own CA (an HTTPS proxy) works.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
       npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY demos ./demos
# The pages' libraries, pinned by the lock file, and the editor bundle (scripts/setup.sh
# does the same in a checkout); the wheel takes vendor/editor.js as package data.
RUN npm ci --prefix src/pf/server/web --no-audit --no-fund --silent \
    && npm run --prefix src/pf/server/web --silent build-editor
# A wheel, not an editable install: the image holds no source tree. uPlot is served
# from node_modules/uplot/dist beside the package, so only that folder is carried over.
RUN python3.11 -m venv /opt/pf/venv \
    && /opt/pf/venv/bin/pip install -q 'pip>=24' \
    && /opt/pf/venv/bin/pip install -q . \
    && web=$(/opt/pf/venv/bin/python -c 'import pf, pathlib; print(pathlib.Path(pf.__file__).parent / "server/web")') \
    && mkdir -p "$web/node_modules/uplot" \
    && cp -r src/pf/server/web/node_modules/uplot/dist "$web/node_modules/uplot/dist" \
    && clang-14 -O2 -Wall -Wextra -Werror -o /opt/pf/venv/bin/pf-confine src/pf/sandbox/confine.c \
    && cp -r demos /opt/pf/demos

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
