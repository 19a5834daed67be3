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
5. a run that cannot keep up gives up once a call has waited ``--give-up`` seconds for its verdict (no more calls
   started, the waiting ones cancelled) and reports how many steps the storage thread completed per second;
6. EXPLAIN QUERY PLAN of every statement ``ScreeningStore.facts`` / ``match`` runs (captured from the
   connection with a trace callback, so they are exactly what the store ran) and of the attribution's, with the
   rows each index search walks and timings of each at full size; then the indexes it suggests are applied to
   the bench database only and the 50 / 200 cps runs of screen-off and screening repeated (``+idx``).

Usage: .venv/bin/python bench/screening.py [--seconds 20] [--rate 50] [--burst-rate 200 --burst-seconds 5]
       [--rules 1000000 --calls 1000000] [--give-up 20] [--quiet-wait 60] [--no-what-if] [--quick] [--keep]
       [--json FILE]
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

from common import log, percentile, run_in_temp_folder  # noqa: E402
from ari_app.config import Settings, load_settings  # noqa: E402
from ari_app.screening.score import Verdict  # noqa: E402
from ari_app.screening.service import ScreeningService  # noqa: E402
from ari_app.screening.store import ScreeningStore, padded  # noqa: E402
from ari_app.service import catalog_rows  # noqa: E402
from ari_app.tracking.service import TrackingService  # noqa: E402
from dialplan.decision import Action, decide  # noqa: E402
from dialplan.signaling import Signaling  # noqa: E402
from storage.async_store import AsyncCallStore, _log_failure  # noqa: E402
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


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- the data set ----------------------------------------------------------------------------------------


@dataclass
class World:
    """What the loader made, kept only as long as the test callers are being drawn."""

    history_callers: list[str]
    history_set: set[str]
    caller_of_call: np.ndarray  # caller index of every historical call (to draw callers by their call counts)
    calls_per_caller: np.ndarray
    block_numbers: list[str]
    block_in_history: list[str]
    block_set: set[str]
    prefixes: list[str]
    prefix_set: set[str]
    range_starts: list[int]
    range_ends: list[int]

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
        conn.executemany(
            "INSERT OR IGNORE INTO screen_rules (list, kind, value, value_end, reason, source, created_at)"
            " VALUES ('block', 'range', ?, ?, ?, 'import', ?)",
            ((padded(str(s)), padded(str(e)), "carrier range", now_s) for s, e in zip(range_starts, range_ends)))
    # what a failed challenge leaves: a number blocked for a day in one campaign; some have expired since
    challenge_numbers = random_numbers(rng, n_challenge, exclude=history_set | set(block_numbers))
    with conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR IGNORE INTO screen_rules (list, kind, value, campaign, expires_at, reason, source, created_at)"
            " VALUES ('block', 'number', ?, 'screened', ?, 'failed the challenge', 'challenge', ?)",
            ((n, format_time(now + timedelta(seconds=float(rng.uniform(-5 * DAY, DAY)))), now_s)
             for n in challenge_numbers))
    for pattern in NAME_RULES:
        screens.add_rule("block", "name", pattern, reason="caller name", source="import", now=now_s)
    screens.add_rule("block", "anonymous", "", reason="withheld numbers", source="operator", now=now_s)
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
        sp, an, sc = spam.tolist(), answered.tolist(), screened_campaign.tolist()
        dp, rp = dialed_pick.tolist(), repeat.tolist()
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
        conn.executemany("INSERT INTO clients (id, caller_number, first_call_at, last_call_at, calls)"
                         " VALUES (?, ?, ?, ?, ?)",
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
    return World(history_callers=history_callers, history_set=history_set, caller_of_call=caller_of_call,
                 calls_per_caller=calls_per_caller, block_numbers=block_numbers, block_in_history=from_history,
                 block_set=set(block_numbers), prefixes=prefix_list, prefix_set=prefixes,
                 range_starts=range_starts, range_ends=range_ends)


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
    nanp_prefixes = [p for p in world.prefixes if p.startswith("1") and len(p) >= 4]
    npas, nxxs = NPAS.tolist(), NXXS.tolist()
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
                p = nanp_prefixes[rng.randrange(len(nanp_prefixes))]
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
                caller = str(10_000_000_000 + rng.choice(npas) * 10_000_000 + rng.choice(nxxs) * 10_000
                             + rng.randrange(10000))
                if not world.blocked(caller) and caller not in world.history_set:
                    break
        calls.append(TestCall(category, caller, CNAM[rng.randrange(len(CNAM))], rng.random() < 0.6))
    return calls


# --- measurement -----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    label: str
    path: str  # screening, screen-off, tracking
    rate: int
    seconds: float
    scheduled: int = 0  # calls the schedule had
    started: int = 0  # calls started (all, unless the run gave up)
    arrival_cps: float = 0.0  # calls started per second, from the first start to the last
    overloaded: bool = False  # the oldest waiting call passed --give-up: no more calls started, the waiting cancelled
    cancelled: int = 0
    completed_per_s: float = 0.0  # steps completed per second while the run lasted (overloaded: the capacity)
    lag_ms: list[float] = field(default_factory=list)  # scheduled start -> the call's task starts
    create_ms: list[float] = field(default_factory=list)
    arrive_ms: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)  # create_call + arrive: the call's wait before deciding
    service_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # storage-thread time per job
    queue_max: int = 0  # most storage jobs waiting, seen at an arrival
    by_category: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    verdicts: Counter = field(default_factory=Counter)
    verdicts_by_category: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    factors: Counter = field(default_factory=Counter)
    storage_cpu_s: float | None = None
    loop_cpu_s: float | None = None
    others_cpu_s: float | None = None  # CPU seconds the rest of the machine used meanwhile (other work skews figures)
    wall_s: float = 0.0
    errors: int = 0


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLK_TCK


