"""Live-call shape: N concurrent 16 kHz calls fed 20 ms frames through StreamHub (a script, not a test).

Each call is opened at a staggered moment in the first second, armed for AMD
and a no-speech timer at answer, then sends 20 ms frames in real-time order
with 0-40 ms of bursty arrival jitter; the hub is pumped every 100 ms of
stream time, and each call is released (flushed by the next pumps, as
HubRunner.close does) after its last frame.  Time is
simulated (the run is as fast as the CPU allows; the hub's starvation clock
follows the simulated time), CPU is process time on one pinned core, and
covers everything: push, pump, close.

Baseline, on the same frames in the same arrival order: one DetectorPipeline
per call.  It costs the same per call at any N, so it is measured on
--single calls and quoted per stream-second.

    .venv/bin/python bench/detectors_hub.py [--seconds 10] [--streams 50,200,500] [--capacity 64,256]
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
from detectors import DetectorPipeline  # noqa: E402
from detectors import testsignals as ts  # noqa: E402
from detectors.hub import StreamHub  # noqa: E402

RATE = 16000
FRAME = RATE // 50          # 20 ms
TICK_S = 0.02
PUMP_EVERY = 5              # ticks: 100 ms


def pool(seconds: float, n: int = 24) -> np.ndarray:
    """n distinct mixed call-like signals (tones, digits, speech-like bursts, silence) with noise."""
    rng = np.random.default_rng(0)
    n_samp = int(seconds * RATE)
    makers = [
        lambda: ts.dtmf_sequence("5551234", 0.07, 0.09, RATE)[0],
        lambda: ts.busy(RATE), lambda: ts.reorder(RATE), lambda: ts.ringback(RATE, cycles=1),
        lambda: ts.cng(RATE), lambda: ts.answer_tone(RATE, am=True, reversals=True),
        lambda: ts.sit("IC", RATE),
        lambda: rng.standard_normal(n_samp) * 2000 * np.repeat(rng.random(int(seconds * 4) + 1) > 0.4,
                                                               RATE // 4)[:n_samp],
        lambda: np.zeros(n_samp),
    ]
    out = np.zeros((n, n_samp), np.int16)
    for i in range(n):
        x = np.resize(makers[i % len(makers)](), n_samp)
        out[i] = ts.pcm16(ts.add_noise(x, 20, rng, signal_power=ts.amp(-20) ** 2))
    return out


def schedule(n: int, seconds: float, seed: int = 1):
    """Per call: open tick and each frame's arrival tick (in order, 0-2 ticks late, bursty)."""
    rng = np.random.default_rng(seed)
    n_frames = int(seconds / TICK_S)
    start = rng.integers(0, 50, n)                       # calls start during the first second
    late = np.minimum(2, np.abs(np.cumsum(rng.integers(-1, 2, (n, n_frames)), axis=1)) % 3)
    arrive = start[:, None] + np.arange(n_frames)[None, :] + late
    arrive = np.maximum.accumulate(arrive, axis=1)        # RTP frames arrive in order
    return start, arrive


class SimClock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def run_hub(audio: np.ndarray, n: int, seconds: float, capacity: int, block_s: float = 0.1) -> dict:
    start, arrive = schedule(n, seconds)
    n_frames = arrive.shape[1]
    frames = [audio[i % len(audio)] for i in range(n)]
    clock = SimClock()
    hub = StreamHub(RATE, capacity=capacity, block_s=block_s, max_lag_s=0.3, clock=clock)
    handles = [None] * n
    nxt = np.zeros(n, np.int64)
    last_tick = int(arrive[:, -1].max())
    order = np.argsort(start, kind="stable")
    events = 0
    lags = []
    lag_cpu = 0.0
    t0 = time.process_time()
    for tick in range(last_tick + 1):
        clock.t = tick * TICK_S
        for i in order:
            if start[i] > tick:
                break
            h = handles[i]
            if h is None:
                h = handles[i] = hub.open()
                hub.arm_amd(h)
                hub.expect_speech(h, 3.0)
            k = nxt[i]
            if k == n_frames:
                continue
            while k < n_frames and arrive[i, k] <= tick:
                hub.push(h, frames[i][k * FRAME:(k + 1) * FRAME])
                k += 1
            nxt[i] = k
            if k == n_frames:
                hub.release(h)  # call over: its tail rides along in the next pump
        if tick % PUMP_EVERY == PUMP_EVERY - 1:
            events += len(hub.pump())
            if tick % (10 * PUMP_EVERY) == PUMP_EVERY - 1:  # sample latency (not counted as hub CPU)
                c = time.process_time()
                lags.extend(hub.buffered_s(h) for i, h in enumerate(handles) if h is not None and nxt[i] < n_frames)
                lag_cpu += time.process_time() - c
    finished = 0
    while finished < n:
        events += len(hub.pump())
        finished += len(hub.take_finished())
    cpu = time.process_time() - t0 - lag_cpu
    st = hub.stats
    return {"cpu": cpu, "pump_cpu": st.cpu_s, "stream_s": n * n_frames * TICK_S, "banks": st.banks,
            "padded": st.padded_blocks, "events": events,
            "lag50": float(np.percentile(lags, 50)) if lags else 0.0, "lagmax": max(lags, default=0.0)}


