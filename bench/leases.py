#!/usr/bin/env python3
"""Lease benchmark (issue 4): lease requests per second and latency through the real admin HTTP server, with the
pool near full, next to a trivial aiohttp handler on the same machine (the baseline, as a ratio).

What it does (everything in a temporary folder, on free ports, stopped on every path, Ctrl-C included):

1. starts the baseline server (``bench/leases_server.py --kind baseline``: one POST handler that parses the JSON
   body and answers a lease-shaped JSON object) as its own process and loads it at each concurrency;
2. scenario ``full``: writes a bench YAML (one trunk, one destination, one campaign, one pool of ``--numbers``
   numbers growing from ``--inventory`` more up to ``max_size = numbers + inventory``, min_lease one day, no
   rate limit to speak of, a fixed site key, an allowed origin), starts the real admin server from it
   (``--kind ringpool``: store opened, catalogue synced, ``TrackingService`` started, ``build_admin_app``),
   pre-fills the pool to ``--fill`` (95 %) of max_size with new visitors, then measures new visitors
   (``POST /t/v1/sessions``, no token: the last free numbers are taken, idle then grown from the inventory,
   then every visitor gets the overflow number) and renewals (``POST /t/v1/pageview`` with the pre-fill
   visitors' tokens: each keeps its number);
3. scenario ``churn``: the same with ``min_lease: 2``; after the pre-fill it waits until every lease is older
   than that, so new visitors take the least active old lease (reassign), and get the overflow number only
   when they come faster than ``max_size / min_lease`` a second;
4. optionally profiles the ringpool server under load (py-spy, or cProfile in the server) and says where the
   time goes;
5. checks that no number was leased to two contexts (from the answers and from ``tracking_numbers``).

The load generator is one aiohttp client process (this one) with N concurrent workers over keep-alive
connections, each for a fixed time; server CPU comes from ``/proc/<pid>/stat`` (the event loop thread and the
storage thread separately, from ``/proc/<pid>/task``).

Usage: .venv/bin/python bench/leases.py [--duration 10] [--concurrency 16,64] [--quick] [--profile py-spy]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pstats
import random
import re
import secrets
import shutil
import signal
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import log, percentile, run_in_temp_folder  # noqa: E402

SERVER = REPO / "bench" / "leases_server.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
POOL = "bench-web"
ORIGIN = "https://www.example.com"
PAGES = ("https://www.example.com/services", "https://www.example.com/pricing", "https://www.example.com/contact",
         "https://www.example.com/about")


# --- processes -----------------------------------------------------------------------------------------


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """utime + stime of a process (all threads) or of one of its threads, from /proc."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (user+nice+system+irq+softirq+steal) from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class Server:
    """One bench/leases_server.py process (its own process group, stopped by its id)."""

    def __init__(self, kind: str, folder: Path, config: Path | None = None, cprofile: Path | None = None) -> None:
        self.kind = kind
        self.folder = folder
        self.config = config
        self.cprofile = cprofile
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.log_path = folder / f"{kind}-server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        command = [sys.executable, str(SERVER), "--kind", self.kind]
        if self.config:
            command += ["--config", str(self.config)]
        if self.cprofile:
            command += ["--cprofile", str(self.cprofile)]
        self.proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=open(self.log_path, "ab"), start_new_session=True)
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"{self.kind} server did not start: {self.log_path.read_text()[-2000:]}")
        self.port = int(line.split()[1])

    def cpu(self) -> tuple[float, float]:
        """(whole process, event loop thread) CPU seconds; the rest is the storage thread (and any executor)."""
        return cpu_seconds(self.pid) or 0.0, cpu_seconds(self.pid, self.pid) or 0.0

    async def wait_line(self, prefix: bytes, timeout: float) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line or line.startswith(prefix):
                return

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 20)
        except ProcessLookupError:
            pass
        except asyncio.TimeoutError:
            log(f"{self.kind} server did not stop; killing it")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()

    def problems(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback", line)]


# --- configuration and requests ------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str  # full | churn
    min_lease: int
    config: Path
    database: Path
    site_key: str
    max_size: int


def write_config(folder: Path, name: str, args: argparse.Namespace, min_lease: int) -> Scenario:
    folder.mkdir(parents=True, exist_ok=True)
    site_key = "pk_bench_" + secrets.token_urlsafe(18)
    numbers = [f"+1555200{i:04d}" for i in range(args.numbers)]
    inventory = [f"+1555300{i:04d}" for i in range(args.inventory)]
    config = folder / "ringpool-leases.yaml"
    config.write_text(f"""# Generated by bench/leases.py (scenario {name})
state_dir: state
asterisk:
  bundled: false
ari:
  url: http://127.0.0.1:9
  password: "{secrets.token_urlsafe(18)}"
admin:
  bind: 127.0.0.1
  port: 8080                # not used: the bench server listens on a free port
  token: "{secrets.token_urlsafe(24)}"
trunks:
  - name: bench
    match: [127.0.0.1]
destinations:
  - name: bench-desk
    host: 127.0.0.1
    port: 5080
campaigns:
  - name: bench-web
    title: Lease benchmark
    destination: bench-desk
    ring_timeout: 10
    numbers: []
inventory: {json.dumps(inventory)}
pools:
  - name: {POOL}
    campaign: bench-web
    numbers: {json.dumps(numbers)}
    max_size: {args.numbers + args.inventory}
    min_lease: {min_lease}
    lease_ttl: 1800
    cooldown: 300
    overflow_number: "+15559990000"
    allowed_origins: ["{ORIGIN}"]
    site_key: "{site_key}"
    rate_limit: 10000000
""")
    return Scenario(name=name, min_lease=min_lease, config=config, database=folder / "state" / "ringpool.db",
                    site_key=site_key, max_size=args.numbers + args.inventory)


UAS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
       "Version/17.4 Mobile/15E148 Safari/604.1",
       "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
       "Safari/537.36",
       "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile "
       "Safari/537.36")