def process_cpu_s() -> float:
    return sum(os.times()[:2])


async def wait_quiet(limit: float, threshold: float = 0.5) -> float | None:
    """Wait up to ``limit`` seconds for the rest of the machine to use less than ``threshold`` CPUs (sampled over a
    second); returns what it used in the last second."""
    deadline = time.perf_counter() + limit
    while True:
        machine0, own0 = machine_busy_s(), process_cpu_s()
        await asyncio.sleep(1.0)
        machine1, own1 = machine_busy_s(), process_cpu_s()
        if machine0 is None or machine1 is None:
            return None
        others = max(0.0, (machine1 - machine0) - (own1 - own0))
        if others < threshold or time.perf_counter() >= deadline:
            return others


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
                 screening: ScreeningService, give_up: float) -> None:
        self.settings = settings
        self.store = store
        self.tracking = tracking
        self.screening = screening
        self.give_up = give_up
        self.storage_tid: int | None = None
        self.followups: set[asyncio.Task[None]] = set()
        self.current: RunResult | None = None
        self._instrument()

    def _instrument(self) -> None:
        """Time every storage job on the storage thread itself (service time, without the queue wait): this store
        instance's ``_submit`` (behind ``run`` and ``call``) and ``submit`` (queued writes) run the job in a timer."""
        submit = self.store._submit

        async def timed(fn: Any, *args: Any, **kwargs: Any) -> Any:
            run = self.current
            name = getattr(fn, "__name__", "job")

            def job() -> Any:
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    if run is not None:
                        run.service_ms[name].append((time.perf_counter() - t) * 1000)

            return await submit(job)

        self.store._submit = timed  # type: ignore[method-assign]
        store = self.store

        def timed_queue(method: str, *args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
            """AsyncCallStore.submit, with the job timed the same way."""
            run = self.current
            fn = getattr(store.store, method)

            def job() -> Any:
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    if run is not None:
                        run.service_ms[method].append((time.perf_counter() - t) * 1000)

            future = asyncio.get_running_loop().run_in_executor(store._executor, job)
            future.add_done_callback(_log_failure)
            return future

        self.store.submit = timed_queue  # type: ignore[method-assign]

    def queued(self) -> int:
        return self.store._executor._work_queue.qsize()

    async def find_storage_thread(self) -> None:
        self.storage_tid = await self.store.run(threading.get_native_id)

    def signaling(self, call: TestCall, dialed: str, n: int) -> Signaling:
        return Signaling(channel_id=f"{time.time():.0f}.{n}", channel_name=f"PJSIP/bench-{n:08x}",
                         caller_number=call.caller, caller_name=call.name, dialed_number=dialed, trunk="bench",
                         p_asserted_identity=f"<sip:+{call.caller}@198.51.100.7>" if call.pai else None,
                         privacy=None, diversion=None, p_charge_info=None)

    async def one_call(self, run: RunResult, call: TestCall, n: int, scheduled: float, done: list[float]) -> None:
        t0 = time.perf_counter()
        run.lag_ms.append((t0 - scheduled) * 1000)
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
        except asyncio.CancelledError:
            run.cancelled += 1
            return
        except Exception:
            run.errors += 1
            log(f"call {n} failed")
            import traceback

            traceback.print_exc()
            return
        done[n] = t2
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
        self.store.submit("apply", call_id, call=fields_,
                          events=[("decision", utcnow(), {"action": decision.action.value})])
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
        self.store.submit("finish_call", call_id, disposition="completed", hangup_cause=16, hangup_side="caller",
                          legs={out: {"ended_at": utcnow(), "hangup_cause": 16}})

    async def run(self, label: str, path: str, rate: int, seconds: float, callers: list[TestCall]) -> RunResult:
        run = RunResult(label=label, path=path, rate=rate, seconds=seconds, scheduled=len(callers))
        self.current = run
        loop_tid = threading.get_native_id()
        cpu0 = (thread_cpu(self.storage_tid), thread_cpu(loop_tid))
        machine0, own0 = machine_busy_s(), process_cpu_s()
        tasks: list[asyncio.Task[None]] = []
        done = [0.0] * len(callers)
        starts: list[float] = []
        oldest = 0  # the earliest call whose step has not finished
        start = time.perf_counter() + 0.05

        def overdue() -> bool:
            nonlocal oldest
            while oldest < len(tasks) and (done[oldest] or tasks[oldest].done()):
                oldest += 1
            return oldest < len(tasks) and time.perf_counter() - (start + oldest / rate) > self.give_up

        for i, call in enumerate(callers):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if overdue():
                run.overloaded = True
                break
            run.queue_max = max(run.queue_max, self.queued())
            starts.append(time.perf_counter())
            tasks.append(asyncio.create_task(self.one_call(run, call, i, scheduled, done)))
        while not run.overloaded and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
            run.overloaded = overdue()
        if run.overloaded:  # the calls still waiting for their verdict are given up (their storage jobs dropped)
            for t in tasks:
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        run.wall_s = time.perf_counter() - start
        cpu1 = (thread_cpu(self.storage_tid), thread_cpu(loop_tid))
        machine1, own1 = machine_busy_s(), process_cpu_s()
        if machine0 is not None and machine1 is not None:
            run.others_cpu_s = max(0.0, (machine1 - machine0) - (own1 - own0))
        if cpu0[0] is not None and cpu1[0] is not None:
            run.storage_cpu_s = cpu1[0] - cpu0[0]
        if cpu0[1] is not None and cpu1[1] is not None:
            run.loop_cpu_s = cpu1[1] - cpu0[1]
        run.started = len(starts)
        run.arrival_cps = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
        finished = [d for d in done if d]
        run.completed_per_s = len(finished) / (max(finished) - start) if finished else 0.0
        await asyncio.gather(*list(self.followups))
        await self.store.run(lambda: None)  # every queued write done before the next run
        self.current = None
        return run


# --- query plans -----------------------------------------------------------------------------------------


LITERAL_RE = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
SEARCH_RE = re.compile(r"SEARCH (\w+) USING (?:COVERING )?INDEX (\w+) \((.*)\)")
VISITED_FLAG = 1000  # an index search that visits more rows than this per call is reported as a scan


def template(sql: str) -> str:
    text = LITERAL_RE.sub("?", " ".join(sql.split()))
    return re.sub(r"IN \((?:\?, )*\?\)", "IN (...)", text)


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


def visited(conn, sql: str, plan: list[str]) -> int | None:
    """Rows an index search walks for this statement: the rows matching the index terms the plan searches on
    (equalities and ranges, with the statement's own values, and a partial index's WHERE); where the index gives
    the order and a LIMIT can stop the search, the rows walked until LIMIT rows pass the whole WHERE."""
    worst = None
    for line in plan:
        m = SEARCH_RE.search(line)
        if not m or "PRIMARY KEY" in line:
            continue
        table, index, constraint = m.group(1), m.group(2), m.group(3)
        where = []
        for column, _ in re.findall(r"(\w+)([=<>])\?", constraint):
            terms = re.findall(rf"\b{column}\s*(>=|<=|=|>|<)\s*('(?:[^']|'')*'|-?\d+(?:\.\d+)?)", sql)
            if not terms:
                return None
            where += [f"{column} {op} {value}" for op, value in terms]
        index_sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", [index]).fetchone()
        partial = re.search(r"\sWHERE\s(.+)$", index_sql[0] or "", re.S | re.I) if index_sql and index_sql[0] else None
        if partial:
            where.append(f"({partial.group(1)})")
        if not where:
            continue
        tail = re.search(r"\sWHERE\s(.*?)(?:\sORDER BY\s(.*?))?\sLIMIT\s(\d+)\s*$", sql, re.S)
        if tail and not any("TEMP B-TREE" in ln for ln in plan) and sum("SEARCH" in ln for ln in plan) == 1:
            # the index gives the order: the search stops once LIMIT rows pass the whole WHERE; walk it to count
            full, order, limit = tail.group(1), tail.group(2), int(tail.group(3))
            walk = conn.execute(f"SELECT ({full}) FROM {table} INDEXED BY {index} WHERE {' AND '.join(where)}"
                                + (f" ORDER BY {order}" if order else ""))
            count = passed = 0
            for (ok,) in walk:
                count += 1
                passed += bool(ok)
                if passed >= limit:
                    break
        else:
            count = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {' AND '.join(where)}").fetchone()[0]
        worst = count if worst is None else max(worst, count)
    return worst


def plan_verdict(lines: list[str], rows: int | None) -> str:
    full = [ln.strip() for ln in lines if ln.strip().startswith("SCAN ") and "CONSTANT ROW" not in ln]
    if any(" USING " not in ln for ln in full):
        return "FULL TABLE SCAN"
    if full:
        return "FULL INDEX SCAN"
    if rows is not None and rows > VISITED_FLAG:
        return f"INDEX SEARCH THAT VISITS {rows:,} ROWS (a scan in effect)"
    if any("SEARCH" in ln for ln in lines):
        return "uses an index"
    return "no table access"


def time_sql(conn, sql: str, repeat: int, budget: float = 2.0) -> tuple[float, float, int]:
    """Median and max in microseconds, and the number of runs: up to ``repeat``, or as many as ``budget`` seconds
    allow (3 at least)."""
    samples = []
    end = time.perf_counter() + budget
    while len(samples) < repeat and (len(samples) < 3 or time.perf_counter() < end):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples), max(samples), len(samples)


