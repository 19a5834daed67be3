"""Pools and leases on a real SQLite database: the assignment order of seed 000, states and their log,
release after inactivity, extension allocation (seed 003), and the invariants under concurrent requests."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_app.tracking.model import Pool
from ari_app.tracking.store import TrackingStore, Visit, merge_vars
from storage.async_store import AsyncCallStore
from storage.calls import CallStore
from storage.db import format_time, open_database, parse_time

T0 = "2026-11-22T10:00:00.000Z"
POOL = Pool(name="web", campaign="c", mode="pool", numbers=("1001", "1002"), max_size=3, min_lease=600,
            lease_ttl=1800, cooldown=300, overflow_number="1099")
EXT = Pool(name="ext", campaign="c", mode="extension", numbers=("2000",), lease_ttl=600, max_extension=9,
           reserved=(("3", "flyer"),))


def at(seconds: float) -> str:
    return format_time(parse_time(T0) + timedelta(seconds=seconds))


class Visitors:
    """Sessions created through the store, each with its own token."""

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self.counter = itertools.count(1)
        self.tokens: dict[str, str] = {}

    def new(self, pool: Pool, now: str, **params: str):
        n = next(self.counter)
        lease, token = self.store.visit(pool, Visit(page="https://x.example/", params=params), now, token=None,
                                        new_token=f"s_token{n:020d}", new_session_id=f"vs_{n:016x}")
        self.tokens[lease.session_id] = token
        return lease

    def again(self, pool: Pool, lease, now: str):
        return self.store.visit(pool, Visit(page="https://x.example/2"), now, token=self.tokens[lease.session_id],
                                new_token="s_unused00000000000000", new_session_id="vs_ffffffffffffffff")[0]


def add_campaign(db) -> None:
    CallStore(db).sync_catalog([{"name": "d", "kind": "sip", "dial_string": "PJSIP/d"}],
                               [{"name": "c", "title": "C", "destination": "d", "ring_timeout": 20}], [])


@pytest.fixture
def store(tmp_path: Path) -> TrackingStore:
    db = open_database(tmp_path / "t.db")
    add_campaign(db)
    store = TrackingStore(db, {"web": POOL, "ext": EXT})
    store.sync({"web": POOL, "ext": EXT}, ["1201", "1202"], T0)
    return store


def states(store: TrackingStore) -> dict[str, str]:
    return {r["number"]: r["state"] for r in store.numbers()}


def test_sync_sets_initial_states_and_logs_them(store: TrackingStore) -> None:
    assert states(store) == {"1001": "idle", "1002": "idle", "1099": "active", "2000": "active",
                             "1201": "inventory", "1202": "inventory"}
    assert store.number_history("1001")[0]["reason"] == "configured in pool web"


def test_assignment_order_idle_then_grow_then_least_active_then_overflow(store: TrackingStore) -> None:
    v = Visitors(store)
    a, b = v.new(POOL, at(0)), v.new(POOL, at(1))
    assert (a.number, a.how, b.number, b.how) == ("1001", "idle", "1002", "idle")
    c = v.new(POOL, at(2))
    assert (c.number, c.how) == ("1201", "grown")  # max_size 3: one number taken from the inventory
    d = v.new(POOL, at(3))
    assert (d.number, d.how, d.overflow) == ("1099", "overflow", True)  # every lease younger than min_lease
    assert store.pool_status(POOL)["alerts"][0]["kind"] == "exhausted"
    # past min_lease: the least active lease (fewest calls, then oldest activity) is taken back
    store.conn.execute("UPDATE tracking_numbers SET lease_calls = 1 WHERE number = '1001'")
    v.again(POOL, c, at(500))  # c active recently
    e = v.new(POOL, at(700))
    assert (e.number, e.how) == ("1002", "reassigned")
    assert "reassigned from session " + b.session_id in store.number_history("1002")[0]["reason"]
    # b's next page view gets a number again: c's, the least active lease now (no calls, activity at 500)
    again = v.again(POOL, b, at(701))
    assert (again.number, again.how) == ("1201", "reassigned")


def test_same_visitor_keeps_its_number_and_overflow_visitor_upgrades(store: TrackingStore) -> None:
    v = Visitors(store)
    a = v.new(POOL, at(0))
    assert v.again(POOL, a, at(10)) .number == a.number
    assert v.again(POOL, a, at(10)).how == "renewed"


def test_shared_context_shares_a_number(store: TrackingStore) -> None:
    pool = replace(POOL, context=("utm_source", "keyword"))
    store.pools["web"] = pool
    v = Visitors(store)
    a = v.new(pool, at(0), utm_source="google", keyword="plumber")
    b = v.new(pool, at(1), utm_source="google", keyword="plumber")
    c = v.new(pool, at(2), utm_source="bing", keyword="plumber")
    assert a.number == b.number != c.number
    assert b.how == "same_context"


def test_release_after_inactivity_then_cooldown_then_idle(store: TrackingStore) -> None:
    v = Visitors(store)
    a = v.new(POOL, at(0))
    assert store.release_inactive(at(1000)) == 0
    v.again(POOL, a, at(1000))  # page activity renews the lease
    assert store.release_inactive(at(2700)) == 0
    assert store.release_inactive(at(2801)) == 1
    assert states(store)[a.number] == "cooldown"
    store.release_inactive(at(3102))
    assert states(store)[a.number] == "idle"
    reasons = [h["reason"] for h in store.number_history(a.number)]
    assert reasons[:2] == ["cool-down over", "no page activity for 1800 s"]
    # the visitor comes back after the release: a lease again, not a stale number
    assert v.again(POOL, a, at(3200)).how in ("idle", "grown")


def test_removed_numbers_are_retired_and_grown_ones_stay(store: TrackingStore) -> None:
    v = Visitors(store)
    for i in range(3):
        v.new(POOL, at(i))
    store.sync({"web": replace(POOL, numbers=("1001",))}, ["1201", "1202"], at(10))
    assert states(store)["1002"] == "retired"
    assert states(store)["1201"] == "leased"  # grown into the pool earlier: still there
    assert states(store)["2000"] == "retired"  # its extension site is gone


def test_extension_allocation_smallest_gap_skips_reserved_and_caps(store: TrackingStore) -> None:
    v = Visitors(store)
    leases = [v.new(EXT, at(i)) for i in range(4)]
    assert [l.extension for l in leases] == ["1", "2", "4", "5"]  # 3 is reserved for the flyer
    store.release_extension("ext", "2")
    assert v.new(EXT, at(5)).extension == "2"
    assert v.again(EXT, leases[0], at(6)).extension == "1"
    more = [v.new(EXT, at(7 + i)) for i in range(5)]
    assert [l.extension for l in more] == ["6", "7", "8", "9", None]  # max_extension 9
    assert more[-1].overflow


def test_custom_variables_modes() -> None:
    assert merge_vars({"a": "1", "b": "2"}, {"b": "3", "c": "4"}, "replace") == {"b": "3", "c": "4"}
    assert merge_vars({"a": "1", "b": "2"}, {"b": "3", "c": "4"}, "add") == {"a": "1", "b": "2", "c": "4"}
    assert merge_vars({"a": "1", "b": "2"}, {"b": "3", "c": "4"}, "overwrite") == {"a": "1", "b": "3", "c": "4"}


def test_session_keeps_pages_and_marketing_data(store: TrackingStore) -> None:
    v = Visitors(store)
    a = v.new(POOL, at(0), utm_source="google", gclid="abc")
    v.again(POOL, a, at(5))
    s = store.session(a.session_id)
    assert s["utm_source"] == "google" and s["gclid"] == "abc"
    assert s["pages_viewed"] == 2 and [p["url"] for p in s["pages"]] == ["https://x.example/", "https://x.example/2"]
    assert "token_hash" not in s


# --- invariants under concurrency ---------------------------------------------------------------------------

def leased_per_context(store: TrackingStore, pool: str) -> dict[str, str]:
    rows = store.conn.execute("SELECT number, lease_key FROM tracking_numbers WHERE pool = ? AND state = 'leased'",
                              [pool]).fetchall()
    return dict(rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pool_size=st.integers(1, 4), max_extra=st.integers(0, 2), visitors=st.integers(1, 14),
       renewals=st.lists(st.integers(0, 13), max_size=10), min_lease=st.sampled_from([0, 60, 600]))
def test_concurrent_leases_never_share_a_number(tmp_path_factory: pytest.TempPathFactory, pool_size: int,
                                                max_extra: int, visitors: int, renewals: list[int],
                                                min_lease: int) -> None:
    """Visitors arrive and renew concurrently through the real async store: no number is ever leased to two
    contexts, every visitor gets a number, the pool never exceeds max_size, and an overflow is only handed out
    when every lease is younger than min_lease."""
    numbers = tuple(str(3000 + i) for i in range(pool_size))
    pool = Pool(name="p", campaign="c", mode="pool", numbers=numbers, max_size=pool_size + max_extra,
                min_lease=min_lease, lease_ttl=1800, cooldown=0, overflow_number="3999")
    path = tmp_path_factory.mktemp("conc") / "t.db"

    async def scenario() -> None:
        astore = AsyncCallStore(path)
        await astore.open()
        await astore.run(add_campaign, astore.db)
        store = TrackingStore(astore.db, {"p": pool})
        await astore.run(store.sync, {"p": pool}, ["3500", "3501"], T0)
        v = Visitors(store)
        clock = itertools.count()

        async def arrive() -> object:
            return await astore.run(v.new, pool, at(next(clock) * 30))

        leases = await asyncio.gather(*(arrive() for _ in range(visitors)))
        later = [leases[i % len(leases)] for i in renewals]
        await asyncio.gather(*(astore.run(v.again, pool, lease, at(1000 + i)) for i, lease in enumerate(later)))
        held = leased_per_context(store, "p")
        assert len(held) == len(set(held.values()))  # one context per number and one number per context
        size = store.conn.execute("SELECT COUNT(*) FROM tracking_numbers WHERE pool = 'p' AND role = 'pool'"
                                  " AND state != 'retired'").fetchone()[0]
        assert size <= pool.max_size
        for lease in leases:
            assert lease.number  # everybody sees a number
            if lease.overflow:
                assert size == pool.max_size or not store.conn.execute(
                    "SELECT 1 FROM tracking_numbers WHERE state = 'inventory'").fetchone()
        # every session's current lease is the one the number row says
        for number, key in held.items():
            owners = store.conn.execute("SELECT COUNT(*) FROM visitor_sessions WHERE lease_key = ? AND number = ?",
                                        [key, number]).fetchone()[0]
            assert owners >= 1
        await astore.close()

    asyncio.run(scenario())


def test_an_operator_ends_a_lease(store: TrackingStore) -> None:
    v = Visitors(store)
    a, e = v.new(POOL, at(0)), v.new(EXT, at(0))
    assert store.release_session(a.session_id, at(10)) == [a.number]
    assert states(store)[a.number] == "cooldown"
    assert store.number_history(a.number)[0]["reason"] == "released by an operator"
    assert store.release_session(e.session_id, at(10)) == ["extension 1"]
    assert store.release_session("vs_0000000000000000", at(10)) == []
