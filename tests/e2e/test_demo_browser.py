"""End to end in a real headless Chromium: `chatpersona demo` serving the UI, a chat with a
user who has a past billing issue, CSAT, and the profile and dashboard updating.

Chromium is Debian's (`make test` installs it); Playwright for Python drives it through
``executable_path`` so no browser is downloaded.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    out = tmp_path_factory.mktemp("demo")
    port = _free_port()
    log = out / "demo.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatpersona.cli.main", "demo", "--users", "300",
             "--seed", "11", "-o", str(out), "--port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "400"},
        )  # fmt: skip
    deadline = time.monotonic() + 300
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ctrl-C stops everything" in text or proc.poll() is not None:
            break
        time.sleep(1)
    if "Ctrl-C stops everything" not in text:
        proc.kill()
        pytest.fail(f"demo did not come up:\n{text[-3000:]}")
    key = re.search(r"^(cp_[A-Za-z0-9_-]+)\s*$", text, re.M)
    assert key, text
    yield {"url": f"http://127.0.0.1:{port}/", "key": key.group(1), "log": str(log)}
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("demo did not stop within 30 s of Ctrl-C")
    assert "stopped cleanly" in log.read_text(errors="replace")


def test_chat_with_a_past_billing_issue_updates_profile_and_dashboard(
    demo_server: dict[str, str], artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        external: list[str] = []
        page.on(
            "request",
            lambda r: external.append(r.url) if not r.url.startswith(demo_server["url"]) else None,
        )
        page.goto(demo_server["url"] + "?key=" + demo_server["key"])

        # A demo user whose open issue is about billing (invoice / payment / refund).
        picker = page.get_by_test_id("demo-user")
        expect(picker.locator("option")).not_to_have_count(1, timeout=20_000)
        options = picker.locator("option").all()
        billing = [
            o.get_attribute("value")
            for o in options
            if re.search(r"INVOICE|PAYMENT|REFUND", o.inner_text(), re.I)
        ]
        assert billing, [o.inner_text() for o in options]
        picker.select_option(billing[0])
        page.get_by_test_id("start").click()

        greeting = page.get_by_test_id("bot-message").first
        expect(greeting).to_contain_text(
            re.compile(r"invoice|payment|refund|factura|pago|reembolso", re.I), timeout=20_000
        )

        page.get_by_test_id("message").fill("I can't find my invoice for last month")
        page.get_by_test_id("send").click()
        expect(page.get_by_test_id("bot-message")).not_to_have_count(1, timeout=20_000)
        reply = page.get_by_test_id("bot-message").last
        expect(reply).to_contain_text(re.compile(r"invoice|factura", re.I))

        page.get_by_test_id("end").click()
        page.get_by_test_id("csat").locator("[data-value='5']").click()
        page.get_by_test_id("submit-rating").click()

        expect(
            page.locator("[data-testid='changes'] li[data-field='feedback.csat_count']")
        ).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("feed").locator("li")).not_to_have_count(0, timeout=20_000)
        expect(page.get_by_test_id("segment-cards").locator("*").first).to_be_visible()
        expect(page.get_by_test_id("map").locator("circle").first).to_be_attached()
        page.screenshot(path=str(artifacts_dir / "e2e-demo-chat.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert not external, f"the UI fetched something off the server: {external[:5]}"
