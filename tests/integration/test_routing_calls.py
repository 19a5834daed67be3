"""Scenario tests for issue 6 through the bundled Asterisk: IVR flows answered by DTMF, business hours, HTTP
decisions, simultaneous ring, buyers' bids, the quality-ordered queue, recording and payouts.

Each test describes a call and checks the record the app wrote (legs, events, IVR answers, bids, quality,
payout) through the admin API. The stack has its own configuration (ROUTING_CONFIG) and flows.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import wave
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

from ari_app.testcall import run_softphone
from tests.integration.conftest import (ADMIN_TOKEN, ARI_PASSWORD, SIPP_DIR, STACK_HEADER, Stack, free_port,
                                        free_udp_tcp_port, rtp_block, running_stack, utc_now_iso)

pytestmark = pytest.mark.integration

NUMBERS = {
    "menu": "15550006001", "hours": "15550006002", "decide": "15550006003", "ringall": "15550006004",
    "auction": "15550006005", "queue": "15550006006", "recorded": "15550006007", "paid": "15550006008",
    "whisper": "15550006009", "c2c": "15550006010", "callback": "15550006011",
}

ROUTING_CONFIG = STACK_HEADER + """trunks:
  - name: carrier
    match: [127.0.0.1/32]
    contact: sip:127.0.0.1:{uas_visitor}   # click-to-call and callbacks reach "visitors" here
schedules:
  always: {{timezone: UTC, mon-sun: 24h}}
  never: {{timezone: UTC, mon-sun: closed}}
flows: {flows}
destinations:
  - {{name: sales, host: 127.0.0.1, port: {uas_answer}}}
  - {{name: support, host: 127.0.0.1, port: {uas_answer}, user: support}}
  - {{name: operator, host: 127.0.0.1, port: {uas_answer}, user: operator}}
  - {{name: after-hours, host: 127.0.0.1, port: {uas_answer}, user: night}}
  - {{name: gold-desk, host: 127.0.0.1, port: {uas_answer}, user: gold}}
  - {{name: silent, host: 127.0.0.1, port: {uas_noanswer}}}
  - {{name: agent, host: 127.0.0.1, port: {uas_agent}, caps: {{concurrent: 1}}}}
  - {{name: phone, host: 127.0.0.1, port: {softphone}}}
  - {{name: long-agent, host: 127.0.0.1, port: {uas_long}, caps: {{concurrent: 1}}}}
buyers:
  - {{name: high, destinations: [silent], campaigns: [auction], url: "http://127.0.0.1:{bidder}/bid", timeout: 1}}
  - {{name: low, destinations: [sales], campaigns: [auction], bid: 12}}
  - {{name: picky, destinations: [sales], campaigns: [auction], bid: 50, min_quality: 99}}
campaigns:
  - {{name: menu, destination: operator, flow: menu, numbers: ["{menu}"]}}
  - {{name: hours, destination: operator, flow: hours, numbers: ["{hours}"]}}
  - {{name: decide, destination: operator, flow: decide, numbers: ["{decide}"]}}
  - name: ringall
    destination: sales
    routing: {{strategy: simultaneous, destinations: [silent, sales], ring_timeout: 10}}
    numbers: ["{ringall}"]
  - name: auction
    destination: operator
    routing: {{strategy: bids, destinations: [operator], ring_timeout: 3}}
    payout: {{revenue: 5, base: 2}}
    numbers: ["{auction}"]
  - name: queue
    destination: agent
    queue: {{max_wait: 60, announce_every: 15}}
    quality: {{target_regions: [IL], number_types: {{toll_free: 30}}}}
    numbers: ["{queue}"]
  - name: recorded
    destination: sales
    recording: {{enabled: true, min_seconds: 1, disclosure: "This call is recorded."}}
    numbers: ["{recorded}"]
  - name: paid
    destination: sales
    payout:
      revenue: 20
      base: 5
      qualify: {{talk_seconds: 2}}
      bonuses: [{{amount: 3, when: {{talk_seconds: 3}}}}]
      repeat: {{window: 86400, credit: 0}}
    numbers: ["{paid}"]
  - name: whisper
    destination: phone
    routing: {{whisper: "Call from {{campaign}}", caller_id: "mask:312XXXXXXX", ring_timeout: 15}}
    numbers: ["{whisper}"]
  - name: c2c
    destination: sales
    click_to_call: {{trunk: carrier, per_number_hour: 2}}
    numbers: ["{c2c}"]
  - name: callback
    destination: long-agent
    queue: {{max_wait: 5, announce_every: 0, fallback: callback}}
    click_to_call: {{trunk: carrier}}
    numbers: ["{callback}"]
