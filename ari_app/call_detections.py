"""One call's detections: stored as they happen, and streamed to whoever reacts to them (screening, IVR,
routing). Every detection is timed in seconds since the call arrived, whatever produced it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from ari_app.media.interpret import Detection
from detectors.dtmf import DialAnalyzer, DTMFConfig
from detectors.events import Event
from storage.async_store import AsyncCallStore
from storage.db import utcnow


class CallDetections:
    def __init__(self, store: AsyncCallStore, call_id: str, *, wake: Callable[[], None]) -> None:
        self.store = store
        self.call_id = call_id
        self.started = time.monotonic()
        self.items: list[Detection] = []
        self._wake = wake  # lets the call's flow re-check what it waits for
        self._watchers: list[asyncio.Queue[Detection]] = []
        self._dialling: dict[str, DialAnalyzer] = {}  # per leg: RFC 4733 digits through the machine analysis

    def watch(self) -> "asyncio.Queue[Detection]":
        """A queue receiving every later detection of this call."""
        queue: asyncio.Queue[Detection] = asyncio.Queue()
        self._watchers.append(queue)
        return queue

    def add(self, detection: Detection) -> None:
        self.items.append(detection)
        for queue in self._watchers:
            queue.put_nowait(detection)
        self.store.submit("add_detection", self.call_id, leg=detection.leg, source=detection.source,
                          kind=detection.kind, start=detection.start, duration=detection.duration,
                          details=detection.details, flags=detection.flags(), appends=detection.appends(),
                          values=detection.values(), at=utcnow())
        self._wake()

    def from_media(self, events: list[Event], leg: str, stream_started: float | None) -> None:
        """Detector events, whose times count from the start of their stream."""
        offset = stream_started - self.started if stream_started else 0.0
        for event in events:
            d = Detection.from_event(event, leg)
            self.add(Detection(d.leg, d.source, d.kind, round((d.start or 0.0) + offset, 3), d.duration, d.details))

    def rfc4733(self, event: dict[str, Any], leg: str) -> None:
        """A digit Asterisk received out of band (ChannelDtmfReceived arrives at the digit's end). The same
        machine-dialling analysis as in-band digits applies (tight gaps, short tones, regular timing, A-D)."""
        duration = max(0.0, float(event.get("duration_ms") or 0) / 1000)
        end = round(time.monotonic() - self.started, 3)
        start = round(end - duration, 3)
        analyzer = self._dialling.setdefault(leg, DialAnalyzer(DTMFConfig()))
        for found in analyzer.add(str(event.get("digit", ""))[:1], start, duration, {}):
            self.add(Detection(leg=leg, source="rfc4733", kind=found.kind, start=found.start,
                               duration=found.duration, details=found.details))

    def since(self, index: int, kind: str, leg: str) -> Detection | None:
        return next((d for d in self.items[index:] if d.kind == kind and d.leg == leg), None)
