"""Call records: written when a call arrives and updated at each step, so a crash loses nothing.

All methods are synchronous and parameterised; the service calls them through storage.async_store so
SQLite never runs on the event loop.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import sqlite_utils

from storage.db import seconds_between, utcnow

DETECTION_COLUMNS = frozenset({"fax_detected", "modem_detected", "voice_detected", "silence_detected",
                               "machine_dtmf", "dtmf_digits", "transcript", "keywords", "amd_result"})
FINAL_DISPOSITIONS = ("rejected", "abandoned", "no_answer", "busy", "failed", "completed", "unavailable", "voicemail",
                      "callback")
# Columns stored as JSON text that the API returns decoded (older JSON columns stay text for compatibility).
JSON_FIELDS = ("decision_reasons", "ivr_path", "ivr_answers", "tags", "quality_factors", "route_reasons", "bids",
               "payout_details")


@dataclass
class NewCall:
    """What is known when a call arrives, before any decision."""

    id: str
    inbound_channel: str
    arrived_at: str
    caller_number: str | None = None
    caller_name: str | None = None
    dialed_number: str | None = None
    trunk: str | None = None
    p_asserted_identity: str | None = None
    privacy: str | None = None
    diversion: str | None = None
    p_charge_info: str | None = None
    state: str = "arrived"
    is_test: int = 0
    test_account: str | None = None  # the softphone test account that placed the call
    direction: str = "inbound"  # click_to_call and callback: Ringpool called the visitor first


@dataclass
class CallFilter:
    campaign: str | None = None
    campaigns: tuple[str, ...] | None = None  # only these campaigns' calls (a publisher token); None: no limit
    number: str | None = None  # dialed (tracking) number or caller number
    disposition: str | None = None
    test: bool | None = None  # True: only test calls, False: only real calls (reports), None: both
    spam: bool | None = None  # True: only spam, False: without spam (reports that exclude it), None: both
    source: str | None = None  # traffic source of the attributed visit (utm_source, referrer host, ...)
    keyword: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 50
    cursor: str | None = None
    scores: tuple[tuple[str, str, int], ...] = ()  # (quality or score1, >= or <=, bound): score ranges


@dataclass
class CallPage:
    calls: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(arrived_at: str, call_id: str) -> str:
    return base64.urlsafe_b64encode(f"{arrived_at}|{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Raises ValueError on anything that is not a cursor this module made."""
    padded = cursor + "=" * (-len(cursor) % 4)
    arrived_at, sep, call_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    if not sep or not arrived_at or not call_id:
        raise ValueError("malformed cursor")
    return arrived_at, call_id


@dataclass
class NewLeg:
    channel_id: str
    role: str
    destination: str | None = None
    dial_string: str | None = None
    created_at: str | None = None


