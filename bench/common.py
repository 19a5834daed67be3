"""What the benchmark scripts share: a timestamped log, an address check, the driver that runs a benchmark in
its own temporary folder and stops everything it started on Ctrl-C, and (call_setup.py, ivr_routing.py) the
bundled Asterisk + app + SIPp stack with its measurements."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def can_bind(kind: int, host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def run_in_temp_folder(main_async: Callable[[Path], Awaitable[int]], *, prefix: str, keep: bool) -> int:
    """Run ``main_async(folder)``; SIGINT/SIGTERM cancel it (its own cleanup runs), the folder is removed
    unless ``keep``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    log(f"working folder {tmp}")
    loop = asyncio.new_event_loop()
    task = loop.create_task(main_async(tmp))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        log("interrupted; everything started was stopped")
        return 130
    finally:
        loop.close()
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


# --- SIPp load through the bundled Asterisk and the app (call_setup.py, ivr_routing.py) ---------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def utc_text(moment: float) -> str:
    """Epoch seconds in the storage format (``2026-11-22T17:01:02.123Z``): compares as text with arrived_at."""
    dt = datetime.fromtimestamp(moment, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class SippRun:
    """What one SIPp UAC run measured, common to the SIPp benchmarks (each adds its own fields)."""

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
    invite_at: list[float] = field(default_factory=list)  # epoch seconds each successful call's INVITE was sent
    cpu: dict[str, float | None] = field(default_factory=dict)
    wall_s: float = 0.0
    app_log: list[str] = field(default_factory=list)
    asterisk_log: list[str] = field(default_factory=list)
    sipp_errors: list[str] = field(default_factory=list)
    leftover_channels: int = 0
    loadavg: str = ""


def parse_sipp_stats(path: Path, result: SippRun) -> None:
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


def parse_sipp_times(run_dir: Path, result: SippRun) -> None:
    """The scenarios' "bench-times <INVITE s> <us> <180 s> <us> <200 s> <us>" lines (-trace_logs), SIPp's rtd 1
    (-trace_rtt) and the summary of each unexpected event (-trace_err)."""
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
            result.invite_at.append(t0)
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


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def other_cpu(r: SippRun) -> float | None:
    """CPU seconds the machine spent on anything but Asterisk, the app and the UAC (the UAS, this driver,
    and any other work on the machine): a large value means the numbers were taken on a busy machine."""
    if r.cpu.get("machine") is None:
        return None
    return r.cpu["machine"] - sum(r.cpu.get(k) or 0.0 for k in ("asterisk", "app", "sipp_uac"))


def run_details(r: SippRun, title: str, extra: list[str] = ()) -> list[str]:
    """The report's details of one run: machine load, SIPp's failures and rtd, ``extra`` (the run's database
    lines), SIPp's unexpected events, the app's and Asterisk's warnings and errors."""
    out: list[str] = []
    ours = sum(r.cpu.get(k) or 0.0 for k in ("asterisk", "app", "sipp_uac"))
    out.append(f"  {title}: sipp exit {r.sipp_rc}, wall {r.wall_s:.1f} s, "
               f"retransmissions {r.retransmissions}, channels left after 30 s: {r.leftover_channels}")
    out.append(f"    machine busy {fmt(r.cpu.get('machine'))} CPU-s of {r.wall_s * (os.cpu_count() or 1):.0f} "
               f"(Asterisk+app+UAC {ours:.1f}, everything else incl. UAS {fmt((r.cpu.get('machine') or 0) - ours)}),"
               f" load average at end {r.loadavg}")
    if r.cpu.get("sipp_uas") is not None:
        rest = (r.cpu.get("machine") or 0) - ours - (r.cpu.get("sipp_uas") or 0) - (r.cpu.get("driver") or 0)
        out.append(f"    of everything else: SIPp UAS {fmt(r.cpu.get('sipp_uas'))}, this driver "
                   f"{fmt(r.cpu.get('driver'))}, other work on the machine {fmt(rest)} CPU-s")
    if r.wall_s:
        out.append(f"    average CPU use during the run: Asterisk {fmt((r.cpu.get('asterisk') or 0) / r.wall_s, 2)} "
                   f"cores, app {fmt((r.cpu.get('app') or 0) / r.wall_s, 2)} cores")
    if r.failure_reasons:
        out.append(f"    SIPp failure reasons: {r.failure_reasons}")
    out.append(f"    SIPp rtd1 (INVITE->200, ms granularity) p50 {fmt(percentile(r.rtd_ms, 50))} "
               f"p99 {fmt(percentile(r.rtd_ms, 99))} over {len(r.rtd_ms)} calls; per-call set-up samples "
               f"{len(r.setup_ms)}, max {fmt(max(r.setup_ms) if r.setup_ms else None, 2)}")
    out += extra
    if r.sipp_errors:
        out.append(f"    SIPp unexpected events ({len(r.sipp_errors)}):")
        out += ["      " + line for line in summarise_log_lines(r.sipp_errors, 5)]
    out.append(f"    app log warnings/errors: {len(r.app_log)}")
    out += ["      " + line for line in summarise_log_lines(r.app_log)]
    out.append(f"    Asterisk log warnings/errors: {len(r.asterisk_log)}")
    out += ["      " + line for line in summarise_log_lines(r.asterisk_log)]
    return out


async def sipp_version() -> str:
    proc = await asyncio.create_subprocess_exec("sipp", "-v", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    match = re.search(r"SIPp v?(\S+)", out.decode(errors="replace"))
    return match.group(1).rstrip(".") if match else "?"


class AppStack:
    """The bundled Asterisk configured from a Ringpool YAML (plus extra pjsip/dialplan text), a SIPp UAS as the
    destination, and the app as its own process (``python -m ari_app run``, ``asterisk.bundled: false``), so it
    never shares a CPU-bound loop with the driver. ``drive`` runs one SIPp UAC load and measures it."""

    def __init__(self, tmp: Path, config: Path, *, http_port: int, admin_port: int, ari_password: str,
                 uas_port: int, uas_media: int) -> None:
        from ari_app.config import load_settings

        self.tmp = tmp
        self.config = config
        self.settings = load_settings(config)
        self.http_port, self.admin_port, self.ari_password = http_port, admin_port, ari_password
        self.uas_port, self.uas_media = uas_port, uas_media
        self.asterisk: Any = None  # ari_app.asterisk_process.BundledAsterisk once started
        self.app: asyncio.subprocess.Process | None = None
        self.uas: asyncio.subprocess.Process | None = None
        self.uac: asyncio.subprocess.Process | None = None
        self.app_log = tmp / "app.log"
        self.http: aiohttp.ClientSession | None = None
        self.ari_base = f"http://127.0.0.1:{http_port}/ari"

    # --- start / stop ---

    async def start(self, *, uas_scenario: Path, extra_pjsip: str = "", extra_extensions: str = "",
                    endpoints: tuple[str, ...] = (), sip_port: int | None = None,
                    rtp: tuple[int, int] | None = None) -> None:
        from ari_app.asterisk_config import render_all
        from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed

        root = default_root()
        await asyncio.get_running_loop().run_in_executor(None, ensure_installed, root)
        run_dir = self.tmp / "asterisk"
        self.asterisk = BundledAsterisk(root, run_dir, http_port=self.http_port,
                                        ari_user=self.settings.ari.username, ari_password=self.ari_password)
        self.asterisk.write_config(render_all(self.settings, root=root, run_dir=run_dir,
                                              ari_password=self.ari_password,
                                              extra_pjsip=extra_pjsip, extra_extensions=extra_extensions))
        log(f"starting bundled Asterisk (SIP 127.0.0.1:{sip_port}, ARI :{self.http_port}, "
            f"RTP {rtp[0] if rtp else '?'}-{rtp[1] if rtp else '?'})")
        await self.asterisk.start()
        log(f"Asterisk {self.asterisk.version} ready (pid {self.asterisk.process.pid})")
        auth = base64.b64encode(f"{self.settings.ari.username}:{self.ari_password}".encode()).decode()
        # No keep-alive: Asterisk closes idle HTTP sessions, and a stale pooled one fails the next request.
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"},
                                          connector=aiohttp.TCPConnector(force_close=True),
                                          timeout=aiohttp.ClientTimeout(total=10))
        shown = await self.asterisk.cli("pjsip show endpoints")
        for name in endpoints:
            if name not in shown:
                raise RuntimeError(f"endpoint {name} missing in Asterisk:\n{shown}")

        log("starting the SIPp UAS (destination)")
        uas_dir = self.tmp / "uas"
        uas_dir.mkdir()
        self.uas = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(uas_scenario), "-i", "127.0.0.1", "-p", str(self.uas_port),
            "-mp", str(self.uas_media), "-nostdin", "-trace_err", "-trace_stat", "-stf", "uas-stats.csv",
            "-fd", "5", cwd=uas_dir, stdin=asyncio.subprocess.DEVNULL,
            stdout=open(uas_dir / "screen.log", "wb"), stderr=asyncio.subprocess.STDOUT, start_new_session=True)

        log("starting the Ringpool app process")
        with self.app_log.open("ab") as out:
            self.app = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ari_app", "--config", str(self.config), "run", cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        await self._wait_app()
        await asyncio.sleep(0.5)
        if self.uas.returncode is not None:
            raise RuntimeError(f"SIPp UAS exited ({self.uas.returncode}): {(uas_dir / 'screen.log').read_text()[-2000:]}")
        log(f"app connected (pid {self.app.pid}); UAS on 127.0.0.1:{self.uas_port} (pid {self.uas.pid})")

    async def _wait_app(self, timeout: float = 30.0) -> None:
        assert self.http is not None and self.app is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.app.returncode is not None:
                raise RuntimeError(f"app exited with {self.app.returncode}; log tail:\n{self._app_tail()}")
            try:
                async with self.http.get(f"http://127.0.0.1:{self.admin_port}/healthz") as resp:
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

    async def drive(self, result: SippRun, command: list[str], run_dir: Path, title: str,
                    settled: Callable[[float, float], Awaitable[None]] | None = None) -> None:
        """Run one SIPp UAC (``command``, in ``run_dir``) to its end and fill ``result``: CPU of Asterisk, the app
        and the UAC, SIPp's counters and times, the warnings and errors logged meanwhile. ``settled(started,
        ended)`` runs once the channels are gone, before the logs are read (the run's database reads)."""
        assert self.asterisk is not None and self.asterisk.process is not None and self.app is not None
        if self.app.returncode is not None:
            raise RuntimeError(f"app exited with {self.app.returncode} before the run; log tail:\n{self._app_tail()}")
        leftover = await self.wait_idle(10)
        if leftover:
            log(f"warning: {leftover} channels still up before the run")

        app_window = LogWindow(self.app_log, r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
        ast_window = LogWindow(self.asterisk.run_dir / "log/messages.log", r"\b(WARNING|ERROR)\[")
        ast_pid, app_pid = self.asterisk.process.pid, self.app.pid
        uas_pid = self.uas.pid if self.uas is not None else None

        def sample() -> dict[str, float | None]:
            return {"asterisk": cpu_seconds(ast_pid), "app": cpu_seconds(app_pid), "sipp_uas": cpu_seconds(uas_pid),
                    "driver": time.process_time(), "machine": machine_busy_seconds()}

        cpu0 = sample()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        (run_dir / "command.txt").write_text(" ".join(command) + "\n")
        started = time.time()
        self.uac = await asyncio.create_subprocess_exec(
            *command, cwd=run_dir, stdin=asyncio.subprocess.DEVNULL, stdout=open(run_dir / "screen.log", "wb"),
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        result.sipp_rc = await self.uac.wait()
        ended = time.time()
        self.uac = None
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = sample()
        result.loadavg = Path("/proc/loadavg").read_text().split()[0]
        result.wall_s = ended - started
        result.cpu = {k: (cpu1[k] - cpu0[k]) if cpu0[k] is not None and cpu1[k] is not None else None
                      for k in cpu0}
        result.cpu["sipp_uac"] = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)

        result.leftover_channels = await self.wait_idle(30)
        if settled is not None:
            await settled(started, ended)
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


def app_config_header(script: str, layout: Any) -> str:
    """The start of a benchmark's generated configuration, the same for every bench that runs the app against
    its own Asterisk: ``layout`` has the ports, the RTP range, the ARI password and the admin token."""
    return f"""# Generated by {script}
state_dir: state
asterisk:
  bundled: false          # the benchmark runs the bundled Asterisk itself
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
"""
