"""Callers waiting for a destination, best first (seed 000: quality bumps a caller up the queue).

One queue for the whole process: a waiting caller names the destinations it can take; when one of them frees
up (a bridged call ends, a cap's window rolls over), the best waiting caller for it is woken: the highest
quality score, then the longest wait. The caller's own task then routes again; if the destination is taken by
the time it dials, it waits again with its original place. Pure asyncio: no ARI here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(eq=False)
class Waiter:
    call_id: str
    quality: int
    destinations: frozenset[str]
    joined: float  # monotonic seconds: the tie-break, kept across re-queues
    order: int  # arrival order: the last tie-break, so equal quality and time stay first come, first served
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    offered: str | None = None  # the destination that freed up

    def sort_key(self) -> tuple[int, float, int]:
        return (-self.quality, self.joined, self.order)


class CallQueue:
    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}
        self._order = itertools.count()

    def join(self, call_id: str, quality: int | None, destinations: Iterable[str], *,
             joined: float | None = None) -> Waiter:
        """Wait for one of ``destinations``; ``joined`` keeps a re-queued caller's original place."""
        waiter = Waiter(call_id, quality if quality is not None else 0, frozenset(destinations),
                        joined if joined is not None else time.monotonic(), next(self._order))
        self._waiters[call_id] = waiter
        return waiter

    def leave(self, call_id: str) -> None:
        self._waiters.pop(call_id, None)

    def waiting(self, destination: str | None = None) -> list[Waiter]:
        """The callers waiting (for ``destination``, or all), best first."""
        found = [w for w in self._waiters.values() if destination is None or destination in w.destinations]
        return sorted(found, key=Waiter.sort_key)

    def position(self, call_id: str) -> int | None:
        """1 for the caller served next among those who want any of the same destinations."""
        me = self._waiters.get(call_id)
        if me is None:
            return None
        ahead = [w for w in self._waiters.values() if w.destinations & me.destinations
                 and w.sort_key() < me.sort_key()]
        return len(ahead) + 1

    def offer(self, destination: str) -> Waiter | None:
        """A place at ``destination`` is free: wake the best caller waiting for it (only one: the others would
        race for the same place). Returns who was woken."""
        for waiter in self.waiting(destination):
            if not waiter.woken.is_set():
                waiter.offered = destination
                waiter.woken.set()
                return waiter
        return None

    def __len__(self) -> int:
        return len(self._waiters)
