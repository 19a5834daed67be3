"""Number states, leases, visitor sessions and extensions in SQLite.

Every method runs on the storage thread (storage.async_store), which is the only writer: each lease is one
transaction there, so a number can never be leased to two contexts at once whatever the concurrency of web
requests, and the partial unique index on (pool, lease_key) backs that up in the schema itself.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Mapping

import sqlite_utils

from ari_app.tracking.model import Pool
from storage.db import format_time, parse_time

# Number states. Static, overflow and extension numbers are simply "active": they are never leased.
INVENTORY, IDLE, LEASED, COOLDOWN, RETIRED, ACTIVE = "inventory", "idle", "leased", "cooldown", "retired", "active"
PAGES_KEPT = 50  # page views kept per session, newest last
ALERT_EVERY = timedelta(minutes=5)  # at most one "pool exhausted" alert per pool in this time
VISIT_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid",
                "msclkid", "keyword", "p1", "p2", "p3")


@dataclass
class Visit:
    """What the snippet reports about a page view; validated by the web layer."""

    page: str | None = None
    referrer: str | None = None
    title: str | None = None
    ga_client_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] | None = None
    vars: dict[str, str] | None = None
    vars_mode: str = "replace"  # replace | add | overwrite


@dataclass(frozen=True)
class Lease:
    session_id: str
    number: str
    extension: str | None
    overflow: bool
    how: str  # renewed, same_context, idle, grown, reassigned, overflow, extension, none


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shift(now: str, seconds: float) -> str:
    return format_time(parse_time(now) + timedelta(seconds=seconds))


def _host(url: str | None) -> str | None:
    if not url or "://" not in url:
        return None
    return url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].lower() or None


def device_type(device: Mapping[str, Any] | None) -> str | None:
    if not device:
        return None
    ua = str(device.get("ua") or "").lower()
    if "ipad" in ua or "tablet" in ua:
        return "tablet"
    if "mobi" in ua or "iphone" in ua or "android" in ua:
        return "mobile"
    return "desktop" if ua else None


def context_key(pool: Pool, session: Mapping[str, Any]) -> str:
    """Sessions with equal values on the pool's context fields share a lease; with no context, one per session."""
    if not pool.context:
        return "s:" + session["id"]
    values = json.dumps([session.get(f) or "" for f in pool.context])
    return "c:" + hashlib.sha256(values.encode()).hexdigest()[:32]


def merge_vars(old: Mapping[str, str] | None, new: Mapping[str, str] | None, mode: str) -> dict[str, str]:
    """Custom variables: ``replace`` the whole set, ``add`` only new keys, ``overwrite`` the given keys."""
    old = dict(old or {})
    if new is None:
        return old
    if mode == "replace":
        return dict(new)
    if mode == "add":
        return {**new, **old}
    return {**old, **new}


