"""AriEventStream against the fake ARI server: delivery, robustness, reconnect, stop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ari_app.ari import AriEventStream
from ari_app.ari.events import events_url

FAST = {"backoff_initial": 0.02, "backoff_max": 0.1, "connect_timeout": 1.0}


class Recorder:
    """Collects callback activity in one ordered log."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for e in self.log if isinstance(e, dict)]

    def count(self, marker: str) -> int:
        return sum(1 for e in self.log if e == marker)

    def on_event(self, event: dict[str, Any]) -> None:
        self.log.append(event)

    async def on_connected(self) -> None:
        self.log.append("connected")

    async def on_disconnected(self) -> None:
        self.log.append("disconnected")


def make_stream(fake, rec: Recorder, **kw: Any) -> AriEventStream:
    opts: dict[str, Any] = {
        "on_event": rec.on_event,
        "on_connected": rec.on_connected,
        "on_disconnected": rec.on_disconnected,
        **FAST,
    }
    opts.update(kw)
    return AriEventStream(fake.base_url, fake.user, fake.password, "ringpool", **opts)


@pytest.fixture
async def running():
    """Start streams in the background; always stop them at the end of the test."""
    started: list[tuple[AriEventStream, asyncio.Task[None]]] = []

    def start(stream: AriEventStream) -> asyncio.Task[None]:
        task = asyncio.create_task(stream.run())
        started.append((stream, task))
        return task

    yield start
    for stream, task in started:
        await stream.stop()
        await asyncio.wait_for(task, 3)


def test_events_url():
    assert events_url("http://h:8088") == "ws://h:8088/ari/events"
    assert events_url("https://h/ari/") == "wss://h/ari/events"


async def test_delivers_events_in_order_with_auth_and_app(fake_ari, running, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec)
    running(stream)
    assert await stream.wait_connected(2)
    assert stream.connected
    for i in range(50):
        await fake_ari.push({"type": "ChannelDtmfReceived", "digit": str(i % 10), "n": i})
    await wait_until(lambda: len(rec.events) == 50)
    assert [e["n"] for e in rec.events] == list(range(50))
    assert fake_ari.ws_requests[0] == {
        "query": {"app": "ringpool", "subscribeAll": "false"},
        "auth": fake_ari.auth_header,
    }
    assert stream.reconnects == 0


async def test_on_connected_completes_before_events(fake_ari, running, wait_until):
    fake_ari.greeting = [{"type": "StasisStart", "n": 1}, {"type": "StasisStart", "n": 2}]
    rec = Recorder()

    async def slow_connected() -> None:
        await asyncio.sleep(0.15)  # e.g. GET /channels reconcile
        rec.log.append("connected")

    stream = make_stream(fake_ari, rec, on_connected=slow_connected)
    running(stream)
    await wait_until(lambda: len(rec.events) == 2)
    assert rec.log[0] == "connected"
    assert [e["n"] for e in rec.events] == [1, 2]


async def test_malformed_frames_are_skipped(fake_ari, running, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec)
    running(stream)
    assert await stream.wait_connected(2)
    await fake_ari.push("this is not json")
    await fake_ari.push("[1, 2, 3]")
    await fake_ari.push('{"type": "trunc')
    await fake_ari.push({"type": "ok"})
    await wait_until(lambda: len(rec.events) == 1)
    assert rec.events == [{"type": "ok"}]
    assert stream.connected and stream.reconnects == 0


async def test_callback_exceptions_do_not_kill_stream(fake_ari, running, wait_until):
    got: list[int] = []

    async def on_event(event: dict[str, Any]) -> None:
        got.append(event["n"])
        if event["n"] == 1:
            raise RuntimeError("handler bug (async)")
        if event["n"] == 2:
            raise KeyError("handler bug")

    def bad_connected() -> None:
        raise RuntimeError("reconcile failed")

    rec = Recorder()
    stream = make_stream(fake_ari, rec, on_event=on_event, on_connected=bad_connected)
    running(stream)
    assert await stream.wait_connected(2)
    for n in (1, 2, 3):
        await fake_ari.push({"type": "X", "n": n})
    await wait_until(lambda: got == [1, 2, 3])
    assert stream.connected and stream.reconnects == 0


