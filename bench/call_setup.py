#!/usr/bin/env python3
"""Call set-up benchmark: SIPp load through the Ringpool ARI app vs a plain dialplan on the same Asterisk.

What it does (everything in a temporary folder, on free ports, cleaned up on every path):

1. writes a bench configuration (one trunk matching 127.0.0.1, one SIP destination = a SIPp UAS, one
   campaign without greeting, ring_timeout 10, one tracking number) and renders the bundled Asterisk's
   configuration from it, plus a baseline endpoint ``bench-baseline`` (identified by source 127.0.0.2) whose
   context ``ringpool-baseline`` simply ``Dial()``s the same destination: no Stasis;
2. starts the bundled Asterisk, then the app as its own process (``python -m ari_app run`` with
   ``asterisk.bundled: false`` pointed at that Asterisk), so the app never shares a CPU-bound loop with the
   driver; then a SIPp UAS that rings and answers at once;
3. for each rate: SIPp UAC from 127.0.0.1 (through the app), then the same load from 127.0.0.2 (baseline);
4. reports per run: calls attempted/completed/failed (SIPp's final statistics), DB dispositions, set-up time
   (INVITE -> 200 OK) and post-dial delay (INVITE -> 180) p50/p99 per call, the app's pre-answer decision
   latency p50/p99 (``calls.decision_latency_ms``), CPU seconds of Asterisk and the app, warnings/errors
   logged by the app and by Asterisk; and app/baseline ratios.

Usage: .venv/bin/python bench/call_setup.py [--duration 30] [--rates 10,50] [--hold-ms 1000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import (AppStack, Ports, SippRun, app_config_header, can_bind, fmt, log, other_cpu, percentile, ratio,  # noqa: E402
                    run_details, run_in_temp_folder, sipp_version, utc_text)

SIPP_DIR = REPO / "bench" / "sipp"
TRACKING_NUMBER = "15550100001"
DESTINATION = "bench-desk"
APP_SOURCE = "127.0.0.1"  # matches the configured trunk: calls enter ringpool-inbound -> Stasis
BASELINE_SOURCE = "127.0.0.2"  # matches bench-baseline: calls enter ringpool-baseline -> Dial


# --- statistics ----------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class RunResult(SippRun):
    rate: int
    path: str  # "app" or "baseline"
    db_calls: int | None = None
    db_dispositions: dict[str, int] = field(default_factory=dict)
    db_open: int | None = None
    decision_ms: list[float] = field(default_factory=list)


def read_db(database: Path, caller: str, since: float, until: float, result: RunResult) -> None:
    """This run's calls: its own caller number, arrived within the run's time window."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT disposition, decision_latency_ms, ended_at FROM calls "
            "WHERE caller_number = ? AND arrived_at >= ? AND arrived_at <= ?",
            (caller, utc_text(since - 1), utc_text(until + 1))).fetchall()
    finally:
        conn.close()
    result.db_calls = len(rows)
    result.db_dispositions = dict(Counter(r[0] or "(open)" for r in rows))
    result.db_open = sum(1 for r in rows if r[2] is None)
    result.decision_ms = [r[1] for r in rows if r[1] is not None]


def db_open_count(database: Path, caller: str) -> int:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM calls WHERE caller_number = ? AND ended_at IS NULL",
                            (caller,)).fetchone()[0]
    finally:
        conn.close()


# --- the bench -----------------------------------------------------------------------------------------


@dataclass
class Layout:
    tmp: Path
    config: Path
    sip_port: int
    http_port: int
    admin_port: int
    uas_port: int
    uac_port: int
    uac2_port: int
    uas_media: int
    uac_media: int
    rtp_start: int
    rtp_end: int
    ari_password: str
    admin_token: str


def write_config(tmp: Path, ports: Ports, rtp_ports: int) -> Layout:
    low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    layout = Layout(
        tmp=tmp, config=tmp / "ringpool-bench.yaml",
        sip_port=ports.one(udp=True, tcp=True), http_port=ports.one(udp=False),
        admin_port=ports.one(udp=False), uas_port=ports.one(), uac_port=ports.one(),
        uac2_port=ports.one(host=BASELINE_SOURCE),
        # SIPp binds its media port and the next three (RTP/RTCP audio and video).
        uas_media=ports.block(4, 16000, 20000, 10), uac_media=ports.block(4, 16000, 20000, 10),
        # Asterisk's RTP range: as wide as the sample configuration's (2 ports per call leg), but not the
        # usual 20000-20999 another Ringpool on this machine may be using.
        rtp_start=ports.block(rtp_ports, 21000, min(low_ephemeral, 32768), 1000), rtp_end=0,
        ari_password=secrets.token_urlsafe(18), admin_token=secrets.token_urlsafe(24),
    )
    layout.rtp_end = layout.rtp_start + rtp_ports - 1
    layout.config.write_text(app_config_header("bench/call_setup.py", layout) + f"""trunks:
  - name: bench
    match: [{APP_SOURCE}]
destinations:
  - name: {DESTINATION}
    host: 127.0.0.1
    port: {layout.uas_port}
campaigns:
  - name: bench
    title: Call set-up benchmark (no greeting)
    destination: {DESTINATION}
    ring_timeout: 10
    numbers: ["+{TRACKING_NUMBER}"]
screening:
  enabled: false          # one caller number places every call: screening would (rightly) refuse the burst
""")
    return layout


