import numpy as np
import pytest

from detectors import AMDParams, DetectorPipeline
from detectors import testsignals as ts


def run(x, rate=8000, arm=None, frame=160):
    p = DetectorPipeline(rate)
    if arm:
        arm(p)
    x = ts.pcm16(x)
    ev = []
    for k in range(0, len(x), frame):
        ev += p.feed(x[k:k + frame])
    return ev + p.close()


def noise(dur, dbfs, rng, rate=8000):
    return rng.standard_normal(int(dur * rate)) * ts.amp(dbfs) / np.sqrt(2)


def voice(dur, rng, rate=8000, dbfs=-20):
    """Speech-like burst: noise shaped by a 4 Hz syllable envelope."""
    t = np.arange(int(dur * rate)) / rate
    return noise(dur, dbfs, rng, rate) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) * np.sqrt(2)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_speech_start_end_on_real_speech(rate, speech_cache):
    rng = np.random.default_rng(1)
    sp = ts.espeak("안녕하세요 무엇을 도와드릴까요", rate, cache_dir=speech_cache)
    x = np.concatenate([noise(1.0, -60, rng, rate), sp, noise(2.0, -60, rng, rate)])
    ev = run(x, rate, frame=rate // 50)
    starts = [e for e in ev if e.kind == "speech_start"]
    utt = [e for e in ev if e.kind == "speech"]
    assert starts and utt
    assert abs(starts[0].start - 1.0) < 0.15
    assert abs(utt[-1].end - (1.0 + len(sp) / rate)) < 0.25
    sil = [e for e in ev if e.kind == "silence"]
    assert sil and not sil[-1].details["digital"]


def test_digital_silence_vs_background_noise():
    rng = np.random.default_rng(2)
    ev = run(np.concatenate([np.zeros(16000), noise(2.0, -55, rng)]))
    sil = [e for e in ev if e.kind == "silence"]
    assert [s.details["digital"] for s in sil] == [True, False]
    assert not [e for e in ev if e.kind in ("speech", "speech_start")]


def test_expect_speech_timer():
    rng = np.random.default_rng(3)
    ev = run(noise(4.0, -60, rng), arm=lambda p: p.expect_speech(2.0))
    ns = [e for e in ev if e.kind == "no_speech"]
    assert len(ns) == 1 and ns[0].start == 0.0 and ns[0].duration == 2.0
    ev = run(np.concatenate([noise(1.0, -60, rng), voice(0.6, rng), noise(2.0, -60, rng)]),
             arm=lambda p: p.expect_speech(2.0))
    assert not [e for e in ev if e.kind == "no_speech"]


def amd(x, params=None):
    ev = run(x, arm=lambda p: p.arm_amd(params))
    a = [e for e in ev if e.kind == "amd"]
    assert len(a) == 1
    return a[0].details


def sil(d):
    return np.zeros(int(d * 8000))


def test_amd_defaults_match_asterisk():
    p = AMDParams()
    assert (p.initial_silence, p.greeting, p.after_greeting_silence, p.total_analysis_time, p.min_word_length,
            p.between_words_silence, p.maximum_number_of_words, p.silence_threshold,
            p.maximum_word_length) == (2500, 1500, 800, 5000, 100, 50, 2, 256, 5000)


def test_amd_decisions_and_causes():
    rng = np.random.default_rng(4)
    d = amd(np.concatenate([sil(0.3), voice(0.5, rng), sil(1.5)]))
    assert (d["status"], d["cause"]) == ("HUMAN", "HUMAN-800-800")
    d = amd(np.concatenate([sil(0.3)] + [np.concatenate([voice(0.3, rng), sil(0.15)]) for _ in range(4)]))
    assert (d["status"], d["cause"]) == ("MACHINE", "MAXWORDS-2-2")
    d = amd(np.concatenate([sil(0.3), voice(2.5, rng), sil(1)]))
    assert (d["status"], d["cause"]) == ("MACHINE", "LONGGREETING-1500-1500")
    d = amd(sil(4.0))
    assert (d["status"], d["cause"]) == ("MACHINE", "INITIALSILENCE-2500-2500")
    burst = np.concatenate([voice(0.08, rng), sil(0.06)])
    d = amd(np.tile(burst, 50))
    assert (d["status"], d["cause"]) == ("NOTSURE", "TOOLONG-5000")
    d = amd(np.concatenate([sil(0.3), voice(0.5, rng), sil(1.5)]), AMDParams(after_greeting_silence=1200))
    assert d["cause"] == "HUMAN-1200-1200"


def test_amd_hangup_when_stream_ends():
    rng = np.random.default_rng(5)
    d = amd(np.concatenate([sil(0.3), voice(0.3, rng)]))
    assert d["status"] == "HANGUP"
