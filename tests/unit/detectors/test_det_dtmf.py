import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from detectors import DetectorPipeline
from detectors import testsignals as ts
from detectors.dtmf import KEYS


def run(x, rate, frame=160):
    p = DetectorPipeline(rate)
    x = ts.pcm16(x)
    ev = []
    for k in range(0, len(x), frame):
        ev += p.feed(x[k:k + frame])
    return ev + p.close()


def digits(ev):
    return "".join(e.details["digit"] for e in ev if e.kind == "dtmf")


@pytest.mark.parametrize("rate", [8000, 16000])
def test_all_sixteen_digits_with_times_and_gaps(rate):
    x, labels = ts.dtmf_sequence(KEYS, 0.08, 0.12, rate)
    ev = [e for e in run(x, rate) if e.kind == "dtmf"]
    assert digits(ev) == KEYS
    for e, (d, start, dur) in zip(ev, labels):
        assert abs(e.start - start) < 0.008 and abs(e.duration - dur) < 0.010
    assert ev[0].details["gap_s"] is None
    assert all(abs(e.details["gap_s"] - 0.12) < 0.015 for e in ev[1:])


@settings(max_examples=15, deadline=None)
@given(frame=st.integers(1, 700), rate=st.sampled_from([8000, 16000]))
def test_any_frame_size_gives_same_events(frame, rate):
    x, _ = ts.dtmf_sequence("19#", 0.06, 0.07, rate)
    ref = [(e.kind, e.start, e.duration) for e in run(x, rate, 160)]
    got = [(e.kind, e.start, e.duration) for e in run(x, rate, frame)]
    assert got == ref


def test_bytes_input():
    x, _ = ts.dtmf_sequence("42", 0.06, 0.07, 8000)
    p = DetectorPipeline(8000)
    pcm = ts.pcm16(x).tobytes()
    ev = []
    for k in range(0, len(pcm), 320):
        ev += p.feed(pcm[k:k + 320])
    assert digits(ev + p.close()) == "42"


@pytest.mark.parametrize("twist,ok", [(8.0, True), (-4.0, True), (12.0, False), (-8.0, False)])
def test_twist_limits(twist, ok):
    x = np.concatenate([ts.silence(0.1, 8000), ts.dtmf("5", 0.1, 8000, level_dbfs=-8, twist_db=twist),
                        ts.silence(0.1, 8000)])
    assert (digits(run(x, 8000)) == "5") is ok


@pytest.mark.parametrize("dev,ok", [(1.5, True), (-1.5, True), (3.5, False), (-3.5, False), (5.0, False)])
def test_frequency_deviation(dev, ok):
    for d in ("1", "D", "0"):
        x = np.concatenate([ts.silence(0.1, 8000), ts.dtmf(d, 0.1, 8000, dev_pct=(dev, dev)), ts.silence(0.1, 8000)])
        assert (digits(run(x, 8000)) == d) is ok, d


@pytest.mark.parametrize("dur,ok", [(0.015, False), (0.020, False), (0.040, True), (0.5, True)])
def test_duration_limits(dur, ok):
    x = np.concatenate([ts.silence(0.1, 8000), ts.dtmf("7", dur, 8000), ts.silence(0.1, 8000)])
    assert (digits(run(x, 8000)) == "7") is ok


def test_machine_dialling_flagged_and_human_not():
    x, _ = ts.dtmf_sequence("5551234", 0.05, 0.05, 8000)
    ev = run(x, 8000)
    m = [e for e in ev if e.kind == "dtmf_machine"]
    assert len(m) == 1 and "short_gaps" in m[0].details["reasons"]
    rng = np.random.default_rng(3)
    parts = [ts.silence(0.2, 8000)]
    for d in "5551234":
        parts += [ts.dtmf(d, rng.uniform(0.09, 0.2), 8000), ts.silence(rng.uniform(0.2, 0.6), 8000)]
    ev = run(np.concatenate(parts), 8000)
    assert digits(ev) == "5551234"
    assert not [e for e in ev if e.kind == "dtmf_machine"]
    assert not any(e.details["machine_like"] for e in ev if e.kind == "dtmf")


def test_abcd_is_machine_like():
    x, _ = ts.dtmf_sequence("A", 0.1, 0.1, 8000)
    ev = run(x, 8000)
    assert [e.details["reasons"] for e in ev if e.kind == "dtmf_machine"] == [["abcd_digit"]]
