"""Labelled test audio: tones to spec, noise, music-like signals, offline speech.

Used by the accuracy suite and the benchmark; lives in the package so both can
import it.  Levels are dBFS of a sine (0 dBFS = amplitude 32768; 0 dBm0 is
about -3.2 dBFS in 16-bit linear).  Everything is float64 until `pcm16`.
"""
from __future__ import annotations

import os
import tempfile
import wave
from pathlib import Path

import numpy as np

from .dtmf import HIGH, KEYS, LOW


def amp(dbfs: float) -> float:
    return 32768.0 * 10 ** (dbfs / 20)


def pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def silence(dur: float, rate: int) -> np.ndarray:
    return np.zeros(int(round(dur * rate)))


def tone(freqs, dur: float, rate: int, level_dbfs=-10.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum of sines, each at level_dbfs (a float or one per frequency), random phases."""
    rng = rng or np.random.default_rng(0)
    freqs = np.atleast_1d(freqs)
    levels = np.broadcast_to(np.atleast_1d(level_dbfs), freqs.shape)
    t = np.arange(int(round(dur * rate))) / rate
    out = np.zeros_like(t)
    for f, lv in zip(freqs, levels):
        out += amp(lv) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def dtmf(digit: str, dur: float, rate: int, level_dbfs: float = -10.0, twist_db: float = 0.0,
         dev_pct: tuple[float, float] = (0.0, 0.0), rng=None) -> np.ndarray:
    """One digit.  twist_db > 0 is normal twist (low group louder by that much)."""
    k = KEYS.index(digit)
    fl = LOW[k // 4] * (1 + dev_pct[0] / 100)
    fh = HIGH[k % 4] * (1 + dev_pct[1] / 100)
    return tone([fl, fh], dur, rate, [level_dbfs, level_dbfs - twist_db], rng)


def dtmf_sequence(digits: str, on: float, off: float, rate: int, lead: float = 0.2, **kw):
    """Digits with gaps; returns (signal, [(digit, start, dur)])."""
    parts, labels, t = [silence(lead, rate)], [], lead
    for d in digits:
        parts.append(dtmf(d, on, rate, **kw))
        labels.append((d, t, on))
        parts.append(silence(off, rate))
        t += on + off
    return np.concatenate(parts), labels


def cadence(freqs, on: float, off: float, cycles: int, rate: int, level_dbfs=-15.0, lead=0.2):
    parts = [silence(lead, rate)]
    for _ in range(cycles):
        parts += [tone(freqs, on, rate, level_dbfs), silence(off, rate)]
    return np.concatenate(parts)


def busy(rate, cycles=4, **kw):
    return cadence([480, 620], 0.5, 0.5, cycles, rate, **kw)


def reorder(rate, cycles=6, **kw):
    return cadence([480, 620], 0.25, 0.25, cycles, rate, **kw)


def ringback(rate, cycles=2, **kw):
    return cadence([440, 480], 2.0, 4.0, cycles, rate, **kw)


def dial_tone(rate, dur=3.0, **kw):
    return cadence([350, 440], dur, 0.0, 1, rate, **kw)


def cng(rate, cycles=2, freq=1100.0, **kw):
    return cadence([freq], 0.5, 3.0, cycles, rate, **kw)


def answer_tone(rate, dur=3.3, freq=2100.0, am=False, reversals=False, level_dbfs=-12.0, lead=0.2):
    """ANS / ANS with phase reversals (every 450 ms) / ANSam (15 Hz AM, 20 %)."""
    t = np.arange(int(round(dur * rate))) / rate
    phase = np.pi * np.floor(t / 0.45) if reversals else 0.0
    env = 1 + 0.2 * np.sin(2 * np.pi * 15 * t) if am else 1.0
    x = amp(level_dbfs) * env * np.sin(2 * np.pi * freq * t + phase)
    return np.concatenate([silence(lead, rate), x, silence(0.3, rate)])


def v21_flags(rate, dur=1.0, level_dbfs=-12.0, lead=0.2, byte: int = 0x7E):
    """V.21 channel 2 CPFSK at 300 bit/s (mark 1 = 1650 Hz, space 0 = 1850 Hz), repeating `byte`."""
    n = int(round(dur * rate))
    bits = [(byte >> k) & 1 for k in range(8)]  # HDLC sends LSB first
    idx = (np.arange(n) * 300 // rate) % 8
    f = np.where(np.asarray(bits)[idx] == 1, 1650.0, 1850.0)
    x = amp(level_dbfs) * np.sin(2 * np.pi * np.cumsum(f) / rate)
    return np.concatenate([silence(lead, rate), x, silence(0.3, rate)])


SIT_SEGMENTS = {  # code -> (seg1 Hz, seg1 s, seg2 Hz, seg2 s); seg3 is 1776.7 Hz, 380 ms
    "IC": (913.8, 0.276, 1370.6, 0.276),
    "VC": (985.2, 0.380, 1370.6, 0.276),
    "RO'": (913.8, 0.276, 1428.5, 0.380),
    "RO''": (985.2, 0.276, 1370.6, 0.380),
    "NC'": (913.8, 0.380, 1370.6, 0.380),
    "NC''": (985.2, 0.380, 1428.5, 0.380),
    "IO": (985.2, 0.276, 1428.5, 0.276),
}


def sit(code: str, rate: int, level_dbfs=-15.0, lead=0.2):
    f1, d1, f2, d2 = SIT_SEGMENTS[code]
    return np.concatenate([silence(lead, rate), tone(f1, d1, rate, level_dbfs), tone(f2, d2, rate, level_dbfs),
                           tone(1776.7, 0.380, rate, level_dbfs), silence(0.5, rate)])


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / x.std()


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white",
              signal_power: float | None = None) -> np.ndarray:
    """Add noise at snr_db relative to the signal's power while it is on."""
    if signal_power is None:
        on = np.abs(x) > 0
        signal_power = float(np.mean(x[on] ** 2)) if on.any() else 1.0
    noise = (white_noise if kind == "white" else pink_noise)(len(x), rng)
    return x + noise * np.sqrt(signal_power / 10 ** (snr_db / 10))


def chord(notes_hz, dur: float, rate: int, level_dbfs=-15.0, partials=(1.0, 0.5, 0.33, 0.25)):
    """Instrument-like chord: each note with decaying harmonics and a soft attack."""
    t = np.arange(int(round(dur * rate))) / rate
    out = np.zeros_like(t)
    for f in notes_hz:
        for k, a in enumerate(partials, start=1):
            if f * k < rate / 2:
                out += a * np.sin(2 * np.pi * f * k * t)
    out *= np.minimum(1, t / 0.02) * np.exp(-t / (2 * dur))
    return out / (np.abs(out).max() + 1e-9) * amp(level_dbfs)


def sweep(f0: float, f1: float, dur: float, rate: int, level_dbfs=-15.0) -> np.ndarray:
    t = np.arange(int(round(dur * rate))) / rate
    ph = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur))
    return amp(level_dbfs) * np.sin(ph)


