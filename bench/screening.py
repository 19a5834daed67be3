#!/usr/bin/env python3
"""Screening benchmark (issue 5): the time the pre-answer screening step adds before a call is answered, p50 and
p99, with a block list of 1 million entries and a call history of 1 million calls, at 50 calls per second.

What it does (everything in a temporary folder, removed on every path unless --keep):

1. writes a bench configuration: one trunk, one destination, campaign ``screened`` (screening on, the built-in
   defaults) and campaign ``open`` (``screening: {enabled: false}``), four static tracking numbers each; opens
   the database with ``storage.db.open_database`` and syncs the catalogue as the service does
   (``catalog_rows`` + ``CallStore.sync_catalog``);
2. loads, on a loader connection of its own (large page cache, synchronous off: load speed only):
   - the block list: ``ScreeningStore.add_many`` from a generator (valid NANP numbers, NPA / NPA-NXX /
     NPA-NXX-X and international prefixes), a few thousand ``range`` rules (direct executemany, zero-padded to
     ``RANGE_WIDTH`` as the store keeps them), campaign-scoped expiring number rules as the challenge leaves
     them (some already expired), a handful of ``name`` rules and the ``anonymous`` rule: 1,000,000 in all;
     plus 1,000 allow-list numbers;
   - the call history: 1,000,000 finished calls over the last 90 days from 200,000 distinct callers (every
     caller at least once, the rest Zipf-like, so a few robodialers have thousands of calls with short,
     near-identical durations), ~85 % answered with durations, a few marked spam (refused); one ``clients``
     row per caller; quarantine hits for a few thousand callers (some older than ``candidate_days``);
   then closes that connection: the measurement opens the database afresh with the app's own settings;
3. opens the real ``AsyncCallStore`` (one storage thread), starts ``TrackingService`` and ``ScreeningService``
   as ``RingpoolService`` does, and runs calls on a fixed schedule (call i starts at t0 + i/rate, whatever the
   earlier calls are doing) for each path:
   - ``screening``: dialed number of ``screened``: ``create_call`` then ``await ScreeningService.arrive``
     (attribution + list matches + history facts in one trip to the storage thread, score 1 on the loop);
   - ``screen-off``: the same call to a number of ``open``: ``ScreeningService.arrive`` does the attribution,
     no facts (the baseline);
   - ``tracking``: ``create_call`` then ``TrackingService.arrive`` (the call flow without a screening service);
   the measured step is ``create_call`` + arrive, from the call's start to its verdict, as ``InboundCall.run``
   awaits them before ``decide``. After it, each call goes on writing like a real one (the decision and the
   verdict's columns, ringing with an outbound leg, bridged, finished 1.5-9 s later; refused calls finish at
   once), all queued on the same storage thread, so later calls queue behind that traffic as they would;
4. callers per call: 70 % numbers from the history (picked in proportion to their calls: frequent callers call
   more often) that no rule blocks, 10 % blocked numbers (half of them also in the history), 5 % numbers inside
   blocked prefixes or ranges, 15 % new numbers; a fresh sample for every run;
5. EXPLAIN QUERY PLAN of every statement ``ScreeningStore.facts`` / ``match`` runs (captured from the
   connection with a trace callback, so they are exactly what the store ran) and of the attribution's, with
   timings of each at full size.

Usage: .venv/bin/python bench/screening.py [--seconds 20] [--rate 50] [--burst-rate 200 --burst-seconds 5]
       [--rules 1000000 --calls 1000000] [--quick] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import secrets
import statistics
import sys
import threading
import time
import uuid
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import log, run_in_temp_folder  # noqa: E402
from ari_app.config import Settings, load_settings  # noqa: E402
from ari_app.screening.score import Verdict  # noqa: E402
from ari_app.screening.service import ScreeningService, charge_number  # noqa: E402
from ari_app.screening.store import RANGE_WIDTH, ScreeningStore, padded  # noqa: E402
from ari_app.service import catalog_rows  # noqa: E402
from ari_app.tracking.service import TrackingService  # noqa: E402
from dialplan.decision import Action, decide  # noqa: E402
from dialplan.signaling import Signaling  # noqa: E402
from storage.async_store import AsyncCallStore  # noqa: E402
from storage.calls import CallStore, NewCall, NewLeg  # noqa: E402
from storage.db import format_time, open_database, utcnow  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SCREENED = ["+1 212 555 0101", "+1 212 555 0102", "+1 212 555 0103", "+1 212 555 0104"]
OPEN = ["+1 212 555 0201", "+1 212 555 0202", "+1 212 555 0203", "+1 212 555 0204"]
INVENTORY = "+1 212 555 0300"
DESTINATION = "bench-desk"
DAY = 86400
HISTORY_DAYS = 90
CATEGORIES = ("repeat", "blocked", "prefix/range", "new")
MIX = (0.70, 0.10, 0.05, 0.15)
# "one-ring" and premium-rate area codes commonly blocked whole; general callers are drawn from other codes
NPA_BLOCKS = ("1876", "1809", "1829", "1849", "1284", "1473", "1649", "1664", "1758", "1767", "1784", "1868",
              "1869", "1246", "1264", "1268", "1345", "1441", "1900")
INTERNATIONAL_BLOCKS = ("234", "233", "225", "229", "880", "92", "63", "371", "373", "882", "883", "7")
NAME_RULES = ("*scam*", "*spam*", "*fraud*", "telemarket*", "*robocall*", "*survey*", "v[0-9]*", "unknown name")
CNAM = ("WIRELESS CALLER", "NEW YORK NY", "CHICAGO IL", "SMITH JOHN", "GARCIA MARIA", "JOHNSON R", "NGUYEN T",
        "TOLL FREE CALL", "LOS ANGELES CA", "BROWN DAVID", "MILLER A", None)


def general_npas() -> np.ndarray:
    """Area codes a caller can have: 2-9, second digit not 9 (N9X), not N11, 37X, 96X, 555, toll-free, 900,
    nor the Caribbean / premium codes blocked whole below."""
    blocked = {p[1:] for p in NPA_BLOCKS}
    out = []
    for npa in range(200, 1000):
        s = str(npa)
        if s[1] == "9" or s[1:] == "11" or s[:2] in ("37", "96") or s in ("555", "900") or s in blocked:
            continue
        if s in ("800", "833", "844", "855", "866", "877", "888"):
            continue
        out.append(npa)
    return np.array(out, dtype=np.int64)


def general_nxxs() -> np.ndarray:
    return np.array([n for n in range(200, 1000) if str(n)[1:] != "11" and n not in (555, 950, 958, 959)],
                    dtype=np.int64)


NPAS, NXXS = general_npas(), general_nxxs()


def random_numbers(rng: np.random.Generator, count: int, exclude: set[str] | None = None) -> list[str]:
    """``count`` distinct valid NANP numbers (11 digits, leading 1), none in ``exclude``."""
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        want = int((count - len(found)) * 1.05) + 16
        npa = rng.choice(NPAS, want)
        nxx = rng.choice(NXXS, want)
        line = rng.integers(0, 10000, want)
        batch = (10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + line).astype(str).tolist()
        for n in batch:
            if n not in seen and (exclude is None or n not in exclude):
                seen.add(n)
                found.append(n)
                if len(found) == count:
                    break
    return found


def iso_times(epoch_ms: np.ndarray) -> list[str]:
    """Stored timestamps (storage.db.format_time: ISO 8601 UTC, milliseconds, Z), vectorised."""
    return [s + "Z" for s in np.datetime_as_string(epoch_ms.astype("datetime64[ms]"), unit="ms").tolist()]


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- the data set ----------------------------------------------------------------------------------------


@dataclass
class World:
    """What the loader made, kept only as long as the test callers are being drawn."""

    history_callers: list[str]
    caller_of_call: np.ndarray  # caller index of every historical call (to draw callers by their call counts)
    calls_per_caller: np.ndarray
    block_numbers: list[str]
    block_in_history: list[str]
    block_set: set[str]
    prefixes: list[str]
    prefix_set: set[str]
    range_starts: list[int]
    range_ends: list[int]
    allow_numbers: list[str]
    quarantined: list[str]

    def prefix_hit(self, number: str) -> bool:
        return any(number[:i] in self.prefix_set for i in range(1, len(number) + 1))

    def range_hit(self, number: str) -> bool:
        n = int(number)
        i = bisect_right(self.range_starts, n) - 1
        return i >= 0 and self.range_ends[i] >= n

    def blocked(self, number: str) -> bool:
        return number in self.block_set or self.prefix_hit(number) or self.range_hit(number)


@dataclass
class LoadReport:
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def write_config(folder: Path) -> Path:
    config = folder / "ringpool-screening.yaml"
    config.write_text(f"""# Generated by bench/screening.py