def explain(store: AsyncCallStore, screening: ScreeningService, tracking: TrackingService, settings: Settings,
            examples: list[tuple[str, str]], repeat: int) -> list[dict[str, Any]]:
    """On the storage thread: every statement facts()/match() and the attribution run for the example callers,
    their plans, the rows their index searches visit, and their time at full size."""
    conn = store.db.conn
    screens = screening.screens
    s = settings.screening_for(settings.campaigns["screened"])
    now = utcnow()
    found: dict[str, dict[str, Any]] = {}

    def note(part: str, label: str, sql: str) -> None:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
            return
        key = template(sql)
        if key not in found:
            found[key] = {"part": part, "template": key, "plan": plan_of(conn, sql), "times": [], "rows": None,
                          "rows_for": None}
        q = found[key]
        which = re.search(r"\blist = '(\w+)'", sql)
        label = f"{label} ({which.group(1)})" if which else label
        rows = visited(conn, sql, q["plan"])
        if rows is not None and (q["rows"] is None or rows > q["rows"]):
            q["rows"], q["rows_for"] = rows, label
        if sql.lstrip().upper().startswith("SELECT"):
            q["times"].append((label, *time_sql(conn, sql, repeat)))

    for label, caller in examples:
        statements, _ = capture(conn, screens.facts, "explain-call", caller, charge=None, name="WIRELESS CALLER",
                                anonymous=False, campaign="screened", now=now, rate_window=s.rate_window,
                                short_window=s.short_window, short_seconds=s.short_seconds,
                                candidate_days=s.candidate_days)
        for sql in statements:
            note("facts", label, sql)
    # the attribution's statements for a static number (both paths run them), captured from a real arrive
    conn.execute("INSERT INTO calls (id, inbound_channel, state, arrived_at, updated_at) VALUES"
                 " ('explain-attr', 'x', 'arrived', ?, ?)", [now, now])
    statements, _ = capture(conn, tracking.attribution.arrive, "explain-attr",
                            SCREENED[0].replace(" ", "").lstrip("+"), examples[0][1], now)
    for sql in statements:
        note("attribution", examples[0][0], sql)
    with conn:
        conn.execute("BEGIN")
        conn.execute("DELETE FROM call_events WHERE call_id = 'explain-attr'")
        conn.execute("DELETE FROM call_legs WHERE call_id = 'explain-attr'")
        conn.execute("DELETE FROM calls WHERE id = 'explain-attr'")
    results = list(found.values())
    for q in results:
        q["verdict"] = plan_verdict(q["plan"], q["rows"])
    return results