def music(rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Random sequence of chords (equal temperament, 3-4 notes) and two-tone sweeps."""
    parts, t = [], 0.0
    while t < seconds:
        if rng.random() < 0.75:
            root = 220 * 2 ** (rng.integers(0, 24) / 12)
            notes = [root * 2 ** (s / 12) for s in (0, 4, 7, 12)[: rng.integers(3, 5)]]
            d = float(rng.uniform(0.15, 0.8))
            parts.append(chord(notes, d, rate))
        else:
            d = float(rng.uniform(0.3, 1.5))
            a, b = rng.uniform(300, 2000, 2)
            parts.append(sweep(a, b, d, rate) + sweep(a * 1.7, b * 1.7, d, rate))
        t += d
    return np.concatenate(parts)[: int(seconds * rate)]


def espeak(text: str, rate: int, voice: str = "ko", cache_dir: str | os.PathLike | None = None,
           speed: int = 150) -> np.ndarray:
    """Speech from espeak-ng, resampled by sox to `rate`; cached by content hash."""
    from ivr.prompts import render_wav

    cache = Path(cache_dir or Path(tempfile.gettempdir()) / "ringpool-testspeech")
    return read_wav(render_wav(text, cache, rate=rate, voice=voice, speed=speed))


def detect_many(signals: list[np.ndarray], rate: int, frame: int | None = None, config=None) -> list[list]:
    """Run every signal through one StreamBank (one stream each) and return each
    stream's events; signals are zero-padded to a common length."""
    from .bank import StreamBank

    bank = StreamBank(len(signals), rate, config)
    sub = bank.sub_len
    n = max(len(s) for s in signals)
    n = -(-n // sub) * sub + 10 * sub
    x = np.zeros((len(signals), n), np.int16)
    for i, s in enumerate(signals):
        x[i, : len(s)] = s if s.dtype == np.int16 else pcm16(s)
    frame = frame or 4 * sub
    out: list[list] = [[] for _ in signals]
    for k in range(0, n, frame):
        for i, e in bank.process(x[:, k:k + frame]):
            out[i].append(e)
    for i in range(len(signals)):
        out[i].extend(bank.close_stream(i))
    return out


def read_wav(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def write_wav(path, samples: np.ndarray, rate: int):
    """A mono 16-bit WAV of ``samples`` (floats in int16 units, clipped), e.g. for a softphone to play."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16(samples).astype("<i2").tobytes())
    return path