async def test_sync_callback_exception_is_contained(fake_ari, running, wait_until):
    got: list[int] = []

    def on_event(event: dict[str, Any]) -> None:
        got.append(event["n"])
        raise ValueError("sync handler bug")

    stream = make_stream(fake_ari, Recorder(), on_event=on_event)
    running(stream)
    assert await stream.wait_connected(2)
    for n in range(3):
        await fake_ari.push({"n": n})
    await wait_until(lambda: got == [0, 1, 2])


async def test_slow_callback_does_not_stall_reader(fake_ari, running, wait_until):
    release = asyncio.Event()
    got: list[int] = []

    async def on_event(event: dict[str, Any]) -> None:
        if event["n"] == 0:
            await release.wait()
        got.append(event["n"])

    # Heartbeat much shorter than the stall: a reader blocked by the callback would
    # miss pongs and drop the connection.
    stream = make_stream(fake_ari, Recorder(), on_event=on_event, heartbeat=0.1)
    running(stream)
    assert await stream.wait_connected(2)
    for n in range(5):
        await fake_ari.push({"n": n})
    await asyncio.sleep(0.6)
    assert got == []
    assert stream.connected and stream.reconnects == 0 and fake_ari.ws_connections == 1
    release.set()
    await wait_until(lambda: got == [0, 1, 2, 3, 4])


async def test_reconnects_after_drop(fake_ari, running, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec)
    running(stream)
    assert await stream.wait_connected(2)
    await fake_ari.push({"n": 1})
    await wait_until(lambda: len(rec.events) == 1)

    fake_ari.abort_websockets()
    await wait_until(lambda: fake_ari.ws_connections == 2 and stream.connected)
    await wait_until(lambda: rec.count("connected") == 2)
    assert stream.reconnects == 1
    assert stream.last_error is not None
    await fake_ari.push({"n": 2})
    await wait_until(lambda: len(rec.events) == 2)
    assert rec.log == ["connected", {"n": 1}, "disconnected", "connected", {"n": 2}]


async def test_reconnects_after_clean_close(fake_ari, running, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec)
    running(stream)
    assert await stream.wait_connected(2)
    await fake_ari.close_websockets()
    await wait_until(lambda: stream.reconnects == 1 and stream.connected)
    assert "1001" in (stream.last_error or "")


async def test_reconnects_after_asterisk_restart_on_same_port(fake_ari, running, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec)
    running(stream)
    assert await stream.wait_connected(2)
    port = fake_ari.port

    await fake_ari.stop()
    await wait_until(lambda: not stream.connected)
    await asyncio.sleep(0.3)  # several refused attempts
    assert not stream.connected
    assert "Connect" in (stream.last_error or "")
    assert stream.reconnects == 0

    await fake_ari.start()
    assert fake_ari.port == port
    await wait_until(lambda: stream.connected and rec.count("connected") == 2)
    assert stream.reconnects == 1
    await fake_ari.push({"type": "StasisStart", "after": "restart"})
    await wait_until(lambda: rec.events == [{"type": "StasisStart", "after": "restart"}])


async def test_dead_socket_is_noticed_by_heartbeat(fake_ari, running, wait_until):
    fake_ari.answer_pings = False  # peer stays TCP-open but never answers pings
    rec = Recorder()
    stream = make_stream(fake_ari, rec, heartbeat=0.2)
    running(stream)
    assert await stream.wait_connected(2)
    fake_ari.answer_pings = True
    await wait_until(lambda: stream.reconnects == 1 and stream.connected, timeout=3)
    assert rec.count("disconnected") == 1


async def test_bad_credentials_keep_retrying(fake_ari, running, wait_until):
    rec = Recorder()
    stream = AriEventStream(fake_ari.base_url, fake_ari.user, "wrong", "ringpool",
                            on_event=rec.on_event, **FAST)
    running(stream)
    await wait_until(lambda: stream.last_error is not None and "401" in stream.last_error)
    assert not stream.connected and rec.log == []