def plan_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for i, q in enumerate(results, 1):
        lines.append(f"Q{i} [{q['part']}] {q['verdict']}")
        lines.append(f"    {q['template']}")
        lines += [f"    | {p}" for p in q["plan"]]
        if q["rows"] is not None:
            lines.append(f"    index search visits up to {q['rows']:,} rows ({q['rows_for']})")
        if q["times"]:
            lines.append("    time: " + "; ".join(f"{label} {med:,.0f} us (max {worst:,.0f}, n={n})"
                                                  for label, med, worst, n in q["times"]))
    return lines


# What the report suggests for the statements it finds scanning (bench/README.md explains why); applied to the
# bench database only, after the measured runs, to show the plans and figures with them.
SUGGESTED = [
    ("screen_rules: no index may lead with `list`, or the planner (which has no statistics) searches "
     "screen_rules_unique on list=? alone and walks every rule of the list for each call; with kind first the OR "
     "of match() becomes one probe per term on (kind, list, value) and the range probe stays within its list "
     "(screen_rules_lookup stays, for lookups by value without a list)",
     ["DROP INDEX screen_rules_unique",
      "CREATE UNIQUE INDEX screen_rules_unique ON screen_rules (kind, list, value, IFNULL(value_end, ''),"
      " IFNULL(campaign, ''))"]),
    ("calls: spam_before probes calls_spam on spam=1 and reads the row of every spam call to compare the caller; "
     "a partial index of the spam calls by caller answers it with one probe (and is as small as the spam set)",
     ["CREATE INDEX calls_caller_spam ON calls (caller_number) WHERE spam = 1"]),
]


