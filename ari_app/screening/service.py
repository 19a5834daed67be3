"""Screening as a service for the call flow and the admin API; knows nothing of ARI or HTTP.

A call's arrival is one trip to the storage thread: the number's state and the visitor behind it (attribution),
then the caller's list matches and history (facts). Score 1 is computed back on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ari_app.config import Settings
from ari_app.screening.model import ScreeningSettings
from ari_app.screening.numbers import header_values, number_text
from ari_app.screening.score import Verdict, assess, next_level
from ari_app.screening.signatures import Signatures
from ari_app.screening.store import ScreeningStore
from ari_app.tracking.attribution import Arrival, CallAttribution
from dialplan.signaling import Signaling
from ivr.prompts import asterisk_sound, render_wav
from storage.async_store import AsyncCallStore
from storage.db import format_time, utcnow

log = logging.getLogger(__name__)
CHALLENGE_TEXT = "To reach us, please press {digit}."
ESCALATION_INTERVAL = 30.0  # seconds between escalation checks
WAY_THROUGH_TEXT = "If you are a person, press 1 to reach us."


def caller_digits(signaling: Signaling) -> str | None:
    """The caller's number when it is a number (ASCII digits): what lists and history are keyed by."""
    caller = signaling.caller_number
    return caller if caller and caller.isascii() and caller.isdigit() else None


def charge_number(signaling: Signaling) -> str | None:
    """The billing number from P-Charge-Info (<sip:+15550008888@carrier>), digits only."""
    values = header_values(signaling.p_charge_info)
    text = number_text(values[0]) if values else None
    digits = "".join(ch for ch in text or "" if ch in "0123456789")
    return digits or None


@dataclass(frozen=True)
class Screened:
    arrival: Arrival
    verdict: Verdict | None  # None: the dialed number is not a tracking number (refused as unallocated)
    settings: ScreeningSettings


