"""ARI events WebSocket with automatic reconnect.

Why this exists and behaves the way it does:

* Connecting ``/ari/events?app=NAME`` is what *registers* the Stasis application in
  Asterisk. While the socket is down, ``Stasis(NAME)`` in the dialplan fails and the
  dialplan falls through to its fallback, so the socket must come back on its own,
  fast, whenever Asterisk restarts or the network drops: we retry forever with
  exponential backoff plus jitter (0.25 s doubling to 10 s by default, reset after
  every successful connection).
* A half-open TCP connection (Asterisk killed -9, NAT timeout) delivers no close
  frame; aiohttp's heartbeat (ping every ``heartbeat`` s, closed when no pong within
  half of that) turns it into a disconnect we can act on.
* Events sent while we were disconnected are lost for good. ``on_connected`` is
  therefore awaited after every (re)connection *before* any event of that connection
  is dispatched, so the app can reconcile (GET /channels, GET /bridges) and only then
  apply the live event stream on top. Events that arrive during the reconcile are
  buffered, not dropped; handlers must be idempotent because a buffered event can
  describe a state the snapshot already shows.
* The socket reader never runs user code: it parses frames and queues them; one
  dispatcher task calls the callbacks in arrival order. A slow or failing callback
  therefore cannot stall the reader (nor starve heartbeat handling), and exceptions
  are logged instead of killing the stream. Malformed frames are logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from .rest import ari_root_url, basic_auth_header

__all__ = ["AriEventStream", "EventCallback", "HookCallback", "events_url"]

log = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
HookCallback = Callable[[], Awaitable[None] | None]

_CONNECTED = object()
_DISCONNECTED = object()
_END = object()

_BACKLOG_WARN = 1000


def events_url(base_url: str) -> str:
    """``ws(s)://host:port/ari/events`` derived from the HTTP base URL."""
    root = ari_root_url(base_url)
    if root.startswith("https://"):
        root = "wss://" + root[len("https://") :]
    elif root.startswith("http://"):
        root = "ws://" + root[len("http://") :]
    return root + "/events"


