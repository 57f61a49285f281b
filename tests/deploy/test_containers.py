"""The container files: compose.yaml against the Compose Specification, the Dockerfile's
stages read as a builder reads them, and the image itself built and run by podman.

The image test builds the Dockerfile's smallest image (TOOLCHAINS=wat: the full one is
4.2 GB of toolchains and half an hour of apt) on a Debian 12 base that debootstrap makes
from apt (no image registry is reachable here), tagged for the test and passed as the
Dockerfile's BASE_IMAGE; podman keeps its layers, so a second run rebuilds only what
changed.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import importlib.resources
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import wasmtime
import yaml
from dockerfile_parse import DockerfileParser

from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
# The shipped files compose mounts that other parts of deploy/ provide.
PROXY_CONF = "./deploy/nginx/pf.conf"
PROMETHEUS_FILES = ("./deploy/prometheus/prometheus.yml", "./deploy/prometheus/alerts.yml")
# Secrets the operator makes (docs/production.md): never in the repository.
OPERATOR_SECRETS = {"tls-certificate", "tls-key", "prometheus-token"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@functools.cache
def _compose_schema() -> dict[str, Any]:
    # check-jsonschema vendors the Compose Specification's schema (compose-spec.json).
    text = (
        importlib.resources.files("check_jsonschema")
        .joinpath("builtin_schemas/vendor/compose-spec.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_follows_the_compose_specification() -> None:
    assert _schema_errors(_compose()) == []


def test_the_schema_check_refuses_what_compose_would() -> None:
    document = _compose()
    misspelt = copy.deepcopy(document)
    misspelt["services"]["api"]["healtcheck"] = {"test": ["CMD", "true"]}
    wrong_type = copy.deepcopy(document)
    wrong_type["services"]["worker"]["depends_on"]["postgres"]["condition"] = "healthy"
    assert _schema_errors(misspelt)
    assert _schema_errors(wrong_type)


def _pf_services(document: dict[str, Any]) -> set[str]:
    return {name for name, s in document["services"].items() if "build" in s}


def test_every_service_has_limits_a_restart_policy_and_a_health_check() -> None:
    document = _compose()
    pf = _pf_services(document)
    assert {"api", "worker"} <= pf
    for name, service in document["services"].items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= limits.keys(), name
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
        check = service.get("healthcheck")
        if name == "pod":
            continue  # holds the network namespace; sleeps, nothing to check
        if check is None:
            # Only pf's own image brings a HEALTHCHECK (the Dockerfile's).
            assert name in pf, f"{name} has no health check"
        else:
            assert not check.get("disable") and check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_dependencies_wait_for_health_where_a_check_exists() -> None:
    document = _compose()
    services = document["services"]
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            wanted = condition["condition"]
            assert wanted in {"service_started", "service_healthy"}, (name, target)
            if wanted == "service_healthy":
                check = services[target].get("healthcheck")
                assert (check is None and target in _pf_services(document)) or (
                    check is not None and not check.get("disable")
                ), f"{name} waits for {target} to be healthy, which has no check"
    # The shared-mode order: the stores before pf, pf serve (which migrates) before workers.
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_pf_runs_in_shared_mode_with_data_on_volumes() -> None:
    document = _compose()
    declared = set(document["volumes"])
    for name in ("api", "worker"):
        service = document["services"][name]
        env = service["environment"]
        assert env["PF_DATABASE_URL"].startswith("postgresql://"), name
        assert env["PF_REDIS_URL"].startswith("redis://"), name
        mounts = [v.split(":") for v in service["volumes"]]
        assert ["/var/lib/pf"] == [m[1] for m in mounts if m[0] in declared], name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    api = document["services"]["api"]["command"]
    assert "serve" in api and "--workers=2" in api
    assert document["services"]["worker"]["command"][0] == "worker"


def test_compose_mounts_the_shipped_proxy_and_prometheus_files() -> None:
    document = _compose()
    sources = {
        volume.split(":")[0]
        for service in document["services"].values()
        for volume in service.get("volumes", [])
    }
    for path in (PROXY_CONF, *PROMETHEUS_FILES):
        assert path in sources
        assert (ROOT / path).is_file(), f"{path} is missing (deploy/nginx, deploy/prometheus)"
    assert set(document["secrets"]) == OPERATOR_SECRETS
    for secret in document["secrets"].values():
        assert not (ROOT / secret["file"]).exists(), "a secret is in the repository"


def _instructions(stage: str | None = None) -> list[tuple[str, str, str]]:
    """(stage, instruction, value) for every instruction of the Dockerfile."""
    parser = DockerfileParser(str(DOCKERFILE))
    current = ""
    found = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "COMMENT":
            continue
        if instruction == "FROM":
            current = value.split()[-1] if " AS " in value.upper() else value
        found.append((current, instruction, value))
    return [i for i in found if stage is None or i[0] == stage]


def _dockerignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_every_copy_source_is_in_the_build_context() -> None:
    ignored = _dockerignored()
    stages: list[str] = []
    copies = 0
    for stage, instruction, value in _instructions():
        if instruction == "FROM":
            stages.append(stage)
        if instruction not in {"COPY", "ADD"}:
            continue
        words = shlex.split(value)
        flags = [w for w in words if w.startswith("--")]
        *sources, _target = [w for w in words if not w.startswith("--")]
        origin = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
        if origin:
            assert origin[0] in stages[:-1], f"COPY --from={origin[0]} names no earlier stage"
            continue
        for source in sources:
            copies += 1
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source not in ignored, f"COPY {source}: excluded by .dockerignore"
            tracked = subprocess.run(
                ["git", "-C", str(ROOT), "ls-files", "--error-unmatch", source],
                capture_output=True,
            )
            assert tracked.returncode == 0, f"COPY {source}: not tracked by git"
    assert copies >= 4


def _final_stage() -> list[tuple[str, str, str]]:
    instructions = _instructions()
    last = [i for i in instructions if i[1] == "FROM"][-1][0]
    return [i for i in instructions if i[0] == last]


def test_the_runtime_stage_runs_pf_as_an_unprivileged_user() -> None:
    final = _final_stage()
    users = [value for _, instruction, value in final if instruction == "USER"]
    assert users, "the final stage sets no USER: pf would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    entrypoint = json.loads(next(v for _, i, v in final if i == "ENTRYPOINT"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(entrypoint[0]).name in scripts
    # The venv the build stage makes is the one the runtime stage copies.
    assert any(i == "COPY" and "--from=build" in v for _, i, v in final)
    assert Path(entrypoint[0]).parent.parent.as_posix() in {
        shlex.split(v)[-1] + "/venv" for _, i, v in final if i == "COPY"
    }


def test_the_health_check_asks_pf_serve_on_its_port() -> None:
    final = _final_stage()
    check = next(v for _, i, v in final if i == "HEALTHCHECK")
    command = json.loads(check.split("CMD", 1)[1])
    served = json.loads(next(v for _, i, v in final if i == "CMD"))
    port = served[served.index("--port") + 1]
    assert f"127.0.0.1:{port}/api/health" in " ".join(command)
    assert any(i == "EXPOSE" and v == port for _, i, v in final)


# The image, built and run.

BASE_TAG = "localhost/pf-test-base:bookworm"
IMAGE_TAG = "localhost/pf-test:latest"


def _mirror() -> str:
    """The Debian mirror apt uses on this machine, for debootstrap."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$", sources.read_text(), re.M)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def _podman_conf(folder: Path) -> dict[str, str]:
    """podman's environment for this machine: runc, because crun refuses hosts with
    hybrid cgroups, and rlimits no higher than this process's own, because podman's
    defaults need CAP_SYS_RESOURCE to raise them."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    conf = folder / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def _base_image(env: dict[str, str], folder: Path) -> None:
    """A Debian 12 base made by debootstrap, with this machine's CA certificates (an
    HTTPS proxy's CA among them) so the build's pip and npm reach their registries."""
    if _run(["podman", "image", "exists", BASE_TAG], env, 30).returncode == 0:
        return
    rootfs = folder / "rootfs"
    made = _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=ca-certificates",
            "bookworm",
            str(rootfs),
            _mirror(),
        ],
        env,
        900,
    )
    if made.returncode != 0:
        pytest.skip(
            "container engine cannot run on this machine: debootstrap could not make the "
            f"Debian base: {made.stdout.strip().splitlines()[-1:]} {made.stderr.strip()}"
        )
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(cert, rootfs / "usr/local/share/ca-certificates")
    subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, text=True)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            ["podman", "import", "-", BASE_TAG], stdin=tar.stdout, env=env, capture_output=True
        )
    assert tar.returncode == 0 and imported.returncode == 0, imported.stderr
    shutil.rmtree(rootfs)


def _build_image(env: dict[str, str], folder: Path) -> float:
    """The image the tests run, built by podman; returns the build's seconds."""
    _base_image(env, folder)
    probe = _run(["podman", "run", "--rm", "--network=none", BASE_TAG, "true"], env, 120)
    if probe.returncode != 0:
        pytest.skip(f"container engine cannot run on this machine: {probe.stderr.strip()}")
    started = time.monotonic()
    built = _run(
        [
            "podman",
            "build",
            "--format=docker",
            f"--build-arg=BASE_IMAGE={BASE_TAG}",
            # The smallest image: WAT's wabt beside what pf itself needs, and the pages'
            # assets setup.sh made in this checkout instead of Debian's npm.
            "--build-arg=TOOLCHAINS=wat",
            "--build-arg=WEB_ASSETS=context",
            f"--tag={IMAGE_TAG}",
            str(ROOT),
        ],
        env,
        900,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return time.monotonic() - started


def _wait_healthy(container: str, env: dict[str, str], deadline: float) -> str:
    last = ""
    while time.monotonic() < deadline:
        check = _run(["podman", "healthcheck", "run", container], env, 30)
        if check.returncode == 0:
            return "healthy"
        last = check.stdout + check.stderr
        state = _run(["podman", "inspect", "--format={{.State.Status}}", container], env, 30)
        if state.stdout.strip() not in {"running", "created", "configured"}:
            logs = _run(["podman", "logs", container], env, 30)
            return f"exited: {logs.stdout[-2000:]}{logs.stderr[-2000:]}"
        time.sleep(0.5)
    return f"not healthy in time: {last}"


def _serves_healthy(tag: str, env: dict[str, str]) -> None:
    volume = "pf-test-" + hashlib.sha256(os.urandom(8)).hexdigest()[:12]
    container = volume
    try:
        made = _run(["podman", "volume", "create", volume], env, 60)
        assert made.returncode == 0, made.stderr
        # The documented first step: a token, so pf serve may listen beyond loopback.
        token = _run(
            [
                "podman",
                "run",
                "--rm",
                f"--volume={volume}:/var/lib/pf",
                "--network=none",
                tag,
                "token",
                "create",
                "test",
                "--scope",
                "admin",
            ],
            env,
            120,
        )
        assert token.returncode == 0, token.stderr
        run = _run(
            [
                "podman",
                "run",
                "--detach",
                f"--name={container}",
                "--read-only",
                "--tmpfs=/tmp",
                f"--volume={volume}:/var/lib/pf",
                "--network=none",
                tag,
            ],
            env,
            120,
        )
        assert run.returncode == 0, run.stderr
        assert _wait_healthy(container, env, time.monotonic() + 90) == "healthy"
        health = _run(["podman", "inspect", "--format={{json .State.Health}}", container], env, 30)
        assert json.loads(health.stdout)["Status"] == "healthy"
        user = _run(["podman", "exec", container, "id", "-u"], env, 30)
        assert user.stdout.strip() not in {"", "0"}
    finally:
        _run(["podman", "rm", "--force", "--time=0", container], env, 60)
        _run(["podman", "volume", "rm", "--force", volume], env, 60)


def _compiles_in_the_sandbox(tag: str, env: dict[str, str]) -> None:
    # pf's messages go to stderr; stdout carries the module alone, in base64.
    compile_demo = (
        "cd /tmp && PF_CACHE_DIR=/tmp/cache pf compile /opt/pf/demos/polyglot/wat/add.wat"
        " -o /tmp/out >&2 && base64 -w0 /tmp/out/add.wasm"
    )
    base = ["podman", "run", "--rm", "--network=none", "--read-only", "--tmpfs=/tmp"]
    after = ["--entrypoint=sh", tag, "-c", compile_demo]
    # As compose and Quadlet run it: bubblewrap confines the compile, as user pf.
    done = _run([*base, "--security-opt=unmask=ALL", *after], env, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    store = wasmtime.Store()
    module = wasmtime.Module(store.engine, base64.b64decode(done.stdout))
    add = wasmtime.Instance(store, module, []).exports(store)["add"]
    assert add(store, 2, 3) == 5  # type: ignore[operator]
    # Under the engine's masked /proc, pf refuses to compile rather than run unconfined.
    refused = _run([*base, *after], env, 300)
    assert refused.returncode != 0
    assert "Can't mount proc" in refused.stdout + refused.stderr


# One test, so the image is built once per session, by one xdist worker, while the other
# runs other tests; podman keeps its layers, so a later session rebuilds only what changed.
@needs_tool("podman", "runc", "debootstrap")
def test_the_image_serves_healthy_and_compiles_in_its_sandbox(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    env = _podman_conf(tmp_path)
    seconds = _build_image(env, tmp_path)
    record_property("measured", f"podman build of the TOOLCHAINS=wat image: {seconds:.0f} s")
    _serves_healthy(IMAGE_TAG, env)
    _compiles_in_the_sandbox(IMAGE_TAG, env)
