"""One inbound call, from StasisStart to the final record: decide, answer, greet, dial, bridge, clean up.

Each call runs as its own task and owns its channels and bridge. Events for its channels arrive on its
own queue (routed by ari_app.call_manager) and are folded into a ChannelView; the flow below waits on
that view. Whatever happens (caller gone, ARI errors, cancellation at shutdown), ``run`` finalises the
record and hangs up what the call created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol, TypeVar

from ari_app.ari import AriError, AriNotFound, AriRest
from ari_app.call_state import CallState, ChannelView, DialResult, ari_time
from ari_app.call_connect import AMD_WAIT, STASIS_WAIT, Connecting, Ringing
from ari_app.call_detections import CallDetections
from ari_app.config import Campaign, Settings
from ari_app.ivr_port import PLAYBACK_LIMIT, CallFlowPort
from ari_app.media.interpret import Detection
from ari_app.media.tap import SAMPLE_RATE, MediaTap, TapError
from ari_app.screening.after import dialer_tone, keep_despite_tone, score2
from ari_app.screening.signatures import OPENING_SECONDS
from detectors.hub import HubRunner
from detectors.speech import SpeechConfig, create_speech, model_ready
from dialplan.decision import Action, Decision, decide
from dialplan.signaling import Signaling, signaling_from_channel
from ivr.engine import run_flow
from ivr.flow import Prompt
from storage.async_store import AsyncCallStore
from storage.calls import NewCall, NewLeg
from storage.db import utcnow

if TYPE_CHECKING:
    from ari_app.config import QueueSettings
    from ari_app.routing.service import RoutingService
    from dialplan.facts import CallFacts
    from dialplan.quality import Quality
    from dialplan.routing import RoutingSettings
    from ivr.engine import FlowOutcome
    from ivr.flow import Flow
    from ari_app.screening.model import Refusal, ScreeningSettings
    from ari_app.screening.score import Verdict
    from ari_app.screening.service import ScreeningService
    from ari_app.tracking.attribution import Arrival
    from ari_app.tracking.service import TrackingService

log = logging.getLogger(__name__)
T = TypeVar("T")

CAUSE_NORMAL = 16
DIGITS = frozenset("0123456789*#ABCD")
AGENT_SPAM_CODE = "*7"  # pressed by the agent on a bridged call: the caller is spam
PRESENCE = frozenset({"speech_start", "speech"})  # what counts as a person (or a room) being there
AGENT_WARNING = "tone:!1400/150,!0/100,!1400/150,!0/100,!1400/150"  # beeps to the agent before a dialer is dropped
ANSWER_TONE = "tone:!2100/3300"  # a modem's answer tone: dialers hear a machine, and go
SIT_TONES = "tone:!950/330,!1400/330,!1800/330,0/1000"  # the not-in-service intercept tones, then the message
WAKE = {"type": "RingpoolWake"}  # queued so a waiting flow re-checks its condition (e.g. after a detection)
CALLER_CAUSES = {DialResult.BUSY: 17, DialResult.NO_ANSWER: 19, DialResult.MACHINE: 19, DialResult.FAILED: 34}
DISPOSITIONS = {DialResult.BUSY: "busy", DialResult.NO_ANSWER: "no_answer", DialResult.MACHINE: "no_answer",
                DialResult.FAILED: "failed"}
DESTROY_WAIT = 2.0  # seconds to wait for the legs' last events (final causes) after the call ends
FIRST_DIGIT_WAIT = 6.0  # seconds after a prompt for the first digit
EXTENSION_TRIES = 2
WHISPER_RENDER_WAIT = 5.0  # seconds for espeak-ng to render a whisper or announcement before going without it
QUEUE_VOICEMAIL_TEXT = "Nobody is available to take your call. Please leave a message after the tone."
QUEUE_VOICEMAIL_SECONDS = 120
QUEUE_CALLBACK_TEXT = "Nobody is available right now. We will call you back as soon as someone is. Goodbye."
QUEUE_GOODBYE_TEXT = "Nobody is available to take your call. Please call again later. Goodbye."


class ChannelRegistry(Protocol):
    def own(self, channel_id: str, call: "InboundCall") -> None: ...
    def disown(self, channel_id: str) -> None: ...


@dataclass
class CallContext:
    rest: AriRest
    store: AsyncCallStore
    settings: Settings
    registry: ChannelRegistry
    hub: HubRunner
    on_latency: Callable[[float], None] | None = None
    on_rejection: Callable[[str], None] | None = None  # screening turned a call away, and why (for /metrics)
    tracking: "TrackingService | None" = None  # pools and attribution
    screening: "ScreeningService | None" = None  # score 1 before answer, the challenge after
    routing: "RoutingService | None" = None  # facts, quality, plans, caps, the queue, payouts


class CallerGone(Exception):
    """The caller hung up: every wait ends with this so the flow unwinds to the record."""


class InboundCall(Connecting):
    def __init__(self, ctx: CallContext, call_id: str, channel: dict[str, Any], start_event: dict[str, Any]) -> None:
        self.ctx = ctx
        self.id = call_id
        self.inbound = channel["id"]
        self.channel = channel
        self.start_event = start_event
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.view = ChannelView()
        self.state = CallState.ARRIVED
        self.answered = False
        self.outbound: list[str] = []
        self.bridge_id: str | None = None
        self.finished = False
        self.decision_latency_ms: float | None = None
        self.campaign: Campaign | None = None
        self.tap: MediaTap | None = None
        self.detection_path: str | None = None
        self.detections = CallDetections(ctx.store, call_id, wake=lambda: self.queue.put_nowait(WAKE))
        self.digits: list[str] = []  # the caller's DTMF, in order, for prompts that gather digits
        self.arrived_mono = time.monotonic()
        self.answered_mono: float | None = None
        self.challenge_failed = False
        self.agent_digits = ""
        self.listening_since: float | None = None  # when the caller's audio started reaching the detectors
        self.spam_reason: str | None = None  # the first reason this call was found to be spam
        self.announcement: dict[str, Any] | None = None  # the spam announcement the opening matched
        self.background: set[asyncio.Task[None]] = set()  # work for this call that must not be collected
        self.arrival: "Arrival | None" = None
        self.signaling: Signaling | None = None
        self.verdict: "Verdict | None" = None
        self.screen_settings: "ScreeningSettings | None" = None
        self.extension_used: tuple[str, str] | None = None  # (pool, extension) to release when the call ends
        self.connected_leg: str | None = None  # the outbound leg bridged to the caller
        self.hold_bridge_id: str | None = None  # the caller's holding bridge while it waits in the queue
        self.recording_started = False
        self.arrived_at = ari_time(start_event) or utcnow()
        self.facts: "CallFacts | None" = None  # what routing decisions read, once the campaign is known
        self.quality: "Quality | None" = None
        self.attempts = 0  # ringing attempts so far (legs are named after them)
        self.queue_joined: float | None = None  # when the caller joined the queue (a callback keeps the place)
        self.claimed: tuple[tuple[str, ...], str | None] | None = None  # the bridged destination and buyer's place

    # --- plumbing ----------------------------------------------------------------------------------------

    def deliver(self, event: dict[str, Any]) -> None:
        if event.get("type") == "ChannelDtmfReceived":
            self._rfc4733_digit(event)
            channel_id = (event.get("channel") or {}).get("id")
            if channel_id == self.inbound and str(event.get("digit", "")) in DIGITS:
                self.digits.append(str(event["digit"]))
            elif channel_id in self.outbound:
                self._agent_digit(str(event.get("digit", "")))
        self.queue.put_nowait(event)

    def _agent_digit(self, digit: str) -> None:
        """The agent marks a call spam from the phone (seed 001, C22): AGENT_SPAM_CODE on the destination leg."""
        self.agent_digits = (self.agent_digits + digit)[-len(AGENT_SPAM_CODE):]
        if self.agent_digits == AGENT_SPAM_CODE:
            self._event("agent_marked_spam", code=AGENT_SPAM_CODE)
            self._mark_spam(f"the agent marked it spam ({AGENT_SPAM_CODE} on the phone)", "agent")

    # --- listening ---------------------------------------------------------------------------------------

    def watch_detections(self) -> "asyncio.Queue[Detection]":
        """This call's detections as they happen, for screening, IVR and routing to react to."""
        return self.detections.watch()

    def _rfc4733_digit(self, event: dict[str, Any]) -> None:
        channel_id = (event.get("channel") or {}).get("id")
        if channel_id in self.channels():
            self.detections.rfc4733(event, "caller" if channel_id == self.inbound else "destination")

    def _new_tap(self, tap_id: str, channel_id: str, leg: str) -> MediaTap:
        """A tap whose detections land on this call."""
        tap: MediaTap

        def on_events(events: list[Any]) -> None:
            self.detections.from_media(events, leg, tap.started_at)

        speech = None
        wants_speech = self.campaign is not None and (self.campaign.detection.speech or self._flow_listens())
        if leg == "caller" and wants_speech and model_ready(self.ctx.settings.speech.model):  # still loading: no transcript for this call
            speech = create_speech(SpeechConfig(model_path=str(self.ctx.settings.speech.model or "") or None,
                                                keywords=self.ctx.settings.speech.keywords or None), SAMPLE_RATE)
        tap = MediaTap(self.ctx.rest, self.ctx.settings.ari.app, tap_id=tap_id, channel_id=channel_id,
                       own=lambda channel: self.ctx.registry.own(channel, self),
                       disown=self.ctx.registry.disown, on_events=on_events, hub=self.ctx.hub, speech=speech)
        return tap

    def _flow_listens(self) -> bool:
        """Whether the campaign's flow takes spoken answers (its menus' words, its speech questions)."""
        flow = self.ctx.settings.flows.get(self.campaign.flow) if self.campaign and self.campaign.flow else None
        return flow is not None and any(getattr(node, "words", None) for node in flow.nodes.values())

    async def _start_tap(self, tap: MediaTap) -> bool:
        async def in_stasis(channels: tuple[str, ...]) -> bool:
            return bool(await self._wait(
                lambda: True if all(c in self.view.in_stasis for c in channels) else None, STASIS_WAIT))

        try:
            await tap.start(in_stasis)
            self._event("listening", tap=tap.tap_id, channel=tap.channel_id)
            return True
        except (AriError, TapError) as exc:
            # Detection is an aid, never a reason to drop the call.
            log.warning("call %s: cannot listen to %s: %s", self.id, tap.channel_id, exc)
            self._event("listen_failed", channel=tap.channel_id, message=str(exc))
            await self._safe(tap.stop())
            return False

    async def _start_listening(self) -> None:
        if self.tap is not None:
            return
        self.tap = self._new_tap(f"{self.id}-tap", self.inbound, "caller")
        if not await self._start_tap(self.tap):
            self.tap = None
        else:
            self.listening_since = time.monotonic()
            if self.ctx.screening is not None and self.screen_settings is not None and self.screen_settings.enabled:
                self.tap.record_opening(OPENING_SECONDS, self._on_opening)

    def _on_opening(self, samples: Any) -> None:
        """The caller's first seconds: compared with the openings of spam calls (announcement signatures)."""
        task = asyncio.get_running_loop().create_task(self._check_opening(samples))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _check_opening(self, samples: Any) -> None:
        assert self.ctx.screening is not None and self.screen_settings is not None
        try:
            match = await self.ctx.screening.signatures.check_opening(self.id, samples, SAMPLE_RATE)
        except Exception:
            log.exception("call %s: announcement check failed", self.id)
            return
        if match is None:
            return
        self.announcement = match
        self._event("announcement_match", **match)
        if self.screen_settings.signature_block and not self.finished:
            self._mark_spam(f"the opening matches spam announcement {match['signature']}", "announcement")
            with contextlib.suppress(AriError):
                await self._hangup(self.inbound)  # the flow unwinds from the caller's end as usual

    async def _destination_is_machine(self, out_id: str, attempt: int) -> bool:
        """Answering-machine detection on an answered destination, before it is bridged."""
        tap = self._new_tap(f"{self.id}-amd{attempt}", out_id, "destination")
        if not await self._start_tap(tap):
            return False
        tap.arm_amd()
        seen = len(self.detections.items)
        try:
            verdict = await self._wait(lambda: self.detections.since(seen, "amd", "destination")
                                       if not self._caller_gone() and out_id not in self.view.ended else False,
                                       AMD_WAIT)
        finally:
            await self._safe(tap.stop())
        if self._caller_gone():
            raise CallerGone()
        status = verdict.details.get("status") if verdict else "NOTSURE"
        self._event("destination_amd", leg=out_id, status=status, cause=verdict.details.get("cause") if verdict else None)
        return status == "MACHINE"

    async def _listen_before_answer(self, seconds: int) -> None:
        """Send 183 and listen to early media; without early audio, detection starts at answer."""
        await self._start_listening()
        await self._wait(lambda: True if self._caller_gone() else None, seconds)
        if self._caller_gone():
            raise CallerGone()
        heard = bool(self.tap and self.tap.heard_energy)
        self.detection_path = "early_media" if heard else "after_answer"
        self._write(call={"detection_path": self.detection_path},
                    events=[("early_media", {"seconds": seconds, "audio_heard": heard})])

    async def _answered(self) -> None:
        """Everything that starts when the caller is answered: listening, the no-speech timer."""
        detection = self.campaign.detection if self.campaign else None
        screened = self.screen_settings is not None and self.screen_settings.enabled  # score 2 needs the media
        if not screened and (detection is None or not detection.listen):
            return
        await self._start_listening()
        if self.detection_path is None:
            self.detection_path = "after_answer"
            self._write(call={"detection_path": self.detection_path})
        if detection is not None and detection.expect_speech and self.tap is not None:
            self.tap.expect_speech(detection.expect_speech)

    def _write(self, *, call: dict[str, Any] | None = None, new_legs: list[NewLeg] = (),
               legs: dict[str, dict[str, Any]] | None = None, events: list[tuple[str, dict[str, Any] | None]] = ()) -> None:
        """Queue one step of the record (one transaction). The call does not wait for it: writes keep
        their order on the storage thread, and finishing the record awaits them all."""
        now = utcnow()
        self.ctx.store.submit("apply", self.id, call=call, new_legs=list(new_legs), legs=legs,
                              events=[(kind, now, data) for kind, data in events])

    def _event(self, kind: str, **data: Any) -> None:
        self._write(events=[(kind, data or None)])

    def _set_state(self, state: CallState, *, event: tuple[str, dict[str, Any] | None] | None = None,
                   **fields: Any) -> None:
        self.state = state
        self._write(call={"state": state.value, **fields}, events=[event] if event else [])
        log.debug("call %s: %s", self.id, state.value)

    async def _wait(self, condition: Callable[[], T | None], timeout: float | None) -> T | None:
        """Consume this call's events until ``condition`` gives a value, or the timeout passes (None).

        ``timeout=None`` only where the far end's hang-up is the natural end (a bridged call)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while (result := condition()) is None:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                event = await asyncio.wait_for(self.queue.get(), remaining)
            except asyncio.TimeoutError:
                return None
            self.view.observe(event)
        return result

    def _caller_gone(self) -> bool:
        return self.inbound in self.view.ended

    async def _first_command(self, command: Awaitable[Any]) -> Any:
        """Send the call's first command, measuring the pre-answer decision latency on the way:
        from StasisStart's own timestamp to the moment the command is sent."""
        latency_ms = None
        started = self.start_event.get("timestamp")
        if started:
            try:
                sent = time.time()
                latency_ms = round((sent - datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()) * 1000, 3)
            except ValueError:
                pass
        result = await command
        if latency_ms is not None:
            self.decision_latency_ms = latency_ms
            if self.ctx.on_latency:
                self.ctx.on_latency(latency_ms)
            self._write(call={"decision_latency_ms": latency_ms})
        return result

    async def _hangup(self, channel_id: str, cause: int = CAUSE_NORMAL) -> None:
        self.view.hung_up_by_us.add(channel_id)  # before the request: its events may arrive before the reply
        try:
            await self.ctx.rest.hangup(channel_id, reason_code=cause)
        except AriNotFound:
            pass
        except AriError:
            self.view.hung_up_by_us.discard(channel_id)  # not hung up after all: cleanup tries again
            raise

    # --- the flow ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Handle a new call start to end; the record is finalised on every path."""

        async def flow() -> tuple[str, int | None, str | None]:
            signaling = self.signaling = signaling_from_channel(self.channel)
            # The one write the call waits for: the record exists before anything is done to the call.
            await self.ctx.store.call("create_call", _new_call(self.id, signaling, self.start_event))
            if self.ctx.screening is not None:
                # the number's state, the visitor behind it and the caller's history, before deciding
                screened = await self.ctx.screening.arrive(self.id, signaling)
                self.arrival, self.verdict, self.screen_settings = screened.arrival, screened.verdict, screened.settings
            elif self.ctx.tracking is not None:
                self.arrival = await self.ctx.tracking.arrive(self.id, signaling.dialed_number,
                                                              signaling.caller_number)
            return await self._handle(signaling)

        await self._guarded(flow)

    async def run_adopted(self, out_id: str) -> None:
        """Supervise a bridged call found alive after the app restarted, until it ends."""
        self.state = CallState.BRIDGED
        self.outbound.append(out_id)
        self.connected_leg = out_id
        self.bridge_id = f"{self.id}-bridge"
        self._event("adopted", legs=[self.inbound, out_id])
        await self._guarded(lambda: self.supervise_bridge(out_id))

    async def _guarded(self, flow: Callable[[], Awaitable[tuple[str, int | None, str | None]]]) -> None:
        disposition, cause, side = "failed", None, None
        try:
            disposition, cause, side = await flow()
        except CallerGone:
            disposition = "completed" if self.state == CallState.BRIDGED else "abandoned"
            side = "caller"
        except asyncio.CancelledError:
            # Shutdown: the call keeps going in Asterisk; the next start adopts or closes the record.
            self.finished = True
            raise
        except AriError as exc:
            log.warning("call %s: ARI error: %s", self.id, exc)
            self._event("error", message=str(exc))
            self._drain()  # the caller's hang-up may be why the command failed
            if self.state == CallState.BRIDGED:
                disposition = "completed"
            else:
                disposition = "abandoned" if self._caller_gone() else "failed"
        except Exception:
            log.exception("call %s: unexpected error", self.id)
            self._event("error", message="internal error, see log")
        finally:
            if not self.finished:
                await self._safe(self._cleanup())
                await self._safe(self._finish(disposition, cause, side))
                for channel_id in self.channels():
                    self.ctx.registry.disown(channel_id)

    async def _safe(self, coro: Awaitable[Any]) -> None:
        """Run a cleanup step; its failure must not stop the next one. No timeout here: ARI requests
        carry their own, and a queued database write must never be cancelled."""
        try:
            await coro
        except Exception:
            log.exception("call %s: cleanup step failed", self.id)

    def _drain(self) -> None:
        """Fold events already queued into the view, without waiting."""
        while not self.queue.empty():
            self.view.observe(self.queue.get_nowait())

    async def _handle(self, signaling: Signaling) -> tuple[str, int | None, str | None]:
        decision = decide(signaling, self.ctx.settings, self.arrival.number if self.arrival else None,
                          self.verdict)
        self._record_decision(decision)
        if decision.verdict is not None and decision.verdict.action == "quarantine" and self.ctx.screening:
            await self.ctx.screening.quarantine(signaling, decision.details.get("number_state", ""), self.id)
        return await self._act(decision, signaling)

    async def _act(self, decision: Decision, signaling: Signaling) -> tuple[str, int | None, str | None]:
        if decision.action is Action.REJECT:
            cause = decision.hangup_cause or CAUSE_NORMAL
            refusal = decision.refusal
            if refusal is None or refusal.action != "voice_check" or decision.route is None:
                await self._refuse(refusal, cause)
                self._set_state(CallState.REJECTED)
                return "rejected", cause, "ringpool"
            if not await self._voice_through(refusal):
                await self._hangup(self.inbound)
                self._set_state(CallState.REJECTED)
                return "rejected", CAUSE_NORMAL, "ringpool"
        route = decision.route
        assert route is not None
        campaign = self.campaign = route.campaign
        if campaign.detection.listen and campaign.detection.early_media and not self.answered:
            await self._first_command(self.ctx.rest.progress(self.inbound))
            self._set_state(CallState.EARLY_MEDIA)
            await self._listen_before_answer(campaign.detection.early_media)
        routing = self.ctx.routing
        flow = self.ctx.settings.flows.get(campaign.flow) if campaign.flow else None
        asks_extension = route.tracking_number.role == "extension" and self.ctx.tracking is not None
        if campaign.greeting or asks_extension or decision.challenge or flow or self.answered:
            if not self.answered:
                await self._first_command(self.ctx.rest.answer(self.inbound))
                self._mark_answered()
                await self._answered()
            if decision.challenge and not await self._challenge(signaling):
                await self._hangup(self.inbound)
                return "rejected", CAUSE_NORMAL, "ringpool"
            if asks_extension:
                await self._ask_extension(route.tracking_number.pool or "")
            if campaign.greeting:
                self._set_state(CallState.GREETING)
                await self._play(campaign.greeting)
        else:
            # No prompt to play: let the caller hear ringing and answer only when the destination does,
            # so an unanswered call is never charged to the caller.
            await self._first_command(self.ctx.rest.ring(self.inbound))
            self._set_state(CallState.RINGING)

        # After the first command: the caller's history is one more storage read, kept out of the pre-answer
        # decision's latency.
        self.facts = await routing.facts(self.id, signaling, campaign, self.arrival,
                                         self.verdict.score if self.verdict else None, self.arrived_at)
        self.quality = routing.initial_quality(campaign, self.facts)
        region = self.facts.region
        self._write(call=self.quality.record() | {
            "number_type": self.facts.number_type,
            "region": ", ".join(x for x in (region.country, region.state, region.area_code) if x) if region else None})
        settings = routing.routing_for(campaign)
        if flow is not None:
            outcome = await self._run_flow(flow)
            if outcome.kind in ("hangup", "voicemail"):
                await self._hangup(self.inbound)
                return ("voicemail" if outcome.kind == "voicemail" and outcome.spec else "completed",
                        CAUSE_NORMAL, "ringpool")
            if outcome.kind == "queue":
                return await self._route(campaign, settings, queue_first=True)
            if outcome.kind == "destination":
                chosen = routing.to_destination(campaign, str(outcome.spec))
                if chosen is None:
                    self._event("decision_destination_refused", destination=str(outcome.spec)[:80],
                                reason="not a configured destination")
                settings = chosen or settings
            else:
                settings = routing.routing_for(campaign, outcome.node)
        return await self._route(campaign, settings)

    async def _run_flow(self, flow: "Flow") -> "FlowOutcome":
        """The campaign's IVR: every node, key and answer goes on the record; answers feed quality and routing."""
        assert self.facts is not None and self.campaign is not None and self.quality is not None
        self._set_state(CallState.IVR, flow=flow.name)
        port = CallFlowPort(self, self.ctx.routing.prompts, self.ctx.routing.http)
        outcome = await run_flow(flow, port, self.facts, schedules=self.ctx.settings.schedules,
                                 clock=lambda: datetime.now(timezone.utc))
        self.quality = self.ctx.routing.after_ivr(self.campaign, self.quality, self.facts)
        self._write(call=self.quality.record() | {"ivr_path": outcome.path, "ivr_answers": outcome.answers,
                                                  "tags": sorted(self.facts.tags)},
                    events=[("ivr_outcome", {"kind": outcome.kind, "node": outcome.node, "reason": outcome.reason})])
        return outcome

    async def _route(self, campaign: Campaign, settings: "RoutingSettings", *,
                     queue_first: bool = False) -> tuple[str, int | None, str | None]:
        """Try the plan; when nobody can take the call, the queue (if the campaign has one), else the fallback
        message and the caller hears why (486 busy, 480 no answer, 503 failure)."""
        result, last_cause = DialResult.FAILED, None
        if not queue_first:
            tried = await self._try_route(campaign, settings)
            if isinstance(tried, tuple):
                return tried
            result, last_cause = tried.result, tried.cause
        if campaign.queue is not None:
            served = await self._queue(campaign, settings)
            if served is not None:
                return served
            return await self._queue_fallback(campaign.queue, _reachable(settings), self.queue_joined)
        if campaign.fallback.message:
            self._set_state(CallState.FALLBACK_MESSAGE)
            if not self.answered:
                await self.ctx.rest.answer(self.inbound)
                self._mark_answered()
                await self._answered()
            await self._play(campaign.fallback.message)
        await self._hangup(self.inbound, CALLER_CAUSES.get(result, CAUSE_NORMAL))
        return DISPOSITIONS.get(result, "failed"), last_cause, "destination"

    async def _try_route(self, campaign: Campaign, settings: "RoutingSettings") -> "Ringing | tuple[str, int | None, str | None]":
        """Plan (destinations, bids, caps) and ring each attempt in turn; a bridged call's end when one answers."""
        assert self.facts is not None
        routing = self.ctx.routing
        plan = await routing.plan(settings, self.facts)
        self._write(call=plan.record(), events=[("route_plan", {
            "strategy": plan.strategy, "attempts": [asdict(a) for a in plan.attempts], "skipped": list(plan.skipped),
            "notes": list(plan.notes)})])
        whisper = asyncio.ensure_future(routing.prompts.sound(plan.whisper)) if plan.whisper else None
        last = Ringing(DialResult.FAILED, None)
        try:
            for attempt in plan.attempts:
                dests = [self.ctx.settings.destinations[name] for name in attempt.destinations]
                routing.claim(attempt)
                self.attempts += 1
                try:
                    last = await self._ring(dests, self.attempts, plan.ring_timeout, buyer=attempt.buyer,
                                            caller_id=plan.caller_id if settings.caller_id.kind != "original" else None)
                finally:
                    kept = last.destination.name if last.leg is not None and last.destination else None
                    routing.release(tuple(d for d in attempt.destinations if d != kept),
                                    None if kept else attempt.buyer, offer=False)
                if last.result is DialResult.CALLER_GONE:
                    raise CallerGone()
                if last.leg is not None and last.destination is not None:
                    self.claimed = ((last.destination.name,), attempt.buyer)
                    if attempt.buyer:
                        self._write(call={"buyer": attempt.buyer, "winning_bid": attempt.bid},
                                    events=[("bid_won", {"buyer": attempt.buyer, "bid": attempt.bid})])
                    if whisper is not None:
                        media = await self._whisper_media(whisper)
                        if media:
                            await self._whisper(last.leg, media)
                    return await self._bridge(last.leg)
        finally:
            if whisper is not None and not whisper.done():
                whisper.cancel()
        return last

    async def _whisper_media(self, rendering: "asyncio.Future[str]") -> str | None:
        try:
            return await asyncio.wait_for(asyncio.shield(rendering), WHISPER_RENDER_WAIT)
        except Exception as exc:  # espeak-ng missing or slow: the agent just gets the caller
            log.warning("call %s: no whisper: %s", self.id, exc)
            return None

    async def _queue(self, campaign: Campaign, settings: "RoutingSettings") -> tuple[str, int | None, str | None] | None:
        """Wait in the queue with music on hold, best quality first (seed 000), hearing the position now and
        then; tried again each time a destination frees up. None when the maximum wait passed."""
        assert campaign.queue is not None and self.facts is not None
        queue, routing = campaign.queue, self.ctx.routing
        wanted = _reachable(settings)
        if not self.answered:
            await self._first_command(self.ctx.rest.answer(self.inbound))
            self._mark_answered()
            await self._answered()
        await self._hold(queue.music)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline, announce_at = started + queue.max_wait, started
        self._set_state(CallState.QUEUED, queued_at=utcnow(),
                        event=("queued", {"quality": self.facts.quality, "destinations": list(wanted)}))
        joined: float | None = None
        try:
            while True:
                waiter = routing.join_queue(self.id, self.facts.quality, wanted, joined)
                joined = self.queue_joined = waiter.joined
                waker = asyncio.ensure_future(self._wake_when(waiter.woken))
                try:
                    while not waiter.woken.is_set() and loop.time() < deadline:
                        if queue.announce_every and loop.time() >= announce_at:
                            await self._announce_position(routing.queue.position(self.id) or 1)
                            announce_at = loop.time() + queue.announce_every
                        until = min(deadline, announce_at) if queue.announce_every else deadline
                        await self._wait(lambda: True if waiter.woken.is_set() or self._caller_gone() else None,
                                         max(0.05, until - loop.time()))
                        self._check_caller()
                finally:
                    waker.cancel()
                    routing.queue.leave(self.id)
                if not waiter.woken.is_set():
                    self._event("queue_timeout", waited=round(loop.time() - started, 1))
                    return None
                self._event("queue_offer", destination=waiter.offered, position=1)
                tried = await self._try_route(campaign, settings)
                if isinstance(tried, tuple):
                    return tried
                await self._hold(queue.music)  # taken before we got there: back in line, same place
                self._set_state(CallState.QUEUED)
        finally:
            self._write(call={"queue_seconds": round(loop.time() - started, 1)})

    async def _wake_when(self, woken: asyncio.Event) -> None:
        await woken.wait()
        self.queue.put_nowait(WAKE)

    async def _announce_position(self, position: int) -> None:
        text = f"You are caller number {position}. Please hold." if position > 1 else \
            "You are next in line. Please hold."
        try:
            media = await asyncio.wait_for(self.ctx.routing.prompts.sound(text), WHISPER_RENDER_WAIT)
            await self.ctx.rest.play(self.inbound, media, playback_id=f"{self.id}-position-{int(time.monotonic() * 1000)}")
        except Exception as exc:  # an announcement is a courtesy: the caller keeps its place without it
            log.info("call %s: no position announcement: %s", self.id, exc)
            return
        self._event("queue_position", position=position)

    async def _queue_fallback(self, queue: "QueueSettings", wanted: tuple[str, ...],
                              joined: float | None) -> tuple[str, int | None, str | None]:
        """After the maximum wait: a message, or a callback that keeps the caller's place in the queue (only to a
        number the campaign's click_to_call allows), or the goodbye."""
        await self._unhold()
        self._set_state(CallState.FALLBACK_MESSAGE)
        port = CallFlowPort(self, self.ctx.routing.prompts, self.ctx.routing.http)
        callback = self._callback_number() if queue.fallback == "callback" else None
        if callback is not None:
            assert self.campaign is not None and self.facts is not None
            self.ctx.routing.request_callback(self.campaign.name, callback, self.facts.quality, wanted, joined)
            self._write(events=[("callback_requested", {"number": callback})])
            await port.play((Prompt("text", QUEUE_CALLBACK_TEXT),), interruptible=False)
            await self._hangup(self.inbound)
            return "callback", CAUSE_NORMAL, "ringpool"
        if queue.fallback in ("voicemail", "callback"):  # no number to call back: a message instead
            saved = await port.record_voicemail((Prompt("text", QUEUE_VOICEMAIL_TEXT),), QUEUE_VOICEMAIL_SECONDS)
            await self._hangup(self.inbound)
            return ("voicemail" if saved else "no_answer"), CAUSE_NORMAL, "ringpool"
        await port.play((Prompt("text", QUEUE_GOODBYE_TEXT),), interruptible=False)
        await self._hangup(self.inbound)
        return "no_answer", CAUSE_NORMAL, "ringpool"

    def _callback_number(self) -> str | None:
        options = self.campaign.click_to_call if self.campaign else None
        number = self.facts.caller_number if self.facts and not self.facts.anonymous else None
        if options is None or not number or not number.startswith(options.prefixes):
            return None
        return number

    def _check_caller(self) -> None:
        if self._caller_gone():
            raise CallerGone()

    def _record_decision(self, decision: Decision) -> None:
        route = decision.route
        fields: dict[str, Any] = {"decision": decision.action.value, "decision_reasons": list(decision.reasons)}
        if route and decision.action is Action.PROCEED:
            fields |= {"campaign": route.campaign.name, "destination": route.destinations[0].name}
        elif route:
            fields["campaign"] = route.campaign.name
        elif self.arrival is not None and self.arrival.number is not None:
            fields["campaign"] = self.arrival.number.campaign  # refused calls count against their campaign
        if decision.verdict is not None:
            fields |= decision.verdict.record()
            if decision.action is Action.REJECT and decision.verdict.action == "refuse":
                self.spam_reason = decision.reasons[0]
                fields |= {"spam": 1, "spam_reason": self.spam_reason}
        if decision.action is Action.REJECT:
            self._count_rejection(_rejection_kind(decision))
        self._write(call=fields, events=[("decision", {"action": decision.action.value,
                                                       "reasons": list(decision.reasons),
                                                       "campaign": route.campaign.name if route else None})])

    def _mark_answered(self) -> None:
        self.answered = True
        self.answered_mono = time.monotonic()
        now = utcnow()
        self._write(call={"answered_at": now}, legs={self.inbound: {"answered_at": now}}, events=[("answered", None)])

    async def _play(self, sound: str) -> None:
        playback_id = f"{self.id}-play-{len(self.view.playbacks_done)}-{int(time.monotonic() * 1000)}"
        self._event("playback_started", sound=sound)
        await self.ctx.rest.play(self.inbound, f"sound:{sound}", playback_id=playback_id)
        done = await self._wait(lambda: True if playback_id in self.view.playbacks_done or self._caller_gone()
                                else None, PLAYBACK_LIMIT)
        if self._caller_gone():
            raise CallerGone()
        self._event("playback_finished", sound=sound, completed=bool(done))

    async def _refuse(self, refusal: "Refusal | None", cause: int) -> None:
        """Refuse the call. reject, ring and announce never answer, so the caller is never charged: a SIP error,
        ringing that is never answered, or the not-in-service tones and announcement as early media. The
        deterrents answer: a modem answer tone, or the announcement after a long delay."""
        if refusal is None or refusal.action == "reject":
            await self._first_command(self._hangup(self.inbound, cause))
            return
        if refusal.action == "ring":
            await self._first_command(self.ctx.rest.ring(self.inbound))
            self._event("refusal", action="ring", seconds=refusal.seconds)
            await self._wait(lambda: True if self._caller_gone() else None, refusal.seconds)
        elif refusal.action == "announce":
            await self._first_command(self.ctx.rest.progress(self.inbound))
            self._event("refusal", action="announce")
            await self._play_early(f"{SIT_TONES},sound:ss-noservice", refusal.seconds)
        else:  # a deterrent that answers (so it costs the caller): a modem answer tone, or a delayed answer
            if refusal.action == "delay":
                await self._first_command(self.ctx.rest.ring(self.inbound))
                await self._wait(lambda: True if self._caller_gone() else None, refusal.seconds)
                if self._caller_gone():
                    raise CallerGone()
                await self.ctx.rest.answer(self.inbound)
            else:
                await self._first_command(self.ctx.rest.answer(self.inbound))
            self._mark_answered()
            self._event("refusal", action=refusal.action)
            await self._play_early(ANSWER_TONE if refusal.action == "answer_tone" else "sound:ss-noservice", 10.0)
        if self._caller_gone():
            raise CallerGone()
        await self._hangup(self.inbound, cause)

    async def _voice_through(self, refusal: "Refusal") -> bool:
        """A refused caller may be a person after all (seed 001, C2 false positives): answer, listen, and if a
        voice is heard, offer "press 1 to reach us". Only with the voice_check refusal, which answers."""
        assert self.ctx.screening is not None
        await self._first_command(self.ctx.rest.answer(self.inbound))
        self._mark_answered()
        self._set_state(CallState.CHALLENGE)
        await self._start_listening()
        started = len(self.detections.items)
        heard = await self._wait(lambda: True if self._caller_gone() or any(
            d.leg == "caller" and d.kind in PRESENCE for d in self.detections.items[started:]) else None,
            refusal.seconds)
        if self._caller_gone():
            raise CallerGone()
        if heard:
            self._event("voice_heard", offer="press 1")
        entered = await self._gather_digits(self.ctx.screening.way_through_prompt, max_digits=1) if heard else ""
        through = entered == "1"
        self._event("voice_check", heard=bool(heard), entered=entered or None, through=through)
        if through:
            self._write(call={"spam": 0, "spam_reason": None})
            self.spam_reason = None
        return through

    async def _play_early(self, media: str, limit: float) -> None:
        playback_id = f"{self.id}-early-{int(time.monotonic() * 1000)}"
        await self.ctx.rest.play(self.inbound, media, playback_id=playback_id)
        await self._wait(lambda: True if playback_id in self.view.playbacks_done or self._caller_gone() else None,
                         limit)

    async def _challenge(self, signaling: Signaling) -> bool:
        """The extra treatment for a yellow score or a quarantined caller (seed 001, C13 and C16): press a
        digit that changes from call to call, and be heard (voice or noise) within a window. Failing blocks
        the caller for a while; the call is marked spam."""
        assert self.ctx.screening is not None and self.screen_settings is not None
        settings = self.screen_settings
        self._set_state(CallState.CHALLENGE)
        await self._start_listening()
        started = len(self.detections.items)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.presence_seconds
        passed = False
        digit = str(secrets.randbelow(9) + 1)
        for attempt in range(1, settings.challenge_tries + 1):
            self._event("challenge_prompt", attempt=attempt, expected=digit)
            entered = await self._gather_digits(self.ctx.screening.challenge_prompt(digit), max_digits=1,
                                                first_wait=settings.challenge_wait)
            passed = entered == digit
            self._event("challenge", attempt=attempt, expected=digit, entered=entered or None, passed=passed)
            if passed:
                break
            digit = str((int(digit) + secrets.randbelow(8)) % 9 + 1)  # a different digit next time
        heard = lambda: True if any(d.leg == "caller" and d.kind in PRESENCE for d in self.detections.items[started:]) \
            else None  # noqa: E731
        present = bool(heard() or (passed and await self._wait(heard, max(0.0, deadline - loop.time()))))
        if self._caller_gone():
            raise CallerGone()
        result = {"passed": passed and present, "digit_ok": passed, "presence": present}
        self._write(call={"challenge": result}, events=[("challenge_result", result)])
        if passed and present:
            return True
        self.challenge_failed = True
        reason = "failed the challenge: " + ("no voice or sound heard" if passed else "wrong or no digit")
        self._mark_spam(reason, "challenge_failed")
        await self.ctx.screening.block(signaling.caller_number, seconds=settings.block_seconds, reason=reason,
                                       source="challenge", campaign=None)
        return False

    async def _ask_extension(self, pool_name: str) -> None:
        """Extension sites (seed 003): the caller enters the extension shown on the page, which names the
        visitor; the call goes on without one after the tries (attributed to the campaign)."""
        assert self.ctx.tracking is not None
        self._set_state(CallState.EXTENSION)
        pool = self.ctx.settings.pools[pool_name]
        for attempt in range(1, EXTENSION_TRIES + 1):
            prompt = self.ctx.tracking.extension_prompt if attempt == 1 else "please-try-again"
            digits = await self._gather_digits(prompt, max_digits=len(str(pool.max_extension)))
            if not digits:
                self._event("extension_entered", digits=None, attempt=attempt)
                continue
            attribution = await self.ctx.tracking.enter_extension(self.id, pool_name, digits)
            self._event("extension_entered", digits=digits, attempt=attempt,
                        method=attribution.method if attribution else None)
            if attribution is not None:
                if attribution.method == "extension":
                    self.extension_used = (pool_name, digits)
                return

    async def _gather_digits(self, prompt: str | None, *, max_digits: int,
                             first_wait: float = FIRST_DIGIT_WAIT) -> str:
        """Ringpool's own questions (an extension, the challenge's digit): digits typed during or after
        ``prompt`` (ARI media, or a sound name), up to ``max_digits`` or ``#``. Digits that arrive early (a phone
        dialling tel:NUMBER,EXT sends them right after answer) count too; the prompt stops at the first one."""
        port = CallFlowPort(self, self.ctx.routing.prompts if self.ctx.routing else None, None)
        return await port.gather_digits((Prompt("media", prompt),) if prompt else (), min_len=1, max_len=max_digits,
                                        terminator="#", timeout=first_wait)

    async def _bridge(self, out_id: str) -> tuple[str, int | None, str | None]:
        self.connected_leg = out_id
        self._write(call={"destination_answered_at": utcnow()})
        await self._unhold()
        if not self.answered:
            await self.ctx.rest.answer(self.inbound)
            self._mark_answered()
            await self._answered()
        self.bridge_id = f"{self.id}-bridge"
        await self.ctx.rest.create_bridge(bridge_id=self.bridge_id, type="mixing", name=f"ringpool-{self.id}")
        await self.ctx.rest.add_to_bridge(self.bridge_id, [self.inbound, out_id])
        self._set_state(CallState.BRIDGED, bridged_at=utcnow(),
                        event=("bridged", {"bridge": self.bridge_id, "legs": [self.inbound, out_id]}))
        if self.campaign is not None and self.campaign.recording.enabled:
            await self._disclose_and_record(self.campaign.recording.disclosure)
        return await self.supervise_bridge(out_id)

    async def supervise_bridge(self, out_id: str) -> tuple[str, int | None, str | None]:
        """Wait until either side hangs up, then end the other: also used for calls adopted after a restart."""
        legs = (self.inbound, out_id)
        screened = self.screen_settings is not None and self.screen_settings.enabled
        bridged = time.monotonic()

        def ended_or_dialer() -> tuple[str, Any] | None:
            if (end := self.view.first_remote_end(legs)) is not None:
                return "end", end
            if screened and (tone := dialer_tone(self.detections.items)) is not None \
                    and not keep_despite_tone(self.detections.items, time.monotonic() - bridged):
                return "dialer", tone
            return None

        what, first = await self._wait(ended_or_dialer, None) or ("end", None)
        if what == "dialer":
            return await self._drop_dialer(out_id, first)
        side = "caller" if first == self.inbound else "destination"
        other = out_id if first == self.inbound else self.inbound
        self._event("hangup", side=side, channel=first)
        try:
            await self._hangup(other)
        except AriError as exc:  # e.g. Asterisk itself is going away; cleanup retries
            log.warning("call %s: hangup of %s failed: %s", self.id, other, exc)
        return "completed", None, side

    async def _drop_dialer(self, out_id: str, tone: Detection) -> tuple[str, int | None, str | None]:
        """A fax or modem on a bridged call (seed 001, C21): tell the agent with beeps, drop both legs, block."""
        assert self.screen_settings is not None
        reason = f"{tone.kind.replace('_', ' ')} from the caller on a bridged call"
        self._event("dialer_dropped", tone=tone.kind)
        self._mark_spam(reason, "dialer_tone")
        with contextlib.suppress(AriError):
            await self.ctx.rest.play(out_id, AGENT_WARNING, playback_id=f"{self.id}-agent-warning")
            await asyncio.sleep(1.2)  # the beeps, before the line goes
        for channel in (self.inbound, out_id):
            with contextlib.suppress(AriError):
                await self._hangup(channel)
        if self.ctx.screening is not None and self.signaling is not None:
            await self.ctx.screening.block(self.signaling.caller_number, seconds=self.screen_settings.block_seconds,
                                           reason=reason, source="detector")
        return "completed", CAUSE_NORMAL, "ringpool"

    def _score2(self, side: str | None) -> None:
        """Score 2 from what happened on the answered call; spam when it reaches the campaign's spam_at."""
        settings = self.screen_settings
        if settings is None or not settings.enabled or not self.answered or self.verdict is None:
            return
        now = time.monotonic()
        result = score2(self.detections.items, settings, answered=True, total_seconds=now - self.arrived_mono,
                        hangup_side=side, seconds_after_answer=now - self.answered_mono if self.answered_mono else None,
                        challenge_failed=self.challenge_failed, announcement=self.announcement,
                        listened_seconds=now - self.listening_since if self.listening_since else None)
        record = self.verdict.record()["screening"] | {"score2_factors": [asdict(f) for f in result.factors]}
        fields: dict[str, Any] = {"score2": result.score, "screening": record}
        self._write(call=fields)
        if result.spam(settings):
            self._mark_spam("score 2: " + ", ".join(f.factor for f in result.factors), "score2")

    def _mark_spam(self, reason: str, kind: str) -> None:
        """Spam once, with the first reason found: no publisher credit, no advertiser charge. ``kind`` counts it
        in /metrics (ringpool_screening_rejections_total)."""
        if self.spam_reason is None:
            self.spam_reason = reason
            self._write(call={"spam": 1, "spam_reason": reason})
            self._count_rejection(kind)

    def _count_rejection(self, kind: str) -> None:
        if self.ctx.on_rejection is not None:
            self.ctx.on_rejection(kind)

    def channels(self) -> list[str]:
        """Every channel this call owns."""
        return [self.inbound, *self.outbound]

    async def _finish(self, disposition: str, cause: int | None, side: str | None) -> None:
        """Write each leg's end and the call's final disposition, with causes from ChannelDestroyed."""
        self.finished = True
        if self.claimed is not None and self.ctx.routing is not None:
            self.ctx.routing.release(*self.claimed)  # the best caller waiting for this destination goes next
            self.claimed = None
        if self.campaign is not None:
            await self._save_recording(self.campaign.recording.min_seconds)
        legs = {}
        for channel_id in self.channels():
            end = self.view.ended.get(channel_id)
            legs[channel_id] = {"ended_at": (end.at if end else None) or utcnow(),
                                "hangup_cause": end.cause if end else None,
                                "hangup_cause_text": end.cause_text if end else None}
        # The cause on the record is the one of the side that ended the call (else the caller's).
        bridged = (self.inbound, self.connected_leg) if self.connected_leg else (self.inbound,)
        ended_first = self.view.ended.get(self.view.first_remote_end(bridged) or self.inbound)
        cause_text = ended_first.cause_text if ended_first else None
        if cause is None and ended_first is not None:
            cause = ended_first.cause
        self._score2(side)
        # Awaited: it runs after every queued write of this call, so the record is complete when it returns.
        await self.ctx.store.call("finish_call", self.id, disposition=disposition, hangup_cause=cause,
                                  hangup_cause_text=cause_text, hangup_side=side, legs=legs)
        log.info("call %s: %s (cause %s, side %s, campaign %s)", self.id, disposition, cause, side,
                 self.campaign.name if self.campaign else "-")
        self.state = CallState.ENDED
        await self._settle()
        if self.extension_used and self.ctx.tracking is not None:
            await self.ctx.tracking.release_extension(*self.extension_used)  # the next visitor may have it

    async def _settle(self) -> None:
        """Final quality and payout, from the finished record (talk time, transcript, conversion)."""
        if self.ctx.routing is None or self.campaign is None or self.facts is None:
            return
        heard = [d.kind for d in self.detections.items if d.leg == "caller"]
        try:
            await self.ctx.routing.settle(self.id, self.campaign, self.quality, heard)
        except Exception:
            log.exception("call %s: settling quality and payout failed", self.id)

    async def _cleanup(self) -> None:
        """Stop listening, hang up what is left, destroy the bridge, and give Asterisk a moment to report
        final causes."""
        if self.tap is not None:
            await self._safe(self.tap.stop())
        for channel_id in self.channels():
            # Never a second hang-up for a channel already hung up: its cause could overwrite the first one's
            # (a rejected caller would get 603 Decline instead of 404).
            if channel_id not in self.view.ended and channel_id not in self.view.hung_up_by_us:
                try:
                    await self._hangup(channel_id)
                except AriError as exc:
                    log.warning("call %s: hangup of %s failed: %s", self.id, channel_id, exc)
        await self._unhold()
        if self.bridge_id:
            try:
                await self.ctx.rest.destroy_bridge(self.bridge_id)
            except AriNotFound:
                pass
        await self._wait(lambda: True if all(self.view.ended.get(c) and self.view.ended[c].final
                                             for c in self.channels()) else None, DESTROY_WAIT)


