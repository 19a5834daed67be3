"""The pjsua2 test softphone (ari_app.testcall) against the bundled Asterisk and the Ringpool app: real SIP,
real RTP, one softphone process per call."""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ari_app.asterisk_config import render_all
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed
from ari_app.config import load_settings
from ari_app.testcall import run_softphone
from tests.integration.conftest import (ARI_PASSWORD, NUMBERS, Stack, free_port, free_stack_ports, rtp_block,
                                        utc_now_iso,
                                         write_config)

pytestmark = pytest.mark.integration


def softphone(**options: Any) -> dict[str, Any]:
    result = asyncio.run(run_softphone(**options))
    assert result["exit_code"] in (0, 1), result
    return result


def states(result: dict[str, Any]) -> list[str]:
    return [s["state"] for s in result["states"]]


def tone_wav(path: Path, hz: float = 1000.0, seconds: float = 3.0, amplitude: float = 0.3) -> Path:
    t = np.arange(int(8000 * seconds)) / 8000.0
    samples = (amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(samples.tobytes())
    return path


def test_greeted_call_is_answered_and_the_greeting_is_heard(app: Stack, tmp_path: Path) -> None:
    since = utc_now_iso()
    result = softphone(call=f"sip:{NUMBERS['greeted']}@127.0.0.1:{app.sip_port}", caller_id="15557770201",
                       record=tmp_path / "greeting.wav", hold=3.5, timeout=15)
    assert result["ok"] and result["error"] is None, result
    assert result["answered"] and result["final_status"] == 200
    assert states(result)[0] == "CALLING" and states(result)[-1] == "DISCONNECTED" and "CONFIRMED" in states(result)
    assert result["hangup_by"] == "local" and result["hangup_reason"] == "hold"
    assert 3.0 <= result["connect_duration"] < 5.0
    rec = result["recording"]
    assert rec["complete"] and rec["path"] == str((tmp_path / "greeting.wav").resolve())
    assert 3.0 <= rec["seconds"] < 5.0
    assert rec["rms_dbfs"] is not None and rec["rms_dbfs"] > -40, rec     # hello-world, not silence
    assert rec["active_seconds"] >= 0.7, rec
    assert result["received_level_max"] > 0

    call = app.wait_call(since, NUMBERS["greeted"])
    assert call["disposition"] == "completed"
    assert call["campaign"] == "greeted" and call["caller_number"] == "15557770201"
    assert call["hangup_side"] == "caller"
    assert "playback_finished" in [e["kind"] for e in call["events"]]


def test_unknown_number_gets_404_and_is_never_answered(app: Stack) -> None:
    since = utc_now_iso()
    result = softphone(call=f"sip:15559990000@127.0.0.1:{app.sip_port}", hold=1, timeout=10)
    assert result["ok"], result
    call = app.wait_call(since, "15559990000")
    assert result["final_status"] == 404, (result, call, app.app_log())
    assert call["disposition"] == "rejected" and call["answered_at"] is None
    assert not result["answered"] and result["answered_at"] is None and result["connect_duration"] is None
    assert "CONFIRMED" not in states(result) and states(result)[-1] == "DISCONNECTED"
    assert result["hangup_by"] == "remote" and result["hangup_reason"] == "rejected"
    assert result["elapsed"] < 5


def test_tone_dtmf_and_custom_headers_reach_the_call_record(app: Stack, tmp_path: Path) -> None:
    since = utc_now_iso()
    pai = '"Soft Phone" <sip:+15557770202@carrier.example;user=phone>'
    result = softphone(call=f"sip:{NUMBERS['plain']}@127.0.0.1:{app.sip_port}", caller_id="15557770202",
                       caller_name="Soft Phone", header=[f"P-Asserted-Identity: {pai}", "Privacy: id"],
                       play=tone_wav(tmp_path / "tone.wav"), dtmf="123", dtmf_delay=0.5, hold=2.0, timeout=15)
    assert result["ok"] and result["answered"], result
    assert result["dtmf_sent"] == "123" and "dtmf_error" not in result, result
    assert result["sent_level_max"] > 0, "the tone was fed into the call"

    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed"
    assert call["p_asserted_identity"] == pai
    assert call["privacy"] == "id"
    assert call["caller_number"] == "15557770202" and call["caller_name"] == "Soft Phone"


def test_softphone_to_softphone_tone_and_dtmf(tmp_path: Path) -> None:
    """Caller and callee modes against each other, no Asterisk: the tone is found in the callee's
    recording, the DTMF arrives, the headers are seen, the callee sees the caller's BYE."""
    port = free_port()

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        callee = asyncio.create_task(run_softphone(
            answer=True, username="bob", port=port, answer_delay=0.3, wait=15,
            record=tmp_path / "callee.wav", expect_tone=1000))
        await asyncio.sleep(1.0)
        caller = await run_softphone(call=f"sip:bob@127.0.0.1:{port}", caller_id="15557770203",
                                     header={"X-Test": "softphone"}, play=tone_wav(tmp_path / "tone.wav"),
                                     dtmf="123#", dtmf_delay=0.3, hold=2.0, timeout=10)
        return caller, await callee

    caller, callee = asyncio.run(both())
    assert caller["ok"] and callee["ok"], (caller, callee)
    assert caller["answered"] and callee["answered"]
    assert "EARLY" in states(caller) and caller["states"][-1]["state"] == "DISCONNECTED"
    assert caller["hangup_by"] == "local" and callee["hangup_by"] == "remote" and callee["hangup_reason"] == "bye"
    assert callee["dtmf_received"] == "123#"
    assert callee["incoming"]["headers"]["X-Test"] == "softphone"
    assert "15557770203@" in callee["remote_uri"]
    tone = callee["recording"]["tone"]
    assert tone["present"] and tone["seconds"] >= 1.0, callee["recording"]
    assert callee["recording"]["dominant_hz"] == pytest.approx(1000, abs=15)


# --- registered accounts: a second, app-less Asterisk with two SIP users ----------------------------------------

ACCOUNTS_PJSIP = """
[agent1]
type = endpoint
context = softphone-test
disallow = all
allow = ulaw,alaw
auth = agent1-auth
aors = agent1
direct_media = no
rtp_symmetric = yes
dtmf_mode = rfc4733

[agent1-auth]
type = auth
auth_type = userpass
username = agent1
password = {password}

[agent1]
type = aor
max_contacts = 1
remove_existing = yes

[agent2]
type = endpoint
context = softphone-test
disallow = all
allow = ulaw,alaw
auth = agent2-auth
aors = agent2
direct_media = no
rtp_symmetric = yes
dtmf_mode = rfc4733

[agent2-auth]
type = auth
auth_type = userpass
username = agent2
password = {password}

[agent2]
type = aor
max_contacts = 1
remove_existing = yes
"""

ACCOUNTS_DIALPLAN = """
[softphone-test]
exten => agent1,1,Dial(PJSIP/agent1,10)
 same => n,Hangup()
"""

ACCOUNT_PASSWORD = "softphone-test-password-42"
# The trunk of the shared config is identified by source address 127.0.0.1, so registered accounts
# use another loopback address and are identified by user name (then challenged for the password).
ACCOUNT_BIND = "127.0.0.2"


@dataclass
class Pbx:
    sip_port: int
    asterisk: BundledAsterisk

    @property
    def registrar(self) -> str:
        return f"sip:127.0.0.1:{self.sip_port}"


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    """Bundled Asterisk with SIP accounts agent1 and agent2 (no Ringpool app): agent2 dials agent1."""
    tmp = tmp_path_factory.mktemp("pbx")
    root = default_root()
    ensure_installed(root)
    ports = free_stack_ports()
    sip, http = ports["sip"], ports["http"]
    config = write_config(tmp, ports, rtp_start=rtp_block())
    settings = load_settings(config)
    run_dir = tmp / "asterisk"
    asterisk = BundledAsterisk(root, run_dir, http_port=http, ari_user=settings.ari.username, ari_password=ARI_PASSWORD)
    asterisk.write_config(render_all(settings, root=root, run_dir=run_dir, ari_password=ARI_PASSWORD,
                                     extra_pjsip=ACCOUNTS_PJSIP.format(password=ACCOUNT_PASSWORD),
                                     extra_extensions=ACCOUNTS_DIALPLAN))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asterisk.start())
    try:
        yield Pbx(sip_port=sip, asterisk=asterisk)
    finally:
        loop.run_until_complete(asterisk.stop())
        loop.close()


