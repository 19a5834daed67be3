"""`ringpool test-call NUMBER`: place a call into the running Ringpool like a trunk caller, and show its record.

The pjsua2 softphone (default) can play a WAV and send DTMF; SIPp places a signaling-only call. The call comes
from 127.0.0.1, so the configuration needs a trunk that matches it (the sample's `local` trunk does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ari_app.admin.client import api_request
from ari_app.config import Settings
from ari_app.testcall import SoftphoneError, run_softphone
from storage.db import utcnow

REPO = Path(__file__).resolve().parents[2]
RECORD_WAIT = 20.0  # seconds for the record to be finalised after the caller hangs up


def add_test_call_parser(sub: Any) -> None:
    p = sub.add_parser("test-call", help="place a test call into the running Ringpool and show its record")
    p.add_argument("number", help="the tracking number to call")
    p.add_argument("--caller", default="13126247788", help="the caller number presented (13126247788)")
    p.add_argument("--caller-name", default="Test Caller")
    p.add_argument("--wav", type=Path, help="play this WAV (8 or 16 kHz mono) once answered")
    p.add_argument("--dtmf", help="send these digits (RFC 4733) after --dtmf-delay seconds")
    p.add_argument("--dtmf-delay", type=float, default=2.0)
    p.add_argument("--hold", type=float, default=6.0, help="seconds to stay on the call once answered (6)")
    p.add_argument("--with", dest="tool", choices=["softphone", "sipp"], default="softphone",
                   help="softphone (pjsua2; WAV and DTMF) or sipp (signaling only)")


def _sipp(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    caller = args.caller
    command = ["sipp", f"127.0.0.1:{settings.asterisk.sip_port}", "-sf", str(REPO / "tests" / "sipp" / "uac_call.xml"),
               "-s", args.number, "-m", "1", "-d", str(int(args.hold * 1000)), "-i", "127.0.0.1",
               "-timeout", f"{int(args.hold) + 40}s", "-timeout_error", "-nostdin"]
    for key, value in {"caller": caller, "caller_name": args.caller_name,
                       "pai": f'"{args.caller_name}" <sip:{caller}@127.0.0.1>', "privacy": "none",
                       "diversion": f"<sip:{caller}@127.0.0.1>", "charge": f"<sip:{caller}@127.0.0.1>"}.items():
        command += ["-key", key, value]
    done = subprocess.run(command, capture_output=True, timeout=args.hold + 60, check=False)
    return {"tool": "sipp", "exit": done.returncode, "completed": done.returncode == 0}


def _softphone(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"call": f"sip:{args.number}@127.0.0.1:{settings.asterisk.sip_port}",
                               "caller_id": args.caller, "caller_name": args.caller_name, "hold": args.hold,
                               "timeout": args.hold + 40}
    if args.wav:
        options |= {"play": str(args.wav.resolve()), "play_loop": True}
    if args.dtmf:
        options |= {"dtmf": args.dtmf, "dtmf_delay": args.dtmf_delay}
    result = asyncio.run(run_softphone(**options))
    return {"tool": "softphone", **{k: result.get(k) for k in (
        "answered", "final_status", "final_reason", "connect_duration", "hangup_by", "dtmf_sent")}}


def _record(settings: Settings, caller: str, since: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + RECORD_WAIT
    while time.monotonic() < deadline:
        status, page = api_request(settings, "GET", f"/api/v1/calls?number={caller}&since={since}&limit=1")
        if status != 200:
            raise OSError(f"GET /api/v1/calls answered {status}: {page}")
        calls = page["calls"]
        if calls and calls[0]["ended_at"]:
            status, call = api_request(settings, "GET", f"/api/v1/calls/{calls[0]['id']}")
            return call if status == 200 else None
        time.sleep(0.5)
    return None


def test_call_command(settings: Settings, args: argparse.Namespace) -> int:
    since = utcnow()
    time.sleep(0.01)
    try:
        placed = _sipp(settings, args) if args.tool == "sipp" else _softphone(settings, args)
    except (SoftphoneError, OSError, subprocess.SubprocessError) as exc:
        print(f"ringpool test-call: the call could not be placed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"call": placed}, indent=2))
    try:
        record = _record(settings, args.caller, since)
    except OSError as exc:  # nobody listens (URLError is an OSError), or the API refused
        print(f"ringpool test-call: cannot read the record from the admin API: {exc}", file=sys.stderr)
        return 1
    if record is None:
        print(f"ringpool test-call: no finished record from {args.caller} after {RECORD_WAIT:.0f} s", file=sys.stderr)
        return 1
    keys = ("id", "disposition", "decision", "decision_reasons", "campaign", "destination", "score1", "score1_color",
            "spam", "attribution_method", "attribution_confidence", "source", "talk_seconds", "dtmf_digits",
            "voice_detected", "fax_detected", "modem_detected")
    print(json.dumps({"record": {k: record.get(k) for k in keys},
                      "events": [e["kind"] for e in record.get("events", [])]}, indent=2))
    return 0
