"""Scenario: unwanted-call screening on campaign "screened" (screening is off for the other scenario campaigns).

A blocked caller is refused before answer with the configured SIP code; a burst of calls from one number trips
the rate rule and meets the challenge; a caller who rang a number not in use is quarantined, then challenged
once the number is leased, and gets through by speaking and pressing the digit asked for; an operator clears a
false positive."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from ari_app.testcall import run_softphone
from detectors.testsignals import espeak, write_wav
from tests.integration.conftest import ADMIN_TOKEN, NUMBERS, POOL_SITE_KEY, Stack, utc_now_iso

pytestmark = pytest.mark.integration


def softphone(app: Stack, number: str, caller: str, **options: Any) -> dict[str, Any]:
    return asyncio.run(run_softphone(call=f"sip:{number}@127.0.0.1:{app.sip_port}", caller_id=caller, **options))


def fresh_since() -> str:
    """A `since` after every earlier call (utc_now_iso reaches half a second back)."""
    time.sleep(0.6)
    return utc_now_iso()


def person_keys(caller: str) -> dict[str, str]:
    """Realistic signaling for SIPp: the scenario defaults carry fictional 555 numbers, which screening scores."""
    return {"pai": f'"Pat Jones" <sip:{caller}@carrier.example>', "caller_name": "Pat Jones",
            "diversion": "<sip:13127834561@carrier.example>;reason=unconditional",
            "charge": f"<sip:{caller}@carrier.example>"}


def add_rule(app: Stack, **rule: Any) -> dict[str, Any]:
    status, body = app.post("/api/v1/screening/rules", rule, token=ADMIN_TOKEN)
    assert status == 201, body
    return body


def screening(call: dict[str, Any]) -> dict[str, Any]:
    value = call["screening"]
    return json.loads(value) if isinstance(value, str) else value


def factors(call: dict[str, Any]) -> set[str]:
    return {f["factor"] for f in screening(call)["factors"]}


def test_blocked_callers_are_refused_before_answer_with_the_configured_code(app: Stack) -> None:
    since = utc_now_iso()
    rule = add_rule(app, kind="number", value="+13126240001", campaign="screened", reason="known robocaller")
    prefix = add_rule(app, kind="prefix", value="1312624009", reason="a dialer's block")
    for caller, matched in (("13126240001", rule), ("13126240093", prefix)):
        result = softphone(app, NUMBERS["screened"], caller, hold=1, timeout=10)
        assert result["final_status"] == 486 and not result["answered"], result
        call = app.wait_call(since, caller)
        assert (call["disposition"], call["answered_at"], call["spam"], call["score1"]) == ("rejected", None, 1, 100)
        assert screening(call)["rule"]["id"] == matched["id"] and "block rule" in call["decision_reasons"][0]
    status, listed = app.api("/api/v1/screening/rules?kind=prefix&value=1312624009")
    assert status == 200 and listed["rules"][0]["hits"] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{app.admin_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    for reason in ("block_number", "block_prefix"):
        assert re.search(rf'^ringpool_screening_rejections_total{{reason="{reason}"}} [1-9]', metrics, re.M), metrics


def test_a_burst_from_one_number_trips_the_rate_rule_and_meets_the_challenge(app: Stack) -> None:
    caller = "13126247391"
    since = utc_now_iso()
    for hold_ms in (1500, 2600, 3700):  # rate_calls 3: three calls an hour are fine (of different lengths)
        assert app.sipp(NUMBERS["screened"], caller=caller, hold_ms=hold_ms, keys=person_keys(caller)).returncode == 0
    deadline = time.monotonic() + 10
    calls = app.calls_since(since, caller)
    while time.monotonic() < deadline and not all(c["ended_at"] for c in calls):
        time.sleep(0.2)
        calls = app.calls_since(since, caller)
    assert len(calls) == 3 and all(c["disposition"] == "completed" and c["score1_color"] == "green" for c in calls), [(c["disposition"], c["score1"], c["screening"], c["decision_reasons"]) for c in calls]
    # the fourth: score 1 is yellow, so it is answered and challenged; a dialer presses nothing and says nothing
    fourth_since = fresh_since()
    app.sipp(NUMBERS["screened"], caller=caller, scenario="uac_call_remote_bye.xml", timeout=60,
             keys=person_keys(caller))
    call = app.wait_call(fourth_since, caller, timeout=60)
    assert "rate" in factors(call) and call["score1_color"] == "yellow"
    challenge = json.loads(call["challenge"]) if isinstance(call["challenge"], str) else call["challenge"]
    assert challenge == {"passed": False, "digit_ok": False, "presence": False}
    assert call["spam"] == 1 and call["disposition"] == "rejected" and call["destination_answered_at"] is None
    assert [e["data"]["expected"] for e in call["events"] if e["kind"] == "challenge_prompt"]  # a digit was asked
    # failing blocked the caller: the next call is refused before answer
    fifth_since = fresh_since()
    result = softphone(app, NUMBERS["screened"], caller, hold=1, timeout=10)
    assert result["final_status"] == 486 and not result["answered"]
    fifth = app.wait_call(fifth_since, caller)
    assert screening(fifth)["rule"]["reason"].startswith("failed the challenge")

    # an operator clears the false positive and allows the number: it gets straight through again
    status, cleared = app.post("/api/v1/screening/clear", {"number": caller, "allow": True}, token=ADMIN_TOKEN)
    assert status == 200 and cleared["block_rules_removed"] == 1 and cleared["calls_unmarked"] >= 1
    sixth_since = fresh_since()
    assert app.sipp(NUMBERS["screened"], caller=caller, hold_ms=300, keys=person_keys(caller)).returncode == 0
    sixth = app.wait_call(sixth_since, caller)
    assert sixth["disposition"] == "completed" and factors(sixth) == {"allow_list"}


def call_as_a_person(app: Stack, number: str, caller: str, since: str, tmp_path: Path, hold: float,
                     answer: Callable[[dict[str, Any]], str | None]) -> dict[str, Any]:
    """A softphone that speaks and presses what ``answer`` reads from the call's record (e.g. the digit a
    challenge asked for) once it has something to press."""
    digit_file = tmp_path / "digit"

    async def run() -> dict[str, Any]:
        phone = asyncio.create_task(run_softphone(
            call=f"sip:{number}@127.0.0.1:{app.sip_port}", caller_id=caller,
            play=str(speech_wav(tmp_path / "speech.wav")), play_loop=True, dtmf_file=str(digit_file), hold=hold,
            timeout=hold + 25))
        deadline = time.monotonic() + hold + 10
        while time.monotonic() < deadline and not digit_file.exists() and not phone.done():
            await asyncio.sleep(0.3)
            calls = await asyncio.to_thread(app.calls_since, since, caller)
            if calls:
                _, call = await asyncio.to_thread(app.api, f"/api/v1/calls/{calls[0]['id']}")
                if (digits := answer(call)) is not None:
                    digit_file.write_text(digits)
        return await phone

    return asyncio.run(run())


def asked_digit(call: dict[str, Any]) -> str | None:
    """The person listens to the challenge and presses the digit asked for."""
    asked = [e["data"]["expected"] for e in call["events"] if e["kind"] == "challenge_prompt"]
    return asked[-1] if asked else None


def speech_wav(path: Path) -> Path:
    voice = espeak("Hello? Hi, I am calling about the plumbing job you quoted me last week.", 8000, voice="en-us")
    write_wav(path, np.concatenate([voice, np.zeros(4000), voice]), 8000)
    return path


def test_a_quarantined_caller_is_challenged_later_and_a_person_gets_through(app: Stack, tmp_path: Path) -> None:
    caller = "13126245810"
    since = utc_now_iso()
    # the pool's only number is idle (not in use): the call is not answered, and the caller is remembered
    result = softphone(app, NUMBERS["screen_pool"], caller, hold=1, timeout=10)
    assert result["final_status"] == 404 and not result["answered"], result
    first = app.wait_call(since, caller)
    assert (first["number_state"], first["disposition"]) == ("idle", "rejected")
    assert "not in use" in first["decision_reasons"][0]

    # the number goes live for a web visitor; the quarantined caller rings it again: a candidate, challenged
    status, lease = app.post("/t/v1/sessions", {"pool": "screen-pool", "key": POOL_SITE_KEY,
                                                "page": "https://www.acme-plumbing.example/"})
    assert status == 200 and lease["number"] == "+" + NUMBERS["screen_pool"], lease
    second_since = fresh_since()
    result = call_as_a_person(app, NUMBERS["screen_pool"], caller, second_since, tmp_path, 20, asked_digit)
    assert result["answered"], result
    call = app.wait_call(second_since, caller, timeout=30)
    assert call["candidate"] == 1 and "quarantined" in factors(call)
    challenge = json.loads(call["challenge"]) if isinstance(call["challenge"], str) else call["challenge"]
    assert challenge == {"passed": True, "digit_ok": True, "presence": True}, call["events"]
    assert call["spam"] == 0 and call["bridged_at"] and call["disposition"] == "completed"
    assert call["attribution_method"] == "lease"


@pytest.mark.parametrize("machine", ["fax", "modem"])
def test_fax_machines_and_modem_dialers_are_detected_and_dropped(app: Stack, tmp_path: Path, machine: str) -> None:
    """A machine gets through the pre-answer checks (it has a clean number), is bridged, and sends its tones: both
    legs are dropped (the agent hears beeps first), the call is spam and the number is blocked."""
    from detectors import testsignals as ts

    caller = {"fax": "13126246602", "modem": "13126246703"}[machine]
    signal = (np.concatenate([ts.cng(8000, cycles=3), ts.v21_flags(8000, dur=1.5)]) if machine == "fax"
              else ts.answer_tone(8000, dur=3.3, am=True))  # ANSam: a data modem, not a fax
    wav = tmp_path / f"{machine}.wav"
    write_wav(wav, np.concatenate([ts.silence(0.5, 8000), signal]), 8000)
    since = fresh_since()
    result = softphone(app, NUMBERS["screened"], caller, play=str(wav), play_loop=True, hold=25, timeout=40)
    assert result["answered"] and result["hangup_by"] == "remote", result  # Ringpool hung up, not the machine
    call = app.wait_call(since, caller, timeout=30)
    assert call["bridged_at"] and call["spam"] == 1 and "bridged call" in call["spam_reason"], call["events"]
    assert any(e["kind"] == "dialer_dropped" for e in call["events"])
    assert result["connect_duration"] < 15  # dropped as soon as the tone was heard, well before the 25 s hold
    flags = ("fax_detected" if machine == "fax" else "modem_detected")
    assert call[flags] == 1
    status, rules = app.api(f"/api/v1/screening/rules?kind=number&value={caller}")
    assert rules["rules"] and rules["rules"][0]["source"] == "detector"


def test_a_blocked_caller_who_speaks_can_press_1_to_get_through(app: Stack, tmp_path: Path) -> None:
    person, robot = "13126248120", "13126248231"
    for caller in (person, robot):
        add_rule(app, kind="number", value=caller, campaign="screened-vc", reason="reported as spam")
    since = fresh_since()
    voice_heard = lambda call: "1" if any(e["kind"] == "voice_heard" for e in call["events"]) else None  # noqa: E731
    assert call_as_a_person(app, NUMBERS["voice_check"], person, since, tmp_path, 12, voice_heard)["answered"]
    through = app.wait_call(since, person, timeout=30)
    assert through["bridged_at"] and through["disposition"] == "completed" and through["spam"] == 0
    assert [e["data"]["through"] for e in through["events"] if e["kind"] == "voice_check"] == [True]
    # a silent dialer on the same list hears nothing and is hung up without reaching anyone
    since = fresh_since()
    app.sipp(NUMBERS["voice_check"], caller=robot, scenario="uac_call_remote_bye.xml", timeout=40,
             keys=person_keys(robot))
    dropped = app.wait_call(since, robot, timeout=30)
    assert dropped["disposition"] == "rejected" and dropped["destination_answered_at"] is None and dropped["spam"] == 1


def test_a_spam_announcement_is_recognised_on_the_next_call(app: Stack, tmp_path: Path) -> None:
    """A robocall marked spam by an operator teaches its opening; the same recording from another number is
    flagged spam by its opening alone."""
    # (a text of its own: the labelled scenario set, which may run first on the same stack, teaches others)
    text = ("Congratulations! You have been selected for a complimentary cruise to the Bahamas. Stay on the line to "
            "claim your tickets before midnight tonight.")
    voice = espeak(text, 8000, voice="en-us")
    first_wav, second_wav = tmp_path / "robo1.wav", tmp_path / "robo2.wav"
    write_wav(first_wav, np.concatenate([np.zeros(2400), voice]), 8000)
    rng = np.random.default_rng(7)
    second = np.concatenate([np.zeros(9000), voice]) * 0.6 + rng.normal(0, 60, len(voice) + 9000)
    write_wav(second_wav, second, 8000)  # later start, quieter, with line noise

    since = fresh_since()
    assert softphone(app, NUMBERS["screened"], "13126249104", play=str(first_wav), hold=10, timeout=30)["answered"]
    first = app.wait_call(since, "13126249104", timeout=30)
    assert first["spam"] == 0  # nothing known about it yet
    assert app.post(f"/api/v1/calls/{first['id']}/spam", {"spam": True}, token=ADMIN_TOKEN)[0] == 200

    since = fresh_since()
    assert softphone(app, NUMBERS["screened"], "13126249215", play=str(second_wav), hold=12, timeout=30)["answered"]
    second_call = app.wait_call(since, "13126249215", timeout=30)
    matches = [e["data"] for e in second_call["events"] if e["kind"] == "announcement_match"]
    assert matches and matches[0]["score"] >= 0.2, second_call["events"]
    assert second_call["spam"] == 1 and "announcement_match" in second_call["spam_reason"]


@pytest.mark.parametrize("campaign, number, status, least_seconds", [
    ("screened-announce", "refuse_announce", 404, 3.0),  # the intercept tones and "not in service", as early media
    ("screened-ring", "refuse_ring", 480, 3.5),  # ringing for 4 s that nobody answers
])
def test_refusals_that_are_never_answered(app: Stack, campaign: str, number: str, status: int,
                                          least_seconds: float) -> None:
    caller = {"screened-announce": "13126248342", "screened-ring": "13126248453"}[campaign]
    add_rule(app, kind="number", value=caller, campaign=campaign, reason="known robocaller")
    since = fresh_since()
    result = softphone(app, NUMBERS[number], caller, hold=1, timeout=30)
    assert result["final_status"] == status and not result["answered"], result
    assert result["elapsed"] >= least_seconds  # the caller was kept listening, without being charged
    call = app.wait_call(since, caller)
    assert call["answered_at"] is None and call["disposition"] == "rejected" and call["spam"] == 1
    action = campaign.split("-")[1]
    assert [e["data"]["action"] for e in call["events"] if e["kind"] == "refusal"] == [action]