def test_registered_callee_answers_a_registered_caller(pbx: Pbx, tmp_path: Path) -> None:
    """agent1 registers and waits; agent2 registers and calls it through Asterisk. The callee plays a tone the
    caller records, the caller's DTMF reaches the callee, and the callee sees the caller's BYE."""
    account = {"registrar": pbx.registrar, "password": ACCOUNT_PASSWORD, "bind": ACCOUNT_BIND}

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        callee = asyncio.create_task(run_softphone(
            answer=True, username="agent1", answer_delay=0.5, wait=20, play=tone_wav(tmp_path / "tone.wav", seconds=5),
            **account))
        for _ in range(50):  # until agent1's contact is known to Asterisk (not qualified: "NonQual")
            if "agent1/sip:" in await pbx.asterisk.cli("pjsip show contacts") or callee.done():
                break
            await asyncio.sleep(0.1)
        caller = await run_softphone(call=f"sip:agent1@127.0.0.1:{pbx.sip_port}", username="agent2",
                                     record=tmp_path / "caller.wav", expect_tone=1000, dtmf="45", dtmf_delay=0.5,
                                     hold=2.5, timeout=15, **account)
        return caller, await callee

    caller, callee = asyncio.run(both())
    assert caller["ok"] and callee["ok"], (caller, callee)
    assert caller["registration"]["status_code"] == 200 and callee["registration"]["status_code"] == 200
    assert caller["registration"].get("unregister_status") == 200
    assert caller["answered"] and callee["answered"]
    assert "EARLY" in states(caller), "Asterisk passed the callee's 180 on"
    assert callee["states"][0]["state"] == "INCOMING"
    assert callee["incoming"]["headers"]["From"].startswith("<sip:agent2@") or "agent2" in callee["remote_uri"]
    assert caller["hangup_by"] == "local" and callee["hangup_by"] == "remote"
    assert callee["dtmf_received"] == "45"
    assert caller["recording"]["tone"]["present"], caller["recording"]


def test_wrong_password_fails_registration(pbx: Pbx) -> None:
    result = softphone(call=f"sip:agent1@127.0.0.1:{pbx.sip_port}", username="agent2", password="wrong",
                       registrar=pbx.registrar, bind=ACCOUNT_BIND, reg_timeout=5, timeout=5)
    assert not result["ok"] and result["exit_code"] == 1
    assert result["registration"]["status_code"] in (401, 403), result
    assert result["error"].startswith("registration failed") and result["states"] == []
