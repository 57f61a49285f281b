"""The systemd units and Quadlet files of deploy/.

``systemd-analyze verify`` checks the shipped units with only the path of ``pf``
replaced by this checkout's (it refuses an ExecStart that does not exist), and
``systemd-analyze security --offline`` scores their hardening. Neither starts a unit:
this machine's PID 1 is not systemd. Debian 12's podman (4.3) predates Quadlet, so its
files are checked against the keys Quadlet (podman 5) reads.
"""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
QUADLET = ROOT / "deploy" / "quadlet"
INSTALLED_PF = "/opt/pf/venv/bin/pf"
VENV_PF = ROOT / ".venv" / "bin" / "pf"
UNITS = ("pf.service", "pf-worker@.service")
# What pf's sandbox (src/pf/sandbox/wrappers.py: bwrap --unshare-all) creates.
SANDBOX_NAMESPACES = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}
# Each mounts over part of /proc, after which the kernel refuses bwrap's fresh /proc.
BREAKS_SANDBOX = {"ProtectKernelTunables": "yes", "ProtectKernelLogs": "yes", "ProcSubset": "pid"}

# The keys Quadlet reads in [Container] and [Network] (podman 5's podman-systemd.unit).
CONTAINER_KEYS = {
    "AddCapability", "AddDevice", "AddHost", "Annotation", "AutoUpdate", "CgroupsMode",
    "ContainerName", "ContainersConfModule", "DNS", "DNSOption", "DNSSearch",
    "DropCapability", "Entrypoint", "Environment", "EnvironmentFile", "EnvironmentHost",
    "Exec", "ExposeHostPort", "GIDMap", "GlobalArgs", "Group", "GroupAdd", "HealthCmd",
    "HealthInterval", "HealthOnFailure", "HealthRetries", "HealthStartPeriod",
    "HealthStartupCmd", "HealthStartupInterval", "HealthStartupRetries",
    "HealthStartupSuccess", "HealthStartupTimeout", "HealthTimeout", "HostName", "IP",
    "IP6", "Image", "Label", "LogDriver", "LogOpt", "Mask", "Memory", "Mount", "Network",
    "NetworkAlias", "NoNewPrivileges", "Notify", "PidsLimit", "Pod", "PodmanArgs",
    "PublishPort", "Pull", "ReadOnly", "ReadOnlyTmpfs", "ReloadCmd", "ReloadSignal",
    "Rootfs", "RunInit", "SeccompProfile", "Secret", "SecurityLabelDisable",
    "SecurityLabelFileType", "SecurityLabelLevel", "SecurityLabelNested",
    "SecurityLabelType", "ServiceName", "ShmSize", "StartWithPod", "StopSignal",
    "StopTimeout", "SubGIDMap", "SubUIDMap", "Sysctl", "Timezone", "Tmpfs", "UIDMap",
    "Ulimit", "Unmask", "User", "UserNS", "Volume", "WorkingDir",
}  # fmt: skip
NETWORK_KEYS = {
    "Label", "DNS", "ContainersConfModule", "GlobalArgs", "DisableDNS", "Driver", "Gateway",
    "IPAMDriver", "IPRange", "IPv6", "InterfaceName", "Internal", "NetworkName",
    "NetworkDeleteOnStop", "Options", "ServiceName", "Subnet", "PodmanArgs",
}  # fmt: skip


def _render(folder: Path, text_of: dict[str, str]) -> list[Path]:
    """The units in ``folder``, their ExecStart pointed at this checkout's pf, with an
    instance of the worker template, as systemd-analyze needs one."""
    paths = []
    for name, text in text_of.items():
        assert INSTALLED_PF in text, name
        path = folder / name
        path.write_text(text.replace(INSTALLED_PF, str(VENV_PF)))
        paths.append(path)
    (folder / "pf-worker@1.service").symlink_to("pf-worker@.service")
    return [folder / "pf.service", folder / "pf-worker@1.service"]


def _verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True
    )


def _shipped() -> dict[str, str]:
    return {name: (SYSTEMD / name).read_text() for name in UNITS}


def _ours(output: str, paths: list[Path]) -> list[str]:
    """The lines of systemd-analyze's output about our units (not the machine's own)."""
    names = [p.name for p in paths] + ["pf-worker@.service"]
    return [line for line in output.splitlines() if any(n in line for n in names)]


@needs_tool("systemd-analyze")
def test_the_units_verify(tmp_path: Path) -> None:
    paths = _render(tmp_path, _shipped())
    done = _verify(paths)
    assert done.returncode == 0, done.stderr
    assert _ours(done.stdout + done.stderr, paths) == []


@needs_tool("systemd-analyze")
def test_verify_reports_a_misspelt_setting(tmp_path: Path) -> None:
    units = _shipped()
    units["pf.service"] = units["pf.service"].replace("TasksMax=", "TaskMax=")
    paths = _render(tmp_path, units)
    done = _verify(paths)
    assert any("TaskMax" in line for line in _ours(done.stdout + done.stderr, paths))


@needs_tool("systemd-analyze")
@pytest.mark.parametrize("unit", ["pf.service", "pf-worker@1.service"])
def test_the_hardening_scores_low_exposure(tmp_path: Path, unit: str) -> None:
    _render(tmp_path, _shipped())
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=30", "--no-pager", unit],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    level = done.stdout.strip().splitlines()[-1]
    assert "Overall exposure level" in level


def _service_section(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return dict(parser["Service"])


@pytest.mark.parametrize("name", UNITS)
def test_the_hardening_leaves_the_sandbox_what_it_needs(name: str) -> None:
    service = _service_section((SYSTEMD / name).read_text())
    assert set(service["RestrictNamespaces"].split()) == SANDBOX_NAMESPACES
    assert "AF_NETLINK" in service["RestrictAddressFamilies"].split()
    assert "@mount" in service["SystemCallFilter"].split()
    for key, value in BREAKS_SANDBOX.items():
        assert service.get(key, "no") != value, f"{key}={value} breaks bwrap's /proc"
    for key in ("NoNewPrivileges", "PrivateTmp"):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["User"] == "pf" and service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/pf/pf.env"
    assert {"MemoryMax", "TasksMax", "StateDirectory", "CacheDirectory"} <= service.keys()


def _quadlet(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("name", ["pf.container", "pf-worker@.container"])
def test_the_quadlet_containers_use_keys_quadlet_reads(name: str) -> None:
    parsed = _quadlet(QUADLET / name)
    container = parsed["Container"]
    unknown = set(container) - CONTAINER_KEYS
    assert not unknown, f"Quadlet ignores {unknown}"
    assert container["Image"] == "localhost/pf:latest"
    assert container["EnvironmentFile"] == "/etc/pf/pf.env"
    assert (QUADLET / container["Network"]).is_file()
    assert container["Exec"].split()[0] in {"serve", "worker"}
    assert container["ReadOnly"] == "true" and container["NoNewPrivileges"] == "true"
    assert {"Memory", "PidsLimit"} <= set(container)
    assert parsed["Service"]["Restart"] == "on-failure"
    # The same pf command as the plain systemd unit.
    unit = "pf.service" if name == "pf.container" else "pf-worker@.service"
    exec_start = _service_section((SYSTEMD / unit).read_text())["ExecStart"].split()
    assert container["Exec"].split()[0] == exec_start[1]
    for flag in ("--projects", "/opt/pf/demos"):
        assert flag in container["Exec"].split()


def test_the_quadlet_network_uses_keys_quadlet_reads() -> None:
    network = _quadlet(QUADLET / "pf.network")["Network"]
    assert set(network) <= NETWORK_KEYS
