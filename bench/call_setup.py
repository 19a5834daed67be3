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
import base64
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import can_bind, log, percentile, run_in_temp_folder  # noqa: E402
from ari_app.asterisk_config import render_all  # noqa: E402
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed  # noqa: E402
from ari_app.config import load_settings  # noqa: E402

SIPP_DIR = REPO / "bench" / "sipp"
TRACKING_NUMBER = "15550100001"
DESTINATION = "bench-desk"
APP_SOURCE = "127.0.0.1"  # matches the configured trunk: calls enter ringpool-inbound -> Stasis
BASELINE_SOURCE = "127.0.0.2"  # matches bench-baseline: calls enter ringpool-baseline -> Dial
CLK_TCK = os.sysconf("SC_CLK_TCK")




# --- ports ---------------------------------------------------------------------------------------------




class Ports:
    """Free ports picked by binding to port 0 (single ports) or by scanning (blocks below the ephemeral range)."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def one(self, *, udp: bool = True, tcp: bool = False, host: str = "127.0.0.1") -> int:
        for _ in range(200):
            kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port in self.taken or (udp and tcp and not can_bind(socket.SOCK_STREAM, host, port)):
                continue
            self.taken.add(port)
            return port
        raise RuntimeError("no free port found")

    def block(self, size: int, lo: int, hi: int, step: int, hosts: tuple[str, ...] = ("0.0.0.0",)) -> int:
        """First ``size`` consecutive UDP ports in [lo, hi) all free on every host and not handed out yet."""
        for base in range(lo, hi - size, step):
            span = range(base, base + size)
            if any(p in self.taken for p in span):
                continue
            if all(can_bind(socket.SOCK_DGRAM, h, p) for p in span for h in hosts):
                self.taken.update(span)
                return base
        raise RuntimeError(f"no free block of {size} UDP ports in {lo}..{hi}")


# --- processes -----------------------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (user+nice+system+irq+softirq+steal) from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    if not pid:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of the full line


async def stop_process(proc: asyncio.subprocess.Process | None, name: str, sig: int = signal.SIGTERM,
                       grace: float = 10.0) -> None:
    """Signal one process group we started (by its id), then SIGKILL it if it does not exit in time."""
    if proc is None or proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        await asyncio.wait_for(proc.wait(), grace)
    except ProcessLookupError:
        pass
    except asyncio.TimeoutError:
        log(f"{name} did not stop on signal {sig}; killing")
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()


# --- statistics ----------------------------------------------------------------------------------------


def utc_text(moment: float) -> str:
    """Epoch seconds in the storage format (``2026-11-22T17:01:02.123Z``): compares as text with arrived_at."""
    dt = datetime.fromtimestamp(moment, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class RunResult:
    rate: int
    path: str  # "app" or "baseline"
    attempted: int = 0
    completed: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    retransmissions: int = 0
    sipp_rc: int | None = None
    achieved_cps: float | None = None
    setup_ms: list[float] = field(default_factory=list)  # INVITE -> 200, per successful call (µs clock)
    ring_ms: list[float] = field(default_factory=list)  # INVITE -> 180, per call that got a 180
    rtd_ms: list[float] = field(default_factory=list)  # SIPp's own rtd 1 (ms granularity), cross-check
    db_calls: int | None = None
    db_dispositions: dict[str, int] = field(default_factory=dict)
    db_open: int | None = None
    decision_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float | None] = field(default_factory=dict)
    wall_s: float = 0.0
    app_log: list[str] = field(default_factory=list)
    asterisk_log: list[str] = field(default_factory=list)
    sipp_errors: list[str] = field(default_factory=list)
    leftover_channels: int = 0
    loadavg: str = ""


def parse_sipp_stats(path: Path, result: RunResult) -> None:
    """The last line of SIPp's -trace_stat CSV holds the final cumulative counters."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return
    header = lines[0].split(";")
    values = dict(zip(header, lines[-1].split(";")))

    def num(name: str) -> float:
        try:
            return float(values.get(name, "0") or 0)
        except ValueError:
            return 0.0

    result.attempted = int(num("OutgoingCall(C)"))
    result.completed = int(num("SuccessfulCall(C)"))
    result.failed = int(num("FailedCall(C)"))
    result.retransmissions = int(num("Retransmissions(C)"))
    result.achieved_cps = num("CallRate(C)")
    result.failure_reasons = {name[len("Failed"):-3]: int(num(name)) for name in header
                              if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)"
                              and num(name) > 0}


