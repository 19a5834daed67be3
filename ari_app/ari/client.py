"""One object for the app: ARI REST + events WebSocket over one aiohttp session.

Sharing the session keeps one connection pool and one place to close it; the
session is created in ``__aenter__`` because aiohttp sessions belong to a running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import aiohttp

from .events import AriEventStream, EventCallback, HookCallback
from .rest import AriRest

__all__ = ["AriClient", "MAX_CONNECTIONS"]

MAX_CONNECTIONS = 24


class AriClient:
    """``async with AriClient(...) as ari:`` gives ``ari.rest`` and a running ``ari.events``.

    On enter the session is opened and (unless ``start_events=False``) the event
    stream is started in a background task; on exit the stream is stopped and the
    session closed (only if we created it).
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
        timeout: float = 5.0,
        heartbeat: float = 10.0,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        start_events: bool = True,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.app = app
        self._session = session
        self._owns_session = session is None
        self._start_events = start_events
        self.rest = AriRest(base_url, username, password, timeout=timeout, session=session)
        self.events = AriEventStream(
            base_url,
            username,
            password,
            app,
            on_event=on_event,
            on_connected=on_connected,
            on_disconnected=on_disconnected,
            heartbeat=heartbeat,
            connect_timeout=connect_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            session=session,
        )
        self._events_task: asyncio.Task[None] | None = None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The shared session (``None`` before ``__aenter__`` unless one was passed in)."""
        return self._session

    @property
    def events_task(self) -> asyncio.Task[None] | None:
        """The background task running ``events.run()``, if started."""
        return self._events_task

    async def __aenter__(self) -> AriClient:
        if self._session is None or self._session.closed:
            # Asterisk serves 100 HTTP sessions by default across all clients: never take them all.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))
            self._owns_session = True
        self.rest._use_session(self._session)
        self.events._use_session(self._session)
        if self._start_events:
            # Otherwise the caller starts it later with ``events.start()``.
            self._events_task = self.events.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the event stream and close the session if we own it."""
        await self.events.stop()
        task = self._events_task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self._events_task = None
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
