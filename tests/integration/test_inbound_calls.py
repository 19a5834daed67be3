"""Scenario tests: each places real SIP calls through the bundled Asterisk and checks the call record."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import NUMBERS, Stack, utc_now_iso

pytestmark = pytest.mark.integration


def kinds(call: dict) -> list[str]:
    return [event["kind"] for event in call["events"]]


def test_bridged_call_is_recorded_completely(app: Stack) -> None:
    since = utc_now_iso()
    result = app.sipp(NUMBERS["greeted"], hold_ms=3000, caller="15557770101",
                      keys={"privacy": "id", "pai": '"Test Caller" <sip:+15557770101@carrier.example;user=phone>'})
    assert result.returncode == 0, result.stderr
    call = app.wait_call(since, NUMBERS["greeted"])

    assert call["disposition"] == "completed"
    assert call["campaign"] == "greeted" and call["destination"] == "desk"
    assert call["caller_number"] == "15557770101" and call["caller_name"] == "Test Caller"
    assert call["trunk"] == "trunk-carrier"
    assert call["p_asserted_identity"] == '"Test Caller" <sip:+15557770101@carrier.example;user=phone>'
    assert call["privacy"] == "id"
    assert call["diversion"] == "<sip:15550009999@carrier.example>;reason=unconditional"
    assert call["p_charge_info"] == "<sip:15550008888@carrier.example>"
    assert call["hangup_side"] == "caller" and call["hangup_cause"] == 16
    assert call["arrived_at"] < call["answered_at"] < call["destination_answered_at"] <= call["bridged_at"] < call["ended_at"]
    assert 1.0 < call["talk_seconds"] < 3.5
    assert call["decision_latency_ms"] is not None and call["decision_latency_ms"] < 1000
    roles = sorted(leg["role"] for leg in call["legs"])
    assert roles == ["inbound", "outbound"]
    assert all(leg["ended_at"] for leg in call["legs"])
    assert kinds(call) == ["arrived", "decision", "answered", "playback_started", "playback_finished",
                           "route_plan", "dial_started", "dial_result", "bridged", "hangup", "ended"]


def test_destination_hanging_up_ends_the_caller_leg(app: Stack) -> None:
    since = utc_now_iso()
    result = app.sipp(NUMBERS["hangup"], scenario="uac_call_remote_bye.xml", timeout=20)
    assert result.returncode == 0, "the caller received the BYE when the desk hung up"
    call = app.wait_call(since, NUMBERS["hangup"])
    assert call["disposition"] == "completed"
    assert call["hangup_side"] == "destination" and call["hangup_cause"] == 16
    assert 1.0 < call["talk_seconds"] < 3.0


def test_odd_signaling_is_stored_safely(app: Stack) -> None:
    since = utc_now_iso()
    odd = {"pai": '"Robert\'); DROP TABLE calls;--" <sip:+1555@x>;' + "x" * 900,
           "diversion": "<sip:1@x>, <sip:2@x>;reason=\"deflection\", \u00e9\u00e8 garbage ;;;",
           "privacy": "id;header;user;critical", "charge": "%00%ff not-a-uri"}
    assert app.sipp(NUMBERS["plain"], hold_ms=800, keys=odd).returncode == 0
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed"
    assert call["p_asserted_identity"].startswith('"Robert\'); DROP TABLE calls;--"')
    assert len(call["p_asserted_identity"]) == 512
    assert call["privacy"] == "id;header;user;critical"
    assert app.api("/api/v1/calls?limit=1")[0] == 200, "the calls table is still there"


def test_call_without_greeting_answers_only_when_destination_answers(app: Stack) -> None:
    since = utc_now_iso()
    assert app.sipp(NUMBERS["plain"], hold_ms=1000).returncode == 0
    call = app.wait_call(since, NUMBERS["plain"])
    assert call["disposition"] == "completed"
    assert call["answered_at"] >= call["destination_answered_at"]
    assert "playback_started" not in kinds(call)


def test_unknown_number_is_rejected_with_404_before_answer(app: Stack) -> None:
    since = utc_now_iso()
    result = app.sipp("15559990000", hold_ms=500)
    assert result.returncode != 0
    errors = "".join(p.read_text(errors="replace") for p in app.tmp.glob("sipp-15559990000-*.err"))
    assert "404" in errors
    call = app.wait_call(since, "15559990000")
    assert call["disposition"] == "rejected" and call["decision"] == "reject"
    assert call["answered_at"] is None and call["hangup_cause"] == 1
    assert call["decision_reasons"] == ["dialed number is not a tracking number"]


def test_busy_destination(app: Stack) -> None:
    since = utc_now_iso()
    app.sipp(NUMBERS["busy"], hold_ms=500)
    call = app.wait_call(since, NUMBERS["busy"])
    assert call["disposition"] == "busy"
    outbound = [leg for leg in call["legs"] if leg["role"] == "outbound"]
    assert [leg["dial_status"] for leg in outbound] == ["busy"]
    assert outbound[0]["hangup_cause"] == 17
    assert call["answered_at"] is None, "a busy call with no greeting and no message is never answered"


def test_destination_not_answering(app: Stack) -> None:
    since = utc_now_iso()
    started = time.monotonic()
    app.sipp(NUMBERS["noanswer"], hold_ms=500)
    call = app.wait_call(since, NUMBERS["noanswer"])
    assert call["disposition"] == "no_answer"
    assert 2.5 < call["ring_seconds"] < 6.0, "the campaign's 3 s ring timeout"
    assert time.monotonic() - started < 15


def test_busy_destination_falls_back_to_the_next(app: Stack) -> None:
    since = utc_now_iso()
    assert app.sipp(NUMBERS["fallback"], hold_ms=1000).returncode == 0
    call = app.wait_call(since, NUMBERS["fallback"])
    assert call["disposition"] == "completed"
    outbound = [leg for leg in call["legs"] if leg["role"] == "outbound"]
    assert [(leg["destination"], leg["dial_status"]) for leg in outbound] == [("busy-desk", "busy"), ("desk", "answered")]


def test_fallback_message_is_played_when_destination_busy(app: Stack) -> None:
    since = utc_now_iso()
    app.sipp(NUMBERS["message"], hold_ms=8000)
    call = app.wait_call(since, NUMBERS["message"])
    assert call["disposition"] == "busy"
    assert call["answered_at"] is not None
    events = [(e["kind"], (e["data"] or {}).get("sound")) for e in call["events"]]
    assert ("playback_finished", "vm-nobodyavail") in events
    assert call["hangup_side"] == "destination"


def test_caller_hangs_up_while_destination_rings(app: Stack) -> None:
    since = utc_now_iso()
    app.sipp(NUMBERS["slow"], hold_ms=3500)
    call = app.wait_call(since, NUMBERS["slow"])
    assert call["disposition"] == "abandoned"
    assert call["hangup_side"] == "caller"
    assert call["bridged_at"] is None
    outbound = [leg for leg in call["legs"] if leg["role"] == "outbound"]
    assert outbound and outbound[0]["ended_at"], "the ringing destination leg was cancelled"
    assert "Up" not in app.asterisk_cli("core show channels"), "no channel left behind"


def test_caller_cancels_before_answer(app: Stack) -> None:
    since = utc_now_iso()
    app.sipp(NUMBERS["noanswer"], scenario="uac_cancel.xml")
    call = app.wait_call(since, NUMBERS["noanswer"])
    assert call["disposition"] == "abandoned"
    assert call["answered_at"] is None and call["hangup_side"] == "caller"


def test_calls_from_unknown_addresses_are_refused_by_sip(app: Stack) -> None:
    since = utc_now_iso()
    result = app.sipp(NUMBERS["plain"], source_ip="127.0.0.2", hold_ms=500, timeout=10)
    assert result.returncode != 0
    time.sleep(1)
    assert app.calls_since(since, NUMBERS["plain"]) == [], "no trunk, no call: nothing reaches the app"


def test_many_concurrent_calls_each_get_a_complete_record(app: Stack) -> None:
    since = utc_now_iso()
    callers = [app.sipp(NUMBERS["plain"], hold_ms=2000, caller=f"1555777{i:04d}", background=True) for i in range(8)]
    assert all(c.wait(40) == 0 for c in callers)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        calls = app.calls_since(since, NUMBERS["plain"])
        if len(calls) == 8 and all(c["ended_at"] for c in calls):
            break
        time.sleep(0.3)
    assert len(calls) == 8
    assert {c["disposition"] for c in calls} == {"completed"}
    assert len({c["caller_number"] for c in calls}) == 8


def test_metrics_reflect_real_calls(app: Stack) -> None:
    import urllib.request

    def scrape() -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.admin_port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            body = resp.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in body.splitlines() if line and not line.startswith("#")}

    before = scrape()
    since = utc_now_iso()
    assert app.sipp(NUMBERS["plain"], hold_ms=500).returncode == 0
    app.wait_call(since, NUMBERS["plain"])
    after = scrape()
    completed = 'ringpool_calls_total{disposition="completed"}'
    assert after[completed] == before.get(completed, 0) + 1
    assert after["ringpool_decision_latency_seconds_count"] >= before["ringpool_decision_latency_seconds_count"] + 1
    assert after["ringpool_ari_connected"] == 1 and after["ringpool_database_ok"] == 1
