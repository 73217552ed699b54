"""The page at `/`, in Debian's chromium (headless, driven by Playwright), against a real
gunicorn and prefork worker: run echo, sleep and hang, watch log lines arrive, cancel, see the
in-progress message, the input form built from a workflow's schema with a wrong value shown by
its field, and the token prompt. Screenshots: test-output/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import screenshot
from tests.support.http import request
from tests.support.procs import Gunicorn
from worker.core.status import RunStatus

pytestmark = pytest.mark.browser
TIMEOUT = 15_000  # ms


def expect():  # imported late: the module must import (and skip) without playwright's browser
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def card(page, workflow: str):
    return page.locator(f'section.workflow[data-workflow="{workflow}"]')


def status_of(page, workflow: str):
    return card(page, workflow).locator(".run .status strong")


def open_page(page, url: str) -> None:
    page.goto(url + "/")
    expect()(page.get_by_role("button", name="Test run echo")).to_be_visible(timeout=TIMEOUT)


def test_echo_succeeds_and_shows_its_result(page_stack, page):
    open_page(page, page_stack["URL"])
    page.get_by_label("Input for echo").fill('{"hello": "world"}')
    page.get_by_role("button", name="Test run echo").click()
    message = card(page, "echo").locator(".message")
    expect()(message).to_contain_text("started", timeout=TIMEOUT)
    assert "completed" not in message.inner_text()
    expect()(status_of(page, "echo")).to_have_text(RunStatus.SUCCEEDED, timeout=TIMEOUT)
    expect()(card(page, "echo").locator("pre.result")).to_contain_text('"hello": "world"')
    expect()(card(page, "echo").locator(".logs li")).to_contain_text(["echoing 1 field"])
    expect()(page.get_by_role("button", name="Run again echo")).to_be_visible()
    screenshot(page, "echo-succeeded", card(page, "echo"))


def test_invalid_json_is_caught_in_the_page(page_stack, page):
    open_page(page, page_stack["URL"])
    page.get_by_label("Input for echo").fill("{not json")
    page.get_by_role("button", name="Test run echo").click()
    expect()(card(page, "echo").locator(".message")).to_contain_text("not valid JSON")
    screenshot(page, "echo-invalid-json", card(page, "echo"))
    status, body = request("GET", page_stack["URL"] + "/api/workflows/echo")
    assert status == 200 and body["active_run_id"] is None


def test_the_input_form_comes_from_the_schema_and_a_wrong_value_is_shown_by_its_field(
        page_stack, page):
    open_page(page, page_stack["URL"])
    seconds = page.get_by_label("seconds for sleep")
    expect()(seconds).to_have_value("5", timeout=TIMEOUT)  # the schema's default
    expect()(page.get_by_label("message for fail")).to_have_value("boom")
    expect()(page.get_by_label("Input for hang")).to_be_visible()  # no schema: the JSON box
    seconds.fill("soon")
    page.get_by_role("button", name="Test run sleep").click()
    error = card(page, "sleep").locator("#input-sleep-seconds-error")
    expect()(error).to_contain_text("valid number", timeout=TIMEOUT)
    expect()(seconds).to_have_attribute("aria-invalid", "true")
    expect()(card(page, "sleep").locator(".message")).to_contain_text("Not started")
    screenshot(page, "sleep-invalid-input", card(page, "sleep"))
    status, body = request("GET", page_stack["URL"] + "/api/workflows/sleep")
    assert status == 200 and body["active_run_id"] is None  # nothing reached a worker
    seconds.fill("1")  # put right, it starts, and the error is gone
    page.get_by_role("button", name="Test run sleep").click()
    expect()(status_of(page, "sleep")).to_have_text(RunStatus.SUCCEEDED, timeout=TIMEOUT)
    expect()(error).to_be_empty()


def test_sleep_shows_log_lines_before_it_ends(page_stack, page):
    open_page(page, page_stack["URL"])
    page.get_by_label("seconds for sleep").fill("4")
    page.get_by_role("button", name="Test run sleep").click()
    logs = card(page, "sleep").locator(".logs li")
    expect()(logs.filter(has_text="slept 1s")).to_have_count(1, timeout=TIMEOUT)
    # the line is on screen while the run still runs
    expect()(status_of(page, "sleep")).to_have_text(RunStatus.RUNNING)
    expect()(card(page, "sleep").locator(".state")).to_contain_text("running since")
    screenshot(page, "sleep-running-with-logs", card(page, "sleep"))
    expect()(status_of(page, "sleep")).to_have_text(RunStatus.SUCCEEDED, timeout=TIMEOUT)
    expect()(logs.filter(has_text="slept 3s")).to_have_count(1)
    screenshot(page, "sleep-succeeded", card(page, "sleep"))


def test_hang_runs_then_a_second_click_queues_it_to_run_next(page_stack, page):
    """While a run is in progress, Test run queues: the new run is shown under the running one
    ("will run next"); a cancelled pending run leaves it; a cancelled running run's slot passes
    once its body has stopped, and the page sees it (idle)."""
    open_page(page, page_stack["URL"])
    page.get_by_role("button", name="Test run hang").click()
    expect()(status_of(page, "hang")).to_have_text(RunStatus.RUNNING, timeout=TIMEOUT)
    running = card(page, "hang").locator(".state").get_by_role("link")
    expect()(running).to_have_text(re.compile(r"^hang-[0-9a-f]{32}$"), timeout=TIMEOUT)
    first = running.inner_text()
    expect()(card(page, "hang").locator("button.trigger")).to_have_text("Queue test run",
                                                                        timeout=TIMEOUT)
    screenshot(page, "hang-running", card(page, "hang"))

    page.get_by_role("button", name="Test run hang").click()
    message = card(page, "hang").locator(".message")
    expect()(message).to_contain_text("will run next", timeout=TIMEOUT)
    expect()(status_of(page, "hang")).to_have_text(RunStatus.PENDING, timeout=TIMEOUT)
    pending = card(page, "hang").locator(".pending")
    expect()(pending).to_contain_text("Will run next", timeout=TIMEOUT)
    second = pending.get_by_role("link").inner_text()
    assert re.fullmatch(r"hang-[0-9a-f]{32}", second) and second != first
    screenshot(page, "hang-will-run-next", card(page, "hang"))

    page.get_by_role("button", name=f"Cancel {second}").click()
    expect()(status_of(page, "hang")).to_have_text(RunStatus.CANCELLED, timeout=TIMEOUT)
    expect()(pending).to_be_hidden(timeout=TIMEOUT)
    status, _ = request("POST", f"{page_stack['URL']}/api/test-runs/{first}/cancel")
    assert status == 202
    expect()(card(page, "hang").locator(".state")).to_have_text("State: idle", timeout=TIMEOUT)
    expect()(card(page, "hang").locator("button.trigger")).to_have_text("Test run")
    screenshot(page, "hang-cancelled", card(page, "hang"))
    status, body = request("GET", page_stack["URL"] + "/api/workflows/hang")
    assert body["active_run_id"] is None and body["pending_run_id"] is None


def test_with_a_token_the_page_asks_for_it_once(page_stack, page):
    server = Gunicorn(dict(page_stack, API_TOKENS="alice:s3cret-a"), workers=1,
                      threads=2).wait_ready()
    try:
        page.goto(server.url + "/")
        form = page.get_by_role("heading", name="This service needs an API token")
        expect()(form).to_be_visible(timeout=TIMEOUT)
        screenshot(page, "token-asked")
        page.get_by_role("textbox", name="API token").fill("wrong")
        page.get_by_role("button", name="Use token").click()
        expect()(page.get_by_text("That token was refused.")).to_be_visible(timeout=TIMEOUT)
        page.get_by_role("textbox", name="API token").fill("s3cret-a")
        page.get_by_role("button", name="Use token").click()
        expect()(page.get_by_role("button", name="Test run echo")).to_be_visible(timeout=TIMEOUT)
        assert page.evaluate("document.cookie") == ""
        page.reload()  # kept for the tab's session: not asked again
        expect()(page.get_by_role("button", name="Test run echo")).to_be_visible(timeout=TIMEOUT)
        screenshot(page, "token-accepted")
    finally:
        server.kill_group()