SOURCES = (("google", "cpc", "spring-sale", "plumber near me"), ("bing", "cpc", "spring-sale", "emergency plumber"),
           ("facebook", "paid-social", "spring-retarget", None), ("newsletter", "email", "april-news", None))


def session_bodies(site_key: str, count: int, rng: random.Random) -> list[bytes]:
    """New visitors as the snippet reports them: landing page with its query, referrer, GA client id, utm fields,
    a gclid on paid search, the device."""
    bodies = []
    for i in range(count):
        source, medium, campaign, term = SOURCES[i % len(SOURCES)]
        params = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign, "utm_content": f"ad-{i % 7}"}
        if term:
            params["utm_term"] = term
        if medium == "cpc":
            params["gclid"] = "Cj0KCQjw" + secrets.token_urlsafe(rng.randint(40, 60))
        ua = UAS[i % len(UAS)]
        mobile = "Mobile" in ua
        query = "&".join(f"{k}={v.replace(' ', '+')}" for k, v in params.items())
        body = {"pool": POOL, "key": site_key, "page": f"https://www.example.com/landing/spring?{query}",
                "referrer": "https://www.google.com/" if source in ("google", "bing") else None,
                "title": "Spring sale: 20% off every repair | Example Plumbing",
                "ga_client_id": f"{rng.randint(10**8, 10**10 - 1)}.{rng.randint(1_700_000_000, 1_760_000_000)}",
                "params": params,
                "device": {"ua": ua, "width": 390 if mobile else 1920, "height": 844 if mobile else 1080,
                           "touch": mobile},
                "vars": {"ab_test": "hero-b" if i % 2 else "hero-a"}}
        bodies.append(json.dumps({k: v for k, v in body.items() if v is not None}).encode())
    return bodies


def pageview_body(site_key: str, token: str, n: int) -> bytes:
    page = PAGES[n % len(PAGES)]
    return json.dumps({"pool": POOL, "key": site_key, "token": token, "page": page,
                       "referrer": PAGES[(n - 1) % len(PAGES)], "title": f"{page.rsplit('/', 1)[1].title()} | Example"
                       }).encode()


# --- load ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    path: str
    concurrency: int
    requests: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    overflow: int | None = None
    server_cpu: float = 0.0
    loop_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_cpu: float = 0.0  # every CPU of the machine, busy seconds in the window
    assigned: dict[str, int] = field(default_factory=dict)  # from number_state_log: idle / grown / reassigned

    @property
    def other_cpu(self) -> float:
        """Busy CPU seconds of everything but the server and this client: other work skews the figures."""
        return max(0.0, self.machine_cpu - self.server_cpu - self.client_cpu)

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0

    def cpu_per_1000(self, which: str = "server") -> float | None:
        value = {"server": self.server_cpu, "loop": self.loop_cpu, "db": self.server_cpu - self.loop_cpu}[which]
        return 1000 * value / self.requests if self.requests else None


Answer = Callable[[Any, int, bytes], None]  # (what was sent, status, body)


