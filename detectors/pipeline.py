"""One call's detectors behind `feed(pcm) -> events`, for the live-call code.

A DetectorPipeline is a StreamBank of one plus an input buffer (so frames of
any size work) and, optionally, speech recognition that runs in a thread pool:
`feed` never waits for it, recognised text comes back as events on a later
`feed` or on `aclose`.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np

from .amd import AMDParams
from .bank import DetectorConfig, StreamBank, to_int16
from .events import Event

log = logging.getLogger(__name__)


class DetectorPipeline:
    """All detectors for one stream.

    pcm is native-endian signed 16-bit linear at `rate` (8000 or 16000), as
    an int16 array or bytes, in frames of any length.  `speech` is an optional
    `detectors.speech.SpeechStream` (or anything with push/poll/finish).
    """

    def __init__(self, rate: int = 8000, config: DetectorConfig | None = None, speech=None):
        self.rate = rate
        self.bank = StreamBank(1, rate, config)
        self.speech = speech
        self._buf = np.zeros(0, np.int16)
        self._closed = False

    @property
    def time(self) -> float:
        """Seconds of audio processed so far."""
        return self.bank.time(0)

    def feed(self, pcm) -> list[Event]:
        """Process a frame; return events completed so far (DSP now, speech when ready)."""
        if self._closed:
            raise RuntimeError("pipeline is closed")
        x = to_int16(pcm)
        if self.speech is not None:
            self.speech.push(x, self.time + len(self._buf) / self.rate)
        buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        n = (len(buf) // self.bank.sub_len) * self.bank.sub_len
        self._buf = buf[n:].copy()
        events = [e for _, e in self.bank.process(buf[:n].reshape(1, n))] if n else []
        if self.speech is not None:
            events.extend(self.speech.poll())
        return events

    def expect_speech(self, within_s: float) -> None:
        """Arm the timer: a `no_speech` event unless speech starts within within_s from now."""
        self.bank.expect_speech(0, within_s)

    def arm_amd(self, params: AMDParams | None = None) -> None:
        """Start answering-machine detection now (at answer); one `amd` event results."""
        self.bank.arm_amd(0, params)

    def close(self) -> list[Event]:
        """End of stream: flush open runs.  Speech still being recognised is dropped
        here; use `aclose` to wait for it."""
        if self._closed:
            return []
        self._closed = True
        events = self.bank.close_stream(0) if self.bank.hop else []
        if self.speech is not None:
            events.extend(self.speech.poll())
        return events

    async def aclose(self) -> list[Event]:
        """Like close, but also awaits the speech recogniser's final result."""
        events = self.close()
        if self.speech is not None:
            events.extend(await self.speech.finish())
        return events


Detector = DetectorPipeline
