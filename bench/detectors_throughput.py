"""How many concurrent streams one core keeps up with, full tone suite (a script, not a test).

Runs StreamBank (DTMF, fax/modem, call progress, SIT, VAD) on N streams of
mixed labelled audio in 20 ms frames, pinned to one core, and compares with
two baselines measured in the same run on the same audio:
  * a plain numpy rfft power spectrum of every 20 ms frame (the cheapest thing
    that still looks at every stream's spectrum), and
  * the same detectors run one stream at a time (DetectorPipeline per stream).

    .venv/bin/python bench/detectors_throughput.py [--seconds 6] [--streams 500,2000,4000]
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detectors import DetectorPipeline, StreamBank  # noqa: E402
from detectors import testsignals as ts  # noqa: E402


def pool(rate: int, seconds: float, n: int = 48) -> np.ndarray:
    """n distinct mixed signals (tones, digits, speech-like noise, silence) with noise."""
    rng = np.random.default_rng(0)
    makers = [
        lambda: ts.dtmf_sequence("5551234", 0.07, 0.09, rate)[0],
        lambda: ts.busy(rate), lambda: ts.reorder(rate), lambda: ts.ringback(rate, cycles=1),
        lambda: ts.cng(rate), lambda: ts.answer_tone(rate, am=True, reversals=True),
        lambda: ts.v21_flags(rate), lambda: ts.sit("IC", rate), lambda: ts.answer_tone(rate, freq=2225),
        lambda: rng.standard_normal(int(seconds * rate)) * 2000 * np.repeat(rng.random(int(seconds * 4)) > 0.4,
                                                                            rate // 4)[: int(seconds * rate)],
        lambda: np.zeros(int(seconds * rate)),
    ]
    n_samp = int(seconds * rate)
    out = np.zeros((n, n_samp), np.int16)
    for i in range(n):
        x = makers[i % len(makers)]()
        x = np.resize(x, n_samp)
        out[i] = ts.pcm16(ts.add_noise(x, 20, rng, signal_power=ts.amp(-20) ** 2))
    return out


def run_bank(audio: np.ndarray, n: int, rate: int) -> float:
    bank = StreamBank(n, rate)
    idx = np.arange(n) % audio.shape[0]
    frame = rate // 50
    blocks = [audio[idx, k:k + frame] for k in range(0, audio.shape[1] - frame + 1, frame)]
    t = time.process_time()
    events = 0
    for b in blocks:
        events += len(bank.process(b))
    return time.process_time() - t


def run_fft(audio: np.ndarray, n: int, rate: int) -> float:
    idx = np.arange(n) % audio.shape[0]
    frame = rate // 50
    blocks = [audio[idx, k:k + frame] for k in range(0, audio.shape[1] - frame + 1, frame)]
    t = time.process_time()
    for b in blocks:
        s = np.fft.rfft(b.astype(np.float32), axis=1)
        (s.real ** 2 + s.imag ** 2).sum()
    return time.process_time() - t


def run_single(audio: np.ndarray, n: int, rate: int) -> float:
    frame = rate // 50
    t = time.process_time()
    for i in range(n):
        p = DetectorPipeline(rate)
        x = audio[i % audio.shape[0]]
        for k in range(0, len(x) - frame + 1, frame):
            p.feed(x[k:k + frame])
        p.close()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--streams", default="500,2000,4000")
    ap.add_argument("--single", type=int, default=8, help="streams for the one-at-a-time baseline")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"pinned to CPU {sorted(os.sched_getaffinity(0))}; numpy {np.__version__}; {args.seconds:g} s of audio per stream")
    rows = []
    for rate, counts in ((8000, [int(c) for c in args.streams.split(",")]), (16000, [1000])):
        audio = pool(rate, args.seconds)
        for n in counts:
            cpu = run_bank(audio, n, rate)
            rows.append((f"StreamBank {rate // 1000} kHz", n, cpu, n * args.seconds))
        n = counts[-1]
        rows.append((f"numpy rfft power {rate // 1000} kHz (baseline)", n, run_fft(audio, n, rate), n * args.seconds))
        rows.append((f"per-stream pipeline {rate // 1000} kHz (baseline)", args.single,
                     run_single(audio, args.single, rate), args.single * args.seconds))
    print()
    print(f"{'path':44} {'streams':>8} {'cpu s':>8} {'x real time':>12} {'streams/core':>13} {'us/stream-s':>12}")
    for name, n, cpu, stream_s in rows:
        per = cpu / stream_s  # cpu seconds per stream-second
        print(f"{name:44} {n:8d} {cpu:8.2f} {args.seconds / cpu:12.2f} {1 / per:13.0f} {per * 1e6:12.1f}")
    bank8 = [r for r in rows if r[0] == "StreamBank 8 kHz"][-1]
    fft8 = [r for r in rows if r[0].startswith("numpy rfft power 8")][0]
    single8 = [r for r in rows if r[0].startswith("per-stream pipeline 8")][0]
    per_bank = bank8[2] / bank8[3]
    print()
    print(f"8 kHz full tone suite: {1 / per_bank:.0f} streams per core in real time "
          f"({per_bank * 1e6:.1f} us CPU per stream-second)")
    print(f"  cost vs plain rfft power pass: {per_bank / (fft8[2] / fft8[3]):.2f}x")
    print(f"  speed-up vs one-stream-at-a-time: {(single8[2] / single8[3]) / per_bank:.0f}x")


if __name__ == "__main__":
    main()