async def load(url: str, next_request: Callable[[], tuple[Any, bytes]], concurrency: int, duration: float,
               on_answer: Answer | None = None, *, count: int | None = None, row: Row | None = None,
               server: Server | None = None) -> Row:
    """``concurrency`` workers each sending one request after the other until ``duration`` seconds (or ``count``
    requests in all) have passed; latency per request, errors by kind, server and client CPU for the window."""
    row = row or Row(path="", concurrency=concurrency)
    headers = {"Content-Type": "application/json", "Origin": ORIGIN}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    remaining = itertools.count() if count is not None else None
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",)) as http:
        # open the connections first, so the window measures requests and not TCP handshakes
        async def connect() -> None:
            async with http.get(url.rsplit("/t/", 1)[0] + "/healthz") as resp:
                await resp.read()

        await asyncio.gather(*(connect() for _ in range(concurrency)), return_exceptions=True)

        async def worker() -> None:
            while True:
                if remaining is not None and next(remaining) >= (count or 0):
                    return
                if remaining is None and time.perf_counter() >= deadline:
                    return
                sent, body = next_request()
                t0 = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    row.errors[type(exc).__name__] += 1
                    continue
                row.latencies_ms.append((time.perf_counter() - t0) * 1000)
                row.requests += 1
                if status != 200:
                    row.errors[f"HTTP {status}"] += 1
                elif on_answer is not None:
                    on_answer(sent, status, data)

        cpu0 = server.cpu() if server else (0.0, 0.0)
        client0 = time.process_time()
        machine0 = machine_busy_seconds()
        start = time.perf_counter()
        deadline = start + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        row.wall_s = time.perf_counter() - start
        row.client_cpu = time.process_time() - client0
        row.machine_cpu = machine_busy_seconds() - machine0
        if server:
            cpu1 = server.cpu()
            row.server_cpu, row.loop_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    return row


def utc_text(moment: float) -> str:
    dt = datetime.fromtimestamp(moment, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)


def assignments(database: Path, since: float, until: float) -> dict[str, int]:
    """How numbers were handed out in a window, from the state log (renewals and overflow are not logged)."""
    conn = read_only(database)
    try:
        rows = conn.execute("SELECT reason FROM number_state_log WHERE to_state = 'leased' AND at >= ? AND at <= ?",
                            (utc_text(since), utc_text(until))).fetchall()
    finally:
        conn.close()
    counts: Counter = Counter()
    for (reason,) in rows:
        counts["grown" if reason.startswith("pool grew") else "reassigned" if reason.startswith("reassigned")
               else "idle" if reason == "leased to a visitor" else reason] += 1
    return dict(counts)


# --- the ringpool scenarios ----------------------------------------------------------------------------


class Holders:
    """End-to-end check from the answers: a number handed out (not overflow) belongs to one token at a time; a
    renewal keeps its token and its number."""

    def __init__(self, reassign_allowed: bool) -> None:
        self.reassign_allowed = reassign_allowed
        self.by_number: dict[str, str] = {}
        self.by_token: dict[str, str] = {}
        self.overflow = 0
        self.violations: list[str] = []

    def new_visitor(self, _sent: Any, _status: int, data: bytes) -> None:
        answer = json.loads(data)
        if answer["overflow"]:
            self.overflow += 1
            return
        number, token = answer["number"], answer["token"]
        if token in self.by_token:
            self.violations.append(f"new visitor got an existing token {token[:10]}...")
        holder = self.by_number.get(number)
        if holder is not None and holder != token and not self.reassign_allowed:
            self.violations.append(f"{number} handed to a second visitor while leased to another")
        self.by_number[number] = token
        self.by_token[token] = number

    def renewal(self, sent: Any, _status: int, data: bytes) -> None:
        answer = json.loads(data)
        token = sent
        if answer["token"] != token:
            self.violations.append("a renewal answered another token")
        elif answer["overflow"] or answer["number"] != self.by_token.get(token):
            if not self.reassign_allowed:
                self.violations.append(f"renewal of {self.by_token.get(token)} answered {answer['number']}")


