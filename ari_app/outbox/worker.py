"""The outbox worker: sends due items, a bounded number at a time, and reschedules failures with backoff.

State lives only in the outbox table: an item is settled (delivered or dead) in the database after its
attempt, so a stop or crash mid-request leaves it due and the next worker sends it again (at least once;
receivers de-duplicate on the delivery id). SQLite runs on the storage thread through ``run_db``; the
event loop only waits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping, TypeVar

import aiohttp
import sqlite_utils

from ari_app.metrics import _escape, _family
from ari_app.outbox.enqueue import enqueue_call_event
from ari_app.outbox.model import Sink
from ari_app.outbox.sender import Outcome, deliver
from storage.db import format_time
from storage.outbox import OutboxItem, OutboxStore

T = TypeVar("T")
# ``await run_db(fn)`` runs ``fn(db)`` on the storage thread and returns its result.
RunDb = Callable[[Callable[[sqlite_utils.Database], T]], Awaitable[T]]
log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): exponential up to ``cap``, with "equal jitter"
    (half fixed, half random in [0, 1)) so failed items spread out instead of retrying in lockstep."""
    step = min(cap, base * 2 ** min(attempt - 1, 62))
    return step / 2 + rand * step / 2


@dataclass
class OutboxMetrics:
    backlog: dict[str, int]  # pending per sink
    dead: int
    delivered: dict[str, int] = field(default_factory=dict)  # since this process started
    failed: dict[str, int] = field(default_factory=dict)  # failed attempts, including those that killed an item

    def prometheus_lines(self) -> list[str]:
        """Families to append to the /metrics text."""
        deliveries = [f'ringpool_outbox_deliveries_total{{sink="{_escape(s)}",outcome="{outcome}"}} {n}'
                      for outcome, counts in (("delivered", self.delivered), ("failed", self.failed))
                      for s, n in sorted(counts.items())]
        return [
            *_family("ringpool_outbox_backlog", "gauge", "Outbox events waiting for delivery, per sink.",
                     [f'ringpool_outbox_backlog{{sink="{_escape(s)}"}} {n}' for s, n in sorted(self.backlog.items())]),
            *_family("ringpool_outbox_dead", "gauge", "Outbox events given up on (kept in the outbox table).",
                     [f"ringpool_outbox_dead {self.dead}"]),
            *_family("ringpool_outbox_deliveries_total", "counter",
                     "Outbox delivery attempts since start, by sink and outcome.", deliveries),
        ]


class OutboxWorker:
    def __init__(self, run_db: RunDb, sinks: Mapping[str, Sink],
                 session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
                 poll_interval: float = 1.0, clock: Callable[[], datetime] = _utc_now, *,
                 concurrency: int = 8, batch: int = 100, backoff_base: float = 2.0, backoff_cap: float = 900.0,
                 rand: Callable[[], float] = random.random) -> None:
        self.sinks = dict(sinks)
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self._run_db, self._session_factory, self._clock, self._rand = run_db, session_factory, clock, rand
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._settled_during_poll: set[int] = set()
        self._delivered: dict[str, int] = {}
        self._failed: dict[str, int] = {}

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._session = self._session_factory()
            self._task = asyncio.create_task(self._loop(), name="outbox-worker")

    async def stop(self) -> None:
        """Cancel the loop and every request in flight; their items stay due for the next start."""
        tasks = [t for t in (self._task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._inflight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        """Poll now instead of at the next interval (after an enqueue)."""
        self._wake.set()

    async def publish(self, event: str, call: dict[str, Any], *, occurred: str | None = None) -> int:
        """Enqueue a call event for its sinks and wake the worker; returns the number of rows."""
        count = await self._run_db(functools.partial(enqueue_call_event, sinks=self.sinks, event=event, call=call,
                                                     occurred=occurred))
        if count:
            self.wake()
        return count

    async def metrics_snapshot(self) -> OutboxMetrics:
        backlog, dead = await self._run_db(lambda db: (OutboxStore(db).backlog(), OutboxStore(db).dead_count()))
        return OutboxMetrics(backlog={name: 0 for name in self.sinks} | backlog, dead=dead,
                             delivered=dict(self._delivered), failed=dict(self._failed))

    # --- the loop ------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._fill()
            except Exception:
                log.exception("outbox: polling the database failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass

    async def _fill(self) -> None:
        """Start attempts for due items up to the concurrency bound; a finished attempt wakes the loop."""
        free = self.concurrency - len(self._inflight)
        if free <= 0 or not self.sinks:
            return
        now, names, limit = format_time(self._clock()), list(self.sinks), len(self._inflight) + free
        # An attempt that settles while this query runs may already be in its result: skip it too.
        self._settled_during_poll.clear()
        items = await self._run_db(lambda db: OutboxStore(db).due(now, limit, names))
        busy = self._inflight.keys() | self._settled_during_poll
        for item in [i for i in items if i.id not in busy][:free]:
            task = asyncio.create_task(self._attempt(item), name=f"outbox-{item.id}")
            self._inflight[item.id] = task
            task.add_done_callback(functools.partial(self._finished, item.id))

    def _finished(self, item_id: int, task: "asyncio.Task[None]") -> None:
        self._inflight.pop(item_id, None)
        self._settled_during_poll.add(item_id)
        if not task.cancelled() and task.exception() is not None:
            # The item is still due: leave it to the next regular poll rather than resending it at once.
            log.error("outbox: item %d: recording the attempt failed", item_id, exc_info=task.exception())
            return
        self._wake.set()

    async def _attempt(self, item: OutboxItem) -> None:
        sink = self.sinks[item.sink]
        assert self._session is not None
        try:
            outcome = await deliver(self._session, sink, item, self._clock())
        except Exception as exc:  # a bug, not the network: keep the item and retry later
            log.exception("outbox: item %d to %s: unexpected error", item.id, sink.name)
            outcome = Outcome("retry", f"{type(exc).__name__}: {exc}")
        now = self._clock()
        if outcome.verdict == "delivered":
            await self._run_db(lambda db: OutboxStore(db).delivered(item.id, format_time(now), note=outcome.detail))
            self._delivered[sink.name] = self._delivered.get(sink.name, 0) + 1
            return
        attempt = item.attempts + 1
        dead = outcome.verdict == "dead" or attempt >= sink.max_attempts
        delay = max(backoff_delay(attempt, self.backoff_base, self.backoff_cap, self._rand()),
                    min(outcome.retry_after or 0.0, self.backoff_cap))
        next_at = format_time(now + timedelta(seconds=delay))
        error = outcome.detail or "failed"
        await self._run_db(lambda db: OutboxStore(db).failed(item.id, error, next_at, dead=dead, at=format_time(now)))
        self._failed[sink.name] = self._failed.get(sink.name, 0) + 1
        if dead:
            log.error("outbox: %s %d to %s given up after %d attempt(s): %s", item.event, item.id, sink.name,
                      attempt, error)
        else:
            log.warning("outbox: %s %d to %s failed (attempt %d, next in %.1f s): %s", item.event, item.id,
                        sink.name, attempt, delay, error)

