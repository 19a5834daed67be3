#!/usr/bin/env python3
"""Detection accuracy of Ringpool's detectors side by side with Asterisk's own, on the same calls.

Every case is a generated, labelled WAV that a pjsua2 softphone (bound to 127.0.0.3) plays into a real call
to a bundled Asterisk 22 started here with its own configuration (temporary folder, free ports):

* endpoint ``bench-vs`` (identified by source 127.0.0.3): ``dtmf_mode=inband``, ``fax_detect=yes``, ulaw;
* context ``bench-vs``: ``Answer()``, ``Stasis(benchvs,call,${EXTEN})``; extension ``fax`` (where chan_pjsip
  redirects a call on CNG) raises ``UserEvent(BenchFax)`` and re-enters ``Stasis(benchvs,fax,...)``;
* a minimal ARI app (``ari_app.ari.AriClient``) that, on StasisStart of a call, sets ``TALK_DETECT(set)=500``
  on the channel over ARI and starts a tap (snoop spy=in + externalMedia slin16 -> UDP)
  feeding
  our ``DetectorPipeline`` (``bench/vs_asterisk/tap.py``: the same ARI steps as ``ari_app.media.tap``), and records the channel's ARI events: ``ChannelDtmfReceived`` (Asterisk's
  in-band DTMF), ``ChannelTalkingStarted/Finished`` (TALK_DETECT), and the fax redirect (``ChannelVarset
  FAXEXTEN``, ``StasisEnd``, ``ChannelUserevent BenchFax``, ``StasisStart`` with args ``fax``).

Our detectors are scored twice: live on the tapped audio, and offline on the WAV as Asterisk received it
(the same samples through a mu-law round trip, 8 kHz). With ``dtmf_mode=inband`` Asterisk's DSP squelches
the digits it detects before any audiohook sees them, so the live tap of a DTMF call hears stripped audio;
the script measures that and uses the offline figures for DTMF (both are printed).

Timeline: every WAV has a 150 ms noise-burst marker at 1.5 s and the labelled content from 3.0 s. The
marker is found in the tapped audio by cross-correlation, which maps WAV time to tap stream time; the
arrival times of the RTP packets (least-delayed envelope) map tap stream time to wall-clock time, where the
ARI events' own ``timestamp`` lives. Asterisk reads a frame a few ms before the tap delivers it (snoop ->
mixing bridge -> externalMedia -> UDP); the marker's TALK_DETECT start gives a bound on that path delay,
printed with the results.

Usage: .venv/bin/python bench/detectors_vs_asterisk.py [--quick] [--keep] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
import wave
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # noqa: E402  (mu-law round trip; deprecated in 3.11, removed in 3.13)

from common import can_bind, log, run_in_temp_folder  # noqa: E402
from ari_app.ari import AriClient, AriError  # noqa: E402
from ari_app.asterisk_config import render_all  # noqa: E402
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed  # noqa: E402
from ari_app.config import load_settings  # noqa: E402
from ari_app.testcall import SoftphoneError, run_softphone  # noqa: E402
from detectors import testsignals as ts  # noqa: E402
from detectors.bank import to_int16  # noqa: E402
from detectors.dtmf import KEYS  # noqa: E402
from detectors.pipeline import DetectorPipeline  # noqa: E402
from vs_asterisk.tap import BenchTap  # noqa: E402

APP = "benchvs"
CALLER_SOURCE = "127.0.0.3"
RATE = 8000            # what the softphone plays (its clock is 8 kHz, codec ulaw)
TAP_RATE = 16000       # slin16 from externalMedia
MARKER_AT = 1.5        # s into every WAV
MARKER_DUR = 0.15
CONTENT_AT = 3.0       # labelled content starts here
TAIL = 1.0
TALK_HANGOVER_MS = 500




# --- free ports (the approach of bench/call_setup.py) ------------------------------------------------------



def free_port(udp: bool = True, tcp: bool = False, taken: set[int] | None = None) -> int:
    taken = taken if taken is not None else set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in taken or (udp and tcp and not can_bind(socket.SOCK_STREAM, "127.0.0.1", port)):
            continue
        taken.add(port)
        return port
    raise RuntimeError("no free port")


def free_block(size: int, lo: int, hi: int) -> int:
    for base in range(lo, hi - size, 100):
        if all(can_bind(socket.SOCK_DGRAM, "0.0.0.0", p) for p in range(base, base + size)):
            return base
    raise RuntimeError(f"no free block of {size} UDP ports in {lo}..{hi}")


# --- cases ---------------------------------------------------------------------------------------------------

@dataclass
class Digit:
    digit: str
    on: float           # WAV time, s
    dur: float
    gap: float          # silence after it
    expect: bool        # True: must be detected; False: must be rejected (off-frequency / too short)
    group: str          # table row
    variant: str        # detail row


@dataclass
class Case:
    name: str
    kind: str           # dtmf | fax | vad
    group: str
    audio: np.ndarray   # float, RATE
    content_end: float
    digits: list[Digit] = field(default_factory=list)
    cng_onset: float | None = None
    utterances: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / RATE


def marker_signal() -> np.ndarray:
    rng = np.random.default_rng(12345)
    return rng.standard_normal(int(MARKER_DUR * RATE)) * ts.amp(-20) / np.sqrt(2)


def assemble(content: np.ndarray, noise_rms: float = 0.0, noise_kind: str = "white", seed: int = 0) -> np.ndarray:
    """[silence/noise lead | marker at MARKER_AT | content at CONTENT_AT | tail]; background noise throughout."""
    rng = np.random.default_rng(seed)
    n = int(CONTENT_AT * RATE) + len(content) + int(TAIL * RATE)
    x = np.zeros(n)
    x[int(CONTENT_AT * RATE):int(CONTENT_AT * RATE) + len(content)] = content
    if noise_rms > 0:
        noise = ts.white_noise(n, rng) if noise_kind == "white" else ts.pink_noise(n, rng)
        x += noise / noise.std() * noise_rms
    m = marker_signal()
    x[int(MARKER_AT * RATE):int(MARKER_AT * RATE) + len(m)] += m
    return x


DTMF_LEVEL = -15.0  # dBFS per tone


def dtmf_call(name: str, group: str, snr: float | None, variants: list[tuple], seed: int) -> Case:
    """variants: (label, dur, gap, twist_db, dev_pct, expect)."""
    rng = np.random.default_rng(seed)
    parts, digits, t = [], [], CONTENT_AT
    for label, dur, gap, twist, dev, expect in variants:
        for d in KEYS:
            parts += [ts.dtmf(d, dur, RATE, level_dbfs=DTMF_LEVEL, twist_db=twist, dev_pct=(dev, dev), rng=rng),
                      ts.silence(gap, RATE)]
            digits.append(Digit(d, t, dur, gap, expect, group if expect else label, label))
            t += dur + gap
    content = np.concatenate(parts)
    p_sig = ts.amp(DTMF_LEVEL) ** 2 / 2 * 2  # an untwisted digit: two tones at DTMF_LEVEL
    noise_rms = np.sqrt(p_sig / 10 ** (snr / 10)) if snr is not None else 0.0
    return Case(name, "dtmf", group, assemble(content, noise_rms, seed=seed), t, digits=digits)


def cng_call(name: str, group: str, level: float, snr: float | None, kind: str, seed: int) -> Case:
    content = ts.cng(RATE, cycles=2, level_dbfs=level, lead=0.0)
    noise_rms = np.sqrt(ts.amp(level) ** 2 / 2 / 10 ** (snr / 10)) if snr is not None else 0.0
    return Case(name, "fax", group, assemble(content, noise_rms, kind, seed), CONTENT_AT + len(content) / RATE,
                cng_onset=CONTENT_AT)


SENTENCES = ["Hello, thank you for calling, how can I help you today",
             "Please leave a message after the tone",
             "I would like a quote for the price of the service",
             "We are sorry, all our agents are busy right now"]


def frame_db(x: np.ndarray, frame: int = 80) -> np.ndarray:
    n = len(x) // frame
    p = np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1)
    return 10 * np.log10(p / (32768.0 ** 2 / 2) + 1e-12)


def speech_call(name: str, group: str, cache: Path, snr: float | None, sentences: list[str], seed: int) -> Case:
    parts, utts, t = [], [], CONTENT_AT
    for k, text in enumerate(sentences):
        s = ts.espeak(text, RATE, voice="en", cache_dir=cache, speed=150 + 20 * (k % 2))
        db = frame_db(s)
        voiced = db > db.max() - 30
        gain = ts.amp(-20) / np.sqrt(2) / np.sqrt(np.mean(s.reshape(-1)[: len(db) * 80].reshape(-1, 80)[voiced] ** 2))
        s = s * gain
        db = frame_db(s)
        active = np.flatnonzero(db > -45)
        on, off = active[0] * 80 / RATE, (active[-1] + 1) * 80 / RATE
        utts.append((t + on, t + off))
        parts += [s, ts.silence(1.6, RATE)]
        t += len(s) / RATE + 1.6
    content = np.concatenate(parts)
    noise_rms = ts.amp(-20) / np.sqrt(2) / 10 ** (snr / 20) if snr is not None else 0.0
    return Case(name, "vad", group, assemble(content, noise_rms, "pink", seed), t, utterances=utts)


def nonspeech_call(name: str, group: str, content: np.ndarray, noise_dbfs: float | None, seed: int) -> Case:
    noise_rms = ts.amp(noise_dbfs) / np.sqrt(2) if noise_dbfs is not None else 0.0
    return Case(name, "vad", group, assemble(content, noise_rms, "white", seed), CONTENT_AT + len(content) / RATE)


def build_cases(quick: bool, cache: Path) -> list[Case]:
    cases: list[Case] = []
    accept = [("plain", 0.0, 0.0), ("twist +6 dB (normal)", 6.0, 0.0), ("twist -3 dB (reverse)", -3.0, 0.0),
              ("dev +1.5 %", 0.0, 1.5), ("dev -1.5 %", 0.0, -1.5)]
    snrs = (15,) if quick else (30, 15, 10)
    for i, snr in enumerate(snrs):
        group = f"DTMF 40 ms SNR {snr} dB"
        variants = [(f"{lab}", 0.04, 0.15, tw, dev, True) for lab, tw, dev in (accept[:1] + accept[1:4:2] if quick
                                                                                   else accept)]
        if snr == snrs[0]:  # Q.24's fastest train: 40 ms tone, 40 ms pause (the notes saw doubles under 45 ms)
            variants.append(("fast train 40 ms on / 40 ms off", 0.04, 0.04, 0.0, 0.0, True))
        cases.append(dtmf_call(f"dtmf-snr{snr}", group, snr, variants, seed=10 + i))
    reject = [("DTMF reject dev +3.5 % (100 ms)", 0.1, 0.2, 0.0, 3.5, False),
              ("DTMF reject dev -3.5 % (100 ms)", 0.1, 0.2, 0.0, -3.5, False),
              ("DTMF reject 20 ms tones", 0.02, 0.15, 0.0, 0.0, False)]
    cases.append(dtmf_call("dtmf-reject", "DTMF reject", 30, reject, seed=20))

    cng = [("cng-15", "Fax CNG clean", -15.0, None, "white"), ("cng-snr10", "Fax CNG noisy", -15.0, 10, "white")]
    if not quick:
        cng = [cng[0], ("cng-30", "Fax CNG clean", -30.0, None, "white"),
               ("cng-snr20", "Fax CNG noisy", -15.0, 20, "white"), cng[1],
               ("cng-pink10", "Fax CNG noisy", -20.0, 10, "pink")]
    for k, (name, group, level, snr, kind) in enumerate(cng):
        cases.append(cng_call(name, group, level, snr, kind, seed=30 + k))

    cases.append(speech_call("speech", "VAD speech clean", cache, None, SENTENCES if not quick else SENTENCES[:2], 40))
    if not quick:
        cases.append(speech_call("speech-noise", "VAD speech + pink noise SNR 20", cache, 20, SENTENCES[2:] +
                                 SENTENCES[:1], 41))
        cases.append(nonspeech_call("silence", "VAD digital silence", ts.silence(6.0, RATE), None, 42))
        cases.append(nonspeech_call("noise-55", "VAD line noise -55 dBFS", ts.silence(6.0, RATE), -55, 43))
    cases.append(nonspeech_call("noise-33", "VAD noise -33 dBFS (-30 dBm0)", ts.silence(6.0, RATE), -33, 44))
    cases.append(nonspeech_call("music", "VAD music", ts.music(RATE, 8.0 if not quick else 6.0,
                                                               np.random.default_rng(45)), -60, 45))
    return cases


def write_wav(path: Path, x: np.ndarray) -> np.ndarray:
    pcm = ts.pcm16(x)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return pcm


def ulaw_roundtrip(pcm: np.ndarray) -> np.ndarray:
    data = audioop.ulaw2lin(audioop.lin2ulaw(pcm.astype("<i2").tobytes(), 2), 2)
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


# --- our detectors, recording what they emit and when ------------------------------------------------------

class RecordingPipeline(DetectorPipeline):
    """DetectorPipeline that keeps the audio, the wall time each frame arrived, and the stream position at
    which each event was emitted (its report latency)."""

    def __init__(self, rate: int) -> None:
        super().__init__(rate=rate)
        self.chunks: list[np.ndarray] = []
        self.arrivals: list[tuple[int, float]] = []
        self.emitted: list[tuple[Any, float]] = []
        self.n = 0

    def feed(self, pcm):  # type: ignore[override]
        x = to_int16(pcm)
        self.arrivals.append((self.n, time.time()))
        self.chunks.append(x.copy())
        self.n += len(x)
        events = super().feed(x)
        self.emitted += [(e, self.n / self.rate) for e in events]
        return events

    def close(self):  # type: ignore[override]
        events = super().close()
        self.emitted += [(e, self.n / self.rate) for e in events]
        return events

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    def wall_at(self, stream_t: float, span: float = 1.0) -> float | None:
        """Wall time at which stream time ``stream_t`` arrived, from the least-delayed packet within ``span`` s
        after it. Local on purpose: the snoop can insert or drop whole frames, so a single clock fitted over the
        whole stream would carry any earlier slip."""
        near = [wall - (n / self.rate - stream_t) for n, wall in self.arrivals
                if stream_t <= n / self.rate <= stream_t + span]
        return min(near) if near else None


def run_offline(pcm8: np.ndarray) -> list[tuple[Any, float]]:
    pipe = RecordingPipeline(RATE)
    for k in range(0, len(pcm8), 160):
        pipe.feed(pcm8[k:k + 160])
    pipe.close()
    return pipe.emitted


# --- the ARI side ---------------------------------------------------------------------------------------------

def ari_time(event: dict) -> float | None:
    stamp = event.get("timestamp")
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


@dataclass
class CallRec:
    case: Case
    channel_id: str
    stasis_at: float
    pipe: RecordingPipeline
    events: list[dict] = field(default_factory=list)
    tap: BenchTap | None = None
    setup: asyncio.Task | None = None
    setup_error: str | None = None
    talk_detect_set_at: float | None = None
    destroyed: asyncio.Event = field(default_factory=asyncio.Event)


class App:
    def __init__(self) -> None:
        self.client: AriClient | None = None
        self.by_exten: dict[str, Case] = {}
        self.calls: dict[str, CallRec] = {}          # exten -> call
        self.by_channel: dict[str, CallRec] = {}
        self.helpers: set[str] = set()
        self.in_app: set[str] = set()
        self.changed = asyncio.Event()
        self.unrouted: Counter = Counter()
        self.seen: set[tuple] = set()
        self.duplicates: Counter = Counter()

    def on_event(self, event: dict) -> None:
        event["_rx"] = time.time()
        kind = event.get("type", "")
        channel = (event.get("channel") or {}).get("id")
        # The app is subscribed to its channels and to the endpoint: an event can come once per subscription.
        key = (kind, event.get("timestamp"), channel, event.get("digit"), event.get("variable"), event.get("value"),
               event.get("eventname"), tuple(event.get("args") or ()))
        if key in self.seen:
            self.duplicates[kind] += 1
            return
        self.seen.add(key)
        if kind == "StasisStart" and channel:
            self.in_app.add(channel)
            self.changed.set()
            args = event.get("args") or []
            if channel not in self.helpers and args[:1] == ["call"] and channel not in self.by_channel:
                exten = args[1] if len(args) > 1 else ""
                case = self.by_exten.get(exten)
                if case is None:
                    log(f"call to unknown exten {exten!r}; ignored")
                    return
                rec = CallRec(case, channel, event["_rx"], RecordingPipeline(16000))
                self.calls[exten] = rec
                self.by_channel[channel] = rec
                rec.setup = asyncio.get_running_loop().create_task(self._setup(rec))
        rec = self.by_channel.get(channel) if channel else None
        if rec is not None:
            rec.events.append(event)
            if kind == "ChannelDestroyed":
                rec.destroyed.set()
        elif channel not in self.helpers:
            self.unrouted[kind] += 1

    async def _in_stasis(self, ids: tuple[str, ...]) -> bool:
        deadline = time.monotonic() + 5.0
        while not all(i in self.in_app for i in ids):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    async def _setup(self, rec: CallRec) -> None:
        assert self.client is not None
        rest = self.client.rest
        try:
            await rest.set_variable(rec.channel_id, "TALK_DETECT(set)", str(TALK_HANGOVER_MS))
            rec.talk_detect_set_at = time.time()
            tap = BenchTap(rest, APP, tap_id=f"vs-{rec.channel_id.replace('.', '-')}", channel_id=rec.channel_id,
                           on_frame=rec.pipe.feed, own=self.helpers.add)
            rec.tap = tap
            await tap.start(self._in_stasis)
        except Exception as exc:  # recorded and reported per call; the call still runs
            rec.setup_error = f"{type(exc).__name__}: {exc}"
            log(f"  tap/TALK_DETECT set-up failed on {rec.channel_id}: {rec.setup_error}")


# --- scoring --------------------------------------------------------------------------------------------------

@dataclass
class Det:
    t_ref: float            # the detector's own onset estimate, WAV seconds
    t_emit: float           # when it was reported, WAV seconds
    digit: str | None = None
    end: float | None = None


@dataclass
class Tally:
    cases: int = 0
    detected: int = 0
    false: int = 0
    doubles: int = 0
    onset_err: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)   # e.g. talk-time fraction, end error

    def add(self, other: "Tally") -> None:
        self.cases += other.cases
        self.detected += other.detected
        self.false += other.false
        self.doubles += other.doubles
        self.onset_err += other.onset_err
        self.latency += other.latency
        self.extra += other.extra


def match_dtmf(digits: list[Digit], dets: list[Det], asterisk: bool) -> tuple[dict[int, Det], list[tuple[Det, int, bool]]]:
    """Order-preserving matching of detections to the labelled digits.

    Each digit (in time order) takes the first not yet used detection of the same digit whose onset estimate
    lies in [on - 50 ms, end + max lag]; detections skipped on the way, and any left over, are unmatched.
    Max lag is 50 ms for ours (it timestamps the tone itself). For Asterisk it is 1.5 s: it reports only the
    digit's END (ChannelDtmfReceived; onset estimate = event time - duration_ms), and channel.c's DTMF emulation
    stretches every digit to 80 ms plus a 45 ms gap, so in a fast train its reports fall further behind
    digit by digit. Returns (label index -> detection, [(detection, index of the digit it followed, double?)]).
    """
    lag = 1.5 if asterisk else 0.05
    dets = sorted(dets, key=lambda d: d.t_ref)
    used = [False] * len(dets)
    matched: dict[int, Det] = {}
    start = 0
    for i, lab in enumerate(digits):
        lo, hi = lab.on - 0.05, lab.on + lab.dur + lag
        for k in range(start, len(dets)):
            d = dets[k]
            if d.t_ref >= hi:
                break
            if not used[k] and d.t_ref >= lo and d.digit == lab.digit:
                used[k] = True
                matched[i] = d
                start = k + 1  # later digits only take later detections
                break
    unmatched = []
    for k, d in enumerate(dets):
        if used[k]:
            continue
        prev = max((i for i, lab in enumerate(digits) if lab.on - 0.05 <= d.t_ref), default=0)
        # a double: the same digit was also matched, reported within 400 ms of this one
        double = any(m.digit == d.digit and abs(m.t_emit - d.t_emit) < 0.4 for m in matched.values())
        unmatched.append((d, prev, double))
    return matched, unmatched


def score_dtmf(digits: list[Digit], dets: list[Det], content: tuple[float, float], asterisk: bool,
               by: str) -> dict[str, Tally]:
    """Per table row (by='group') or detail row (by='variant'); see match_dtmf."""
    matched, unmatched = match_dtmf(digits, dets, asterisk)
    out: dict[str, Tally] = {}
    for i, lab in enumerate(digits):
        tally = out.setdefault(getattr(lab, by), Tally())
        tally.cases += 1
        d = matched.get(i)
        if d is None:
            continue
        if lab.expect:
            tally.detected += 1
            tally.onset_err.append(d.t_ref - lab.on)
            tally.latency.append(d.t_emit - lab.on)
            if d.end is not None:
                tally.extra.append(d.end - (lab.on + lab.dur))
        else:
            tally.false += 1
    for d, prev, double in unmatched:
        if not content[0] - 0.5 <= d.t_ref <= content[1] + 2.0:
            continue
        tally = out.setdefault(getattr(digits[prev], by), Tally())
        tally.false += 1
        tally.doubles += double
    return out


def talk_intervals_ours(emitted: list[tuple[Any, float]], to_wav) -> list[tuple[float, float, float]]:
    """(start, end, emitted) per utterance from speech_start / speech events."""
    spans = []
    speech = [(to_wav(e.start), to_wav(e.start + e.duration)) for e, _ in emitted if e.kind == "speech"]
    for e, at in emitted:
        if e.kind != "speech_start":
            continue
        s = to_wav(e.start)
        end = next((b for a, b in speech if abs(a - s) < 0.1 and b >= s), float("inf"))
        spans.append((s, end, to_wav(at)))
    return spans


def talk_intervals_ast(events: list[dict], to_wav) -> list[tuple[float, float, float]]:
    spans = []
    starts = [e for e in events if e.get("type") == "ChannelTalkingStarted"]
    ends = [e for e in events if e.get("type") == "ChannelTalkingFinished"]
    for s in starts:
        ts_ = to_wav(s["_t"])
        end = next((to_wav(f["_t"]) - TALK_HANGOVER_MS / 1000 for f in ends if f["_t"] >= s["_t"]), float("inf"))
        spans.append((ts_, max(ts_, end), ts_))
    return spans


def score_vad(case: Case, spans: list[tuple[float, float, float]]) -> Tally:
    tally = Tally()
    c0, c1 = CONTENT_AT, case.content_end
    inside = [s for s in spans if s[1] > c0 and s[0] < c1]
    used: set[int] = set()
    for on, off in case.utterances:
        tally.cases += 1
        for k, (a, b, at) in enumerate(inside):
            # Only a talk START near the onset counts: talk that was already on (started in the >= 1.6 s pause
            # before, i.e. on noise) does not mark this utterance.
            if on - 0.15 <= a <= on + 0.6:
                tally.detected += 1
                tally.onset_err.append(a - on)
                tally.latency.append(at - on)
                used.add(k)
                break
    for k, (a, b, _at) in enumerate(inside):
        if k in used:
            continue
        if any(on - 0.15 <= a <= off + 0.3 for on, off in case.utterances):
            continue  # a second start inside an utterance: a split, not a false alarm
        tally.false += 1
    if not case.utterances:
        tally.cases = 1
        talk = sum(max(0.0, min(b, c1) - max(a, c0)) for a, b, _ in inside)
        tally.extra.append(talk / (c1 - c0))
    return tally


# --- per call analysis -------------------------------------------------------------------------------------

@dataclass
class CallResult:
    case: Case
    ok: bool = False
    error: str | None = None
    align_peak: float | None = None
    offset: float | None = None          # tap stream time of WAV t=0
    t0: float | None = None
    rtp_lost: int | None = None
    tap_seconds: float = 0.0
    strip_db: list[tuple[float, bool, bool, bool]] = field(default_factory=list)  # dB, Asterisk/live/wav hit
    marker_talk_delta: float | None = None
    slips: list[tuple[float, float]] = field(default_factory=list)
    event_counts: dict[str, int] = field(default_factory=dict)
    fax_trace: list[str] = field(default_factory=list)
    ast_dtmf_raw: int = 0
    ast_dtmf_exact_dups: int = 0
    ast_dtmf_digits: str = ""
    ast_dtmf_durations: list[int] = field(default_factory=list)
    live: list[Det] = field(default_factory=list)
    offline: list[Det] = field(default_factory=list)
    ast: list[Det] = field(default_factory=list)
    live_fax: list[Det] = field(default_factory=list)
    offline_fax: list[Det] = field(default_factory=list)
    ast_fax: list[Det] = field(default_factory=list)
    live_talk: list[tuple] = field(default_factory=list)
    offline_talk: list[tuple] = field(default_factory=list)
    ast_talk: list[tuple] = field(default_factory=list)
    softphone: dict = field(default_factory=dict)


def align(tap16: np.ndarray, sent8: np.ndarray) -> tuple[float | None, float]:
    """Tap stream time (s) of WAV t=0, and the normalised correlation peak of the marker."""
    if len(tap16) < TAP_RATE:
        return None, 0.0
    tap8 = tap16[::2].astype(np.float64)
    a, b = int(MARKER_AT * RATE), int((MARKER_AT + MARKER_DUR) * RATE)
    m = sent8[a:b].astype(np.float64)
    n = 1
    while n < len(tap8) + len(m):
        n *= 2
    corr = np.fft.irfft(np.fft.rfft(tap8, n) * np.conj(np.fft.rfft(m, n)), n)[: len(tap8) - len(m)]
    energy = np.convolve(tap8 ** 2, np.ones(len(m)), "valid")[: len(corr)]
    em = float(np.sum(m ** 2))
    # a floor on the window energy: digital silence must not give a large ratio out of rounding noise
    norm = corr / np.sqrt((energy + 0.01 * em) * em)
    lag = int(np.argmax(norm))
    return lag / RATE - MARKER_AT, float(norm[lag])


def stream_slips(tap16: np.ndarray, sent8: np.ndarray, offset: float) -> list[tuple[float, float]]:
    """Where the tap's stream clock slipped against the WAV after the marker: [(WAV time, slip s)], latest
    first. Half-second windows of the sent audio are looked up in the tapped audio within +-100 ms of where the
    previous window was found; windows that are (near) silent or do not match well (e.g. stripped DTMF) are
    skipped, so the last good slip carries on."""
    tap8 = tap16[::2].astype(np.float64)
    x = sent8.astype(np.float64)
    half, search = int(0.25 * RATE), int(0.1 * RATE)
    found: list[tuple[float, float]] = []
    slip = 0.0
    for c in np.arange(MARKER_AT + 1.0, len(x) / RATE - 0.5, 0.5):
        a, b = int(c * RATE) - half, int(c * RATE) + half
        ref = x[a:b]
        e_ref = float(np.sum(ref ** 2))
        if e_ref < len(ref) * 30.0 ** 2:  # below about -60 dBFS: nothing to align on
            continue
        lo = a + int(round((offset + slip) * RATE)) - search
        hi = b + int(round((offset + slip) * RATE)) + search
        if lo < 0 or hi > len(tap8):
            continue
        win = tap8[lo:hi]
        corr = np.correlate(win, ref, "valid")
        energy = np.convolve(win ** 2, np.ones(len(ref)), "valid")
        norm = corr / np.sqrt((energy + 0.01 * e_ref) * e_ref)
        k = int(np.argmax(norm))
        if norm[k] < 0.6:
            continue
        new = slip + (k - search) / RATE
        if abs(new - slip) > 0.001:
            found.append((float(c) - 0.25, new))
        slip = new
    return sorted(found, reverse=True)


def analyse(case: Case, rec: CallRec | None, sent8: np.ndarray, offline_emitted, softphone: dict) -> CallResult:
    res = CallResult(case, softphone=softphone)
    # offline: WAV time directly
    res.offline = [Det(e.start, at, e.details.get("digit"), e.end) for e, at in offline_emitted if e.kind == "dtmf"]
    res.offline_fax = [Det(e.start, at) for e, at in offline_emitted if e.kind == "fax_cng"]
    res.offline_talk = talk_intervals_ours(offline_emitted, lambda t: t)
    if rec is None:
        res.error = "the call never reached the app (no StasisStart)"
        return res
    res.error = rec.setup_error
    res.event_counts = dict(Counter(e.get("type", "?") for e in rec.events))
    tap16 = rec.pipe.audio()
    res.tap_seconds = len(tap16) / TAP_RATE
    if rec.tap is not None and rec.tap.receiver is not None:
        res.rtp_lost = rec.tap.receiver.stats.lost
    res.offset, res.align_peak = align(tap16, sent8)
    if res.offset is None or res.align_peak < 0.3:
        res.error = (res.error or "") + f" marker not found in the tapped audio (peak {res.align_peak:.2f})"
        return res
    off = res.offset
    res.t0 = marker_wall = rec.pipe.wall_at(MARKER_AT + off)
    if marker_wall is None:
        res.error = (res.error or "") + " no RTP packets around the marker"
        return res
    slips = stream_slips(tap16, sent8, off)
    res.slips = slips

    def wall_to_wav(w: float) -> float:
        # Asterisk hears the caller in real time (no jitter buffer), so WAV time runs with the wall clock; tied to
        # the tap only at the marker.
        return MARKER_AT + (w - marker_wall)

    def stream_to_wav(s: float) -> float:
        # the tap's stream clock, corrected by the frame slips found after the marker
        t = s - off
        for at, slip in slips:
            if t - slip >= at:
                return t - slip
        return t

    for e in rec.events:
        e["_t"] = ari_time(e) or e["_rx"]
    # live, ours
    em = rec.pipe.emitted
    res.live = [Det(stream_to_wav(e.start), stream_to_wav(at), e.details.get("digit"), stream_to_wav(e.end))
                for e, at in em if e.kind == "dtmf"]
    res.live_fax = [Det(stream_to_wav(e.start), stream_to_wav(at)) for e, at in em if e.kind == "fax_cng"]
    res.live_talk = talk_intervals_ours(em, stream_to_wav)
    # Asterisk: in-band DTMF
    dtmf = [e for e in rec.events if e.get("type") == "ChannelDtmfReceived"
            and (e.get("channel") or {}).get("id") == rec.channel_id]
    res.ast_dtmf_raw = len(dtmf)
    seen, unique = set(), []
    for e in dtmf:
        key = (e.get("timestamp"), e.get("digit"), e.get("duration_ms"))
        if key in seen:
            res.ast_dtmf_exact_dups += 1
            continue
        seen.add(key)
        unique.append(e)
    res.ast_dtmf_digits = "".join(e.get("digit", "?") for e in unique)
    res.ast_dtmf_durations = [int(e.get("duration_ms") or 0) for e in unique]
    res.ast = [Det(wall_to_wav(e["_t"] - (e.get("duration_ms") or 0) / 1000), wall_to_wav(e["_t"]), e.get("digit"),
                   wall_to_wav(e["_t"])) for e in unique]
    # Asterisk: fax CNG -> redirect to exten fax
    fax_marks = []
    for e in rec.events:
        kind = e.get("type")
        if kind == "ChannelVarset" and e.get("variable") == "FAXEXTEN":
            fax_marks.append(("ChannelVarset FAXEXTEN", e["_t"]))
        elif kind == "ChannelUserevent" and e.get("eventname") == "BenchFax":
            fax_marks.append(("ChannelUserevent BenchFax", e["_t"]))
        elif kind == "StasisStart" and (e.get("args") or [])[:1] == ["fax"]:
            fax_marks.append(("StasisStart fax", e["_t"]))
        elif kind == "ChannelDialplan" and e.get("dialplan_app") is not None and \
                (e.get("channel") or {}).get("dialplan", {}).get("exten") == "fax":
            fax_marks.append(("ChannelDialplan exten fax", e["_t"]))
        elif kind == "StasisEnd" and any(x.get("type") == "ChannelVarset" and x.get("variable") == "FAXEXTEN"
                                         for x in rec.events):
            fax_marks.append(("StasisEnd", e["_t"]))
    res.fax_trace = [f"{name} at {wall_to_wav(t):.3f} s" for name, t in sorted(fax_marks, key=lambda m: m[1])]
    real = [t for name, t in fax_marks if name != "StasisEnd"]
    if real:
        first = min(real)
        res.ast_fax = [Det(wall_to_wav(first), wall_to_wav(first))]
    # Asterisk: TALK_DETECT
    res.ast_talk = talk_intervals_ast([e for e in rec.events if (e.get("channel") or {}).get("id") == rec.channel_id],
                                      wall_to_wav)
    marker_starts = [a for a, _b, _at in res.ast_talk if MARKER_AT - 0.3 <= a <= MARKER_AT + 0.3]
    if marker_starts:
        res.marker_talk_delta = marker_starts[0] - MARKER_AT
    # how much of each digit the tap heard, relative to what was sent (mu-law), in dB
    tap8 = tap16[::2].astype(np.float64)

    hits = {name: set(match_dtmf(case.digits, dets, name == "ast")[0])
            for name, dets in (("ast", res.ast), ("live", res.live), ("wav", res.offline))}

    for i, lab in enumerate(case.digits):
        a, b = int((lab.on + off) * RATE), int((lab.on + off + lab.dur) * RATE)
        sa, sb = int(lab.on * RATE), int((lab.on + lab.dur) * RATE)
        if 0 <= a and b <= len(tap8) and sb <= len(sent8):
            sent = np.mean(sent8[sa:sb].astype(np.float64) ** 2)
            heard = np.mean(tap8[a:b] ** 2)
            if sent > 0:
                res.strip_db.append((10 * np.log10((heard + 1e-3) / sent), i in hits["ast"], i in hits["live"],
                                     i in hits["wav"]))
    res.ok = True
    return res


# --- report ---------------------------------------------------------------------------------------------------

def p50_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:+.0f}" if values else "-"


def cell(t: Tally | None, with_det: bool = True) -> str:
    if t is None:
        return "n/a"
    return f"{t.detected}/{t.false}" if with_det else f"-/{t.false}"


def build_rows(results: list[CallResult], dtmf_stripped: bool) -> tuple[list[list[str]], list[list[str]]]:
    rows: list[list[str]] = []
    detail: list[list[str]] = []
    ok = [r for r in results if r.ok]
    # DTMF groups
    groups: dict[str, dict[str, Tally]] = {}
    variants: dict[str, dict[str, Tally]] = {}
    for r in ok:
        if r.case.kind != "dtmf":
            continue
        content = (CONTENT_AT, r.case.content_end)
        for src, dets, ast in (("live", r.live, False), ("wav", r.offline, False), ("ast", r.ast, True)):
            for key, t in score_dtmf(r.case.digits, dets, content, ast, "group").items():
                groups.setdefault(key, {}).setdefault(src, Tally()).add(t)
            for key, t in score_dtmf(r.case.digits, dets, content, ast, "variant").items():
                variants.setdefault(f"{r.case.group}: {key}", {}).setdefault(src, Tally()).add(t)
    for key, by in groups.items():
        expect = not key.startswith("DTMF reject")
        prim = by.get("wav")
        rows.append([key, str(by["ast"].cases), cell(by.get("live"), expect), cell(by.get("wav"), expect),
                     cell(by.get("ast"), expect), p50_ms(prim.onset_err) if prim else "-",
                     p50_ms(prim.latency) if prim else "-", p50_ms(by["ast"].onset_err), p50_ms(by["ast"].latency),
                     f"of FA, same digit twice: ours {prim.doubles if prim else '-'} / Asterisk {by['ast'].doubles}"])
    for key, by in variants.items():
        detail.append([key, str(by["ast"].cases), cell(by.get("live"), "reject" not in key),
                       cell(by.get("wav"), "reject" not in key), cell(by.get("ast"), "reject" not in key),
                       p50_ms(by["wav"].onset_err), p50_ms(by["ast"].onset_err), p50_ms(by["ast"].latency),
                       p50_ms(by["ast"].extra)])
    # DTMF talk-off in the other calls (per second of content)
    talk_off = {"live": 0, "wav": 0, "ast": 0}
    seconds = 0.0
    for r in ok:
        if r.case.kind == "dtmf":
            continue
        c0, c1 = CONTENT_AT - 0.5, r.case.content_end + 0.5
        seconds += r.case.content_end - CONTENT_AT
        talk_off["live"] += sum(1 for d in r.live if c0 <= d.t_ref <= c1)
        talk_off["wav"] += sum(1 for d in r.offline if c0 <= d.t_ref <= c1)
        talk_off["ast"] += sum(1 for d in r.ast if c0 <= d.t_emit <= c1)
    rows.append(["DTMF talk-off in fax/VAD calls", f"{seconds:.0f} s", f"-/{talk_off['live']}",
                 f"-/{talk_off['wav']}", f"-/{talk_off['ast']}", "-", "-", "-", "-",
                 "digits reported in calls without DTMF"])
    # Fax
    fax_groups: dict[str, dict[str, Tally]] = {}
    fa = {"live": 0, "wav": 0, "ast": 0}
    non_cng = 0
    for r in ok:
        if r.case.kind == "fax":
            by = fax_groups.setdefault(r.case.group, {})
            for src, dets in (("live", r.live_fax), ("wav", r.offline_fax), ("ast", r.ast_fax)):
                t = by.setdefault(src, Tally())
                t.cases += 1
                good = [d for d in dets if d.t_emit >= r.case.cng_onset - 0.2]
                t.false += len(dets) - len(good) if src == "ast" else 0
                if good:
                    t.detected += 1
                    t.onset_err.append(good[0].t_ref - r.case.cng_onset)
                    t.latency.append(good[0].t_emit - r.case.cng_onset)
        else:
            non_cng += 1
            for src, dets in (("live", r.live_fax), ("wav", r.offline_fax), ("ast", r.ast_fax)):
                fa[src] += 1 if dets else 0
    for key, by in fax_groups.items():
        rows.append([key, str(by["ast"].cases), cell(by["live"]), cell(by["wav"]), cell(by["ast"]),
                     p50_ms(by["wav"].onset_err), p50_ms(by["wav"].latency), "-", p50_ms(by["ast"].latency),
                     "Asterisk: first redirect/event; times from the first CNG burst's onset"])
    rows.append(["Fax false alarm (DTMF/VAD calls)", f"{non_cng} calls", f"-/{fa['live']}", f"-/{fa['wav']}",
                 f"-/{fa['ast']}", "-", "-", "-", "-", "calls with any fax detection"])
    # VAD
    vad_groups: dict[str, dict[str, Tally]] = {}
    for r in ok:
        if r.case.kind != "vad":
            continue
        by = vad_groups.setdefault(r.case.group, {})
        for src, spans in (("live", r.live_talk), ("wav", r.offline_talk), ("ast", r.ast_talk)):
            by.setdefault(src, Tally()).add(score_vad(r.case, spans))
    for key, by in vad_groups.items():
        speech = bool(by["ast"].detected or "speech" in key)
        note = ""
        if by["ast"].extra:
            note = (f"talk time in content: ours {statistics.mean(by['live'].extra) * 100:.0f} %, "
                    f"Asterisk {statistics.mean(by['ast'].extra) * 100:.0f} %")
        rows.append([key, str(by["ast"].cases), cell(by["live"], speech), cell(by["wav"], speech),
                     cell(by["ast"], speech), p50_ms(by["wav"].onset_err), p50_ms(by["wav"].latency), "-",
                     p50_ms(by["ast"].latency), note])
    return rows, detail


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) if i == 0 or i == len(head) - 1 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(head, widths)))]
    out.append("-" * len(out[0]))
    for r in rows:
        out.append("  ".join(c.ljust(w) if i == 0 or i == len(head) - 1 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))))
    return out


def report(results: list[CallResult], version: str, args, wall: float, debug_log: dict, dups: dict) -> str:
    out: list[str] = []
    ok = [r for r in results if r.ok]
    strip = [d for r in ok if r.case.kind == "dtmf" for d in r.strip_db]
    ast_hit = [d for d in strip if d[1]]
    ast_miss = [d for d in strip if not d[1] and d[3]]  # Asterisk missed, ours heard it in the WAV
    live_of_ast_hit = sum(1 for d in ast_hit if d[2])
    live_of_ast_miss = sum(1 for d in ast_miss if d[2])
    dtmf_stripped = bool(ast_hit) and live_of_ast_hit < 0.5 * len(ast_hit)
    out.append(f"Ringpool detectors vs Asterisk's own ({version}), {len(results)} calls "
               f"({'--quick' if args.quick else 'full'}), {wall:.0f} s wall")
    out.append("Each case was played by a pjsua2 softphone (ulaw) into a real call to endpoint bench-vs "
               "(dtmf_mode=inband, fax_detect=yes, TALK_DETECT(set)=500 over ARI).")
    out.append("ours live = our DetectorPipeline on the tapped call audio (snoop spy=in -> externalMedia slin16); "
               "ours wav = the same detectors offline on the WAV as Asterisk received it (mu-law round trip, 8 kHz).")
    out.append("Asterisk = ChannelDtmfReceived / fax redirect (ChannelVarset FAXEXTEN, ChannelUserevent, StasisStart "
               "'fax') / ChannelTalkingStarted+Finished, from ARI.")
    out.append("det/FA = cases detected / false alarms (reject and talk-off rows: '-/FA'; doubles and wrong "
               "digits count as false alarms).")
    out.append("Timing p50 in ms, signed: 'onset' = the detector's own onset estimate - true onset (Asterisk DTMF: "
               "event time - duration_ms); 'report' = when it was reported - true onset (ours: stream position at "
               "emission; Asterisk: the ARI event's timestamp). Our timing columns are from ours wav (exact sample "
               "clock): the tap's stream clock can slip by whole 20 ms frames within a call (the snoop inserts/drops "
               "frames), so live timings carry that slip; the mapping for Asterisk's events uses the wall clock and "
               "is tied to the tap only at the marker.")
    if strip:
        def med(xs):
            return f"{statistics.median(d[0] for d in xs):+.1f} dB" if xs else "-"
        out.append(f"In-band DTMF at the tap (snoop spy=in): of the {len(ast_hit)} digits Asterisk detected, ours "
                   f"live heard {live_of_ast_hit} (tone energy at the tap vs sent: median {med(ast_hit)}); of the "
                   f"{len(ast_miss)} digits Asterisk missed, ours live heard {live_of_ast_miss} ({med(ast_miss)}).")
        out.append("  -> " + ("STRIPPED: Asterisk's in-band DSP squelches the rest of every digit it detects before "
                              "the audiohook/snoop sees the frame, so a live tap behind dtmf_mode=inband can only hear "
                              "the digits Asterisk missed. DTMF rows therefore compare ours wav (same samples, offline) "
                              "with Asterisk; ours live is shown for the record." if dtmf_stripped else
                              "not stripped: the live tap hears the digits."))
    out.append("")
    rows, detail = build_rows(results, dtmf_stripped)
    head = ["detector / case", "cases", "ours live", "ours wav", "Asterisk", "ours onset", "ours report",
            "Ast onset", "Ast report", "notes"]
    out += table(head, rows)
    out.append("")
    out.append("DTMF by variant (det/FA; timing p50 ms: ours wav onset, Asterisk onset from duration_ms, Asterisk "
               "report, Asterisk END event - true tone end):")
    out += table(["variant", "digits", "ours live", "ours wav", "Asterisk", "ours onset", "Ast onset",
                  "Ast report", "Ast end-err"], detail)
    out.append("")
    deltas = [r.marker_talk_delta for r in ok if r.marker_talk_delta is not None]
    if deltas:
        out.append(f"Time base check: TALK_DETECT start on the marker burst - marker onset at the tap: median "
                   f"{statistics.median(deltas) * 1000:+.0f} ms (n={len(deltas)}; TALK_DETECT decides per 20 ms "
                   "frame, so the tap path delay is about that much plus up to 20 ms; Asterisk 'report' times "
                   "are measured against the tap and are early by the tap path delay).")
    out.append("")
    out.append("Per call:")
    for r in results:
        c = r.case
        line = f"  {c.name:<12} {c.duration:5.1f} s"
        if not r.ok:
            out.append(line + f"  FAILED: {r.error}")
            continue
        slip = " (below 0.9: a frame slip near the marker, timing +-20 ms)" if r.align_peak < 0.9 else ""
        line += (f"  align peak {r.align_peak:.2f}{slip}, tap {r.tap_seconds:.1f} s, RTP lost {r.rtp_lost}, "
                 f"events {dict(sorted(r.event_counts.items()))}")
        out.append(line)
        if r.slips:
            out.append("      tap stream clock slips vs the WAV (from WAV time, ms): " + ", ".join(
                f"{at:.1f} s: {slip * 1000:+.0f}" for at, slip in sorted(r.slips)))
        if c.kind == "dtmf":
            out.append(f"      Asterisk digits ({r.ast_dtmf_raw} ChannelDtmfReceived, {r.ast_dtmf_exact_dups} exact "
                       f"duplicates): {r.ast_dtmf_digits or '-'}")
            durs = r.ast_dtmf_durations
            if durs:
                out.append(f"      Asterisk duration_ms: min {min(durs)} median {statistics.median(durs):.0f} "
                           f"max {max(durs)}; tap digit energy median "
                           f"{statistics.median(d[0] for d in r.strip_db) if r.strip_db else float('nan'):+.1f} dB")
            out.append(f"      ours wav digits: {''.join(d.digit or '?' for d in r.offline) or '-'}")
            out.append(f"      ours live digits: {''.join(d.digit or '?' for d in r.live) or '-'}")
        if r.fax_trace:
            out.append(f"      fax on ARI (WAV time; first CNG burst at {c.cng_onset or '-'}): "
                       + "; ".join(r.fax_trace))
        if r.error:
            out.append(f"      note: {r.error}")
    if dups:
        out.append(f"ARI events delivered twice (channel + endpoint subscription, identical; dropped): {dups}")
    if debug_log:
        out.append("")
        out.append("Asterisk's own log (debug/verbose) over the run: " +
                   ", ".join(f"{k}: {v}" for k, v in debug_log.items()))
    return "\n".join(out)


# --- the bench ----------------------------------------------------------------------------------------------

ENDPOINT = f"""
; --- bench/detectors_vs_asterisk.py: caller at {CALLER_SOURCE}, Asterisk's own detectors on ---
[bench-vs]
type = endpoint
context = bench-vs
disallow = all
allow = ulaw
direct_media = no
rtp_symmetric = yes
force_rport = yes
dtmf_mode = inband
fax_detect = yes