screening:
  enabled: false
"""

FLOWS = {
    "menu": """
name: menu
start: main
nodes:
  main:
    menu:
      prompt: [{sound: beep}]
      keys: {"1": sales, "2": support}
      timeout: 2
      retries: 4
      invalid: [{sound: beep}]
      save: department
    default: operator
  sales: {route: {destinations: [sales]}}
  support: {route: {destinations: [support]}}
  operator: {route: default}
""",
    "hours": """
name: hours
start: open-check
nodes:
  open-check:
    condition: {hours: never}
    then: open
    else: closed
  open: {route: default}
  closed: {route: {destinations: [after-hours]}}
""",
    "decide": """
name: decide
start: ask
nodes:
  ask:
    http: {url: "http://127.0.0.1:%(bidder)d/decide", timeout: 1.5}
    branches: {gold: gold, silver: silver}
    fallback: silver
  gold: {route: {destinations: [gold-desk]}}
  silver: {route: default}
""",
}


class Outside:
    """The buyer's bid URL and the decision URL: a real HTTP server on the configured port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        if request.path == "/bid":
            return web.json_response({"bid": 20, "destination": "silent"})
        return web.json_response({"branch": "gold", "variables": {"tier": "gold"}})

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bid", self._handle)
        app.router.add_post("/decide", self._handle)
        self.runner = web.AppRunner(app)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result(10)
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def rstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("routing")
    tcp = socket.SOCK_STREAM
    ports = {"sip": free_udp_tcp_port(), "http": free_port(tcp), "admin": free_port(tcp), "uas_answer": free_port(),
             "uas_noanswer": free_port(), "uas_agent": free_port(), "softphone": free_udp_tcp_port(),
             "bidder": free_port(tcp), "uas_visitor": free_port(), "uas_long": free_port()}
    flows = tmp / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / f"{name}.yaml").write_text(text % {"bidder": ports["bidder"]} if "%(" in text else text,
                                             encoding="utf-8")
    rtp = rtp_block()
    config = tmp / "ringpool.yaml"
    config.write_text(ROUTING_CONFIG.format(state=tmp / "state", flows=flows, rtp_start=rtp, rtp_end=rtp + 99,
                                            ari_password=ARI_PASSWORD, token=ADMIN_TOKEN,
                                            **ports, **NUMBERS))
    outside = Outside(ports["bidder"])
    outside.start()
    try:
        with running_stack(tmp, config, ports, [
                (ports["uas_answer"], ["-sn", "uas"]),
                (ports["uas_noanswer"], ["-sf", str(SIPP_DIR / "uas_noanswer.xml")]),
                (ports["uas_agent"], ["-sf", str(SIPP_DIR / "uas_answer_bye.xml"), "-d", "4000"]),
                (ports["uas_long"], ["-sf", str(SIPP_DIR / "uas_answer_bye.xml"), "-d", "9000"]),
                (ports["uas_visitor"], ["-sf", str(SIPP_DIR / "uas_answer_bye.xml"), "-d", "4000"])]) as stack:
            stack.outside = outside  # type: ignore[attr-defined]
            yield stack
    finally:
        outside.stop()


def call(stack: Stack, number: str, *, caller: str, hold: float = 3, dtmf: str | None = None,
         **options: Any) -> dict[str, Any]:
    """A pjsua2 call (it can send DTMF and play audio); returns the softphone's result."""
    args = {"call": f"sip:{number}@127.0.0.1:{stack.sip_port}", "caller_id": caller, "hold": hold,
            "timeout": hold + 30} | options
    if dtmf:
        args |= {"dtmf": dtmf, "dtmf_delay": 0.5}
    return asyncio.run(run_softphone(**args))


