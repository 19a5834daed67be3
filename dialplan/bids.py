"""Buyers and their bids (seed 002, seed 000 "auction/exchange"): a buyer pays to take calls matching its
filters, with a static bid from the configuration, a real-time bid from its own URL, or both.

A real-time bid request carries the call's attributes (CallFacts.public()), never the caller's number, and a
buyer can only name one of its configured destinations: an answer can never make Ringpool dial anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from math import isfinite
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from ari_app.yaml_located import ConfigError
from dialplan.caps import Caps, amount, read_caps
from dialplan.regions import valid_region_pattern

if TYPE_CHECKING:
    from ari_app.config import _Section

MAX_BID = 100_000
MAX_ANSWER = 64 * 1024  # bytes of a bid answer read at most
URL_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s#]*)?$")


@dataclass(frozen=True)
class Buyer:
    name: str
    destinations: tuple[str, ...]  # where its calls may go; the first is the default
    campaigns: tuple[str, ...] = ()  # empty: any campaign
    regions: tuple[str, ...] = ()  # empty: any caller
    hours: str | None = None  # a schedule name; None: always
    min_quality: int | None = None
    bid: float | None = None  # static bid
    url: str | None = None  # real-time bid
    timeout: float = 0.8  # seconds for the real-time answer
    caps: Caps = Caps()


@dataclass(frozen=True)
class BidAnswer:
    """A real-time answer: ``amount`` None (or 0) declines; ``error`` says why there is no usable answer."""

    amount: float | None = None
    destination: str | None = None
    error: str | None = None


class Bidder(Protocol):
    async def request(self, buyer: Buyer, payload: dict[str, Any]) -> BidAnswer: ...


class HttpBidder:
    """POSTs the payload as JSON to the buyer's URL and reads ``{"bid": 12.5, "destination": "..."}``.

    Every failure (timeout, refused connection, HTTP error, not JSON) is an answer with ``error`` set, never an
    exception: one broken buyer must not cost the call its other bids."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(self, buyer: Buyer, payload: dict[str, Any]) -> BidAnswer:
        assert buyer.url is not None
        try:
            async with self.session.post(buyer.url, json=payload, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=buyer.timeout)) as response:
                if response.status == 204:
                    return BidAnswer()  # nothing to say: declines
                if response.status != 200:
                    return BidAnswer(error=f"HTTP {response.status}")
                body = await _read_limited(response.content, MAX_ANSWER + 1)
        except TimeoutError:
            return BidAnswer(error=f"no answer within {buyer.timeout:g} s")
        except aiohttp.ClientError as exc:
            return BidAnswer(error=f"request failed: {type(exc).__name__}")
        if len(body) > MAX_ANSWER:
            return BidAnswer(error=f"answer larger than {MAX_ANSWER} bytes")
        return parse_answer(body)


async def _read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body: read(n) returns what has arrived so far, so it loops."""
    body = b""
    while len(body) < limit and (chunk := await stream.read(limit - len(body))):
        body += chunk
    return body


def parse_answer(body: bytes) -> BidAnswer:
    """``{"bid": 12.5, "destination": "acme-line"}``; no bid, null or 0 declines; anything else is an error."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return BidAnswer(error="answer is not JSON")
    if not isinstance(data, dict):
        return BidAnswer(error="answer is not a JSON object")
    bid, destination = data.get("bid"), data.get("destination")
    if destination is not None and not isinstance(destination, str):
        return BidAnswer(error="destination is not a string")
    if bid is None or bid == 0:
        return BidAnswer(destination=destination)
    if isinstance(bid, bool) or not isinstance(bid, (int, float)) or not isfinite(bid) or not 0 < bid <= MAX_BID:
        return BidAnswer(error=f"bid {bid!r} is not an amount from 0 to {MAX_BID}")
    return BidAnswer(amount=float(bid), destination=destination)


def read_buyers(items: list[tuple[_Section, int]], destinations: Collection[str], schedules: Collection[str],
                campaigns: Collection[str]) -> dict[str, Buyer]:
    """The top-level `buyers:` list (``top.items("buyers")``), checked against the configured names."""
    buyers: dict[str, Buyer] = {}
    for s, line in items:
        buyer = _read_buyer(s, destinations, schedules, campaigns)
        if buyer.name in buyers:
            raise ConfigError(s.file, line, s.key, f"duplicate name {buyer.name!r}")
        buyers[buyer.name] = buyer
    return buyers


def _read_buyer(s: _Section, destinations: Collection[str], schedules: Collection[str],
                campaigns: Collection[str]) -> Buyer:
    from ari_app.config import NAME_RE

    name = s.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
    targets = s.string_list("destinations")
    if not targets:
        raise s.error("destinations", "a buyer needs at least one destination its calls may go to")
    for target in targets:
        if target not in destinations:
            raise s.error("destinations", f"no destination named {target!r}")
    wanted = s.string_list("campaigns")
    for campaign in wanted:
        if campaign not in campaigns:
            raise s.error("campaigns", f"no campaign named {campaign!r}")
    regions = s.string_list("regions")
    for pattern in regions:
        if not valid_region_pattern(pattern):
            raise s.error("regions", f"{pattern!r} is not a region: a country (US), state (IL, US-IL) or "
                                     "area code (312)")
    hours = s.string("hours", None)
    if hours is not None and hours not in schedules:
        raise s.error("hours", f"no schedule named {hours!r}")
    bid = amount(s, "bid", high=MAX_BID) if "bid" in s.data else None
    if bid == 0:
        raise s.error("bid", "a bid of 0 never wins: leave it out to bid in real time only")
    url = s.string("url", None, pattern=URL_RE, hint="expected http(s)://host[:port]/path")
    if bid is None and url is None:
        raise s.error("bid", "a buyer needs a static bid, a url for real-time bids, or both")
    timeout = s.raw("timeout", 0.8)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0.05 <= timeout <= 10:
        raise s.error("timeout", f"expected seconds from 0.05 to 10, got {timeout!r}")
    buyer = Buyer(name=name, destinations=tuple(dict.fromkeys(targets)), campaigns=tuple(wanted),
                  regions=tuple(regions), hours=hours,
                  min_quality=s.integer("min_quality", None, low=0, high=100), bid=bid, url=url,
                  timeout=float(timeout), caps=read_caps(s.section("caps"), budgets=True))
    s.reject_unknown()
    return buyer