[bench-vs-identify]
type = identify
endpoint = bench-vs
match = {CALLER_SOURCE}
"""

EXTENSIONS = f"""
; --- bench/detectors_vs_asterisk.py ---
[bench-vs]
exten => _X.,1,Answer()
 same => n,Stasis({APP},call,${{EXTEN}})
 same => n,Hangup()
; chan_pjsip jumps here (ast_async_goto) when fax_detect hears CNG, after setting FAXEXTEN
exten => fax,1,UserEvent(BenchFax,exten: ${{FAXEXTEN}})
 same => n,Stasis({APP},fax,${{FAXEXTEN}})
 same => n,Hangup()
"""

EXTRA_MODULES = ["func_talkdetect", "app_userevent"]


class Bench:
    def __init__(self, args, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        taken: set[int] = set()
        self.sip_port = free_port(udp=True, tcp=True, taken=taken)
        self.http_port = free_port(udp=False, taken=taken)
        admin_port = free_port(udp=False, taken=taken)
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        self.rtp_start = free_block(200, 21000, min(low, 32768))
        self.password = secrets.token_urlsafe(18)
        cfg = tmp / "bench.yaml"
        cfg.write_text(f"""# generated by bench/detectors_vs_asterisk.py
state_dir: state
asterisk:
  bundled: false
  sip_bind: 127.0.0.1
  sip_port: {self.sip_port}
  http_port: {self.http_port}
  rtp_start: {self.rtp_start}
  rtp_end: {self.rtp_start + 199}