def test_menu_answered_by_dtmf_routes_to_the_chosen_destination(rstack: Stack) -> None:
    since = utc_now_iso()
    call(rstack, NUMBERS["menu"], caller="13125550101", dtmf="2", hold=3)
    rec = rstack.wait_call(since, "13125550101")
    assert rec["flow"] == "menu" and rec["destination"] == "support" and rec["disposition"] == "completed", rec
    assert rec["ivr_answers"]["department"] == "2" and rec["ivr_path"] == ["main", "support"]
    kinds = [e["kind"] for e in rec["events"]]
    assert "ivr_outcome" in kinds and kinds.index("ivr_outcome") < kinds.index("bridged")


def test_four_invalid_keys_reach_the_default(rstack: Stack) -> None:
    since = utc_now_iso()
    call(rstack, NUMBERS["menu"], caller="13125550102", dtmf="9999", hold=3)
    rec = rstack.wait_call(since, "13125550102")
    invalid = [e for e in rec["events"] if e["kind"] == "invalid"]
    assert len(invalid) == 4, [e["kind"] for e in rec["events"]]
    assert rec["ivr_path"] == ["main", "operator"] and rec["destination"] == "operator", rec


def test_after_hours_call_takes_the_after_hours_branch(rstack: Stack) -> None:
    since = utc_now_iso()
    rstack.sipp(NUMBERS["hours"], caller="13125550103", hold_ms=2000)
    rec = rstack.wait_call(since, "13125550103")
    assert rec["ivr_path"] == ["open-check", "closed"] and rec["destination"] == "after-hours", rec
    condition = next(e for e in rec["events"] if e["kind"] == "condition")
    assert condition["data"]["result"] is False, condition


def test_http_decision_picks_the_branch_without_the_callers_number(rstack: Stack) -> None:
    since = utc_now_iso()
    rstack.sipp(NUMBERS["decide"], caller="13125550104", hold_ms=2000)
    rec = rstack.wait_call(since, "13125550104")
    assert rec["ivr_path"] == ["ask", "gold"] and rec["destination"] == "gold-desk", rec
    answer = next(e for e in rec["events"] if e["kind"] == "http")
    assert answer["data"]["answer"]["branch"] == "gold", answer
    path, payload = [r for r in rstack.outside.requests if r[0] == "/decide"][-1]  # type: ignore[attr-defined]
    assert "13125550104" not in json.dumps(payload) and payload["campaign"] == "decide"


def test_simultaneous_ring_connects_the_first_answerer_and_drops_the_others(rstack: Stack) -> None:
    since = utc_now_iso()
    rstack.sipp(NUMBERS["ringall"], caller="13125550105", hold_ms=2000)
    rec = rstack.wait_call(since, "13125550105")
    outbound = {leg["destination"]: leg for leg in rec["legs"] if leg["role"] == "outbound"}
    assert set(outbound) == {"silent", "sales"} and rec["route_strategy"] == "simultaneous", rec
    assert outbound["sales"]["dial_status"] == "answered" and rec["disposition"] == "completed"
    assert outbound["silent"]["dial_status"] == "answered_elsewhere"
    assert outbound["silent"]["hangup_cause"] == 26, outbound["silent"]
    answered = parse(outbound["sales"]["answered_at"])
    assert parse(outbound["silent"]["ended_at"]) - answered < 1.5  # hung up at once, not at the ring timeout


def test_highest_eligible_bid_wins_and_the_next_bidder_gets_it_on_no_answer(rstack: Stack) -> None:
    since = utc_now_iso()
    rstack.sipp(NUMBERS["auction"], caller="13125550106", hold_ms=2000)
    rec = rstack.wait_call(since, "13125550106")
    bids = {b["buyer"]: b for b in rec["bids"]}
    assert bids["high"]["amount"] == 20 and bids["high"]["source"] == "realtime", bids
    assert not bids["picky"]["eligible"] and "quality" in bids["picky"]["reason"], bids
    outbound = [leg for leg in rec["legs"] if leg["role"] == "outbound"]
    assert [(leg["destination"], leg["buyer"], leg["dial_status"]) for leg in outbound] == [
        ("silent", "high", "no_answer"), ("sales", "low", "answered")], outbound
    assert (rec["buyer"], rec["winning_bid"], rec["revenue"], rec["payout"]) == ("low", 12, 12, 2), rec
    bid_request = [r for r in rstack.outside.requests if r[0] == "/bid"][-1][1]  # type: ignore[attr-defined]
    assert "13125550106" not in json.dumps(bid_request)


