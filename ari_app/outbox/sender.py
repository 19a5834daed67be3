"""One delivery attempt of one outbox item, and how its answer is judged.

Webhook requests are signed Stripe-style so a receiver can check they come from Ringpool and are fresh:

    X-Ringpool-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

The receiver recomputes the HMAC over the exact bytes received, compares in constant time and rejects a
``t`` more than a few minutes away from its clock (replays). ``X-Ringpool-Delivery`` (the outbox id, also
``id`` in the body) is the same on every retry, so receivers de-duplicate on it: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aiohttp

from ari_app.outbox.model import Sink
from ari_app.outbox.payloads import ga4_body, ga4_skip_reason, webhook_body
from storage.outbox import OutboxItem

SIGNATURE_HEADER = "X-Ringpool-Signature"
EVENT_HEADER = "X-Ringpool-Event"
DELIVERY_HEADER = "X-Ringpool-Delivery"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between t= and its own clock
USER_AGENT = "Ringpool-Outbox/1"
ERROR_BODY_BYTES = 300  # of a failed answer, kept in the error

Verdict = Literal["delivered", "retry", "dead"]


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    detail: str | None = None  # the error, or for a delivered item why nothing was sent
    retry_after: float | None = None  # seconds the receiver asked us to wait (429/503 Retry-After)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, now: float, tolerance: float = SIGNATURE_TOLERANCE) -> bool:
    """The receiver's check (reference implementation, used by the tests)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, fields.get("v1", ""))


def classify(status: int) -> Verdict:
    """2xx delivered; a 4xx other than 408/429 will fail the same way again, so retrying is pointless."""
    if 200 <= status < 300:
        return "delivered"
    if 400 <= status < 500 and status not in (408, 429):
        return "dead"
    return "retry"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # the HTTP-date form: our own backoff is good enough


def _redact(text: str, sink: Sink) -> str:
    """Errors are logged and stored: never with a secret (the GA4 api_secret is in the query string)."""
    for secret in (sink.secret, sink.api_secret):
        if secret:
            text = text.replace(secret, "***")
    return text


def _request(sink: Sink, item: OutboxItem, now: datetime) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """(query params, body, headers) for one attempt."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if sink.kind == "ga4":
        params = {"measurement_id": sink.measurement_id or "", "api_secret": sink.api_secret or ""}
        return params, encode(ga4_body(item.event, item.payload)), headers
    body = encode(webhook_body(item.id, item.event, item.payload))
    headers |= {EVENT_HEADER: item.event, DELIVERY_HEADER: str(item.id)}
    if sink.secret:
        headers[SIGNATURE_HEADER] = sign(sink.secret, body, int(now.timestamp()))
    return {}, body, headers


async def deliver(session: aiohttp.ClientSession, sink: Sink, item: OutboxItem, now: datetime) -> Outcome:
    """Send once, bounded by the sink's timeout. Never raises for network or HTTP trouble."""
    if sink.kind == "ga4":
        reason = ga4_skip_reason(item.payload, now)
        if reason:
            return Outcome("delivered", f"skipped: {reason}")
    params, body, headers = _request(sink, item, now)
    try:
        async with session.post(sink.url, params=params, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=sink.timeout)) as response:
            verdict = classify(response.status)
            if verdict == "delivered":
                return Outcome("delivered")
            text = (await response.content.read(ERROR_BODY_BYTES)).decode("utf-8", "replace")
            return Outcome(verdict, _redact(f"HTTP {response.status}: {text}".strip(), sink),
                           _retry_after(response.headers.get("Retry-After")))
    except asyncio.TimeoutError:
        return Outcome("retry", f"timed out after {sink.timeout:g} s")
    except aiohttp.ClientError as exc:
        return Outcome("retry", _redact(f"{type(exc).__name__}: {exc}", sink))
