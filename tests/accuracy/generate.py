"""Labelled audio for the detector accuracy suite (regenerated at test time, seeded).

Each builder returns (signals, truth): int16 arrays, one per stream, and what
each contains.  Noise is white or pink at a stated SNR relative to the wanted
signal's power while it is on.
"""
from __future__ import annotations

import itertools

import numpy as np

from detectors import testsignals as ts
from detectors.dtmf import KEYS

GAP = 0.1


def dtmf_grid(rate: int, snrs, durs=(0.04, 0.05, 0.1), twists=(-4.0, 0.0, 8.0), devs=(-1.5, 0.0, 1.5),
              noises=("white", "pink"), seed=0):
    """All 16 digits per stream; one stream per (snr, noise, twist, dev, dur)."""
    rng = np.random.default_rng(seed)
    sigs, truth = [], []
    for snr, kind, twist, dev, dur in itertools.product(snrs, noises, twists, devs, durs):
        parts, level = [ts.silence(0.2, rate)], float(rng.uniform(-25, -8))
        for d in KEYS:
            sign = rng.choice([-1, 1], 2) if dev else (1, 1)
            parts += [ts.dtmf(d, dur, rate, level_dbfs=level, twist_db=twist,
                              dev_pct=(dev * sign[0], dev * sign[1]), rng=rng), ts.silence(GAP, rate)]
        x = np.concatenate(parts)
        p_sig = ts.amp(level) ** 2 / 2 * (1 + 10 ** (-twist / 10))
        sigs.append(ts.pcm16(ts.add_noise(x, snr, rng, kind, signal_power=p_sig)))
        truth.append(dict(snr=snr, noise=kind, twist=twist, dev=dev, dur=dur, digits=KEYS))
    return sigs, truth


def dtmf_reject(rate: int, seed=1):
    """Digits that must NOT be detected: beyond 3.5 % deviation, or too short."""
    rng = np.random.default_rng(seed)
    sigs, truth = [], []
    for dev in (3.5, -3.5, 4.5, -4.5, 6.0):
        for which in ((dev, 0.0), (0.0, dev), (dev, dev)):
            x = np.concatenate(sum(([ts.dtmf(d, 0.1, rate, dev_pct=which, rng=rng), ts.silence(GAP, rate)]
                                    for d in KEYS), [ts.silence(0.2, rate)]))
            sigs.append(ts.pcm16(ts.add_noise(x, 30, rng)))
            truth.append(dict(reason=f"dev {which}"))
    for dur in (0.010, 0.015, 0.020):
        x = np.concatenate(sum(([ts.dtmf(d, dur, rate, rng=rng), ts.silence(GAP, rate)] for d in KEYS),
                               [ts.silence(0.2, rate)]))
        sigs.append(ts.pcm16(ts.add_noise(x, 30, rng)))
        truth.append(dict(reason=f"dur {dur}"))
    return sigs, truth


SENTENCES = {
    "ko": ["안녕하세요 고객센터입니다 무엇을 도와드릴까요", "환불 요청은 영업일 기준 삼일 이내에 처리됩니다",
           "지금은 통화할 수 없으니 메시지를 남겨 주세요", "가격과 견적을 알려 주시면 감사하겠습니다"],
    "en": ["Hello, thank you for calling, how can I help you today", "Please leave a message after the tone",
           "I would like a quote for the price of the service", "We are sorry, all our agents are busy right now"],
    "es": ["Hola, gracias por llamar, en que puedo ayudarle", "Por favor deje su mensaje despues del tono"],
    "de": ["Guten Tag, vielen Dank fuer Ihren Anruf", "Bitte hinterlassen Sie eine Nachricht nach dem Signalton"],
    "fr": ["Bonjour, merci de votre appel, que puis-je faire pour vous", "Laissez un message apres le bip sonore"],
}


def speech_set(rate: int, cache_dir, seed=2):
    """espeak-ng speech, several languages, speeds and pitches-by-speed, with light noise."""
    rng = np.random.default_rng(seed)
    sigs = []
    for voice, lines in SENTENCES.items():
        for speed in (120, 170):
            x = np.concatenate([np.concatenate([ts.espeak(t, rate, voice, cache_dir, speed), ts.silence(0.3, rate)])
                                for t in lines])
            sigs.append(ts.pcm16(ts.add_noise(x, 30, rng)))
    return sigs


def music_set(rate: int, n: int = 6, chords: int = 60, seed=3):
    """Instrument-like chords (3-4 notes with harmonics), n streams of `chords` chords."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(chords):
            root = 220 * 2 ** (rng.integers(0, 24) / 12)
            notes = [root * 2 ** (k / 12) for k in (0, 4, 7, 12)[: rng.integers(3, 5)]]
            parts.append(ts.chord(notes, float(rng.uniform(0.15, 0.8)), rate))
        out.append(ts.pcm16(ts.add_noise(np.concatenate(parts), 35, rng)))
    return out


def sweep_set(rate: int, n: int = 6, sweeps: int = 60, ratio: float = 1.7, seed=5):
    """Adversarial: pairs of sweeps a frequency ratio of 1.7 apart, close to the
    DTMF high/low ratio (~1.73), so both cross a digit's pair at nearly the same time."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(sweeps):
            a, b = rng.uniform(300, 2000, 2)
            d = float(rng.uniform(0.3, 1.5))
            parts.append(ts.sweep(a, b, d, rate) + ts.sweep(a * ratio, b * ratio, d, rate))
        out.append(ts.pcm16(np.concatenate(parts)))
    return out


def tone_set(rate: int, snrs=(10, 20), trials: int = 6, seed=4):
    """Every tone type with random level, in-tolerance frequency offset and noise."""
    rng = np.random.default_rng(seed)
    sigs, truth = [], []
    builders = {
        "fax_cng": lambda lv: ts.cng(rate, freq=1100 + rng.uniform(-30, 30), level_dbfs=lv),
        "ans": lambda lv: ts.answer_tone(rate, freq=2100 + rng.uniform(-10, 10), level_dbfs=lv),
        "ans_pr": lambda lv: ts.answer_tone(rate, reversals=True, level_dbfs=lv),
        "ansam": lambda lv: ts.answer_tone(rate, am=True, level_dbfs=lv),
        "bell": lambda lv: ts.answer_tone(rate, freq=2225, level_dbfs=lv),
        "v21_preamble": lambda lv: ts.v21_flags(rate, level_dbfs=lv),
        "busy": lambda lv: ts.busy(rate, level_dbfs=lv),
        "reorder": lambda lv: ts.reorder(rate, level_dbfs=lv),
        "ringback": lambda lv: ts.ringback(rate, cycles=1, level_dbfs=lv),
        "dial_tone": lambda lv: ts.dial_tone(rate, dur=1.5, level_dbfs=lv),
        **{f"sit:{c}": (lambda c: lambda lv: ts.sit(c, rate, level_dbfs=lv))(c) for c in ts.SIT_SEGMENTS},
    }
    for name, build in builders.items():
        for snr, kind, _ in itertools.product(snrs, ("white", "pink"), range(trials)):
            lv = float(rng.uniform(-30, -10))
            x = build(lv)
            sigs.append(ts.pcm16(ts.add_noise(x, snr, rng, kind, signal_power=ts.amp(lv) ** 2 / 2)))
            truth.append(dict(name=name, snr=snr, noise=kind))
    return sigs, truth
