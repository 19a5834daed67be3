"""Answering-machine detection on the destination leg: a voicemail greeting is not a person answering."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ari_app.testcall import softphone_argv
from detectors import testsignals as sig
from tests.integration.conftest import NUMBERS, Stack, utc_now_iso

pytestmark = pytest.mark.integration
RATE = 8000


def greeting_wav(app: Stack, name: str, text: str, trailing_silence: float) -> Path:
    speech = sig.espeak(text, RATE, voice="en", cache_dir=str(app.tmp))
    samples = np.concatenate([sig.silence(0.3, RATE), speech, sig.silence(trailing_silence, RATE)])
    return sig.write_wav(app.tmp / f"{name}.wav", samples, RATE)


def answering_desk(app: Stack, wav: Path) -> subprocess.Popen:
    """A pjsua2 phone on the phone-desk port that answers and plays ``wav``."""
    argv = softphone_argv(answer=True, bind="127.0.0.1", port=app.softphone_desk_port, play=str(wav),
                          wait=30, hold=12)
    return subprocess.Popen([sys.executable, "-m", "ari_app.testcall.softphone", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def run_call(app: Stack, wav: Path) -> dict:
    desk = answering_desk(app, wav)
    try:
        since = utc_now_iso()
        asyncio.run(asyncio.sleep(1.5))  # let the phone bind its port
        app.sipp(NUMBERS["amd"], hold_ms=9000, timeout=40)
        return app.wait_call(since, NUMBERS["amd"], timeout=30)
    finally:
        desk.kill()
        desk.wait()


def test_voicemail_greeting_is_a_machine_and_the_fallback_answers(app: Stack) -> None:
    wav = greeting_wav(app, "voicemail", "Hi, you have reached the sales desk of Acme Plumbing. We are not "
                       "available right now. Please leave your name and number after the tone.", 3.0)
    call = run_call(app, wav)
    amd = next(e for e in call["events"] if e["kind"] == "destination_amd")
    assert amd["data"]["status"] == "MACHINE", amd
    outbound = [leg for leg in call["legs"] if leg["role"] == "outbound"]
    assert [(leg["destination"], leg["dial_status"]) for leg in outbound] == [("phone-desk", "machine"),
                                                                             ("desk", "answered")]
    assert call["disposition"] == "completed" and call["amd_result"].startswith("MACHINE")


def test_a_person_saying_hello_is_bridged(app: Stack) -> None:
    wav = greeting_wav(app, "hello", "Hello?", 8.0)
    call = run_call(app, wav)
    amd = next(e for e in call["events"] if e["kind"] == "destination_amd")
    assert amd["data"]["status"] == "HUMAN", amd
    outbound = [leg for leg in call["legs"] if leg["role"] == "outbound"]
    assert [(leg["destination"], leg["dial_status"]) for leg in outbound] == [("phone-desk", "answered")]
    assert call["disposition"] == "completed" and call["bridged_at"]
