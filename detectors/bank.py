"""StreamBank: every detector for N concurrent streams, one numpy pass per block.

All streams advance in lock step: `process` takes an (N, samples) array whose
length is a multiple of the 5 ms sub-block (20 ms RTP frames are 4 of them).
Per sub-block the whole bank costs a fixed number of array operations,
independent of N; per-stream Python runs only when something changes
(a digit ends, a tone segment ends, speech starts), which is what keeps
thousands of streams on one core.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .amd import AMDBank, AMDParams
from .dtmf import FREQS as DTMF_FREQS, DialAnalyzer, DTMFBank, DTMFConfig
from .events import Event
from .goertzel import SUB_BLOCK_S, SlidingBins, WindowSpec
from .tones import CP_FREQS, FAX_FREQS, SIT_FREQS, ToneBank, ToneConfig
from .vad import VADBank, VADConfig

RATES = (8000, 16000)


@dataclass
class DetectorConfig:
    dtmf: DTMFConfig = field(default_factory=DTMFConfig)
    tones: ToneConfig = field(default_factory=ToneConfig)
    vad: VADConfig = field(default_factory=VADConfig)
    amd: AMDParams = field(default_factory=AMDParams)


def to_int16(pcm: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Native-endian 16-bit linear PCM as int16 (bytes are taken as native order)."""
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise TypeError(f"expected int16 samples, got {pcm.dtype}")
        return pcm
    return np.frombuffer(pcm, dtype=np.int16)


class StreamBank:
    """N streams' detector state in arrays.

    Slots are fixed; a new call takes a slot with `reset_stream(i)` (its clock
    restarts at 0) and `close_stream(i)` flushes what was pending.
    """

    def __init__(self, n_streams: int, rate: int = 8000, config: DetectorConfig | None = None):
        if rate not in RATES:
            raise ValueError(f"rate must be one of {RATES}, got {rate}")
        self.n, self.rate = n_streams, rate
        self.cfg = config or DetectorConfig()
        freqs = np.asarray(DTMF_FREQS + FAX_FREQS + CP_FREQS + SIT_FREQS)
        nd, nf, nc = len(DTMF_FREQS), len(FAX_FREQS), len(CP_FREQS)
        self.bins = SlidingBins(n_streams, freqs, rate, {
            "w20": WindowSpec(slice(0, nd + nf), 4),
            "w50": WindowSpec(slice(nd + nf, len(freqs)), 10),
        })
        self.sub_len = self.bins.sub_len
        self.hop = 0  # global sub-block counter
        self.c0 = np.zeros(n_streams, np.int64)  # hop at which each stream's clock is 0
        self.dtmf = DTMFBank(n_streams, self.bins, slice(0, nd), self.cfg.dtmf)
        self.tones = ToneBank(n_streams, self.bins, slice(nd, nd + nf), slice(0, nc),
                              slice(nc, nc + len(SIT_FREQS)), self.cfg.tones, self.c0)
        self.vad = VADBank(n_streams, self.bins, self.cfg.vad, self.c0)
        self.amd = AMDBank(n_streams, self.c0)
        self.dial = [DialAnalyzer(self.cfg.dtmf) for _ in range(n_streams)]

    # ---- stream control -----------------------------------------------------------
    def reset_stream(self, i: int) -> None:
        idx = np.array([i])
        self.c0[i] = self.hop
        self.bins.reset_streams(idx)
        self.dtmf.reset_streams(idx)
        self.tones.reset_streams(idx, self.hop)
        self.vad.reset_streams(idx, self.hop)
        self.amd.disarm(idx)
        self.dial[i] = DialAnalyzer(self.cfg.dtmf)

    def time(self, i: int) -> float:
        """Seconds of audio stream i has been fed."""
        return float((self.hop - self.c0[i]) * SUB_BLOCK_S)

    def expect_speech(self, i: int, within_s: float) -> None:
        """Arm stream i's timer: a `no_speech` event if no speech starts within within_s."""
        self.vad.expect_speech(i, within_s, self.hop)

    def arm_amd(self, i: int, params: AMDParams | None = None) -> None:
        """Start app_amd-style analysis on stream i from now (call it at answer)."""
        self.amd.arm(i, params or self.cfg.amd, self.hop)

    def close_stream(self, i: int) -> list[Event]:
        """End stream i: report runs still open (a digit, a tone, speech, AMD as HANGUP)."""
        idx = np.array([i])
        out = self._dtmf_events(self.dtmf.flush(idx))
        out += self.tones.flush(idx, self.hop)
        out += self.vad.flush(idx, self.hop)
        out += self.amd.flush(idx, self.hop)
        self.reset_stream(i)
        return [e for _, e in sorted(out, key=lambda x: x[1].start)]

    # ---- processing -------------------------------------------------------------------
    def process(self, pcm: np.ndarray) -> list[tuple[int, Event]]:
        """Feed (N, k * sub_len) int16 samples; return (stream, Event) pairs found."""
        if pcm.ndim != 2 or pcm.shape[0] != self.n or pcm.shape[1] % self.sub_len:
            raise ValueError(f"expected shape ({self.n}, k*{self.sub_len}), got {pcm.shape}")
        k = pcm.shape[1] // self.sub_len
        x = pcm.reshape(self.n, k, self.sub_len).astype(np.float32)
        z = self.bins.transform(x)                       # (N, k, F) in one matmul
        energy = np.einsum("nkl,nkl->nk", x, x)          # (N, k)
        sum_abs = np.abs(x).sum(axis=2)
        peak = np.abs(pcm.reshape(self.n, k, self.sub_len)).max(axis=2).astype(np.int32)
        out: list[tuple[int, Event]] = []
        for j in range(k):
            self.bins.step(z[:, j], energy[:, j])
            h = self.hop
            out.extend(self._dtmf_events(self.dtmf.step(h)))
            out.extend(self.tones.step(h))
            tone = self.tones.tone_now | self.dtmf.hit_now
            out.extend(self.vad.step(h, peak[:, j], tone))
            out.extend(self.amd.step(h, sum_abs[:, j], self.sub_len))
            self.hop += 1
        return out

    def _dtmf_events(self, raw: list[tuple]) -> list[tuple[int, Event]]:
        out = []
        for i, digit, first_sub, dur, info in raw:
            start = (first_sub - self.c0[i]) * SUB_BLOCK_S
            out.extend((i, e) for e in self.dial[i].add(digit, start, dur, info))
        return out
