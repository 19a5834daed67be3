"""Scenario: web visitors lease numbers from a pool through the public endpoints, then call them over SIP
through the bundled Asterisk; each call record names the visitor session, its marketing data, the method and
a confidence. Also: the overflow number and its alert, a late call after the number was reassigned, extension
sites with DTMF, and call events delivered to a webhook that was down at first."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import web

from ari_app.testcall import run_softphone
from tests.integration.conftest import ADMIN_TOKEN, NUMBERS, POOL_SITE_KEY, WEBHOOK_SECRET, Stack, utc_now_iso

pytestmark = pytest.mark.integration

LANDING = "https://www.acme-plumbing.example/spring?utm_source=google&utm_medium=cpc&utm_campaign=spring"


def lease(stack: Stack, pool: str = "web", **body: Any) -> dict[str, Any]:
    origin = f"http://127.0.0.1:{stack.ports['page_origin']}"
    status, answer = stack.post("/t/v1/sessions", {"pool": pool, "key": POOL_SITE_KEY, "page": LANDING} | body,
                                origin=origin)
    assert status == 200, answer
    return answer


def session_id_of(stack: Stack, number: str) -> str | None:
    status, pool = stack.api("/api/v1/pools/web")
    assert status == 200
    return next((n["session_id"] for n in pool["numbers_detail"] if n["number"] == number), None)


def digits(number: str) -> str:
    return number.lstrip("+")


def call(stack: Stack, number: str, caller: str) -> dict[str, Any]:
    """A SIPp call from ``caller`` to ``number``, and its finished record."""
    since = utc_now_iso()
    result = stack.sipp(number, caller=caller, hold_ms=500)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return stack.wait_call(since, caller)


def test_pool_leases_attribution_overflow_and_late_call(app: Stack) -> None:
    since = utc_now_iso()
    # a number in the inventory is not in use yet: refused before answer, and still recorded
    result = app.sipp(NUMBERS["inventory"], caller="15557771000")
    assert result.returncode != 0
    rec = app.wait_call(since, "15557771000")
    assert (rec["disposition"], rec["number_state"], rec["hangup_cause"]) == ("rejected", "inventory", 1)

    # two visitors at the same moment get different numbers
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda i: lease(app, params={"utm_source": "google", "utm_medium": "cpc",
                                                      "utm_campaign": "spring", "gclid": f"gclid-{i}"},
                                        ga_client_id=f"{1000 + i}.1700000000", vars={"visitor": str(i)}), range(2))
    assert a["number"] != b["number"] and not a["overflow"] and not b["overflow"]
    assert {digits(a["number"]), digits(b["number"])} == {NUMBERS["pool_a"], NUMBERS["pool_b"]}
    assert a["tel"] == "tel:" + a["number"] and a["display"].startswith("(555) ")
    started = time.monotonic()
    c = lease(app, params={"utm_source": "bing"})
    assert digits(c["number"]) == NUMBERS["inventory"]  # the pool grew from the inventory (max_size 3)
    d = lease(app)
    assert (digits(d["number"]), d["overflow"]) == (NUMBERS["overflow"], True)
    status, pool = app.api("/api/v1/pools/web")
    assert pool["size"] == 3 and pool["numbers"]["leased"] == 3
    assert pool["alerts"][0]["kind"] == "exhausted"
    assert time.monotonic() - started < 5, "the overflow step needs every lease younger than min_lease (5 s)"

    # calls to the leased numbers are attributed to their visitors
    first = call(app, digits(a["number"]), "15557771001")
    assert (first["attribution_method"], first["attribution_confidence"]) == ("lease", "high")
    assert first["campaign"] == "web" and first["pool"] == "web" and first["number_state"] == "leased"
    assert (first["source"], first["medium"], first["ad_campaign"]) == ("google", "cpc", "spring")
    assert first["gclid"].startswith("gclid-") and first["ga_client_id"].endswith(".1700000000")
    assert first["landing_page"] == LANDING
    status, session = app.api(f"/api/v1/sessions/{first['session_id']}")
    assert status == 200 and session["number"] == a["number"].lstrip("+") and session["vars"]["visitor"] in "01"
    assert "token" not in json.dumps(session)  # the secret token never leaves the server
    # a sale reported later: the ad platform's offline-conversion file carries the visitor's gclid
    status, converted = app.post(f"/api/v1/calls/{first['id']}/conversion",
                                 {"name": "Booked job", "value": 120.5, "currency": "USD"}, token=ADMIN_TOKEN)
    assert status == 200 and converted["conversion_value"] == 120.5
    csv_text = fetch(app, f"/api/v1/conversions.csv?since={since}&until=2100-01-01T00:00:00Z")
    assert f"{first['gclid']},Booked job," in csv_text and csv_text.startswith("Parameters:TimeZone=")
    second = call(app, digits(b["number"]), "15557771002")
    third = call(app, digits(c["number"]), "15557771003")
    assert second["session_id"] != first["session_id"] and third["source"] == "bing"

    # the overflow number: attributed by the caller's earlier session, medium confidence
    over = call(app, digits(d["number"]), "15557771001")
    assert (over["attribution_method"], over["attribution_confidence"]) == ("caller_history", "medium")
    assert over["session_id"] == first["session_id"] and over["repeat_caller"] == 1

    # after min_lease, a new visitor takes the least active lease (all have one call: a's is the oldest)
    time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))
    for visitor in (b, c):
        status, renewed = app.post("/t/v1/pageview", {"pool": "web", "key": POOL_SITE_KEY, "token": visitor["token"],
                                                      "page": LANDING + "&p=2"})
        assert status == 200 and renewed["number"] == visitor["number"]
    e = lease(app, params={"utm_source": "newsletter"})
    assert e["number"] == a["number"]
    status, history = app.api(f"/api/v1/numbers/{digits(a['number'])}/history")
    assert "reassigned from session" in history["history"][0]["reason"]

    # the first caller calls the number again: caller history wins over the new lease, with lower confidence
    late = call(app, digits(a["number"]), "15557771001")
    assert (late["attribution_method"], late["attribution_confidence"]) == ("caller_history", "medium")
    assert late["session_id"] == first["session_id"]
    assert json.loads(late["attribution_details"])["lease_session"] == session_id_of(app, digits(a["number"]))
    # a new caller on that number belongs to the new visitor
    fresh = call(app, digits(a["number"]), "15557771009")
    assert (fresh["attribution_method"], fresh["source"]) == ("lease", "newsletter")


def test_public_endpoints_refuse_bad_requests(app: Stack) -> None:
    good = {"pool": "web", "key": POOL_SITE_KEY, "page": LANDING}
    assert app.post("/t/v1/sessions", good | {"key": "wrong-key-0123456789"})[0] == 403
    assert app.post("/t/v1/sessions", good, origin="https://evil.example")[0] == 403
    assert app.post("/t/v1/sessions", good | {"page": "javascript:alert(1)"})[0] == 400
    assert app.post("/t/v1/sessions", good | {"admin": True})[0] == 400
    assert app.post("/t/v1/sessions", good | {"params": {"utm_source": "x" * 500}})[0] == 400
    assert app.post("/t/v1/pageview", good | {"token": "s_" + "x" * 30})[0] == 200  # unknown token: new session
    assert app.post("/t/v1/click", good | {"token": "s_" + "y" * 30})[0] == 400


def test_extension_site_caller_enters_the_extension(app: Stack) -> None:
    since = utc_now_iso()
    visitor = lease(app, pool="ext", params={"utm_source": "facebook"})
    ext = visitor["extension"]
    assert ext and visitor["display"].endswith(f" ext. {ext}") and visitor["tel"].endswith("," + ext)
    result = asyncio.run(run_softphone(call=f"sip:{NUMBERS['ext_site']}@127.0.0.1:{app.sip_port}",
                                       caller_id="15557772001", dtmf=f"{ext}#", dtmf_delay=1.0, hold=5, timeout=30))
    assert result.get("connected") or result.get("answered") or result, result
    rec = app.wait_call(since, "15557772001")
    assert (rec["attribution_method"], rec["attribution_confidence"], rec["extension"]) == ("extension", "high", ext)
    assert rec["source"] == "facebook" and rec["disposition"] == "completed"
    assert any(e["kind"] == "extension_entered" and e["data"]["digits"] == ext for e in rec["events"])
    status, pool = app.api("/api/v1/pools/ext")
    assert pool["extensions_in_use"] == 0  # released after the call

    # a reserved extension printed on a flyer names its source
    asyncio.run(run_softphone(call=f"sip:{NUMBERS['ext_site']}@127.0.0.1:{app.sip_port}",
                              caller_id="15557772002", dtmf="90#", dtmf_delay=1.0, hold=5, timeout=30))
    flyer = app.wait_call(since, "15557772002")
    assert (flyer["attribution_method"], flyer["source"]) == ("reserved_extension", "spring-flyer")


class Receiver:
    """A webhook receiver on the configured port, started when the test wants it up."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[dict[str, Any], bool]] = []
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get("X-Ringpool-Signature", "")
        parts = dict(p.split("=", 1) for p in header.split(","))
        expected = hmac.new(WEBHOOK_SECRET.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        self.received.append((json.loads(body), hmac.compare_digest(expected, parts.get("v1", ""))))
        return web.json_response({"ok": True})

    def start(self) -> None:
        async def up() -> None:
            app = web.Application()
            app.router.add_post("/hook", self.hook)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)

    def stop(self) -> None:
        if self.runner:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


