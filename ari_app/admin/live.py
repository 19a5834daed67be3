"""The live feed behind the dashboard: call milestones fanned out to every connected browser.

Pure asyncio, no HTTP (the service creates the feed; ari_app/admin/dashboard.py streams it as server-sent
events at GET /api/v1/live).

- ``LiveFeed.publish(event)`` delivers an event to every subscriber. It runs on the event loop; called from
  another thread (the storage thread) it hands itself over with ``loop.call_soon_threadsafe``.
- Each subscriber has a bounded queue. A client that falls a whole queue behind loses its backlog (oldest
  first) and gets one ``{"type": "resync"}`` marker instead: it then reloads its view from the API. Events
  carry the call's ``updated_at`` so a client can ignore an event older than what it already shows.
- ``watch_calls(calls, feed)`` adds a CallStore observer turning each milestone (call.started, call.answered,
  call.completed, call.converted, call.spam) into ``{"type": event, "call": <summary>}``. Observers run inside
  the milestone's transaction on the storage thread, so this one never raises: a dashboard can never fail a
  call's record.
- ``TicketBook``: EventSource cannot send an Authorization header, so the browser trades its bearer token
  for a ticket (POST /api/v1/live/ticket) and opens the stream with ``?ticket=``: random, 60 s, single use,
  kept only as its SHA-256, so no long-lived secret ever appears in a URL or an access log.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from storage.calls import CallStore

log = logging.getLogger(__name__)

QUEUE_SIZE = 256  # events buffered per subscriber before it is told to resync
MAX_SUBSCRIBERS = 50
TICKET_TTL = 60.0  # seconds
MAX_TICKETS = 1000  # outstanding (unused, unexpired) tickets; the oldest go first

# What a live event says about a call: enough for the dashboard's live panel and recent-calls row.
SUMMARY_FIELDS = (
    "id", "arrived_at", "answered_at", "bridged_at", "ended_at", "updated_at", "caller_number", "caller_name",
    "dialed_number", "campaign", "destination", "state", "decision", "disposition", "source", "medium",
    "attribution_method", "spam", "is_test", "talk_seconds", "total_seconds",
    "fax_detected", "modem_detected", "voice_detected", "silence_detected", "machine_dtmf",
)
# Scores and routing, passed on when the record has them.
OPTIONAL_FIELDS = ("quality", "score1", "score1_color", "score2", "buyer", "direction", "queued_at", "flow")
RESYNC: dict[str, Any] = {"type": "resync"}


def call_summary(call: dict[str, Any]) -> dict[str, Any]:
    """The compact view of a call record sent with each live event."""
    summary = {name: call.get(name) for name in SUMMARY_FIELDS}
    summary.update({name: call[name] for name in OPTIONAL_FIELDS if call.get(name) is not None})
    return summary


class TooManySubscribers(RuntimeError):
    pass


@dataclass(eq=False)
class Subscription:
    queue: "asyncio.Queue[dict[str, Any] | None]"
    dropped: int = 0  # events lost to a full queue, over the subscription's life
    resyncs: int = 0
    closed: bool = False

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; None when the feed closed (or ``timeout`` passed with nothing to send)."""
        if self.closed and self.queue.empty():
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


@dataclass
class LiveFeed:
    queue_size: int = QUEUE_SIZE
    max_subscribers: int = MAX_SUBSCRIBERS
    loop: asyncio.AbstractEventLoop | None = None  # the loop subscribers live on; taken when first needed
    _subscribers: set[Subscription] = field(default_factory=set)
    _seq: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))
    published: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        if self.loop is None:
            try:
                self.loop = asyncio.get_running_loop()
            except RuntimeError:
                pass

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """A new subscriber (on the loop); TooManySubscribers past ``max_subscribers``."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self.closed:
            raise TooManySubscribers("the live feed is closed")
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} live subscribers already")
        sub = Subscription(asyncio.Queue(self.queue_size))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        sub.closed = True

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` to every subscriber, with a sequence number (``seq``). Safe from any thread."""
        loop = self.loop
        if loop is not None and not _running_on(loop):
            try:
                loop.call_soon_threadsafe(self.publish, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass
            return
        if self.closed:
            return
        event = {**event, "seq": next(self._seq)}
        self.published += 1
        for sub in list(self._subscribers):
            self._offer(sub, event)

    def _offer(self, sub: Subscription, event: dict[str, Any]) -> None:
        try:
            sub.queue.put_nowait(event)
            return
        except asyncio.QueueFull:
            pass
        # A client a whole queue behind: drop its backlog, oldest first, and tell it to reload its view.
        while not sub.queue.empty():
            sub.queue.get_nowait()
            sub.dropped += 1
        sub.resyncs += 1
        sub.queue.put_nowait(dict(RESYNC))
        sub.queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription (the stream handlers return); later publishes are ignored."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.closed = True
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.queue.get_nowait()
                sub.queue.put_nowait(None)
        self._subscribers.clear()


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def watch_calls(calls: "CallStore", feed: LiveFeed) -> Callable[[str, str], None]:
    """Publish every call milestone of ``calls`` (a CallStore) to ``feed``; returns the observer it added.
    Call it on the event loop the subscribers use (the feed hands events over to it)."""
    if feed.loop is None:
        feed.loop = asyncio.get_running_loop()

    def observe(event: str, call_id: str) -> None:  # on the storage thread, inside the milestone's transaction
        try:
            call = calls.call_row(call_id)
            if call is not None:
                feed.publish({"type": event, "call": call_summary(call)})
        except Exception:  # never fail the call's write for the dashboard's sake
            log.exception("live feed: cannot publish %s for call %s", event, call_id)

    calls.observers.append(observe)
    return observe


class TicketBook:
    """Single-use tickets for the live stream, valid ``ttl`` seconds, held as SHA-256 digests."""

    def __init__(self, ttl: float = TICKET_TTL, *, capacity: int = MAX_TICKETS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.clock = clock
        self._expiry: dict[bytes, float] = {}  # insertion order is issue order
        self._lock = threading.Lock()

    def issue(self) -> str:
        ticket = "lt_" + secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._prune(now)
            while len(self._expiry) >= self.capacity:
                self._expiry.pop(next(iter(self._expiry)))
            self._expiry[_digest(ticket)] = now + self.ttl
        return ticket

    def redeem(self, ticket: str) -> bool:
        """True once for a ticket issued less than ``ttl`` seconds ago; it is spent either way."""
        if not ticket or len(ticket) > 100:
            return False
        with self._lock:
            expiry = self._expiry.pop(_digest(ticket), None)
        return expiry is not None and self.clock() < expiry

    def _prune(self, now: float) -> None:
        for key in [k for k, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[key]

    def __len__(self) -> int:
        return len(self._expiry)


def _digest(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode("utf-8", "surrogateescape")).digest()