class CallStore:
    """Writes are plain parameterised SQL on one connection (sqlite-utils' insert/update introspect the
    schema on every call, too slow for the call path); column names are checked against the schema."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn = db.conn
        self._columns = {table: {row[1] for row in self.conn.execute(f"PRAGMA table_info({table})")}
                         for table in ("calls", "call_legs")}
        # Called inside the transaction of a call's milestone with (event, call_id), so what they store (the
        # outbox's rows) commits or rolls back with the step itself: nothing is lost on a crash.
        self.observers: list[Callable[[str, str], None]] = []

    def _notify(self, event: str, call_id: str) -> None:
        for observer in self.observers:
            observer(event, call_id)

    def call_row(self, call_id: str) -> dict[str, Any] | None:
        """The call's own fields, without legs and events."""
        rows = list(self.db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
        return _decode_call(rows[0]) if rows else None

    def _assignments(self, table: str, fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - self._columns[table]
        if unknown:
            raise ValueError(f"unknown {table} column(s): {', '.join(sorted(unknown))}")
        return ", ".join(f"{name} = ?" for name in fields), [_sql_value(v) for v in fields.values()]

    # --- writing -------------------------------------------------------------------------------------

    def create_call(self, call: NewCall) -> None:
        row = asdict(call) | {"updated_at": utcnow()}
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                              list(row.values()))
            self._insert_leg(call.id, NewLeg(call.inbound_channel, "inbound", created_at=call.arrived_at))
            self._insert_event(call.id, "arrived", {"channel": call.inbound_channel}, call.arrived_at)

    def apply(self, call_id: str, *, call: dict[str, Any] | None = None, new_legs: list[NewLeg] = (),
              legs: dict[str, dict[str, Any]] | None = None,
              events: list[tuple[str, str, dict[str, Any] | None]] = ()) -> None:
        """One step of a call in one transaction: call fields, new legs, leg fields, events (kind, at, data)."""
        with self.conn:
            self.conn.execute("BEGIN")
            if call:
                self._update_call(call_id, call)
            for leg in new_legs:
                self._insert_leg(call_id, leg)
            for channel_id, fields in (legs or {}).items():
                self._update_leg(channel_id, fields)
            for kind, at, data in events:
                self._insert_event(call_id, kind, data, at)
            if call and call.get("decision") == "proceed":
                self._notify("call.started", call_id)
            if call and call.get("bridged_at"):
                self._notify("call.answered", call_id)
            if call and call.get("spam") == 1:
                self._notify("call.spam", call_id)

    def update_call(self, call_id: str, **fields: Any) -> None:
        self.apply(call_id, call=fields)

    def add_leg(self, call_id: str, channel_id: str, role: str, *, destination: str | None = None,
                dial_string: str | None = None, created_at: str | None = None) -> None:
        self.apply(call_id, new_legs=[NewLeg(channel_id, role, destination, dial_string, created_at)])

    def update_leg(self, channel_id: str, **fields: Any) -> None:
        with self.conn:
            self._update_leg(channel_id, fields)

    def add_event(self, call_id: str, kind: str, data: dict[str, Any] | None = None, *, at: str | None = None) -> None:
        with self.conn:
            self._insert_event(call_id, kind, data, at or utcnow())

    def finish_call(self, call_id: str, *, disposition: str, ended_at: str | None = None,
                    hangup_cause: int | None = None, hangup_cause_text: str | None = None,
                    hangup_side: str | None = None, end_observed: str = "live",
                    legs: dict[str, dict[str, Any]] | None = None) -> None:
        """Finalise once, with the legs' last fields; durations derive from the stored timestamps."""
        if disposition not in FINAL_DISPOSITIONS:
            raise ValueError(f"unknown disposition {disposition!r}")
        with self.conn:
            self.conn.execute("BEGIN")
            row = self.conn.execute(
                "SELECT arrived_at, destination_answered_at, bridged_at, ended_at FROM calls WHERE id = ?",
                [call_id]).fetchone()
            if row is None:
                raise KeyError(f"no call {call_id}")
            arrived_at, destination_answered_at, bridged_at, already_ended = row
            if already_ended:
                return
            for channel_id, fields in (legs or {}).items():
                self._update_leg(channel_id, fields)
            ended_at = ended_at or utcnow()
            first_dial = self.conn.execute(
                "SELECT MIN(created_at) FROM call_legs WHERE call_id = ? AND role = 'outbound'", [call_id]).fetchone()[0]
            self._update_call(call_id, {
                "state": "ended", "disposition": disposition, "ended_at": ended_at,
                "hangup_cause": hangup_cause, "hangup_cause_text": hangup_cause_text, "hangup_side": hangup_side,
                "end_observed": end_observed,
                "ring_seconds": seconds_between(first_dial, destination_answered_at or ended_at),
                "talk_seconds": seconds_between(bridged_at, ended_at),
                "total_seconds": seconds_between(arrived_at, ended_at),
            })
            self._insert_event(call_id, "ended", {"disposition": disposition, "cause": hangup_cause,
                                                  "side": hangup_side, "observed": end_observed}, ended_at)
            self._notify("call.completed", call_id)

    def mark(self, call_id: str, *, conversion: dict[str, Any] | None = None, spam: bool | None = None,
             at: str | None = None) -> dict[str, Any] | None:
        """Later facts about a call, posted through the API: a conversion (name, value, currency) or a spam
        verdict. Returns the updated call, or None if there is no such call."""
        at = at or utcnow()
        with self.conn:
            self.conn.execute("BEGIN")
            if self.conn.execute("SELECT 1 FROM calls WHERE id = ?", [call_id]).fetchone() is None:
                return None
            if conversion is not None:
                self._update_call(call_id, {"converted_at": conversion.get("at") or at,
                                            "conversion_name": conversion.get("name"),
                                            "conversion_value": conversion.get("value"),
                                            "conversion_currency": conversion.get("currency")})
                self._insert_event(call_id, "converted", conversion, at)
                self._notify("call.converted", call_id)
            if spam is not None:
                self._update_call(call_id, {"spam": int(spam)})
                self._insert_event(call_id, "spam" if spam else "not_spam", None, at)
                if spam:
                    self._notify("call.spam", call_id)
        return self.call_row(call_id)

    def _update_call(self, call_id: str, fields: dict[str, Any]) -> None:
        sets, values = self._assignments("calls", fields | {"updated_at": utcnow()})
        self.conn.execute(f"UPDATE calls SET {sets} WHERE id = ?", [*values, call_id])

    def _update_leg(self, channel_id: str, fields: dict[str, Any]) -> None:
        sets, values = self._assignments("call_legs", fields)
        self.conn.execute(f"UPDATE call_legs SET {sets} WHERE channel_id = ?", [*values, channel_id])

    def _insert_leg(self, call_id: str, leg: NewLeg) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO call_legs (channel_id, call_id, role, destination, dial_string, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [leg.channel_id, call_id, leg.role, leg.destination, leg.dial_string, leg.created_at or utcnow()])

    def _insert_event(self, call_id: str, kind: str, data: dict[str, Any] | None, at: str) -> None:
        self.conn.execute("INSERT INTO call_events (call_id, at, kind, data) VALUES (?, ?, ?, ?)",
                          [call_id, at, kind, json.dumps(data, default=str) if data else None])

    def add_detection(self, call_id: str, *, leg: str, source: str, kind: str, start: float | None,
                      duration: float | None, details: dict[str, Any], flags: dict[str, int],
                      appends: dict[str, str], values: dict[str, Any], at: str | None = None) -> None:
        """Log a detection and fold it into the call's flags, in one transaction."""
        for column in (*flags, *appends, *values):
            if column not in DETECTION_COLUMNS:
                raise ValueError(f"not a detection column: {column}")
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT INTO call_detections (call_id, leg, source, kind, start_s, duration_s, at, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [call_id, leg, source, kind, start, duration, at or utcnow(), json.dumps(details, default=str)])
            sets = [f"{c} = 1" for c in flags] + [f"{c} = COALESCE({c}, '') || ?" for c in appends]
            sets += [f"{c} = ?" for c in values]
            if sets:
                self.conn.execute(f"UPDATE calls SET {', '.join(sets)} WHERE id = ?",
                                     [*appends.values(), *values.values(), call_id])

    # --- reading -------------------------------------------------------------------------------------

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
        if not rows:
            return None
        call = _decode_call(rows[0])
        call["legs"] = list(self.db.query("SELECT * FROM call_legs WHERE call_id = ? ORDER BY created_at", [call_id]))
        call["detections"] = [
            {**d, "details": json.loads(d["details"]) if d["details"] else None}
            for d in self.db.query("SELECT leg, source, kind, start_s, duration_s, at, details FROM call_detections "
                                   "WHERE call_id = ? ORDER BY id", [call_id])
        ]
        call["events"] = [
            {**e, "data": json.loads(e["data"]) if e["data"] else None}
            for e in self.db.query("SELECT id, at, kind, data FROM call_events WHERE call_id = ? ORDER BY id",
                                   [call_id])
        ]
        return call

    def list_calls(self, f: CallFilter) -> CallPage:
        where, params = [], []
        if f.campaign:
            where.append("campaign = ?")
            params.append(f.campaign)
        if f.campaigns is not None:  # an empty tuple sees nothing (never every call)
            where.append(f"campaign IN ({', '.join('?' * len(f.campaigns))})" if f.campaigns else "0")
            params += list(f.campaigns)
        if f.number:
            where.append("(dialed_number = ? OR caller_number = ?)")
            params += [f.number, f.number]
        if f.disposition:
            where.append("disposition = ?")
            params.append(f.disposition)
        if f.test is not None:
            where.append("is_test = ?")
            params.append(1 if f.test else 0)
        if f.spam is not None:
            where.append("spam = ?")
            params.append(1 if f.spam else 0)
        for column in ("source", "keyword"):
            if getattr(f, column) is not None:
                where.append(f"{column} = ?")
                params.append(getattr(f, column))
        for column, op, bound in f.scores:
            if column not in ("quality", "score1") or op not in (">=", "<="):
                raise ValueError(f"cannot filter {column} {op}")
            where.append(f"{column} {op} ?")
            params.append(bound)
        if f.since:
            where.append("arrived_at >= ?")
            params.append(f.since)
        if f.until:
            where.append("arrived_at < ?")
            params.append(f.until)
        if f.cursor:
            arrived_at, call_id = decode_cursor(f.cursor)
            where.append("(arrived_at, id) < (?, ?)")
            params += [arrived_at, call_id]
        sql = "SELECT * FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY arrived_at DESC, id DESC LIMIT ?"
        rows = [_decode_call(r) for r in self.db.query(sql, params + [f.limit + 1])]
        page = CallPage(calls=rows[: f.limit])
        if len(rows) > f.limit:
            last = page.calls[-1]
            page.next_cursor = encode_cursor(last["arrived_at"], last["id"])
        return page

    def open_calls(self) -> list[dict[str, Any]]:
        """Calls not yet finalised: what a restarted app must adopt or close."""
        calls = [_decode_call(r) for r in self.db.query("SELECT * FROM calls WHERE ended_at IS NULL ORDER BY arrived_at")]
        for call in calls:
            call["legs"] = list(self.db.query("SELECT * FROM call_legs WHERE call_id = ?", [call["id"]]))
        return calls

    def call_id_for_channel(self, channel_id: str) -> str | None:
        row = self.db.execute("SELECT call_id FROM call_legs WHERE channel_id = ?", [channel_id]).fetchone()
        return row[0] if row else None

    def counts_by(self, column: str) -> dict[str, int]:
        """Finished calls grouped by ``disposition`` or ``decision`` (for metrics)."""
        if column not in ("disposition", "decision"):
            raise ValueError(f"cannot group by {column!r}")
        rows = self.conn.execute(f"SELECT {column}, COUNT(*) FROM calls WHERE {column} IS NOT NULL "
                                 f"GROUP BY {column}").fetchall()
        return {str(value): count for value, count in rows}

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    # --- catalogue from configuration ----------------------------------------------------------------

    def sync_catalog(self, destinations: Iterable[dict[str, Any]], campaigns: Iterable[dict[str, Any]],
                     numbers: Iterable[dict[str, Any]]) -> None:
        """Mirror the configured catalogue so reports can join on it; removed entries become inactive."""
        now = utcnow()
        with self.db.conn:
            self.db.conn.execute("BEGIN")
            self.db["destinations"].upsert_all([d | {"updated_at": now} for d in destinations], pk="name")
            self.db.execute("UPDATE campaigns SET active = 0")
            self.db["campaigns"].upsert_all([c | {"active": 1, "updated_at": now} for c in campaigns], pk="name")
            self.db.execute("UPDATE tracking_numbers SET active = 0")
            self.db["tracking_numbers"].upsert_all([n | {"active": 1, "updated_at": now} for n in numbers], pk="number")


def _sql_value(value: Any) -> Any:
    """Lists and mappings are stored as JSON text."""
    return json.dumps(value, default=str) if isinstance(value, (list, dict, tuple)) else value


def _decode_call(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    for name in JSON_FIELDS:
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    return row
