"""Signing in to pf's pages once the server has tokens: the form, the cookie, signing out."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageErrors, WebServer
from tests.server.test_auth import make_token, until_status, wait_for_tokens


def test_dashboard_signs_in_with_a_token_and_out_again(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page_errors.allow(r"status of 401|/api/|/ws")  # refused until signed in, on purpose
    token = make_token(server, "alice", "build")
    with httpx.Client(base_url=server.url) as http:
        wait_for_tokens(http, token)
    page.goto("/dashboard")
    form = page.locator("#pf-signin")
    expect(form).to_be_visible()
    page.fill("#pf-token", "pf_wrong")
    form.locator("button").click()
    expect(form.locator("[role=alert]")).to_contain_text("unknown or revoked")
    page.fill("#pf-token", token)
    form.locator("button").click()
    expect(page.locator("#pf-signout")).to_be_visible()
    expect(page.locator(".pf-user")).to_have_text("alice (build)")
    expect(page.locator("#pf-signin")).to_have_count(0)
    expect(page.locator("#live")).to_have_attribute("data-state", "open")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["pf_session"]["httpOnly"] and cookies["pf_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.locator("#pf-signout").click()
    expect(page.locator("#pf-signin")).to_be_visible()


def test_playground_shows_the_form_when_the_api_wants_a_token(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page_errors.allow(r"status of 401|/api/")
    make_token(server, "bob", "read")
    with httpx.Client(base_url=server.url) as http:
        until_status(http, "/api/status", 401)
    page.goto("/playground")
    expect(page.locator("#pf-signin")).to_be_visible()