state_dir: state
asterisk:
  bundled: false
ari:
  url: http://127.0.0.1:9
  password: "{secrets.token_urlsafe(18)}"
admin:
  bind: 127.0.0.1
  port: 8080
  token: "{secrets.token_urlsafe(24)}"
trunks:
  - name: bench
    match: [127.0.0.1]
destinations:
  - name: {DESTINATION}
    host: 127.0.0.1
    port: 5080
campaigns:
  - name: screened
    title: Screening benchmark, screening on (built-in defaults)
    destination: {DESTINATION}
    ring_timeout: 10
    numbers: {json.dumps(SCREENED)}
  - name: open
    title: Screening benchmark, screening off (baseline)
    destination: {DESTINATION}
    ring_timeout: 10
    numbers: {json.dumps(OPEN)}
    screening:
      enabled: false
inventory: {json.dumps([INVENTORY])}
""")
    return config


def load(settings: Settings, args: argparse.Namespace, rng: np.random.Generator, report: LoadReport) -> World:
    now = datetime.now(timezone.utc)
    now_s = format_time(now)
    db = open_database(settings.database)
    CallStore(db).sync_catalog(*catalog_rows(settings))
    screens = ScreeningStore(db)
    conn = db.conn
    out = report.lines

    # --- callers of the history ---
    n_calls, n_rules = args.calls, args.rules
    n_callers = max(1000, n_calls // 5)
    t = time.perf_counter()
    history_callers = random_numbers(rng, n_callers)
    history_set = set(history_callers)
    log(f"{n_callers:,} history callers drawn in {time.perf_counter() - t:.1f} s")

    # --- block list ---
    n_prefix = max(70, n_rules * 7 // 1000)
    n_range = max(30, n_rules * 3 // 1000)
    n_challenge = max(100, n_rules // 100)
    n_special = len(NAME_RULES) + 1
    n_numbers = n_rules - n_prefix - n_range - n_challenge - n_special
    # prefixes: whole area codes, international codes, NPA-NXX (most) and NPA-NXX-X
    prefixes: set[str] = set(NPA_BLOCKS) | set(INTERNATIONAL_BLOCKS)
    while len(prefixes) < n_prefix:
        npa, nxx = int(rng.choice(NPAS)), int(rng.choice(NXXS))
        prefixes.add(f"1{npa}{nxx}" if rng.random() < 0.85 else f"1{npa}{nxx}{int(rng.integers(0, 10))}")
    prefix_list = sorted(prefixes)
    # ranges: thousands-blocks (or hundreds / ten-thousands) of NPA-NXXs not already prefix-blocked, disjoint
    ranges: dict[int, int] = {}
    while len(ranges) < n_range:
        npa, nxx = int(rng.choice(NPAS)), int(rng.choice(NXXS))
        if f"1{npa}{nxx}" in prefixes:
            continue
        size = int(rng.choice([100, 1000, 1000, 1000, 10000]))
        first = 10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + (int(rng.integers(0, 10000 // size)) * size)
        last = first + size - 1
        starts = sorted(ranges)
        i = bisect_right(starts, last) - 1
        if i >= 0 and ranges[starts[i]] >= first:
            continue  # overlaps one already chosen
        ranges[first] = last
    range_starts = sorted(ranges)
    range_ends = [ranges[s] for s in range_starts]
    # numbers: some callers of the history (the spam dialers among them), the rest imported from elsewhere
    heavy = min(200, n_callers // 100)
    from_history = list(dict.fromkeys(history_callers[:heavy] + [history_callers[int(i)] for i in
                                                                  rng.integers(heavy, n_callers, n_rules // 60)]))
    block_numbers = from_history + random_numbers(rng, n_numbers - len(from_history), exclude=history_set)
    allow_numbers = [history_callers[int(i)] for i in rng.integers(heavy, n_callers, 1000)] if n_callers > 2000 else []

    # add_many as it stands, with the app's connection settings, on a sample: its ``with self.conn`` on a
    # connection in autocommit mode (isolation_level=None) opens no transaction, so every row commits alone
    sample = min(10_000, len(block_numbers) // 10)
    t = time.perf_counter()
    screens.add_many((("block", "number", n) for n in block_numbers[:sample]), now=now_s)
    t_sample = time.perf_counter() - t
    # the rest in one explicit transaction (add_many's ``with`` commits it), on a loader-sized page cache
    db.execute("PRAGMA cache_size = -1000000")  # loader connection only: the measurement uses the app's settings
    db.execute("PRAGMA synchronous = OFF")
    t = time.perf_counter()
    conn.execute("BEGIN")
    screens.add_many((("block", "number", n) for n in block_numbers[sample:]), now=now_s)
    conn.execute("BEGIN")
    screens.add_many((("block", "prefix", p) for p in prefix_list), now=now_s)
    t_numbers = time.perf_counter() - t
    t = time.perf_counter()
    with conn:
        conn.execute("BEGIN")
        cur = conn.executemany(
            "INSERT OR IGNORE INTO screen_rules (list, kind, value, value_end, reason, source, created_at)"
            " VALUES ('block', 'range', ?, ?, ?, 'import', ?)",
            ((padded(str(s)), padded(str(e)), "carrier range", now_s) for s, e in zip(range_starts, range_ends)))
    count += cur.rowcount
    # what a failed challenge leaves: a number blocked for a day in one campaign; some have expired since
    challenge_numbers = random_numbers(rng, n_challenge, exclude=history_set | set(block_numbers))
    with conn:
        conn.execute("BEGIN")
        cur = conn.executemany(
            "INSERT OR IGNORE INTO screen_rules (list, kind, value, campaign, expires_at, reason, source, created_at)"
            " VALUES ('block', 'number', ?, 'screened', ?, 'failed the challenge', 'challenge', ?)",
            ((n, format_time(now + timedelta(seconds=float(rng.uniform(-5 * DAY, DAY)))), now_s)
             for n in challenge_numbers))
    count += cur.rowcount
    for pattern in NAME_RULES:
        screens.add_rule("block", "name", pattern, reason="caller name", source="import", now=now_s)
    screens.add_rule("block", "anonymous", "", reason="withheld numbers", source="operator", now=now_s)
    count += n_special
    conn.execute("BEGIN")
    allowed = screens.add_many((("allow", "number", n) for n in allow_numbers), now=now_s, source="operator")
    t_rest = time.perf_counter() - t
    rules_total = conn.execute("SELECT COUNT(*) FROM screen_rules WHERE list = 'block'").fetchone()[0]
    out.append(f"block list: {rules_total:,} rules ({len(block_numbers):,} number via add_many, {len(prefix_list):,} "
               f"prefix via add_many, {len(range_starts):,} range, {n_challenge:,} campaign number rules with expiry "
               f"(challenge), {len(NAME_RULES)} name, 1 anonymous) + {allowed:,} allow numbers")
    loaded = len(block_numbers) - sample + len(prefix_list)
    out.append(f"  loaded in {t_sample + t_numbers + t_rest:.1f} s: add_many inside BEGIN {loaded:,} rules in "
               f"{t_numbers:.1f} s = {loaded / t_numbers:,.0f} rules/s; ranges, challenge, names, allow {t_rest:.1f} s")
    out.append(f"  add_many as it stands (no BEGIN: one commit per row, app connection settings), first "
               f"{sample:,} numbers: {t_sample:.1f} s = {sample / t_sample:,.0f} rules/s -> "
               f"{1_000_000 * t_sample / sample / 60:.1f} min for a million")
    report.figures.update(rules=rules_total, rules_load_s=round(t_sample + t_numbers + t_rest, 2),
                          add_many_autocommit_rps=round(sample / t_sample), add_many_in_tx_rps=round(loaded / t_numbers))

    # --- call history ---
    t = time.perf_counter()
    ranks = np.arange(1, n_callers + 1, dtype=np.float64)
    weights = ranks ** -0.7
    weights /= weights.sum()
    caller_of_call = np.concatenate([np.arange(n_callers), rng.choice(n_callers, n_calls - n_callers, p=weights)])
    rng.shuffle(caller_of_call)
    end_ms = int(now.timestamp() * 1000) - 60_000  # the history ends a minute ago
    arrived_ms = np.sort(rng.integers(end_ms - HISTORY_DAYS * DAY * 1000, end_ms, n_calls))
    is_heavy = caller_of_call < heavy
    spam = (is_heavy & (rng.random(n_calls) < 0.05)) | (rng.random(n_calls) < 0.001)
    answered = ~spam & (rng.random(n_calls) < 0.85)
    ring_s = rng.uniform(2.0, 20.0, n_calls)
    talk_s = np.clip(rng.lognormal(np.log(75.0), 1.2, n_calls), 1.0, 7200.0)
    talk_s = np.where(is_heavy, rng.uniform(3.0, 5.0, n_calls), talk_s)  # robodialers: short, near-identical
    total_s = np.where(answered, ring_s + talk_s, np.where(spam, 0.05, ring_s))
    answered_ms = arrived_ms + (ring_s * 1000).astype(np.int64)
    ended_ms = arrived_ms + (total_s * 1000).astype(np.int64)
    arrived_at, answered_at, ended_at = iso_times(arrived_ms), iso_times(answered_ms), iso_times(ended_ms)
    screened_campaign = rng.random(n_calls) < 0.8
    dialed_pick = rng.integers(0, 4, n_calls)
    unanswered = np.array(["no_answer", "busy", "abandoned", "abandoned"])[rng.integers(0, 4, n_calls)]
    _, first_index = np.unique(caller_of_call, return_index=True)
    repeat = np.ones(n_calls, dtype=bool)
    repeat[first_index] = False
    names = [CNAM[i] for i in rng.integers(0, len(CNAM), n_callers)]
    screened_numbers = [n.replace(" ", "").lstrip("+") for n in SCREENED]
    open_numbers = [n.replace(" ", "").lstrip("+") for n in OPEN]
    ids = os.urandom(16 * n_calls).hex()
    log(f"history generated in {time.perf_counter() - t:.1f} s")

    def rows():
        cc = caller_of_call.tolist()
        sp, an, sc, dp, rp = spam.tolist(), answered.tolist(), screened_campaign.tolist(), dialed_pick.tolist(), repeat.tolist()
        ua = unanswered.tolist()
        rs, ts, tot = ring_s.tolist(), talk_s.tolist(), total_s.tolist()
        for i in range(n_calls):
            c = cc[i]
            campaign = "screened" if sc[i] else "open"
            dialed = (screened_numbers if sc[i] else open_numbers)[dp[i]]
            a = an[i]
            if sp[i]:
                disposition, decision, score, color, reasons = "rejected", "reject", 100, "red", \
                    '["screening: spam score 100 (red)"]'
            else:
                disposition, decision, score, color, reasons = ("completed" if a else ua[i]), "proceed", 0, "green", \
                    f'["tracking number of campaign {campaign}"]'
            yield (ids[32 * i:32 * i + 32], f"{arrived_ms[i] // 1000}.{i}", "ended", disposition, history_callers[c],
                   names[c], dialed, "bench", campaign, DESTINATION, decision, reasons, arrived_at[i],
                   answered_at[i] if a else None, answered_at[i] if a else None, answered_at[i] if a else None,
                   ended_at[i], None if sp[i] else round(rs[i], 3), round(ts[i], 3) if a else None, round(tot[i], 3),
                   16 if a else (21 if sp[i] else 19), "caller" if a else "ringpool", "live", ended_at[i],
                   c + 1, int(rp[i]), "active", "static_number", "high", campaign, int(sp[i]),
                   "screening: spam score 100 (red)" if sp[i] else None, score, color)

    columns = ("id, inbound_channel, state, disposition, caller_number, caller_name, dialed_number, trunk, campaign,"
               " destination, decision, decision_reasons, arrived_at, answered_at, destination_answered_at, bridged_at,"
               " ended_at, ring_seconds, talk_seconds, total_seconds, hangup_cause, hangup_side, end_observed,"
               " updated_at, client_id, repeat_caller, number_state, attribution_method, attribution_confidence,"
               " source, spam, spam_reason, score1, score1_color")
    # the calls table's own indexes are dropped for the load and rebuilt from their stored SQL (sorting once
    # is much faster than a million random index inserts); the primary key's stays
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls'"
                           " AND sql IS NOT NULL").fetchall()
    t = time.perf_counter()
    with conn:
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.executemany(f"INSERT INTO calls ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})", rows())
    t_insert = time.perf_counter() - t
    t = time.perf_counter()
    with conn:
        conn.execute("BEGIN")
        for _, sql in indexes:
            conn.execute(sql)
    t_index = time.perf_counter() - t
    t_calls = t_insert + t_index
    # one client record per caller, as CallAttribution._client keeps them
    t = time.perf_counter()
    calls_per_caller = np.bincount(caller_of_call, minlength=n_callers)
    last_index = np.full(n_callers, -1, dtype=np.int64)
    np.maximum.at(last_index, caller_of_call, np.arange(n_calls))
    first = first_index.tolist()
    with conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO clients (id, caller_number, first_call_at, last_call_at, calls) VALUES (?, ?, ?, ?, ?)",
                         ((c + 1, history_callers[c], arrived_at[first[c]], arrived_at[int(last_index[c])],
                           int(calls_per_caller[c])) for c in range(n_callers)))
    # quarantine: callers who rang numbers not in use, mostly history callers, some older than candidate_days
    n_q = max(100, n_callers // 40)
    quarantined = [history_callers[int(i)] for i in rng.integers(heavy, n_callers, n_q * 4 // 5)]
    quarantined += random_numbers(rng, n_q - len(quarantined), exclude=history_set)
    q_rows = []
    for caller in quarantined:
        for _ in range(int(rng.integers(1, 8))):
            at = now - timedelta(seconds=float(rng.uniform(60, 120 * DAY)))
            q_rows.append((caller, INVENTORY.replace(" ", "").lstrip("+"), "idle", None, format_time(at)))
    with conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO quarantine (caller, number, number_state, call_id, at) VALUES (?, ?, ?, ?, ?)",
                         q_rows)
    t_rest = time.perf_counter() - t
    spam_calls = int(spam.sum())
    out.append(f"call history: {n_calls:,} calls over {HISTORY_DAYS} days from {n_callers:,} callers (busiest "
               f"{int(calls_per_caller.max()):,} calls; median {int(np.median(calls_per_caller))}; {heavy} "
               f"robodialers with {int(calls_per_caller[:heavy].sum()):,} calls), {int(answered.sum()):,} answered, "
               f"{spam_calls:,} spam")
    out.append(f"  loaded in {t_calls:.1f} s ({n_calls / t_calls:,.0f} calls/s: insert {t_insert:.1f} s, "
               f"{len(indexes)} indexes rebuilt {t_index:.1f} s); clients "
               f"({n_callers:,}) and quarantine ({len(q_rows):,} hits, {n_q:,} callers) {t_rest:.1f} s")
    report.figures.update(calls=n_calls, callers=n_callers, calls_load_s=round(t_calls, 2),
                          busiest_caller_calls=int(calls_per_caller.max()))
    t = time.perf_counter()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = settings.database.stat().st_size
    out.append(f"database: {size / 1e6:,.0f} MB after checkpoint ({time.perf_counter() - t:.1f} s); no ANALYZE "
               "(the app never runs it), so the query planner works without statistics, as in production")
    report.figures["db_mb"] = round(size / 1e6, 1)
    return World(history_callers=history_callers, caller_of_call=caller_of_call, calls_per_caller=calls_per_caller,
                 block_numbers=block_numbers, block_in_history=[n for n in from_history],
                 block_set=set(block_numbers), prefixes=prefix_list, prefix_set=prefixes,
                 range_starts=range_starts, range_ends=range_ends, allow_numbers=allow_numbers, quarantined=quarantined)


def table_sizes(path: Path) -> list[str]:
    """Per table and index sizes from dbstat, if this SQLite has it."""
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 14").fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [f"{name} {size / 1e6:.0f} MB" for name, size in rows]


# --- test callers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCall:
    category: str
    caller: str
    name: str | None
    pai: bool


def draw_callers(world: World, rng: random.Random, count: int) -> list[TestCall]:
    calls = []
    n_hist = len(world.caller_of_call)
    for _ in range(count):
        r = rng.random()
        if r < MIX[0]:
            category = "repeat"
            while True:  # in proportion to their calls, and not blocked by any rule
                caller = world.history_callers[int(world.caller_of_call[rng.randrange(n_hist)])]
                if not world.blocked(caller):
                    break
        elif r < MIX[0] + MIX[1]:
            category = "blocked"
            pool = world.block_in_history if rng.random() < 0.5 else world.block_numbers
            caller = pool[rng.randrange(len(pool))]
        elif r < MIX[0] + MIX[1] + MIX[2]:
            category = "prefix/range"
            if rng.random() < 0.5:
                nanp = [p for p in world.prefixes if p.startswith("1") and len(p) >= 4]
                p = nanp[rng.randrange(len(nanp))]
                while True:
                    caller = p + "".join(rng.choice("0123456789") for _ in range(11 - len(p)))
                    if caller not in world.block_set:
                        break
            else:
                i = rng.randrange(len(world.range_starts))
                caller = str(rng.randint(world.range_starts[i], world.range_ends[i]))
        else:
            category = "new"
            while True:
                caller = str(10_000_000_000 + rng.choice(NPAS.tolist()) * 10_000_000 + rng.choice(NXXS.tolist()) * 10_000
                             + rng.randrange(10000))
                if not world.blocked(caller) and caller not in _history_set(world):
                    break
        calls.append(TestCall(category, caller, CNAM[rng.randrange(len(CNAM))], rng.random() < 0.6))
    return calls


_HISTORY_SETS: dict[int, set[str]] = {}


def _history_set(world: World) -> set[str]:
    key = id(world)
    if key not in _HISTORY_SETS:
        _HISTORY_SETS[key] = set(world.history_callers)
    return _HISTORY_SETS[key]


# --- measurement -----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    path: str  # screening, screen-off, tracking
    rate: int
    seconds: float
    calls: int = 0
    wall_s: float = 0.0
    lag_ms: list[float] = field(default_factory=list)  # scheduled start -> the call's task starts
    create_ms: list[float] = field(default_factory=list)
    arrive_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)  # create_call + arrive: the call's wait before deciding
    by_category: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    verdicts: Counter = field(default_factory=Counter)
    verdicts_by_category: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    factors: Counter = field(default_factory=Counter)
    storage_cpu_s: float | None = None
    loop_cpu_s: float | None = None
    errors: int = 0
    drain_s: float = 0.0


def thread_cpu(native_id: int | None) -> float | None:
    if native_id is None:
        return None
    try:
        text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return None
    fields_ = text[text.rindex(")") + 2:].split()
    return (int(fields_[11]) + int(fields_[12])) / CLK_TCK


class Bench:
    def __init__(self, settings: Settings, store: AsyncCallStore, tracking: TrackingService,
                 screening: ScreeningService) -> None:
        self.settings = settings
        self.store = store
        self.tracking = tracking
        self.screening = screening
        self.storage_tid: int | None = None
        self.followups: set[asyncio.Task[None]] = set()

    async def find_storage_thread(self) -> None:
        self.storage_tid = await self.store.run(threading.get_native_id)

    def signaling(self, call: TestCall, dialed: str, n: int) -> Signaling:
        return Signaling(channel_id=f"{time.time():.0f}.{n}", channel_name=f"PJSIP/bench-{n:08x}",
                         caller_number=call.caller, caller_name=call.name, dialed_number=dialed, trunk="bench",
                         p_asserted_identity=f"<sip:+{call.caller}@198.51.100.7>" if call.pai else None,
                         privacy=None, diversion=None, p_charge_info=None)

    async def one_call(self, run: RunResult, call: TestCall, n: int, scheduled: float) -> None:
        t0 = time.perf_counter()
        numbers = SCREENED if run.path == "screening" else OPEN
        dialed = numbers[n % len(numbers)].replace(" ", "").lstrip("+")
        signaling = self.signaling(call, dialed, n)
        call_id = uuid.uuid4().hex
        new_call = NewCall(id=call_id, inbound_channel=signaling.channel_id, arrived_at=utcnow(),
                           caller_number=signaling.caller_number, caller_name=signaling.caller_name,
                           dialed_number=dialed, trunk=signaling.trunk, p_asserted_identity=signaling.p_asserted_identity)
        try:
            await self.store.call("create_call", new_call)
            t1 = time.perf_counter()
            verdict: Verdict | None = None
            if run.path == "tracking":
                arrival = await self.tracking.arrive(call_id, dialed, signaling.caller_number)
            else:
                screened = await self.screening.arrive(call_id, signaling)
                arrival, verdict = screened.arrival, screened.verdict
            t2 = time.perf_counter()
        except Exception:
            run.errors += 1
            log(f"call {n} failed")
            import traceback

            traceback.print_exc()
            return
        run.lag_ms.append((t0 - scheduled) * 1000)
        run.create_ms.append((t1 - t0) * 1000)
        run.arrive_ms.append((t2 - t1) * 1000)
        run.step_ms.append((t2 - t0) * 1000)
        run.by_category[call.category].append((t2 - t0) * 1000)
        action = verdict.action if verdict is not None else "(no verdict)"
        run.verdicts[action] += 1
        run.verdicts_by_category[call.category][action] += 1
        if verdict is not None:
            for f in verdict.factors:
                if f.weight:
                    run.factors[f.factor] += 1
        # the rest of the call's writes, as InboundCall queues them (not timed; they load the storage thread)
        decision = decide(signaling, self.settings, arrival.number, verdict)
        fields_: dict[str, Any] = {"decision": decision.action.value, "decision_reasons": list(decision.reasons)}
        if decision.route:
            fields_ |= {"campaign": decision.route.campaign.name, "destination": decision.route.destinations[0].name}
        if verdict is not None:
            fields_ |= verdict.record()
            if decision.action is Action.REJECT and verdict.action == "refuse":
                fields_ |= {"spam": 1, "spam_reason": decision.reasons[0]}
        self.store.submit("apply", call_id, call=fields_, events=[("decision", utcnow(), {"action": decision.action.value})])
        if decision.action is Action.REJECT:
            self.store.submit("finish_call", call_id, disposition="rejected", hangup_cause=decision.hangup_cause,
                              hangup_side="ringpool")
            return
        task = asyncio.create_task(self.rest_of_call(call_id, n))
        self.followups.add(task)
        task.add_done_callback(self.followups.discard)

    async def rest_of_call(self, call_id: str, n: int) -> None:
        rng = random.Random(n)
        out = f"{call_id[:12]}-out"
        self.store.submit("apply", call_id, call={"state": "ringing"},
                          new_legs=[NewLeg(out, "outbound", DESTINATION, "PJSIP/dest-bench-desk", utcnow())],
                          events=[("dialing", utcnow(), {"destination": DESTINATION})])
        await asyncio.sleep(rng.uniform(0.5, 3.0))
        now = utcnow()
        self.store.submit("apply", call_id, call={"state": "bridged", "destination_answered_at": now, "bridged_at": now,
                                                  "answered_at": now},
                          legs={out: {"answered_at": now}}, events=[("bridged", now, None)])
        await asyncio.sleep(rng.uniform(1.0, 6.0))
        await self.store.call("finish_call", call_id, disposition="completed", hangup_cause=16, hangup_side="caller",
                              legs={out: {"ended_at": utcnow(), "hangup_cause": 16}})

    async def run(self, label: str, path: str, rate: int, seconds: float, callers: list[TestCall]) -> RunResult:
        run = RunResult(label=label, path=path, rate=rate, seconds=seconds)
        n = len(callers)
        loop_tid = threading.get_native_id()
        cpu0 = (thread_cpu(self.storage_tid), thread_cpu(loop_tid))
        tasks = []
        start = time.perf_counter() + 0.05
        for i, call in enumerate(callers):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one_call(run, call, i, scheduled)))
        await asyncio.gather(*tasks)
        run.wall_s = time.perf_counter() - start
        cpu1 = (thread_cpu(self.storage_tid), thread_cpu(loop_tid))
        if cpu0[0] is not None and cpu1[0] is not None:
            run.storage_cpu_s = cpu1[0] - cpu0[0]
        if cpu0[1] is not None and cpu1[1] is not None:
            run.loop_cpu_s = cpu1[1] - cpu0[1]
        run.calls = n
        t = time.perf_counter()
        await asyncio.gather(*list(self.followups))
        await self.store.run(lambda: None)  # every queued write done
        run.drain_s = time.perf_counter() - t
        return run


# --- query plans -----------------------------------------------------------------------------------------


LITERAL_RE = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def template(sql: str) -> str:
    text = LITERAL_RE.sub("?", " ".join(sql.split()))
    text = re.sub(r"IN \((?:\?, )*\?\)", "IN (...)", text)
    return text


def capture(conn, fn, *args, **kwargs) -> tuple[list[str], Any]:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        result = fn(*args, **kwargs)
    finally:
        conn.set_trace_callback(None)
    return statements, result


def plan_of(conn, sql: str) -> list[str]:
    rows = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    depth: dict[int, int] = {0: -1}
    out = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        out.append("  " * depth[node] + detail)
    return out


def plan_verdict(lines: list[str]) -> str:
    full = [ln.strip() for ln in lines if ln.strip().startswith("SCAN ") and "CONSTANT ROW" not in ln]
    if any(" USING " not in ln for ln in full):
        return "FULL TABLE SCAN"
    if full:
        return "FULL INDEX SCAN"
    if any("SEARCH" in ln for ln in lines):
        return "index"
    return "no table access"


def time_sql(conn, sql: str, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples), max(samples)


def explain(store: AsyncCallStore, screening: ScreeningService, tracking: TrackingService, settings: Settings,
            examples: list[tuple[str, str]], repeat: int) -> tuple[list[str], list[dict[str, Any]]]:
    """On the storage thread: every statement facts()/match() and the attribution run for each example caller,
    their plans, and their time at full size (median/max over ``repeat`` runs of the exact statement)."""
    conn = store.db.conn
    screens = screening.screens
    s = settings.screening_for(settings.campaigns["screened"])
    now = utcnow()
    found: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for label, caller in examples:
        statements, _ = capture(conn, screens.facts, "explain-call", caller, charge=None, name="WIRELESS CALLER",
                                anonymous=False, campaign="screened", now=now, rate_window=s.rate_window,
                                short_window=s.short_window, short_seconds=s.short_seconds,
                                candidate_days=s.candidate_days)
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
                continue
            key = template(sql)
            if key not in found:
                found[key] = {"part": "facts", "template": key, "plan": plan_of(conn, sql), "times": []}
                order.append(key)
            if sql.lstrip().upper().startswith("SELECT"):
                med, worst = time_sql(conn, sql, repeat)
                found[key]["times"].append((label, med, worst))
    # the attribution's statements for a static number (both paths run these), captured from a real arrive
    conn.execute("INSERT INTO calls (id, inbound_channel, state, arrived_at, updated_at) VALUES"
                 " ('explain-attr', 'x', 'arrived', ?, ?)", [now, now])
    statements, _ = capture(conn, tracking.attribution.arrive, "explain-attr",
                            SCREENED[0].replace(" ", "").lstrip("+"), examples[0][1], now)
    for sql in statements:
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
            key = template(sql)
            if key not in found:
                found[key] = {"part": "attribution", "template": key, "plan": plan_of(conn, sql), "times": []}
                order.append(key)
                if sql.lstrip().upper().startswith("SELECT"):
                    med, worst = time_sql(conn, sql, repeat)
                    found[key]["times"].append((examples[0][0], med, worst))
    with conn:
        conn.execute("DELETE FROM call_events WHERE call_id = 'explain-attr'")
        conn.execute("DELETE FROM call_legs WHERE call_id = 'explain-attr'")
        conn.execute("DELETE FROM calls WHERE id = 'explain-attr'")
    results = [found[k] for k in order]
    lines = []
    for i, q in enumerate(results, 1):
        q["verdict"] = plan_verdict(q["plan"])
        lines.append(f"Q{i} [{q['part']}] {q['verdict'].upper() if q['verdict'] != 'index' else 'uses an index'}")
        lines.append(f"    {q['template']}")
        lines += [f"    | {p}" for p in q["plan"]]
        if q["times"]:
            lines.append("    time: " + "; ".join(f"{label} {med:.0f} us (max {worst:.0f})"
                                                  for label, med, worst in q["times"]))
    return lines, results


# --- report ----------------------------------------------------------------------------------------------


def run_table(runs: list[RunResult]) -> list[str]:
    head = (f"{'run':<22} {'calls':>6} {'cps':>6} {'lag99':>6} {'create50':>8} {'create99':>8} {'arrive50':>8} "
            f"{'arrive99':>8} {'step50':>7} {'step99':>7} {'stepmax':>8} {'db thr%':>7} {'loop%':>6} {'drain':>6}")
    out = [head, "-" * len(head)]
    for r in runs:
        out.append(
            f"{r.label:<22} {r.calls:>6} {r.calls / r.wall_s if r.wall_s else 0:>6.1f} {fmt(percentile(r.lag_ms, 99)):>6} "
            f"{fmt(percentile(r.create_ms, 50)):>8} {fmt(percentile(r.create_ms, 99)):>8} "
            f"{fmt(percentile(r.arrive_ms, 50)):>8} {fmt(percentile(r.arrive_ms, 99)):>8} "
            f"{fmt(percentile(r.step_ms, 50)):>7} {fmt(percentile(r.step_ms, 99)):>7} "
            f"{fmt(max(r.step_ms) if r.step_ms else None):>8} "
            f"{fmt(100 * r.storage_cpu_s / r.wall_s if r.storage_cpu_s is not None else None, 0):>7} "
            f"{fmt(100 * r.loop_cpu_s / r.wall_s if r.loop_cpu_s is not None else None, 0):>6} {r.drain_s:>6.1f}")
    return out


def comparison(runs: list[RunResult]) -> list[str]:
    out = [f"{'rate':>4} {'screening vs':<11} {'p50 base':>8} {'p50 scr':>8} {'added p50':>9} {'x p50':>6} "
           f"{'p99 base':>8} {'p99 scr':>8} {'added p99':>9} {'x p99':>6} {'max base':>8} {'max scr':>8}"]
    out.append("-" * len(out[0]))
    for rate in sorted({r.rate for r in runs}):
        scr = next((r for r in runs if r.rate == rate and r.path == "screening"), None)
        if scr is None:
            continue
        for base in (r for r in runs if r.rate == rate and r.path != "screening"):
            b50, s50 = percentile(base.step_ms, 50), percentile(scr.step_ms, 50)
            b99, s99 = percentile(base.step_ms, 99), percentile(scr.step_ms, 99)
            out.append(f"{rate:>4} {base.path:<11} {fmt(b50):>8} {fmt(s50):>8} {fmt(s50 - b50):>9} "
                       f"{s50 / b50:>5.2f}x {fmt(b99):>8} {fmt(s99):>8} {fmt(s99 - b99):>9} {s99 / b99:>5.2f}x "
                       f"{fmt(max(base.step_ms)):>8} {fmt(max(scr.step_ms)):>8}")
    return out


def verdict_lines(runs: list[RunResult]) -> list[str]:
    out = []
    for r in runs:
        if r.path != "screening":
            continue
        total = sum(r.verdicts.values()) or 1
        dist = ", ".join(f"{k} {v} ({100 * v / total:.1f} %)" for k, v in r.verdicts.most_common())
        out.append(f"{r.label}: {dist}")
        for cat in CATEGORIES:
            values = r.by_category.get(cat, [])
            c = r.verdicts_by_category.get(cat, Counter())
            out.append(f"    {cat:<13} {len(values):>5} calls  step p50 {fmt(percentile(values, 50))} "
                       f"p99 {fmt(percentile(values, 99))} ms   verdicts: "
                       + ", ".join(f"{k} {v}" for k, v in c.most_common()))
        out.append("    factors that scored (calls): " + ", ".join(f"{k} {v}" for k, v in r.factors.most_common(10)))
    return out


# --- main ------------------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, tmp: Path) -> int:
    rng = np.random.default_rng(args.seed)
    settings = load_settings(write_config(tmp))
    report = LoadReport()
    log(f"loading {args.rules:,} block rules and {args.calls:,} calls into {settings.database}")
    t = time.perf_counter()
    world = await asyncio.get_running_loop().run_in_executor(None, load, settings, args, rng, report)
    log(f"loaded in {time.perf_counter() - t:.1f} s")
    sizes = table_sizes(settings.database)

    # every run's callers, drawn before measuring; then the big sets go, so the collector has little to walk
    prng = random.Random(args.seed)
    plan = [("warm-up", "screening", args.rate, 2.0)]
    for rate, seconds in ((args.rate, args.seconds), (args.burst_rate, args.burst_seconds)):
        if rate and seconds:
            plan += [(f"{rate} cps tracking", "tracking", rate, seconds),
                     (f"{rate} cps screen-off", "screen-off", rate, seconds),
                     (f"{rate} cps screening", "screening", rate, seconds)]
    callers = [draw_callers(world, prng, int(rate * seconds)) for _, _, rate, seconds in plan]
    heaviest = world.history_callers[int(np.argmax(world.calls_per_caller))]
    examples = [("busiest caller", heaviest),
                ("typical repeat", next(c.caller for c in callers[1] if c.category == "repeat")),
                ("blocked number", world.block_numbers[len(world.block_numbers) // 2]),
                ("in a range", str(world.range_starts[0] + 7)),
                ("in a prefix", next(p for p in world.prefixes if len(p) == 8) + "123"),
                ("new caller", next(c.caller for c in callers[1] if c.category == "new"))]
    busiest_calls = int(world.calls_per_caller.max())
    del world
    _HISTORY_SETS.clear()
    gc.collect()

    store = AsyncCallStore(settings.database)
    await store.open()
    tracking = TrackingService(settings, store)
    screening = ScreeningService(settings, store)
    bench = Bench(settings, store, tracking, screening)
    runs: list[RunResult] = []
    try:
        await tracking.start()
        await screening.start(tracking.attribution)
        await bench.find_storage_thread()
        for (label, path, rate, seconds), sample in zip(plan, callers):
            log(f"{label}: {len(sample)} calls at {rate} cps")
            result = await bench.run(label, path, rate, seconds, sample)
            if label != "warm-up":
                runs.append(result)
            log(f"  step p50 {fmt(percentile(result.step_ms, 50))} p99 {fmt(percentile(result.step_ms, 99))} ms, "
                f"drained in {result.drain_s:.1f} s")
            await asyncio.sleep(1.0)
        log("query plans")
        plan_lines, queries = await store.run(explain, store, screening, tracking, settings, examples, args.repeat)
    finally:
        await tracking.stop()
        await store.close()

    s = settings.screening_for(settings.campaigns["screened"])
    out = [f"Ringpool screening benchmark: {os.cpu_count()} CPUs, SQLite {__import__('sqlite3').sqlite_version}, "
           f"Python {sys.version.split()[0]}, seed {args.seed}"]
    out += report.lines
    if sizes:
        out.append("  largest tables/indexes: " + ", ".join(sizes))
    out.append(f"screening settings of 'screened': built-in defaults (rate {s.rate_calls} calls/{s.rate_window // DAY} d, "
               f"short < {s.short_seconds} s x{s.short_count}/{s.short_window // DAY} d, candidate_days "
               f"{s.candidate_days}, extra_at {s.extra_at}, reject_at {s.reject_at})")
    out.append(f"callers per call: {', '.join(f'{c} {int(m * 100)} %' for c, m in zip(CATEGORIES, MIX))}; fixed "
               "schedule (call i starts at t0 + i/rate); one storage thread (AsyncCallStore)")
    out.append("")
    out.append("step = create_call + arrive (ms): what a call waits for between StasisStart and decide(); "
               "create = the record insert; arrive = ScreeningService.arrive (tracking: TrackingService.arrive);")
    out.append("lag99 = p99 of scheduled start -> task start (event loop delay); db thr% / loop% = CPU of the storage "
               "thread / the event loop thread over the run; drain = s after the last arrival until every queued "
               "write (incl. calls still up) was done")
    out += run_table(runs)
    out.append("")
    out.append("Screening vs the baselines (same run, same caller mix): added = screening minus baseline")
    out += comparison(runs)
    out.append("")
    out.append("Verdicts (screening runs) and the step per caller category:")
    out += verdict_lines(runs)
    out.append("")
    out.append(f"Query plans (EXPLAIN QUERY PLAN of the statements as run, literal values shown as ?; times = median "
               f"(max) of {args.repeat} runs of the exact statement on the storage connection; busiest caller has "
               f"{busiest_calls:,} calls):")
    out += plan_lines
    text = "\n".join(out)
    print(text, flush=True)
    (tmp / "report.txt").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "load": report.figures,
            "runs": [{"label": r.label, "path": r.path, "rate": r.rate, "calls": r.calls, "wall_s": r.wall_s,
                      "step_p50": percentile(r.step_ms, 50), "step_p99": percentile(r.step_ms, 99),
                      "step_max": max(r.step_ms) if r.step_ms else None,
                      "create_p50": percentile(r.create_ms, 50), "arrive_p50": percentile(r.arrive_ms, 50),
                      "arrive_p99": percentile(r.arrive_ms, 99), "verdicts": dict(r.verdicts),
                      "storage_cpu_s": r.storage_cpu_s, "errors": r.errors} for r in runs],
            "queries": [{k: q[k] for k in ("part", "template", "plan", "verdict", "times")} for q in queries],
        }, indent=1))
    return 1 if any(r.errors for r in runs) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="seconds per run at --rate (default 20)")
    parser.add_argument("--rate", type=int, default=50, help="calls per second (default 50)")
    parser.add_argument("--burst-rate", type=int, default=200, help="headroom run's calls per second (default 200)")
    parser.add_argument("--burst-seconds", type=float, default=5, help="seconds per headroom run (default 5; 0: none)")
    parser.add_argument("--rules", type=int, default=1_000_000, help="block rules (default 1,000,000)")
    parser.add_argument("--calls", type=int, default=1_000_000, help="historical calls (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k rules, 100k calls, 5 s runs")
    parser.add_argument("--repeat", type=int, default=200, help="runs of each statement for the query timings")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (database, report)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.rules, args.calls = 100_000, 100_000
        args.seconds, args.burst_seconds = min(args.seconds, 5), min(args.burst_seconds, 2)
    return run_in_temp_folder(lambda tmp: main_async(args, tmp), prefix="ringpool-screening-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