def index_shape(sql: str) -> str:
    """A CREATE INDEX statement without its name, spacing and case: two indexes of one shape are the same."""
    text = " ".join(sql.split()).lower()
    return re.sub(r"^create (unique )?index (if not exists )?\S+ on ", r"\1on ", text).replace(" (", "(")


def missing_suggestions(conn) -> list[tuple[str, list[str]]]:
    """The suggestions whose index is not in the database yet (once the schema has them, there is nothing to try)."""
    shapes = {index_shape(row[0]) for row in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index'"
                                                          " AND sql IS NOT NULL")}
    return [(why, statements) for why, statements in SUGGESTED
            if index_shape(next(s for s in statements if s.startswith("CREATE"))) not in shapes]


def apply_suggested(conn, now: str) -> list[str]:
    out = []
    for why, statements in missing_suggestions(conn):
        t = time.perf_counter()
        with conn:
            conn.execute("BEGIN")
            for sql in statements:
                conn.execute(sql)
        out.append(f"- {why}:")
        out += [f"    {sql};" for sql in statements]
        out.append(f"    (built in {time.perf_counter() - t:.1f} s on the bench database)")
    # the upsert of ScreeningStore.add_rule must still find its conflict target with the columns reordered
    store = ScreeningStore(__import__("sqlite_utils").Database(conn))
    first = store.add_rule("block", "range", "19999990000", value_end="19999990099", reason="check", now=now)
    again = store.add_rule("block", "range", "19999990000", value_end="19999990099", reason="renewed", now=now)
    with conn:
        conn.execute("DELETE FROM screen_rules WHERE id = ?", [first["id"]])
    out.append(f"  add_rule upsert with the reordered unique index: same rule id {first['id'] == again['id']}, "
               f"reason renewed {again['reason'] == 'renewed'}")
    return out


