"""The export outbox: store semantics, payloads, signatures, the Ads CSV, config, and a worker delivering to a
real local HTTP receiver (down, erroring, refusing, restarted)."""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import re
import socket
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import sqlite_utils
from aiohttp import web

from ari_app.config import _Section
from ari_app.outbox.enqueue import enqueue_call_event
from ari_app.outbox.export import (HEADER, TIMEZONE_LINE, ConversionRow, conversions_for_export, google_time,
                                   safe_cell, write_csv)
from ari_app.outbox.model import EVENTS, GA4_URL, Sink, read_sinks, sinks_for
from ari_app.outbox.payloads import (CALL_FIELDS, ga4_body, ga4_event_name, ga4_skip_reason, occurred_at,
                                     outbox_payload, webhook_body)
from ari_app.outbox.sender import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, classify, sign, verify
from ari_app.outbox.worker import OutboxWorker, backoff_delay
from ari_app.yaml_located import ConfigError, load_located
from storage.async_store import AsyncCallStore
from storage.calls import CallStore, NewCall
from storage.db import format_time, open_database, parse_time, utcnow
from storage.outbox import OutboxStore

@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "state" / "ringpool.db")
    yield database
    database.conn.close()


def t(seconds: float, base: datetime = datetime(2026, 11, 22, 17, tzinfo=timezone.utc)) -> str:
    return format_time(base + timedelta(seconds=seconds))


