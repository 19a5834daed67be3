"""Debounced label runs for N streams at once (the cadence front end).

Each hop every stream gets an integer label (0 = nothing).  A stream switches
to a new label only after it has persisted `debounce[label]` hops, so short
drop-outs in noise do not split a tone and speech hangover is just a long
debounce into "not speech".  Only transitions are returned, as sparse index
arrays, so Python-level cadence logic runs per segment, never per sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Transitions:
    """Streams whose label changed this hop.

    For stream idx[k]: the run of label `old[k]` covered hops
    old_start[k] .. new_start[k]-1 and label `new[k]` started at new_start[k].
    """

    idx: np.ndarray
    old: np.ndarray
    old_start: np.ndarray
    new: np.ndarray
    new_start: np.ndarray


class SegmentTracker:
    def __init__(self, n: int, n_labels: int, debounce: list[int] | np.ndarray):
        self.debounce = np.asarray(debounce, dtype=np.int64)
        assert len(self.debounce) == n_labels
        self.cur = np.zeros(n, np.int64)
        self.cur_start = np.zeros(n, np.int64)
        self.cand = np.zeros(n, np.int64)
        self.cand_start = np.zeros(n, np.int64)
        self.cand_count = np.zeros(n, np.int64)

    def reset_streams(self, idx: np.ndarray, hop: int) -> None:
        self.cur[idx] = 0
        self.cur_start[idx] = hop
        self.cand[idx] = 0
        self.cand_count[idx] = 0

    def step(self, label: np.ndarray, hop: int) -> Transitions | None:
        """Advance by one hop (global hop number `hop`); return transitions or None."""
        same = label == self.cur
        if same.all():
            self.cand_count[:] = 0
            return None
        keep = label == self.cand
        self.cand_count = np.where(same, 0, np.where(keep, self.cand_count + 1, 1))
        self.cand_start = np.where(same | keep, self.cand_start, hop)
        self.cand = np.where(same, self.cur, label)
        fire = (~same) & (self.cand_count >= self.debounce[self.cand])
        if not fire.any():
            return None
        idx = np.nonzero(fire)[0]
        tr = Transitions(idx, self.cur[idx].copy(), self.cur_start[idx].copy(),
                         self.cand[idx].copy(), self.cand_start[idx].copy())
        self.cur[idx] = self.cand[idx]
        self.cur_start[idx] = self.cand_start[idx]
        self.cand_count[idx] = 0
        return tr

    def flush(self, idx: np.ndarray, hop: int) -> Transitions:
        """End the current runs of `idx` at `hop` (stream close)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Transitions(idx, self.cur[idx].copy(), self.cur_start[idx].copy(),
                           np.zeros(len(idx), np.int64), np.full(len(idx), hop, np.int64))
