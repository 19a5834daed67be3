"""Capture one channel's incoming audio into the shared detector hub (and, if asked, speech recognition).

Asterisk side (see platform-notes): a snoop channel spying on the audio the channel *sends us*
(spy=in), an externalMedia channel streaming RTP to a UDP port of ours, and a mixing bridge holding both.
Both helper channels also enter Stasis, so their ids are chosen here and registered with the owning call
before they are created: the call manager must never mistake them for inbound calls or orphans.
"""

from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

import numpy as np

from ari_app.ari import AriError, AriNotFound, AriRest
from ari_app.media.rtp import RtpReceiver, open_receiver
from detectors.amd import AMDParams
from detectors.events import Event
from detectors.hub import HubRunner
from detectors.speech import SpeechStream

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # slin16 from externalMedia


class TapError(RuntimeError):
    pass


class MediaTap:
    def __init__(self, rest: AriRest, app: str, *, tap_id: str, channel_id: str,
                 own: Callable[[str], None], disown: Callable[[str], None],
                 on_events: Callable[[list[Event]], None], hub: HubRunner,
                 speech: SpeechStream | None = None) -> None:
        self.rest = rest
        self.app = app
        self.tap_id = tap_id
        self.channel_id = channel_id
        self._own, self._disown = own, disown
        self.on_events = on_events
        self.hub = hub
        self.speech = speech
        self.handle: int | None = None
        self.samples = 0
        self.snoop_id = f"{tap_id}-snoop"
        self.media_id = f"{tap_id}-media"
        self.bridge_id = f"{tap_id}-bridge"
        self.receiver: RtpReceiver | None = None
        self.started_at: float | None = None
        self.heard_energy = False
        self._opening: list[np.ndarray] | None = None  # frames kept for the opening's fingerprint
        self._opening_samples = 0
        self._on_opening: Callable[[np.ndarray], None] | None = None

    def record_opening(self, seconds: float, on_done: Callable[[np.ndarray], None]) -> None:
        """Keep the first ``seconds`` of audio from now and hand them over once (announcement signatures)."""
        self._opening, self._opening_samples, self._on_opening = [], int(seconds * SAMPLE_RATE), on_done

    @property
    def helper_channels(self) -> tuple[str, str]:
        return self.snoop_id, self.media_id

    def _on_frame(self, frame: np.ndarray) -> None:
        if not self.heard_energy and frame.size and int(np.abs(frame).max()) > 64:
            self.heard_energy = True
        if self._opening is not None:
            self._opening.append(frame.copy())
            self._opening_samples -= frame.size
            if self._opening_samples <= 0:
                opening, self._opening = np.concatenate(self._opening), None
                assert self._on_opening is not None
                self._on_opening(opening)
        if self.handle is not None:
            self.hub.push(self.handle, frame)
        if self.speech is not None:
            self.speech.push(frame, self.samples / SAMPLE_RATE)
            events = self.speech.poll()
            if events:
                self.on_events(events)
        self.samples += frame.size

    async def start(self, in_stasis: Callable[[tuple[str, ...]], Awaitable[bool]]) -> None:
        """``in_stasis(ids)`` waits until the owning call has seen StasisStart for each id: a channel
        can only join a bridge once it is in the app."""
        self.handle = self.hub.open(lambda _handle, event: self.on_events([event]))
        self.receiver = await open_receiver(self._on_frame)
        self.started_at = time.monotonic()
        for channel in self.helper_channels:
            self._own(channel)
        await self.rest.external_media(self.app, f"127.0.0.1:{self.receiver.port}", format="slin16",
                                       channel_id=self.media_id)
        await self.rest.snoop(self.channel_id, self.app, spy="in", app_args="snoop", snoop_id=self.snoop_id)
        await self.rest.create_bridge(bridge_id=self.bridge_id, type="mixing", name=f"tap-{self.tap_id}")
        if not await in_stasis(self.helper_channels):
            raise TapError(f"tap {self.tap_id}: helper channels did not enter the app")
        await self.rest.add_to_bridge(self.bridge_id, [self.snoop_id, self.media_id])
        log.info("tap %s: listening to %s on UDP %d", self.tap_id, self.channel_id, self.receiver.port)

    def arm_amd(self, params: AMDParams | None = None) -> None:
        """Answering-machine detection from now (the moment the tapped channel answered)."""
        if self.handle is not None:
            self.hub.arm_amd(self.handle, params)

    def expect_speech(self, within_s: float) -> None:
        if self.handle is not None:
            self.hub.expect_speech(self.handle, within_s)

    async def stop(self) -> list[Event]:
        """Tear down every Asterisk object and the socket; flush the detectors' last events."""
        for channel in self.helper_channels:
            try:
                await self.rest.hangup(channel)
            except AriNotFound:
                pass
            except AriError as exc:
                log.warning("tap %s: hangup of %s failed: %s", self.tap_id, channel, exc)
        try:
            await self.rest.destroy_bridge(self.bridge_id)
        except AriNotFound:
            pass
        except AriError as exc:
            log.warning("tap %s: bridge teardown failed: %s", self.tap_id, exc)
        for channel in self.helper_channels:
            self._disown(channel)
        if self.receiver is not None:
            self.receiver.close()
        if self._opening and sum(f.size for f in self._opening) >= 2 * SAMPLE_RATE:
            opening, self._opening = np.concatenate(self._opening), None  # a short call: what there was
            assert self._on_opening is not None
            self._on_opening(opening)
        events: list[Event] = []
        if self.handle is not None:
            events += await self.hub.close(self.handle)  # the hub hands these to on_events itself
            self.handle = None
        if self.speech is not None:
            spoken = await self.speech.finish()
            if spoken:
                self.on_events(spoken)
            events += spoken
        return events
