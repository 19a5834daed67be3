"""Vectorised single-bin DFTs (the Goertzel quantity) for many streams at once.

Why not a per-sample Goertzel recurrence: in numpy that needs a Python loop per
sample.  A single-bin DFT over a fixed block is the same quantity, and for N
streams x F frequencies it is one (N, L) @ (L, 2F) matrix product per block.

Audio is cut into short *sub-blocks* (5 ms).  Each sub-block's bin value is
rotated onto a phase reference that is continuous across sub-blocks, so
summing the last M sub-blocks gives the DFT of an M*L-sample window (sliding
with a 5 ms hop) and the phase step between consecutive windows measures the
tone's offset from the bin frequency (used for the Q.24 deviation tests and to
correct the level of slightly off-frequency tones).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUB_BLOCK_S = 0.005  # hop: 5 ms at every sample rate


def dirichlet_gain(offset_hz: np.ndarray, n: int, rate: int) -> np.ndarray:
    """Amplitude gain of an n-sample rectangular DFT bin for a tone offset_hz away.

    sinc(offset * n / rate) by its Taylor series (exact to 0.5 % while the gain
    is above 0.3, which is all the detectors use): no transcendental calls on the
    hot path.
    """
    u = np.asarray(offset_hz, dtype=np.float32) * np.float32(np.pi * n / rate)
    u2 = u * u
    g = 1 - u2 * (1 / 6 - u2 * (1 / 120 - u2 * (1 / 5040 - u2 / 362880)))
    return np.abs(g)


@dataclass(frozen=True)
class WindowSpec:
    """A sliding window over some bins: which columns and how many sub-blocks."""

    cols: slice
    n_sub: int


class SlidingBins:
    """Sliding-window bin values for N streams, updated one sub-block at a time.

    State lives in arrays so one `step` advances every stream.  `windows` maps a
    name to a WindowSpec; after each step `S[name]` is the (N, F_w) complex DFT
    of the last n_sub sub-blocks and `S_prev[name]` the one before it.
    """

    def __init__(self, n: int, freqs: np.ndarray, rate: int, windows: dict[str, WindowSpec]):
        self.n = n
        self.rate = rate
        self.freqs = np.asarray(freqs, dtype=np.float64)
        self.sub_len = int(round(rate * SUB_BLOCK_S))
        self.windows = windows
        self.depth = max(w.n_sub for w in windows.values())
        t = np.arange(self.sub_len)[:, None]
        w = 2 * np.pi * self.freqs[None, :] / rate
        self._mat = np.concatenate([np.cos(w * t), -np.sin(w * t)], axis=1).astype(np.float32)
        self._w_sub = (2 * np.pi * self.freqs * self.sub_len / rate) % (2 * np.pi)
        f = len(self.freqs)
        self.ring = np.zeros((self.depth, n, f), dtype=np.complex64)
        self.ering = np.zeros((self.depth, n), dtype=np.float32)  # sub-block energies
        self.count = 0  # global sub-block counter (all streams advance together)
        self.S = {k: np.zeros((n, len(self.freqs[v.cols])), np.complex64) for k, v in windows.items()}
        self.S_prev = {k: v.copy() for k, v in self.S.items()}
        self.E = {k: np.zeros(n, np.float32) for k in windows}
        self.Emin = {k: np.zeros(n, np.float32) for k in windows}   # least 5 ms sub-block energy
        self.Ehalf = {k: np.zeros(n, np.float32) for k in windows}  # least half-window energy

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(..., L) float32 sub-blocks -> (..., F) complex bin values (unrotated)."""
        r = x @ self._mat
        f = len(self.freqs)
        return (r[..., :f] + 1j * r[..., f:]).astype(np.complex64)

    def reset_streams(self, idx: np.ndarray) -> None:
        self.ring[:, idx] = 0
        self.ering[:, idx] = 0
        for k in self.S:
            self.S[k][idx] = 0
            self.S_prev[k][idx] = 0
            self.E[k][idx] = 0

    def step(self, z: np.ndarray, energy: np.ndarray) -> None:
        """Push one sub-block: z (N, F) from `transform`, energy (N,) sum of squares."""
        rot = np.exp(-1j * ((self._w_sub * self.count) % (2 * np.pi))).astype(np.complex64)
        y = z * rot
        slot = self.count % self.depth
        recompute = self.count % 512 == 0  # bound float32 drift of the running sums
        for name, spec in self.windows.items():
            old = (self.count - spec.n_sub) % self.depth
            prev = self.S[name]
            self.S_prev[name] = prev
            if recompute:
                self.ring[slot] = y
                self.ering[slot] = energy
                idx = [(self.count - i) % self.depth for i in range(spec.n_sub)]
                self.S[name] = self.ring[idx][:, :, spec.cols].sum(axis=0)
                self.E[name] = self.ering[idx].sum(axis=0)
            else:
                self.S[name] = prev + (y[:, spec.cols] - self.ring[old][:, spec.cols])
                self.E[name] = self.E[name] + (energy - self.ering[old])
        self.ring[slot] = y
        self.ering[slot] = energy
        for name, spec in self.windows.items():
            idx = [(self.count - i) % self.depth for i in range(spec.n_sub)]
            e = self.ering[idx]
            self.Emin[name] = e.min(axis=0)
            h = spec.n_sub // 2
            self.Ehalf[name] = np.minimum(e[:h].sum(axis=0), e[h:2 * h].sum(axis=0))
        self.count += 1

    def offset_hz(self, name: str, cols: np.ndarray | slice) -> np.ndarray:
        """Frequency offset of the tone in each bin, from the phase step between windows."""
        d = self.S[name][:, cols] * np.conj(self.S_prev[name][:, cols])
        return np.angle(d) / (2 * np.pi * SUB_BLOCK_S)

    def offset_rows(self, name: str, rows: np.ndarray, cols) -> np.ndarray:
        """offset_hz for a subset of streams (the detectors gate expensive work on candidates)."""
        d = self.S[name][rows][:, cols] * np.conj(self.S_prev[name][rows][:, cols])
        return np.angle(d) / (2 * np.pi * SUB_BLOCK_S)

    def tone_energy(self, name: str, cols: np.ndarray | slice, offset: np.ndarray | None = None) -> np.ndarray:
        """Energy (sum of squares over the window) of the tone in each bin.

        With `offset`, the bin's loss for an off-frequency tone is undone, so
        levels and twist are measured correctly up to a few % deviation.
        """
        s = self.S[name][:, cols]
        n = self.windows[name].n_sub * self.sub_len
        p = 2.0 * (s.real.astype(np.float64) ** 2 + s.imag.astype(np.float64) ** 2) / n
        if offset is not None:
            g = np.maximum(dirichlet_gain(offset, n, self.rate), 0.3)
            p = p / (g * g)
        return p
