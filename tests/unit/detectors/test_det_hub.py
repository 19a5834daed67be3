"""StreamHub / HubRunner: shared banks fed frame by frame give a standalone
DetectorPipeline's events, per stream, whatever the interleaving."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from detectors import DetectorPipeline
from detectors import testsignals as ts
from detectors.hub import HubRunner, StreamHub

RATE = 16000
BLOCK_S = 0.1


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _noisy(x: np.ndarray, seed: int, snr: float = 25.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ts.pcm16(ts.add_noise(x, snr, rng, signal_power=ts.amp(-20) ** 2))


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts with syllable-like envelopes and pauses (VAD and AMD see words)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    x = np.zeros(n)
    t = int(0.3 * RATE)
    while t < n:
        d = int(rng.uniform(0.15, 0.6) * RATE)
        seg = rng.standard_normal(min(d, n - t)) * 3000
        env = np.sin(np.linspace(0, np.pi, len(seg))) ** 0.5
        x[t:t + len(seg)] = seg * env
        t += d + int(rng.uniform(0.05, 0.7) * RATE)
    return x


def signals() -> dict[str, np.ndarray]:
    return {
        "dtmf": _noisy(np.concatenate([ts.dtmf_sequence("1590#*", 0.07, 0.08, RATE)[0], ts.silence(1.5, RATE)]), 1),
        "cng": _noisy(ts.cng(RATE, cycles=2), 2),
        "busy": _noisy(ts.busy(RATE, cycles=4), 3),
        "speech": _noisy(np.concatenate([speech_like(4.0, 4), ts.silence(1.2, RATE)]), 5, snr=30),
        "mixed": _noisy(np.concatenate([speech_like(1.5, 6), ts.dtmf_sequence("42", 0.08, 0.1, RATE)[0],
                                        ts.reorder(RATE, cycles=4)]), 7),
    }


def chunks(x: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Irregular frames of 5-60 ms (any sample count, not sub-block aligned)."""
    out, p = [], 0
    while p < len(x):
        n = int(rng.integers(int(0.005 * RATE), int(0.060 * RATE) + 1))
        out.append(x[p:p + n])
        p += n
    return out


_PIPELINE_CACHE: dict = {}


def pipeline_events(frames, controls=None) -> list:
    """What a standalone DetectorPipeline reports; controls: {frame index: [(kind, arg)]}.
    Memoised on the audio and the controls' sample positions (the pipeline's
    events do not depend on how the audio is framed)."""
    at = np.cumsum([0] + [len(f) for f in frames])
    ctl = tuple(sorted((int(at[k]), kind, arg) for k, lst in (controls or {}).items() for kind, arg in lst))
    key = (hash(np.concatenate(frames).tobytes()), ctl)
    if key not in _PIPELINE_CACHE:
        p = DetectorPipeline(RATE)
        ev = []
        for k, f in enumerate(frames):
            for kind, arg in (controls or {}).get(k, []):
                getattr(p, kind)(arg)
            ev += p.feed(f)
        _PIPELINE_CACHE[key] = ev + p.close()
    return _PIPELINE_CACHE[key]


def assert_same_events(got, want, name=""):
    """Same kinds in the same order, starts within one block, DTMF digits and AMD verdicts equal."""
    assert [e.kind for e in got] == [e.kind for e in want], name
    for a, b in zip(got, want):
        assert abs(a.start - b.start) <= BLOCK_S, (name, a, b)
        for key in ("digit", "status", "cause"):
            assert a.details.get(key) == b.details.get(key), (name, a, b)


def by_handle(pairs, out: dict) -> None:
    for h, e in pairs:
        out.setdefault(h, []).append(e)


# ---- equality with DetectorPipeline --------------------------------------------------

