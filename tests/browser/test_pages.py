"""pf's own pages and scripts are served, by the browser, with the npm libraries from set-up."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.browser.conftest import PageErrors, WebServer


def test_ui_assets_and_vendored_libraries_are_served(server: WebServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        for path, kind in (
            ("/_pf/common.js", "javascript"),
            ("/_pf/pf.css", "css"),
            ("/_pf/vendor/uplot/uPlot.esm.js", "javascript"),
            ("/_pf/vendor/uplot/uPlot.min.css", "css"),
            ("/_pf/vendor/editor.js", "javascript"),  # the editor setup bundled
        ):
            answer = http.get(path, headers={"Accept-Encoding": "br"})
            assert answer.status_code == 200, path
            assert kind in answer.headers["content-type"], path
            assert answer.headers["etag"].startswith('"'), path


def test_common_module_loads_in_the_browser_and_talks_to_the_api(
    server: WebServer, page: Page, page_errors: PageErrors
) -> None:
    page_errors.allow(r"/api/build/nope|status of 4\d\d")  # refused on purpose below
    page.goto("/_pf/pf.css")  # any same-origin document: the module is imported below
    health = page.evaluate(
        """async () => {
            const common = await import("/_pf/common.js");
            const health = await common.api("GET", "/api/health");
            let refused = null;
            try { await common.api("POST", "/api/build/nope", {}); }
            catch (error) { refused = [error.name, error.status, error.message]; }
            return {health, refused, size: common.formatBytes(1536)};
        }"""
    )
    assert health["health"]["status"] in ("ok", "healthy")
    assert health["refused"][0] == "ApiError" and 400 <= health["refused"][1] < 500
    assert health["size"] == "1.5 KiB"
