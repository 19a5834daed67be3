"""The live dashboard (issue 7) in a real browser: headless Chromium signs in at / on the running Ringpool, a SIPp
caller dials a tracking number, the call shows up in the live panel while it is still up (server-sent events from
the storage layer's milestones), ends as completed, and its page shows the timeline, legs and detections.
Screenshots: tests/artifacts/dashboard.png (the call live) and tests/artifacts/dashboard-call.png (its page).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import AsyncIterator

import pytest

from tests.browser.chromium import Chromium, Page
from tests.browser.conftest import ARTIFACTS, chromium_binary  # noqa: F401 (fixture)
from tests.integration.conftest import ADMIN_TOKEN, NUMBERS, Stack, utc_now_iso

pytestmark = [pytest.mark.integration, pytest.mark.browser]

READY = "document.documentElement.dataset.ready === 'true'"
LIVE = "document.getElementById('live-indicator').dataset.state === 'live'"


@pytest.fixture
async def browser(chromium_binary: str) -> AsyncIterator[Chromium]:  # noqa: F811
    # without scrollbars, full-page screenshots are laid out and clipped at the same width
    async with Chromium(binary=chromium_binary, args=("--hide-scrollbars",)) as chromium:
        yield chromium


def unique_caller(prefix: str) -> str:
    """An 11-digit NANP-style caller number no other call in this run has (the clock's microseconds)."""
    return prefix + str(time.time_ns() // 1000)[-(11 - len(prefix)):]


def live_item(caller: str) -> str:
    return f"document.querySelector('#live-calls li[data-caller=\"{caller}\"]')"


def recent_row(call_id: str) -> str:
    return f"document.querySelector('#recent-body tr[data-call-id=\"{call_id}\"]')"


async def sign_in(page: Page, token: str) -> None:
    await page.evaluate(f"document.getElementById('token').value = {json.dumps(token)}")
    await page.click("#signin-submit")


async def figure(page: Page, element_id: str) -> int:
    text = await page.wait_for(f"(t => t !== '–' && t)(document.getElementById('{element_id}').textContent)")
    return int(text)


def csp_violations(page: Page) -> list[str]:
    return [line for line in page.console if "Content Security Policy" in line or "Refused to" in line]


async def test_a_call_appears_live_then_its_page_shows_the_timeline(app: Stack, browser: Chromium) -> None:
    base = f"http://127.0.0.1:{app.admin_port}"
    with urllib.request.urlopen(f"{base}/", timeout=5) as resp:  # the page itself needs no token
        assert resp.status == 200 and "default-src 'self'" in resp.headers["Content-Security-Policy"]

    page = await browser.open(f"{base}/")
    await page.wait_for(READY)
    assert await page.evaluate("document.getElementById('signin-view').hidden") is False

    # a wrong token is refused and not kept
    await sign_in(page, "not-the-admin-token")
    error = await page.wait_for("(e => !e.hidden && e.textContent)(document.getElementById('signin-error'))")
    assert "refused" in error
    assert await page.evaluate("sessionStorage.getItem('ringpool.token')") is None

    await sign_in(page, ADMIN_TOKEN)
    await page.wait_for(LIVE, timeout=10)
    assert await page.evaluate("document.getElementById('dashboard-view').hidden") is False
    assert await page.evaluate("sessionStorage.getItem('ringpool.token')") == ADMIN_TOKEN
    # the panels fed by the API: pools (the stack's pool "web"), the hourly chart, today's figures
    await page.wait_for("document.querySelector('#pools article[data-pool=\"web\"] .bar-track') !== null")
    await page.wait_for("document.querySelector('#hourly-chart svg[role=\"img\"]') !== null")
    calls_before = await figure(page, "stat-calls")

    # a caller dials the plain campaign's number and talks for 3 s once the desk answers
    caller = unique_caller("1555")
    since = utc_now_iso()
    sipp = app.sipp(NUMBERS["plain"], caller=caller, hold_ms=3000, background=True)
    try:
        seen = await page.wait_for(
            f"(li => li && li.dataset.ended === 'false' && {{id: li.dataset.callId, state: li.dataset.state}})"
            f"({live_item(caller)})", timeout=10)
        assert sipp.poll() is None, "SIPp finished before the dashboard showed the call"
        call_id = seen["id"]
        # still up, and updated live when the desk answers and the legs are bridged
        await page.wait_for(f"{live_item(caller)}.dataset.state === 'bridged'", timeout=10)
        assert sipp.poll() is None, "the call ended before it was shown as bridged"
        text = await page.evaluate(f"{live_item(caller)}.textContent")
        assert "(555) 000-1002" in text and "plain" in text and "talking" in text, text
        assert await page.evaluate(f"{recent_row(call_id)}.classList.contains('is-live')")
        # the figures follow the events: today's count, the active count and the current hour's bar
        await page.wait_for(f"Number(document.getElementById('stat-calls').textContent) >= {calls_before + 1} && "
                            "Number(document.getElementById('stat-active').textContent) >= 1 && "
                            "document.querySelector('#hourly-chart g.bar:last-of-type rect[data-campaign=\"plain\"]')"
                            " !== null", timeout=5)
        assert sipp.poll() is None
        await page.screenshot(ARTIFACTS / "dashboard.png")
    finally:
        returncode = await asyncio.to_thread(sipp.wait, 40)
    assert returncode == 0, "the SIPp call failed"

    # the end arrives live too: the row and the live item say completed, without a reload
    await page.wait_for(f"(r => r && r.dataset.disposition === 'completed')({recent_row(call_id)})", timeout=10)
    await page.wait_for(f"(li => !li || (li.dataset.ended === 'true' && li.dataset.disposition === 'completed'))"
                        f"({live_item(caller)})")
    record = await asyncio.to_thread(app.wait_call, since, caller)
    assert (record["id"], record["disposition"], record["campaign"]) == (call_id, "completed", "plain")
    cells = await page.evaluate(f"[...{recent_row(call_id)}.cells].map(c => c.textContent)")
    assert cells[1].startswith(f"({caller[1:4]}) {caller[4:7]}-{caller[7:]}") and cells[2] == "(555) 000-1002"
    assert (cells[3], cells[5]) == ("plain", "completed") and cells[6].endswith(" s"), cells
    await page.wait_for(f"Number(document.getElementById('stat-calls').textContent) >= {calls_before + 1}")

    # the call's page: its timeline, legs and detections
    await page.click(f"#recent-body tr[data-call-id=\"{call_id}\"] a.call-link")
    await page.wait_for(f"location.hash === '#/calls/{call_id}' && "
                        "document.getElementById('call-body').dataset.loaded === 'true'")
    assert await page.evaluate("document.getElementById('dashboard-view').hidden") is True
    title = await page.evaluate("document.getElementById('call-title').textContent")
    assert title == f"Call from {cells[1]} to (555) 000-1002", title
    kinds = await page.evaluate("[...document.querySelectorAll('#call-timeline li')].map(li => li.dataset.kind)")
    assert kinds == [e["kind"] for e in record["events"]]
    for earlier, later in (("arrived", "decision"), ("decision", "bridged"), ("bridged", "ended")):
        assert kinds.index(earlier) < kinds.index(later), kinds
    ended = await page.evaluate("document.querySelector('#call-timeline li[data-kind=\"ended\"]').textContent")
    assert "disposition: completed" in ended
    roles = await page.evaluate("[...document.querySelectorAll('#call-legs tbody tr')].map(r => r.dataset.role)")
    assert sorted(roles) == sorted(leg["role"] for leg in record["legs"]) and "inbound" in roles
    assert await page.evaluate("document.getElementById('call-detections') !== null || "
                               "document.querySelector('#call-body .empty') !== null")
    await page.screenshot(ARTIFACTS / "dashboard-call.png")

    await page.click("p.back a")
    await page.wait_for("!document.getElementById('dashboard-view').hidden && location.hash === '#/'")
    assert page.errors == [], page.errors
    assert csp_violations(page) == [], page.console


async def test_a_refused_call_flashes_by_and_counts_as_spam_blocked(app: Stack, browser: Chromium) -> None:
    page = await browser.open(f"http://127.0.0.1:{app.admin_port}/")
    await page.wait_for(READY)
    await sign_in(page, ADMIN_TOKEN)
    await page.wait_for(LIVE, timeout=10)
    blocked_before = await figure(page, "stat-spam")

    caller = unique_caller("1555")
    since = utc_now_iso()
    result = await asyncio.to_thread(app.sipp, "15559990000", caller=caller, hold_ms=500, timeout=10)
    assert result.returncode != 0  # 404 before answer
    seen = await page.wait_for(
        f"(li => li && li.dataset.ended === 'true' && {{id: li.dataset.callId, disposition: li.dataset.disposition}})"
        f"({live_item(caller)})", timeout=10)
    assert seen["disposition"] == "rejected"
    await page.wait_for(f"(r => r && r.dataset.disposition === 'rejected')({recent_row(seen['id'])})")
    await page.wait_for(f"Number(document.getElementById('stat-spam').textContent) >= {blocked_before + 1}")
    status, calls = await asyncio.to_thread(app.api, f"/api/v1/calls?number={caller}&since={since}")
    assert status == 200 and [c["id"] for c in calls["calls"]] == [seen["id"]]
    assert calls["calls"][0]["decision"] == "reject"
    # it lingers a few seconds, then leaves the live panel
    await page.wait_for(f"{live_item(caller)} === null", timeout=15)
    assert page.errors == [] and csp_violations(page) == [], page.console
