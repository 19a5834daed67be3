"""`ringpool test-call`: a tester places a call with the softphone (DTMF) or SIPp and reads its record."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import NUMBERS, REPO, Stack

pytestmark = pytest.mark.integration


def ringpool(app: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ari_app", "--config", str(app.config), "--log-level", "WARNING",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=90)


def records(stdout: str) -> list[dict]:
    """The JSON documents the command printed (the call, then the record)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) != -1:
        value, at = decoder.raw_decode(stdout, start)
        found.append(value)
    return found


def test_test_call_with_the_softphone_and_dtmf_shows_the_record(app: Stack) -> None:
    done = ringpool(app, "test-call", NUMBERS["listen"], "--caller", "13126249311", "--dtmf", "42", "--hold", "4")
    assert done.returncode == 0, done.stderr
    placed, shown = records(done.stdout)
    assert placed["call"]["answered"] and placed["call"]["dtmf_sent"] == "42"
    assert shown["record"]["disposition"] == "completed" and "42" in (shown["record"]["dtmf_digits"] or "")
    assert "bridged" in shown["events"]


def test_test_call_with_sipp(app: Stack) -> None:
    done = ringpool(app, "test-call", NUMBERS["plain"], "--caller", "13126249322", "--with", "sipp", "--hold", "1")
    assert done.returncode == 0, done.stderr
    placed, shown = records(done.stdout)
    assert placed["call"]["completed"] and shown["record"]["campaign"] == "plain"
