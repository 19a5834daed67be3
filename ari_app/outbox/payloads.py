"""What an outbox item carries and what each kind of sink receives. Pure functions, no I/O.

The stored payload is a snapshot of the call taken when the event happened (``outbox_payload``), so a
retry hours later sends what was true then, and every sink renders its own body from the same snapshot.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from storage.db import parse_time

# The call fields a webhook receives; a field missing from a record is sent as None, so receivers always see
# the same keys. ``campaign`` is Ringpool's campaign (the tracking number's), ``ad_campaign`` the visit's
# utm_campaign.
CALL_FIELDS = (
    "id", "is_test", "campaign", "pool", "dialed_number", "extension", "caller_number", "caller_name",
    "repeat_caller", "destination", "trunk", "disposition", "decision", "decision_reasons", "spam",
    "arrived_at", "answered_at", "destination_answered_at", "bridged_at", "ended_at",
    "ring_seconds", "talk_seconds", "total_seconds", "hangup_cause", "hangup_side",
    "session_id", "ga_client_id", "gclid", "source", "medium", "ad_campaign", "keyword", "landing_page",
    "referrer", "attribution_method", "attribution_confidence",
    "converted_at", "conversion_name", "conversion_value", "conversion_currency",
)

# Which timestamp of the record an event happened at, first one set wins. "Answered" means a person (the
# destination) picked up, not Ringpool answering the caller to play a greeting.
_OCCURRED_AT = {
    "call.started": ("arrived_at",),
    "call.answered": ("destination_answered_at", "bridged_at", "answered_at"),
    "call.completed": ("ended_at",),
    "call.converted": ("converted_at",),
}

GA4_NAME_MAX = 40
GA4_VALUE_MAX = 100
GA4_MAX_AGE = timedelta(hours=72)  # the Measurement Protocol drops events timestamped further back


def occurred_at(event: str, call: dict[str, Any]) -> str | None:
    """When ``event`` happened according to the record, or None (then the caller uses "now")."""
    return next((call[k] for k in _OCCURRED_AT.get(event, ()) if call.get(k)), None)


def outbox_payload(call: dict[str, Any], at: str) -> dict[str, Any]:
    """The sink-independent snapshot stored on each outbox row."""
    return {"occurred_at": at, "call": {name: call.get(name) for name in CALL_FIELDS}}


def webhook_body(outbox_id: int, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``id`` is the same on every retry: receivers de-duplicate on it (also sent as X-Ringpool-Delivery)."""
    return {"id": outbox_id, "event": event, "occurred_at": payload["occurred_at"], "call": payload["call"]}


def ga4_event_name(event: str) -> str:
    """``call.completed`` -> ``ringpool_call_completed``: GA4 allows letters, digits and _, at most 40."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"ringpool_{event}")[:GA4_NAME_MAX]


def ga4_skip_reason(payload: dict[str, Any], now: datetime) -> str | None:
    """Why this item must not go to GA4 at all (retrying would never help), or None."""
    call = payload["call"]
    if not call.get("ga_client_id"):
        return "no ga_client_id (the caller's visit was not tied to a GA client)"
    if call.get("is_test"):
        return "test call"
    if now - parse_time(payload["occurred_at"]) > GA4_MAX_AGE:
        return "older than the 72 hours GA4 accepts"
    return None


def _ga4_value(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return str(value)[:GA4_VALUE_MAX]


def ga4_body(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Measurement Protocol request body. No caller number or name: GA4 forbids personal data."""
    call = payload["call"]
    params = {
        "call_id": call.get("id"), "campaign": call.get("ad_campaign"), "source": call.get("source"),
        "medium": call.get("medium"), "term": call.get("keyword"), "landing_page": call.get("landing_page"),
        "tracking_campaign": call.get("campaign"),
        "attribution_method": call.get("attribution_method"), "disposition": call.get("disposition"),
        "duration": call.get("talk_seconds"), "ring_seconds": call.get("ring_seconds"),
        "total_seconds": call.get("total_seconds"),
    }
    if event == "call.converted":
        params |= {"conversion_name": call.get("conversion_name"), "value": call.get("conversion_value"),
                   "currency": call.get("conversion_currency")}
    moment = parse_time(payload["occurred_at"])
    return {
        "client_id": str(call["ga_client_id"]),
        "timestamp_micros": int(moment.timestamp()) * 1_000_000 + moment.microsecond,
        "events": [{"name": ga4_event_name(event),
                    "params": {k: _ga4_value(v) for k, v in params.items() if v is not None}}],
    }
