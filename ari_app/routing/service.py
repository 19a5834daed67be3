"""Routing for the whole process: the facts of a call, its quality, the plan of destinations and bids, the caps'
live counts, the queue, and the settlement (final quality, revenue and payout) when the call ends.

Per-call work happens in the call's own task (ari_app/inbound_call.py); this object holds what calls share.
It never imports the web layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

import aiohttp

from ari_app.config import Campaign, Settings
from ari_app.routing.payout import payout_fields
from dialplan.bids import HttpBidder
from dialplan.caps import Usage
from dialplan.facts import CallFacts
from dialplan.quality import Quality, QualitySettings, final_quality, initial_quality, with_answers
from dialplan.queue import CallQueue, Waiter
from dialplan.regions import caller_region, number_type
from dialplan.routing import Attempt, Plan, RoutingSettings, Target, plan_route
from ivr.prompts import PromptRenderer
from storage.async_store import AsyncCallStore
from storage.call_history import caller_calls, settle
from storage.db import format_time, parse_time

if TYPE_CHECKING:
    from dialplan.signaling import Signaling
    from ari_app.tracking.attribution import Arrival

log = logging.getLogger(__name__)

HISTORY = timedelta(days=90)
DEFAULT_QUALITY = QualitySettings()
CALLBACK_EXPIRY = 4 * 3600  # seconds a callback keeps its place before it is given up
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10, connect=3)  # each request sets its own shorter limit


class RoutingService:
    def __init__(self, settings: Settings, store: AsyncCallStore) -> None:
        self.settings = settings
        self.store = store
        self.usage = Usage(run=lambda fn: store.run(fn, store.db))
        self.queue = CallQueue()
        self.prompts = PromptRenderer(settings.state_dir / "prompts")
        self.http: aiohttp.ClientSession | None = None
        self.bidder: HttpBidder | None = None
        self.place_callback: Callable[..., str] | None = None  # set by the call manager (click_to_call)
        self._callbacks: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        # no cookies, no redirects followed into the LAN: buyers and decision URLs are outside parties
        self.http = aiohttp.ClientSession(timeout=HTTP_TIMEOUT, cookie_jar=aiohttp.DummyCookieJar())
        self.bidder = HttpBidder(self.http)

    async def close(self) -> None:
        for task in list(self._callbacks):
            task.cancel()
        if self.http is not None:
            await self.http.close()

    # --- before the call is answered ----------------------------------------------------------------------

    async def facts(self, call_id: str, signaling: "Signaling", campaign: Campaign, arrival: "Arrival | None",
                    spam_score: int | None, arrived_at: str) -> CallFacts:
        """Everything decisions read about this call, with one storage read (the caller's history)."""
        caller = None if signaling.anonymous else signaling.caller_number
        now = parse_time(arrived_at)
        earlier, known = await self.store.run(caller_calls, self.store.db, caller, arrived_at,
                                              format_time(now - HISTORY), call_id)
        session: dict[str, Any] = {}
        variables: dict[str, str] = {}
        if arrival is not None:
            fields = arrival.attribution.call_fields()
            session = {k: fields.get(k) for k in ("source", "medium", "keyword", "landing_page", "ad_campaign")}
            visitor = arrival.attribution.session or {}
            session |= {k: visitor.get(k) for k in ("device_type", "utm_source", "utm_medium", "utm_campaign",
                                                     "utm_term", "utm_content", "gclid", "p1", "p2", "p3")}
            variables = _custom_vars(visitor.get("vars"))
        facts = CallFacts(call_id=call_id, campaign=campaign.name, dialed_number=signaling.dialed_number,
                          caller_number=caller, arrived_at=now.astimezone(timezone.utc),
                          anonymous=signaling.anonymous, region=caller_region(caller),
                          number_type=number_type(caller, signaling.anonymous),
                          earlier_calls=tuple(parse_time(at) for at in earlier),
                          repeat_caller=bool(arrival.repeat_caller) if arrival else bool(earlier),
                          known_caller=known, session=session, variables=variables, spam_score=spam_score)
        return facts

    def quality_settings(self, campaign: Campaign) -> QualitySettings:
        return campaign.quality or DEFAULT_QUALITY

    def initial_quality(self, campaign: Campaign, facts: CallFacts) -> Quality:
        routing = campaign.routing
        first = routing.destinations[0].name if routing and routing.destinations else campaign.destination
        limits = self.settings.destinations[first].limits if first in self.settings.destinations else None
        schedule = self.settings.schedules.get(limits.hours) if limits and limits.hours else None
        quality = initial_quality(facts, self.quality_settings(campaign),
                                  open=schedule.is_open(facts.arrived_at) if schedule else None)
        facts.quality = quality.score
        return quality

    def after_ivr(self, campaign: Campaign, quality: Quality, facts: CallFacts) -> Quality:
        quality = with_answers(quality, facts, self.quality_settings(campaign))
        facts.quality = quality.score
        return quality

    def routing_for(self, campaign: Campaign, node: str | None = None) -> RoutingSettings:
        """The campaign's routing, or a flow route node's resolved over it."""
        assert campaign.routing is not None
        if node is not None and node in campaign.flow_routes:
            return campaign.flow_routes[node]
        return campaign.routing

    def to_destination(self, campaign: Campaign, name: str) -> RoutingSettings | None:
        """An HTTP decision named a destination: only a configured one is ever dialled."""
        if name not in self.settings.destinations:
            return None
        return replace(self.routing_for(campaign), strategy="priority", destinations=(Target(name),), fallback=())

    async def plan(self, routing: RoutingSettings, facts: CallFacts) -> Plan:
        return await plan_route(routing, facts, destinations={
            name: d.limits for name, d in self.settings.destinations.items() if d.limits is not None},
            buyers=self.settings.buyers, schedules=self.settings.schedules, usage=self.usage, bidder=self.bidder,
            now=datetime.now(timezone.utc))

    # --- live counts and the queue ------------------------------------------------------------------------

    def join_queue(self, waiter_id: str, quality: int | None, destinations: tuple[str, ...],
                   joined: float | None) -> Waiter:
        """Wait for one of ``destinations``; woken at once when one has room already (it freed up between the
        plan that found none and now), so no caller waits for a release that already happened."""
        waiter = self.queue.join(waiter_id, quality, destinations, joined=joined)
        for name in destinations:
            if self.has_room(name):
                self.queue.offer(name)
                break
        return waiter

    def has_room(self, destination: str) -> bool:
        """Below its concurrent-calls cap (a destination without one is never "full" here: its attempt failed)."""
        dest = self.settings.destinations.get(destination)
        cap = dest.limits.caps.concurrent if dest is not None and dest.limits is not None else None
        return cap is not None and self.usage.live("destination", destination) < cap

    def claim(self, attempt: Attempt) -> None:
        """The attempt's legs count against their caps from now until release."""
        for name in attempt.destinations:
            self.usage.start("destination", name)
        if attempt.buyer:
            self.usage.start("buyer", attempt.buyer)

    def release(self, destinations: tuple[str, ...], buyer: str | None, *, offer: bool = True) -> None:
        """Legs ended: their places are free again, and (after a call that was taken, ``offer``) the best
        caller waiting for one of them is woken. A destination that just failed to answer is not offered."""
        for name in destinations:
            self.usage.end("destination", name)
        if buyer:
            self.usage.end("buyer", buyer)
        if offer:
            for name in destinations:
                self.queue.offer(name)

    # --- callbacks -----------------------------------------------------------------------------------------

    def request_callback(self, campaign: str, number: str, quality: int | None, destinations: tuple[str, ...],
                         joined: float | None) -> None:
        """The caller waited too long: keep their place in the queue, and when one of ``destinations`` frees up,
        call them back (then the business). In memory: a restart forgets pending callbacks."""
        task = asyncio.ensure_future(self._callback_when_free(campaign, number, quality, destinations, joined))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _callback_when_free(self, campaign: str, number: str, quality: int | None,
                                  destinations: tuple[str, ...], joined: float | None) -> None:
        waiter = self.join_queue(f"callback-{uuid.uuid4().hex}", quality, destinations, joined)
        try:
            await asyncio.wait_for(waiter.woken.wait(), CALLBACK_EXPIRY)
        except asyncio.TimeoutError:
            log.warning("callback to %s for %s expired after %d s", number, campaign, CALLBACK_EXPIRY)
            return
        finally:
            self.queue.leave(waiter.call_id)
        if self.place_callback is None:
            return
        try:
            self.place_callback(campaign, number, None, "callback")
        except ValueError as exc:  # e.g. the number's hourly limit
            log.warning("callback to %s for %s not placed: %s", number, campaign, exc)

    # --- when the call has ended --------------------------------------------------------------------------

    async def settle(self, call_id: str, campaign: Campaign, quality: Quality | None, detections: list[str]) -> dict[str, Any]:
        """Final quality (duration, detections, the caller's words) and the campaign's payout, stored."""
        settings = self.quality_settings(campaign)
        db = self.store.db

        def compute(row: dict[str, Any]) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            if quality is not None:
                final = final_quality(quality, settings, talk_seconds=row.get("talk_seconds"),
                                      detections=detections, transcript=row.get("transcript"))
                fields |= final.record()
                row = row | {"quality": final.score}
            return fields | payout_fields(db, row, self.settings)

        return await self.store.run(settle, db, call_id, compute)


def _custom_vars(raw: Any) -> dict[str, str]:
    """The visitor session's custom variables (set by the page through the snippet), as IVR variables."""
    try:
        values = json.loads(raw) if isinstance(raw, str) else raw or {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}