def parse_sipp_times(run_dir: Path, result: RunResult) -> None:
    for path in run_dir.glob("*_logs.log"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 7 or parts[0] != "bench-times":
                continue
            try:
                t0 = float(parts[1]) + float(parts[2]) / 1e6
                t200 = float(parts[5]) + float(parts[6]) / 1e6
            except ValueError:
                continue
            result.setup_ms.append((t200 - t0) * 1000)
            if parts[3] != "-":
                try:
                    result.ring_ms.append((float(parts[3]) + float(parts[4]) / 1e6 - t0) * 1000)
                except ValueError:
                    pass
    for path in run_dir.glob("*_rtt.csv"):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3 and parts[2].strip() in ("1", "rtd1"):
                try:
                    result.rtd_ms.append(float(parts[1]))
                except ValueError:
                    pass
    for path in run_dir.glob("*_errors.log"):
        text = path.read_text(errors="replace")
        # One summary line per event: "...: Aborting call on unexpected message ...: received 'SIP/2.0 503 ..."
        for match in re.finditer(r"\d+\.\d+: ([^\n]*?)(?:'(SIP/2\.0 \d{3}[^\n]*|[A-Z]+ sip:[^\n]*))?\n", text):
            summary = re.sub(r"Call-Id '[^']*'", "Call-Id <id>", match.group(1))
            summary = re.sub(r"Dead call \S+", "Dead call <id>", summary)
            first = (match.group(2) or "").strip()
            result.sipp_errors.append((summary + " " + first).strip())


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


def summarise_log_lines(lines: list[str], limit: int = 8) -> list[str]:
    """Group log lines that differ only by ids/timestamps: 'count x first example'."""
    groups: dict[str, tuple[int, str]] = {}
    for line in lines:
        key = re.sub(r"^\S+ \S+ ", "", line)  # timestamp
        key = re.sub(r"\[\d{4}-\d\d-\d\d [\d:.]+\]\s*", "", key)
        key = re.sub(r"[0-9a-f]{32}|\b\d+(\.\d+)?\b|0x[0-9a-f]+|-[0-9a-f]{8}\b", "#", key)
        key = re.sub(r"\[#\]|\[#\]\[C-[0-9a-f#]+\]", "", key).strip()
        count, example = groups.get(key, (0, line))
        groups[key] = (count + 1, example)
    ordered = sorted(groups.values(), key=lambda item: -item[0])
    return [f"{count:5d} x {example.strip()[:300]}" for count, example in ordered[:limit]]


class LogWindow:
    """Lines at WARNING/ERROR level appended to a log file since the window was opened."""

    def __init__(self, path: Path, pattern: str) -> None:
        self.path = path
        self.pattern = re.compile(pattern)
        self.offset = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        return [line for line in text.splitlines() if self.pattern.search(line)]


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
    layout.config.write_text(f"""# Generated by bench/call_setup.py
state_dir: state
asterisk:
  bundled: false          # this script runs the bundled Asterisk itself (with the baseline context added)
  sip_bind: 127.0.0.1
  sip_port: {layout.sip_port}
  http_port: {layout.http_port}
  rtp_start: {layout.rtp_start}
  rtp_end: {layout.rtp_end}
ari:
  url: http://127.0.0.1:{layout.http_port}
  username: ringpool
  password: "{layout.ari_password}"
  app: ringpool
admin:
  bind: 127.0.0.1
  port: {layout.admin_port}
  token: "{layout.admin_token}"
trunks:
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


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.ports = Ports()
        self.layout = write_config(tmp, self.ports, args.rtp_ports)
        self.settings = load_settings(self.layout.config)
        self.asterisk: BundledAsterisk | None = None
        self.app: asyncio.subprocess.Process | None = None
        self.uas: asyncio.subprocess.Process | None = None
        self.uac: asyncio.subprocess.Process | None = None
        self.app_log = tmp / "app.log"
        self.http: aiohttp.ClientSession | None = None
        self.ari_base = f"http://127.0.0.1:{self.layout.http_port}/ari"
        for name in ("uac.xml", "uas.xml"):
            shutil.copy(SIPP_DIR / name, tmp / name)

    # --- start / stop ---

    async def start(self) -> None:
        root = default_root()
        await asyncio.get_running_loop().run_in_executor(None, ensure_installed, root)
        run_dir = self.tmp / "asterisk"
        self.asterisk = BundledAsterisk(root, run_dir, http_port=self.layout.http_port,
                                        ari_user=self.settings.ari.username, ari_password=self.layout.ari_password)
        self.asterisk.write_config(render_all(self.settings, root=root, run_dir=run_dir,
                                              ari_password=self.layout.ari_password,
                                              extra_pjsip=BASELINE_PJSIP, extra_extensions=BASELINE_EXTENSIONS))
        log(f"starting bundled Asterisk (SIP 127.0.0.1:{self.layout.sip_port}, ARI :{self.layout.http_port}, "
            f"RTP {self.layout.rtp_start}-{self.layout.rtp_end})")
        await self.asterisk.start()
        log(f"Asterisk {self.asterisk.version} ready (pid {self.asterisk.process.pid})")
        auth = base64.b64encode(f"{self.settings.ari.username}:{self.layout.ari_password}".encode()).decode()
        # No keep-alive: Asterisk closes idle HTTP sessions, and a stale pooled one fails the next request.
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"},
                                          connector=aiohttp.TCPConnector(force_close=True),
                                          timeout=aiohttp.ClientTimeout(total=10))
        endpoints = await self.asterisk.cli("pjsip show endpoints")
        for name in ("trunk-bench", "bench-baseline", f"dest-{DESTINATION}"):
            if name not in endpoints:
                raise RuntimeError(f"endpoint {name} missing in Asterisk:\n{endpoints}")

        log("starting the SIPp UAS (destination)")
        uas_dir = self.tmp / "uas"
        uas_dir.mkdir()
        self.uas = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(self.tmp / "uas.xml"), "-i", "127.0.0.1", "-p", str(self.layout.uas_port),
            "-mp", str(self.layout.uas_media), "-nostdin", "-trace_err", "-trace_stat", "-stf", "uas-stats.csv",
            "-fd", "5", cwd=uas_dir, stdin=asyncio.subprocess.DEVNULL,
            stdout=open(uas_dir / "screen.log", "wb"), stderr=asyncio.subprocess.STDOUT, start_new_session=True)

        log("starting the Ringpool app process")
        with self.app_log.open("ab") as out:
            self.app = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ari_app", "--config", str(self.layout.config), "run", cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        await self._wait_app()
        await asyncio.sleep(0.5)
        if self.uas.returncode is not None:
            raise RuntimeError(f"SIPp UAS exited ({self.uas.returncode}): {(uas_dir / 'screen.log').read_text()[-2000:]}")
        log(f"app connected (pid {self.app.pid}); UAS on 127.0.0.1:{self.layout.uas_port} (pid {self.uas.pid})")

    async def _wait_app(self, timeout: float = 30.0) -> None:
        assert self.http is not None and self.app is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app.returncode is not None:
                raise RuntimeError(f"app exited with {self.app.returncode}; log tail:\n{self._app_tail()}")
            try:
                async with self.http.get(f"http://127.0.0.1:{self.layout.admin_port}/healthz") as resp:
                    if resp.status == 200:
                        async with self.http.get(f"{self.ari_base}/applications/ringpool") as app_resp:
                            if app_resp.status == 200:
                                return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"app did not connect in {timeout:.0f} s; log tail:\n{self._app_tail()}")

    def _app_tail(self, lines: int = 40) -> str:
        if not self.app_log.exists():
            return "(no log)"
        return "\n".join(self.app_log.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self) -> None:
        await stop_process(self.uac, "SIPp UAC", signal.SIGKILL, 5)
        await stop_process(self.app, "app", signal.SIGTERM, 15)
        await stop_process(self.uas, "SIPp UAS", signal.SIGTERM, 5)
        if self.http is not None:
            await self.http.close()
        if self.asterisk is not None:
            await self.asterisk.stop()
            await self.asterisk.kill()

    # --- one run ---

    async def channel_count(self) -> int:
        """Channels up in Asterisk; -1 if ARI does not answer (logged: Asterisk refuses HTTP sessions beyond
        its limit of 100, and a busy app can hold that many)."""
        assert self.http is not None
        for attempt in range(5):
            try:
                async with self.http.get(f"{self.ari_base}/channels") as resp:
                    if resp.status == 200:
                        return len(await resp.json())
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = repr(exc)
            log(f"  GET /ari/channels failed ({error}), attempt {attempt + 1}")
            await asyncio.sleep(1.0)
        return -1

    async def wait_idle(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        count = await self.channel_count()
        while count and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            count = await self.channel_count()
        return count

    async def run(self, rate: int, path: str) -> RunResult:
        assert self.asterisk is not None and self.asterisk.process is not None and self.app is not None
        result = RunResult(rate=rate, path=path)
        source = APP_SOURCE if path == "app" else BASELINE_SOURCE
        local_port = self.layout.uac_port if path == "app" else self.layout.uac2_port
        caller = f"77{rate:04d}{1 if path == 'app' else 2}"
        calls = rate * self.args.duration
        run_dir = self.tmp / f"run-{rate}cps-{path}"
        run_dir.mkdir()
        if self.app.returncode is not None:
            raise RuntimeError(f"app exited with {self.app.returncode} before the run; log tail:\n{self._app_tail()}")
        leftover = await self.wait_idle(10)
        if leftover:
            log(f"warning: {leftover} channels still up before the run")

        app_window = LogWindow(self.app_log, r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
        ast_window = LogWindow(self.asterisk.run_dir / "log/messages.log", r"\b(WARNING|ERROR)\[")
        ast_pid, app_pid = self.asterisk.process.pid, self.app.pid
        cpu0 = {"asterisk": cpu_seconds(ast_pid), "app": cpu_seconds(app_pid), "machine": machine_busy_seconds()}
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [
            "sipp", f"127.0.0.1:{self.layout.sip_port}", "-sf", str(self.tmp / "uac.xml"),
            "-s", TRACKING_NUMBER, "-key", "caller", caller, "-i", source, "-p", str(local_port),
            "-mp", str(self.layout.uac_media), "-r", str(rate), "-m", str(calls), "-l", str(rate * 40),
            "-d", str(self.args.hold_ms), "-recv_timeout", "30000", "-timeout", f"{self.args.duration + 90}s",
            "-nostdin", "-trace_stat", "-stf", "stats.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
            "-trace_err", "-trace_logs", "-trace_screen",
        ]
        (run_dir / "command.txt").write_text(" ".join(command) + "\n")
        log(f"{rate} cps via {path}: {calls} calls from {source} (caller {caller})")
        started = time.time()
        self.uac = await asyncio.create_subprocess_exec(
            *command, cwd=run_dir, stdin=asyncio.subprocess.DEVNULL, stdout=open(run_dir / "screen.log", "wb"),
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        result.sipp_rc = await self.uac.wait()
        ended = time.time()
        self.uac = None
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = {"asterisk": cpu_seconds(ast_pid), "app": cpu_seconds(app_pid), "machine": machine_busy_seconds()}
        result.loadavg = Path("/proc/loadavg").read_text().split()[0]
        result.wall_s = ended - started
        result.cpu = {k: (cpu1[k] - cpu0[k]) if cpu0[k] is not None and cpu1[k] is not None else None
                      for k in cpu0}
        result.cpu["sipp_uac"] = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)

        result.leftover_channels = await self.wait_idle(30)
        if path == "app":
            deadline = time.monotonic() + 30
            while db_open_count(self.settings.database, caller) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            read_db(self.settings.database, caller, started, ended, result)
        await asyncio.sleep(1.0)  # last log lines
        result.app_log = app_window.lines()
        result.asterisk_log = ast_window.lines()
        stats = run_dir / "stats.csv"
        if stats.exists():
            parse_sipp_stats(stats, result)
        parse_sipp_times(run_dir, result)
        log(f"  done in {result.wall_s:.1f} s: sipp rc {result.sipp_rc}, {result.completed}/{result.attempted} "
            f"completed, {result.failed} failed; app log warnings/errors {len(result.app_log)}, "
            f"Asterisk {len(result.asterisk_log)}")
        await asyncio.sleep(2.0)  # let the UAS's timewait calls and Asterisk's RTP ports settle
        return result


# --- report --------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def other_cpu(r: RunResult) -> float | None:
    """CPU seconds the machine spent on anything but Asterisk, the app and the UAC (the UAS, this driver,
    and any other work on the machine): a large value means the numbers were taken on a busy machine."""
    if r.cpu.get("machine") is None:
        return None
    return r.cpu["machine"] - sum(r.cpu.get(k) or 0.0 for k in ("asterisk", "app", "sipp_uac"))


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
        ours = sum(r.cpu.get(k) or 0.0 for k in ("asterisk", "app", "sipp_uac"))
        out.append(f"  {r.rate} cps {r.path}: sipp exit {r.sipp_rc}, wall {r.wall_s:.1f} s, "
                   f"retransmissions {r.retransmissions}, channels left after 30 s: {r.leftover_channels}")
        out.append(f"    machine busy {fmt(r.cpu.get('machine'))} CPU-s of {r.wall_s * (os.cpu_count() or 1):.0f} "
                   f"(Asterisk+app+UAC {ours:.1f}, everything else incl. UAS {fmt((r.cpu.get('machine') or 0) - ours)}),"
                   f" load average at end {r.loadavg}")
        if r.wall_s:
            out.append(f"    average CPU use during the run: Asterisk {fmt((r.cpu.get('asterisk') or 0) / r.wall_s, 2)} "
                       f"cores, app {fmt((r.cpu.get('app') or 0) / r.wall_s, 2)} cores")
        if r.failure_reasons:
            out.append(f"    SIPp failure reasons: {r.failure_reasons}")
        out.append(f"    SIPp rtd1 (INVITE->200, ms granularity) p50 {fmt(percentile(r.rtd_ms, 50))} "
                   f"p99 {fmt(percentile(r.rtd_ms, 99))} over {len(r.rtd_ms)} calls; per-call set-up samples "
                   f"{len(r.setup_ms)}, max {fmt(max(r.setup_ms) if r.setup_ms else None, 2)}")
        if r.path == "app":
            out.append(f"    DB: {r.db_calls} call records, dispositions {r.db_dispositions}, still open {r.db_open}, "
                       f"decision latency samples {len(r.decision_ms)}, max "
                       f"{fmt(max(r.decision_ms) if r.decision_ms else None, 2)} ms")
        if r.sipp_errors:
            out.append(f"    SIPp unexpected events ({len(r.sipp_errors)}):")
            out += ["      " + line for line in summarise_log_lines(r.sipp_errors, 5)]
        out.append(f"    app log warnings/errors: {len(r.app_log)}")
        out += ["      " + line for line in summarise_log_lines(r.app_log)]
        out.append(f"    Asterisk log warnings/errors: {len(r.asterisk_log)}")
        out += ["      " + line for line in summarise_log_lines(r.asterisk_log)]
    return "\n".join(out)


async def sipp_version() -> str:
    proc = await asyncio.create_subprocess_exec("sipp", "-v", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    match = re.search(r"SIPp v?(\S+)", out.decode(errors="replace"))
    return match.group(1).rstrip(".") if match else "?"


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
