"""The compile playground at ``/playground``, in chromium, compiling through a real pf serve."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import WebServer, no_horizontal_overflow

Shot = Callable[[Page, str], Path]
COMPILE = 60_000  # upper bound for a wait on a compiler (a cold machine compiles slowly)

BROKEN = """\
int add(int a, int b) {
    int sum = a + b;
    return sum
}
"""
FIXED = """\
int add(int a, int b) {
    int sum = a + b;
    return sum;
}

int halve(int x) {
    if (x % 2) {
        __builtin_trap();
    }
    return x / 2;
}
"""


def compile_source(page: Page, text: str, target: str = "wasm") -> None:
    page.locator("select[name=target]").select_option(target)
    page.locator("#source").fill(text)
    page.locator("#compile").click()


def export(page: Page, name: str) -> Locator:
    return page.locator(f"#exports form[data-export={name}]")


def call(row: Locator, *args: str) -> Locator:
    for index, value in enumerate(args):
        row.locator("input").nth(index).fill(value)
    row.get_by_role("button", name="Call").click()
    return row.locator("output")


def test_an_error_shows_at_its_line_then_the_fixed_function_runs(
    server: WebServer, page: Page, shot: Shot
) -> None:
    page.goto("/playground")
    compile_source(page, BROKEN)
    expect(page.locator("#status")).to_have_text("failed", timeout=COMPILE)

    marker = page.locator(".gutter [data-line='3']")
    expect(marker).to_have_class("mark error")
    expect(marker).to_have_attribute("title", "error: expected ';' after return statement")
    expect(page.locator(".gutter .mark")).to_have_count(1)
    expect(page.locator(".highlights .band.error[data-line='3']")).to_be_visible()
    expect(page.locator(".messages .note[data-line='3']")).to_have_text(
        "expected ';' after return statement"
    )
    listed = page.locator("#diagnostics li[data-line='3']")
    expect(listed).to_contain_text("main.c:3:")
    expect(listed).to_contain_text("expected ';' after return statement")
    expect(page.locator("#log")).to_contain_text("1 error generated.")
    listed.get_by_role("button").click()
    expect(page.locator("#cursor")).to_contain_text("line 3")
    shot(page, "playground-diagnostics")

    compile_source(page, FIXED)
    expect(page.locator("#status")).to_have_text("completed", timeout=COMPILE)
    expect(page.locator(".gutter .mark")).to_have_count(0)
    expect(export(page, "add")).to_contain_text("add(i32, i32) → i32")
    expect(call(export(page, "halve"), "84")).to_have_text("= 42")
    expect(call(export(page, "add"), "1.5", "2")).to_contain_text("must be an integer")
    expect(call(export(page, "add"), "5", "7")).to_have_text("= 12")
    expect(call(export(page, "halve"), "7")).to_have_text("trap: unreachable")
    shot(page, "playground")


def test_llvm_ir_and_asm_js_show_the_produced_text(server: WebServer, page: Page) -> None:
    page.goto("/playground")
    compile_source(page, FIXED, target="llvm")
    text = page.locator("#text-output")
    expect(text).to_contain_text("define", timeout=COMPILE)
    expect(text).to_contain_text("@add(")
    expect(page.locator("#artifacts")).to_contain_text("main.ll")

    compile_source(page, FIXED, target="asm")
    expect(text).to_contain_text("export var add", timeout=COMPILE)
    expect(page.locator("#artifacts")).to_contain_text("main.mjs")
    expect(page.locator("#exports")).to_be_hidden()


def test_rust_exports_keep_their_types(server: WebServer, page: Page) -> None:
    page.goto("/playground")
    page.locator("select[name=language]").select_option("rust")
    expect(page.locator("#file-name")).to_have_text("lib.rs")
    page.locator("#compile").click()  # the Rust example as it is
    fibonacci = export(page, "fibonacci")
    expect(fibonacci).to_contain_text("fibonacci(i32) → i64", timeout=COMPILE)
    expect(call(fibonacci, "90")).to_have_text("= 2880067194370816120")


def test_phone_width_and_a_wat_trap(server: WebServer, phone_page: Page) -> None:
    phone_page.goto("/playground")
    phone_page.locator("select[name=language]").select_option("wat")
    phone_page.locator("#compile").click()  # the WAT example: add and div
    expect(call(export(phone_page, "div"), "7", "0")).to_have_text(
        "trap: divide by zero", ignore_case=True
    )
    expect(call(export(phone_page, "add"), "10", "15")).to_have_text("= 25")
    assert no_horizontal_overflow(phone_page)


def test_the_editor_indents_and_keeps_drafts(server: WebServer, page: Page) -> None:
    page.goto("/playground")
    source = page.locator("#source")
    source.fill("int f(void) {\n")
    source.press("End")
    source.press("Tab")
    source.press_sequentially("return 1;")
    expect(source).to_have_value("int f(void) {\n    return 1;")
    expect(page.locator(".gutter-lines div")).to_have_count(2)
    source.press("Escape")
    source.press("Tab")  # after Escape, Tab leaves the editor
    expect(source).not_to_be_focused()

    page.locator("select[name=language]").select_option("wat")
    expect(source).to_have_value(re.compile(r"^;; A hand-written module"))
    page.locator("select[name=language]").select_option("c")
    expect(source).to_have_value("int f(void) {\n    return 1;")
    page.reload()
    expect(page.locator("select[name=language]")).to_have_value("c")
    expect(source).to_have_value("int f(void) {\n    return 1;")
    page.get_by_role("button", name="Reset example").click()
    expect(source).to_have_value(re.compile(r"^/\* Every function is exported"))


def test_a_c_program_runs_as_a_wasi_command(server: WebServer, page: Page) -> None:
    page.goto("/playground")
    compile_source(
        page, '#include <stdio.h>\nint main(void) { printf("hi %d\\n", 42); return 3; }\n'
    )
    run = export(page, "_start")
    run.get_by_role("button", name="Run").click(timeout=COMPILE)
    expect(run.locator("output")).to_have_text("exit code 3")
    expect(run.locator("pre.stdout")).to_have_text("hi 42\n")