class TrackingStore:
    def __init__(self, db: sqlite_utils.Database, pools: Mapping[str, Pool]) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self.pools = dict(pools)

    # --- configuration -----------------------------------------------------------------------------------

    def sync(self, pools: Mapping[str, Pool], inventory: Iterable[str], now: str) -> None:
        """Bring number rows in line with the configuration (after CallStore.sync_catalog wrote the static
        ones). Leases survive a restart; numbers gone from the file are retired, not deleted."""
        self.pools = dict(pools)
        inventory = list(inventory)
        wanted: dict[str, tuple[str | None, str | None, str]] = {}  # number -> (pool, campaign, role)
        for pool in pools.values():
            role = "extension" if pool.mode == "extension" else "pool"
            for number in pool.numbers:
                wanted[number] = (pool.name, pool.campaign, role)
            if pool.overflow_number:
                wanted[pool.overflow_number] = (pool.name, pool.campaign, "overflow")
        rows = {r["number"]: r for r in self.db.query("SELECT * FROM tracking_numbers")}
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for number in inventory:
                row = rows.get(number)
                if row is not None and row["role"] == "pool" and row["pool"] in pools and row["state"] != RETIRED:
                    self.conn.execute("UPDATE tracking_numbers SET active = 1 WHERE number = ?", [number])
                    continue  # grown into a pool earlier: it stays there
                self._put(number, row, None, None, "inventory", INVENTORY, now, "listed in the inventory")
            for number, (pool_name, campaign, role) in wanted.items():
                row = rows.get(number)
                state = IDLE if role == "pool" else ACTIVE
                if row is not None and row["pool"] == pool_name and row["role"] == role and row["state"] != RETIRED:
                    self.conn.execute("UPDATE tracking_numbers SET active = 1, campaign = ? WHERE number = ?",
                                      [campaign, number])
                    continue
                self._put(number, row, pool_name, campaign, role, state, now, f"configured in pool {pool_name}")
            for number, row in rows.items():
                if number in wanted or number in inventory or row["role"] == "static":
                    continue  # (a number grown into a pool is still listed in the inventory)
                if row["state"] != RETIRED:
                    self._put(number, row, row["pool"], row["campaign"], row["role"], RETIRED, now,
                              "no longer in the configuration")
            # static numbers are ACTIVE; a static number dropped from the file is just inactive (sync_catalog)
            self.conn.execute("UPDATE tracking_numbers SET state = ?, state_changed_at = COALESCE(state_changed_at, ?)"
                              " WHERE role = 'static' AND state != ?", [ACTIVE, now, ACTIVE])

    def _put(self, number: str, row: Mapping[str, Any] | None, pool: str | None, campaign: str | None, role: str,
             state: str, now: str, reason: str) -> None:
        if row is None:
            self.conn.execute(
                "INSERT INTO tracking_numbers (number, campaign, active, updated_at, pool, role, state, state_changed_at)"
                " VALUES (?, ?, 1, ?, ?, ?, ?, ?)", [number, campaign, now, pool, role, state, now])
        else:
            self.conn.execute(
                "UPDATE tracking_numbers SET campaign = ?, active = ?, updated_at = ?, pool = ?, role = ?, state = ?,"
                " state_changed_at = ?, lease_key = NULL, session_id = NULL, leased_at = NULL, cooldown_until = NULL,"
                " lease_calls = 0 WHERE number = ?",
                [campaign, 0 if state == RETIRED else 1, now, pool, role, state, now, number])
        if row is None or row["state"] != state:
            self._log(number, row["state"] if row else None, state, pool, None, now, reason)

    def _log(self, number: str, from_state: str | None, to_state: str, pool: str | None, session_id: str | None,
             now: str, reason: str) -> None:
        self.conn.execute("INSERT INTO number_state_log (number, at, from_state, to_state, pool, session_id, reason)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?)", [number, now, from_state, to_state, pool, session_id, reason])

    # --- sessions ------------------------------------------------------------------------------------------

    def visit(self, pool: Pool, visit: Visit, now: str, *, token: str | None, new_token: str,
              new_session_id: str) -> tuple[Lease, str]:
        """Resume the session behind ``token`` (only its hash is stored), or start one under ``new_token`` when
        there is none or it is unknown; record the page view and return the renewed or new lease, and the
        session's token. One transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            session = self._session(pool, token) if token else None
            if session is None:
                token = new_token
                session = self._new_session(pool, token, visit, now, new_session_id)
            else:
                session = self._page_view(session, visit, now)
            return self._lease(pool, session, now), token

    def click(self, pool: Pool, token: str, element: str | None, now: str) -> bool:
        with self.conn:
            session = self._session(pool, token)
            if session is None:
                return False
            self.conn.execute("UPDATE visitor_sessions SET clicks = clicks + 1, last_click_at = ?, last_seen_at = ?"
                              " WHERE id = ?", [now, now, session["id"]])
            return True

    def _session(self, pool: Pool, token: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM visitor_sessions WHERE token_hash = ? AND pool = ?",
                                  [token_hash(token), pool.name]))
        return rows[0] if rows else None

    def _new_session(self, pool: Pool, token: str, visit: Visit, now: str, session_id: str) -> dict[str, Any]:
        params = {k: visit.params.get(k) for k in VISIT_FIELDS}
        row = {"id": session_id, "token_hash": token_hash(token), "pool": pool.name, "campaign": pool.campaign,
               "created_at": now, "last_seen_at": now, "referrer": visit.referrer, "referrer_host": _host(visit.referrer),
               "landing_page": visit.page, "current_page": visit.page, "page_title": visit.title,
               "pages_viewed": 1 if visit.page else 0,
               "pages": json.dumps([{"at": now, "url": visit.page}] if visit.page else []),
               "device": json.dumps(visit.device) if visit.device else None, "device_type": device_type(visit.device),
               "ga_client_id": visit.ga_client_id,
               "vars": json.dumps(merge_vars(None, visit.vars, "replace")), **params}
        self.conn.execute(f"INSERT INTO visitor_sessions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                          list(row.values()))
        return row

    def _page_view(self, session: dict[str, Any], visit: Visit, now: str) -> dict[str, Any]:
        updates: dict[str, Any] = {"last_seen_at": now}
        if visit.page and visit.page != session["current_page"]:
            pages = json.loads(session["pages"] or "[]")
            pages = (pages + [{"at": now, "url": visit.page}])[-PAGES_KEPT:]
            updates |= {"current_page": visit.page, "page_title": visit.title, "pages": json.dumps(pages),
                        "pages_viewed": session["pages_viewed"] + 1}
        if visit.ga_client_id and not session["ga_client_id"]:
            updates["ga_client_id"] = visit.ga_client_id
        if visit.vars is not None:
            updates["vars"] = json.dumps(merge_vars(json.loads(session["vars"] or "{}"), visit.vars, visit.vars_mode))
        self.conn.execute(f"UPDATE visitor_sessions SET {', '.join(f'{k} = ?' for k in updates)} WHERE id = ?",
                          [*updates.values(), session["id"]])
        return session | updates

    # --- leases --------------------------------------------------------------------------------------------

    def _lease(self, pool: Pool, session: dict[str, Any], now: str) -> Lease:
        if pool.mode == "extension":
            extension, how = self._lease_extension(pool, session["id"], now)
            self._set_session_lease(session["id"], None, pool.number, extension)
            return Lease(session["id"], pool.number, extension, extension is None, how)
        key = context_key(pool, session)
        number, how = self._lease_number(pool, session["id"], key, now)
        overflow = how in ("overflow", "none")
        self._set_session_lease(session["id"], None if overflow else key, number, None)
        return Lease(session["id"], number or "", None, overflow, how)

    def _set_session_lease(self, session_id: str, key: str | None, number: str | None, extension: str | None) -> None:
        self.conn.execute("UPDATE visitor_sessions SET lease_key = ?, number = ?, extension = ? WHERE id = ?",
                          [key, number, extension, session_id])

    def _lease_number(self, pool: Pool, session_id: str, key: str, now: str) -> tuple[str | None, str]:
        """Assignment in the seed's order: same context, idle, grow from inventory, least active old lease,
        overflow."""
        self._end_cooldowns(pool, now)
        row = self.conn.execute("SELECT number FROM tracking_numbers WHERE pool = ? AND state = 'leased'"
                                " AND lease_key = ?", [pool.name, key]).fetchone()
        if row:
            self.conn.execute("UPDATE tracking_numbers SET last_activity_at = ?, session_id = ? WHERE number = ?",
                              [now, session_id, row[0]])
            return row[0], "renewed" if key == "s:" + session_id else "same_context"
        row = self.conn.execute("SELECT number FROM tracking_numbers WHERE pool = ? AND role = 'pool' AND state = 'idle'"
                                " AND active = 1 ORDER BY state_changed_at, number LIMIT 1", [pool.name]).fetchone()
        if row:
            self._take(row[0], IDLE, pool, session_id, key, now, "leased to a visitor")
            return row[0], "idle"
        # (states are literals, not parameters, in these queries: SQLite then uses the partial indexes on state
        # without re-planning each statement)
        size = self.conn.execute("SELECT COUNT(*) FROM tracking_numbers WHERE pool = ?"
                                 " AND state IN ('idle', 'leased', 'cooldown')", [pool.name]).fetchone()[0]
        if size < pool.max_size:
            row = self.conn.execute("SELECT number FROM tracking_numbers WHERE state = 'inventory' AND active = 1"
                                    " ORDER BY state_changed_at, number LIMIT 1").fetchone()
            if row:
                self.conn.execute("UPDATE tracking_numbers SET pool = ?, campaign = ?, role = 'pool' WHERE number = ?",
                                  [pool.name, pool.campaign, row[0]])
                self._take(row[0], INVENTORY, pool, session_id, key, now,
                           f"pool grew from the inventory to {size + 1} of {pool.max_size}")
                return row[0], "grown"
        cutoff = _shift(now, -pool.min_lease)
        oldest = self.conn.execute("SELECT MIN(leased_at) FROM tracking_numbers WHERE pool = ? AND state = 'leased'",
                                   [pool.name]).fetchone()[0]
        row = None if oldest is None or oldest > cutoff else self.conn.execute(
            "SELECT number, session_id FROM tracking_numbers WHERE pool = ? AND state = 'leased' AND +leased_at <= ?"
            " ORDER BY lease_calls, last_activity_at, number LIMIT 1", [pool.name, cutoff]).fetchone()
        if row:
            self._take(row[0], LEASED, pool, session_id, key, now,
                       f"reassigned from session {row[1]}: the least active lease older than {pool.min_lease} s")
            return row[0], "reassigned"
        self._alert(pool, "exhausted", f"pool {pool.name} has no free number: all {size} leased for less than "
                    f"{pool.min_lease} s; handed out " + (f"the overflow number {pool.overflow_number}"
                                                         if pool.overflow_number else "no number"), now)
        return pool.overflow_number, "overflow" if pool.overflow_number else "none"

    def _take(self, number: str, from_state: str, pool: Pool, session_id: str, key: str, now: str, reason: str) -> None:
        self.conn.execute(
            "UPDATE tracking_numbers SET state = ?, state_changed_at = ?, lease_key = ?, session_id = ?, leased_at = ?,"
            " last_activity_at = ?, cooldown_until = NULL, lease_calls = 0, updated_at = ? WHERE number = ?",
            [LEASED, now, key, session_id, now, now, now, number])
        self._log(number, from_state, LEASED, pool.name, session_id, now, reason)

    def _end_cooldowns(self, pool: Pool, now: str) -> None:
        for (number,) in self.conn.execute("SELECT number FROM tracking_numbers WHERE pool = ? AND state = 'cooldown'"
                                           " AND cooldown_until <= ?", [pool.name, now]).fetchall():
            self.conn.execute("UPDATE tracking_numbers SET state = ?, state_changed_at = ?, cooldown_until = NULL"
                              " WHERE number = ?", [IDLE, now, number])
            self._log(number, COOLDOWN, IDLE, pool.name, None, now, "cool-down over")

    def _alert(self, pool: Pool, kind: str, message: str, now: str) -> None:
        last = self.conn.execute("SELECT MAX(at) FROM pool_alerts WHERE pool = ? AND kind = ?",
                                 [pool.name, kind]).fetchone()[0]
        if last is None or last <= format_time(parse_time(now) - ALERT_EVERY):
            self.conn.execute("INSERT INTO pool_alerts (pool, at, kind, message) VALUES (?, ?, ?, ?)",
                              [pool.name, now, kind, message])

    def _lease_extension(self, pool: Pool, session_id: str, now: str) -> tuple[str | None, str]:
        """The seed's rule: the session's own extension, else the smallest gap, else max+1 (reserved skipped)."""
        row = self.conn.execute("SELECT extension FROM extension_leases WHERE pool = ? AND session_id = ?",
                                [pool.name, session_id]).fetchone()
        if row:
            self.conn.execute("UPDATE extension_leases SET last_activity_at = ? WHERE pool = ? AND extension = ?",
                              [now, pool.name, row[0]])
            return str(row[0]), "renewed"
        taken = {r[0] for r in self.conn.execute("SELECT extension FROM extension_leases WHERE pool = ?", [pool.name])}
        taken |= {int(ext) for ext, _source in pool.reserved}
        extension = next(n for n in range(1, len(taken) + 2) if n not in taken)
        if extension > pool.max_extension:
            self._alert(pool, "exhausted", f"extension site {pool.name} has all {pool.max_extension} extensions "
                        "in use; the visitor sees the number alone", now)
            return None, "none"
        self.conn.execute("INSERT INTO extension_leases (pool, extension, session_id, leased_at, last_activity_at)"
                          " VALUES (?, ?, ?, ?, ?)", [pool.name, extension, session_id, now, now])
        return str(extension), "extension"

    def release_inactive(self, now: str) -> int:
        """Release leases and extensions whose page activity stopped more than the pool's TTL ago (seed 004)."""
        released = 0
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for pool in self.pools.values():
                cutoff = _shift(now, -pool.lease_ttl)
                if pool.mode == "extension":
                    released += self.conn.execute("DELETE FROM extension_leases WHERE pool = ? AND last_activity_at < ?",
                                                  [pool.name, cutoff]).rowcount
                    continue
                for number, session_id in self.conn.execute(
                        "SELECT number, session_id FROM tracking_numbers WHERE pool = ? AND state = ?"
                        " AND last_activity_at < ?", [pool.name, LEASED, cutoff]).fetchall():
                    self._release(pool, number, session_id, now, f"no page activity for {pool.lease_ttl} s")
                    released += 1
                self._end_cooldowns(pool, now)
        return released

    def _release(self, pool: Pool, number: str, session_id: str | None, now: str, reason: str) -> None:
        state = COOLDOWN if pool.cooldown else IDLE
        self.conn.execute(
            "UPDATE tracking_numbers SET state = ?, state_changed_at = ?, lease_key = NULL, cooldown_until = ?,"
            " updated_at = ? WHERE number = ?",
            [state, now, _shift(now, pool.cooldown) if pool.cooldown else None, now, number])
        self._log(number, LEASED, state, pool.name, session_id, now, reason)

    def release_session(self, session_id: str, now: str, reason: str = "released by an operator") -> list[str]:
        """End a visitor's lease (an operator, or a test tidying up); returns what was freed."""
        freed: list[str] = []
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            session = self.conn.execute("SELECT pool, lease_key FROM visitor_sessions WHERE id = ?",
                                        [session_id]).fetchone()
            if session is None:
                return freed
            pool = self.pools.get(session[0])
            for (extension,) in self.conn.execute("SELECT extension FROM extension_leases WHERE session_id = ?",
                                                  [session_id]).fetchall():
                freed.append(f"extension {extension}")
            self.conn.execute("DELETE FROM extension_leases WHERE session_id = ?", [session_id])
            if pool is not None and session[1]:
                for (number,) in self.conn.execute("SELECT number FROM tracking_numbers WHERE pool = ? AND state = ?"
                                                   " AND lease_key = ?", [pool.name, LEASED, session[1]]).fetchall():
                    self._release(pool, number, session_id, now, reason)
                    freed.append(number)
            self.conn.execute("UPDATE visitor_sessions SET lease_key = NULL WHERE id = ?", [session_id])
        return freed

    def release_extension(self, pool_name: str, extension: str) -> None:
        """After the call that used it (seed 003): the extension can go to the next visitor."""
        with self.conn:
            self.conn.execute("DELETE FROM extension_leases WHERE pool = ? AND extension = ?",
                              [pool_name, int(extension)])

    # --- reading -------------------------------------------------------------------------------------------

    def pool_status(self, pool: Pool) -> dict[str, Any]:
        counts = dict(self.conn.execute("SELECT state, COUNT(*) FROM tracking_numbers WHERE pool = ? AND role = 'pool'"
                                        " GROUP BY state", [pool.name]).fetchall())
        status: dict[str, Any] = {"name": pool.name, "campaign": pool.campaign, "mode": pool.mode,
                                  "publisher": pool.publisher}
        if pool.mode == "extension":
            in_use = self.conn.execute("SELECT COUNT(*) FROM extension_leases WHERE pool = ?", [pool.name]).fetchone()[0]
            status |= {"number": pool.number, "extensions_in_use": in_use, "max_extension": pool.max_extension,
                       "reserved": dict(pool.reserved)}
        else:
            size = sum(counts.get(s, 0) for s in (IDLE, LEASED, COOLDOWN))
            status |= {"size": size, "max_size": pool.max_size, "numbers": {s: counts.get(s, 0) for s in
                                                                            (IDLE, LEASED, COOLDOWN)},
                       "utilisation": round(counts.get(LEASED, 0) / pool.max_size, 4) if pool.max_size else None,
                       "overflow_number": pool.overflow_number}
        status["alerts"] = list(self.db.query("SELECT at, kind, message FROM pool_alerts WHERE pool = ?"
                                              " ORDER BY id DESC LIMIT 10", [pool.name]))
        return status

    def numbers(self, pool: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT number, campaign, pool, role, state, state_changed_at, session_id, leased_at, last_activity_at,"
               " cooldown_until, lease_calls, last_call_at, active FROM tracking_numbers")
        params: list[Any] = []
        if pool is not None:
            sql += " WHERE pool = ?"
            params.append(pool)
        return list(self.db.query(sql + " ORDER BY number", params))

    def number_history(self, number: str, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT at, from_state, to_state, pool, session_id, reason FROM number_state_log"
                                  " WHERE number = ? ORDER BY id DESC LIMIT ?", [number, limit]))

    def session(self, session_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM visitor_sessions WHERE id = ?", [session_id]))
        if not rows:
            return None
        row = dict(rows[0])
        row.pop("token_hash")
        for key in ("pages", "device", "vars"):
            row[key] = json.loads(row[key]) if row[key] else None
        return row
