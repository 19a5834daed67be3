"""The number-insertion snippet (ari_app/tracking/static/t.js) in real headless Chromium, without Ringpool.

Two small aiohttp servers stand in for the world: a *site* serving test pages on one origin, and a fake
*tracker* on another origin (another port) serving t.js and the three public endpoints of
docs/attribution.md, with CORS for the site's origin only, recording every request it gets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlencode

import pytest
from aiohttp import web

from tests.browser.chromium import Chromium, Page
from tests.browser.conftest import ARTIFACTS, REPO

pytestmark = pytest.mark.browser

SNIPPET = REPO / "ari_app" / "tracking" / "static" / "t.js"
SAMPLES = REPO / "web" / "sample"
SITE_KEY = "pk_test_0123456789abcdef"
READY = "document.documentElement.dataset.ringpool === 'ready'"
WEB_NUMBER = "+15550100201"
EXT_NUMBER, EXTENSION = "+15550100001", "7"

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme Plumbing test page</title>
<script>window.ringpoolVars = {plan: "gold", visits: 3}; window.ringpoolVarsMode = "overwrite";</script>
<script async src="{{api}}/t.js" data-pool="{{pool}}" data-key="{{key}}"
        data-number="+1 555 010 0001, +1 555 010 0009"></script>
<style>body { font: 16px sans-serif; margin: 2em; } p, h1 { margin: .3em 0; }</style>
</head><body>
<h1 id="intl-spaces">+1 555 010 0001</h1>
<p id="intl-dashes">Call +1-555-010-0001 today.</p>
<p id="parens">Office: (555) 010-0001</p>
<p id="dashes">555-010-0001</p>
<p id="dots">555.010.0001</p>
<p id="digits">5550100001</p>
<p id="with-one">15550100001</p>
<p id="e164">+15550100001</p>
<p id="two">Either (555) 010-0001 or <b>555.010.0001</b>, both.</p>
<p id="second">Second line: 555 010 0009</p>
<p id="others">Not ours: 555-010-0002, order 25550100001, 5550100001234.</p>
<p><a id="call" href="tel:+15550100001">Call now</a> |
   <a id="call-dashed" href="tel:1-555-010-0001">or (555) 010-0001</a> |
   <a id="other-tel" href="tel:+15550109999">Accounts</a></p>
<p>Marked: <span id="attr" data-ringpool-number>our number</span>,
   <span id="cls" class="ringpool-number">our number</span></p>
<textarea id="ta">555-010-0001</textarea> <input id="in" value="555-010-0001">
<p id="changes">nothing yet</p>
<script id="inline">var inline = "555-010-0001";</script>
</body></html>
"""

# Every element whose text holds a default number, as it reads once the web pool leased (555) 010-0201.
SWAPPED = {
    "intl-spaces": "(555) 010-0201",
    "intl-dashes": "Call (555) 010-0201 today.",
    "parens": "Office: (555) 010-0201",
    "dashes": "(555) 010-0201",
    "dots": "(555) 010-0201",
    "digits": "(555) 010-0201",
    "with-one": "(555) 010-0201",
    "e164": "(555) 010-0201",
    "two": "Either (555) 010-0201 or (555) 010-0201, both.",
    "second": "Second line: (555) 010-0201",
    "others": "Not ours: 555-010-0002, order 25550100001, 5550100001234.",
    "call": "Call now",
    "call-dashed": "or (555) 010-0201",
    "attr": "(555) 010-0201",
    "cls": "(555) 010-0201",
    "inline": 'var inline = "555-010-0001";',
}
TEXTS = "Object.fromEntries([...document.querySelectorAll('[id]')].map(e => [e.id, e.textContent]))"
HREFS = "Object.fromEntries([...document.querySelectorAll('a[id]')].map(a => [a.id, a.getAttribute('href')]))"


def display(number: str, extension: str | None = None) -> str:
    """The contract's display form: +15550100201 -> (555) 010-0201 [ext. N]."""
    national = number[-10:]
    text = f"({national[:3]}) {national[3:6]}-{national[6:]}"
    return f"{text} ext. {extension}" if extension else text