def _reachable(settings: "RoutingSettings") -> tuple[str, ...]:
    """The destinations a queued caller waits for: the routing's own, then its fallback ones."""
    return tuple(dict.fromkeys([t.name for t in settings.destinations] + list(settings.fallback)))


def _rejection_kind(decision: Decision) -> str:
    """Why a call was refused before answer, as a metric label."""
    verdict = decision.verdict
    if verdict is not None and verdict.action == "quarantine":
        return "quarantine"
    if verdict is not None and verdict.action == "refuse":
        return f"{verdict.rule['list']}_{verdict.rule['kind']}" if verdict.rule else "spam_score"
    return "number_not_in_use" if decision.details.get("number_state") else "not_a_tracking_number"


def _new_call(call_id: str, s: Signaling, start_event: dict[str, Any]) -> NewCall:
    return NewCall(
        id=call_id, inbound_channel=s.channel_id, arrived_at=ari_time(start_event) or utcnow(),
        caller_number=s.caller_number, caller_name=s.caller_name, dialed_number=s.dialed_number, trunk=s.trunk,
        p_asserted_identity=s.p_asserted_identity, privacy=s.privacy, diversion=s.diversion,
        p_charge_info=s.p_charge_info, is_test=int(s.test_account is not None), test_account=s.test_account,
    )
