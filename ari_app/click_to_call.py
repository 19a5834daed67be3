"""Click-to-call and callbacks (seed 000): Ringpool calls the visitor first and, once they answer, treats the call
like one they placed to the campaign's tracking number: the flow, the routing plan, the business's phone, the
bridge, the record and the payout are the inbound call's own.

Only campaigns with a `click_to_call:` section accept it, only numbers with the configured prefixes are dialled,
through the configured trunk, and one number is called a few times an hour at most (no toll fraud, no
harassment through the API).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

from ari_app.call_connect import DIAL_GUARD, STASIS_WAIT
from ari_app.call_state import DialResult, result_from_cause, result_from_dialstatus
from ari_app.config import Campaign, Settings, TrackingNumber, normalise_number
from ari_app.inbound_call import CALLER_CAUSES, CAUSE_NORMAL, DISPOSITIONS, CallContext, InboundCall
from dialplan.decision import Action, Decision, Route
from dialplan.signaling import Signaling
from storage.calls import NewCall
from storage.db import utcnow

MAX_NUMBER = 15  # E.164 digits
HOUR = 3600.0


class ClickToCallRefused(ValueError):
    """Why a click-to-call request is not placed (the API answers 400 or 429 with it)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClickToCallLimits:
    """Per visitor number, the calls placed in the last hour (in memory: a restart forgets, the cap is small)."""

    def __init__(self) -> None:
        self._placed: dict[str, deque[float]] = defaultdict(deque)

    def check_and_count(self, settings: Settings, campaign_name: str, raw_number: Any) -> tuple[Campaign, str]:
        campaign = settings.campaigns.get(campaign_name) if isinstance(campaign_name, str) else None
        if campaign is None:
            raise ClickToCallRefused(f"campaign: no campaign named {campaign_name!r}")
        options = campaign.click_to_call
        if options is None:
            raise ClickToCallRefused(f"campaign: {campaign.name} does not allow click-to-call (no click_to_call section)")
        number = normalise_number(raw_number) if isinstance(raw_number, str) else ""
        if not 8 <= len(number) <= MAX_NUMBER or not isinstance(raw_number, str) or len(raw_number) > 32:
            raise ClickToCallRefused("number: the visitor's number with its country code, 8 to 15 digits")
        if not number.startswith(options.prefixes):
            raise ClickToCallRefused(f"number: only numbers starting with {', '.join(options.prefixes)} may be "
                                     f"called for {campaign.name}")
        placed, now = self._placed[number], time.monotonic()
        while placed and now - placed[0] > HOUR:
            placed.popleft()
        if len(placed) >= options.per_number_hour:
            raise ClickToCallRefused(f"number: already called {len(placed)} times in the last hour", 429)
        placed.append(now)
        return campaign, number


class ClickToCall(InboundCall):
    """One call Ringpool places: the visitor's leg stands where an inbound caller's would."""

    def __init__(self, ctx: CallContext, call_id: str, campaign: Campaign, number: str, *,
                 session_id: str | None = None, direction: str = "click_to_call") -> None:
        stamp = utcnow()
        super().__init__(ctx, call_id, {"id": f"{call_id}-visitor"}, {"type": "StasisStart"})
        self.arrived_at = stamp
        self.target = campaign
        self.number = number
        self.session_id = session_id
        self.direction = direction

    def _tracking_number(self) -> str:
        options = self.target.click_to_call
        assert options is not None
        if options.caller_id:
            return options.caller_id
        mine = sorted(n.number for n in self.ctx.settings.numbers.values() if n.campaign == self.target.name)
        return mine[0] if mine else ""

    async def run(self) -> None:
        async def flow() -> tuple[str, int | None, str | None]:
            options = self.target.click_to_call
            assert options is not None
            tracking = self._tracking_number()
            trunk = self.ctx.settings.trunks[options.trunk]
            self.signaling = Signaling(channel_id=self.inbound, channel_name=None, caller_number=self.number,
                                       caller_name=None, dialed_number=tracking, trunk=trunk.name,
                                       p_asserted_identity=None, privacy=None, diversion=None, p_charge_info=None)
            await self.ctx.store.call("create_call", NewCall(
                id=self.id, inbound_channel=self.inbound, arrived_at=self.arrived_at, caller_number=self.number,
                dialed_number=tracking, trunk=trunk.name, direction=self.direction))
            self._write(call={"campaign": self.target.name, "session_id": self.session_id},
                        events=[(self.direction, {"number": self.number, "trunk": trunk.name,
                                                  "caller_id": tracking or None})])
            result, cause = await self._call_visitor(f"PJSIP/{self.number}@{trunk.endpoint}", tracking,
                                                     options.ring_timeout)
            if result is not DialResult.ANSWERED:
                self._write(events=[("visitor_not_reached", {"result": result.value, "cause": cause})])
                return DISPOSITIONS.get(result, "failed"), cause, "caller"
            self._mark_answered()
            await self._answered()
            route = Route(tracking_number=TrackingNumber(tracking, self.target.name), campaign=self.target,
                          destinations=(self.ctx.settings.destinations[self.target.destination],),
                          fallback_message=self.target.fallback.message)
            decision = Decision(Action.PROCEED, (f"{self.direction.replace('_', '-')}: the visitor answered",),
                                route=route)
            self._record_decision(decision)
            return await self._act(decision, self.signaling)

        await self._guarded(flow)

    async def _call_visitor(self, endpoint: str, tracking: str, ring_timeout: int) -> tuple[DialResult, int | None]:
        """Create and dial the visitor's leg, showing the tracking number; wait for an answer or its end."""
        await self.ctx.rest.create_channel(endpoint, self.ctx.settings.ari.app, app_args=f"outbound,{self.id}",
                                           channel_id=self.inbound)
        await self._wait(lambda: True if self.inbound in self.view.in_stasis or self.inbound in self.view.ended
                         else None, STASIS_WAIT)
        if self.inbound in self.view.in_stasis and self.inbound not in self.view.ended:
            if tracking:
                await self._present(self.inbound, tracking)
            await self.ctx.rest.dial(self.inbound, timeout=ring_timeout)

        def outcome() -> tuple[DialResult, int | None] | None:
            status = self.view.dial_status.get(self.inbound)
            if status and (result := result_from_dialstatus(status)) is not None:
                return result, None
            if self.inbound in self.view.up:
                return DialResult.ANSWERED, None
            end = self.view.ended.get(self.inbound)
            if end is not None and end.destroyed:
                return result_from_cause(end.cause), end.cause
            return None

        answer = await self._wait(outcome, ring_timeout + DIAL_GUARD) or (DialResult.NO_ANSWER, None)
        if answer[0] is not DialResult.ANSWERED and self.inbound not in self.view.ended:
            await self._hangup(self.inbound, CALLER_CAUSES.get(answer[0], CAUSE_NORMAL))
        return answer