def db_checks(sc: Scenario) -> tuple[list[str], dict[str, Any]]:
    """The invariants of tests/unit/test_tracking_store.py on the bench database, plus the figures to print."""
    conn = read_only(sc.database)
    problems: list[str] = []
    try:
        held = conn.execute("SELECT number, lease_key FROM tracking_numbers WHERE pool = ? AND state = 'leased'",
                            [POOL]).fetchall()
        keys = Counter(k for _n, k in held)
        if None in keys:
            problems.append(f"{keys[None]} leased number(s) without a lease key")
        doubled = {k: c for k, c in keys.items() if k is not None and c > 1}
        if doubled:
            problems.append(f"{len(doubled)} context(s) hold two or more numbers")
        orphans = sum(1 for number, key in held if not conn.execute(
            "SELECT 1 FROM visitor_sessions WHERE lease_key = ? AND number = ?", [key, number]).fetchone())
        if orphans:
            problems.append(f"{orphans} leased number(s) whose context no session holds")
        if sc.min_lease >= 3600:  # no reassignment possible: a number is claimed by one session only
            shared = conn.execute("SELECT COUNT(*) FROM (SELECT number FROM visitor_sessions WHERE lease_key IS NOT NULL"
                                  " GROUP BY number HAVING COUNT(*) > 1)").fetchone()[0]
            if shared:
                problems.append(f"{shared} number(s) claimed by two sessions")
        size = conn.execute("SELECT COUNT(*) FROM tracking_numbers WHERE pool = ? AND role = 'pool'"
                            " AND state IN ('idle', 'leased', 'cooldown')", [POOL]).fetchone()[0]
        if size > sc.max_size:
            problems.append(f"pool size {size} above max_size {sc.max_size}")
        figures = {
            "states": dict(conn.execute("SELECT state, COUNT(*) FROM tracking_numbers WHERE pool = ? OR state ="
                                        " 'inventory' GROUP BY state ORDER BY state", [POOL]).fetchall()),
            "sessions": conn.execute("SELECT COUNT(*) FROM visitor_sessions").fetchone()[0],
            "state_log": conn.execute("SELECT COUNT(*) FROM number_state_log").fetchone()[0],
            "alerts": conn.execute("SELECT COUNT(*) FROM pool_alerts").fetchone()[0],
            "size": size,
        }
    finally:
        conn.close()
    figures["db_bytes"] = sum(p.stat().st_size for p in sc.database.parent.glob(sc.database.name + "*"))
    return problems, figures


@dataclass
class ScenarioResult:
    scenario: Scenario
    rows: list[Row] = field(default_factory=list)
    prefill: Row | None = None
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    server_log: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)


