"""Softphone test accounts against the real stack: pjsua2 softphones register with digest auth and call in like
PSTN callers (same screening, routing and record, marked as test calls); wrong passwords are refused, counted and
banned; an account can be a destination; the echo and read-back service numbers answer."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ari_app.testcall import run_softphone
from tests.integration.conftest import ADMIN_TOKEN, NUMBERS, TEST_ACCOUNT_PASSWORD, Stack, utc_now_iso

pytestmark = pytest.mark.integration

BAN_SOURCE = "127.0.0.5"  # never a trunk address: the shared stack's trunk is 127.0.0.1


def tone_wav(path: Path, hz: float, seconds: float = 4.0, amplitude: float = 0.3) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000.0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes((amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes())
    return path


def request(app: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{app.admin_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def account(app: Stack, username: str, password: str = TEST_ACCOUNT_PASSWORD, bind: str = "127.0.0.1") -> dict[str, Any]:
    return {"username": username, "password": password, "registrar": f"sip:127.0.0.1:{app.sip_port}", "bind": bind,
            "reg_timeout": 4}


def softphone(**options: Any) -> dict[str, Any]:
    result = asyncio.run(run_softphone(**options))
    assert result["exit_code"] in (0, 1), result
    return result


def test_account_call_is_handled_like_a_trunk_call_and_marked_as_test(app: Stack) -> None:
    since = utc_now_iso()
    result = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", hold=1.5, timeout=15,
                       **account(app, "ta-caller"))
    assert result["ok"] and result["registration"]["status_code"] == 200, result
    assert result["answered"] and result["final_status"] == 200, result
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed" and call["campaign"] == "plain", call
    assert call["is_test"] == 1 and call["test_account"] == "ta-caller" and call["trunk"] is None
    # what the account presents, not what the softphone sent (its From user is "ta-caller")
    assert call["caller_number"] == "15557770400" and call["caller_name"] == "Account Caller"
    assert call["p_asserted_identity"] == "<sip:+15557770400@test.example;user=phone>"
    assert call["privacy"] == "none"
    assert [leg["role"] for leg in call["legs"]] == ["inbound", "outbound"]

    status, only_test = app.api(f"/api/v1/calls?test=true&since={since}")
    assert status == 200 and call["id"] in [c["id"] for c in only_test["calls"]]
    status, real = app.api(f"/api/v1/calls?test=false&since={since}")
    assert status == 200 and call["id"] not in [c["id"] for c in real["calls"]]


def test_account_dialling_a_non_tracking_number_is_refused(app: Stack) -> None:
    since = utc_now_iso()
    result = softphone(call=f"sip:15559990013@127.0.0.1:{app.sip_port}", hold=1, timeout=10, **account(app, "ta-caller"))
    assert result["ok"] and result["final_status"] == 404 and not result["answered"], result
    call = app.wait_call(since, "15559990013")
    assert call["disposition"] == "rejected" and call["is_test"] == 1 and call["test_account"] == "ta-caller"
    assert [leg["role"] for leg in call["legs"]] == ["inbound"], "nothing was dialled"


def test_account_calls_a_tracking_number_whose_destination_is_another_account(app: Stack, tmp_path: Path) -> None:
    since = utc_now_iso()

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        callee = asyncio.create_task(run_softphone(
            answer=True, answer_delay=0.3, wait=20, play=tone_wav(tmp_path / "callee.wav", 600), play_loop=True,
            record=tmp_path / "callee-rec.wav", expect_tone=1000, **account(app, "ta-callee")))
        for _ in range(50):  # until the callee's contact is registered
            if "ta-callee/sip:" in await app.asterisk.cli("pjsip show contacts") or callee.done():
                break
            await asyncio.sleep(0.1)
        caller = await run_softphone(call=f"sip:{NUMBERS['account']}@127.0.0.1:{app.sip_port}", hold=3.0, timeout=15,
                                     play=tone_wav(tmp_path / "caller.wav", 1000), play_loop=True,
                                     record=tmp_path / "caller-rec.wav", expect_tone=600, **account(app, "ta-caller"))
        return caller, await callee

    caller, callee = asyncio.run(both())
    assert caller["ok"] and callee["ok"], (caller, callee)
    assert caller["answered"] and callee["answered"]
    assert callee["recording"]["tone"]["present"], ("caller -> callee", callee["recording"])
    assert caller["recording"]["tone"]["present"], ("callee -> caller", caller["recording"])
    call = app.wait_call(since, NUMBERS["account"])
    assert call["disposition"] == "completed" and call["destination"] == "tester-desk", call
    assert call["is_test"] == 1 and call["test_account"] == "ta-caller"
    assert call["bridged_at"] is not None
    assert [leg["dial_string"] for leg in call["legs"] if leg["role"] == "outbound"] == ["PJSIP/ta-callee"]


def test_echo_and_read_back_service_numbers_answer(app: Stack, tmp_path: Path) -> None:
    echo = softphone(call=f"sip:*43@127.0.0.1:{app.sip_port}", hold=3.0, timeout=12,
                     play=tone_wav(tmp_path / "tone.wav", 1000), play_loop=True,
                     record=tmp_path / "echo.wav", expect_tone=1000, **account(app, "ta-caller"))
    assert echo["ok"] and echo["answered"], echo
    assert echo["recording"]["tone"]["present"], echo["recording"]   # our tone came back
    readback = softphone(call=f"sip:*65@127.0.0.1:{app.sip_port}", timeout=20, record=tmp_path / "readback.wav",
                         **account(app, "ta-caller"))
    assert readback["ok"] and readback["answered"], readback
    assert readback["hangup_by"] == "remote", "the prompt ends the call itself"
    assert readback["recording"]["active_seconds"] >= 3.0, readback["recording"]  # "from phone number" + 11 digits


def test_wrong_password_is_refused_counted_and_banned(app: Stack) -> None:
    request(app, "DELETE", f"/api/v1/security/bans/{BAN_SOURCE}")  # a clean start if a previous run left one
    for attempt in range(3):
        result = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", timeout=5,
                           **account(app, "ta-caller", password=f"wrong-password-{attempt}", bind=BAN_SOURCE))
        assert result["exit_code"] == 1 and result["registration"]["status_code"] == 401, result
    deadline = time.monotonic() + 10
    bans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        _status, body = request(app, "GET", "/api/v1/security/bans")
        bans = [b for b in body["bans"] if b["address"] == BAN_SOURCE]
        if bans:
            break
        time.sleep(0.2)
    assert bans and bans[0]["failures"] == 3, (bans, app.app_log())
    status, body = request(app, "GET", f"/api/v1/security/events?address={BAN_SOURCE}&event=ChallengeResponseFailed")
    assert status == 200 and len(body["events"]) >= 3 and body["events"][0]["account"] == "ta-caller", body

    # the ban really stops the next attempt, even with the right password
    banned = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", timeout=5,
                       **account(app, "ta-caller", bind=BAN_SOURCE))
    assert banned["exit_code"] == 1 and banned["registration"]["status_code"] == 403, banned
    # the trunk (127.0.0.1) and other addresses are unaffected
    assert softphone(call=f"sip:*65@127.0.0.1:{app.sip_port}", hold=0.5, timeout=8,
                     **account(app, "ta-caller"))["answered"]

    status, body = request(app, "DELETE", f"/api/v1/security/bans/{BAN_SOURCE}")
    assert status == 200 and body["applied"], body
    again = softphone(call=f"sip:*65@127.0.0.1:{app.sip_port}", hold=0.5, timeout=8,
                      **account(app, "ta-caller", bind=BAN_SOURCE))
    assert again["registration"]["status_code"] == 200 and again["answered"], again


def test_account_created_through_the_api_registers_calls_and_is_removed(app: Stack) -> None:
    status, body = request(app, "POST", "/api/v1/test-accounts", {"username": "7up", "caller_number": "1"})
    assert status == 400 and body["error"].startswith("username:"), body
    status, body = request(app, "POST", "/api/v1/test-accounts", {"username": "ta-caller", "caller_number": "1555"})
    assert status == 409, body
    request(app, "DELETE", "/api/v1/test-accounts/ta-api")
    status, created = request(app, "POST", "/api/v1/test-accounts",
                              {"username": "ta-api", "caller_number": "+15557770600", "caller_name": "API Tester",
                               "headers": {"Privacy": "id"}})
    assert status == 201 and created["applied"] and len(created["password"]) >= 20, created
    status, listed = request(app, "GET", "/api/v1/test-accounts")
    assert {"ta-caller", "ta-callee", "ta-api"} <= {a["username"] for a in listed["accounts"]}
    assert all("password" not in a for a in listed["accounts"])

    since = utc_now_iso()
    result = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", hold=1.0, timeout=12,
                       **account(app, "ta-api", password=created["password"]))
    assert result["ok"] and result["answered"], result
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["test_account"] == "ta-api" and call["caller_number"] == "15557770600" and call["privacy"] == "id"

    status, body = request(app, "DELETE", "/api/v1/test-accounts/ta-api")
    assert status == 200 and body["applied"], body
    gone = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", timeout=5,
                     **account(app, "ta-api", password=created["password"], bind="127.0.0.6"))
    assert gone["exit_code"] == 1 and gone["registration"]["status_code"] != 200, gone