# --- report ----------------------------------------------------------------------------------------------


def busy_s(r: RunResult) -> float:
    """Seconds the storage thread spent on this run's jobs (every call's jobs, its later writes included)."""
    return sum(sum(v) for v in r.service_ms.values()) / 1000


def run_table(runs: list[RunResult]) -> list[str]:
    head = (f"{'run':<24} {'calls':>9} {'cps':>5} {'lag99':>6} {'create50':>8} {'create99':>8} {'arrive50':>8} "
            f"{'arrive99':>8} {'step50':>8} {'step99':>8} {'stepmax':>8} {'svc50':>6} {'svc99':>6} {'dbq':>4} "
            f"{'busy%':>5} {'ms/call':>7} {'db%':>4} {'loop%':>5} {'other':>5}")
    out = [head, "-" * len(head)]
    for r in runs:
        svc = r.service_ms.get("_arrive") or r.service_ms.get("arrive") or []
        calls = f"{len(r.step_ms)}/{r.scheduled}"
        out.append(
            f"{r.label:<24} {calls:>9} {r.arrival_cps:>5.1f} {fmt(percentile(r.lag_ms, 99), 1):>6} "
            f"{fmt(percentile(r.create_ms, 50)):>8} {fmt(percentile(r.create_ms, 99)):>8} "
            f"{fmt(percentile(r.arrive_ms, 50)):>8} {fmt(percentile(r.arrive_ms, 99)):>8} "
            f"{fmt(percentile(r.step_ms, 50)):>8} {fmt(percentile(r.step_ms, 99)):>8} "
            f"{fmt(max(r.step_ms) if r.step_ms else None, 1):>8} "
            f"{fmt(percentile(svc, 50)):>6} {fmt(percentile(svc, 99)):>6} {r.queue_max:>4} "
            f"{fmt(100 * busy_s(r) / r.wall_s if r.wall_s else None, 0):>5} "
            f"{fmt(1000 * busy_s(r) / len(r.step_ms) if r.step_ms else None):>7} "
            f"{fmt(100 * r.storage_cpu_s / r.wall_s if r.storage_cpu_s is not None else None, 0):>4} "
            f"{fmt(100 * r.loop_cpu_s / r.wall_s if r.loop_cpu_s is not None else None, 0):>5} "
            f"{fmt(r.others_cpu_s / r.wall_s if r.others_cpu_s is not None else None, 1):>5}")
    for r in runs:
        if r.overloaded:
            svc = r.service_ms.get("_arrive") or r.service_ms.get("arrive") or []
            out.append(f"  ! {r.label}: OVERLOADED: a call waited more than the give-up time, so the run stopped "
                       f"after starting {r.started} of {r.scheduled} calls and cancelled {r.cancelled} still waiting; "
                       f"the storage thread completed {r.completed_per_s:.1f} steps/s (arrive alone "
                       f"{fmt(statistics.mean(svc) if svc else None)} ms per call on it). Its step figures cover "
                       "only the calls that got through.")
    return out