async def run_scenario(sc: Scenario, args: argparse.Namespace, tmp: Path, servers: list[Server]) -> ScenarioResult:
    result = ScenarioResult(sc)
    rng = random.Random(4)
    cprofile = tmp / f"profile-{sc.name}" if args.profile == "cprofile" and sc.name == "full" else None
    server = Server("ringpool", sc.config.parent, sc.config, cprofile)
    servers.append(server)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    holders = Holders(reassign_allowed=sc.min_lease < 3600)
    bodies = session_bodies(sc.site_key, 4096, rng)
    counter = itertools.count()

    def new_visitor() -> tuple[Any, bytes]:
        return None, bodies[next(counter) % len(bodies)]

    # pre-fill: the pool to --fill of max_size, with new visitors (their tokens renew in the pageview rows)
    fill = int(sc.max_size * args.fill)
    log(f"{sc.name}: ringpool server pid {server.pid} on :{server.port}; pre-filling {fill} of {sc.max_size} numbers")
    result.prefill = await load(base + "/t/v1/sessions", new_visitor, 32, 0, holders.new_visitor, count=fill,
                                row=Row(path="pre-fill", concurrency=32), server=server)
    if holders.overflow or result.prefill.errors:
        result.problems.append(f"pre-fill: {holders.overflow} overflow answers, errors {dict(result.prefill.errors)}")
    tokens = list(holders.by_token)
    if sc.min_lease < 3600:
        await asyncio.sleep(sc.min_lease + 1.0)  # every pre-fill lease is now older than min_lease

    for c in args.concurrency:
        holders.overflow = 0
        row = Row(path=f"ringpool sessions ({sc.name})", concurrency=c)
        since = time.time()
        await load(base + "/t/v1/sessions", new_visitor, c, args.duration, holders.new_visitor, row=row, server=server)
        row.overflow = holders.overflow
        row.assigned = assignments(sc.database, since, time.time())
        result.rows.append(row)
        log(f"  {row.path} c={c}: {row.requests} requests, {row.rps:.0f}/s, overflow {row.overflow}, "
            f"assigned {row.assigned}")

    if sc.name == "full":
        views = itertools.count()
        renew_tokens = tokens[:]
        rng.shuffle(renew_tokens)

        def renewal() -> tuple[Any, bytes]:
            n = next(views)
            token = renew_tokens[n % len(renew_tokens)]
            return token, pageview_body(sc.site_key, token, 1 + n // len(renew_tokens))

        for c in args.concurrency:
            row = Row(path="ringpool pageview", concurrency=c)
            await load(base + "/t/v1/pageview", renewal, c, args.duration, holders.renewal, row=row, server=server)
            row.overflow = 0
            result.rows.append(row)
            log(f"  {row.path} c={c}: {row.requests} requests, {row.rps:.0f}/s")

        if args.profile != "none":
            result.profile = await profile(server, base, new_visitor, renewal, args, tmp, cprofile)

    result.problems += holders.violations[:10]
    if len(holders.violations) > 10:
        result.problems.append(f"... {len(holders.violations) - 10} more answer violations")
    await server.stop()
    result.server_log = server.problems()
    problems, result.figures = db_checks(sc)
    result.problems += problems
    return result


# --- profiling -----------------------------------------------------------------------------------------


HANDOFF = ("run_in_executor", "AsyncCallStore.", "_chain_future", "_copy_future_state", "_call_set_state",
           "_write_to_self", "_read_from_self", "_process_self_data", "call_soon_threadsafe", "_set_state (",
           "Future.set_result", "_WorkItem.run", "wrap_future")
VALIDATION = ("_visit (", "_visit.<locals>", "_text (", "_text.<locals>", "body_of (")


def _name(frame: str) -> str:
    return frame.replace(str(REPO) + "/", "")


WAITING = "waiting (epoll, executor queue) or taking the GIL back"


def classify_main(frames: list[str]) -> str:
    """Where an event-loop-thread sample's time goes, from its innermost frames (first match wins)."""
    leaf = frames[-1]
    if leaf.startswith("EpollSelector.select ("):
        return WAITING
    if "json/" in leaf:
        return "JSON encode/decode (stdlib json: request body, answer)"
    if any(f.startswith(VALIDATION) for f in frames):
        return "request validation (tracking/http.py: _visit, _text, body_of)"
    if any(f.startswith(HANDOFF) for f in frames[-6:]):
        return "hand-off to the storage thread (executor future, self-pipe wake-up)"
    if any(f.startswith(("TrackingService.", "lease_answer", "format_display")) for f in frames[-4:]) \
            or "secrets.py" in leaf or "random.py" in leaf or "base64.py" in leaf or "storage/db.py" in leaf:
        return "tracking service (tokens, timestamps, the answer)"
    if leaf.startswith(("add_public_routes", "RateLimiter.")):
        return "tracking endpoint (site key, origin, rate limit, CORS headers)"
    if "admin/http.py" in leaf:
        return "admin middlewares (errors, auth)"
    if any(part in leaf for part in ("aiohttp/", "multidict/", "yarl/", "http/cookies", "email/")):
        return "aiohttp (HTTP parsing, routing, request/response objects, writing)"
    if any(part in leaf for part in ("asyncio/", "selectors.py", "socket.py", "_weakrefset.py")):
        return "asyncio loop and sockets (socket send/recv, scheduling)"
    return "other: " + _name(leaf)


def classify_storage(frames: list[str]) -> tuple[str, str]:
    """A storage-thread sample: (tracking store function, line). SQL runs in C under the line that called it."""
    for frame in reversed(frames):
        if frame.startswith("TrackingStore."):
            return re.sub(r" \(.*", "", frame), frame
    if frames[-1].startswith("_worker (concurrent/futures/thread.py"):
        return WAITING, _name(frames[-1])
    if any(f.startswith(HANDOFF) for f in frames[-3:]):
        return "executor hand-off (future result, loop wake-up)", _name(frames[-1])
    return "other", _name(frames[-1])


def summarise_pyspy(path: Path, top: int = 10) -> list[str]:
    """Collapsed stacks (py-spy --format raw --threads) -> shares per thread and category. py-spy leaves out
    samples of a thread it sees idle, but a thread that has just woken up (epoll, the executor's queue) and
    waits for the GIL still counts: those samples are shown apart, and the shares are of the rest (the work)."""
    main: Counter = Counter()
    storage_funcs: Counter = Counter()
    storage_lines: Counter = Counter()
    waiting: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        if any(f.startswith("_worker (concurrent/futures/thread.py") for f in frames):
            func, where = classify_storage(frames)
            if func == WAITING:
                waiting["storage"] += count
                continue
            storage_funcs[func] += count
            storage_lines[where] += count
        else:
            category = classify_main(frames)
            if category == WAITING:
                waiting["loop"] += count
                continue
            main[category] += count
    work = sum(main.values()) + sum(storage_funcs.values())
    if not work:
        return ["  py-spy recorded no samples"]
    out = [f"  {work} samples of work: event loop thread {sum(main.values()) / work:.0%}, storage (SQLite) thread "
           f"{sum(storage_funcs.values()) / work:.0%} (set apart: {waiting['loop']} loop and {waiting['storage']} "
           f"storage samples {WAITING})"]

    def line(n: int, name: str) -> str:
        return f"    {100 * n / work:5.1f} %  {name}"

    out.append("  event loop thread, by what the innermost frames are doing (% of the work):")
    out += [line(n, name) for name, n in main.most_common(top)]
    out.append("  storage thread, by tracking store function (SQL time is in the function that runs it):")
    out += [line(n, name) for name, n in storage_funcs.most_common(top)]
    out.append("  storage thread, hottest lines (store.py line numbers as they were when profiled):")
    out += [line(n, name) for name, n in storage_lines.most_common(top)]
    return out


def summarise_cprofile(prefix: Path, top: int = 15) -> list[str]:
    out = []
    for part in ("loop", "storage"):
        path = Path(f"{prefix}.{part}")
        if not path.exists():
            continue
        stats = pstats.Stats(str(path))
        total = stats.total_tt  # type: ignore[attr-defined]
        out.append(f"  cProfile, {part} thread: {total:.2f} s profiled; top functions by own time:")
        entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
        for (file, line, func), (_cc, calls, tottime, cumtime, _callers) in entries:
            where = file.replace(str(REPO) + "/", "")
            out.append(f"    {100 * tottime / total if total else 0:5.1f} %  {calls:>8} calls  cum {cumtime:6.2f} s  "
                       f"{func} ({re.sub(r'.*/site-packages/', '', where)}:{line})")
    return out


async def profile(server: Server, base: str, new_visitor: Callable[[], tuple[Any, bytes]],
                  renewal: Callable[[], tuple[Any, bytes]], args: argparse.Namespace, tmp: Path,
                  cprofile: Path | None) -> list[str]:
    """Load the server once more (not in the table) with a profiler attached: new visitors, then renewals."""
    c = max(args.concurrency)
    out: list[str] = []
    for name, path, make in (("sessions (full pool: overflow)", "/t/v1/sessions", new_visitor),
                             ("pageview (renewals)", "/t/v1/pageview", renewal)):
        out.append(f"Profile of {name}, concurrency {c}, {args.profile_duration:.0f} s:")
        if args.profile == "py-spy":
            raw = tmp / f"py-spy-{path.rsplit('/', 1)[1]}.txt"
            spy = await asyncio.create_subprocess_exec(
                args.py_spy, "record", "--pid", str(server.pid), "--rate", "200", "--threads", "--format", "raw",
                "--duration", str(int(args.profile_duration + 1)), "--output", str(raw),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=open(tmp / "py-spy.log", "ab"), start_new_session=True)
            await asyncio.sleep(0.5)
            row = await load(base + path, make, c, args.profile_duration, server=server)
            try:
                await asyncio.wait_for(spy.wait(), 30)
            except asyncio.TimeoutError:
                os.killpg(spy.pid, signal.SIGINT)
                await spy.wait()
            out += (summarise_pyspy(raw) if raw.exists() else
                    [f"py-spy failed: {(tmp / 'py-spy.log').read_text(errors='replace')[-500:]}"])
        else:
            assert cprofile is not None
            os.kill(server.pid, signal.SIGUSR1)
            await asyncio.sleep(0.3)
            row = await load(base + path, make, c, args.profile_duration, server=server)
            os.kill(server.pid, signal.SIGUSR2)
            await server.wait_line(b"PROFILED", 30)
            out += summarise_cprofile(cprofile)
        out.append(f"  (under the profiler: {row.rps:.0f} requests/s, server CPU "
                   f"{1e6 * row.server_cpu / row.requests if row.requests else 0:.0f} us per request)")
    return out


# --- report --------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report(baseline: list[Row], results: list[ScenarioResult], args: argparse.Namespace) -> str:
    out: list[str] = []
    sc_full = results[0].scenario if results else None
    out.append(f"Ringpool lease benchmark: {args.duration:g} s per row, {os.cpu_count()} CPUs, Python "
               f"{sys.version.split()[0]}, aiohttp {aiohttp.__version__}, SQLite {sqlite3.sqlite_version}; "
               f"load average at end {Path('/proc/loadavg').read_text().split()[0]}")
    if sc_full:
        out.append(f"Pool {POOL}: {args.numbers} numbers + {args.inventory} in the inventory (max_size "
                   f"{sc_full.max_size}), pre-filled to {args.fill:.0%} ({int(sc_full.max_size * args.fill)} leases) "
                   f"before the rows; full: min_lease 1 day; churn: min_lease 2 s.")
    out.append("One aiohttp client process, keep-alive, N concurrent workers, each a new visitor (sessions, no token)"
               " or a renewal (pageview with a pre-fill token). Latency per request in ms; CPU = server process CPU "
               "seconds per 1000 requests (loop = event loop thread: HTTP, JSON, validation; db = storage thread: "
               "SQLite); client% = this load generator's CPU use (100 = one core busy); other% = CPU used by anything "
               "else on the machine during the row (a busy machine skews every figure).")
    out.append("")
    head = (f"{'path':<27} {'conc':>4} {'requests':>8} {'req/s':>7} {'p50':>6} {'p99':>7} {'max':>7} {'errors':>6} "
            f"{'overflow':>8} {'CPU/1k':>6} {'loop':>5} {'db':>5} {'client%':>7} {'other%':>6}  assigned")
    out.append(head)
    out.append("-" * len(head))
    rows = [r for res in results for r in res.rows] + baseline
    order = {"ringpool sessions (full)": 0, "ringpool sessions (churn)": 1, "ringpool pageview": 2, "baseline": 3}
    for r in sorted(rows, key=lambda r: (order.get(r.path, 9), r.concurrency)):
        assigned = ", ".join(f"{k} {v}" for k, v in sorted(r.assigned.items())) if r.assigned else ""
        out.append(
            f"{r.path:<27} {r.concurrency:>4} {r.requests:>8} {r.rps:>7.0f} "
            f"{fmt(percentile(r.latencies_ms, 50), 2):>6} {fmt(percentile(r.latencies_ms, 99), 2):>7} "
            f"{fmt(max(r.latencies_ms) if r.latencies_ms else None, 1):>7} {sum(r.errors.values()):>6} "
            f"{'' if r.overflow is None else r.overflow:>8} {fmt(r.cpu_per_1000(), 3):>6} "
            f"{fmt(r.cpu_per_1000('loop'), 2):>5} {fmt(r.cpu_per_1000('db'), 2):>5} "
            f"{fmt(100 * r.client_cpu / r.wall_s if r.wall_s else None, 0):>7} "
            f"{fmt(100 * r.other_cpu / r.wall_s if r.wall_s else None, 0):>6}  {assigned}")
    out.append("")
    out.append("Ratios ringpool / baseline (same concurrency):")
    rhead = f"{'path':<27} {'conc':>4} {'req/s':>7} {'p50':>7} {'p99':>7} {'CPU/1k':>7}"
    out.append(rhead)
    out.append("-" * len(rhead))
    for r in sorted((r for r in rows if r.path != "baseline"), key=lambda r: (order.get(r.path, 9), r.concurrency)):
        b = next((b for b in baseline if b.concurrency == r.concurrency), None)
        if b is None:
            continue
        out.append(f"{r.path:<27} {r.concurrency:>4} {ratio(r.rps, b.rps):>7} "
                   f"{ratio(percentile(r.latencies_ms, 50), percentile(b.latencies_ms, 50)):>7} "
                   f"{ratio(percentile(r.latencies_ms, 99), percentile(b.latencies_ms, 99)):>7} "
                   f"{ratio(r.cpu_per_1000(), b.cpu_per_1000()):>7}")
    for res in results:
        sc, f = res.scenario, res.figures
        out.append("")
        out.append(f"Scenario {sc.name} (min_lease {sc.min_lease} s):")
        if res.prefill:
            p = res.prefill
            out.append(f"  pre-fill: {p.requests} new visitors at concurrency 32 in {p.wall_s:.1f} s "
                       f"({p.rps:.0f}/s, p99 {fmt(percentile(p.latencies_ms, 99), 1)} ms), errors {dict(p.errors)}")
        busy = [f"{r.path} c={r.concurrency}: {100 * (r.server_cpu - r.loop_cpu) / r.wall_s:.0f} %"
                for r in res.rows if r.wall_s]
        out.append("  storage thread busy (CPU / wall): " + "; ".join(busy))
        if f:
            states = ", ".join(f"{k} {v}" for k, v in f["states"].items())
            out.append(f"  at the end: SQLite {f['db_bytes'] / 1e6:.1f} MB; numbers by state: {states} (pool size "
                       f"{f['size']} of {sc.max_size}); {f['sessions']} visitor sessions, {f['state_log']} state log "
                       f"rows, {f['alerts']} pool alerts ({f['db_bytes'] / max(1, f['sessions']):.0f} bytes per "
                       "session)")
        out.append("  no number leased to two contexts (answers and tracking_numbers): "
                   + ("OK" if not res.problems else "FAIL"))
        out += [f"    {p}" for p in res.problems]
        if res.server_log:
            out.append(f"  server log warnings/errors: {len(res.server_log)}")
            out += [f"    {line[:200]}" for line in res.server_log[:5]]
    for res in results:
        if res.profile:
            out.append("")
            out += res.profile
    return "\n".join(out)


async def main_async(args: argparse.Namespace, tmp: Path) -> int:
    servers: list[Server] = []
    baseline: list[Row] = []
    results: list[ScenarioResult] = []
    try:
        server = Server("baseline", tmp)
        servers.append(server)
        await server.start()
        log(f"baseline server pid {server.pid} on :{server.port}")
        url = f"http://127.0.0.1:{server.port}/t/v1/sessions"
        bodies = session_bodies("pk_bench_baseline_000000", 1024, random.Random(4))
        counter = itertools.count()

        def body() -> tuple[Any, bytes]:
            return None, bodies[next(counter) % len(bodies)]

        await load(url, body, max(args.concurrency), min(1.0, args.duration / 3))  # warm-up
        for c in args.concurrency:
            row = await load(url, body, c, args.duration, row=Row(path="baseline", concurrency=c), server=server)
            baseline.append(row)
            log(f"  baseline c={c}: {row.requests} requests, {row.rps:.0f}/s")
        await server.stop()
        for name in args.scenarios:
            sc = write_config(tmp / name, name, args, 86400 if name == "full" else 2)
            results.append(await run_scenario(sc, args, tmp, servers))
    finally:
        for server in servers:
            await asyncio.shield(server.stop())
    text = report(baseline, results, args)
    print(text, flush=True)
    (tmp / "report.txt").write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"path": r.path, "concurrency": r.concurrency, "requests": r.requests, "rps": r.rps,
              "p50_ms": percentile(r.latencies_ms, 50), "p99_ms": percentile(r.latencies_ms, 99),
              "max_ms": max(r.latencies_ms) if r.latencies_ms else None, "errors": dict(r.errors),
              "overflow": r.overflow, "server_cpu_s": r.server_cpu, "loop_cpu_s": r.loop_cpu,
              "client_cpu_s": r.client_cpu, "assigned": r.assigned}
             for r in baseline + [r for res in results for r in res.rows]], indent=1))
    return 1 if any(res.problems for res in results) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per row (default 10)")
    parser.add_argument("--concurrency", default="16,64", help="concurrent client workers, comma-separated")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s per row, 2 s profiles")
    parser.add_argument("--numbers", type=int, default=1000, help="numbers listed in the pool (default 1000)")
    parser.add_argument("--inventory", type=int, default=200, help="inventory numbers the pool grows from")
    parser.add_argument("--fill", type=float, default=0.95, help="pre-fill this share of max_size (default 0.95)")
    parser.add_argument("--scenarios", default="full,churn", help="full,churn (default both)")
    parser.add_argument("--profile", choices=("py-spy", "cprofile", "none"), default=None,
                        help="profile the ringpool server after the measured rows (default py-spy if installed, "
                             "else cprofile)")
    parser.add_argument("--profile-duration", type=float, default=8.0, help="seconds of load per profile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, DBs, server logs)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.profile_duration = 3.0, 2.0
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if set(args.scenarios) - {"full", "churn"}:
        parser.error("--scenarios: full and/or churn")
    args.py_spy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                             if (Path(sys.executable).parent / "py-spy").exists() else None)
    if args.profile is None:
        args.profile = "py-spy" if args.py_spy else "cprofile"
    if args.profile == "py-spy" and not args.py_spy:
        parser.error("py-spy is not installed (pip install py-spy), use --profile cprofile")
    if args.profile != "none" and "full" not in args.scenarios:
        args.profile = "none"
    return run_in_temp_folder(lambda tmp: main_async(args, tmp), prefix="ringpool-leases-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
