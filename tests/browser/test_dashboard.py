"""The dashboard at /dashboard in chromium: live builds, logs, cancel, reconnect, filters.

The C compiler is a wrapper that prints a line on stdout and one on stderr, then waits
until the test creates a gate file before running clang. So "a log line was shown while
the build was still running" and "a running build is cancelled" are states the test
holds the build in, not races it hopes to win.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import LANGUAGES, PageErrors, WebServer, no_horizontal_overflow

CLANG = "/usr/bin/clang-14"
WAITING = "compiler wrapper: waiting for the gate"
ON_STDERR = "compiler wrapper: a line on stderr"
OPENED = "compiler wrapper: gate open"
# Observes the detail view: every log line added, with the build status it showed then.
RECORD_LOG_LINES = """() => {
    window.logLinesSeen = [];
    const detail = document.getElementById("detail");
    new MutationObserver((records) => {
        for (const record of records) for (const node of record.addedNodes) {
            if (node.classList && node.classList.contains("log-line")) {
                const text = node.querySelector(".l-text").textContent;
                window.logLinesSeen.push({text, status: detail.dataset.status});
            }
        }
    }).observe(detail, {childList: true, subtree: true});
}"""


@pytest.fixture(autouse=True)
def patient_expect() -> Iterator[None]:
    """Builds are real compiles on a shared machine: wait for them longer than 5 s."""
    expect.set_options(timeout=20_000)
    yield
    expect.set_options(timeout=5_000)


class GatedServer(WebServer):
    """pf serve whose C compiles wait for ``gate`` to exist."""

    gate: Path


def gated_clang(directory: Path, gate: Path) -> Path:
    """A clang that waits for ``gate``, a file in the test's directory: the server that
    pins it runs with PF_SANDBOX=off, since a confined compile cannot see that file."""
    script = directory / "gated-clang.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|-v|-dumpversion) exec {CLANG} "$@";; esac\n'
        # Only a run that found the gate closed speaks (clang runs twice: compile, link).
        f"if [ ! -e {gate} ]; then\n"
        f'  echo "{WAITING}"\n'
        f'  echo "{ON_STDERR}" >&2\n'
        f"  while [ ! -e {gate} ]; do sleep 0.05; done\n"
        f'  echo "{OPENED}"\n'
        "fi\n"
        f'exec {CLANG} "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GatedServer]:
    """Overrides conftest's ``server``: the same demo server, with the gated C compiler."""
    running = GatedServer(tmp_path / "serve")
    running.gate = tmp_path / "gate"
    running.extra_env.update(
        {
            "PF_TOOL_CLANG": str(gated_clang(tmp_path, running.gate)),
            "PF_SANDBOX": "off",
            "PF_CCACHE": "0",
            "PF_SHUTDOWN_GRACE": "1",
            # One test submits 250 builds at once from one client, past the default burst.
            "PF_RATE_LIMIT": "0",
        }
    )
    running.start()
    yield running
    running.gate.touch()  # a build still waiting must not hold the shutdown
    running.stop()


def row(page: Page, label: str) -> Locator:
    """The build list's row(s) of ``label`` ("c → wasm")."""
    return page.locator("li.build").filter(
        has=page.locator(".b-label", has_text=re.compile(f"^{re.escape(label)}$"))
    )


def open_dashboard(page: Page) -> None:
    with page.expect_websocket() as socket:
        page.goto("/dashboard")
    # pf's dashboard asks for batches; the original's clients get one event per message.
    assert socket.value.url.endswith("/ws?batch=1"), socket.value.url
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#f-language option")).to_have_count(len(LANGUAGES))


def test_build_all_streams_logs_before_completion(
    server: GatedServer, page: Page, shot: Callable[[Page, str], Path]
) -> None:
    open_dashboard(page)
    page.evaluate(RECORD_LOG_LINES)
    page.locator("#f-opt").select_option("s")
    page.get_by_role("button", name="Build all").click()
    expect(page.locator("#build-message")).to_contain_text("4 builds queued")
    row(page, "c → wasm").locator("button.b-open").click()

    detail = page.locator("#detail")
    log = detail.locator("ol.log")
    expect(log.locator("li", has_text=WAITING)).to_be_visible()
    expect(detail).to_have_attribute("data-status", "running")
    stderr = log.locator("li", has_text=ON_STDERR)
    expect(stderr).to_have_attribute("data-stream", "stderr")
    expect(stderr).to_have_class(re.compile(r"\blog-stderr\b"))
    expect(row(page, "c → wasm")).to_have_attribute("data-status", "running")
    shot(page, "dashboard")

    server.gate.touch()
    for language in LANGUAGES:
        expect(row(page, f"{language} → wasm")).to_have_attribute("data-status", "completed")
    expect(detail).to_have_attribute("data-status", "completed")
    expect(log.locator("li", has_text=OPENED)).to_be_visible()
    expect(log.locator("li", has_text="built math.wasm")).to_be_visible()
    expect(detail.locator(".facts")).to_contain_text("opt_level=s")

    seen = page.evaluate("window.logLinesSeen")
    status_when_shown = {line["text"]: line["status"] for line in seen}
    assert status_when_shown[WAITING] == "running"
    assert status_when_shown[ON_STDERR] == "running"
    assert [line["text"] for line in seen].count(WAITING) == 1  # no line shown twice

    # The finished record brings timings and artifacts (size, compressed size, link).
    expect(row(page, "c → wasm").locator(".timings")).to_have_attribute(
        "aria-label", re.compile(r"queued .* compile .* store")
    )
    artifact = detail.locator(".artifact-table tbody tr", has_text="math.wasm")
    expect(artifact.locator("a")).to_have_attribute(
        "href", re.compile(r"/api/builds/.+/math\.wasm$")
    )
    expect(artifact.locator("td").nth(2)).to_have_text(re.compile(r"\d+ B"))
    expect(artifact.locator("td").nth(3)).not_to_have_text("…")