def test_three_callers_queue_for_one_busy_agent_and_are_served_by_quality(rstack: Stack) -> None:
    since = utc_now_iso()
    first = rstack.sipp(NUMBERS["queue"], caller="13125550200", scenario="uac_call_remote_bye.xml", timeout=60,
                        background=True)
    time.sleep(1.5)  # the agent is taken: the next callers wait
    callers = ["12125550201", "13125550202", "18005550203"]  # out of region (NY), in region (IL), toll-free
    waiting = []
    for caller in callers:
        waiting.append(rstack.sipp(NUMBERS["queue"], caller=caller, scenario="uac_call_remote_bye.xml",
                                   timeout=60, background=True))
        time.sleep(0.7)
    for process in [first, *waiting]:
        process.wait(90)
    records = {c: rstack.wait_call(since, c, timeout=30) for c in callers}
    for rec in records.values():
        assert rec["disposition"] == "completed" and rec["queued_at"], rec
    order = sorted(callers, key=lambda c: records[c]["bridged_at"])
    assert order == ["18005550203", "13125550202", "12125550201"], {c: (records[c]["quality"],
                                                                       records[c]["bridged_at"]) for c in callers}
    assert records["18005550203"]["quality"] > records["13125550202"]["quality"] > records["12125550201"]["quality"]


