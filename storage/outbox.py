"""Outbox: call events waiting to be sent to webhooks and analytics, one row per (event, sink).

Rows are written in the same database as the call records (optionally inside the same transaction), so
an event is either stored with the step that caused it or not at all, and a restart loses nothing: the
worker picks up whatever is not yet delivered or dead. Synchronous and parameterised like CallStore; the
service runs it on the storage thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import sqlite_utils

from storage.db import utcnow

MAX_ERROR = 500  # characters of an error kept on the row: enough to diagnose, never a whole HTML page


@dataclass(frozen=True)
class OutboxItem:
    id: int
    sink: str
    event: str
    call_id: str | None
    payload: dict[str, Any]
    created_at: str
    attempts: int
    next_attempt_at: str
    last_error: str | None


_PENDING = "delivered_at IS NULL AND dead_at IS NULL"  # matches the partial index outbox_due


class OutboxStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn = db.conn

    def enqueue(self, event: str, call_id: str | None, payload: dict[str, Any], sinks: Iterable[str], *,
                at: str | None = None) -> int:
        """One row per sink; returns how many. Joins a transaction the caller has open (so the event
        commits or rolls back with the call step that produced it), else commits on its own."""
        at = at or utcnow()
        body = json.dumps(payload, separators=(",", ":"), default=str)
        rows = [(sink, event, call_id, body, at, at) for sink in sinks]
        if not rows:
            return 0
        sql = ("INSERT INTO outbox (sink, event, call_id, payload, created_at, next_attempt_at) "
               "VALUES (?, ?, ?, ?, ?, ?)")
        if self.conn.in_transaction:
            self.conn.executemany(sql, rows)
        else:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany(sql, rows)
        return len(rows)

    def due(self, now: str, limit: int, sinks: Iterable[str] | None = None) -> list[OutboxItem]:
        """Pending items whose time has come, oldest schedule first. ``sinks`` limits them to configured
        sinks: rows of a sink removed from the configuration wait (are not lost) and never crowd out others."""
        sql = ("SELECT id, sink, event, call_id, payload, created_at, attempts, next_attempt_at, last_error "
               f"FROM outbox WHERE {_PENDING} AND next_attempt_at <= ?")
        params: list[Any] = [now]
        if sinks is not None:
            names = list(sinks)
            if not names:
                return []
            sql += f" AND sink IN ({', '.join('?' * len(names))})"
            params += names
        sql += " ORDER BY next_attempt_at, id LIMIT ?"
        rows = self.conn.execute(sql, [*params, limit]).fetchall()
        return [OutboxItem(id=r[0], sink=r[1], event=r[2], call_id=r[3], payload=json.loads(r[4]), created_at=r[5],
                           attempts=r[6], next_attempt_at=r[7], last_error=r[8]) for r in rows]

    def delivered(self, id: int, at: str, *, note: str | None = None) -> None:
        """``note`` records why an item was settled without sending (e.g. GA4 without a client id)."""
        with self.conn:
            self.conn.execute(
                f"UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = COALESCE(?, last_error) "
                f"WHERE id = ? AND {_PENDING}", [at, note, id])

    def failed(self, id: int, error: str, next_attempt_at: str, *, dead: bool, at: str | None = None) -> None:
        """Count a failed attempt; either schedule the next one or give up (``dead``; the row is kept)."""
        with self.conn:
            self.conn.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, dead_at = ? "
                f"WHERE id = ? AND {_PENDING}",
                [error[:MAX_ERROR], next_attempt_at, (at or utcnow()) if dead else None, id])

    def backlog(self) -> dict[str, int]:
        """Pending items per sink (due now or scheduled for a retry)."""
        rows = self.conn.execute(f"SELECT sink, COUNT(*) FROM outbox WHERE {_PENDING} GROUP BY sink").fetchall()
        return {sink: count for sink, count in rows}

    def dead_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL").fetchone()[0]

    def retry_dead(self, now: str, sink: str | None = None) -> int:
        """Give dead items a fresh start (after fixing a receiver); returns how many."""
        where, params = "dead_at IS NOT NULL", [now]
        if sink is not None:
            where += " AND sink = ?"
            params.append(sink)
        with self.conn:
            return self.conn.execute(f"UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = ? "
                                     f"WHERE {where}", params).rowcount

    def purge_delivered(self, before: str) -> int:
        """Drop rows delivered before ``before``: the table is a queue, not an archive."""
        with self.conn:
            return self.conn.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                                     [before]).rowcount