async def test_connect_timeout(running, wait_until):
    # A server that accepts TCP but never answers the HTTP upgrade.
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = AriEventStream(f"http://127.0.0.1:{port}", "u", "p", "ringpool",
                                on_event=lambda e: None, backoff_initial=0.05, backoff_max=0.1,
                                connect_timeout=0.2)
        t0 = time.monotonic()
        running(stream)
        await wait_until(lambda: stream.last_error is not None, timeout=2)
        assert time.monotonic() - t0 < 1.0
        assert "Timeout" in stream.last_error
        assert not stream.connected
        await stream.stop()
    finally:
        server.close()


async def test_stop_is_prompt_during_hung_handshake():
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = AriEventStream(f"http://127.0.0.1:{port}", "u", "p", "ringpool",
                                on_event=lambda e: None, connect_timeout=5.0)
        task = asyncio.create_task(stream.run())
        await asyncio.sleep(0.2)  # handshake now hanging
        t0 = time.monotonic()
        await stream.stop()
        await asyncio.wait_for(task, 1.0)
        assert time.monotonic() - t0 < 1.0
    finally:
        server.close()


async def test_stop_ends_run_promptly_when_connected(fake_ari, wait_until):
    rec = Recorder()
    stream = make_stream(fake_ari, rec, heartbeat=10.0)
    task = asyncio.create_task(stream.run())
    assert await stream.wait_connected(2)
    t0 = time.monotonic()
    await stream.stop()
    await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - t0 < 1.0
    assert not stream.connected and not stream.running
    assert rec.log == ["connected", "disconnected"]
    await wait_until(lambda: not fake_ari.ws_clients)


async def test_stop_interrupts_backoff_sleep(free_port, wait_until):
    stream = AriEventStream(f"http://127.0.0.1:{free_port}", "u", "p", "ringpool",
                            on_event=lambda e: None, backoff_initial=8.0, backoff_max=10.0)
    task = asyncio.create_task(stream.run())
    await wait_until(lambda: stream.last_error is not None)
    t0 = time.monotonic()
    await stream.stop()
    await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - t0 < 1.0


async def test_stop_before_start_is_honoured(fake_ari):
    stream = make_stream(fake_ari, Recorder())
    task = stream.start()
    await stream.stop()
    await asyncio.wait_for(task, 1.0)
    assert fake_ari.ws_connections == 0


async def test_stop_from_inside_callback(fake_ari):
    holder: dict[str, AriEventStream] = {}

    async def on_event(event: dict[str, Any]) -> None:
        await holder["s"].stop()

    stream = make_stream(fake_ari, Recorder(), on_event=on_event)
    holder["s"] = stream
    task = asyncio.create_task(stream.run())
    assert await stream.wait_connected(2)
    await fake_ari.push({"type": "Hangup"})
    await asyncio.wait_for(task, 2.0)


async def test_run_twice_concurrently_rejected(fake_ari, running):
    stream = make_stream(fake_ari, Recorder())
    running(stream)
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await stream.run()


class RecordingStream(AriEventStream):
    """Records every backoff wait and sleeps only briefly, to check the schedule fast."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.waits: list[float] = []

    async def _sleep(self, delay: float) -> None:
        self.waits.append(delay)
        await super()._sleep(0.005)


async def test_backoff_doubles_with_jitter_caps_and_resets(fake_ari, running, wait_until):
    await fake_ari.stop()  # port reserved for a later restart, refused for now
    stream = RecordingStream(fake_ari.base_url, fake_ari.user, fake_ari.password, "ringpool",
                             on_event=lambda e: None, backoff_initial=0.25, backoff_max=1.0)
    running(stream)
    await wait_until(lambda: len(stream.waits) >= 6)
    nominal = [0.25, 0.5, 1.0, 1.0, 1.0, 1.0]
    for wait, d in zip(stream.waits[:6], nominal):
        assert d / 2 <= wait <= d

    await fake_ari.start()
    await wait_until(lambda: stream.connected)
    before = len(stream.waits)
    fake_ari.abort_websockets()
    await wait_until(lambda: len(stream.waits) > before)
    assert stream.waits[before] <= 0.25  # reset after the successful connection
    await wait_until(lambda: stream.connected)


def test_invalid_backoff_rejected():
    with pytest.raises(ValueError):
        AriEventStream("http://h", "u", "p", "a", on_event=lambda e: None,
                       backoff_initial=1.0, backoff_max=0.5)
