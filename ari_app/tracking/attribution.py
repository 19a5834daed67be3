"""Who produced this call: the visitor session, ad and keyword behind a dialed number, with a confidence.

Runs on the storage thread when a call arrives (before the pre-answer decision, which needs the number's state),
and again when an extension-site caller enters an extension. The order (issue #4, seed 004):
  1. an extension entered by the caller: that visitor's session (high), or a reserved print/QR source (high);
  2. the dialed number's live lease: its session (high; medium when visitors sharing a context share it),
     unless this caller earlier called this same number from another session: then that one (caller history,
     medium), because a late call after the number was reassigned is the likelier story;
  3. no live lease (overflow, cool-down, idle, expired): the caller's earlier sessions in this campaign
     (caller history, medium), then the session that last held the number recently (low);
  4. the campaign alone (none). A campaign's own static number identifies its source outright (high).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

import sqlite_utils

from ari_app.tracking.model import Pool
from ari_app.tracking.store import LEASED
from storage.db import format_time, parse_time

HISTORY_WINDOW = timedelta(days=90)  # how far back a caller's earlier sessions count
NO_CALLER = frozenset({"", "anonymous", "restricted", "unknown", "unavailable", "private"})
SEARCH_ENGINES = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.")


@dataclass
class NumberInfo:
    """The dialed number as the database knows it at the moment the call arrives."""

    number: str
    campaign: str | None
    pool: str | None
    role: str
    state: str
    active: bool


@dataclass
class Attribution:
    method: str  # extension, reserved_extension, lease, caller_history, recent_lease, static_number, campaign, none
    confidence: str  # high, medium, low, none
    session: dict[str, Any] | None = None
    source: str | None = None  # a reserved extension's source name
    details: dict[str, Any] = field(default_factory=dict)

    def call_fields(self) -> dict[str, Any]:
        """The call record's attribution columns."""
        s = self.session or {}
        fields: dict[str, Any] = {
            "attribution_method": self.method, "attribution_confidence": self.confidence,
            "attribution_details": json.dumps(self.details) if self.details else None,
            "session_id": s.get("id"),
            "source": self.source or traffic_source(s), "medium": traffic_medium(s) if s else None,
            "ad_campaign": s.get("utm_campaign"), "keyword": s.get("utm_term") or s.get("keyword"),
            "landing_page": s.get("landing_page"), "referrer": s.get("referrer"), "gclid": s.get("gclid"),
            "ga_client_id": s.get("ga_client_id"),
        }
        if s:
            fields["marketing"] = json.dumps({k: s.get(k) for k in (
                "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid", "msclkid",
                "keyword", "p1", "p2", "p3", "device_type", "pages_viewed", "current_page", "created_at")}
                | {"vars": json.loads(s["vars"]) if s.get("vars") else {}})
        return fields


@dataclass
class Arrival:
    number: NumberInfo | None
    attribution: Attribution
    client_id: int | None
    repeat_caller: bool


def traffic_source(s: Mapping[str, Any]) -> str | None:
    if not s:
        return None
    return s.get("utm_source") or ("google" if s.get("gclid") else None) or s.get("referrer_host") or "direct"


def traffic_medium(s: Mapping[str, Any]) -> str:
    if s.get("utm_medium"):
        return str(s["utm_medium"])
    if s.get("gclid") or s.get("msclkid"):
        return "cpc"
    host = s.get("referrer_host") or ""
    if not host:
        return "(none)"
    return "organic" if any(engine in host for engine in SEARCH_ENGINES) else "referral"


