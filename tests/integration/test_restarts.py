"""Restarts mid-call: no call record is ever lost, and the app carries on with new calls."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import NUMBERS, Stack, utc_now_iso

pytestmark = pytest.mark.integration

def bridged(call: dict) -> bool:
    return call["state"] == "bridged"

def test_app_killed_mid_call_and_call_ends_while_it_is_down(app: Stack) -> None:
    since = utc_now_iso()
    caller = app.sipp(NUMBERS["plain"], hold_ms=4000, background=True)
    app.wait_call(since, NUMBERS["plain"], until=bridged)
    app.kill_app()
    assert caller.wait(30) == 0, "the bridged call goes on in Asterisk while the app is down"

    app.start_app()
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed"
    assert call["end_observed"] == "reconciled"
    assert call["bridged_at"] and call["ended_at"] > call["bridged_at"]
    assert "reconciled" in [e["kind"] for e in call["events"]]
    assert f"{call['id']}-bridge" not in [b["id"] for b in app.ari_get("/bridges")], "its bridge was cleaned up"

def test_app_restarted_mid_call_adopts_the_live_call(app: Stack) -> None:
    since = utc_now_iso()
    caller = app.sipp(NUMBERS["plain"], hold_ms=10000, background=True)  # time for a restart on a loaded machine
    app.wait_call(since, NUMBERS["plain"], until=bridged)
    app.kill_app()
    app.start_app()
    assert caller.wait(30) == 0
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed"
    assert call["end_observed"] == "live", "the restarted app saw the hang-up itself"
    assert call["hangup_side"] == "caller"
    assert "adopted" in [e["kind"] for e in call["events"]]
    assert call["talk_seconds"] > 9

def test_calls_while_app_is_down_get_congestion_and_are_recorded(app: Stack) -> None:
    since = utc_now_iso()
    app.kill_app()
    result = app.sipp(NUMBERS["greeted"], hold_ms=500, timeout=15)
    assert result.returncode != 0
    errors = "".join(p.read_text(errors="replace") for p in app.tmp.glob(f"sipp-{NUMBERS['greeted']}-*.err"))
    assert "503" in errors, "the dialplan fallback refuses the call with congestion"

    app.start_app()
    call = app.wait_call(since, NUMBERS["greeted"])
    assert call["disposition"] == "unavailable"
    assert call["campaign"] == "greeted"
    assert call["caller_number"] == "15557770123"
    assert call["end_observed"] == "dialplan_fallback"
    assert call["answered_at"] is None

def test_asterisk_restart_app_reconnects_and_takes_new_calls(app: Stack) -> None:
    since = utc_now_iso()
    before = app.wait_healthy()["ari_reconnects"]
    caller = app.sipp(NUMBERS["plain"], hold_ms=8000, background=True)
    app.wait_call(since, NUMBERS["plain"], until=bridged)

    app.restart_asterisk()
    caller.kill()
    caller.wait()
    app.wait_healthy(timeout=40, min_reconnects=before + 1)
    interrupted = app.wait_call(since, NUMBERS["plain"])
    assert interrupted["disposition"] == "completed" and interrupted["bridged_at"]

    after = utc_now_iso()
    assert app.sipp(NUMBERS["greeted"], hold_ms=3000).returncode == 0
    call = app.wait_call(after, NUMBERS["greeted"])
    assert call["disposition"] == "completed"
    assert app.api("/healthz", token=None)[1]["ari_connected"] is True