def run_pipelines(audio: np.ndarray, n: int, seconds: float) -> dict:
    """The same calls, frames and arrival order, one DetectorPipeline each (first n calls)."""
    start, arrive = schedule(max(n, 1), seconds)
    n_frames = arrive.shape[1]
    t0 = time.process_time()
    for i in range(n):
        p = DetectorPipeline(RATE)
        p.arm_amd()
        p.expect_speech(3.0)
        x = audio[i % len(audio)]
        for k in range(n_frames):
            p.feed(x[k * FRAME:(k + 1) * FRAME])
        p.close()
    return {"cpu": time.process_time() - t0, "stream_s": n * n_frames * TICK_S}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="audio per call")
    ap.add_argument("--streams", default="50,200,500")
    ap.add_argument("--capacity", default="64,256", help="slots per bank (one row set per value)")
    ap.add_argument("--block-ms", default="100", help="hub block sizes to try (pump stays every 100 ms)")
    ap.add_argument("--single", type=int, default=9, help="calls measured for the per-call pipeline baseline")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"pinned to CPU {sorted(os.sched_getaffinity(0))}; numpy {np.__version__}; 16 kHz, 20 ms frames, "
          f"pump every 100 ms, {args.seconds:g} s per call")
    audio = pool(args.seconds)
    base = run_pipelines(audio, args.single, args.seconds)
    base_per = base["cpu"] / base["stream_s"]
    print()
    hdr = (f"{'path':28} {'streams':>7} {'banks':>5} {'cpu s':>7} {'us/stream-s':>11} {'streams/core':>12} "
           f"{'pump us/s-s':>11} {'vs pipeline':>11} {'lag p50/max ms':>15} {'padded':>6}")
    print(hdr)
    print(f"{'DetectorPipeline per call':28} {args.single:7d} {args.single:5d} {base['cpu']:7.2f} "
          f"{base_per * 1e6:11.0f} {1 / base_per:12.1f} {'':>11} {'1.0x':>11} {'':>15} {'':>6}")
    blocks = [int(b) for b in args.block_ms.split(",")]
    for cap in (int(c) for c in args.capacity.split(",")):
        for blk in blocks:
            for n in (int(s) for s in args.streams.split(",")):
                r = run_hub(audio, n, args.seconds, cap, blk / 1000)
                per = r["cpu"] / r["stream_s"]
                name = f"StreamHub cap {cap}" + (f" block {blk} ms" if blocks != [100] else "")
                print(f"{name:28} {n:7d} {r['banks']:5d} {r['cpu']:7.2f} {per * 1e6:11.0f} "
                      f"{1 / per:12.0f} {r['pump_cpu'] / r['stream_s'] * 1e6:11.0f} {base_per / per:10.0f}x "
                      f"{r['lag50'] * 1e3:7.0f}/{r['lagmax'] * 1e3:<7.0f} {r['padded']:6d}")
    print()
    print("us/stream-s: CPU microseconds per second of one call's audio (push + pump + release);")
    print("pump us/s-s: the hub's own pump share; vs pipeline: how many times cheaper than one")
    print("DetectorPipeline per call; lag: audio buffered but not yet processed, sampled every second.")


if __name__ == "__main__":
    main()