BASELINE_PJSIP = f"""
; --- bench/call_setup.py: baseline caller, a plain dialplan with no Stasis ---
[bench-baseline]
type = endpoint
context = ringpool-baseline
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes
force_rport = yes
dtmf_mode = rfc4733

[bench-baseline-identify]
type = identify
endpoint = bench-baseline
match = {BASELINE_SOURCE}
"""

BASELINE_EXTENSIONS = f"""
; --- bench/call_setup.py: the same destination, dialled by plain dialplan (baseline, no Stasis) ---
[ringpool-baseline]
exten => _[+0-9*#s]!,1,Dial(PJSIP/dest-{DESTINATION},10)
 same => n,Hangup()
"""


class Bench(AppStack):
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.ports = Ports()
        self.layout = write_config(tmp, self.ports, args.rtp_ports)
        super().__init__(tmp, self.layout.config, http_port=self.layout.http_port, admin_port=self.layout.admin_port,
                         ari_password=self.layout.ari_password, uas_port=self.layout.uas_port,
                         uas_media=self.layout.uas_media)
        for name in ("uac.xml", "uas.xml"):
            shutil.copy(SIPP_DIR / name, tmp / name)

    async def start(self) -> None:  # type: ignore[override]
        await super().start(uas_scenario=self.tmp / "uas.xml", extra_pjsip=BASELINE_PJSIP,
                            extra_extensions=BASELINE_EXTENSIONS,
                            endpoints=("trunk-bench", "bench-baseline", f"dest-{DESTINATION}"),
                            sip_port=self.layout.sip_port, rtp=(self.layout.rtp_start, self.layout.rtp_end))

    async def run(self, rate: int, path: str) -> RunResult:
        result = RunResult(rate=rate, path=path)
        source = APP_SOURCE if path == "app" else BASELINE_SOURCE
        local_port = self.layout.uac_port if path == "app" else self.layout.uac2_port
        caller = f"77{rate:04d}{1 if path == 'app' else 2}"
        calls = rate * self.args.duration
        run_dir = self.tmp / f"run-{rate}cps-{path}"
        run_dir.mkdir()
        command = [
            "sipp", f"127.0.0.1:{self.layout.sip_port}", "-sf", str(self.tmp / "uac.xml"),
            "-s", TRACKING_NUMBER, "-key", "caller", caller, "-i", source, "-p", str(local_port),
            "-mp", str(self.layout.uac_media), "-r", str(rate), "-m", str(calls), "-l", str(rate * 40),
            "-d", str(self.args.hold_ms), "-recv_timeout", "30000", "-timeout", f"{self.args.duration + 90}s",
            "-nostdin", "-trace_stat", "-stf", "stats.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
            "-trace_err", "-trace_logs", "-trace_screen",
        ]

        async def settled(started: float, ended: float) -> None:
            if path == "app":
                deadline = time.monotonic() + 30
                while db_open_count(self.settings.database, caller) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                read_db(self.settings.database, caller, started, ended, result)

        log(f"{rate} cps via {path}: {calls} calls from {source} (caller {caller})")
        await self.drive(result, command, run_dir, f"{rate} cps {path}", settled)
        return result


# --- report --------------------------------------------------------------------------------------------