def rows(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM outbox ORDER BY id"))


def call_record(call_id: str = "c1", base: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A record as CallStore.get_call returns it, with the attribution columns filled in."""
    at = (lambda s: t(s, base)) if base else t
    return {"id": call_id, "is_test": 0, "campaign": "spring", "dialed_number": "15550100001",
            "caller_number": "15557654321", "caller_name": "Alice Caller", "destination": "desk",
            "disposition": "completed", "arrived_at": at(0), "answered_at": at(1), "destination_answered_at": at(5),
            "bridged_at": at(5), "ended_at": at(65), "ring_seconds": 4.0, "talk_seconds": 60.0,
            "total_seconds": 65.0, "ga_client_id": "1234567890.1700000000", "gclid": "Cj0KCQ_abc",
            "source": "google", "medium": "cpc", "ad_campaign": "spring-search", "keyword": "emergency plumber",
            "session_id": "s_1", "attribution_method": None,
            "landing_page": "https://www.example.com/plumbing?utm_source=google",
            "legs": [{"channel_id": "in-c1"}], "events": [{"kind": "arrived"}], "detections": []} | extra


SECRET = "whsec_0123456789abcdef"


def webhook(url: str, name: str = "crm", **extra: Any) -> Sink:
    return Sink(name=name, kind="webhook", url=url, events=frozenset(EVENTS), secret=SECRET, measurement_id=None,
                api_secret=None, **extra)


def ga4(url: str, **extra: Any) -> Sink:
    return Sink(name="ga", kind="ga4", url=url, events=frozenset(EVENTS), secret=None, measurement_id="G-TEST1234",
                api_secret="mp_secret_123", **extra)


# --- store --------------------------------------------------------------------------------------------------


def test_enqueue_writes_one_row_per_sink_and_due_orders_by_schedule(db: sqlite_utils.Database) -> None:
    store = OutboxStore(db)
    assert store.enqueue("call.completed", "c2", {"n": 2}, ["a", "b"], at=t(10)) == 2
    assert store.enqueue("call.started", "c1", {"n": 1}, ["a"], at=t(5)) == 1
    assert store.enqueue("call.started", "c3", {"n": 3}, [], at=t(0)) == 0
    assert store.enqueue("call.spam", "c4", {"n": 4}, ["b"], at=t(20)) == 1
    due = store.due(t(15), 10)
    assert [(i.event, i.sink, i.call_id, i.payload) for i in due] == [
        ("call.started", "a", "c1", {"n": 1}), ("call.completed", "a", "c2", {"n": 2}),
        ("call.completed", "b", "c2", {"n": 2})]
    assert due[0].attempts == 0 and due[0].created_at == t(5) and due[0].last_error is None
    assert len(store.due(t(15), 2)) == 2
    assert [i.sink for i in store.due(t(30), 10, sinks=["b"])] == ["b", "b"]
    assert store.due(t(30), 10, sinks=[]) == []
    assert store.backlog() == {"a": 2, "b": 2}


def test_enqueue_joins_the_callers_transaction(db: sqlite_utils.Database) -> None:
    store = OutboxStore(db)
    with pytest.raises(RuntimeError):
        with db.conn:
            db.conn.execute("BEGIN")
            store.enqueue("call.completed", "c1", {}, ["a"])
            assert db.conn.in_transaction  # not committed behind the caller's back
            raise RuntimeError("the call step failed")
    assert rows(db) == []  # rolled back with the step
    with db.conn:
        db.conn.execute("BEGIN")
        store.enqueue("call.completed", "c1", {}, ["a"])
    assert len(rows(db)) == 1


def test_failed_reschedules_then_dead_and_delivered_settle(db: sqlite_utils.Database) -> None:
    store = OutboxStore(db)
    store.enqueue("call.completed", "c1", {}, ["a", "b"], at=t(0))
    first, second = store.due(t(0), 10)
    store.failed(first.id, "HTTP 500: " + "x" * 2000, t(4), dead=False, at=t(1))
    assert [i.id for i in store.due(t(3), 10)] == [second.id]  # not before its time
    retry = store.due(t(4), 10)[-1]
    assert retry.id == first.id and retry.attempts == 1 and len(retry.last_error) == 500
    store.failed(first.id, "HTTP 400: bad", t(100), dead=True, at=t(5))
    store.delivered(second.id, t(6))
    assert store.due(t(1000), 10) == [] and store.backlog() == {} and store.dead_count() == 1
    store.delivered(first.id, t(7))  # a dead item stays dead
    a, b = rows(db)
    assert (a["dead_at"], a["delivered_at"], a["attempts"], a["last_error"]) == (t(5), None, 2, "HTTP 400: bad")
    assert (b["delivered_at"], b["attempts"]) == (t(6), 1)
    assert store.retry_dead(t(8)) == 1 and [i.id for i in store.due(t(8), 10)] == [first.id]
    assert store.purge_delivered(t(7)) == 1 and [r["id"] for r in rows(db)] == [first.id]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert [backoff_delay(n, 2.0, 900.0, 1.0) for n in range(1, 6)] == [2, 4, 8, 16, 32]
    assert [backoff_delay(n, 2.0, 900.0, 0.0) for n in range(1, 4)] == [1, 2, 4]
    assert backoff_delay(30, 2.0, 900.0, 1.0) == 900 and backoff_delay(10_000, 2.0, 900.0, 0.5) == 675
    assert 2 <= backoff_delay(3, 2.0, 900.0, 0.37) <= 8


# --- payloads -----------------------------------------------------------------------------------------------


def test_payload_snapshot_and_webhook_body() -> None:
    call = call_record() | {"conversion_value": None}
    payload = outbox_payload(call, t(65))
    assert set(payload["call"]) == set(CALL_FIELDS) and "legs" not in payload["call"]
    assert payload["call"]["pool"] is None  # fields the record lacks appear as None
    assert json.loads(json.dumps(payload)) == payload
    body = webhook_body(42, "call.completed", payload)
    assert body == {"id": 42, "event": "call.completed", "occurred_at": t(65), "call": payload["call"]}
    assert body["call"]["talk_seconds"] == 60.0 and body["call"]["caller_number"] == "15557654321"


def test_events_happen_at_the_matching_timestamp() -> None:
    call = call_record(converted_at=t(3600))
    assert occurred_at("call.started", call) == t(0)
    assert occurred_at("call.answered", call) == t(5)  # the destination picked up, not the greeting
    assert occurred_at("call.answered", call | {"destination_answered_at": None, "bridged_at": None}) == t(1)
    assert occurred_at("call.completed", call) == t(65)
    assert occurred_at("call.converted", call) == t(3600)
    assert occurred_at("call.spam", call) is None


def test_ga4_body_has_no_personal_data_and_respects_limits() -> None:
    call = call_record(landing_page="https://example.com/" + "p" * 300, conversion_value=120.5,
                       conversion_currency="EUR", conversion_name="Booked job")
    payload = outbox_payload(call, "2026-11-22T17:01:05.123Z")
    body = ga4_body("call.completed", payload)
    assert body["client_id"] == "1234567890.1700000000"
    assert body["timestamp_micros"] == int(datetime(2026, 11, 22, 17, 1, 5, tzinfo=timezone.utc).timestamp()) \
        * 1_000_000 + 123_000
    (event,) = body["events"]
    assert event["name"] == "ringpool_call_completed"
    params = event["params"]
    assert params["duration"] == 60.0 and params["campaign"] == "spring-search" and params["source"] == "google"
    assert params["tracking_campaign"] == "spring"
    assert params["medium"] == "cpc" and params["term"] == "emergency plumber" and params["call_id"] == "c1"
    assert len(params["landing_page"]) == 100
    assert "value" not in params and "attribution_method" not in params  # None values are left out
    text = json.dumps(body)
    assert "15557654321" not in text and "Alice" not in text
    converted = ga4_body("call.converted", payload)["events"][0]["params"]
    assert (converted["value"], converted["currency"], converted["conversion_name"]) == (120.5, "EUR", "Booked job")


def test_ga4_event_names_are_valid() -> None:
    assert ga4_event_name("call.spam") == "ringpool_call_spam"
    name = ga4_event_name("call.very-long.event name with spaces and more than forty characters")
    assert re.fullmatch(r"[A-Za-z0-9_]{1,40}", name)


def test_ga4_skips_what_retrying_would_never_fix() -> None:
    now = parse_time(t(120))
    assert ga4_skip_reason(outbox_payload(call_record(), t(65)), now) is None
    assert "ga_client_id" in ga4_skip_reason(outbox_payload(call_record(ga_client_id=None), t(65)), now)
    assert ga4_skip_reason(outbox_payload(call_record(is_test=1), t(65)), now) == "test call"
    assert "72 hours" in ga4_skip_reason(outbox_payload(call_record(), t(65)), now + timedelta(days=4))


def test_enqueue_call_event_picks_subscribed_sinks(db: sqlite_utils.Database) -> None:
    sinks = {"crm": replace(webhook("http://x/"), events=frozenset({"call.converted"})), "ga": ga4("http://x/")}
    assert sinks_for(sinks, "call.completed") == ["ga"]
    assert enqueue_call_event(db, sinks, "call.completed", call_record()) == 1
    assert enqueue_call_event(db, sinks, "call.converted", call_record(), occurred=t(99)) == 2
    with pytest.raises(ValueError):
        enqueue_call_event(db, sinks, "call.exploded", call_record())
    first, *_ = OutboxStore(db).due(utcnow(), 10)
    assert first.payload["occurred_at"] == t(65) and first.payload["call"]["id"] == "c1"
    assert [r["sink"] for r in rows(db)] == ["ga", "crm", "ga"]


# --- signatures and verdicts --------------------------------------------------------------------------------


def test_signature_verifies_and_rejects_tampering_and_replays() -> None:
    body = b'{"id":1,"event":"call.completed"}'
    header = sign(SECRET, body, 1_800_000_000)
    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, body, header, now=1_800_000_100)
    assert not verify(SECRET, body + b" ", header, now=1_800_000_100)
    assert not verify("another_secret_value", body, header, now=1_800_000_100)
    assert not verify(SECRET, body, header, now=1_800_000_000 + 301)
    assert not verify(SECRET, body, "v1=abc", now=1_800_000_000)
    assert not verify(SECRET, body, "garbage", now=1_800_000_000)


@pytest.mark.parametrize("status, verdict", [
    (200, "delivered"), (202, "delivered"), (204, "delivered"), (400, "dead"), (401, "dead"), (404, "dead"),
    (410, "dead"), (422, "dead"), (408, "retry"), (429, "retry"), (301, "retry"), (500, "retry"), (503, "retry"),
])
def test_classify(status: int, verdict: str) -> None:
    assert classify(status) == verdict


# --- offline conversion CSV -----------------------------------------------------------------------------------


def add_call(store: CallStore, call_id: str, at: float, **fields: Any) -> None:
    store.create_call(NewCall(id=call_id, inbound_channel=f"in-{call_id}", arrived_at=t(at),
                              is_test=fields.pop("is_test", 0)))
    store.update_call(call_id, **fields)


def test_conversions_for_export_selects_converted_ad_calls(db: sqlite_utils.Database) -> None:
    store = CallStore(db)
    converted = {"gclid": "Cj0A", "converted_at": t(500), "conversion_name": "Booked job",
                 "conversion_value": 120.5, "conversion_currency": "EUR", "campaign": "spring"}
    add_call(store, "ok", 0, **converted)
    add_call(store, "ok2", 1, **converted | {"gclid": "Cj0B", "converted_at": t(400), "conversion_name": None,
                                            "conversion_value": None, "conversion_currency": None})
    add_call(store, "no-gclid", 2, **converted | {"gclid": None})
    add_call(store, "empty-gclid", 3, **converted | {"gclid": ""})
    add_call(store, "not-converted", 4, **converted | {"converted_at": None})
    add_call(store, "test", 5, is_test=1, **converted)
    add_call(store, "late", 6, **converted | {"converted_at": t(5000)})
    add_call(store, "other", 7, **converted | {"campaign": "autumn", "gclid": "Cj0C"})
    found = conversions_for_export(db, t(0), t(1000))
    assert [r.gclid for r in found] == ["Cj0B", "Cj0A", "Cj0C"]
    assert found[0].name == "Phone call" and found[0].value is None
    assert [r.gclid for r in conversions_for_export(db, t(0), t(1000), "spring")] == ["Cj0B", "Cj0A"]
    assert conversions_for_export(db, t(0), t(1000), "x' OR '1'='1") == []

    out = io.StringIO()
    assert write_csv(found[:2], out) == 2
    assert out.getvalue().splitlines() == [
        TIMEZONE_LINE, ",".join(HEADER),
        "Cj0B,Phone call,2026-11-22 17:06:40+0000,,",
        "Cj0A,Booked job,2026-11-22 17:08:20+0000,120.50,EUR",
    ]


def test_csv_cells_cannot_become_formulas() -> None:
    assert safe_cell("=HYPERLINK(\"http://evil\")") == "'=HYPERLINK(\"http://evil\")"
    assert [safe_cell(v) for v in ("+1", "-1", "@SUM(A1)", "\tx", "Cj0", None)] == ["'+1", "'-1", "'@SUM(A1)",
                                                                                   "'\tx", "Cj0", ""]
    out = io.StringIO()
    write_csv([ConversionRow(gclid="+gclid", name="=cmd|' /C calc'!A0", time=t(0), value="-2+3",
                             currency="@EUR")], out)
    assert out.getvalue().splitlines()[2] == "'+gclid,'=cmd|' /C calc'!A0,2026-11-22 17:00:00+0000,'-2+3,'@EUR"
    assert google_time("2026-01-02T03:04:05.678Z") == "2026-01-02 03:04:05+0000"


# --- configuration ------------------------------------------------------------------------------------------


def sinks_from(tmp_path: Path, text: str) -> dict[str, Sink]:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text, encoding="utf-8")
    return read_sinks(_Section(path, load_located(path), "", 1).items("webhooks"))


def test_read_sinks(tmp_path: Path) -> None:
    sinks = sinks_from(tmp_path, """\
webhooks:
  - name: crm
    url: https://crm.example.com/hooks/ringpool
    secret: "0123456789abcdefXYZ"
    events: [call.completed, call.converted]
  - name: ga4
    kind: ga4
    measurement_id: G-ABCD1234
    api_secret: "mp-secret_1"
  - name: local-ga
    kind: ga4
    measurement_id: G-ABCD1234
    api_secret: "mp-secret_1"
    url: http://127.0.0.1:9999/mp/collect
    timeout: 2
    max_attempts: 3
  - name: all
    url: http://127.0.0.1:8081/
""")
    assert list(sinks) == ["crm", "ga4", "local-ga", "all"]
    crm, ga, local, everything = sinks.values()
    assert crm.kind == "webhook" and crm.events == {"call.completed", "call.converted"}
    assert crm.secret == "0123456789abcdefXYZ" and "0123456789abcdef" not in repr(crm)
    assert ga.url == GA4_URL and ga.measurement_id == "G-ABCD1234" and ga.secret is None
    assert "mp-secret_1" not in repr(ga)
    assert local.url == "http://127.0.0.1:9999/mp/collect" and local.timeout == 2.0 and local.max_attempts == 3
    assert everything.events == frozenset(EVENTS) and everything.secret is None and everything.timeout == 5.0
    assert sinks_from(tmp_path, "state_dir: var\n") == {}


@pytest.mark.parametrize("item, line, key, message", [
    ("  - name: Bad Name\n    url: http://x/\n", 2, "webhooks[0].name", "invalid value"),
    ("  - name: a\n    url: ftp://x/\n", 3, "webhooks[0].url", "http:// or https://"),
    ("  - name: a\n    url: http://\n", 3, "webhooks[0].url", "http:// or https://"),
    ("  - name: a\n", 2, "webhooks[0].url", "is required"),
    ("  - name: a\n    url: http://x/\n    events: [call.started, call.exploded]\n", 4, "webhooks[0].events",
     "unknown event 'call.exploded'"),
    ("  - name: a\n    url: http://x/\n    events: []\n", 4, "webhooks[0].events", "at least one event"),
    ("  - name: a\n    kind: ga4\n    api_secret: abcdefgh\n", 2, "webhooks[0].measurement_id", "is required"),
    ("  - name: a\n    kind: ga4\n    measurement_id: G-ABCD1234\n", 2, "webhooks[0].api_secret", "is required"),
    ("  - name: a\n    kind: ga4\n    measurement_id: UA-1234\n    api_secret: abcdefgh\n", 4,
     "webhooks[0].measurement_id", "G-XXXXXXX"),
    ("  - name: a\n    kind: ga4\n    measurement_id: G-ABCD1234\n    api_secret: abcdefgh\n    secret: x\n", 6,
     "webhooks[0].secret", "only for kind webhook"),
    ("  - name: a\n    url: http://x/\n    api_secret: abcdefgh\n", 4, "webhooks[0].api_secret", "only for kind ga4"),
    ("  - name: a\n    kind: slack\n    url: http://x/\n", 3, "webhooks[0].kind", "one of webhook, ga4"),
    ("  - name: a\n    url: http://x/\n    secret: short\n", 4, "webhooks[0].secret", "16-256"),
    ("  - name: a\n    url: http://x/\n    retries: 3\n", 4, "webhooks[0].retries", "unknown key"),
    ("  - name: a\n    url: http://x/\n    timeout: 0\n", 4, "webhooks[0].timeout", "out of range"),
    ("  - name: a\n    url: http://x/\n  - name: a\n    url: http://y/\n", 4, "webhooks[1]", "duplicate name 'a'"),
])
def test_read_sinks_errors_are_located(tmp_path: Path, item: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sinks_from(tmp_path, "webhooks:\n" + item)
    error = caught.value
    assert (error.line, error.key) == (line, key), str(error)
    assert message in error.message and str(error).startswith(f"{tmp_path / 'ringpool.yaml'}:{line}: {key}: ")


# --- the worker against a real local receiver -----------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A local aiohttp server; answers with queued statuses (then 200) and can hold requests at a gate."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}  # added to every answer
        self.gate: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(request.path, dict(request.query), dict(request.headers), await request.read()))
        if self.gate is not None:
            await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else f"receiver says {status}",
                            headers=self.headers)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Harness:
    """One database file opened like the service does (AsyncCallStore), and workers on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: AsyncCallStore | None = None
        self.workers: list[OutboxWorker] = []

    async def open(self) -> "Harness":
        self.store = AsyncCallStore(self.path)
        await self.store.open()
        return self

    def run_db(self, fn: Callable[[sqlite_utils.Database], Any]) -> Awaitable[Any]:
        assert self.store is not None
        return self.store.run(fn, self.store.db)  # what the service wires in

    def worker(self, sinks: dict[str, Sink], **options: Any) -> OutboxWorker:
        options = {"poll_interval": 0.05, "backoff_base": 0.05, "backoff_cap": 0.2, "rand": lambda: 0.0} | options
        worker = OutboxWorker(self.run_db, sinks, **options)
        self.workers.append(worker)
        return worker

    async def rows(self) -> list[dict[str, Any]]:
        return await self.run_db(rows)

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop()
        if self.store is not None:
            await self.store.close()
            self.store = None


@pytest.fixture
async def harness(tmp_path: Path):
    h = await Harness(tmp_path / "ringpool.db").open()
    yield h
    await h.close()


@pytest.fixture
async def receiver():
    r = await Receiver(free_port()).start()
    yield r
    await r.stop()


def recent_call(call_id: str = "c1", **extra: Any) -> dict[str, Any]:
    """Timestamps a minute ago: GA4 accepts only recent events."""
    return call_record(call_id, base=datetime.now(timezone.utc) - timedelta(minutes=1), **extra)


def settled(h: Harness, count: int, *, but: str | None = None) -> Callable[[], Awaitable[bool]]:
    """``count`` rows (of sinks other than ``but``), each delivered or dead."""
    async def check() -> bool:
        found = [r for r in await h.rows() if r["sink"] != but]
        return len(found) == count and all(r["delivered_at"] or r["dead_at"] for r in found)
    return check


async def test_events_are_delivered_signed_and_in_ga4_format(harness: Harness, receiver: Receiver) -> None:
    sinks = {"crm": webhook(receiver.url), "ga": ga4(f"http://127.0.0.1:{receiver.port}/mp/collect")}
    worker = harness.worker(sinks, poll_interval=30)  # only wake() makes it poll quickly
    await worker.start()
    assert await worker.publish("call.completed", recent_call()) == 2
    assert await worker.publish("call.started", recent_call("c2", ga_client_id=None)) == 2
    await harness.run_db(lambda db: OutboxStore(db).enqueue("call.started", "c3", {}, ["removed-sink"]))
    await until(settled(harness, 4, but="removed-sink"))

    hooks = [r for r in receiver.requests if r.path == "/hooks"]
    assert len(hooks) == 2
    for request in hooks:
        assert verify(SECRET, request.body, request.headers[SIGNATURE_HEADER], now=time.time())
        body = json.loads(request.body)
        assert request.headers[DELIVERY_HEADER] == str(body["id"]) and request.headers[EVENT_HEADER] == body["event"]
        assert request.headers["Content-Type"] == "application/json"
    completed = next(json.loads(r.body) for r in hooks if json.loads(r.body)["event"] == "call.completed")
    assert completed["call"]["id"] == "c1" and completed["call"]["talk_seconds"] == 60.0

    (collect,) = [r for r in receiver.requests if r.path == "/mp/collect"]  # c2 has no GA client id
    assert collect.query == {"measurement_id": "G-TEST1234", "api_secret": "mp_secret_123"}
    ga_body = json.loads(collect.body)
    assert ga_body["client_id"] == "1234567890.1700000000"
    assert ga_body["events"][0]["name"] == "ringpool_call_completed" and b"15557654321" not in collect.body

    found = await harness.rows()
    skipped = next(r for r in found if r["sink"] == "ga" and r["call_id"] == "c2")
    assert skipped["delivered_at"] and skipped["last_error"].startswith("skipped: no ga_client_id")
    removed = next(r for r in found if r["sink"] == "removed-sink")
    assert removed["delivered_at"] is None and removed["attempts"] == 0  # waits for its sink, never lost

    snapshot = await worker.metrics_snapshot()
    assert snapshot.backlog == {"crm": 0, "ga": 0, "removed-sink": 1} and snapshot.dead == 0
    assert snapshot.delivered == {"crm": 2, "ga": 2} and snapshot.failed == {}
    lines = snapshot.prometheus_lines()
    assert 'ringpool_outbox_deliveries_total{sink="crm",outcome="delivered"} 2' in lines
    assert 'ringpool_outbox_backlog{sink="removed-sink"} 1' in lines
    for line in lines:
        assert re.match(r'^# (HELP|TYPE) [a-z_]+ .+$|^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? \d+$', line), line


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_receiver_down_is_retried_with_backoff_until_it_comes_up(harness: Harness) -> None:
    receiver = Receiver(free_port())  # nothing listens yet: connection refused
    clock = FakeClock()
    start = clock.now
    worker = harness.worker({"crm": webhook(receiver.url)}, clock=clock, backoff_base=10.0, backoff_cap=100.0)
    await worker.start()
    await worker.publish("call.completed", recent_call())

    async def attempts(n: int) -> bool:
        return (await harness.rows())[0]["attempts"] == n

    await until(lambda: attempts(1))
    (row,) = await harness.rows()
    assert row["delivered_at"] is None and row["dead_at"] is None and "Connect" in row["last_error"]
    assert row["next_attempt_at"] == format_time(start + timedelta(seconds=5))  # 10 s step, jitter 0: half
    await asyncio.sleep(0.3)
    assert await attempts(1)  # not hammering the dead receiver: nothing before its time

    clock.advance(5)
    worker.wake()
    await until(lambda: attempts(2))
    assert (await harness.rows())[0]["next_attempt_at"] == format_time(start + timedelta(seconds=5 + 10))

    await receiver.start()
    try:
        clock.advance(10)
        worker.wake()
        await until(settled(harness, 1))
        (row,) = await harness.rows()
        assert row["delivered_at"] == format_time(clock.now) and row["attempts"] == 3 and row["dead_at"] is None
        assert len(receiver.requests) == 1
        assert (await worker.metrics_snapshot()).failed == {"crm": 2}
    finally:
        await receiver.stop()


async def test_server_errors_are_retried_and_client_errors_are_dead(harness: Harness, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    worker = harness.worker({"crm": webhook(receiver.url)})
    await worker.start()
    await worker.publish("call.completed", recent_call())
    await until(settled(harness, 1))
    (row,) = await harness.rows()
    assert row["delivered_at"] and row["attempts"] == 3 and row["last_error"] == "HTTP 503: receiver says 503"
    ids = {r.headers[DELIVERY_HEADER] for r in receiver.requests}
    assert len(receiver.requests) == 3 and ids == {str(row["id"])}  # same delivery id: receivers de-duplicate

    receiver.statuses = [400]
    await worker.publish("call.spam", recent_call("c2"))
    await until(settled(harness, 2))
    dead = (await harness.rows())[1]
    assert dead["dead_at"] and dead["delivered_at"] is None and dead["attempts"] == 1
    assert dead["last_error"] == "HTTP 400: receiver says 400"
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 4  # never retried
    snapshot = await worker.metrics_snapshot()
    assert (snapshot.dead, snapshot.backlog, snapshot.failed, snapshot.delivered) == (1, {"crm": 0}, {"crm": 3},
                                                                                      {"crm": 1})


async def test_retry_after_is_honoured(harness: Harness, receiver: Receiver) -> None:
    receiver.statuses, receiver.headers = [429], {"Retry-After": "30"}
    clock = FakeClock()
    worker = harness.worker({"crm": webhook(receiver.url)}, clock=clock, backoff_base=2.0, backoff_cap=900.0)
    await worker.start()
    await worker.publish("call.completed", recent_call())
    await until(lambda: len(receiver.requests) == 1)
    await until(lambda: _attempted(harness))
    (row,) = await harness.rows()
    assert row["next_attempt_at"] == format_time(clock.now + timedelta(seconds=30)) and row["dead_at"] is None
    assert row["last_error"] == "HTTP 429: receiver says 429"


async def _attempted(h: Harness) -> bool:
    return (await h.rows())[0]["attempts"] == 1


async def test_gives_up_after_max_attempts_and_times_out_slow_receivers(harness: Harness, receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # never answers
    worker = harness.worker({"crm": webhook(receiver.url, timeout=0.2, max_attempts=2)})
    await worker.start()
    await worker.publish("call.completed", recent_call())
    await until(settled(harness, 1))
    (row,) = await harness.rows()
    assert row["dead_at"] and row["attempts"] == 2 and row["last_error"] == "timed out after 0.2 s"
    assert len(receiver.requests) == 2


async def test_nothing_is_lost_when_the_worker_stops_mid_delivery(tmp_path: Path, receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # hold the first request: the worker is stopped while it is in flight
    first = await Harness(tmp_path / "ringpool.db").open()
    worker = first.worker({"crm": webhook(receiver.url)})
    await worker.start()
    await worker.publish("call.completed", recent_call())
    await until(lambda: len(receiver.requests) == 1)
    await worker.stop()
    await first.run_db(lambda db: enqueue_call_event(db, worker.sinks, "call.converted", recent_call()))
    (in_flight, queued) = await first.rows()
    assert in_flight["delivered_at"] is None and in_flight["attempts"] == 0 and queued["delivered_at"] is None
    await first.close()  # the process goes away
    receiver.gate.set()

    second = await Harness(tmp_path / "ringpool.db").open()
    try:
        await second.worker({"crm": webhook(receiver.url)}).start()
        await until(settled(second, 2))
        assert all(r["delivered_at"] and r["dead_at"] is None for r in await second.rows())
        deliveries = [r.headers[DELIVERY_HEADER] for r in receiver.requests]
        # the interrupted item is sent again (at least once, same delivery id), the queued one once
        assert sorted(deliveries) == sorted([str(in_flight["id"])] * 2 + [str(queued["id"])])
    finally:
        await second.close()


async def _value(result: Awaitable[bool] | bool) -> bool:
    return await result if inspect.isawaitable(result) else result
