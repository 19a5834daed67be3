"""Turning a call event into outbox rows: the one place the call path needs to touch."""

from __future__ import annotations

from typing import Any, Mapping

import sqlite_utils

from ari_app.outbox.model import EVENTS, Sink, sinks_for
from ari_app.outbox.payloads import occurred_at, outbox_payload
from storage.db import utcnow
from storage.outbox import OutboxStore


def enqueue_call_event(db: sqlite_utils.Database, sinks: Mapping[str, Sink], event: str, call: dict[str, Any], *,
                       occurred: str | None = None) -> int:
    """Store ``event`` for every sink subscribed to it; returns the number of rows. Synchronous (run it on
    the storage thread); inside an open transaction it joins it, so the event lands with the call step."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    names = sinks_for(sinks, event)
    if not names:
        return 0
    at = occurred or occurred_at(event, call) or utcnow()
    return OutboxStore(db).enqueue(event, call.get("id"), outbox_payload(call, at), names)