class ScreeningService:
    def __init__(self, settings: Settings, store: AsyncCallStore, attribution: "CallAttribution | None" = None) -> None:
        self.settings = settings
        self.store = store
        self.attribution = attribution
        self._screens: ScreeningStore | None = None
        self.prompts: dict[str, str] = {}  # digit -> the rendered "please press <digit>" prompt
        self.way_through_prompt = "sound:press,sound:digits/1"
        self.levels: dict[str, int] = {}  # campaign -> countermeasure level (escalation)
        self.signatures = Signatures(store)
        self._escalator: asyncio.Task[None] | None = None
        self._prompts_task: asyncio.Task[None] | None = None

    async def start(self, attribution: CallAttribution) -> None:
        self.attribution = attribution
        self._screens = ScreeningStore(self.store.db)
        await self.signatures.start()
        calls = self.store.store
        assert calls is not None
        calls.observers.append(lambda event, call_id: self.signatures.learn_in_transaction(call_id)
                               if event == "call.spam" else None)
        self.levels = await self.store.run(self.screens.levels)
        if any(self.settings.screening_for(c).escalation for c in self.settings.campaigns.values()):
            self._escalator = asyncio.create_task(self._escalate_forever(), name="screening-escalation")
        # Rendering prompts runs espeak-ng: in the background, so the app takes calls at once (Asterisk's own
        # words stand in until they are ready).
        self._prompts_task = asyncio.create_task(self._render_prompts(), name="screening-prompts")

    async def _render_prompts(self) -> None:
        folder = self.settings.state_dir / "prompts"
        loop = asyncio.get_running_loop()
        try:
            for digit in "123456789":
                wav = await loop.run_in_executor(None, render_wav, CHALLENGE_TEXT.format(digit=digit), folder)
                self.prompts[digit] = asterisk_sound(wav)
            self.way_through_prompt = asterisk_sound(
                await loop.run_in_executor(None, render_wav, WAY_THROUGH_TEXT, folder))
        except Exception as exc:  # espeak-ng missing: Asterisk's own words still ask for the digit
            log.warning("cannot render the challenge prompts (%s); using Asterisk's sounds", exc)

    async def stop(self) -> None:
        for task in (self._escalator, self._prompts_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _escalate_forever(self, interval: float = ESCALATION_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.escalate()
            except Exception:
                log.exception("screening escalation failed")

    async def escalate(self) -> dict[str, int]:
        """Move each campaign's countermeasure level one step by its recent share of short or spam calls."""
        now = datetime.now(timezone.utc)
        for name, campaign in self.settings.campaigns.items():
            screening = self.settings.screening_for(campaign)
            if screening.escalation is None or not screening.enabled:
                continue
            since = format_time(now - timedelta(seconds=screening.escalation.window))
            calls, bad = await self.store.run(self.screens.window_counts, name, since, screening.short_seconds)
            level = self.levels.get(name, 0)
            new = next_level(level, calls, bad, screening)
            if new != level:
                reason = f"{bad} of {calls} calls short or spam in {screening.escalation.window} s"
                await self.store.run(self.screens.set_level, name, new, reason, format_time(now))
                log.warning("campaign %s: countermeasure level %d -> %d (%s)", name, level, new, reason)
                self.levels[name] = new
        return dict(self.levels)

    def challenge_prompt(self, digit: str) -> str:
        return self.prompts.get(digit) or f"sound:press,sound:digits/{digit}"

    @property
    def screens(self) -> ScreeningStore:
        assert self._screens is not None, "ScreeningService.start() first"
        return self._screens

    def _arrive(self, call_id: str, signaling: Signaling, now: str) -> tuple[Arrival, ScreeningSettings, Any]:
        """On the storage thread: attribution first (it knows the number's campaign), then the caller's facts."""
        assert self.attribution is not None
        arrival = self.attribution.arrive(call_id, signaling.dialed_number, signaling.caller_number, now)
        campaign_name = arrival.number.campaign if arrival.number else None
        campaign = self.settings.campaigns.get(campaign_name or "")
        screening = self.settings.screening_for(campaign)
        if arrival.number is None or not screening.enabled:
            return arrival, screening, None
        caller = caller_digits(signaling)
        facts = self.screens.facts(call_id, caller, charge=charge_number(signaling), name=signaling.caller_name,
                                   anonymous=signaling.anonymous, campaign=campaign_name, now=now,
                                   rate_window=screening.rate_window, short_window=screening.short_window,
                                   short_seconds=screening.short_seconds, candidate_days=screening.candidate_days)
        return arrival, screening, facts

    async def arrive(self, call_id: str, signaling: Signaling) -> Screened:
        now = datetime.now(timezone.utc)
        arrival, screening, facts = await self.store.run(self._arrive, call_id, signaling, format_time(now))
        verdict = None
        if facts is not None and arrival.number is not None:
            verdict = assess(signaling, facts, screening, number_state=arrival.number.state,
                             returning=arrival.attribution.method == "caller_history", now=now,
                             level=self.levels.get(arrival.number.campaign or "", 0))
        elif arrival.number is not None:
            verdict = Verdict("proceed", 0, "green")
        return Screened(arrival, verdict, screening)

    async def quarantine(self, signaling: Signaling, state: str, call_id: str) -> None:
        caller = caller_digits(signaling)
        await self.store.run(self.screens.quarantine, caller, signaling.dialed_number, state, call_id, utcnow())

    async def block(self, caller: str | None, *, seconds: int, reason: str, source: str,
                    campaign: str | None = None) -> dict[str, Any] | None:
        """Block a caller for a time (a failed challenge, a fax dialer), on top of any list an operator keeps."""
        if not caller or not (caller.isascii() and caller.isdigit()):
            return None
        until = format_time(datetime.now(timezone.utc) + timedelta(seconds=seconds))
        return await self.store.run(self.screens.add_rule, "block", "number", caller, campaign=campaign,
                                    expires_at=until, reason=reason, source=source, now=utcnow())
