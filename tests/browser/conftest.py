"""Debian's chromium, driven headless by Playwright, against a real ``pf serve``.

The browser is the machine's ``/usr/bin/chromium`` (``scripts/setup.sh test`` installs it;
Playwright's own browser download is unreachable here), launched once per worker. Every
page records console errors, uncaught exceptions, failed same-origin requests and any
request or WebSocket to another host; any of them fails the test at teardown unless the
test allowed it with ``page_errors.allow``.
Screenshots go to ``build/screenshots/`` (gitignored); ``make screenshots`` copies one of
each page to docs/img/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Response, sync_playwright

from pf.toolchains import LANGUAGES
from tests.server.conftest import DEMOS, Server, wait_for

__all__ = ["LANGUAGES", "PageErrors", "WebServer", "no_horizontal_overflow"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}


class WebServer(Server):
    """A pf serve whose web root is a copy of the bundled demo's pages."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        web = DEMOS / "polyglot" / "web"
        for source in web.iterdir():
            # Only the pages: built artifacts come from this server's own builds.
            if source.is_file():
                shutil.copy2(source, self.web / source.name)

    def restart(self) -> WebServer:
        """Stop and start again on the same port (a page sees its connection drop)."""
        port = self.port
        self.stop()
        self.args = (*self.args, "--port", str(port))
        self.start()
        return self

    def build_all(self, timeout: float = 120.0) -> list[dict[str, object]]:
        """POST /api/build/all and wait until every build is done; returns their records."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            answer = http.post("/api/build/all", json={"target": "wasm"})
            answer.raise_for_status()
            return [wait_for(http, str(i), timeout) for i in answer.json()["buildIds"]]


class PageErrors:
    """What went wrong in a page: console errors, page errors, failed requests."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Expected errors (a test provoking a 404, a dropped connection) matching ``pattern``."""
        self.allowed.append(re.compile(pattern))

    def watch(self, page: Page) -> None:
        page.on("console", lambda m: m.type == "error" and self.seen.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.seen.append(f"pageerror: {e}"))

        def on_response(response: Response) -> None:
            if response.status >= 400 and response.url.startswith(self.origin):
                self.seen.append(f"HTTP {response.status}: {response.url}")

        page.on("response", on_response)

        # Nothing may come from anywhere but pf serve (no CDN, no font or analytics host):
        # the pages must work on a machine without internet access.
        def on_request(url: str) -> None:
            if not self.local(url):
                self.seen.append(f"request outside pf serve: {url}")

        page.on("request", lambda request: on_request(request.url))
        page.on("websocket", lambda socket: on_request(socket.url))

    def local(self, url: str) -> bool:
        """Whether ``url`` is pf serve's own (any scheme on its host and port) or in-page."""
        if url.startswith(("data:", "blob:", "about:")):
            return True
        return url.split("://", 1)[-1].startswith(self.origin.split("://", 1)[1] + "/")

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(p.search(e) for p in self.allowed)]


# Package scope, not session: while Playwright's sync driver is open it keeps an event
# loop running on the main thread, and the tests of other packages that a worker runs
# afterwards (asyncio.run in tests/server) must not find one.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `scripts/setup.sh test` (apt chromium)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
    )
    yield launched
    launched.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    """A fresh pf serve with the demo pages and no builds yet."""
    running = WebServer(tmp_path / "serve")
    running.workdir.mkdir(exist_ok=True)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def built_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A pf serve shared by a module, on which /api/build/all has completed (wasm)."""
    running = WebServer(tmp_path_factory.mktemp("serve-built")).start()
    assert isinstance(running, WebServer)
    records = running.build_all()
    failed = [r for r in records if r["status"] != "completed"]
    assert not failed, f"demo builds failed: {failed}"
    yield running
    running.stop()


def _page(
    browser: Browser, origin: str, errors: PageErrors, viewport: dict[str, int] | None
) -> Iterator[Page]:
    context = browser.new_context(base_url=origin, viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors.watch(page)
    yield page
    context.close()
    assert not errors.unexpected(), "the page reported errors:\n" + "\n".join(errors.unexpected())


@pytest.fixture
def page_errors(request: pytest.FixtureRequest) -> PageErrors:
    origin = _origin(request)
    return PageErrors(origin)


def _origin(request: pytest.FixtureRequest) -> str:
    """The origin of whichever server fixture the test uses (server or built_server)."""
    for name in ("server", "built_server"):
        if name in request.fixturenames:
            running: WebServer = request.getfixturevalue(name)
            return running.url
    raise RuntimeError("a page fixture needs the server or built_server fixture")


@pytest.fixture
def page(browser: Browser, page_errors: PageErrors) -> Iterator[Page]:
    """A page in a fresh browser context, based at the test's server (page.goto("/"))."""
    yield from _page(browser, page_errors.origin, page_errors, None)


@pytest.fixture
def phone_page(browser: Browser, page_errors: PageErrors) -> Iterator[Page]:
    """Like ``page`` at a phone's width (390 x 844)."""
    yield from _page(browser, page_errors.origin, page_errors, PHONE)


@pytest.fixture
def shot() -> Callable[[Page, str], Path]:
    """shot(page, name) saves build/screenshots/<name>.png and returns its path."""

    def take(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def no_horizontal_overflow(page: Page) -> bool:
    """True when nothing on the page is wider than the viewport."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))
