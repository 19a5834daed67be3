import numpy as np
import pytest

from detectors import testsignals as ts

RATES = [8000, 16000]


def kinds(ev, kind):
    return [e for e in ev if e.kind == kind]


@pytest.mark.parametrize("rate", RATES)
def test_tone_suite(rate):
    rng = np.random.default_rng(5)
    cases = {
        "busy": ts.busy(rate), "reorder": ts.reorder(rate), "ringback": ts.ringback(rate),
        "dial": ts.dial_tone(rate), "cng": ts.cng(rate), "ans": ts.answer_tone(rate),
        "ans_pr": ts.answer_tone(rate, reversals=True), "ansam": ts.answer_tone(rate, am=True),
        "ansam_pr": ts.answer_tone(rate, am=True, reversals=True), "bell": ts.answer_tone(rate, freq=2225),
        "v21": ts.v21_flags(rate), "short_ans": ts.answer_tone(rate, dur=0.7),
    }
    sigs = [ts.add_noise(s, 25, rng, signal_power=ts.amp(-15) ** 2) for s in cases.values()]
    res = dict(zip(cases, ts.detect_many(sigs, rate)))
    b = kinds(res["busy"], "busy")
    assert len(b) == 1 and b[0].start == pytest.approx(0.2, abs=0.01) and b[0].details["cycles"] == 2
    assert abs(b[0].details["on_s"] - 0.5) < 0.03 and abs(b[0].details["off_s"] - 0.5) < 0.03
    r = kinds(res["reorder"], "reorder")
    assert len(r) == 1 and not kinds(res["reorder"], "busy")
    rings = kinds(res["ringback"], "ringback")
    assert [e.details["ring"] for e in rings] == [1, 2]
    assert abs(rings[0].duration - 2.0) < 0.03 and abs(rings[1].start - 6.2) < 0.03
    assert not kinds(res["ringback"], "speech")  # tones are not speech
    assert len(kinds(res["dial"], "dial_tone")) == 1
    c = kinds(res["cng"], "fax_cng")
    assert len(c) == 2 and abs(c[0].duration - 0.5) < 0.02 and abs(c[1].details["period_s"] - 3.5) < 0.02
    for name in ("ans", "ans_pr", "ansam", "ansam_pr"):
        a = kinds(res[name], "answer_tone")
        assert len(a) == 1 and a[0].details["variant"] == name and a[0].details["freq_hz"] == 2100, (name, a)
    assert kinds(res["short_ans"], "answer_tone")[0].details["ongoing"] is False
    bell = kinds(res["bell"], "answer_tone")
    assert len(bell) == 1 and bell[0].details["variant"] == "bell"
    v = kinds(res["v21"], "v21_preamble")
    assert len(v) == 1 and 2 < v[0].details["mark_space_ratio"] < 5
    for name, ev in res.items():  # no cross-talk between detectors
        assert not kinds(ev, "dtmf"), name


@pytest.mark.parametrize("rate", RATES)
def test_sit_codes(rate):
    codes = list(ts.SIT_SEGMENTS)
    res = ts.detect_many([ts.sit(c, rate) for c in codes], rate)
    for code, ev in zip(codes, res):
        s = kinds(ev, "sit")
        assert len(s) == 1 and s[0].details["code"] == code, (code, ev)
        assert abs(s[0].start - 0.2) < 0.01


def test_cng_tolerance_and_data_v21_not_flags():
    rate = 8000
    res = ts.detect_many([ts.cng(rate, freq=1100 + 38), ts.cng(rate, freq=1100 - 38), ts.cng(rate, freq=1200),
                          ts.v21_flags(rate, byte=0x55)], rate)
    assert len(kinds(res[0], "fax_cng")) == 2 and len(kinds(res[1], "fax_cng")) == 2
    assert not kinds(res[2], "fax_cng")
    assert not kinds(res[3], "v21_preamble")  # 1:1 mark/space is not an HDLC flag stream