def comparison(runs: list[RunResult]) -> list[str]:
    out = [f"{'rate':>4} {'screening vs':<12} {'p50 base':>8} {'p50 scr':>8} {'added p50':>9} {'x p50':>7} "
           f"{'p99 base':>8} {'p99 scr':>8} {'added p99':>9} {'x p99':>7} {'max base':>8} {'max scr':>8}"]
    out.append("-" * len(out[0]))
    for r in runs:
        if r.path != "screening" or not r.step_ms:
            continue
        idx = r.label.endswith("+idx")
        for base in (b for b in runs if b.rate == r.rate and b.label.endswith("+idx") == idx
                     and b.path != "screening" and b.step_ms):
            b50, s50 = percentile(base.step_ms, 50), percentile(r.step_ms, 50)
            b99, s99 = percentile(base.step_ms, 99), percentile(r.step_ms, 99)
            assert b50 is not None and s50 is not None and b99 is not None and s99 is not None
            mark = " (overloaded)" if r.overloaded else ""
            out.append(f"{r.rate:>4} {base.path + (' +idx' if idx else ''):<12} {fmt(b50):>8} {fmt(s50):>8} {fmt(s50 - b50):>9} "
                       f"{s50 / b50:>6.2f}x {fmt(b99):>8} {fmt(s99):>8} {fmt(s99 - b99):>9} {s99 / b99:>6.2f}x "
                       f"{fmt(max(base.step_ms), 1):>8} {fmt(max(r.step_ms), 1):>8}{mark}")
    return out


def job_lines(runs: list[RunResult]) -> list[str]:
    """Where the storage thread's time went, per kind of job: mean ms x jobs, per call."""
    out = []
    for r in runs:
        calls = len(r.step_ms) or 1
        parts = sorted(r.service_ms.items(), key=lambda kv: -sum(kv[1]))
        out.append(f"{r.label:<24} " + ", ".join(f"{name} {statistics.mean(v):.2f} x {len(v) / calls:.1f}"
                                                 for name, v in parts if v))
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


