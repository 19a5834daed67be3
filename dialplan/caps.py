"""Caps on destinations and buyers: how many calls at once, per hour/day/month, and (buyers) how much money.

The per-period counts come from the call records (storage.usage), fetched in one storage call per routing
decision; the calls up right now are counted in memory here, because a call that is still ringing is not in
any query-friendly state yet and the answer is needed without a database round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime
from math import isfinite
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlite_utils

from storage.usage import Counts, UsageSnapshot, snapshot

if TYPE_CHECKING:
    from ari_app.config import _Section

T = TypeVar("T")
Kind = Literal["destination", "buyer"]
Runner = Callable[[Callable[[sqlite_utils.Database], T]], Awaitable[T]]
MAX_COUNT = 10_000_000
MAX_BUDGET = 100_000_000


@dataclass(frozen=True)
class Caps:
    """None is unlimited. Budgets are in the bids' currency and only apply to buyers."""

    concurrent: int | None = None
    hour: int | None = None
    day: int | None = None
    month: int | None = None
    budget_day: float | None = None
    budget_month: float | None = None


def check(caps: Caps, counts: Counts, cost: float = 0.0) -> str | None:
    """Why one more call (costing ``cost``) would break a cap, or None. With cost 0 a budget is only full
    once it is spent; a bid is checked again with its amount once it is known."""
    for name in ("concurrent", "hour", "day", "month"):
        limit = getattr(caps, name)
        used = counts.live if name == "concurrent" else getattr(counts, name)
        if limit is not None and used >= limit:
            return f"cap {name} {used}/{limit}"
    for name, spent in (("day", counts.spent_day), ("month", counts.spent_month)):
        budget = getattr(caps, f"budget_{name}")
        if budget is not None and (spent >= budget or spent + cost > budget):
            more = f" + {cost:.2f}" if cost else ""
            return f"budget {name} {spent:.2f}{more} of {budget:.2f}"
    return None


class Usage:
    """The process's live call counts and round-robin turns (in memory), and the way to the stored counts.

    ``run`` runs a function of the database on the storage thread (``lambda fn: store.run(fn, store.db)``);
    None: no database, every stored count is zero (tests, or a deployment without caps)."""

    def __init__(self, run: Runner[UsageSnapshot] | None = None) -> None:
        self._run = run
        self._live: Counter[tuple[str, str]] = Counter()
        self._turns: Counter[Any] = Counter()

    def start(self, kind: Kind, name: str) -> None:
        """A leg to this destination (or for this buyer) started ringing: it counts until ``end``."""
        self._live[(kind, name)] += 1

    def end(self, kind: Kind, name: str) -> None:
        key = (kind, name)
        self._live[key] -= 1
        if self._live[key] <= 0:
            del self._live[key]

    def live(self, kind: Kind, name: str) -> int:
        return self._live[(kind, name)]

    def turn(self, key: Any) -> int:
        """The number of earlier turns of a round robin (per campaign and list), counting this one."""
        self._turns[key] += 1
        return self._turns[key] - 1

    async def snapshot(self, destinations: Collection[str], buyers: Collection[str],
                       now: datetime) -> UsageSnapshot:
        """All candidates' counts in one storage call, with the live counts as they are on return."""
        stored = UsageSnapshot()
        if self._run is not None and (destinations or buyers):
            stored = await self._run(lambda db: snapshot(db, destinations, buyers, now))
        return self.with_live(stored, destinations, buyers)

    def with_live(self, stored: UsageSnapshot, destinations: Collection[str],
                  buyers: Collection[str]) -> UsageSnapshot:
        """``stored`` with the live counts of now: the planner refreshes them after waiting for bids."""
        return UsageSnapshot(
            destinations={n: replace(stored.destination(n), live=self.live("destination", n)) for n in destinations},
            buyers={n: replace(stored.buyer(n), live=self.live("buyer", n)) for n in buyers})


def read_caps(s: _Section, *, budgets: bool) -> Caps:
    """A `caps:` section; ``budgets``: whether budget_day/budget_month are allowed (buyers only)."""
    counts = {name: s.integer(name, None, low=0, high=MAX_COUNT) for name in ("concurrent", "hour", "day", "month")}
    money: dict[str, float | None] = {"budget_day": None, "budget_month": None}
    for name in money:
        if name in s.data and not budgets:
            raise s.error(name, "budgets are for buyers; a destination caps calls only")
        if name in s.data:
            money[name] = amount(s, name, high=MAX_BUDGET)
    s.reject_unknown()
    return Caps(**counts, **money)


def amount(s: _Section, name: str, *, high: float) -> float:
    """A sum of money in a config section: a finite number from 0 to ``high``."""
    value = s.raw(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value) \
            or not 0 <= value <= high:
        raise s.error(name, f"expected an amount from 0 to {high:g}, got {value!r}")
    return float(value)