def test_interleaved_streams_match_pipeline():
    """5 streams opened and closed at different times, irregular 5-60 ms frames
    arriving with jitter, two banks (capacity 3) and slot reuse, closed now
    (`close`) or with the next pumps (`release`): every stream's events equal
    its standalone pipeline's."""
    rng = np.random.default_rng(42)
    sig = signals()
    names = list(sig)
    starts = {"dtmf": 0.0, "cng": 0.37, "busy": 0.9, "speech": 1.43, "mixed": 5.2}  # mixed reuses a slot
    frames = {n: chunks(sig[n], rng) for n in names}
    # a frame is delivered when it is complete in real time, plus 0-50 ms of jitter
    due = {}
    for n in names:
        ends = np.cumsum([len(f) for f in frames[n]]) / RATE
        due[n] = starts[n] + ends + rng.uniform(0, 0.05, len(ends))
    controls = {"speech": {40: [("arm_amd", None)]}, "dtmf": {10: [("expect_speech", 1.0)]},
                "mixed": {3: [("expect_speech", 2.0)], 7: [("arm_amd", None)]}}
    clock = FakeClock()
    hub = StreamHub(RATE, capacity=3, block_s=BLOCK_S, max_lag_s=0.3, clock=clock)
    handle, nxt, got = {}, {n: 0 for n in names}, {}
    closed: dict[str, list] = {}
    finished: list[int] = []
    t = 0.0
    while len(closed) < len(names):
        t = round(t + 0.01, 2)
        clock.t = t
        for n in names:
            if n in closed or t < starts[n]:
                continue
            if n not in handle:
                handle[n] = hub.open()
            while nxt[n] < len(frames[n]) and due[n][nxt[n]] <= t:
                for kind, arg in controls.get(n, {}).get(nxt[n], []):
                    getattr(hub, kind)(handle[n], arg)
                hub.push(handle[n], frames[n][nxt[n]])
                nxt[n] += 1
            if nxt[n] == len(frames[n]):
                if n in ("cng", "speech"):
                    hub.release(handle[n])  # final events come out of pump()
                    closed[n] = []
                else:
                    closed[n] = hub.close(handle[n])
        if round(t * 100) % 10 == 0:
            by_handle(hub.pump(), got)
            finished.extend(hub.take_finished())
    for _ in range(3):
        by_handle(hub.pump(), got)
        finished.extend(hub.take_finished())
    assert sorted(finished) == sorted([handle["cng"], handle["speech"]])
    st = hub.stats
    assert st.banks == 2 and st.streams == 0
    assert st.padded_blocks == 0 and st.blocks > 0 and st.cpu_s > 0
    assert len(set(handle.values())) == len(names)
    for n in names:
        mine = got.get(handle[n], []) + closed[n]
        want = pipeline_events(frames[n], controls.get(n))
        assert want, n
        assert_same_events(mine, want, n)
    kinds = {n: {e.kind for e in got.get(handle[n], []) + closed[n]} for n in names}
    assert "dtmf" in kinds["dtmf"] and "no_speech" in kinds["dtmf"]
    assert "fax_cng" in kinds["cng"] and "busy" in kinds["busy"]
    assert "amd" in kinds["speech"] and "speech" in kinds["speech"]
    assert {"dtmf", "reorder", "amd"} <= kinds["mixed"]


def test_bytes_input_and_time_match_pipeline():
    x = signals()["dtmf"]
    hub = StreamHub(RATE)
    h = hub.open()
    p = DetectorPipeline(RATE)
    got = []
    rng = np.random.default_rng(3)
    for f in chunks(x, rng):
        hub.push(h, f.tobytes())
        p.feed(f)
        assert hub.time(h) == pytest.approx(p.time)
        got += [e for _, e in hub.pump()]
    got += hub.close(h)
    assert_same_events(got, pipeline_events(chunks(x, np.random.default_rng(3))))
    with pytest.raises(KeyError):
        hub.push(h, x[:160])


# ---- slot reuse -----------------------------------------------------------------------

def test_reused_slot_starts_clean():
    """A closes in the middle of a tone and a digit with audio still buffered,
    B takes the same slot: B sees only its own audio's events, and the copy used
    to flush A left the bank's other stream C untouched."""
    sig = signals()
    tone = _noisy(np.concatenate([ts.silence(0.2, RATE), ts.tone([480, 620], 2.0, RATE, -15)]), 11)
    digit = _noisy(ts.dtmf("7", 0.2, RATE), 12)
    a_audio = np.concatenate([sig["busy"][: int(1.7 * RATE)], tone, digit])[: -int(0.05 * RATE)]
    b_audio = _noisy(np.concatenate([ts.silence(1.4, RATE), speech_like(1.0, 13)]), 14, snr=30)
    c_audio = sig["cng"]
    hub = StreamHub(RATE, capacity=2, max_lag_s=float("inf"))
    c = hub.open()
    a = hub.open()
    got: dict = {}
    frame = RATE // 50
    ca = np.concatenate([c_audio, np.zeros(frame * 400, np.int16)])
    pos_c = 0
    for k in range(0, len(a_audio), frame):
        hub.push(a, a_audio[k:k + frame])
        hub.push(c, ca[pos_c:pos_c + frame])
        pos_c += frame
        if k % (5 * frame) == 0 and k < len(a_audio) - 20 * frame:  # leave ~0.4 s buffered at close
            by_handle(hub.pump(), got)
    assert hub.buffered_s(a) > 0.2
    a_events = got.pop(a, []) + hub.close(a)
    assert_same_events(a_events, pipeline_events([a_audio]), "A")
    assert {"busy", "dtmf"} <= {e.kind for e in a_events}
    b = hub.open()
    assert b != a and hub.stats.banks == 1
    for k in range(0, len(b_audio), frame):
        hub.push(b, b_audio[k:k + frame])
        hub.push(c, ca[pos_c:pos_c + frame])
        pos_c += frame
        by_handle(hub.pump(), got)
    assert a not in got
    b_events = got.get(b, []) + hub.close(b)
    assert_same_events(b_events, pipeline_events([b_audio]), "B")
    assert not {"busy", "dtmf", "fax_cng"} & {e.kind for e in b_events}
    c_events = got.get(c, []) + hub.close(c)
    assert_same_events(c_events, pipeline_events([ca[:pos_c]]), "C")