def report(results: list[RunResult], args: argparse.Namespace, versions: dict[str, str]) -> str:
    out: list[str] = []
    out.append(f"Ringpool call set-up benchmark: {args.duration} s per run, hold {args.hold_ms} ms, "
               f"{os.cpu_count()} CPUs, {versions.get('asterisk', '?')}, SIPp {versions.get('sipp', '?')}")
    out.append("attempt/complete/failed = SIPp's final counters; db ok = calls the app recorded as completed "
               "(caller bridged to the destination); ok% = complete/attempt.")
    out.append("cps = SIPp's average call rate over its whole run; CPU columns = CPU seconds used during the run; "
               "other = CPU seconds used by everything else on the machine (UAS, driver, other work).")
    out.append("set-up = INVITE sent -> 200 OK received; PDD = INVITE -> 180 Ringing; decision = StasisStart "
               "timestamp -> app's first REST command (calls.decision_latency_ms). Times in ms.")
    out.append("")
    head = (f"{'rate':>4} {'path':<8} {'attempt':>7} {'complete':>8} {'failed':>6} {'db ok':>5} {'ok%':>6} {'cps':>5} "
            f"{'setup50':>8} {'setup99':>8} {'pdd50':>7} {'pdd99':>7} {'dec50':>6} {'dec99':>7} "
            f"{'ast cpu':>7} {'app cpu':>7} {'uac cpu':>7} {'other':>6}")
    out.append(head)
    out.append("-" * len(head))
    for r in results:
        ok = 100.0 * r.completed / r.attempted if r.attempted else None
        out.append(
            f"{r.rate:>4} {r.path:<8} {r.attempted:>7} {r.completed:>8} {r.failed:>6} "
            f"{r.db_dispositions.get('completed', 0) if r.path == 'app' else '':>5} {fmt(ok):>6} "
            f"{fmt(r.achieved_cps):>5} {fmt(percentile(r.setup_ms, 50), 2):>8} {fmt(percentile(r.setup_ms, 99), 2):>8} "
            f"{fmt(percentile(r.ring_ms, 50), 2):>7} {fmt(percentile(r.ring_ms, 99), 2):>7} "
            f"{fmt(percentile(r.decision_ms, 50), 2) if r.path == 'app' else '':>6} "
            f"{fmt(percentile(r.decision_ms, 99), 2) if r.path == 'app' else '':>7} "
            f"{fmt(r.cpu.get('asterisk')):>7} {fmt(r.cpu.get('app')) if r.path == 'app' else fmt(r.cpu.get('app'), 2):>7} "
            f"{fmt(r.cpu.get('sipp_uac')):>7} {fmt(other_cpu(r)):>6}")
    out.append("")
    out.append("Ratios app / baseline (same rate):")
    rhead = (f"{'rate':>4} {'completed-rate':>14} {'setup p50':>10} {'setup p99':>10} {'PDD p50':>8} "
             f"{'Asterisk CPU/call':>17} {'Ast+app CPU/call':>16}")
    out.append(rhead)
    out.append("-" * len(rhead))
    for rate in sorted({r.rate for r in results}):
        app = next((r for r in results if r.rate == rate and r.path == "app"), None)
        base = next((r for r in results if r.rate == rate and r.path == "baseline"), None)
        if not app or not base:
            continue
        rate_app = app.completed / app.attempted if app.attempted else None
        rate_base = base.completed / base.attempted if base.attempted else None

        def per_call(r: RunResult, keys: tuple[str, ...]) -> float | None:
            values = [r.cpu.get(k) for k in keys]
            if any(v is None for v in values) or not r.attempted:
                return None
            return sum(values) / r.attempted  # type: ignore[arg-type]

        out.append(
            f"{rate:>4} {ratio(rate_app, rate_base):>14} "
            f"{ratio(percentile(app.setup_ms, 50), percentile(base.setup_ms, 50)):>10} "
            f"{ratio(percentile(app.setup_ms, 99), percentile(base.setup_ms, 99)):>10} "
            f"{ratio(percentile(app.ring_ms, 50), percentile(base.ring_ms, 50)):>8} "
            f"{ratio(per_call(app, ('asterisk',)), per_call(base, ('asterisk',))):>17} "
            f"{ratio(per_call(app, ('asterisk', 'app')), per_call(base, ('asterisk', 'app'))):>16}")
    out.append("")
    out.append("Details per run:")
    for r in results:
        extra = []
        if r.path == "app":
            extra.append(f"    DB: {r.db_calls} call records, dispositions {r.db_dispositions}, still open {r.db_open}, "
                         f"decision latency samples {len(r.decision_ms)}, max "
                         f"{fmt(max(r.decision_ms) if r.decision_ms else None, 2)} ms")
        out += run_details(r, f"{r.rate} cps {r.path}", extra)
    return "\n".join(out)


async def main_async(args: argparse.Namespace, tmp: Path) -> int:
    bench = Bench(args, tmp)
    results: list[RunResult] = []
    try:
        await bench.start()
        versions = {"asterisk": f"Asterisk {bench.asterisk.version}" if bench.asterisk else "?",
                    "sipp": await sipp_version()}
        for rate in args.rates:
            for path in ("app", "baseline"):
                results.append(await bench.run(rate, path))
    finally:
        log("stopping UAS, app and Asterisk")
        await asyncio.shield(bench.stop())
    text = report(results, args, versions)
    print(text, flush=True)
    (tmp / "report.txt").write_text(text + "\n")
    (tmp / "results.json").write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per run (default 30)")
    parser.add_argument("--rates", default="10,50", help="calls per second, comma-separated (default 10,50)")
    parser.add_argument("--hold-ms", type=int, default=1000, help="how long each answered call stays up")
    parser.add_argument("--rtp-ports", type=int, default=1000,
                        help="size of Asterisk's RTP port range (default 1000, as in config/ringpool.yaml)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, DB, SIPp traces)")
    parser.add_argument("--json", help="also write the per-run results to this JSON file")
    args = parser.parse_args()
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    if shutil.which("sipp") is None:
        print("call_setup: sipp is not installed (Debian: apt-get install sip-tester)", file=sys.stderr)
        return 2
    if not can_bind(socket.SOCK_DGRAM, BASELINE_SOURCE, 0):
        print(f"call_setup: cannot bind {BASELINE_SOURCE} (needed for the baseline caller)", file=sys.stderr)
        return 2
    return run_in_temp_folder(lambda tmp: main_async(args, tmp), prefix="ringpool-bench-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