def run_json(r: RunResult) -> dict[str, Any]:
    svc = r.service_ms.get("_arrive") or r.service_ms.get("arrive") or []
    return {"label": r.label, "path": r.path, "rate": r.rate, "scheduled": r.scheduled, "started": r.started,
            "completed": len(r.step_ms), "arrival_cps": r.arrival_cps, "overloaded": r.overloaded,
            "completed_per_s": r.completed_per_s, "step_p50": percentile(r.step_ms, 50),
            "step_p99": percentile(r.step_ms, 99), "step_max": max(r.step_ms) if r.step_ms else None,
            "create_p50": percentile(r.create_ms, 50), "arrive_p50": percentile(r.arrive_ms, 50),
            "arrive_p99": percentile(r.arrive_ms, 99), "arrive_service_p50": percentile(svc, 50),
            "arrive_service_p99": percentile(svc, 99), "queue_max": r.queue_max, "verdicts": dict(r.verdicts),
            "storage_busy_s": busy_s(r),
            "jobs": {name: {"count": len(v), "mean_ms": statistics.mean(v), "p99_ms": percentile(v, 99)}
                     for name, v in r.service_ms.items() if v},
            "storage_cpu_s": r.storage_cpu_s, "others_cpu_s": r.others_cpu_s, "wall_s": r.wall_s, "errors": r.errors}


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
    if args.what_if:
        import sqlite3

        probe = sqlite3.connect(str(settings.database))
        try:
            args.what_if = bool(missing_suggestions(probe))
        finally:
            probe.close()
        if not args.what_if:
            log("the schema already has the suggested indexes: no '+idx' runs")
    if args.what_if:
        for rate, seconds in ((args.rate, args.seconds), (args.burst_rate, args.burst_seconds)):
            if rate and seconds:
                plan += [(f"{rate} cps screen-off +idx", "screen-off", rate, seconds),
                         (f"{rate} cps screening +idx", "screening", rate, seconds)]
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
    gc.collect()

    store = AsyncCallStore(settings.database)
    await store.open()
    tracking = TrackingService(settings, store)
    screening = ScreeningService(settings, store)
    bench = Bench(settings, store, tracking, screening, args.give_up)
    runs: list[RunResult] = []
    queries: list[dict[str, Any]] = []
    queries_after: list[dict[str, Any]] = []
    applied: list[str] = []
    try:
        await tracking.start()
        await screening.start(tracking.attribution)
        await bench.find_storage_thread()
        for (label, path, rate, seconds), sample in zip(plan, callers):
            if label.endswith("+idx") and not applied:
                log("query plans, as the schema stands")
                queries = await store.run(explain, store, screening, tracking, settings, examples, args.repeat)
                log("applying the suggested indexes to the bench database")
                applied = await store.run(apply_suggested, store.db.conn, utcnow())
            if args.quiet_wait:
                others = await wait_quiet(args.quiet_wait)
                if others is not None and others >= 0.5:
                    log(f"the machine is busy: other work uses {others:.1f} CPUs; running anyway")
            log(f"{label}: {len(sample)} calls at {rate} cps")
            result = await bench.run(label, path, rate, seconds, sample)
            if label != "warm-up":
                runs.append(result)
            log(f"  step p50 {fmt(percentile(result.step_ms, 50))} p99 {fmt(percentile(result.step_ms, 99))} ms"
                + (f"; OVERLOADED, {len(result.step_ms)} of {result.scheduled} got through" if result.overloaded else ""))
            await asyncio.sleep(1.0)
        if not queries:
            log("query plans, as the schema stands")
            queries = await store.run(explain, store, screening, tracking, settings, examples, args.repeat)
        elif applied:
            log("query plans with the suggested indexes")
            queries_after = await store.run(explain, store, screening, tracking, settings, examples, args.repeat)
    finally:
        await screening.stop()
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
               f"schedule (call i starts at t0 + i/rate); one storage thread (AsyncCallStore); give-up {args.give_up:g} s")
    out.append("")
    out.append("step = create_call + arrive, ms: what a call waits for between StasisStart and decide(); create = the "
               "record insert; arrive = ScreeningService.arrive (tracking: TrackingService.arrive), queue wait included;")
    out.append("calls = steps completed / scheduled; cps = arrival rate achieved; lag99 = p99 of scheduled start -> "
               "task start (event loop delay); svc50/99 = storage-thread time of the arrive job alone (no queue);")
    out.append("busy% = share of the run the storage thread spent on jobs; ms/call = its time per call, all of the "
               "call's writes included (1000 / ms/call = the most calls per second it could take on this machine);")
    out.append("dbq = most storage jobs queued at an arrival; db% / loop% = CPU of the storage thread / the event loop "
               f"thread over the run; other = CPUs (of {os.cpu_count()}) busy with anything but this process meanwhile "
               "(other work on the machine skews the figures); '+idx' = the suggested indexes applied (see below).")
    out += run_table(runs)
    out.append("")
    out.append("Screening vs the baselines (same process, same caller mix; added = screening minus baseline):")
    out += comparison(runs)
    out.append("")
    out.append("Storage thread per job (mean ms x jobs per call; _arrive = ScreeningService's trip, arrive = the "
               "attribution alone, apply/finish_call = the call's later writes):")
    out += job_lines(runs)
    out.append("")
    out.append("Verdicts (screening runs) and the step per caller category:")
    out += verdict_lines(runs)
    out.append("")
    out.append(f"Query plans as the schema stands (EXPLAIN QUERY PLAN of the statements as run, literals shown as ?; "
               f"time = median (max) over n runs of the exact statement on the storage connection; the busiest caller "
               f"has {busiest_calls:,} calls):")
    out += plan_lines(queries)
    if applied:
        out.append("")
        out.append("Suggested indexes (applied to the bench database only, after the runs above):")
        out += applied
        out.append("")
        out.append("Query plans with them:")
        out += plan_lines([q for q in queries_after if q["part"] == "facts"])
    text = "\n".join(out)
    print(text, flush=True)
    (tmp / "report.txt").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "load": report.figures, "runs": [run_json(r) for r in runs],
            "queries": [{k: q[k] for k in ("part", "template", "plan", "verdict", "rows", "times")} for q in queries],
            "queries_with_suggested_indexes": [{k: q[k] for k in ("part", "template", "plan", "verdict", "rows", "times")}
                                               for q in queries_after],
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
    parser.add_argument("--give-up", type=float, default=20.0,
                        help="stop a run when a call has waited this long for its verdict (default 20 s)")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="before each run, wait up to this long for other work on the machine to drop below half "
                             "a CPU (default 60 s; 0: never wait)")
    parser.add_argument("--no-what-if", dest="what_if", action="store_false",
                        help="skip the runs with the suggested indexes applied to the bench database")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k rules, 100k calls, 5 s / 2 s runs")
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
