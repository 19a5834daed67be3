"""End to end in a real browser (issue #4): headless Chromium opens the sample landing pages, the snippet leases
a tracking number (or an extension) from the running Ringpool over CORS and swaps it into the page, and a SIP
call to what the page shows is attributed to that browser session with its ad data.

The sample pages are served from a separate origin (the configuration's `page_origin` port, which the pools
allow), with the snippet tag pointing at the real admin server, so every snippet request is cross-origin. The
pool "web" is shared with test_attribution.py in the same Stack: when that ran first its leases are still
there, so a new visitor may get a reassigned number or, while every lease is younger than min_lease (5 s), the
overflow number; the visitor then waits and refreshes until it holds a real lease. When this file runs first,
the leases it took are released at the end (as if the visitors left an hour ago) so the pool is as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator
from urllib.parse import urlencode

import pytest
from aiohttp import web

from ari_app.testcall import run_softphone
from tests.browser.chromium import BrowserError, Chromium, Page
from tests.browser.conftest import ARTIFACTS, browser, chromium_binary  # noqa: F401 (fixtures)
from tests.integration.conftest import NUMBERS, POOL_SITE_KEY, Stack, utc_now_iso

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SAMPLES = Path(__file__).resolve().parents[2] / "web" / "sample"
READY = "document.documentElement.dataset.ringpool === 'ready'"
DEFAULT_NUMBER = re.compile(r"(?:\+?1[\s.-]*)?\(?555\)?[\s.-]*010[\s.-]*0001")  # the pages' default, any format
GA_COOKIE = "GA1.1.987654321.1712345678"
LANDING_QUERY = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
                 "utm_term": "emergency plumber", "gclid": "TeSt123"}
EXT_QUERY = {"utm_source": "facebook", "utm_medium": "paid-social", "utm_campaign": "spring-ext",
             "fbclid": "FbTest456"}
POOL_NUMBERS = {NUMBERS["pool_a"], NUMBERS["pool_b"], NUMBERS["inventory"]}
TEL_HREFS = "[...document.querySelectorAll('a[href^=\"tel:\"]')].map(a => a.getAttribute('href'))"
SHOWN = """({
    h1: document.querySelector('h1 .number').textContent,
    header: document.querySelector('header a.phone').textContent,
    hero: document.querySelector('.hero p').textContent,
    footer: document.querySelector('footer span').textContent,
    text: document.body.innerText,
})"""


# --- the page origin -------------------------------------------------------------------------------------------

@pytest.fixture
async def origin(app: Stack) -> AsyncIterator[str]:
    """A static site on the page_origin port serving web/sample/*.html with the snippet tag filled in for the
    running Ringpool: the script comes from the admin server, another origin."""
    api = f"http://127.0.0.1:{app.admin_port}"

    async def sample(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        html = (SAMPLES / name).read_text(encoding="utf-8")
        pool = "ext" if name == "ext.html" else "web"
        for placeholder, value in (("{{api}}", api), ("{{pool}}", pool), ("{{key}}", POOL_SITE_KEY)):
            html = html.replace(placeholder, value)
        assert f'src="{api}/t.js" data-pool="{pool}"' in html and 'data-number="+1 555 010 0001"' in html
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    site = web.Application()
    site.router.add_get("/{name:(landing|ext)\\.html}", sample)
    runner = web.AppRunner(site)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", app.ports["page_origin"]).start()
    try:
        yield f"http://127.0.0.1:{app.ports['page_origin']}"
    finally:
        await runner.cleanup()


# --- cleaning up the shared pool -------------------------------------------------------------------------------

@pytest.fixture
def release_my_leases(app: Stack) -> Iterator[None]:
    """Afterwards, the leases of this file's visitors (sessions that landed on its pages) are ended through the
    admin API: test_attribution.py expects the pool as configured when it runs after this file."""
    yield
    pages = (f"http://127.0.0.1:{app.ports['page_origin']}/", f"http://127.0.0.1:{app.admin_port}/demo/")
    status, pool = app.api("/api/v1/pools/web")
    assert status == 200, pool
    for number in pool["numbers_detail"]:
        if number["state"] != "leased" or not number["session_id"]:
            continue
        status, session = app.api(f"/api/v1/sessions/{number['session_id']}")
        if status == 200 and (session["landing_page"] or "").startswith(pages):
            status, released = app.delete(f"/api/v1/sessions/{number['session_id']}/lease")
            assert status == 200 and released["released"] == [number["number"]], released


# --- helpers ---------------------------------------------------------------------------------------------------

async def visit(browser: Chromium, url: str, *, cookie_url: str | None = None) -> Page:
    """A visitor (with Google Analytics' _ga cookie for `cookie_url`) opens `url`; returns once the snippet
    swapped in the number it was given."""
    page = await browser.open()
    if cookie_url:
        await page.set_cookie("_ga", GA_COOKIE, cookie_url)
    await page.goto(url)
    await page.wait_for(READY, timeout=10)
    return page


async def real_lease(page: Page, timeout: float = 40.0) -> dict[str, Any]:
    """The visitor's lease, once it is a pool number and not the overflow number: every lease younger than
    min_lease (5 s) means overflow; after that the least active lease can be reassigned to this visitor."""
    lease = await page.evaluate("Ringpool.lease")
    deadline = time.monotonic() + timeout
    while lease["overflow"]:
        assert time.monotonic() < deadline, f"still the overflow number after {timeout} s: {lease}"
        await asyncio.sleep(6)
        lease = await page.evaluate("Ringpool.refresh()")
    await page.wait_for(f"document.querySelector('h1 .number').textContent === {json.dumps(lease['display'])}")
    return lease


async def leave(page: Page) -> None:
    """The visitor goes away without the snippet's last page view by beacon, which would renew the lease
    (or lease an extension again after a call released it) and outlive the test."""
    with contextlib.suppress(BrowserError, TimeoutError):  # never hide why the test failed
        await page.evaluate("navigator.sendBeacon = () => true")
        await page.close()


async def api(stack: Stack, path: str) -> Any:
    status, body = await asyncio.to_thread(stack.api, path)
    assert status == 200, (path, body)
    return body


async def holder_of(stack: Stack, pool: str, number: str) -> dict[str, Any]:
    detail = (await api(stack, f"/api/v1/pools/{pool}"))["numbers_detail"]
    return next(n for n in detail if n["number"] == number)


def assert_swapped(shown: dict[str, str], display: str) -> None:
    assert (shown["h1"], shown["header"], shown["footer"]) == (display, display, display)
    assert display in shown["hero"]
    assert not DEFAULT_NUMBER.search(shown["text"]), shown["text"]


# --- the tests -------------------------------------------------------------------------------------------------

async def test_landing_page_lease_to_attributed_call(app: Stack, release_my_leases: None, browser: Chromium,
                                                     origin: str) -> None:
    url = f"{origin}/landing.html?" + urlencode(LANDING_QUERY)
    page = await visit(browser, url, cookie_url=origin)
    try:
        href = await page.evaluate("location.href")
        script = await page.evaluate("document.querySelector('script[src$=\"/t.js\"]').src")
        assert script == f"http://127.0.0.1:{app.admin_port}/t.js" and not script.startswith(origin)  # cross-origin
        lease = await real_lease(page)
        number = lease["number"].lstrip("+")
        assert number in POOL_NUMBERS and lease["extension"] is None, lease
        held = await holder_of(app, "web", number)
        assert held["state"] == "leased"

        shown = await page.evaluate(SHOWN)
        assert_swapped(shown, lease["display"])
        assert lease["display"] == f"({number[1:4]}) {number[4:7]}-{number[7:]}"
        assert await page.evaluate(TEL_HREFS) == [f"tel:+{number}"] * 2 == [lease["tel"]] * 2
        await page.wait_for("document.getElementById('demo-state').textContent.startsWith("  # the page's demo box
                            f"'this visit leased +{number} (tel:+{number})')")
        assert page.errors == [] and not [line for line in page.console if "ringpool" in line.lower()], page.console
        await page.screenshot(ARTIFACTS / "dni-landing.png")

        # a SIP call to the number the page shows is attributed to this browser session and its ad data
        since = utc_now_iso()
        result = await asyncio.to_thread(app.sipp, number, caller="15557774001", hold_ms=500)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        rec = await asyncio.to_thread(app.wait_call, since, "15557774001")
        assert (rec["dialed_number"], rec["pool"], rec["campaign"], rec["number_state"]) == (number, "web", "web",
                                                                                            "leased")
        assert (rec["attribution_method"], rec["attribution_confidence"]) == ("lease", "high")
        assert (rec["source"], rec["medium"], rec["ad_campaign"], rec["keyword"]) == (
            "google", "cpc", "spring", "emergency plumber")
        assert (rec["gclid"], rec["ga_client_id"]) == ("TeSt123", "987654321.1712345678")
        assert rec["session_id"] == held["session_id"] and rec["landing_page"] == href
        session = await api(app, f"/api/v1/sessions/{rec['session_id']}")
        assert (session["landing_page"], session["current_page"], session["pool"], session["number"]) == (
            href, href, "web", number)
        assert [p["url"] for p in session["pages"]] == [href] and session["pages_viewed"] == 1
        assert session["page_title"] == "Acme Plumbing: 24/7 emergency plumbers"
        assert {k: session[k] for k in LANDING_QUERY} == LANDING_QUERY
        assert session["vars"] == {"page_type": "landing", "offer": "spring-sale"}
        assert session["device_type"] == "desktop" and "HeadlessChrome" in session["device"]["ua"]
        assert session["ga_client_id"] == "987654321.1712345678" and session["referrer"] is None
    finally:
        await leave(page)

    # the same page served by the admin server itself: same origin, no CORS, and it swaps too
    demo = await visit(browser, f"http://127.0.0.1:{app.admin_port}/demo/landing.html")
    try:
        assert await demo.evaluate("document.querySelector('script[src$=\"/t.js\"]').src") == (
            f"http://127.0.0.1:{app.admin_port}/t.js")
        demo_lease = await real_lease(demo)
        demo_number = demo_lease["number"].lstrip("+")
        assert demo_number in POOL_NUMBERS and demo_lease["token"] != lease["token"]
        assert (await holder_of(app, "web", demo_number))["state"] == "leased"
        assert_swapped(await demo.evaluate(SHOWN), demo_lease["display"])
        assert await demo.evaluate(TEL_HREFS) == [f"tel:+{demo_number}"] * 2
        assert demo.errors == []
        await demo.screenshot(ARTIFACTS / "dni-landing-same-origin.png")
    finally:
        await leave(demo)


async def test_extension_page_to_attributed_call(app: Stack, browser: Chromium, origin: str) -> None:
    url = f"{origin}/ext.html?" + urlencode(EXT_QUERY)
    page = await visit(browser, url, cookie_url=origin)
    try:
        href = await page.evaluate("location.href")
        lease = await page.evaluate("Ringpool.lease")
        ext = lease["extension"]
        assert ext and ext.isdigit() and lease["overflow"] is False, lease
        assert (lease["number"], lease["tel"]) == (f"+{NUMBERS['ext_site']}", f"tel:+{NUMBERS['ext_site']},{ext}")
        display = f"(555) 000-2050 ext. {ext}"
        assert lease["display"] == display
        shown = await page.evaluate(SHOWN)
        assert_swapped(shown, display)
        assert f"ext. {ext}" in shown["text"] and f"ext. {ext} ext." not in shown["text"]
        assert await page.evaluate(TEL_HREFS) == [f"tel:+15550002050,{ext}"] * 2
        await page.wait_for("document.getElementById('demo-state').textContent.startsWith("  # the page's demo box
                            f"'this visit has extension {ext} on +{NUMBERS['ext_site']}')")
        assert page.errors == []
        await page.screenshot(ARTIFACTS / "dni-ext.png")

        # the caller dials the number alone (read on a laptop, dialled from a phone) and types the extension
        since = utc_now_iso()
        result = await run_softphone(call=f"sip:{NUMBERS['ext_site']}@127.0.0.1:{app.sip_port}",
                                     caller_id="15557774101", dtmf=f"{ext}#", dtmf_delay=1.0, hold=5, timeout=30)
        assert result.get("connected") or result.get("answered"), result
        rec = await asyncio.to_thread(app.wait_call, since, "15557774101")
        assert (rec["attribution_method"], rec["attribution_confidence"], rec["extension"]) == ("extension", "high",
                                                                                              ext)
        assert (rec["dialed_number"], rec["pool"], rec["disposition"]) == (NUMBERS["ext_site"], "ext", "completed")
        assert (rec["source"], rec["medium"], rec["ad_campaign"]) == ("facebook", "paid-social", "spring-ext")
        assert rec["ga_client_id"] == "987654321.1712345678" and rec["landing_page"] == href
        assert json.loads(rec["marketing"])["fbclid"] == "FbTest456"
        assert any(e["kind"] == "extension_entered" and e["data"]["digits"] == ext for e in rec["events"])
        session = await api(app, f"/api/v1/sessions/{rec['session_id']}")
        assert (session["landing_page"], session["pool"], session["extension"]) == (href, "ext", ext)
        assert session["page_title"] == "Acme Plumbing: book a plumber"
        assert (await api(app, "/api/v1/pools/ext"))["extensions_in_use"] == 0  # released after the call
    finally:
        await leave(page)