class CallAttribution:
    def __init__(self, db: sqlite_utils.Database, pools: Mapping[str, Pool]) -> None:
        self.db = db
        self.conn = db.conn
        self.pools = pools

    def arrive(self, call_id: str, dialed: str | None, caller: str | None, now: str) -> Arrival:
        """Look up the dialed number, attribute the call, count it on the number and the caller's client
        record, and store the result on the call. One transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute("SELECT number, campaign, pool, role, state, active, lease_key, session_id"
                                    " FROM tracking_numbers WHERE number = ?", [dialed or ""]).fetchone()
            number = NumberInfo(row[0], row[1], row[2], row[3], row[4], bool(row[5])) if row else None
            caller = caller if caller and caller.lower() not in NO_CALLER else None
            attribution = self._attribute(number, row[6] if row else None, caller, dialed, now)
            client_id, repeat = self._client(caller, attribution, now)
            if number is not None:
                self.conn.execute("UPDATE tracking_numbers SET lease_calls = lease_calls + (state = ?),"
                                  " last_call_at = ? WHERE number = ?", [LEASED, now, number.number])
            fields = attribution.call_fields() | {"client_id": client_id, "repeat_caller": int(repeat),
                                                  "pool": number.pool if number else None,
                                                  "number_state": number.state if number else None}
            self.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                              [*fields.values(), call_id])
            return Arrival(number, attribution, client_id, repeat)

    def _attribute(self, number: NumberInfo | None, lease_key: str | None, caller: str | None, dialed: str | None,
                   now: str) -> Attribution:
        if number is None or number.campaign is None:
            return Attribution("none", "none")
        if number.role == "static":
            return Attribution("static_number", "high", source=number.campaign)
        since = format_time(parse_time(now) - HISTORY_WINDOW)
        if number.state == LEASED and lease_key:
            sharing = self.db.execute("SELECT COUNT(*) FROM visitor_sessions WHERE pool = ? AND lease_key = ?",
                                      [number.pool, lease_key]).fetchone()[0]
            holder = self._one("SELECT * FROM visitor_sessions WHERE pool = ? AND lease_key = ?"
                               " ORDER BY last_seen_at DESC LIMIT 1", [number.pool, lease_key])
            earlier = self._earlier_session(caller, since, dialed=dialed)
            if earlier and holder and earlier["id"] != holder["id"] and earlier.get("lease_key") != lease_key:
                return Attribution("caller_history", "medium", earlier,
                                   details={"reason": "this caller called this number earlier from another visit",
                                            "lease_session": holder["id"]})
            if holder:
                return Attribution("lease", "high" if sharing <= 1 else "medium", holder,
                                   details={"sessions_sharing": sharing} if sharing > 1 else {})
        earlier = self._earlier_session(caller, since, campaign=number.campaign)
        if earlier:
            return Attribution("caller_history", "medium", earlier,
                               details={"reason": f"no live lease on the number ({number.role}, {number.state})"})
        pool = self.pools.get(number.pool or "")
        if number.role == "pool" and pool is not None:
            last = self.db.execute("SELECT session_id, at FROM number_state_log WHERE number = ? AND to_state = ?"
                                   " AND session_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                                   [number.number, LEASED]).fetchone()
            window = format_time(parse_time(now) - timedelta(seconds=pool.lease_ttl + pool.cooldown + 86400))
            if last:
                session = self._one("SELECT * FROM visitor_sessions WHERE id = ? AND last_seen_at >= ?",
                                    [last[0], window])
                if session:
                    return Attribution("recent_lease", "low", session,
                                       details={"reason": f"the number is {number.state}; its last visitor"})
        if number.role == "extension":
            return Attribution("campaign", "none", details={"reason": "no extension entered (yet)"})
        return Attribution("campaign", "none", details={"reason": f"{number.role} number, {number.state}"})

    def _earlier_session(self, caller: str | None, since: str, *, dialed: str | None = None,
                         campaign: str | None = None) -> dict[str, Any] | None:
        if not caller:
            return None
        sql = ("SELECT s.* FROM calls c JOIN visitor_sessions s ON s.id = c.session_id WHERE c.caller_number = ?"
               " AND c.arrived_at >= ? AND c.attribution_method IN ('lease', 'extension')")
        params: list[Any] = [caller, since]
        if dialed is not None:
            sql += " AND c.dialed_number = ?"
            params.append(dialed)
        if campaign is not None:
            sql += " AND s.campaign = ?"
            params.append(campaign)
        return self._one(sql + " ORDER BY c.arrived_at DESC LIMIT 1", params)

    def _one(self, sql: str, params: list[Any]) -> dict[str, Any] | None:
        rows = list(self.db.query(sql, params))
        return rows[0] if rows else None

    def _client(self, caller: str | None, attribution: Attribution, now: str) -> tuple[int | None, bool]:
        """One client record per caller number: a returning caller is recognised across calls and sessions."""
        if not caller:
            return None, False
        session_id = attribution.session["id"] if attribution.session else None
        row = self.conn.execute("SELECT id, calls FROM clients WHERE caller_number = ?", [caller]).fetchone()
        if row is None:
            cur = self.conn.execute("INSERT INTO clients (caller_number, first_call_at, last_call_at, calls,"
                                    " last_session_id) VALUES (?, ?, ?, 1, ?)", [caller, now, now, session_id])
            return cur.lastrowid, False
        self.conn.execute("UPDATE clients SET calls = calls + 1, last_call_at = ?,"
                          " last_session_id = COALESCE(?, last_session_id) WHERE id = ?", [now, session_id, row[0]])
        return row[0], row[1] > 0

    def enter_extension(self, call_id: str, pool: Pool, extension: str, now: str) -> Attribution | None:
        """The caller entered an extension: attribute to its visitor, or to a reserved print/QR source."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            source = pool.reserved_source(extension)
            if source is not None:
                attribution = Attribution("reserved_extension", "high", source=source,
                                          details={"extension": extension})
            else:
                session = self._one("SELECT s.* FROM extension_leases e JOIN visitor_sessions s ON s.id = e.session_id"
                                    " WHERE e.pool = ? AND e.extension = ?",
                                    [pool.name, int(extension) if extension.isdigit() else -1])
                if session is None:
                    return None
                attribution = Attribution("extension", "high", session, details={"extension": extension})
            fields = attribution.call_fields() | {"extension": extension}
            self.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                              [*fields.values(), call_id])
            if attribution.session:
                self.conn.execute("UPDATE clients SET last_session_id = ? WHERE id ="
                                  " (SELECT client_id FROM calls WHERE id = ?)", [attribution.session["id"], call_id])
            return attribution
