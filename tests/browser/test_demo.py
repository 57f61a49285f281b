"""The polyglot demo page at ``/``, in chromium, against modules a real pf serve built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import PageErrors, WebServer, no_horizontal_overflow

Shot = Callable[[Page, str], Path]
# Upper bounds for waits on a compiler or a reconnection (a cold machine compiles slowly).
BUILD = 60_000
RECONNECT = 20_000


def call(page: Page, language: str, function: str) -> None:
    page.locator(f"#{language} form[data-call={function}] button").click()


def result(page: Page, language: str, function: str) -> Locator:
    return page.locator(f"#{language} form[data-call={function}] output")


def test_every_button_calls_its_module(built_server: WebServer, page: Page, shot: Shot) -> None:
    page.goto("/")
    for language in ("rust", "wat", "c", "fortran"):
        expect(page.locator(f"#{language} [data-role=state]")).to_contain_text("loaded")

    call(page, "rust", "add")
    expect(result(page, "rust", "add")).to_have_text("= 12")
    call(page, "rust", "fibonacci")
    expect(result(page, "rust", "fibonacci")).to_have_text("= 55")
    page.locator("#rust form[data-call=greet] input").fill("Ferris")
    call(page, "rust", "greet")
    expect(result(page, "rust", "greet")).to_have_text("= Hello, Ferris!")
    call(page, "wat", "add")
    expect(result(page, "wat", "add")).to_have_text("= 25")
    call(page, "c", "add")
    expect(result(page, "c", "add")).to_have_text("= 42")
    call(page, "fortran", "_start")
    expect(result(page, "fortran", "_start")).to_have_text("= exit code 0")
    expect(page.locator("#fortran [data-role=stdout]")).to_contain_text("Hello from Fortran 42")
    expect(page.locator("#fortran [data-role=stdout]")).to_contain_text("fact(10) = 3628800")
    call(page, "fortran", "fact")
    expect(result(page, "fortran", "fact")).to_have_text("= 3628800")
    shot(page, "demo")


def test_a_trap_shows_an_overlay_that_a_click_closes(built_server: WebServer, page: Page) -> None:
    page.goto("/")
    expect(page.locator("#c [data-role=state]")).to_contain_text("loaded")
    overlay = page.locator("#trap")
    expect(overlay).to_be_hidden()

    call(page, "c", "checked_div")  # 84 / 0
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("checked_div: unreachable")
    expect(result(page, "c", "checked_div")).to_have_text("trap: unreachable")
    overlay.click()
    expect(overlay).to_be_hidden()

    # The module survives its trap: the same instance answers the next calls.
    page.locator("#c form[data-call=checked_div] input[name=b]").fill("2")
    call(page, "c", "checked_div")
    expect(result(page, "c", "checked_div")).to_have_text("= 42")
    call(page, "c", "trap_now")
    expect(overlay).to_contain_text("trap_now: unreachable")
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()


def test_a_missing_module_says_how_to_build_it_and_builds_it(
    server: WebServer, page: Page, page_errors: PageErrors, shot: Shot
) -> None:
    # Nothing is built on this server yet: every module answers 404 until built.
    page.goto("/")
    section = page.locator("#wat")
    expect(section.locator("[data-role=state]")).to_have_text("not built")
    hint = section.locator("[data-role=missing]")
    expect(hint).to_contain_text("pf build demos/polyglot")
    expect(hint).to_contain_text("pf web-build-wat")
    expect(section.locator("form[data-call=add] button")).to_be_disabled()
    shot(page, "demo-missing")

    hint.get_by_role("button", name="Build WAT").click()
    expect(section.locator("[data-role=state]")).to_contain_text("loaded", timeout=BUILD)
    expect(hint).to_be_hidden()
    call(page, "wat", "add")
    expect(result(page, "wat", "add")).to_have_text("= 25")
    # The other languages still offer their build.
    expect(page.locator("#rust [data-role=missing]")).to_contain_text("pf web-build-rust")
    expect(page.locator("#build-all")).to_be_visible()

    # A build started elsewhere (here: the API, as the dashboard does) is followed too.
    with httpx.Client(base_url=server.url) as http:
        http.post("/api/build/c", json={"target": "wasm"}).raise_for_status()
    expect(page.locator("#c [data-role=state]")).to_contain_text("loaded", timeout=BUILD)
    call(page, "c", "add")
    expect(result(page, "c", "add")).to_have_text("= 42")


def test_build_all_builds_every_missing_module(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page.goto("/")
    expect(page.locator("#rust [data-role=state]")).to_have_text("not built")
    page.locator("#build-all").get_by_role("button", name="Build all").click()
    for language in ("rust", "wat", "c", "fortran"):
        expect(page.locator(f"#{language} [data-role=state]")).to_contain_text(
            "loaded", timeout=BUILD
        )
    expect(page.locator("#build-all")).to_be_hidden()
    call(page, "rust", "fibonacci")
    expect(result(page, "rust", "fibonacci")).to_have_text("= 55")


def test_phone_width(built_server: WebServer, phone_page: Page, shot: Shot) -> None:
    phone_page.goto("/")
    expect(phone_page.locator("#fortran [data-role=state]")).to_contain_text("loaded")
    call(phone_page, "fortran", "_start")
    expect(phone_page.locator("#fortran [data-role=stdout]")).to_be_visible()
    call(phone_page, "c", "trap_now")
    expect(phone_page.locator("#trap")).to_be_visible()
    assert no_horizontal_overflow(phone_page)
    phone_page.locator("#trap").click()
    expect(phone_page.locator("#trap")).to_be_hidden()
    assert no_horizontal_overflow(phone_page)
    shot(phone_page, "demo-phone")


def test_a_dropped_connection_is_shown_and_followed_again(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page_errors.allow(r"WebSocket connection to .* failed")
    page.goto("/")
    expect(page.locator("#c [data-role=state]")).to_have_text("not built")
    banner = page.locator(".pf-banner")
    port = server.port
    server.stop()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("lost")
    server.args = (*server.args, "--port", str(port))
    server.start()
    expect(banner).to_be_hidden(timeout=RECONNECT)

    with httpx.Client(base_url=server.url) as http:
        http.post("/api/build/c", json={"target": "wasm"}).raise_for_status()
    expect(page.locator("#c [data-role=state]")).to_contain_text("loaded", timeout=BUILD)
