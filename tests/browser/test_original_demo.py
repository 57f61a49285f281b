"""A client page written as the original's are, in chromium, against a real pf serve.

The page (tests/original_demo/.../web/index.html) connects its WebSocket to ``/`` and
handles one event per message by type, sends Build All as ``{target}`` without a
project, and loads modules from the original's URLs: the Emscripten ES6 module
``/wasm/c/c_trap.js``, ``/wasm/asm/mini.wasm`` (WAT kept in ``asm/``) and
``/wasm/fortran/hello.wasm``. The projects root also holds another project, so only
the original's default-project rule makes the page build the right one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageErrors, WebServer

ORIGINAL_DEMO = Path(__file__).resolve().parents[1] / "original_demo"
PROJECT = "pf-web-polyglot-demo-plus-c"
BUILD = 120_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    """pf serve with the original's demo project (and one more) and its page at ``/``."""
    work = tmp_path / "serve"
    shutil.copytree(ORIGINAL_DEMO, work / "projects")
    shutil.copytree(ORIGINAL_DEMO / PROJECT / "asm", work / "projects" / "aaa" / "wat")
    running = WebServer(work)
    shutil.copy2(ORIGINAL_DEMO / PROJECT / "web" / "index.html", running.web / "index.html")
    running.start()
    yield running
    running.stop()


def test_build_all_completes_live_and_every_module_runs(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page.goto("/")
    expect(page.locator("#build-status")).to_have_text("Connected to real-time updates")

    page.get_by_role("button", name="Build All Languages").click()
    # Rust is a wasm-bindgen crate: pf leaves it out of Build All, so three are queued.
    expect(page.locator("#build-status")).to_have_text("All builds queued: 3 builds")
    cards = page.locator(".build-item")
    for language in ("c", "wat", "fortran"):
        card = cards.locator(f"xpath=self::*[@data-language='{language}']")
        expect(card).to_have_attribute("data-status", "completed", timeout=BUILD)
    expect(cards).to_have_count(3)
    received = page.evaluate("window.receivedTypes")
    assert "batch" not in received, received
    assert received.count("build_started") == 3 and received.count("build_completed") == 3
    # Completions refresh the modules panel: its links are the original's paths.
    modules = page.locator("#modules-info a")
    for path in ("/wasm/asm/mini.wasm", "/wasm/c/c_trap.js", "/wasm/fortran/hello.wasm"):
        expect(modules.filter(has_text=path)).to_have_count(1)

    page.get_by_role("button", name="Run C").click()
    expect(page.locator("#log-c")).to_have_text("scale(6, 7) = 42; main() = 42")
    page.get_by_role("button", name="Trigger C Trap").click()
    expect(page.locator("#log-c")).to_have_text("Caught C trap: RuntimeError")
    expect(page.locator("#overlay")).to_be_visible()
    page.locator("#overlay").click()
    expect(page.locator("#overlay")).to_be_hidden()

    page.get_by_role("button", name="Run WAT").click()
    expect(page.locator("#log-wat")).to_have_text("answer() = 42; add(2, 3) = 5")
    page.get_by_role("button", name="Run Fortran").click()
    expect(page.locator("#log-fortran")).to_have_text("square(12) = 144")

    # Refresh Status reads /api/status: the same three builds, of the original's project.
    page.get_by_role("button", name="Refresh Status").click()
    expect(cards).to_have_count(3)
    expect(cards.locator(".status")).to_have_text(["completed"] * 3)
