"""Call records: written when a call arrives and updated at each step, so a crash loses nothing.

All methods are synchronous and parameterised; the service calls them through storage.async_store so
SQLite never runs on the event loop.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import sqlite_utils

from storage.db import seconds_between, utcnow

FINAL_DISPOSITIONS = ("rejected", "abandoned", "no_answer", "busy", "failed", "completed", "unavailable")


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


@dataclass
class CallFilter:
    campaign: str | None = None
    number: str | None = None  # dialed (tracking) number or caller number
    disposition: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 50
    cursor: str | None = None


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


class CallStore:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    # --- writing -------------------------------------------------------------------------------------

    def create_call(self, call: NewCall) -> None:
        row = asdict(call) | {"updated_at": utcnow()}
        with self.db.conn:
            self.db.conn.execute("BEGIN")
            self.db["calls"].insert(row, pk="id")
            self.add_leg(call.id, call.inbound_channel, "inbound", created_at=call.arrived_at)
            self.add_event(call.id, "arrived", {"channel": call.inbound_channel}, at=call.arrived_at)

    def update_call(self, call_id: str, **fields: Any) -> None:
        for key in ("decision_reasons",):
            if key in fields and not isinstance(fields[key], (str, type(None))):
                fields[key] = json.dumps(fields[key])
        fields["updated_at"] = utcnow()
        self.db["calls"].update(call_id, fields)

    def finish_call(self, call_id: str, *, disposition: str, ended_at: str | None = None,
                    hangup_cause: int | None = None, hangup_cause_text: str | None = None,
                    hangup_side: str | None = None, end_observed: str = "live") -> None:
        """Finalise once: durations are derived from the stored timestamps so they always agree."""
        if disposition not in FINAL_DISPOSITIONS:
            raise ValueError(f"unknown disposition {disposition!r}")
        row = self.db["calls"].get(call_id)
        if row["ended_at"]:
            return
        ended_at = ended_at or utcnow()
        first_dial = self.db.execute("SELECT MIN(created_at) FROM call_legs WHERE call_id = ? AND role = 'outbound'",
                                     [call_id]).fetchone()[0]
        self.update_call(
            call_id, state="ended", disposition=disposition, ended_at=ended_at,
            hangup_cause=hangup_cause, hangup_cause_text=hangup_cause_text, hangup_side=hangup_side,
            end_observed=end_observed,
            ring_seconds=seconds_between(first_dial, row["destination_answered_at"] or ended_at),
            talk_seconds=seconds_between(row["bridged_at"], ended_at),
            total_seconds=seconds_between(row["arrived_at"], ended_at),
        )
        self.add_event(call_id, "ended", {"disposition": disposition, "cause": hangup_cause,
                                          "side": hangup_side, "observed": end_observed}, at=ended_at)

    def add_leg(self, call_id: str, channel_id: str, role: str, *, destination: str | None = None,
                dial_string: str | None = None, created_at: str | None = None) -> None:
        self.db["call_legs"].insert({
            "channel_id": channel_id, "call_id": call_id, "role": role, "destination": destination,
            "dial_string": dial_string, "created_at": created_at or utcnow(),
        }, pk="channel_id", replace=True)

    def update_leg(self, channel_id: str, **fields: Any) -> None:
        self.db["call_legs"].update(channel_id, fields)

    def add_event(self, call_id: str, kind: str, data: dict[str, Any] | None = None, *, at: str | None = None) -> None:
        self.db["call_events"].insert({"call_id": call_id, "at": at or utcnow(), "kind": kind,
                                       "data": json.dumps(data, default=str) if data else None})

    # --- reading -------------------------------------------------------------------------------------

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM calls WHERE id = ?", [call_id]))
        if not rows:
            return None
        call = _decode_call(rows[0])
        call["legs"] = list(self.db.query("SELECT * FROM call_legs WHERE call_id = ? ORDER BY created_at", [call_id]))
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
        if f.number:
            where.append("(dialed_number = ? OR caller_number = ?)")
            params += [f.number, f.number]
        if f.disposition:
            where.append("disposition = ?")
            params.append(f.disposition)
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


def _decode_call(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    if row.get("decision_reasons"):
        row["decision_reasons"] = json.loads(row["decision_reasons"])
    return row