@dataclass
class Hit:
    method: str
    path: str
    origin: str | None
    content_type: str
    fetch_mode: str | None  # Sec-Fetch-Mode: "cors" for fetch(), "no-cors" for sendBeacon
    body: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic)


class FakeTracker:
    """docs/attribution.md's public endpoints for two pools: spring-web (a pool; its number is `number`,
    which a test may change to see a re-swap) and spring-ext (one number plus extension 7)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.allowed_origin = ""
        self.number = WEB_NUMBER
        self.renew_every = 60
        self.failure: str | None = None  # "unavailable": endpoints answer 503; "silent": they never answer
        self.stopping = asyncio.Event()  # ends "silent" handlers, so shutting down does not wait for them
        self._tokens: set[str] = set()
        self._serial = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._cors])
        app.router.add_get("/t.js", self._snippet)
        app.router.add_route("OPTIONS", "/{tail:.*}", self._preflight)
        app.router.add_post("/t/v1/sessions", self._sessions)
        app.router.add_post("/t/v1/pageview", self._pageview)
        app.router.add_post("/t/v1/click", self._click)
        return app

    def of(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait_hit(self, path: str, where: Callable[[Hit], bool] = lambda h: True,
                       timeout: float = 10.0) -> Hit:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for hit in self.of(path):
                if where(hit):
                    return hit
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no matching {path} request in {timeout} s; got {[h.path for h in self.hits]}")

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.headers.get("Origin") == self.allowed_origin:
            response.headers["Access-Control-Allow-Origin"] = self.allowed_origin
        response.headers["Vary"] = "Origin"
        return response

    async def _record(self, request: web.Request) -> dict[str, Any] | None:
        text = await request.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        self.hits.append(Hit(request.method, request.path, request.headers.get("Origin"),
                             request.headers.get("Content-Type", ""), request.headers.get("Sec-Fetch-Mode"), body))
        return body

    async def _snippet(self, request: web.Request) -> web.Response:
        return web.Response(body=SNIPPET.read_bytes(), content_type="application/javascript")

    async def _preflight(self, request: web.Request) -> web.Response:
        await self._record(request)  # the snippet must never cause one: tests assert there is none
        return web.Response(status=204)

    async def _refusal(self, body: dict[str, Any] | None) -> web.Response | None:
        if self.failure == "silent":
            await asyncio.wait_for(self.stopping.wait(), 30)  # longer than the snippet's 5 s timeout
        if self.failure == "unavailable":
            return web.json_response({"error": "unavailable"}, status=503)
        if not isinstance(body, dict) or body.get("pool") not in ("spring-web", "spring-ext"):
            return web.json_response({"error": "unknown pool"}, status=404)
        if body.get("key") != SITE_KEY:
            return web.json_response({"error": "bad site key"}, status=403)
        return None

    def _lease(self, pool: str, token: Any) -> web.Response:
        if token not in self._tokens:  # unknown or absent: a new session
            token = f"s_{next(self._serial)}_test"
            self._tokens.add(token)
        number, extension = (EXT_NUMBER, EXTENSION) if pool == "spring-ext" else (self.number, None)
        tel = f"tel:{number},{extension}" if extension else f"tel:{number}"
        return web.json_response({"token": token, "number": number, "display": display(number, extension),
                                  "tel": tel, "extension": extension, "ttl": 1800,
                                  "renew_every": self.renew_every, "overflow": False})

    async def _sessions(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return await self._refusal(body) or self._lease(body["pool"], body.get("token"))  # type: ignore[index]

    async def _pageview(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return await self._refusal(body) or self._lease(body["pool"], body.get("token"))  # type: ignore[index]

    async def _click(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return await self._refusal(body) or web.Response(status=204)


@dataclass
class Sites:
    site: str  # the page origin, http://127.0.0.1:PORT
    api: str  # the tracker origin, another port
    tracker: FakeTracker

    def url(self, query: dict[str, str] | None = None, *, pool: str = "spring-web", key: str = SITE_KEY,
            page: str = "landing.html") -> str:
        """The test page (or page="sample/NAME.html"); pool and key choose what its snippet tag says."""
        setup = urlencode({"pool": pool, "key": key, "api": self.api})
        return f"{self.site}/{page}?{setup}" + (f"&{urlencode(query)}" if query else "")


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    tracker = FakeTracker()

    async def page(request: web.Request) -> web.Response:
        """The test page, or a sample page from web/sample/ (/sample/NAME), with its placeholders filled."""
        name = request.match_info.get("name")
        html = (SAMPLES / name).read_text() if name else LANDING
        for placeholder in ("api", "pool", "key"):
            html = html.replace("{{%s}}" % placeholder, request.query[placeholder])
        return web.Response(text=html, content_type="text/html")

    site_app = web.Application()
    site_app.router.add_get("/landing.html", page)
    site_app.router.add_get("/sample/{name:[a-z]+\\.html}", page)
    tracker_runner, api = await _serve(tracker.app())
    site_runner, site = await _serve(site_app)
    tracker.allowed_origin = site
    try:
        yield Sites(site, api, tracker)
    finally:
        tracker.stopping.set()
        await site_runner.cleanup()
        await tracker_runner.cleanup()


async def open_ready(browser: Chromium, url: str, **kwargs: Any) -> Page:
    page = await browser.open(url, **kwargs)
    await page.wait_for(READY)
    return page


async def test_swaps_every_format_and_reports_the_visit(browser: Chromium, sites: Sites) -> None:
    page = await browser.open()
    await page.set_cookie("_ga", "GA1.1.1234567890.1700000000", sites.site)
    landing = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "utm_term": "emergency plumber",
               "utm_content": "ad-2", "gclid": "Cj0KCQ-test", "keyword": "plumber", "p1": "x", "unrelated": "no"}
    await page.goto(sites.url(landing), referrer="http://search.example/results?q=plumber")
    await page.wait_for(READY)

    texts = await page.evaluate(TEXTS)
    assert {k: texts[k] for k in SWAPPED} == SWAPPED
    assert await page.evaluate("[ta.value, document.getElementById('in').value]") == ["555-010-0001"] * 2
    assert await page.evaluate(HREFS) == {"call": f"tel:{WEB_NUMBER}", "call-dashed": f"tel:{WEB_NUMBER}",
                                          "other-tel": "tel:+15550109999"}
    assert await page.evaluate("call.dataset.ringpoolHref") == "tel:+15550100001"  # kept for re-swaps
    assert await page.evaluate("Ringpool.lease.number") == WEB_NUMBER

    [session] = sites.tracker.of("/t/v1/sessions")
    body = session.body
    assert body is not None
    assert (body["pool"], body["key"], body.get("token")) == ("spring-web", SITE_KEY, None)
    assert body["params"] == {k: v for k, v in landing.items() if k != "unrelated"}
    assert body["page"] == await page.evaluate("location.href")
    assert body["referrer"] == "http://search.example/"  # the browser's default policy keeps only the origin
    assert body["title"] == "Acme Plumbing test page"
    assert body["ga_client_id"] == "1234567890.1700000000"
    assert body["vars"] == {"plan": "gold", "visits": "3"} and body["vars_mode"] == "overwrite"
    assert "HeadlessChrome" in body["device"]["ua"] and body["device"]["width"] > 0
    assert body["device"]["touch"] is False
    # A simple CORS request: text/plain from the page's origin, no cookies, no preflight.
    assert (session.origin, session.content_type, session.fetch_mode) == (sites.site, "text/plain;charset=UTF-8", "cors")
    assert not [h for h in sites.tracker.hits if h.method == "OPTIONS"]
    assert page.errors == []
    await page.screenshot(ARTIFACTS / "snippet-static.png")


async def test_swaps_what_the_page_adds_later(browser: Chromium, sites: Sites) -> None:
    page = await open_ready(browser, sites.url())
    await page.evaluate("""
        document.body.insertAdjacentHTML('beforeend',
            '<div id="late"><p id="late-text">Now call 555.010.0001</p>' +
            '<a id="late-tel" href="tel:5550100001">Call</a> <span id="late-attr" data-ringpool-number>x</span></div>');
        document.getElementById('changes').firstChild.data = 'changed to +1 (555) 010-0001';
    """)
    await page.wait_for("document.getElementById('late-text').textContent === 'Now call (555) 010-0201'")
    texts = await page.evaluate(TEXTS)
    assert (texts["late-attr"], texts["changes"]) == ("(555) 010-0201", "changed to (555) 010-0201")
    assert await page.evaluate("document.getElementById('late-tel').getAttribute('href')") == f"tel:{WEB_NUMBER}"
    assert page.errors == []


async def test_extension_mode_shows_the_extension(browser: Chromium, sites: Sites) -> None:
    page = await open_ready(browser, sites.url(pool="spring-ext"))
    texts = await page.evaluate(TEXTS)
    shown = display(EXT_NUMBER, EXTENSION)
    assert shown == "(555) 010-0001 ext. 7"
    assert (texts["intl-spaces"], texts["parens"], texts["attr"]) == (shown, f"Office: {shown}", shown)
    assert texts["two"] == f"Either {shown} or {shown}, both."
    hrefs = await page.evaluate(HREFS)
    assert hrefs["call"] == hrefs["call-dashed"] == "tel:+15550100001,7"
    # The shown number contains the default number: swapping again must not nest or repeat the extension.
    await page.evaluate("Ringpool.swap()")
    await page.evaluate("document.body.append(document.createTextNode(' tail'))")
    await asyncio.sleep(0.2)
    assert (await page.evaluate(TEXTS))["intl-spaces"] == shown
    await page.screenshot(ARTIFACTS / "snippet-static-ext.png")


async def test_renews_reswaps_reports_clicks_and_leaves_with_a_beacon(browser: Chromium, sites: Sites) -> None:
    sites.tracker.renew_every = 1
    page = await open_ready(browser, sites.url())
    token = await page.evaluate("Ringpool.lease.token")
    renewal = await sites.tracker.wait_hit("/t/v1/pageview", timeout=5)
    assert renewal.body is not None
    assert (renewal.body["token"], renewal.fetch_mode, renewal.body["vars"]["plan"]) == (token, "cors", "gold")
    assert "params" not in renewal.body

    sites.tracker.number = "+15550100202"  # the next renewal answers another number: everything follows it
    await page.wait_for("document.getElementById('intl-spaces').textContent === '(555) 010-0202'", timeout=5)
    texts, hrefs = await page.evaluate(TEXTS), await page.evaluate(HREFS)
    assert (texts["parens"], texts["attr"], texts["two"]) == (
        "Office: (555) 010-0202", "(555) 010-0202", "Either (555) 010-0202 or (555) 010-0202, both.")
    assert hrefs == {"call": "tel:+15550100202", "call-dashed": "tel:+15550100202", "other-tel": "tel:+15550109999"}

    await page.click("#call")
    click = await sites.tracker.wait_hit("/t/v1/click")
    assert click.body is not None
    assert (click.body["pool"], click.body["key"], click.body["token"]) == ("spring-web", SITE_KEY, token)
    assert click.body["element"].startswith("a[call] Call now")
    assert (click.fetch_mode, click.content_type.lower()) == ("no-cors", "text/plain;charset=utf-8")  # sendBeacon

    await page.goto("about:blank")  # pagehide: one last page view, by beacon
    await sites.tracker.wait_hit("/t/v1/pageview", lambda h: h.fetch_mode == "no-cors")
    assert page.errors == []


async def test_renews_only_while_the_page_is_visible(browser: Chromium, sites: Sites) -> None:
    sites.tracker.renew_every = 1
    page = await open_ready(browser, sites.url())
    await sites.tracker.wait_hit("/t/v1/pageview", timeout=5)
    set_visibility = """(state => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
        document.dispatchEvent(new Event('visibilitychange'));
    })"""
    await page.evaluate(f"{set_visibility}('hidden')")
    hidden_at = len(sites.tracker.of("/t/v1/pageview"))
    await asyncio.sleep(2.5)  # two and a half renewal periods
    assert len(sites.tracker.of("/t/v1/pageview")) <= hidden_at + 1  # at most one already in flight

    shown = time.monotonic()
    await page.evaluate(f"{set_visibility}('visible')")
    # Hiding cleared the renewal timer: only the return to visible can have sent this one.
    await sites.tracker.wait_hit("/t/v1/pageview", lambda h: h.at >= shown, timeout=3)


async def test_session_resumes_from_local_storage_or_a_cookie(browser: Chromium, sites: Sites) -> None:
    page = await open_ready(browser, sites.url())
    token = await page.evaluate("Ringpool.lease.token")
    assert await page.evaluate("localStorage.getItem('ringpool:spring-web')") == token
    await page.reload()
    await page.wait_for(READY)
    assert sites.tracker.of("/t/v1/sessions")[-1].body["token"] == token  # type: ignore[index]
    assert await page.evaluate("Ringpool.lease.token") == token

    blocked = await browser.open()  # storage blocked (as in some privacy modes): a first-party cookie instead
    await blocked.add_init_script("Object.defineProperty(window, 'localStorage', "
                                  "{get() { throw new DOMException('blocked', 'SecurityError'); }})")
    await blocked.goto(sites.url())
    await blocked.wait_for(READY)
    cookie_token = await blocked.evaluate("Ringpool.lease.token")
    assert cookie_token != token
    assert f"ringpool_spring-web={cookie_token}" in await blocked.evaluate("document.cookie")
    await blocked.reload()
    await blocked.wait_for(READY)
    assert sites.tracker.of("/t/v1/sessions")[-1].body["token"] == cookie_token  # type: ignore[index]
    assert blocked.errors == []


@pytest.mark.parametrize("problem", ["unavailable", "silent", "wrong site key"])
async def test_failures_leave_the_page_alone(browser: Chromium, sites: Sites, problem: str) -> None:
    sites.tracker.failure = problem if problem != "wrong site key" else None
    page = await browser.open(sites.url(key="pk_wrong" if problem == "wrong site key" else SITE_KEY))
    started = time.monotonic()
    await page.wait_for("document.documentElement.dataset.ringpool === 'error'", timeout=12)
    if problem == "silent":
        assert 4.5 < time.monotonic() - started < 9  # the snippet gave up after its 5 s timeout
    texts = await page.evaluate(TEXTS)
    assert (texts["intl-spaces"], texts["attr"]) == ("+1 555 010 0001", "our number")
    assert await page.evaluate("call.getAttribute('href')") == "tel:+15550100001"
    assert await page.evaluate("Ringpool.lease") is None
    assert page.errors == []  # nothing thrown into the page
    assert any("ringpool:" in line for line in page.console)


@pytest.mark.parametrize(("sample", "pool", "shown", "tel"), [
    ("landing.html", "spring-web", "(555) 010-0201", "tel:+15550100201"),
    ("ext.html", "spring-ext", "(555) 010-0001 ext. 7", "tel:+15550100001,7"),
])
async def test_sample_pages(browser: Chromium, sites: Sites, sample: str, pool: str, shown: str, tel: str) -> None:
    page = await open_ready(browser, sites.url(pool=pool, page=f"sample/{sample}"))
    assert await page.evaluate("document.querySelector('h1 .number').textContent") == shown
    assert await page.evaluate("[...document.querySelectorAll('a[href^=\"tel:\"]')].map(a => a.href)") == [tel, tel]
    assert shown in await page.evaluate("document.querySelector('.hero p').textContent")
    assert await page.evaluate("document.querySelector('footer span').textContent") == shown
    await page.wait_for("document.getElementById('demo-state').textContent.includes('+155501')")
    assert "ext. 7 ext." not in await page.evaluate("document.body.innerText")
    assert page.errors == []
    await page.screenshot(ARTIFACTS / f"sample-{sample.replace('.html', '')}.png")
