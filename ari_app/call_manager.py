"""Routes ARI events to calls, starts a task per inbound call, and reconciles after every (re)connect.

Events lost while the WebSocket was down are recovered by comparing the open call records with what
Asterisk still has (GET /channels): live bridged calls are adopted, calls that ended meanwhile are
finalised, and calls refused by the dialplan fallback while the app was away are imported from AstDB.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ari_app.ari import AriError, AriRest
from ari_app.call_state import event_channel_ids
from ari_app.click_to_call import ClickToCall, ClickToCallLimits
from ari_app.config import Settings, normalise_number
from ari_app.inbound_call import CallContext, InboundCall
from ari_app.logging_setup import call_id_var
from ari_app.media.tap import SAMPLE_RATE
from ari_app.metrics import CallMetrics
from ari_app.routing.service import RoutingService
from detectors.hub import HubRunner
from detectors.speech import load_model
from storage.async_store import AsyncCallStore
from storage.calls import NewCall
from storage.db import format_time, parse_time, utcnow

if TYPE_CHECKING:
    from ari_app.screening.service import ScreeningService
    from ari_app.tracking.service import TrackingService

log = logging.getLogger(__name__)

FALLBACK_INDEX = "RINGPOOL_FB"

# The ARI events the app acts on; Asterisk sends no others (see reconcile()).
EVENTS_USED = ["StasisStart", "StasisEnd", "ChannelStateChange", "ChannelHangupRequest", "ChannelDestroyed",
               "Dial", "PlaybackFinished", "ChannelDtmfReceived", "ChannelTalkingStarted",
               "ChannelTalkingFinished", "RecordingFinished", "RecordingFailed", "ApplicationReplaced"]
CAUSE_CONGESTION = 34
HUB_CAPACITY = 64  # streams per detector bank: CPU per stream falls with width, delay grows (bench/detectors_hub.py)


class CallManager:
    def __init__(self, rest: AriRest, store: AsyncCallStore, settings: Settings,
                 tracking: "TrackingService | None" = None, screening: "ScreeningService | None" = None) -> None:
        self.rest = rest
        self.store = store
        self.settings = settings
        self.app = settings.ari.app
        self.by_channel: dict[str, InboundCall] = {}
        self.calls: dict[str, InboundCall] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.metrics = CallMetrics()
        # One detector hub for every listened call: streams are processed together, vectorised.
        self.hub = HubRunner(rate=SAMPLE_RATE, capacity=HUB_CAPACITY, block_s=0.02, interval_s=0.1)
        self.routing = RoutingService(settings, store)
        self.ctx = CallContext(rest=rest, store=store, settings=settings, registry=self, hub=self.hub,
                               on_latency=self.metrics.observe_decision_ms,
                               on_rejection=self.metrics.count_rejection, tracking=tracking,
                               screening=screening, routing=self.routing)
        self.click_limits = ClickToCallLimits()
        self.routing.place_callback = self.click_to_call
        self._reconcile_lock = asyncio.Lock()
        self._speech_loading: asyncio.Task[None] | None = None

    # --- registry ----------------------------------------------------------------------------------------

    def own(self, channel_id: str, call: InboundCall) -> None:
        self.by_channel[channel_id] = call

    def disown(self, channel_id: str) -> None:
        self.by_channel.pop(channel_id, None)

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    def _spawn(self, call: InboundCall, coro: Any) -> None:
        self.calls[call.id] = call
        self.own(call.inbound, call)
        context = contextvars.copy_context()  # the call's own: every log line of its task carries its id
        context.run(call_id_var.set, call.id)
        task = asyncio.create_task(coro, name=f"call-{call.id}", context=context)
        self.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self.calls.pop(call.id, None)

        task.add_done_callback(done)

    # --- events ------------------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Called by the event stream for each event, in order. Never blocks: it only enqueues."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("event %s %s", event.get("type"), event_channel_ids(event))
        if event.get("type") == "StasisStart":
            channel = event.get("channel") or {}
            channel_id = channel.get("id")
            if not channel_id:
                return
            if channel_id in self.by_channel:
                self.by_channel[channel_id].deliver(event)
                return
            args = event.get("args") or []
            if args[:1] == ["inbound"]:
                self.start_call(channel, event)
            else:
                # An app-created channel no live call owns (left over from before a restart).
                log.info("hanging up orphan channel %s (args %s)", channel_id, args)
                self._background(self._hangup_quietly(channel_id))
            return
        delivered: set[int] = set()
        for channel_id in event_channel_ids(event):
            call = self.by_channel.get(channel_id)
            if call is not None and id(call) not in delivered:
                delivered.add(id(call))
                call.deliver(event)

    def apply(self, settings: Settings) -> None:
        """New calls (and new decisions of calls in progress) use ``settings`` from now on."""
        self.settings = settings
        self.ctx.settings = settings
        self.routing.settings = settings

    def click_to_call(self, campaign_name: str, number: Any, session_id: str | None = None,
                      direction: str = "click_to_call") -> str:
        """Call the visitor, then the business (raises ClickToCallRefused); the call's id at once."""
        campaign, digits = self.click_limits.check_and_count(self.settings, campaign_name, number)
        call = ClickToCall(self.ctx, uuid.uuid4().hex, campaign, digits, session_id=session_id, direction=direction)
        self._spawn(call, call.run())
        return call.id

    def start_call(self, channel: dict[str, Any], event: dict[str, Any]) -> InboundCall:
        call = InboundCall(self.ctx, uuid.uuid4().hex, channel, event)
        self._spawn(call, call.run())
        return call

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _hangup_quietly(self, channel_id: str) -> None:
        try:
            await self.rest.hangup(channel_id)
        except AriError:
            pass

    # --- reconcile ---------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Run after every (re)connection, before further events are dispatched."""
        async with self._reconcile_lock:
            await self.rest.set_event_filter(self.app, EVENTS_USED)
            channels = {c["id"]: c for c in await self.rest.list_channels()}
            for call in list(self.calls.values()):
                self._replay_missed(call, channels)
            handled: set[str] = set()
            for record in await self.store.call("open_calls"):
                if record["id"] not in self.calls:
                    handled |= await self._recover(record, channels)
            for channel in channels.values():
                if channel["id"] not in self.by_channel and channel["id"] not in handled and self._in_our_app(channel):
                    await self._take_unknown(channel)
            await self._remove_orphan_bridges()
            await self.import_fallback_calls()

    async def _remove_orphan_bridges(self) -> None:
        """Bridges this app made (ids it chose) whose call no longer runs here: left by a crash."""
        live = {call.bridge_id for call in self.calls.values()} | {
            call.tap.bridge_id for call in self.calls.values() if call.tap is not None} | {
            call.hold_bridge_id for call in self.calls.values()}
        for bridge in await self.rest.list_bridges():
            bridge_id = bridge.get("id", "")
            ours = bridge_id.endswith("-bridge") and bridge.get("creator") == "Stasis"
            if ours and bridge_id not in live and not any(c in self.by_channel for c in bridge.get("channels", [])):
                log.info("destroying orphan bridge %s", bridge_id)
                try:
                    await self.rest.destroy_bridge(bridge_id)
                except AriError as exc:
                    log.warning("orphan bridge %s: %s", bridge_id, exc)

    @staticmethod
    def _replay_missed(call: InboundCall, channels: dict[str, Any]) -> None:
        """Events a live call may have missed during a WebSocket gap, rebuilt from channel snapshots."""
        for channel_id in call.channels():
            snapshot = channels.get(channel_id)
            if snapshot is None:
                call.deliver({"type": "ChannelDestroyed", "channel": {"id": channel_id},
                              "timestamp": None, "cause": None, "reconciled": True})
            elif snapshot.get("state") == "Up":
                call.deliver({"type": "ChannelStateChange", "channel": snapshot, "reconciled": True})

    def _in_our_app(self, channel: dict[str, Any]) -> bool:
        dialplan = channel.get("dialplan") or {}
        return dialplan.get("app_name") == "Stasis" and str(dialplan.get("app_data", "")).split(",")[0] == self.app

    async def _take_unknown(self, channel: dict[str, Any]) -> None:
        """A channel waiting in our app that no record mentions: a call that arrived as the app died."""
        args = str((channel.get("dialplan") or {}).get("app_data", "")).split(",")[1:]
        if args[:1] == ["inbound"]:
            log.info("taking over inbound channel %s found waiting in Stasis", channel["id"])
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
            self.start_call(channel, {"type": "StasisStart", "timestamp": stamp, "args": ["inbound"],
                                      "channel": channel})
        else:
            await self._hangup_quietly(channel["id"])

    async def _recover(self, record: dict[str, Any], channels: dict[str, Any]) -> set[str]:
        """Adopt or close one open record; returns the channels it dealt with."""
        inbound = record["inbound_channel"]
        outbound_alive = [leg["channel_id"] for leg in record["legs"]
                          if leg["role"] == "outbound" and leg["channel_id"] in channels]
        if inbound in channels and record["bridged_at"] and outbound_alive:
            log.info("call %s: adopting bridged call after restart", record["id"])
            call = InboundCall(self.ctx, record["id"], channels[inbound], {})
            self.own(outbound_alive[-1], call)
            self._spawn(call, call.run_adopted(outbound_alive[-1]))
            return {inbound, outbound_alive[-1]}
        # Not recoverable mid-flow (events were lost): end what is left and close the record.
        for channel_id in [inbound, *outbound_alive]:
            if channel_id in channels:
                await self._hangup_quietly(channel_id)
        caller_still_there = inbound in channels
        if record["bridged_at"]:
            disposition = "completed"
        elif record["decision"] == "reject":
            disposition = "rejected"
        else:
            disposition = "failed" if caller_still_there else "abandoned"
        await self.store.call("add_event", record["id"], "reconciled",
                              {"caller_alive": caller_still_there, "outbound_alive": outbound_alive})
        await self.store.call("finish_call", record["id"], disposition=disposition,
                              hangup_side="ringpool" if caller_still_there else None, end_observed="reconciled")
        log.info("call %s: finalised after restart as %s", record["id"], disposition)
        return {inbound, *outbound_alive}

    async def import_fallback_calls(self) -> int:
        """Record calls the dialplan refused while the app was away.

        The dialplan keeps each in a global variable RINGPOOL_FB_<id> and appends <id> to RINGPOOL_FB
        (ARI can read and clear globals, not AstDB). Records are keyed by the Asterisk unique id, so an
        import repeated after a crash half-way never duplicates a call.
        """
        index = await self.rest.get_global_variable(FALLBACK_INDEX) or ""
        ids = [i for i in index.split(",") if i]
        for unique_id in ids:
            value = await self.rest.get_global_variable(f"{FALLBACK_INDEX}_{unique_id}")
            if value:
                await self._record_fallback_call(unique_id, value)
                await self.rest.set_global_variable(f"{FALLBACK_INDEX}_{unique_id}", None)
        if ids:
            # Keep whatever the dialplan appended since the index was read.
            current = await self.rest.get_global_variable(FALLBACK_INDEX) or ""
            await self.rest.set_global_variable(FALLBACK_INDEX, current[len(index):] if current.startswith(index) else current)
            log.warning("recorded %d call(s) refused by the dialplan while the app was unavailable", len(ids))
        return len(ids)

    async def _record_fallback_call(self, unique_id: str, value: str) -> None:
        when, status, caller, exten = (value.split("|") + ["", "", "", ""])[:4]
        call_id = f"fallback-{unique_id}"
        if await self.store.call("get_call", call_id) is not None:
            return
        try:
            arrived = format_time(parse_time(when))
        except ValueError:
            arrived = utcnow()
        dialed = normalise_number(exten)
        number = self.settings.numbers.get(dialed)
        await self.store.call("create_call", NewCall(
            id=call_id, inbound_channel=unique_id.replace("_", "."), arrived_at=arrived,
            caller_number=caller or None, dialed_number=dialed, state="ended"))
        await self.store.call("update_call", call_id, decision="app_unavailable",
                              decision_reasons=[f"Stasis() returned {status or 'FAILED'}"],
                              campaign=number.campaign if number else None)
        await self.store.call("finish_call", call_id, disposition="unavailable", ended_at=arrived,
                              hangup_cause=CAUSE_CONGESTION, hangup_side="ringpool", end_observed="dialplan_fallback")

    # --- shutdown ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.hub.start()
        await self.routing.start()
        model = self.settings.speech.model
        if model is not None:
            # Loading a Vosk model takes seconds (more on a busy machine): never on the event loop, and in the
            # background, so calls are taken (and adopted after a restart) at once; until it is ready, calls
            # are listened to without transcripts.
            self._speech_loading = asyncio.create_task(self._load_speech(str(model)), name="speech-model")

    async def _load_speech(self, model: str) -> None:
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, load_model, model)
            log.info("speech recognition %s (model %s)", "on" if loaded is not None else "off", model)
        except Exception:
            log.exception("speech recognition off: the model %s failed to load", model)

    async def shutdown(self) -> None:
        """Stop supervising; calls go on in Asterisk and the next start adopts or closes them."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self._speech_loading is not None and not self._speech_loading.done():
            self._speech_loading.cancel()
        await self.hub.stop()
        await self.routing.close()
