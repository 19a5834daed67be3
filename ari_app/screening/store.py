"""Block and allow lists, quarantined callers and caller history, in SQLite, for pre-answer screening.

Runs on the storage thread. Lookups stay indexed at any list size (issue #5 asks for a million entries):
exact numbers and charge numbers by (kind, value); prefixes by probing every prefix of the caller's number;
ranges by the nearest starts at or below the number (zero-padded so text order is number order); name
patterns and the anonymous rule are few and read whole.
"""

from __future__ import annotations

import fnmatch
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable

import sqlite_utils

from storage.db import format_time, parse_time

RANGE_WIDTH = 15  # E.164 maximum: ranges are stored zero-padded to this many digits
RANGE_PROBE = 32  # nearest range starts checked for a containing range
KINDS = ("number", "prefix", "range", "name", "anonymous", "charge")


def padded(number: str) -> str:
    return number.rjust(RANGE_WIDTH, "0")


@dataclass
class Facts:
    """What the database knows about this caller, for score 1."""

    allow: dict[str, Any] | None = None  # the allow rule that matched
    block: dict[str, Any] | None = None  # the block rule that matched
    calls_in_window: int = 0  # earlier calls from this caller within the rate window
    short_calls: int = 0  # earlier answered calls shorter than short_seconds within short_window
    durations: list[float] = field(default_factory=list)  # recent answered calls' durations, newest first
    quarantined_at: str | None = None  # when this caller last rang a number not in use
    spam_before: bool = False  # an earlier call from this caller was marked spam


class ScreeningStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn

    # --- at call time ------------------------------------------------------------------------------------

    def facts(self, call_id: str, caller: str | None, *, charge: str | None, name: str | None, anonymous: bool,
              campaign: str | None, now: str, rate_window: int, short_window: int, short_seconds: float,
              candidate_days: int) -> Facts:
        facts = Facts()
        facts.allow = self.match("allow", caller, charge=charge, name=name, anonymous=anonymous, campaign=campaign,
                                 now=now)
        if facts.allow is None:
            facts.block = self.match("block", caller, charge=charge, name=name, anonymous=anonymous,
                                     campaign=campaign, now=now)
        hit = facts.allow or facts.block
        if hit is not None:
            with self.conn:
                self.conn.execute("UPDATE screen_rules SET hits = hits + 1, last_hit_at = ? WHERE id = ?",
                                  [now, hit["id"]])
        if not caller:
            return facts
        facts.calls_in_window = self.conn.execute(
            "SELECT COUNT(*) FROM calls WHERE caller_number = ? AND arrived_at >= ? AND id != ?",
            [caller, _ago(now, rate_window), call_id]).fetchone()[0]
        facts.durations = [row[0] for row in self.conn.execute(
            "SELECT total_seconds FROM calls WHERE caller_number = ? AND arrived_at >= ? AND id != ?"
            " AND answered_at IS NOT NULL AND total_seconds IS NOT NULL ORDER BY arrived_at DESC LIMIT 10",
            [caller, _ago(now, short_window), call_id])]
        facts.short_calls = sum(1 for d in facts.durations if d < short_seconds)
        facts.spam_before = self.conn.execute(
            "SELECT 1 FROM calls WHERE caller_number = ? AND spam = 1 AND id != ? LIMIT 1",
            [caller, call_id]).fetchone() is not None
        facts.quarantined_at = self.conn.execute(
            "SELECT MAX(at) FROM quarantine WHERE caller = ? AND at >= ?",
            [caller, _ago(now, candidate_days * 86400)]).fetchone()[0]
        return facts

    def match(self, list_: str, caller: str | None, *, charge: str | None, name: str | None, anonymous: bool,
              campaign: str | None, now: str) -> dict[str, Any] | None:
        """The first live rule of ``list_`` that matches the caller, campaign rules and global rules alike."""
        scope = " AND (campaign IS NULL OR campaign = ?) AND (expires_at IS NULL OR expires_at > ?)"
        base = [list_, campaign, now]
        terms, params = [], []
        if caller:
            terms.append("(kind = 'number' AND value = ?)")
            params.append(caller)
            prefixes = [caller[:i] for i in range(1, len(caller) + 1)]
            terms.append(f"(kind = 'prefix' AND value IN ({', '.join('?' * len(prefixes))}))")
            params += prefixes
        if charge:
            terms.append("(kind = 'charge' AND value = ?)")
            params.append(charge)
        if anonymous:
            terms.append("(kind = 'anonymous')")
        if terms:
            row = self._one(f"SELECT * FROM screen_rules WHERE list = ?{scope} AND ({' OR '.join(terms)})"
                            " ORDER BY campaign IS NULL, id LIMIT 1", base + params)
            if row:
                return row
        if caller and caller.isascii() and caller.isdigit() and len(caller) <= RANGE_WIDTH:
            key = padded(caller)
            for row in self.db.query(f"SELECT * FROM screen_rules WHERE kind = 'range' AND value <= ? AND list = ?"
                                     f"{scope} ORDER BY value DESC LIMIT {RANGE_PROBE}", [key] + base):
                if row["value_end"] >= key:
                    return row
        if name:
            for row in self.db.query(f"SELECT * FROM screen_rules WHERE kind = 'name' AND list = ?{scope}", base):
                if fnmatch.fnmatchcase(name.lower(), row["value"].lower()):
                    return row
        return None

    def quarantine(self, caller: str | None, number: str, state: str, call_id: str, now: str) -> None:
        if not caller:
            return
        with self.conn:
            self.conn.execute("INSERT INTO quarantine (caller, number, number_state, call_id, at) VALUES (?, ?, ?, ?, ?)",
                              [caller, number, state, call_id, now])

    def window_counts(self, campaign: str, since: str, short_seconds: float) -> tuple[int, int]:
        """Finished calls of the campaign since ``since``, and how many were short or spam (escalation)."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(spam = 1 OR decision = 'reject' OR (answered_at IS NOT NULL"
            " AND total_seconds < ?)), 0) FROM calls WHERE campaign = ? AND arrived_at >= ? AND ended_at IS NOT NULL",
            [short_seconds, campaign, since]).fetchone()
        return int(row[0]), int(row[1])

    def levels(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT campaign, level FROM campaign_levels").fetchall())

    def set_level(self, campaign: str, level: int, reason: str, now: str) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO campaign_levels (campaign, level, changed_at, reason) VALUES (?, ?, ?, ?)"
                              " ON CONFLICT (campaign) DO UPDATE SET level = excluded.level,"
                              " changed_at = excluded.changed_at, reason = excluded.reason",
                              [campaign, level, now, reason])

    # --- managing lists ----------------------------------------------------------------------------------

    def add_rule(self, list_: str, kind: str, value: str, *, value_end: str | None = None, campaign: str | None = None,
                 expires_at: str | None = None, reason: str | None = None, source: str = "api",
                 now: str) -> dict[str, Any]:
        """Add a rule, or renew the same one (a later expiry and reason win). Returns the stored rule."""
        if kind == "range":
            value, value_end = padded(value), padded(value_end or value)
        with self.conn:
            self.conn.execute(
                "INSERT INTO screen_rules (list, kind, value, value_end, campaign, expires_at, reason, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (list, kind, value, IFNULL(value_end, ''),"
                " IFNULL(campaign, '')) DO UPDATE SET expires_at = excluded.expires_at, reason = excluded.reason,"
                " source = excluded.source",
                [list_, kind, value, value_end, campaign, expires_at, reason, source, now])
        return self._one("SELECT * FROM screen_rules WHERE list = ? AND kind = ? AND value = ?"
                         " AND IFNULL(value_end, '') = ? AND IFNULL(campaign, '') = ?",
                         [list_, kind, value, value_end or "", campaign or ""]) or {}

    def add_many(self, rows: Iterable[tuple[str, str, str]], *, now: str, source: str = "import") -> int:
        """Bulk load (list, kind, value) rules in one transaction: how a million-entry list gets in."""
        with self.conn:
            if not self.conn.in_transaction:  # the connection autocommits: without this, every row would commit
                self.conn.execute("BEGIN")
            cur = self.conn.executemany(
                "INSERT OR IGNORE INTO screen_rules (list, kind, value, source, created_at) VALUES (?, ?, ?, ?, ?)",
                ((list_, kind, value, source, now) for list_, kind, value in rows))
        return cur.rowcount

    def rules(self, *, list_: str | None = None, kind: str | None = None, campaign: str | None = None,
              value: str | None = None, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ["id > ?"], [after_id]
        for column, wanted in (("list", list_), ("kind", kind), ("campaign", campaign), ("value", value)):
            if wanted is not None:
                where.append(f"{column} = ?")
                params.append(wanted)
        return list(self.db.query(f"SELECT * FROM screen_rules WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                                  params + [limit]))

    def delete_rule(self, rule_id: int) -> bool:
        with self.conn:
            return self.conn.execute("DELETE FROM screen_rules WHERE id = ?", [rule_id]).rowcount > 0

    def clear(self, caller: str, *, allow: bool, now: str) -> dict[str, int]:
        """An operator clears a false positive: the caller's number rules and quarantine hits go, their calls
        lose the spam mark, and optionally the number is allowed from now on."""
        with self.conn:
            self.conn.execute("BEGIN")
            rules = self.conn.execute("DELETE FROM screen_rules WHERE list = 'block' AND kind = 'number' AND value = ?",
                                      [caller]).rowcount
            hits = self.conn.execute("DELETE FROM quarantine WHERE caller = ?", [caller]).rowcount
            calls = self.conn.execute("UPDATE calls SET spam = 0, spam_reason = 'cleared by an operator'"
                                      " WHERE caller_number = ? AND spam = 1", [caller]).rowcount
        if allow:
            self.add_rule("allow", "number", caller, reason="false positive cleared", source="operator", now=now)
        return {"block_rules_removed": rules, "quarantine_hits_removed": hits, "calls_unmarked": calls}

    def _one(self, sql: str, params: list[Any]) -> dict[str, Any] | None:
        rows = list(self.db.query(sql, params))
        return rows[0] if rows else None


def _ago(now: str, seconds: float) -> str:
    return format_time(parse_time(now) - timedelta(seconds=seconds))
