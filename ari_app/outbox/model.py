"""Outbox sinks: where call events go (signed JSON webhooks or GA4), read from the ``webhooks`` section."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Mapping
from urllib.parse import urlsplit

from ari_app.yaml_located import ConfigError

if TYPE_CHECKING:  # ari_app.config imports this module; the reverse import happens at call time
    from ari_app.config import _Section

EVENTS = ("call.started", "call.answered", "call.completed", "call.converted", "call.spam")
KINDS = ("webhook", "ga4")
GA4_URL = "https://www.google-analytics.com/mp/collect"

MEASUREMENT_ID_RE = re.compile(r"^G-[A-Z0-9]{4,20}$")
SECRET_RE = re.compile(r"^[\x21-\x7e]{16,256}$")  # printable, no spaces: it goes into an HMAC and a YAML file
API_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_KIND_KEYS = {"webhook": ("secret",), "ga4": ("measurement_id", "api_secret")}


@dataclass(frozen=True)
class Sink:
    name: str
    kind: Literal["webhook", "ga4"]
    url: str
    events: frozenset[str]
    secret: str | None = field(repr=False)  # webhooks: HMAC key (None: the service generates one)
    measurement_id: str | None
    api_secret: str | None = field(repr=False)
    timeout: float = 5.0
    max_attempts: int = 12

    def wants(self, event: str) -> bool:
        return event in self.events


def sinks_for(sinks: Mapping[str, Sink], event: str) -> list[str]:
    """Names of the sinks subscribed to ``event``, in configuration order."""
    return [name for name, sink in sinks.items() if sink.wants(event)]


def _url(s: "_Section", default: str | None) -> str:
    url = s.string("url", default if default is not None else ...)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in url):
        raise s.error("url", f"invalid value {url!r}: expected an http:// or https:// URL")
    return url


def _events(s: "_Section") -> frozenset[str]:
    if "events" not in s.data:
        s.used.add("events")
        return frozenset(EVENTS)
    events = s.string_list("events")
    if not events:
        raise s.error("events", "list at least one event, or leave the key out for all of them")
    for event in events:
        if event not in EVENTS:
            raise s.error("events", f"unknown event {event!r} (one of {', '.join(EVENTS)})")
    return frozenset(events)


def _read_sink(s: "_Section") -> Sink:
    from ari_app.config import NAME_RE

    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    kind = s.string("kind", "webhook")
    if kind not in KINDS:
        raise s.error("kind", f"invalid value {kind!r}: one of {', '.join(KINDS)}")
    for other, keys in _KIND_KEYS.items():
        misplaced = [key for key in keys if other != kind and key in s.data]
        if misplaced:
            raise s.error(misplaced[0], f"only for kind {other} sinks")
    sink = Sink(
        name=name, kind=kind, url=_url(s, GA4_URL if kind == "ga4" else None), events=_events(s),
        secret=s.string("secret", None, pattern=SECRET_RE, hint="16-256 printable characters, no spaces")
        if kind == "webhook" else None,
        measurement_id=s.string("measurement_id", pattern=MEASUREMENT_ID_RE, hint="expected G-XXXXXXX")
        if kind == "ga4" else None,
        api_secret=s.string("api_secret", pattern=API_SECRET_RE, hint="the Measurement Protocol API secret")
        if kind == "ga4" else None,
        timeout=float(s.integer("timeout", 5, low=1, high=60)),
        max_attempts=s.integer("max_attempts", 12, low=1, high=100),
    )
    s.reject_unknown()
    return sink


def read_sinks(items: list[tuple["_Section", int]]) -> dict[str, Sink]:
    """``top.items("webhooks")`` -> sinks by name; errors are located ConfigErrors (file:line: key)."""
    sinks: dict[str, Sink] = {}
    for section, line in items:
        sink = _read_sink(section)
        if sink.name in sinks:
            raise ConfigError(section.file, line, section.key, f"duplicate name {sink.name!r}")
        sinks[sink.name] = sink
    return sinks
