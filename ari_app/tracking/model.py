"""Pools of tracking numbers and extension sites, as configured; read from the `pools:` and `inventory:` keys.

A pool leases numbers to web visitors (dynamic number insertion); an extension site hands out one number plus a
short per-visitor extension instead. Both belong to a campaign, so a call to any of their numbers is routed by
that campaign, and the lease names the visitor session the call is attributed to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ari_app.config import NAME_RE, normalise_number
from ari_app.yaml_located import ConfigError

if TYPE_CHECKING:
    from ari_app.config import _Section

# Visitor fields that may define "the same visitor context": visitors equal on all of a pool's context fields
# share one number. An empty context means one number per visitor session.
CONTEXT_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "keyword",
                  "p1", "p2", "p3", "landing_page", "referrer_host")
ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
SITE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,80}$")
NUMBER_RE = re.compile(r"^\+?[0-9 ()-]{3,30}$")


@dataclass(frozen=True)
class Pool:
    name: str
    campaign: str
    mode: Literal["pool", "extension"]
    numbers: tuple[str, ...]  # pool: the members it starts with; extension: the one number
    max_size: int = 0  # pool: grow from inventory up to this many numbers
    min_lease: int = 600  # seconds a lease is kept before it may be taken for another visitor
    lease_ttl: int = 1800  # seconds without page activity before the lease is released
    cooldown: int = 300  # seconds a released number rests before it is leased again
    overflow_number: str | None = None
    context: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    site_key: str | None = None  # None: generated on first run into the state folder
    max_extension: int = 999  # extension: the largest extension handed out
    reserved: tuple[tuple[str, str], ...] = ()  # extension: (extension, source) for print and QR, never dynamic
    publisher: str | None = None
    renew_every: int = 60  # seconds between the snippet's keep-alive page views
    rate_limit: int = 120  # snippet requests per minute from one address (a burst of half that is allowed)

    @property
    def number(self) -> str:
        """The extension site's number."""
        return self.numbers[0]

    def reserved_source(self, extension: str) -> str | None:
        return dict(self.reserved).get(extension)


def read_number(s: "_Section", name: str, value: object, line: int, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not NUMBER_RE.match(str(value)) \
            or len(normalise_number(str(value))) < 3:
        raise ConfigError(s.file, line, key, f"{value!r} is not a phone number")
    return normalise_number(str(value))


def read_number_list(s: "_Section", name: str) -> list[tuple[str, int]]:
    raw = s.raw(name, [])
    if not isinstance(raw, list):
        raise s.error(name, "expected a list of phone numbers")
    lines = getattr(raw, "item_lines", [])
    return [(read_number(s, name, v, lines[i] if i < len(lines) else s.line_of(name), f"{s._path(name)}[{i}]"),
             lines[i] if i < len(lines) else s.line_of(name)) for i, v in enumerate(raw)]


def read_pool(s: "_Section") -> tuple[Pool, list[tuple[str, int]]]:
    """One `pools:` entry, and its numbers with their lines (for duplicate checks across the file)."""
    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    campaign = s.string("campaign", pattern=NAME_RE)
    mode = s.string("mode", "pool")
    if mode not in ("pool", "extension"):
        raise s.error("mode", f"{mode!r}: expected pool or extension")
    origins = s.string_list("allowed_origins")
    for origin in origins:
        if not ORIGIN_RE.match(origin):
            raise s.error("allowed_origins", f"{origin!r} is not an origin such as https://www.example.com")
    common = dict(
        name=name, campaign=campaign, mode=mode,
        lease_ttl=s.integer("lease_ttl", 1800, low=30, high=90 * 86400),
        allowed_origins=tuple(o.rstrip("/") for o in origins),
        site_key=s.string("site_key", None, pattern=SITE_KEY_RE, hint="16-80 letters, digits, _ or -"),
        publisher=s.string("publisher", None, pattern=NAME_RE),
        renew_every=s.integer("renew_every", 60, low=1, high=3600),
        rate_limit=s.integer("rate_limit", 120, low=1, high=10_000_000),
    )
    numbers: list[tuple[str, int]]
    if mode == "extension":
        number = read_number(s, "number", s.raw("number", required=True), s.line_of("number"), s._path("number"))
        numbers = [(number, s.line_of("number"))]
        max_extension = s.integer("max_extension", 999, low=1, high=99999)
        reserved_raw = s.raw("reserved", {})
        if not isinstance(reserved_raw, dict):
            raise s.error("reserved", "expected a mapping of extension to source name")
        reserved = []
        for ext, source in reserved_raw.items():
            if not re.fullmatch(r"[0-9]{1,5}", str(ext)) or str(ext).startswith("0"):
                raise s.error("reserved", f"{ext!r} is not an extension (1-5 digits, no leading 0)")
            if not isinstance(source, str) or not NAME_RE.match(source):
                raise s.error("reserved", f"extension {ext}: source {source!r} must be a name like flyer-march")
            reserved.append((str(ext), source))
        pool = Pool(**common, numbers=(number,), max_extension=max_extension, reserved=tuple(sorted(reserved)))
    else:
        numbers = read_number_list(s, "numbers")
        overflow = s.raw("overflow_number", None)
        context = s.string_list("context")
        for field in context:
            if field not in CONTEXT_FIELDS:
                raise s.error("context", f"{field!r}: expected some of {', '.join(CONTEXT_FIELDS)}")
        pool = Pool(
            **common, numbers=tuple(n for n, _ in numbers),
            max_size=s.integer("max_size", len(numbers), low=0, high=100000),
            min_lease=s.integer("min_lease", 600, low=0, high=90 * 86400),
            cooldown=s.integer("cooldown", 300, low=0, high=90 * 86400),
            overflow_number=read_number(s, "overflow_number", overflow, s.line_of("overflow_number"),
                                        s._path("overflow_number")) if overflow is not None else None,
            context=tuple(context),
        )
        if pool.overflow_number:
            numbers.append((pool.overflow_number, s.line_of("overflow_number")))
        if pool.max_size < len(pool.numbers):
            raise s.error("max_size", f"{pool.max_size} is below the {len(pool.numbers)} numbers listed")
        if not pool.max_size:
            raise s.error("max_size", "a pool needs numbers: list some, or set max_size to grow from inventory")
    s.reject_unknown()
    return pool, numbers
