"""SQLite rows of test accounts created through the API/CLI, security events and bans (schema migration 3).

Synchronous and parameterised; the AccountManager runs it on its own thread and connection.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import sqlite_utils

from ari_app.accounts.model import AccountError, AccountSpec
from storage.db import utcnow


class AccountStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn = db.conn

    # --- accounts --------------------------------------------------------------------------------------------

    def list_accounts(self) -> list[AccountSpec]:
        rows = self.conn.execute("SELECT username, password_digest, caller_number, caller_name, headers, created_at "
                                 "FROM test_accounts ORDER BY username").fetchall()
        return [AccountSpec(username=r[0], password_digest=r[1], caller_number=r[2], caller_name=r[3] or "",
                            headers=json.loads(r[4]) if r[4] else {}, source="api", created_at=r[5]) for r in rows]

    def add_account(self, spec: AccountSpec) -> AccountSpec:
        created = spec.created_at or utcnow()
        try:
            with self.conn:
                self.conn.execute(
                    "INSERT INTO test_accounts (username, password_digest, caller_number, caller_name, headers, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [spec.username, spec.password_digest, spec.caller_number, spec.caller_name,
                     json.dumps(spec.headers) if spec.headers else None, created])
        except sqlite3.IntegrityError:
            raise AccountError("username", f"account {spec.username!r} already exists", status=409) from None
        return AccountSpec(**{**spec.__dict__, "source": "api", "created_at": created})

    def remove_account(self, username: str) -> bool:
        with self.conn:
            return self.conn.execute("DELETE FROM test_accounts WHERE username = ?", [username]).rowcount > 0

    # --- security events and bans ----------------------------------------------------------------------------

    def add_security_event(self, *, at: str, event: str, address: str | None, account: str | None,
                           service: str | None, details: dict[str, Any] | None) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO security_events (at, event, address, account, service, details) "
                              "VALUES (?, ?, ?, ?, ?, ?)",
                              [at, event, address, account, service, json.dumps(details) if details else None])

    def list_security_events(self, *, address: str | None = None, event: str | None = None,
                             limit: int = 100) -> list[dict[str, Any]]:
        where, params = [], []
        if address:
            where.append("address = ?")
            params.append(address)
        if event:
            where.append("event = ?")
            params.append(event)
        sql = "SELECT id, at, event, address, account, service, details FROM security_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.conn.execute(sql, [*params, limit]).fetchall()
        return [{"id": r[0], "at": r[1], "event": r[2], "address": r[3], "account": r[4], "service": r[5],
                 "details": json.loads(r[6]) if r[6] else None} for r in rows]

    def add_ban(self, address: str, *, until: str, failures: int, reason: str) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO security_bans (address, banned_at, until, failures, reason) "
                              "VALUES (?, ?, ?, ?, ?)", [address, utcnow(), until, failures, reason])

    def remove_ban(self, address: str) -> bool:
        with self.conn:
            return self.conn.execute("DELETE FROM security_bans WHERE address = ?", [address]).rowcount > 0

    def list_bans(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT address, banned_at, until, failures, reason FROM security_bans "
                                 "ORDER BY banned_at").fetchall()
        return [{"address": r[0], "banned_at": r[1], "until": r[2], "failures": r[3], "reason": r[4]} for r in rows]

    def expire_bans(self, now: str) -> list[str]:
        with self.conn:
            expired = [r[0] for r in self.conn.execute("SELECT address FROM security_bans WHERE until <= ?", [now])]
            self.conn.execute("DELETE FROM security_bans WHERE until <= ?", [now])
        return expired
