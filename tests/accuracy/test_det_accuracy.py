"""Detection and false-alarm rates on generated, labelled audio (see generate.py).

Bounds are set from measured rates with some margin; the measured figures are
in docs/detectors.md.
"""
import collections

import pytest
from generate import KEYS, dtmf_grid, dtmf_reject, music_set, speech_set, sweep_set, tone_set

from detectors.testsignals import detect_many


def dtmf_rate(sigs, truth, rate):
    res = detect_many(sigs, rate)
    by_snr = collections.defaultdict(lambda: [0, 0, 0])
    for tr, ev in zip(truth, res):
        got = [e.details["digit"] for e in ev if e.kind == "dtmf"]
        s = by_snr[tr["snr"]]
        s[0] += sum(a == b for a, b in zip(got, KEYS)) if len(got) == 16 else sum(d in got for d in KEYS)
        s[1] += 16
        s[2] += max(0, len(got) - 16)
    return {k: (v[0] / v[1], v[2]) for k, v in by_snr.items()}


def test_dtmf_detection_8k_within_q24_limits():
    """16 digits x SNR 10/15/20/30 dB x white/pink x twist -4/0/+8 dB x dev -1.5/0/+1.5 % x 40/50/100 ms."""
    rates = dtmf_rate(*dtmf_grid(8000, (10, 15, 20, 30)), 8000)
    for snr, (rate, extra) in rates.items():
        assert rate >= (0.99 if snr >= 15 else 0.98), (snr, rate)
        assert extra == 0, (snr, extra)


def test_dtmf_detection_16k():
    rates = dtmf_rate(*dtmf_grid(16000, (15, 30), durs=(0.04, 0.1), seed=7), 16000)
    assert all(r >= 0.99 and x == 0 for r, x in rates.values()), rates


@pytest.mark.parametrize("rate", [8000, 16000])
def test_dtmf_rejects_off_frequency_and_short_tones(rate):
    sigs, truth = dtmf_reject(rate)
    for tr, ev in zip(truth, detect_many(sigs, rate)):
        assert not [e for e in ev if e.kind == "dtmf"], tr


def count(res, kinds):
    return sum(1 for ev in res for e in ev if e.kind in kinds)


TONE_KINDS = {"fax_cng", "answer_tone", "v21_preamble", "busy", "reorder", "ringback", "dial_tone", "sit"}


def test_talk_off_speech(speech_cache):
    """~2 minutes of espeak-ng speech in 5 languages, 2 speeds: measured 1 false digit."""
    sigs = speech_set(8000, speech_cache)
    res = detect_many(sigs, 8000)
    assert count(res, {"dtmf"}) <= 3
    assert count(res, TONE_KINDS) == 0
    assert count(res, {"speech"}) >= len(sigs)


def test_talk_off_music():
    """~3 minutes of chords with harmonics: measured 5 false digits."""
    res = detect_many(music_set(8000), 8000)
    assert count(res, {"dtmf"}) <= 8
    assert count(res, TONE_KINDS) == 0


def test_talk_off_adversarial_sweeps():
    """~5 minutes of two-tone sweeps at a DTMF-like 1.7 frequency ratio: measured
    69 false digits (0.22 /s); without the chirp guard it was 469."""
    res = detect_many(sweep_set(8000), 8000)
    assert count(res, {"dtmf"}) <= 100
    assert count(res, TONE_KINDS) == 0


@pytest.mark.parametrize("rate", [8000, 16000])
def test_tone_suite_detection(rate):
    """Every fax/modem/call-progress/SIT type, levels -30..-10 dBFS, SNR 10 and 20 dB, white and pink."""
    sigs, truth = tone_set(rate, trials=4 if rate == 8000 else 2)
    res = detect_many(sigs, rate)
    kind = {"fax_cng": "fax_cng", "ans": "answer_tone", "ans_pr": "answer_tone", "ansam": "answer_tone",
            "bell": "answer_tone"}
    stat = collections.defaultdict(lambda: [0, 0])
    false = 0
    for tr, ev in zip(truth, res):
        n = tr["name"]
        k = kind.get(n, n.split(":")[0])
        got = [e for e in ev if e.kind == k]
        if n.startswith("sit:"):
            ok = any(e.details["code"] == n[4:] for e in got)
        elif k == "answer_tone":
            ok = any(e.details["variant"] == n for e in got)
        else:
            ok = bool(got)
        stat[n][0] += ok
        stat[n][1] += 1
        false += sum(1 for e in ev if e.kind in TONE_KINDS | {"dtmf"} and e.kind != k)
    for n, (hit, tot) in stat.items():
        assert hit / tot >= 0.95, (n, hit, tot)
    assert false == 0
