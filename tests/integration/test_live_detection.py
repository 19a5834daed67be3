"""Detectors on live calls: the pjsua2 softphone plays audio into a real call through the bundled Asterisk,
and the call record shows what was detected, at about the right time."""

from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np
import pytest

from ari_app.testcall import run_softphone
from detectors import testsignals as sig
from tests.integration.conftest import NUMBERS, Stack, utc_now_iso

pytestmark = pytest.mark.integration
RATE = 8000


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def call_with_audio(app: Stack, audio: np.ndarray, name: str, *, number: str = NUMBERS["listen"],
                    **options) -> tuple[dict, dict]:
    """Place a softphone call that plays ``audio`` after answer; return (softphone result, call record)."""
    since = utc_now_iso()
    wav = sig.write_wav(app.tmp / f"{name}.wav", audio, RATE)
    result = asyncio.run(run_softphone(call=f"sip:{number}@127.0.0.1:{app.sip_port}", caller_id="15557770999",
                                       play=str(wav), hold=len(audio) / RATE + 1.5, timeout=40, **options))
    assert result["answered"], result
    call = app.wait_call(since, number)
    return result, call


def detections(call: dict, kind: str, source: str | None = None) -> list[dict]:
    return [d for d in call["detections"] if d["kind"] == kind and (source is None or d["source"] == source)]


def audio_offset(result: dict, call: dict) -> float:
    """Where the played file starts, in the record's time base (seconds since the call arrived)."""
    return seconds(result["answered_at"]) - seconds(call["arrived_at"])


def test_fax_machine_cng_is_detected(app: Stack) -> None:
    audio = np.concatenate([sig.silence(1.0, RATE), sig.cng(RATE, cycles=2, lead=0.0)])
    result, call = call_with_audio(app, audio, "cng")
    assert call["fax_detected"] == 1 and call["modem_detected"] == 0
    assert call["detection_path"] == "after_answer"
    first = detections(call, "fax_cng")[0]
    assert abs(first["start_s"] - (audio_offset(result, call) + 1.0)) < 0.8


def test_modem_answer_tone_is_detected(app: Stack) -> None:
    audio = np.concatenate([sig.silence(0.5, RATE), sig.answer_tone(RATE, dur=3.0, freq=2225.0, lead=0.0)])
    _, call = call_with_audio(app, audio, "modem")
    assert call["modem_detected"] == 1 and call["fax_detected"] == 0
    assert detections(call, "answer_tone")[0]["details"]["freq_hz"] == pytest.approx(2225, abs=15)


def test_inband_dtmf_is_detected_with_timing(app: Stack) -> None:
    audio = np.concatenate([sig.silence(1.0, RATE), sig.dtmf_sequence("159#", on=0.1, off=0.15, rate=RATE, lead=0.0)[0]])
    result, call = call_with_audio(app, audio, "inband-dtmf")
    digits = detections(call, "dtmf", "inband")
    assert "".join(d["details"]["digit"] for d in digits) == "159#"
    assert call["dtmf_digits"] == "159#"
    assert all(0.06 < d["duration_s"] < 0.16 for d in digits)
    assert abs(digits[0]["start_s"] - (audio_offset(result, call) + 1.0)) < 0.5
    assert digits[1]["details"]["gap_s"] == pytest.approx(0.15, abs=0.05)


def test_rfc4733_dtmf_is_recorded(app: Stack) -> None:
    _, call = call_with_audio(app, sig.silence(3.0, RATE), "rfc-dtmf", dtmf="123", dtmf_delay=0.5)
    digits = detections(call, "dtmf", "rfc4733")
    assert "".join(d["details"]["digit"] for d in digits) == "123"
    assert all(d["leg"] == "caller" for d in digits)
    assert digits[1]["details"]["gap_s"] is not None


def test_silent_caller(app: Stack) -> None:
    _, call = call_with_audio(app, sig.silence(5.0, RATE), "silence")
    assert call["silence_detected"] == 1 and call["voice_detected"] == 0
    assert detections(call, "no_speech"), "expect_speech: 3 in the campaign"


def test_speaking_caller(app: Stack) -> None:
    speech = sig.espeak("Hello, I am calling about the apartment for rent on Main Street.", RATE, voice="en",
                        cache_dir=str(app.tmp))
    _, call = call_with_audio(app, np.concatenate([sig.silence(0.5, RATE), speech]), "speech")
    assert call["voice_detected"] == 1 and call["fax_detected"] == 0 and call["modem_detected"] == 0
    assert not detections(call, "no_speech")
    assert not call["dtmf_digits"], "no talk-off on speech"


def test_caller_speech_is_transcribed_off_the_event_loop(app: Stack) -> None:
    speech = sig.espeak("안녕하세요 아파트 임대 문의 드립니다", RATE, voice="ko", cache_dir=str(app.tmp))
    _, call = call_with_audio(app, np.concatenate([sig.silence(0.5, RATE), speech, sig.silence(1.0, RATE)]),
                              "korean", number=NUMBERS["speech"])
    transcripts = detections(call, "transcript")
    assert transcripts and call["transcript"].strip(), "the real Korean model heard something"
    assert call["voice_detected"] == 1
    assert detections(call, "keyword"), "the catch-all keyword rule fired on the transcript"
    assert "anything" in call["keywords"]


def test_early_media_audio_is_heard_before_answer(app: Stack) -> None:
    # The first burst 1 s in: inside the 2 s early-media window even when the tap is slow to attach under load.
    audio = np.concatenate([sig.silence(1.0, RATE), sig.cng(RATE, cycles=2, lead=0.0)])
    _, call = call_with_audio(app, audio, "early", number=NUMBERS["early"])
    kinds = [e["kind"] for e in call["events"]]
    assert kinds.index("early_media") < kinds.index("answered")
    early = next(e for e in call["events"] if e["kind"] == "early_media")
    assert early["data"] == {"seconds": 2, "audio_heard": True}
    assert call["detection_path"] == "early_media"
    answered = seconds(call["answered_at"]) - seconds(call["arrived_at"])
    assert call["fax_detected"] == 1 and detections(call, "fax_cng")[0]["start_s"] < answered, \
        "the fax machine was recognised before the call was answered"


def test_early_media_without_audio_falls_back_to_after_answer(app: Stack) -> None:
    since = utc_now_iso()
    assert app.sipp(NUMBERS["early"], hold_ms=2500).returncode == 0, "SIPp's caller sends no RTP at all"
    call = app.wait_call(since, NUMBERS["early"])
    early = next(e for e in call["events"] if e["kind"] == "early_media")
    assert early["data"] == {"seconds": 2, "audio_heard": False}
    assert call["detection_path"] == "after_answer"
    assert call["disposition"] == "completed"