def test_cancel_a_running_build_from_the_ui(server: GatedServer, page: Page) -> None:
    open_dashboard(page)
    page.locator("#f-language").select_option("c")
    page.get_by_role("button", name="Build c").click()
    detail = page.locator("#detail")
    expect(detail.locator("ol.log li", has_text=WAITING)).to_be_visible()
    expect(detail).to_have_attribute("data-status", "running")

    detail.get_by_role("button", name="Cancel").click()
    expect(detail).to_have_attribute("data-status", "cancelled")
    expect(row(page, "c → wasm")).to_have_attribute("data-status", "cancelled")
    expect(detail.get_by_role("button", name="Cancel")).to_be_hidden()
    with httpx.Client(base_url=server.url) as http:
        (build,) = http.get("/api/status").json()["builds"]
    assert build["status"] == "cancelled"


def test_reconnects_and_resynchronises_after_a_server_restart(
    server: GatedServer, page: Page, page_errors: PageErrors
) -> None:
    # While the server is down the browser reports the refused connections.
    page_errors.allow(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")
    open_dashboard(page)
    page.locator("#f-language").select_option("c")
    page.get_by_role("button", name="Build c").click()
    c_row = row(page, "c → wasm")
    expect(c_row).to_have_attribute("data-status", "running")
    page.evaluate("window.notReloaded = true")

    port = server.port
    server.stop()  # the running build ends while the page cannot hear about it
    banner = page.locator(".pf-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("lost")
    expect(page.locator("#live")).to_have_text(re.compile("offline|connecting"))

    server.args = (*server.args, "--port", str(port))
    server.start()
    expect(page.locator("#live")).to_have_text("live", timeout=30_000)
    expect(banner).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-syncs", "2")
    expect(c_row).to_have_attribute("data-status", re.compile("^(cancelled|failed)$"))
    expect(page.locator("#detail")).to_have_attribute(
        "data-status", re.compile("^(cancelled|failed)$")
    )
    assert page.evaluate("window.notReloaded") is True

    # Events flow again on the new connection.
    page.locator("#f-language").select_option("wat")
    page.get_by_role("button", name="Build wat").click()
    expect(row(page, "wat → wasm")).to_have_attribute("data-status", "completed")
    expect(page.locator("#detail ol.log li", has_text="built add.wasm")).to_be_visible()


def test_filters_by_language_and_status(server: GatedServer, page: Page) -> None:
    server.gate.touch()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        server.build_all()
        broken = {"main.c": "int add(int a, int b) {\n  return a + b\n}\n"}
        failed = http.post("/api/compile", json={"language": "c", "files": broken}).json()
    open_dashboard(page)
    rows = page.locator("li.build")
    expect(rows).to_have_count(5)
    expect(row(page, "c → wasm").and_(page.locator("[data-status=failed]"))).to_have_count(1)

    page.locator("#filter-language").select_option("wat")
    expect(rows).to_have_count(1)
    expect(row(page, "wat → wasm")).to_have_count(1)
    page.locator("#filter-language").select_option("c")
    expect(rows).to_have_count(2)
    page.locator("#filter-status").select_option("failed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", failed["buildId"])
    assert "language=c" in page.url and "status=failed" in page.url

    # Filters live in the URL, and the status counts toggle the status filter.
    page.reload()
    expect(rows).to_have_count(1)
    page.locator("#filter-language").select_option("")
    page.locator("#counts [data-status=completed]").click()
    expect(rows).to_have_count(4)
    expect(page.locator("li.build[data-status=completed]")).to_have_count(4)
    page.locator("#counts [data-status=completed]").click()
    expect(rows).to_have_count(5)

    # The failed build's diagnostics lead to the log lines that report them.
    page.locator(f"li.build[data-id='{failed['buildId']}'] button.b-open").click()
    diagnostic = page.locator("#detail button.diag").first
    expect(diagnostic).to_contain_text("main.c:2")
    diagnostic.click()
    highlighted = page.locator("#detail ol.log li.highlight")
    expect(highlighted).to_contain_text("main.c:2")
    expect(highlighted).to_have_attribute("data-stream", "stderr")


def test_phone_width_has_no_horizontal_overflow(
    server: GatedServer, phone_page: Page, shot: Callable[[Page, str], Path]
) -> None:
    server.gate.touch()
    server.build_all()
    page = phone_page
    open_dashboard(page)
    expect(page.locator("li.build[data-status=completed]")).to_have_count(len(LANGUAGES))
    expect(page.locator("#plot-durations canvas")).to_have_count(1)
    assert no_horizontal_overflow(page)
    row(page, "rust → wasm").locator("button.b-open").click()
    detail = page.locator("#detail")
    expect(detail.locator(".artifact-table")).to_be_visible()
    expect(detail.locator("ol.log li").first).to_be_visible()
    assert no_horizontal_overflow(page)

    # Rebuilding an unchanged build is answered from the cache, and the view follows it.
    first = detail.locator(".d-id").text_content()
    detail.get_by_role("button", name="Rebuild").click()
    expect(detail.locator(".d-id")).not_to_have_text(first or "")
    expect(detail).to_have_attribute("data-status", "completed")
    expect(detail.locator(".d-head .badge", has_text="cached")).to_be_visible()
    expect(row(page, "rust → wasm").locator(".b-cached")).to_have_count(2)
    expect(row(page, "rust → wasm").locator(".b-cached").first).to_be_visible()
    # rust's lib.wasm is big enough to be sent compressed.
    expect(detail.locator(".artifact-table td").nth(3)).to_have_text(
        re.compile(r"\d.* (br|gzip) \(\d+%\)")
    )
    assert no_horizontal_overflow(page)

    detail.get_by_role("button", name="Close build details").click()
    expect(detail).to_be_hidden()
    assert no_horizontal_overflow(page)
    shot(page, "dashboard-phone")


def test_hundreds_of_builds_show_in_a_bounded_list(server: GatedServer, page: Page) -> None:
    count = 250  # more than the 200 rows the list draws at first
    open_dashboard(page)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        ids = [http.post("/api/build/wat", json={}).json()["buildId"] for _ in range(count)]
    counts = page.locator("#counts [data-status=completed]")
    expect(counts).to_have_text(f"{count} completed")
    rows = page.locator("li.build")
    expect(rows).to_have_count(200)
    footer = page.locator("#list-footer")
    expect(footer).to_contain_text(f"Showing 200 of {count} builds")
    expect(rows.first).to_have_attribute("data-id", ids[-1])  # newest first
    footer.get_by_role("button", name="Show more").click()
    expect(rows).to_have_count(count)
    expect(rows.last).to_have_attribute("data-id", ids[0])
    with httpx.Client(base_url=server.url) as http:
        builds = http.get("/api/status", params={"limit": count}).json()["builds"]
    cached = sum(1 for build in builds if build["cached"])
    assert cached >= count - 2  # all but the first compile or two are cache hits
    expect(page.locator("li.build .b-cached:visible")).to_have_count(cached)


def test_fetched_and_streamed_log_lines_meet_without_copies(
    server: GatedServer, page: Page
) -> None:
    """The log view's seam: lines streamed after the fetch may repeat its last lines."""
    page.goto("/dashboard")
    results = page.evaluate(
        """async () => {
            const { Seam } = await import("/_pf/dashboard-detail.js");
            const line = (text) => ({ stream: "stdout", text });
            const run = (fetched, batches, force = false) => {
                const seam = new Seam();
                seam.fetched(fetched.map(line));
                let fresh = null;
                for (const batch of batches) {
                    seam.stream(batch.map(line));
                    fresh = seam.settle(false);
                }
                if (fresh === null && force) fresh = seam.settle(true);
                return fresh && fresh.map((l) => l.text);
            };
            return {
                lagging: run(["a", "b", "c"], [["b"], ["c", "d"]]),
                all_new: run(["a", "b"], [["c", "d"]]),
                nothing_fetched: run([], [["a"]]),
                all_copies: run(["a", "b", "c"], [["b", "c"]]),
                undecided: run(["a", "b", "c"], [["a", "b"]]),
                undecided_forced: run(["a", "b", "c"], [["a", "b"]], true),
            };
        }"""
    )
    assert results == {
        "lagging": ["d"],
        "all_new": ["c", "d"],
        "nothing_fetched": ["a"],
        "all_copies": [],
        "undecided": None,  # "a", "b" might be followed by "c": wait for more
        "undecided_forced": [],
    }