EXPECTED_EVENTS = {"call.started", "call.answered", "call.completed", "call.spam"}


def test_call_events_reach_a_webhook_that_was_down(app: Stack) -> None:
    since = utc_now_iso()
    result = app.sipp(NUMBERS["plain"], caller="15557773001", hold_ms=500)
    assert result.returncode == 0
    rec = app.wait_call(since, "15557773001")
    assert app.post(f"/api/v1/calls/{rec['id']}/spam", {"spam": True}, token=ADMIN_TOKEN)[0] == 200
    time.sleep(1.5)  # the first delivery attempts fail: nobody listens yet
    receiver = Receiver(app.ports["webhook"])
    receiver.start()
    try:
        deadline = time.monotonic() + 45
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mine = [body for body, _ in receiver.received if body["call"]["id"] == rec["id"]]
            if {b["event"] for b in mine} >= EXPECTED_EVENTS:
                break
            time.sleep(0.5)
        assert {b["event"] for b in mine} >= EXPECTED_EVENTS, receiver.received
        assert all(ok for body, ok in receiver.received if body["call"]["id"] == rec["id"])  # signed
        completed = next(b for b in mine if b["event"] == "call.completed")
        assert completed["call"]["talk_seconds"] > 0 and completed["call"]["disposition"] == "completed"
        assert 'ringpool_outbox_backlog{sink="crm"}' in app_metrics(app)
    finally:
        receiver.stop()


def fetch(app: Stack, path: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{app.admin_port}{path}",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.read().decode()


def app_metrics(app: Stack) -> str:
    return fetch(app, "/metrics")