def test_open_without_audio_holds_nobody_and_closes_empty():
    clock = FakeClock()
    hub = StreamHub(RATE, capacity=4, clock=clock)
    idle = hub.open()
    h = hub.open()
    x = signals()["busy"]
    got = []
    for k in range(0, len(x), 320):
        clock.t += 0.02
        hub.push(h, x[k:k + 320])
        got += [e for _, e in hub.pump()]
    assert hub.stats.padded_blocks == 0
    assert hub.buffered_s(h) < 0.1
    assert hub.close(idle) == []
    idle2 = hub.open()  # takes the slot back; released without audio: finished at once, no events
    hub.release(idle2)
    assert hub.take_finished() == [idle2]
    got += hub.close(h)
    assert_same_events(got, pipeline_events([x]))


# ---- starvation ------------------------------------------------------------------------

def test_starved_stream_is_padded_after_max_lag_and_others_proceed():
    clock = FakeClock()
    hub = StreamHub(RATE, capacity=8, block_s=0.1, max_lag_s=0.3, clock=clock)
    sig = {n: np.concatenate([x, _noisy(ts.silence(5.0, RATE), 20)]) for n, x in signals().items()}
    good = {n: hub.open() for n in ("dtmf", "busy")}
    stalled = hub.open()
    s_audio = sig["speech"]
    frame = RATE // 50
    got: dict = {}
    held_max = 0.0
    pos = {n: 0 for n in good}
    s_pos = 0
    stall = (1.0, 2.0)  # the stalled stream sends nothing in this window, then resumes
    for tick in range(250):  # 5 s of 20 ms frames
        clock.t = (tick + 1) * 0.02
        for n, h in good.items():
            hub.push(h, sig[n][pos[n]:pos[n] + frame])
            pos[n] += frame
        if not stall[0] <= clock.t < stall[1]:
            hub.push(stalled, s_audio[s_pos:s_pos + frame])
            s_pos += frame
        if tick % 5 == 4:
            by_handle(hub.pump(), got)
            held_max = max(held_max, max(hub.buffered_s(h) for h in good.values()))
    st = hub.stats
    # the others were held at most about max_lag (+ a block + a pump interval), never indefinitely
    assert 0.25 <= held_max <= 0.3 + 0.2 + 1e-9
    assert st.padded_blocks >= 5 and 0.5 <= st.padded_s <= 1.0
    # the stalled stream's clock includes the zeros; the others' do not and their events are intact
    assert hub.time(stalled) == pytest.approx(s_pos / RATE + st.padded_s, abs=0.005)
    for n, h in good.items():
        assert hub.time(h) == pytest.approx(pos[n] / RATE)
        events = got.get(h, []) + hub.close(h)
        assert_same_events(events, pipeline_events([sig[n][:pos[n]]]), n)
    s_events = got.get(stalled, []) + hub.close(stalled)
    assert any(e.kind == "speech_start" for e in s_events)


# ---- asyncio runner ---------------------------------------------------------------------

