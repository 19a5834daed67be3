"""Reaching a destination for an inbound call: ring one or several destinations at once, tell the agent who is
calling (whisper), bridge, record, and hold the caller in the queue while nobody can take the call.

A mixin of InboundCall (ari_app/inbound_call.py), which owns the channels, the event queue and the record;
this file keeps the ARI choreography of connecting apart from the call's decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ari_app.ari import AriError, AriNotFound
from ari_app.call_state import CallState, ChannelEnd, DialResult, result_from_cause, result_from_dialstatus
from ari_app.config import Destination
from dialplan.destinations import dial_string
from storage.calls import NewLeg
from storage.db import utcnow

if TYPE_CHECKING:
    from ari_app.inbound_call import InboundCall

log = logging.getLogger(__name__)

DIAL_GUARD = 10.0  # seconds beyond the ring timeout before Ringpool gives up on Asterisk's answer
STASIS_WAIT = 5.0  # seconds for a created channel to enter the app before it can be dialled
AMD_WAIT = 7.0  # seconds: Asterisk's total analysis time (5 s) plus margin
WHISPER_LIMIT = 20.0  # seconds: the longest whisper the agent hears before the caller is put through
CAUSE_ANSWERED_ELSEWHERE = 26  # Q.850 "non-selected user clearing": another phone of the group answered
RECORDING_WAIT = 5.0  # seconds for Asterisk to finish writing a recording after it is stopped
# What a group of legs rang to, when none answered: the most telling result first.
_GROUP_RESULTS = (DialResult.MACHINE, DialResult.NO_ANSWER, DialResult.BUSY, DialResult.FAILED)


@dataclass
class Ringing:
    """The outcome of ringing one destination or a group (simultaneous ring)."""

    result: DialResult
    cause: int | None
    leg: str | None = None  # the leg that answered
    destination: Destination | None = None


class Connecting:
    """Ringing, whispering, bridging, recording and holding: the parts of InboundCall that reach people."""

    async def _ring(self: "InboundCall", dests: Sequence[Destination], attempt: int, ring_timeout: int, *,
                    caller_id: str | None = None, buyer: str | None = None) -> Ringing:
        """Ring ``dests`` at once; the first to answer wins and the others are hung up at once."""
        legs: dict[str, Destination] = {}
        for i, dest in enumerate(dests):
            out_id = f"{self.id}-out{attempt}" + (chr(ord("a") + i) if len(dests) > 1 else "")
            legs[out_id] = dest
            self.ctx.registry.own(out_id, self)
            self.outbound.append(out_id)
        trunks = self.ctx.settings.trunks
        self.state = CallState.DIALING
        new_legs = [NewLeg(out_id, "outbound", dest.name, dial_string(dest, trunks)) for out_id, dest in legs.items()]
        self._write(call={"state": self.state.value, "destination": dests[0].name}, new_legs=new_legs,
                    legs={out_id: {"buyer": buyer} for out_id in legs} if buyer else None,
                    events=[("dial_started", {"destinations": [d.name for d in dests], "attempt": attempt,
                                              "legs": list(legs), "simultaneous": len(dests) > 1,
                                              "buyer": buyer, "caller_id": caller_id})])
        created = await asyncio.gather(*(
            self.ctx.rest.create_channel(dial_string(dest, trunks), self.ctx.settings.ari.app,
                                         app_args=f"outbound,{self.id}", channel_id=out_id,
                                         originator=self.inbound)
            for out_id, dest in legs.items()), return_exceptions=True)
        for out_id, outcome in zip(list(legs), created):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, AriError):
                    raise outcome
                log.warning("call %s: cannot create %s: %s", self.id, out_id, outcome)
                self.view.ended.setdefault(out_id, ChannelEnd(at=utcnow(), cause=34, cause_text="channel not created",
                                                              by_us=True, final=True, destroyed=True))
        # A created channel can only be dialled once it is in the app (its StasisStart).
        await self._wait(lambda: True if all(o in self.view.in_stasis or o in self.view.ended for o in legs)
                         or self._caller_gone() else None, STASIS_WAIT)
        if self._caller_gone():
            await self._drop_legs(legs, CAUSE_ANSWERED_ELSEWHERE)
            return Ringing(DialResult.CALLER_GONE, None)
        # ARI copies the caller's identity onto the leg when dialled with caller=: only when it is what the
        # destination should see (a presented number was set on the channel at creation instead)
        caller = None if caller_id else self.inbound
        if caller_id:
            for out_id in legs:
                if out_id in self.view.in_stasis and out_id not in self.view.ended:
                    await self._safe(self._present(out_id, caller_id))
        await asyncio.gather(*(self._safe(self.ctx.rest.dial(o, caller=caller, timeout=ring_timeout))
                               for o in legs if o in self.view.in_stasis and o not in self.view.ended))

        def leg_result(out_id: str) -> tuple[DialResult, int | None] | None:
            status = self.view.dial_status.get(out_id)
            if status and (result := result_from_dialstatus(status)) is not None:
                return result, None
            if out_id in self.view.up:
                return DialResult.ANSWERED, None
            end = self.view.ended.get(out_id)
            if end is not None and end.destroyed:  # earlier hang-up events may carry a provisional cause
                return result_from_cause(end.cause), end.cause
            return None

        def outcome() -> Ringing | None:
            if self._caller_gone():
                return Ringing(DialResult.CALLER_GONE, None)
            results = {o: leg_result(o) for o in legs}
            for out_id, found in results.items():
                if found and found[0] is DialResult.ANSWERED:
                    return Ringing(DialResult.ANSWERED, None, out_id, legs[out_id])
            if all(results.values()):
                ranked = sorted(results.values(), key=lambda r: _GROUP_RESULTS.index(r[0])
                                if r[0] in _GROUP_RESULTS else len(_GROUP_RESULTS))
                return Ringing(ranked[0][0], ranked[0][1])
            return None

        ringing = await self._wait(outcome, ring_timeout + DIAL_GUARD) or Ringing(DialResult.NO_ANSWER, None)
        answered_at = utcnow() if ringing.result is DialResult.ANSWERED else None
        losers = {o: d for o, d in legs.items() if o != ringing.leg}
        await self._drop_legs(losers, CAUSE_ANSWERED_ELSEWHERE if ringing.leg else 16)
        if ringing.leg is not None and ringing.destination is not None and ringing.destination.amd:
            if await self._destination_is_machine(ringing.leg, attempt):
                ringing = Ringing(DialResult.MACHINE, None)
            elif ringing.leg in self.view.ended:  # the destination hung up while being listened to
                ringing = Ringing(DialResult.FAILED, None)
            if ringing.leg is None:
                answered_leg = next(o for o in legs if o not in losers)
                await self._drop_legs({answered_leg: legs[answered_leg]}, 16)
                losers[answered_leg] = legs[answered_leg]
        leg_fields: dict[str, dict[str, Any]] = {}
        for out_id in legs:
            if out_id == ringing.leg:
                leg_fields[out_id] = {"dial_status": DialResult.ANSWERED.value, "answered_at": answered_at}
                continue
            end = self.view.ended.get(out_id)
            found = leg_result(out_id)
            status = ("answered_elsewhere" if ringing.leg and not found else
                      (found[0].value if found else ringing.result.value))
            if found and found[0] is DialResult.ANSWERED and ringing.result is DialResult.MACHINE:
                status = DialResult.MACHINE.value
            leg_fields[out_id] = {"dial_status": status, "ended_at": (end.at if end else None) or utcnow(),
                                  "hangup_cause": end.cause if end else None,
                                  "hangup_cause_text": end.cause_text if end else None}
        cause = ringing.cause
        if cause is None and ringing.leg is None and len(legs) == 1:
            end = self.view.ended.get(next(iter(legs)))
            cause = end.cause if end else None
        self._write(legs=leg_fields, events=[("dial_result", {
            "destinations": [d.name for d in dests], "attempt": attempt, "result": ringing.result.value,
            "cause": cause, "answered_by": ringing.destination.name if ringing.destination else None})])
        return Ringing(ringing.result, cause, ringing.leg, ringing.destination)

    async def _present(self: "InboundCall", out_id: str, number: str) -> None:
        """The number the destination sees (tracking, fixed or masked), shown, not withheld. chan_pjsip builds
        an outgoing From from the leg's connected line (the party on the other side of it); 'i' sets it
        without sending an update on a leg that has not been dialled yet."""
        await self.ctx.rest.set_variable(out_id, "CONNECTEDLINE(num,i)", number)
        await self.ctx.rest.set_variable(out_id, "CONNECTEDLINE(pres,i)", "allowed_not_screened")

    async def _drop_legs(self: "InboundCall", legs: dict[str, Destination], cause: int) -> None:
        """Hang up legs that lost (or never rang), and wait briefly for their final causes."""
        alive = [o for o in legs if o not in self.view.ended or not self.view.ended[o].final]
        for out_id in alive:
            with contextlib.suppress(AriError):
                await self._hangup(out_id, cause)
        if alive:
            await self._wait(lambda: True if all(o in self.view.ended and self.view.ended[o].cause is not None
                                                 for o in alive) else None, 2.0)

    async def _whisper(self: "InboundCall", leg: str, media: str) -> None:
        """Play ``media`` to the agent only, before the caller is put through (seed 003: who is calling, why)."""
        playback_id = f"{self.id}-whisper"
        self._event("whisper", leg=leg)
        try:
            await self.ctx.rest.play(leg, media, playback_id=playback_id)
        except AriError as exc:
            log.warning("call %s: whisper failed: %s", self.id, exc)
            return
        await self._wait(lambda: True if playback_id in self.view.playbacks_done or leg in self.view.ended
                         or self._caller_gone() else None, WHISPER_LIMIT)

    async def _hold(self: "InboundCall", music: str | None) -> None:
        """Put the caller in a holding bridge of its own with music on hold (the queue)."""
        if self.hold_bridge_id is None:
            self.hold_bridge_id = f"{self.id}-hold-bridge"
            await self.ctx.rest.create_bridge(bridge_id=self.hold_bridge_id, type="holding",
                                              name=f"ringpool-hold-{self.id}")
            await self.ctx.rest.add_to_bridge(self.hold_bridge_id, [self.inbound])
        await self.ctx.rest.start_bridge_moh(self.hold_bridge_id, music)

    async def _unhold(self: "InboundCall") -> None:
        if self.hold_bridge_id is None:
            return
        bridge, self.hold_bridge_id = self.hold_bridge_id, None
        with contextlib.suppress(AriNotFound):
            await self.ctx.rest.destroy_bridge(bridge)

    # --- recording ---------------------------------------------------------------------------------------

    async def _disclose_and_record(self: "InboundCall", disclosure: str | None) -> None:
        """Tell both sides the call is recorded (to each leg, so each hears it whole), then record the bridge."""
        assert self.bridge_id is not None and self.connected_leg is not None
        if disclosure and self.ctx.routing is not None:
            try:
                media = await asyncio.wait_for(self.ctx.routing.prompts.sound(disclosure), 5.0)
            except Exception as exc:
                log.warning("call %s: no recording disclosure (%s): not recording", self.id, exc)
                return
            legs = (self.inbound, self.connected_leg)
            ids = [f"{self.id}-disclosure-{i}" for i in range(len(legs))]
            for leg, playback_id in zip(legs, ids):
                await self.ctx.rest.play(leg, media, playback_id=playback_id)
            await self._wait(lambda: True if all(p in self.view.playbacks_done for p in ids)
                             or any(leg in self.view.ended for leg in legs) else None, 20.0)
            self._event("recording_disclosed", text=disclosure)
            if any(leg in self.view.ended for leg in legs):
                return
        await self._start_recording(self.bridge_id)

    @property
    def recording_name(self: "InboundCall") -> str:
        return f"ringpool-{self.id}"

    async def _start_recording(self: "InboundCall", bridge_id: str) -> None:
        try:
            await self.ctx.rest.record_bridge(bridge_id, self.recording_name, format="wav")
        except AriError as exc:
            log.warning("call %s: cannot record: %s", self.id, exc)
            self._event("recording_failed", message=str(exc))
            return
        self.recording_started = True
        self._event("recording_started", name=self.recording_name)

    async def _save_recording(self: "InboundCall", min_seconds: int) -> None:
        """Fetch the finished recording from Asterisk into Ringpool's recordings folder (the API serves it from
        there, even with a remote Asterisk), or delete it when shorter than the campaign's minimum."""
        if not self.recording_started:
            return
        self.recording_started = False
        with contextlib.suppress(AriError):
            await self.ctx.rest.stop_recording(self.recording_name)
        data = b""
        deadline = time.monotonic() + RECORDING_WAIT
        while time.monotonic() < deadline:
            try:
                data = await self.ctx.rest.fetch_stored_recording(self.recording_name)
                break
            except AriNotFound:
                await asyncio.sleep(0.25)  # still being written
            except AriError as exc:
                log.warning("call %s: cannot fetch the recording: %s", self.id, exc)
                break
        with contextlib.suppress(AriError):
            await self.ctx.rest.delete_stored_recording(self.recording_name)
        if not data:
            self._event("recording_failed", message="Asterisk has no finished recording")
            return
        folder = self.ctx.settings.state_dir / "recordings"
        path = folder / f"{self.id}.wav"
        seconds = await asyncio.get_running_loop().run_in_executor(None, _store_wav, path, data)
        if seconds is None or seconds < min_seconds:
            await asyncio.get_running_loop().run_in_executor(None, path.unlink, True)
            self._write(call={"recording_seconds": seconds},
                        events=[("recording_deleted", {"seconds": seconds, "min_seconds": min_seconds})])
            return
        self._write(call={"recording": str(path.relative_to(self.ctx.settings.state_dir)),
                          "recording_seconds": seconds}, events=[("recording_saved", {"seconds": seconds})])


def _store_wav(path: Path, data: bytes) -> float | None:
    """Write the recording (whole file or nothing) and return its length in seconds, None if unreadable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    try:
        with wave.open(str(tmp), "rb") as wav:
            seconds = wav.getnframes() / float(wav.getframerate() or 8000)
    except (wave.Error, EOFError):
        tmp.unlink()
        return None
    tmp.replace(path)
    return round(seconds, 2)

