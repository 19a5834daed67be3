"""A caller's earlier calls, read when a call arrives (quality, IVR conditions), and the call's settlement
written when it ends."""

from __future__ import annotations

import json
from typing import Any, Callable

import sqlite_utils

HISTORY_LIMIT = 100  # the newest earlier calls that count; older ones change no decision


def caller_calls(db: sqlite_utils.Database, caller: str | None, before: str, since: str,
                 exclude: str) -> tuple[list[str], bool]:
    """When this caller called since ``since``, newest first, and whether any of their calls ever converted
    (an existing customer)."""
    if not caller:
        return [], False
    rows = db.execute("SELECT arrived_at FROM calls WHERE caller_number = ? AND arrived_at >= ?"
                      " AND arrived_at < ? AND id != ? ORDER BY arrived_at DESC LIMIT ?",
                      [caller, since, before, exclude, HISTORY_LIMIT]).fetchall()
    known = db.execute("SELECT 1 FROM calls WHERE caller_number = ? AND converted_at IS NOT NULL AND id != ?"
                       " LIMIT 1", [caller, exclude]).fetchone() is not None
    return [r[0] for r in rows], known


def settle(db: sqlite_utils.Database, call_id: str,
           compute: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read the finished call, let ``compute`` work out its final quality and payout, and store them: one
    transaction, so a conversion posted at the same moment is never lost between the read and the write."""
    with db.conn:
        db.conn.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT * FROM calls WHERE id = ?", [call_id]).fetchone()
        if row is None:
            return {}
        columns = [d[0] for d in db.execute("SELECT * FROM calls LIMIT 0").description]
        fields = compute(dict(zip(columns, row)))
        if fields:
            values = [json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else v for v in fields.values()]
            db.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            [*values, call_id])
        return fields
