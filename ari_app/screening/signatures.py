"""Announcement signatures (seed 001, C15): robocalls play one recording to everybody, so the opening seconds of
a call marked spam identify the next call that plays it.

Every screened call's opening is fingerprinted (detectors.signature) and kept for OPENING_DAYS, so a call an
operator marks spam later still teaches the index. The index lives in memory (loaded at start); SQLite is the
record. Fingerprinting runs in an executor: it is numpy work of a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import sqlite_utils

from detectors.signature import MATCH_THRESHOLD, Fingerprint, SignatureIndex, fingerprint
from storage.async_store import AsyncCallStore
from storage.db import format_time, utcnow

log = logging.getLogger(__name__)

OPENING_SECONDS = 8.0  # audio kept from answer: the fingerprint looks at the first 6 s after the onset
OPENING_DAYS = 7  # how long a call's opening is kept in case the call is marked spam later


class SignatureStore:
    """SQL for openings and signatures; runs on the storage thread."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn = db.conn

    def all(self) -> list[tuple[int, bytes]]:
        return self.conn.execute("SELECT id, fingerprint FROM signatures").fetchall()

    def keep_opening(self, call_id: str, data: bytes, now: str) -> tuple[int, bytes] | None:
        """Store the call's opening; if the call is already spam (its end came first), learn it at once."""
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO call_openings (call_id, fingerprint, at) VALUES (?, ?, ?)",
                              [call_id, data, now])
            self.conn.execute("DELETE FROM call_openings WHERE at < ?",
                              [format_time(datetime.now(timezone.utc) - timedelta(days=OPENING_DAYS))])
            spam = self.conn.execute("SELECT spam FROM calls WHERE id = ?", [call_id]).fetchone()
            return self.learn(call_id, now) if spam and spam[0] == 1 else None

    def learn(self, call_id: str, now: str) -> tuple[int, bytes] | None:
        """The call's opening becomes a signature (inside the caller's transaction when there is one)."""
        row = self.conn.execute("SELECT fingerprint FROM call_openings WHERE call_id = ?", [call_id]).fetchone()
        if row is None:
            return None
        cur = self.conn.execute("INSERT OR IGNORE INTO signatures (call_id, fingerprint, created_at) VALUES (?, ?, ?)",
                                [call_id, row[0], now])
        return (cur.lastrowid, row[0]) if cur.rowcount else None

    def hit(self, signature_id: int, now: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE signatures SET hits = hits + 1, last_hit_at = ? WHERE id = ?",
                              [now, signature_id])


class Signatures:
    def __init__(self, store: AsyncCallStore) -> None:
        self.store = store
        self.index = SignatureIndex()
        self.sql: SignatureStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sql = SignatureStore(self.store.db)
        rows = [(signature_id, Fingerprint.from_bytes(data)) for signature_id, data in await self.store.run(self.sql.all)]
        self.index = await self._loop.run_in_executor(None, SignatureIndex, rows)  # a bulk build takes seconds
        log.info("announcement signatures: %d loaded", len(self.index))

    async def check_opening(self, call_id: str, samples: np.ndarray, rate: int) -> dict[str, Any] | None:
        """Fingerprint a call's opening, keep it, and return the signature it matches, if any."""
        assert self.sql is not None
        loop = asyncio.get_running_loop()
        fp = await loop.run_in_executor(None, fingerprint, samples, rate)
        if not len(fp):
            return None  # silence: nothing to compare
        match = await loop.run_in_executor(None, self.index.best_match, fp, MATCH_THRESHOLD)
        learned = await self.store.run(self.sql.keep_opening, call_id, fp.to_bytes(), utcnow())
        if learned is not None:
            await loop.run_in_executor(None, self.index.add, learned[0], fp)  # the index locks itself
        if match is None:
            return None
        signature_id, score = match
        await self.store.run(self.sql.hit, int(signature_id), utcnow())
        return {"signature": int(signature_id), "score": round(float(score), 3)}

    def learn_in_transaction(self, call_id: str) -> None:
        """A call observer (storage thread): on call.spam, its opening joins the index."""
        assert self.sql is not None and self._loop is not None
        learned = self.sql.learn(call_id, utcnow())
        if learned is not None:
            signature_id, data = learned
            self.index.add(signature_id, Fingerprint.from_bytes(data))  # thread-safe; here on the storage thread