async def test_runner_end_to_end_with_callbacks():
    runner = HubRunner(rate=RATE, capacity=4, block_s=0.02, max_lag_s=5.0)
    sig = signals()
    names = ["dtmf", "busy", "cng"]
    seen: dict[str, list] = {n: [] for n in names}
    async_seen: list = []

    def make_cb(n):
        def cb(h, e):
            seen[n].append(e)
        return cb

    async def acb(h, e):
        await asyncio.sleep(0)
        async_seen.append(e)

    runner.start()
    handles = {n: runner.open(make_cb(n)) for n in names}
    ah = runner.open(acb)
    frame = RATE // 50
    finals = {}

    async def feed(n):
        x = sig[n]
        for k in range(0, len(x), frame):
            assert runner.push(handles[n], x[k:k + frame])
            if k % (10 * frame) == 0:
                await asyncio.sleep(0.005)
        finals[n] = await runner.close(handles[n])

    async def feed_async_cb():
        x = sig["busy"]
        for k in range(0, len(x), 4 * frame):
            runner.push(ah, x[k:k + 4 * frame])
            await asyncio.sleep(0.002)
        await runner.close(ah)

    await asyncio.wait_for(asyncio.gather(*(feed(n) for n in names), feed_async_cb()), 20)
    assert runner.push(handles["dtmf"], sig["dtmf"][:frame]) is False  # closed
    await runner.stop()
    for n in names:
        assert finals[n] == seen[n][len(seen[n]) - len(finals[n]):]  # finals dispatched too
        assert_same_events(seen[n], pipeline_events([sig[n]]), n)
    assert_same_events(async_seen, pipeline_events([sig["busy"]]), "async")
    assert runner.hub.stats.pumps > 3 and runner.hub.stats.streams == 0


async def test_runner_stop_closes_open_streams():
    runner = HubRunner(rate=RATE, block_s=0.02)
    got = []
    h = runner.open(lambda h, e: got.append(e))
    runner.start()
    x = signals()["busy"]
    runner.push(h, x)
    await asyncio.sleep(0.1)
    await runner.stop()
    assert runner.hub.stats.streams == 0
    assert_same_events(got, pipeline_events([x]))


# ---- thread safety ----------------------------------------------------------------------

def test_push_while_pumping_in_another_thread():
    """Pushes race a pump loop in another thread; no sample is lost, duplicated or
    reordered (events equal the pipeline's) and the bookkeeping adds up."""
    hub = StreamHub(RATE, capacity=8, block_s=0.02, max_lag_s=float("inf"))
    full = signals()
    sig = {"dtmf": full["dtmf"], "busy": full["busy"], "dtmf2": full["dtmf"][::-1].copy()}
    names = list(sig)
    handles = {n: hub.open() for n in names}
    got: dict = {}
    stop = threading.Event()
    errors = []

    def pumper():
        try:
            while not stop.is_set():
                by_handle(hub.pump(), got)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    th = threading.Thread(target=pumper)
    th.start()
    rng = np.random.default_rng(9)
    frames = {n: chunks(sig[n], rng) for n in names}
    try:
        for k in range(max(len(f) for f in frames.values())):
            for n in names:
                if k < len(frames[n]):
                    hub.push(handles[n], frames[n][k])
    finally:
        stop.set()
        th.join()
    assert not errors
    assert hub.stats.pumps > 10
    for n in names:
        total = sum(len(f) for f in frames[n])
        assert hub.time(handles[n]) == pytest.approx((total // 80) * 0.005)
        events = got.get(handles[n], []) + hub.close(handles[n])
        assert_same_events(events, pipeline_events(frames[n]), n)
    assert hub.stats.padded_blocks == 0


async def test_runner_pushes_from_loop_while_pump_runs_in_executor():
    runner = HubRunner(rate=RATE, capacity=8, block_s=0.005, interval_s=0.001, max_lag_s=float("inf"))
    full = signals()
    sig = {"dtmf": full["dtmf"], "busy": full["busy"], "dtmf2": full["dtmf"][::-1].copy()}
    got: dict = {}
    handles = {n: runner.open(lambda h, e: got.setdefault(h, []).append(e)) for n in sig}
    runner.start()
    rng = np.random.default_rng(5)
    frames = {n: chunks(x, rng) for n, x in sig.items()}
    for k in range(max(len(f) for f in frames.values())):
        for n in sig:
            if k < len(frames[n]):
                runner.push(handles[n], frames[n][k])
        if k % 3 == 0:
            await asyncio.sleep(0)
    await runner.stop()
    for n in sig:
        assert_same_events(got.get(handles[n], []), pipeline_events(frames[n]), n)


async def test_runner_close_without_pump_task():
    runner = HubRunner(rate=RATE)
    got = []
    h = runner.open(lambda h, e: got.append(e))
    x = signals()["dtmf"]
    runner.push(h, x)
    final = await runner.close(h)
    assert final == got
    assert_same_events(final, pipeline_events([x]))
    with pytest.raises(KeyError):
        await runner.close(h)
    await runner.stop()


def test_bad_parameters():
    with pytest.raises(ValueError):
        StreamHub(RATE, block_s=0.012)
    with pytest.raises(ValueError):
        StreamHub(RATE, capacity=0)
