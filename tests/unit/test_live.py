"""The live feed (ari_app/admin/live.py): fan-out, slow clients, limits, tickets, the CallStore observer, and the
server-sent events endpoint GET /api/v1/live with its tickets (ari_app/admin/dashboard.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import dashboard
from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.admin.live import (OPTIONAL_FIELDS, SUMMARY_FIELDS, LiveFeed, TicketBook, TooManySubscribers,
                                call_summary, watch_calls)
from storage.async_store import AsyncCallStore
from storage.calls import NewCall

TOKEN = "live-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(n: int) -> dict[str, Any]:
    return {"type": "call.started", "call": {"id": f"c{n}"}}


# --- the fan-out -----------------------------------------------------------------------------------------------

async def test_every_subscriber_gets_every_event_in_order_with_a_sequence_number() -> None:
    feed = LiveFeed()
    a, b = feed.subscribe(), feed.subscribe()
    for n in range(3):
        feed.publish(event(n))
    for sub in (a, b):
        got = [await sub.get(1) for _ in range(3)]
        assert [e["call"]["id"] for e in got] == ["c0", "c1", "c2"]  # type: ignore[index]
        assert [e["seq"] for e in got] == [1, 2, 3]  # type: ignore[index]
    assert await a.get(0.05) is None  # nothing more: a timeout reads as None
    assert feed.published == 3 and feed.subscribers == 2


async def test_a_slow_subscriber_loses_its_backlog_and_gets_a_resync_marker_while_others_keep_up() -> None:
    feed = LiveFeed(queue_size=4)
    slow, fast = feed.subscribe(), feed.subscribe()
    for n in range(6):
        feed.publish(event(n))
        assert (await fast.get(1))["call"]["id"] == f"c{n}"  # type: ignore[index]
    # the slow one filled its 4 places with c0..c3; c4 found it full: backlog dropped, resync, then c4; then c5
    got = []
    while (e := await slow.get(0.05)) is not None:
        got.append(e)
    assert [e["type"] for e in got] == ["resync", "call.started", "call.started"]
    assert [e["call"]["id"] for e in got[1:]] == ["c4", "c5"]
    assert slow.dropped == 4 and slow.resyncs == 1 and fast.dropped == 0 and fast.resyncs == 0


async def test_subscriber_limit_and_unsubscribe() -> None:
    feed = LiveFeed(max_subscribers=2)
    a = feed.subscribe()
    feed.subscribe()
    with pytest.raises(TooManySubscribers):
        feed.subscribe()
    feed.unsubscribe(a)
    feed.unsubscribe(a)  # twice is harmless
    assert feed.subscribers == 1
    feed.subscribe()
    feed.publish(event(1))
    assert a.queue.empty()  # gone subscribers get nothing


async def test_publish_from_another_thread_is_delivered_on_the_loop() -> None:
    feed = LiveFeed()
    sub = feed.subscribe()
    offered_on: list[int] = []
    original = feed._offer

    def spy(s: Any, e: dict[str, Any]) -> None:
        offered_on.append(threading.get_ident())
        original(s, e)

    feed._offer = spy  # type: ignore[method-assign]
    thread = threading.Thread(target=lambda: [feed.publish(event(n)) for n in range(3)])
    thread.start()
    thread.join()
    got = [await sub.get(1) for _ in range(3)]
    assert [e["call"]["id"] for e in got] == ["c0", "c1", "c2"]  # type: ignore[index]
    assert set(offered_on) == {threading.get_ident()}  # asyncio.Queue is touched on the loop's thread only


async def test_close_ends_every_subscription_and_later_publishes_are_ignored() -> None:
    feed = LiveFeed(queue_size=2)
    a, b = feed.subscribe(), feed.subscribe()
    feed.publish(event(1))
    assert (await a.get(1))["seq"] == 1  # type: ignore[index]
    feed.publish(event(2))  # b's two places are full now: close() still gets its end marker in
    feed.close()
    assert (await a.get(1))["seq"] == 2  # type: ignore[index]
    assert await a.get(1) is None and a.closed
    assert (await b.get(1))["seq"] == 2  # type: ignore[index]  (its oldest made way for the marker)
    assert await b.get(1) is None and b.closed
    feed.publish(event(3))
    assert feed.subscribers == 0 and feed.published == 2
    with pytest.raises(TooManySubscribers):
        feed.subscribe()


def test_publish_with_no_loop_and_a_closed_loop_does_not_raise() -> None:
    LiveFeed().publish(event(1))  # nobody subscribed yet, no loop known
    loop = asyncio.new_event_loop()
    feed = LiveFeed(loop=loop)
    loop.close()
    feed.publish(event(2))  # the loop is gone (shutting down): dropped quietly


# --- tickets ---------------------------------------------------------------------------------------------------

def test_tickets_are_single_use_expire_and_are_bounded() -> None:
    now = [1000.0]
    book = TicketBook(ttl=60, capacity=3, clock=lambda: now[0])
    first = book.issue()
    assert first.startswith("lt_") and len(first) > 40
    assert book.redeem(first) is True
    assert book.redeem(first) is False  # single use
    late = book.issue()
    now[0] += 60
    assert book.redeem(late) is False  # expired
    tickets = [book.issue() for _ in range(4)]
    assert len(book) == 3
    assert book.redeem(tickets[0]) is False  # the oldest was pushed out
    assert all(book.redeem(t) for t in tickets[1:])
    assert book.redeem("") is False and book.redeem("lt_" + "x" * 200) is False and book.redeem("nonsense") is False


# --- call summaries from the store -----------------------------------------------------------------------------

def test_call_summary_is_compact_and_passes_scores_only_when_present() -> None:
    row = {name: None for name in SUMMARY_FIELDS} | {"id": "x", "inbound_channel": "secret-ish", "transcript": "hi",
                                                     "score1": 7, "quality": None}
    summary = call_summary(row)
    assert set(summary) == set(SUMMARY_FIELDS) | {"score1"}
    assert summary["score1"] == 7 and "transcript" not in summary and "inbound_channel" not in summary
    assert set(OPTIONAL_FIELDS) >= {"quality", "score1"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncCallStore]:
    store = AsyncCallStore(tmp_path / "live.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def next_call_event(sub: Any) -> dict[str, Any]:
    got = await sub.get(2)
    assert got is not None, "no live event"
    return got


async def test_milestones_are_published_with_the_call_summary(store: AsyncCallStore) -> None:
    feed = LiveFeed()
    assert store.store is not None
    watch_calls(store.store, feed)
    sub = feed.subscribe()
    await store.call("create_call", NewCall(id="call-1", inbound_channel="chan-1", arrived_at="2026-05-01T10:00:00.000Z",
                                            caller_number="15557770001", dialed_number="15550001002"))
    await store.call("apply", "call-1", call={"decision": "proceed", "campaign": "plain", "state": "ringing",
                                              "source": "google", "attribution_method": "static"},
                     events=[("decision", "2026-05-01T10:00:00.100Z", {"action": "proceed"})])
    started = await next_call_event(sub)
    assert started["type"] == "call.started" and started["seq"] == 1
    call = started["call"]
    assert (call["id"], call["caller_number"], call["dialed_number"], call["campaign"], call["state"]) == (
        "call-1", "15557770001", "15550001002", "plain", "ringing")
    assert (call["source"], call["attribution_method"], call["disposition"], call["spam"]) == ("google", "static", None, 0)
    assert call["fax_detected"] == 0 and call["machine_dtmf"] == 0 and call["updated_at"]

    await store.call("apply", "call-1", call={"state": "bridged", "bridged_at": "2026-05-01T10:00:02.000Z"})
    answered = await next_call_event(sub)
    assert answered["type"] == "call.answered" and answered["call"]["state"] == "bridged"
    await store.call("finish_call", "call-1", disposition="completed", ended_at="2026-05-01T10:00:05.500Z")
    done = await next_call_event(sub)
    assert done["type"] == "call.completed"
    assert (done["call"]["disposition"], done["call"]["state"], done["call"]["talk_seconds"]) == ("completed", "ended", 3.5)
    assert done["call"]["updated_at"] >= answered["call"]["updated_at"]


async def test_a_rejected_call_is_published_once_when_it_is_finished(store: AsyncCallStore) -> None:
    feed = LiveFeed()
    assert store.store is not None
    watch_calls(store.store, feed)
    sub = feed.subscribe()
    await store.call("create_call", NewCall(id="rej-1", inbound_channel="chan-r", arrived_at="2026-05-01T10:00:00.000Z",
                                            dialed_number="15559999999"))
    await store.call("update_call", "rej-1", decision="reject", decision_reasons=["not a tracking number"])
    await store.call("finish_call", "rej-1", disposition="rejected", hangup_cause=1)
    got = await next_call_event(sub)
    assert (got["type"], got["call"]["disposition"], got["call"]["decision"]) == ("call.completed", "rejected", "reject")
    assert await sub.get(0.1) is None


async def test_a_failing_feed_never_fails_the_calls_write(store: AsyncCallStore, caplog: pytest.LogCaptureFixture) -> None:
    feed = LiveFeed()

    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("dashboard is broken")

    feed.publish = broken  # type: ignore[method-assign]
    assert store.store is not None
    watch_calls(store.store, feed)
    await store.call("create_call", NewCall(id="call-2", inbound_channel="chan-2", arrived_at="2026-05-01T10:00:00.000Z"))
    await store.call("update_call", "call-2", decision="proceed")
    await store.call("finish_call", "call-2", disposition="completed")
    row = await store.call("call_row", "call-2")
    assert (row["decision"], row["disposition"]) == ("proceed", "completed")  # both steps committed
    assert "cannot publish call.started" in caplog.text


# --- GET /api/v1/live ------------------------------------------------------------------------------------------

async def _status() -> dict[str, Any]:
    return {"ari_connected": True, "database_ok": True}


@pytest.fixture
def fast_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "DISCONNECT_POLL", 0.05)


async def client_for(feed: LiveFeed | None) -> TestClient:
    app = build_admin_app(AdminDeps(store=None, token=TOKEN, status=_status, live=feed))  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


class Stream:
    """Reads server-sent events from a streaming response."""

    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.buffer = b""

    async def block(self, timeout: float = 3.0) -> str:
        async def read() -> str:
            while b"\n\n" not in self.buffer:
                chunk = await self.resp.content.readany()
                if not chunk:
                    raise EOFError(self.buffer)
                self.buffer += chunk
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            return block.decode()

        return await asyncio.wait_for(read(), timeout)

    async def event(self, timeout: float = 3.0) -> tuple[str, dict[str, Any], dict[str, str]]:
        while True:
            fields: dict[str, str] = {}
            for line in (await self.block(timeout)).split("\n"):
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "event" in fields:
                return fields["event"], json.loads(fields["data"]), fields


async def ticket(client: TestClient) -> str:
    resp = await client.post("/api/v1/live/ticket", headers=AUTH)
    assert resp.status == 201 and resp.headers["Cache-Control"] == "no-store"
    return (await resp.json())["ticket"]


async def test_the_stream_with_a_ticket_sends_hello_then_call_events(fast_stream: None) -> None:
    feed = LiveFeed()
    client = await client_for(feed)
    try:
        issued = await client.post("/api/v1/live/ticket", headers=AUTH)
        assert issued.status == 201 and issued.headers["Cache-Control"] == "no-store"
        body = await issued.json()
        assert body["expires_in"] == 60 and body["ticket"].startswith("lt_")
        t = body["ticket"]
        resp = await client.get("/api/v1/live", params={"ticket": t})
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-store"
        stream = Stream(resp)
        name, data, fields = await stream.event()
        assert name == "hello" and fields["retry"] == str(dashboard.RETRY_MS) and data["heartbeat"] == 15
        for _ in range(50):
            if feed.subscribers:
                break
            await asyncio.sleep(0.01)
        feed.publish({"type": "call.started", "call": {"id": "call-9", "caller_number": "1555\n<b>x</b>"}})
        name, data, fields = await stream.event()
        assert name == "call" and fields["id"] == "1" == str(data["seq"])
        assert data["call"] == {"id": "call-9", "caller_number": "1555\n<b>x</b>"}  # one data line, JSON-escaped
        feed.publish(dict({"type": "resync"}))
        assert (await stream.event())[0] == "resync"
        resp.close()

        # the ticket was single use
        again = await client.get("/api/v1/live", params={"ticket": t})
        assert again.status == 401 and (await again.json())["error"].startswith("missing or invalid ticket")
    finally:
        await client.close()


async def test_the_stream_needs_a_ticket_or_the_bearer_token(fast_stream: None) -> None:
    feed = LiveFeed()
    client = await client_for(feed)
    try:
        for params, headers in (({}, {}), ({"ticket": "lt_" + "A" * 43}, {}), ({"ticket": "bogus"}, {}),
                                ({}, {"Authorization": "Bearer wrong"}), ({"token": TOKEN}, {})):
            resp = await client.get("/api/v1/live", params=params, headers=headers)
            assert resp.status == 401, (params, headers)
            assert resp.headers["WWW-Authenticate"] == 'Bearer realm="ringpool"'
        assert (await client.post("/api/v1/live/ticket")).status == 401  # tickets need the token
        resp = await client.get("/api/v1/live", headers=AUTH)  # curl and other clients that can send the header
        assert resp.status == 200
        assert (await Stream(resp).event())[0] == "hello"
        resp.close()
        resp = await client.get("/api/v1/live", params={"ticket": await ticket(client), "x": "1"})
        assert resp.status == 400 and "x" in (await resp.json())["error"]
        assert (await client.get("/api/v1/live/", headers={})).status == 401  # other paths keep the middleware
    finally:
        await client.close()


async def test_expired_tickets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "TicketBook", lambda: TicketBook(ttl=0.05))
    client = await client_for(LiveFeed())
    try:
        t = await ticket(client)
        await asyncio.sleep(0.1)
        assert (await client.get("/api/v1/live", params={"ticket": t})).status == 401
    finally:
        await client.close()


async def test_without_a_feed_both_endpoints_say_404() -> None:
    client = await client_for(None)
    try:
        resp = await client.post("/api/v1/live/ticket", headers=AUTH)
        assert resp.status == 404 and "not enabled" in (await resp.json())["error"]
        assert (await client.get("/api/v1/live", headers=AUTH)).status == 404
    finally:
        await client.close()


async def test_heartbeats_keep_an_idle_stream_alive(monkeypatch: pytest.MonkeyPatch, fast_stream: None) -> None:
    monkeypatch.setattr(dashboard, "HEARTBEAT_SECONDS", 0.2)
    client = await client_for(LiveFeed())
    try:
        resp = await client.get("/api/v1/live", headers=AUTH)
        stream = Stream(resp)
        assert (await stream.event())[0] == "hello"
        assert await stream.block(2) == ": keep-alive"
        assert await stream.block(2) == ": keep-alive"
        resp.close()
    finally:
        await client.close()


async def test_subscriber_limit_and_disconnects_free_their_place(fast_stream: None) -> None:
    feed = LiveFeed(max_subscribers=1)
    client = await client_for(feed)
    try:
        first = await client.get("/api/v1/live", headers=AUTH)
        assert (await Stream(first).event())[0] == "hello"
        second = await client.get("/api/v1/live", headers=AUTH)
        assert second.status == 503 and second.headers["Retry-After"] == "10"
        assert "too many live streams" in (await second.json())["error"]
        first.close()  # the browser tab went away
        for _ in range(100):
            if feed.subscribers == 0:
                break
            await asyncio.sleep(0.02)
        assert feed.subscribers == 0
        third = await client.get("/api/v1/live", headers=AUTH)
        assert third.status == 200
        third.close()
    finally:
        await client.close()


async def test_a_stopping_server_ends_open_streams_with_bye(fast_stream: None) -> None:
    feed = LiveFeed()
    client = await client_for(feed)
    try:
        resp = await client.get("/api/v1/live", headers=AUTH)
        stream = Stream(resp)
        assert (await stream.event())[0] == "hello"
        await client.app.shutdown()  # what AppRunner.cleanup runs before waiting for handlers: closes the feed
        assert feed.closed
        assert (await stream.event())[0] == "bye"
        with pytest.raises(EOFError):
            await stream.block(2)
    finally:
        await client.close()