def test_recorded_call_has_a_playable_file(rstack: Stack, tmp_path: Path) -> None:
    since = utc_now_iso()
    voice = tmp_path / "voice.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(voice), "synth", "4", "sine", "440",
                    "vol", "0.5"], check=True)
    call(rstack, NUMBERS["recorded"], caller="13125550107", hold=6, play=str(voice))
    rec = rstack.wait_call(since, "13125550107", until=lambda c: bool(c["ended_at"]) and c["recording"] is not None)
    path = rstack.tmp / "state" / rec["recording"]
    with wave.open(str(path)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    assert seconds > 3 and rec["recording_seconds"] == pytest.approx(seconds, abs=0.1), rec
    assert max(abs(int.from_bytes(frames[i:i + 2], "little", signed=True)) for i in range(0, len(frames), 2)) > 1000
    assert any(e["kind"] == "recording_disclosed" for e in rec["events"])


def test_payouts_follow_the_rules(rstack: Stack) -> None:
    since = utc_now_iso()
    rstack.sipp(NUMBERS["paid"], caller="13125550108", hold_ms=4500)
    first = rstack.wait_call(since, "13125550108", until=lambda c: c["payout"] is not None)
    assert first["talk_seconds"] >= 3 and (first["revenue"], first["payout"], first["margin"]) == (20, 8, 12), first
    items = [i["item"] for i in first["payout_details"]["items"]]
    assert "base" in items and "bonus" in items
    rstack.sipp(NUMBERS["paid"], caller="13125550108", hold_ms=4500)  # the same caller again: a repeat call
    calls = rstack.calls_since(since, "13125550108")
    deadline = time.monotonic() + 20
    while (len(calls) < 2 or any(c["payout"] is None for c in calls)) and time.monotonic() < deadline:
        time.sleep(0.3)
        calls = rstack.calls_since(since, "13125550108")
    repeat = max(calls, key=lambda c: c["arrived_at"])
    assert (repeat["revenue"], repeat["payout"]) == (0, 0), repeat


def test_whisper_and_masked_caller_id_reach_the_agent(rstack: Stack, tmp_path: Path) -> None:
    since = utc_now_iso()
    heard = tmp_path / "agent.wav"

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        agent = asyncio.create_task(run_softphone(answer=True, port=rstack.ports["softphone"], record=str(heard),
                                                  wait=30, hold=6))
        await asyncio.sleep(1.0)
        caller = await run_softphone(call=f"sip:{NUMBERS['whisper']}@127.0.0.1:{rstack.sip_port}",
                                     caller_id="2125550109", hold=8, timeout=30)
        return await agent, caller

    agent, _caller = asyncio.run(both())
    rec = rstack.wait_call(since, "2125550109")
    assert rec["caller_id_presented"] == "3125550109", rec
    assert "3125550109" in agent["incoming"]["headers"].get("From", ""), agent["incoming"]
    assert any(e["kind"] == "whisper" for e in rec["events"]) and rec["disposition"] == "completed"


def wait_for(stack: Stack, call_id: str, until: Any = lambda c: bool(c["ended_at"]), timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, rec = stack.api(f"/api/v1/calls/{call_id}")
        if status == 200 and until(rec):
            return rec
        time.sleep(0.3)
    raise AssertionError(f"call {call_id} not done: {stack.api(f'/api/v1/calls/{call_id}')}")


def click_to_call(stack: Stack, body: dict[str, Any]) -> tuple[int, Any]:
    return stack.post("/api/v1/click-to-call", body, token=ADMIN_TOKEN)


def test_click_to_call_calls_the_visitor_then_the_business(rstack: Stack) -> None:
    status, started = click_to_call(rstack, {"campaign": "c2c", "number": "+1 312 555 0110"})
    assert status == 202, started
    rec = wait_for(rstack, started["call_id"])
    assert (rec["direction"], rec["caller_number"], rec["disposition"]) == ("click_to_call", "13125550110",
                                                                           "completed"), rec
    legs = {leg["role"]: leg for leg in rec["legs"]}
    assert legs["inbound"]["answered_at"] <= legs["outbound"]["answered_at"], legs  # the visitor first
    assert legs["outbound"]["destination"] == "sales" and rec["bridged_at"]
    # only numbers the campaign allows, and only so often
    assert click_to_call(rstack, {"campaign": "c2c", "number": "+44 20 7946 0000"})[0] == 400
    assert click_to_call(rstack, {"campaign": "menu", "number": "+13125550110"})[0] == 400
    assert click_to_call(rstack, {"campaign": "c2c", "number": "+13125550110"})[0] == 202
    status, refused = click_to_call(rstack, {"campaign": "c2c", "number": "+13125550110"})
    assert status == 429 and "last hour" in refused["error"], refused


def test_caller_who_waits_too_long_is_called_back_when_the_agent_frees_up(rstack: Stack) -> None:
    since = utc_now_iso()
    busy = rstack.sipp(NUMBERS["callback"], caller="13125550120", scenario="uac_call_remote_bye.xml", timeout=40,
                       background=True)
    time.sleep(1.5)
    rstack.sipp(NUMBERS["callback"], caller="13125550121", scenario="uac_call_remote_bye.xml", timeout=40)
    first = rstack.wait_call(since, "13125550121")
    assert first["disposition"] == "callback" and first["queued_at"], first
    busy.wait(40)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        calls = [c for c in rstack.calls_since(since, "13125550121") if c["direction"] == "callback"]
        if calls and calls[0]["ended_at"]:
            break
        time.sleep(0.5)
    assert calls, rstack.calls_since(since, "13125550121")
    back = calls[0]
    assert back["disposition"] == "completed" and back["destination"] == "long-agent" and back["bridged_at"], back


def parse(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_campaign_made_through_the_api_takes_calls_and_calls_in_progress_go_on(rstack: Stack) -> None:
    since = utc_now_iso()
    ongoing = rstack.sipp(NUMBERS["paid"], caller="13125550130", hold_ms=6000, background=True)
    time.sleep(2.0)  # bridged when the configuration changes
    status, body = rstack.request("PUT", "/api/v1/config/campaigns/live-added", {
        "destination": "gold-desk", "numbers": ["+1 555 000 6099"]})
    assert status == 200 and body["applied"]["campaigns"] >= 1, body
    status, _ = rstack.request("POST", "/api/v1/config/reload")
    assert status == 200
    assert ongoing.wait(30) == 0
    kept = rstack.wait_call(since, "13125550130")
    assert kept["disposition"] == "completed" and kept["talk_seconds"] >= 5, kept
    rstack.sipp("15550006099", caller="13125550131", hold_ms=1500)
    added = rstack.wait_call(since, "13125550131")
    assert (added["campaign"], added["destination"], added["disposition"]) == ("live-added", "gold-desk", "completed")
    assert rstack.request("DELETE", "/api/v1/config/campaigns/live-added")[0] == 200
    rstack.sipp("15550006099", caller="13125550132", hold_ms=1000)
    gone = rstack.wait_call(since, "13125550132")
    assert gone["disposition"] == "rejected", gone  # its number is no longer a tracking number
