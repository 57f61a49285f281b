"""The project a build request without one gets, against a real server.

PF_DEFAULT_PROJECT / ``--default-project`` when set (a name that does not exist stops
the start), else the original's demo project ``pf-web-polyglot-demo-plus-c`` when it is
there, else the only project; with several and none of those, 400 naming them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import DEMOS, Server

ORIGINAL = "pf-web-polyglot-demo-plus-c"


def workdir(tmp_path: Path, *names: str) -> Path:
    """A server directory whose projects dir holds a WAT project per name."""
    work = tmp_path / "work"
    for name in names:
        shutil.copytree(DEMOS / "polyglot" / "wat", work / "projects" / name / "wat")
    return work


def build_wat(server: Server, body: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/build/wat", json=body, timeout=30)


def project_of(server: Server, response: httpx.Response) -> str:
    """The project the build queued by ``response`` was recorded with."""
    assert response.status_code == 200, response.text
    build_id = response.json()["buildId"]
    project: str = httpx.get(f"{server.url}/api/builds/{build_id}", timeout=30).json()["project"]
    return project


def test_several_projects_and_no_default_is_a_400_naming_them(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(workdir(tmp_path, "alpha", "beta")).start()
    for path in ("/api/build/wat", "/api/build/all"):
        response = httpx.post(f"{server.url}{path}", json={"target": "wasm"}, timeout=30)
        assert response.status_code == 400, response.text
        assert "alpha, beta" in response.json()["error"]
        assert "PF_DEFAULT_PROJECT" in response.json()["hint"]
    # Naming one still works.
    assert project_of(server, build_wat(server, {"project": "beta"})) == "beta"


def test_the_originals_demo_project_is_the_default_among_several(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(workdir(tmp_path, "alpha", ORIGINAL, "zeta")).start()
    assert project_of(server, build_wat(server, {})) == ORIGINAL
    everything = httpx.post(f"{server.url}/api/build/all", json={"target": "wasm"}, timeout=30)
    assert everything.status_code == 200, everything.text
    assert everything.json()["project"] == ORIGINAL


def test_the_only_project_is_the_default(make_server: type[Server], tmp_path: Path) -> None:
    server = make_server(workdir(tmp_path, "solo")).start()
    assert project_of(server, build_wat(server, {})) == "solo"


def test_a_configured_default_wins_and_the_flag_overrides_the_environment(
    make_server: type[Server], tmp_path: Path
) -> None:
    work = workdir(tmp_path, "alpha", "beta", ORIGINAL)
    by_env = make_server(work, env={"PF_DEFAULT_PROJECT": "beta"}).start()
    assert project_of(by_env, build_wat(by_env, {})) == "beta"
    assert project_of(by_env, build_wat(by_env, {"project": "alpha"})) == "alpha"
    by_env.stop()
    by_flag = make_server(
        work, env={"PF_DEFAULT_PROJECT": "beta"}, args=("--default-project", "alpha")
    ).start()
    assert project_of(by_flag, build_wat(by_flag, {})) == "alpha"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_default_project_that_does_not_exist_stops_the_start(
    make_server: type[Server], tmp_path: Path, how: str
) -> None:
    work = workdir(tmp_path, "alpha", "beta")
    server = (
        make_server(work, env={"PF_DEFAULT_PROJECT": "gamma"})
        if how == "env"
        else make_server(work, args=("--default-project", "gamma"))
    )
    with pytest.raises(RuntimeError, match="exited early") as failed:
        server.start()
    assert "default project gamma" in str(failed.value)
    assert "alpha, beta" in str(failed.value)