class AriEventStream:
    """Reads ARI events for one Stasis application, reconnecting forever until :meth:`stop`.

    ``on_event`` receives each event dict in arrival order and should be quick (the
    app routes events into per-call queues). Callbacks may be plain functions or
    coroutine functions. ``backoff_initial``/``backoff_max`` exist mainly so tests can
    shrink the retry delays.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        on_event: EventCallback,
        on_connected: HookCallback | None = None,
        on_disconnected: HookCallback | None = None,
        heartbeat: float = 10.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        subscribe_all: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.url = events_url(base_url)
        self.app = app
        self._params = {"app": app, "subscribeAll": "true" if subscribe_all else "false"}
        self._headers = {"Authorization": basic_auth_header(username, password)}
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._heartbeat = heartbeat if heartbeat and heartbeat > 0 else None
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._session = session

        self._connected = False
        self._ever_connected = False
        self._reconnects = 0
        self._last_error: str | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._done = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    # -- state ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open (i.e. the Stasis app is registered)."""
        return self._connected

    @property
    def reconnects(self) -> int:
        """Successful connections after the first one (a health/alerting metric)."""
        return self._reconnects

    @property
    def last_error(self) -> str | None:
        """Most recent connect failure or disconnect reason; kept after recovery for diagnostics."""
        return self._last_error

    @property
    def running(self) -> bool:
        """True between the start of :meth:`run` and its return."""
        return self._run_task is not None and not self._run_task.done()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until the socket is open; False on timeout (startup health checks)."""
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` in a background task and return it.

        Unlike ``create_task(stream.run())`` the task is registered immediately, so a
        :meth:`stop` issued before the task first runs is not lost.
        """
        if self.running:
            raise RuntimeError("event stream already running")
        self._reset_for_run()
        self._run_task = asyncio.create_task(self._run_loop(), name=f"ari-events-{self.app}")
        return self._run_task

    async def run(self) -> None:
        """Connect and read events until :meth:`stop`; reconnects on any failure."""
        if self.running:
            raise RuntimeError("event stream already running")
        self._reset_for_run()
        self._run_task = asyncio.current_task()
        await self._run_loop()

    async def stop(self) -> None:
        """Stop reading and end :meth:`run` promptly (also interrupts a backoff sleep).

        Safe to call from inside a callback: then it only signals and returns, since
        waiting for the run to finish from the dispatcher would deadlock.
        """
        self._stopping = True
        self._stop_event.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                async with asyncio.timeout(1.0):
                    await ws.close()
            except Exception:  # noqa: BLE001 - best effort, run() closes it again
                pass
        task = self._run_task
        current = asyncio.current_task()
        if task is None or task.done() or current is task or current is self._dispatcher:
            return
        try:
            async with asyncio.timeout(5.0):
                await self._done.wait()
        except TimeoutError:
            log.warning("ARI event stream did not stop in time; cancelling")
            task.cancel()

    # -- internals ------------------------------------------------------------------

    def _use_session(self, session: aiohttp.ClientSession) -> None:
        """Use a shared session from the next run() on (AriClient); never closed by us."""
        self._session = session

    def _reset_for_run(self) -> None:
        self._stopping = False
        self._stop_event.clear()
        self._done.clear()

    def _jittered(self, delay: float) -> float:
        # "Equal jitter": spreads reconnect storms of several app instances while
        # keeping the delay within [delay/2, delay] (the cap stays a real cap).
        return random.uniform(delay / 2, delay)

    async def _sleep(self, delay: float) -> None:
        """Sleep ``delay`` s unless stop() is called first."""
        try:
            async with asyncio.timeout(delay):
                await self._stop_event.wait()
        except TimeoutError:
            pass

    async def _connect(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(self._connect_timeout):
            return await session.ws_connect(
                self.url,
                params=self._params,
                headers=self._headers,
                heartbeat=self._heartbeat,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
            )

    async def _connect_unless_stopped(
        self, session: aiohttp.ClientSession
    ) -> aiohttp.ClientWebSocketResponse | None:
        """Connect, but give up at once (returning None) if stop() is called meanwhile,
        so stop() is prompt even while a handshake hangs for up to connect_timeout."""
        connect = asyncio.ensure_future(self._connect(session))
        stopped = asyncio.ensure_future(self._stop_event.wait())
        try:
            await asyncio.wait({connect, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not connect.done():
                connect.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connect
        if connect.cancelled():
            return None
        ws = connect.result()  # raises the connect error, if any
        if self._stopping:
            await ws.close()
            return None
        return ws

    async def _run_loop(self) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch(queue), name="ari-events-dispatch")
        own_session = self._session is None or self._session.closed
        session = aiohttp.ClientSession() if own_session else self._session
        assert session is not None
        delay = self._backoff_initial
        failures = 0
        try:
            while not self._stopping:
                try:
                    ws = await self._connect_unless_stopped(session)
                    if ws is None:
                        break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure means "retry later"
                    failures += 1
                    self._last_error = _describe(exc)
                    wait = self._jittered(delay)
                    level = logging.WARNING if failures == 1 or failures % 30 == 0 else logging.DEBUG
                    log.log(level, "ARI events connect to %s failed (%s); attempt %d, retry in %.2f s",
                            self.url, self._last_error, failures, wait)
                    delay = min(delay * 2, self._backoff_max)
                    await self._sleep(wait)
                    continue

                failures = 0
                delay = self._backoff_initial
                if self._ever_connected:
                    self._reconnects += 1
                self._ever_connected = True
                self._ws = ws
                self._connected = True
                self._connected_event.set()
                log.info("ARI events connected (app=%s, reconnects=%d)", self.app, self._reconnects)
                queue.put_nowait(_CONNECTED)
                try:
                    await self._read(ws, queue)
                finally:
                    self._connected = False
                    self._connected_event.clear()
                    self._ws = None
                    try:
                        await ws.close()
                    except Exception:  # noqa: BLE001
                        pass
                    queue.put_nowait(_DISCONNECTED)
                if not self._stopping:
                    wait = self._jittered(delay)
                    log.warning("ARI events disconnected (%s); reconnecting in %.2f s",
                                self._last_error, wait)
                    delay = min(delay * 2, self._backoff_max)
                    await self._sleep(wait)
        finally:
            queue.put_nowait(_END)
            dispatcher = self._dispatcher
            try:
                # Let already-received events reach the app, but never hang on a stuck callback.
                async with asyncio.timeout(2.0):
                    await asyncio.shield(dispatcher)
            except (TimeoutError, asyncio.CancelledError):
                dispatcher.cancel()
            if own_session:
                await session.close()
            self._done.set()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[object]) -> None:
        """Parse frames into the dispatch queue until the socket closes."""
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        event = json.loads(msg.data)
                    except ValueError:
                        log.warning("ARI events: skipping malformed frame %.200r", msg.data)
                        continue
                    if not isinstance(event, dict):
                        log.warning("ARI events: skipping non-object frame %.200r", msg.data)
                        continue
                    queue.put_nowait(event)
                    if queue.qsize() == _BACKLOG_WARN:
                        log.warning("ARI events: %d events waiting for slow callbacks", _BACKLOG_WARN)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    err = msg.data if isinstance(msg.data, BaseException) else ws.exception()
                    self._last_error = _describe(err)
                    return
                else:
                    log.debug("ARI events: ignoring %s frame", msg.type.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reset/abort while reading
            self._last_error = _describe(exc)
            return
        if self._stopping:
            return
        exc = ws.exception()
        self._last_error = _describe(exc) if exc is not None else f"connection closed (code {ws.close_code})"

    async def _dispatch(self, queue: asyncio.Queue[object]) -> None:
        """Deliver queued items to the callbacks, one at a time, in order."""
        while True:
            item = await queue.get()
            if item is _END:
                return
            if item is _CONNECTED:
                await self._call("on_connected", self._on_connected)
            elif item is _DISCONNECTED:
                await self._call("on_disconnected", self._on_disconnected)
            else:
                assert isinstance(item, dict)
                try:
                    result = self._on_event(item)
                    if inspect.isawaitable(result):
                        await result
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a handler bug must not stop the stream
                    log.exception("ARI events: on_event failed for %s", item.get("type"))

    async def _call(self, name: str, hook: HookCallback | None) -> None:
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("ARI events: %s callback failed", name)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