ari:
  url: http://127.0.0.1:{self.http_port}
  username: bench
  password: "{self.password}"
  app: {APP}
admin:
  bind: 127.0.0.1
  port: {admin_port}
  token: "{secrets.token_urlsafe(24)}"
trunks:
  - name: unused
    match: [127.0.0.1]
""")
        self.settings = load_settings(cfg)
        self.asterisk: BundledAsterisk | None = None
        self.app = App()

    async def start(self) -> None:
        root = default_root()
        await asyncio.get_running_loop().run_in_executor(None, ensure_installed, root)
        run_dir = self.tmp / "asterisk"
        self.asterisk = BundledAsterisk(root, run_dir, http_port=self.http_port, ari_user="bench",
                                        ari_password=self.password)
        files = render_all(self.settings, root=root, run_dir=run_dir, ari_password=self.password,
                           extra_pjsip=ENDPOINT, extra_extensions=EXTENSIONS)
        files["modules.conf"] += "".join(f"load => {m}.so\n" for m in EXTRA_MODULES)
        files["logger.conf"] += "bench-debug.log => debug,verbose,notice,warning,error,dtmf\n"
        self.asterisk.write_config(files)
        log(f"starting bundled Asterisk (SIP 127.0.0.1:{self.sip_port}, ARI :{self.http_port}, "
            f"RTP {self.rtp_start}-{self.rtp_start + 199})")
        await self.asterisk.start()
        shown = await self.asterisk.cli("module show like talkdetect") + await self.asterisk.cli(
            "module show like userevent")
        for m in EXTRA_MODULES:
            if not re.search(rf"^{m}\.so\s.*Running", shown, re.M):
                raise RuntimeError(f"Asterisk module {m} is not running:\n{shown}")
        endpoint = await self.asterisk.cli("pjsip show endpoint bench-vs")
        for needle in ("dtmf_mode", "fax_detect"):
            line = next((x.strip() for x in endpoint.splitlines() if x.strip().startswith(needle + " ")), None)
            log(f"  endpoint bench-vs: {line}")
        await self.asterisk.cli("core set verbose 3")
        self.app.client = AriClient(f"http://127.0.0.1:{self.http_port}", "bench", self.password, APP,
                                    on_event=self.app.on_event)
        await self.app.client.__aenter__()
        if not await self.app.client.events.wait_connected(10):
            raise RuntimeError("ARI events WebSocket did not connect")
        # Without this, the UserEvent in exten 'fax' is not seen: the channel has left Stasis (StasisEnd) when it
        # runs, so the app is no longer subscribed to it.
        await self.app.client.rest.request("POST", f"/applications/{APP}/subscription",
                                           params={"eventSource": "endpoint:PJSIP/bench-vs"})
        log(f"Asterisk {self.asterisk.version} ready; ARI app {APP} connected (subscribed to endpoint:PJSIP/bench-vs)")

    async def stop(self) -> None:
        if self.app.client is not None:
            try:
                await self.app.client.close()
            except Exception as exc:  # keep stopping
                log(f"closing ARI client: {exc}")
        if self.asterisk is not None:
            await self.asterisk.stop()
            await self.asterisk.kill()

    async def run_case(self, index: int, case: Case) -> CallResult:
        exten = str(1000 + index)
        wav = self.tmp / f"{case.name}.wav"
        pcm = write_wav(wav, case.audio)
        sent8 = ulaw_roundtrip(pcm)
        offline = await asyncio.get_running_loop().run_in_executor(None, run_offline, sent8)
        self.app.by_exten[exten] = case
        log(f"call {exten} {case.name}: {case.duration:.1f} s")
        try:
            result = await run_softphone(call=f"sip:{exten}@127.0.0.1:{self.sip_port}", bind=CALLER_SOURCE,
                                         play=str(wav), hold=round(case.duration + 0.3, 2),
                                         timeout=case.duration + 20, log_level=0, python=sys.executable)
        except SoftphoneError as exc:
            result = {"ok": False, "error": str(exc)[:500]}
        rec = self.app.calls.get(exten)
        if rec is not None:
            try:
                await asyncio.wait_for(rec.destroyed.wait(), 5)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.3)
            if rec.setup is not None:
                await rec.setup
            if rec.tap is not None:
                try:
                    await rec.tap.stop()
                except AriError as exc:
                    log(f"  tap stop: {exc}")
            rec.pipe.close()
        res = analyse(case, rec, sent8, offline, {k: result.get(k) for k in ("ok", "error", "answered_at")})
        if rec is not None:  # raw material for a later look (kept with --keep)
            (self.tmp / f"{case.name}.events.json").write_text(json.dumps(
                {"ari_events": rec.events, "ours_live": [(e.kind, e.start, e.duration, e.details, at)
                                                         for e, at in rec.pipe.emitted],
                 "offset": res.offset, "t0": res.t0}, default=str))
        if not result.get("ok") and not res.error:
            res.error = f"softphone: {result.get('error')}"
        if rec is not None and rec.setup_error:
            res.error = rec.setup_error
        return res


def debug_log_summary(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(errors="replace")
    return {
        "'DTMF end' lines": len(re.findall(r"DTMF end '.' received on PJSIP/bench-vs", text)),
        "'DTMF begin' lines": len(re.findall(r"DTMF begin '.' received on PJSIP/bench-vs", text)),
        "'Redirecting ... to fax extension'": len(re.findall(r"to fax extension due to CNG", text)),
        "'FAX CNG detected'": len(re.findall(r"FAX CNG detected", text)),
    }


async def main_async(args, tmp: Path) -> int:
    started = time.monotonic()
    cache = Path(tempfile.gettempdir()) / "ringpool-testspeech"
    cases = build_cases(args.quick, cache)
    log(f"{len(cases)} calls, {sum(c.duration for c in cases):.0f} s of audio")
    bench = Bench(args, tmp)
    results: list[CallResult] = []
    try:
        await bench.start()
        for i, case in enumerate(cases):
            results.append(await bench.run_case(i, case))
            r = results[-1]
            log(f"  -> {'ok' if r.ok else 'FAILED'}: events {r.event_counts} {r.error or ''}")
    finally:
        log("stopping Asterisk")
        await asyncio.shield(bench.stop())
    version = f"Asterisk {bench.asterisk.version}" if bench.asterisk else "Asterisk ?"
    dbg = debug_log_summary(tmp / "asterisk" / "log" / "bench-debug.log")
    text = report(results, version, args, time.monotonic() - started, dbg, dict(bench.app.duplicates))
    print(text, flush=True)
    (tmp / "report.txt").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps([{
            "case": r.case.name, "kind": r.case.kind, "group": r.case.group, "ok": r.ok, "error": r.error,
            "align_peak": r.align_peak, "offset": r.offset, "event_counts": r.event_counts,
            "fax_trace": r.fax_trace, "asterisk_digits": r.ast_dtmf_digits, "asterisk_dtmf_raw": r.ast_dtmf_raw,
            "strip_db": r.strip_db, "marker_talk_delta": r.marker_talk_delta,
            "ours_wav_digits": "".join(d.digit or "?" for d in r.offline),
            "ours_live_digits": "".join(d.digit or "?" for d in r.live),
            "asterisk_talk": r.ast_talk, "ours_live_talk": r.live_talk} for r in results], indent=1, default=str))
    return 0 if all(r.ok for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset (about 2 minutes)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (WAVs, Asterisk logs)")
    parser.add_argument("--json", help="also write per-call results to this JSON file")
    args = parser.parse_args()
    if not can_bind(socket.SOCK_DGRAM, CALLER_SOURCE, 0):
        print(f"detectors_vs_asterisk: cannot bind {CALLER_SOURCE} (the caller's address)", file=sys.stderr)
        return 2
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        print("detectors_vs_asterisk: espeak-ng and sox are needed for the speech cases", file=sys.stderr)
        return 2
    return run_in_temp_folder(lambda tmp: main_async(args, tmp), prefix="ringpool-vs-asterisk-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
