"""Property-based run of schemathesis against the live admin API: no 5xx, no undocumented status, content type or
response shape, on every operation of the document the server itself serves at /api/v1/openapi.json.

The real app (build_admin_app) runs on a real TCP port, in its own thread and event loop (schemathesis calls it
with blocking requests), with a real AsyncCallStore and AccountManager on a temporary SQLite database holding a
few calls (legs, events, detections, a test call, awkward text).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the `test` extra; the rest of the suite runs without it

import requests  # noqa: E402  (schemathesis depends on it)
from aiohttp import web  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

from ari_app.accounts import AccountManager  # noqa: E402
from ari_app.admin.http import AdminDeps, build_admin_app  # noqa: E402
from ari_app.admin.openapi import document_for  # noqa: E402
from ari_app.config import load_settings  # noqa: E402
from storage.async_store import AsyncCallStore  # noqa: E402
from ari_app.service import catalog_rows  # noqa: E402
from ari_app.screening.service import ScreeningService  # noqa: E402
from ari_app.tracking.service import TrackingService  # noqa: E402
from storage.calls import NewCall  # noqa: E402
from tests.unit.admin_fixtures import POOLS_YAML  # noqa: E402
from tests.unit.admin_fixtures import (click_to_call_for_docs, reloader_for_docs, screening_for_docs,  # noqa: E402
                                       tracking_for_docs)  # noqa: E402

TOKEN = "schemathesis-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 30

CONFIG = """\
state_dir: var
asterisk:
  bundled: false
  accounts_file: {accounts_file}
ari:
  password: unit-test-ari-password
trunks:
  - name: carrier
    match: [127.0.0.1]
destinations:
  - name: desk
    host: 127.0.0.1
  - name: phone
    account: bob
campaigns:
  - name: spring
    destination: desk
    numbers: ["5550100001"]
test_accounts:
  - username: alice
    caller_number: "+15557770100"
  - username: bob
    password: bob-password-1234
    caller_number: anonymous
"""


async def seed(store: AsyncCallStore) -> None:
    for i in range(7):
        call_id = f"call-{i}"
        at = f"2026-11-22T17:00:{10 + i:02d}.000Z"
        await store.call("create_call", NewCall(
            id=call_id, inbound_channel=f"chan-{i}", arrived_at=at, dialed_number="5550100001",
            caller_number=["15551110000", "+15552220000", None, "anonymous"][i % 4],
            caller_name=['=HYPERLINK("x")', "Zoë \"Quote\", Esq.", None, "\t@tab"][i % 4],
            is_test=int(i == 3), test_account="alice" if i == 3 else None))
        await store.call("update_call", call_id, campaign="spring", decision="proceed",
                         decision_reasons=["tracking number of campaign spring"], destination="desk")
        await store.call("add_leg", call_id, f"out-{i}", "outbound", destination="desk",
                         created_at=f"2026-11-22T17:00:{10 + i:02d}.500Z")
        await store.call("add_event", call_id, "dialing", {"destination": "desk"}, at=at)
        if i % 2:
            await store.call("add_detection", call_id, leg="caller", source="fax", kind="fax_cng", start=0.5,
                             duration=1.0, details={"tones": 3}, flags={"fax_detected": 1},
                             appends={"dtmf_digits": "12#"}, values={})
        if i < 6:  # one call still open
            await store.call("finish_call", call_id, disposition=["completed", "busy", "no_answer"][i % 3],
                             ended_at=f"2026-11-22T17:00:{20 + i:02d}.000Z", hangup_cause=16, hangup_side="caller")


class LiveServer:
    """The admin app on 127.0.0.1:<free port>, served from a thread of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="admin-api", daemon=True)
        self.url = ""

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        path = self.root / "ringpool.yaml"
        path.write_text(CONFIG.format(accounts_file=self.root / "accounts.conf") + POOLS_YAML, encoding="utf-8")
        settings_ = load_settings(path)

        async def reload() -> None:
            pass

        self.accounts = AccountManager(settings_, reload=reload)
        await self.accounts.open()
        self.store = AsyncCallStore(settings_.database)
        await self.store.open()
        await self.store.call("sync_catalog", *catalog_rows(settings_))
        await seed(self.store)
        self.tracking = TrackingService(settings_, self.store)
        await self.tracking.start()
        self.screening = ScreeningService(settings_, self.store)
        await self.screening.start(self.tracking.attribution)
        await self.accounts.ban("192.0.2.7", failures=3, reason="seeded")

        async def status() -> dict[str, Any]:
            return {"ari_connected": True, "ari_reconnects": 0, "ari_last_error": None,
                    "database_ok": await self.store.healthy(), "active_calls": 0}

        async def metrics() -> str:
            return "# TYPE ringpool_active_calls gauge\nringpool_active_calls 0\n"

        app = build_admin_app(AdminDeps(store=self.store, token=TOKEN, status=status, accounts=self.accounts,
                                        metrics=metrics, tracking=self.tracking,
                                        screening=self.screening, reloader=reloader_for_docs(self.root / "config"),
                                        click_to_call=click_to_call_for_docs()))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        async def stop() -> None:
            await self.runner.cleanup()
            await self.tracking.stop()
            await self.store.close()
            await self.accounts.close()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("schemathesis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _no_status() -> dict[str, Any]:
    return {}


def served_document() -> dict[str, Any]:
    """What GET /api/v1/openapi.json serves: the app's document with every module's contributed routes. Built
    from an app that is never started (collection needs the operations before any server runs)."""
    return document_for(build_admin_app(AdminDeps(store=None, token=TOKEN, status=_no_status,  # type: ignore[arg-type]
                                                  tracking=tracking_for_docs(), screening=screening_for_docs(),
                                                  reloader=reloader_for_docs(), click_to_call=click_to_call_for_docs())))


schema = schemathesis.openapi.from_dict(served_document())
schema.config.update(headers=AUTH)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case: Any, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.url, headers=AUTH, checks=CHECKS)


# --- explicit cases: what random data rarely reaches (existing ids), validated the same way ------------------


@pytest.mark.parametrize("call_id", [f"call-{i}" for i in range(7)])
def test_existing_calls_conform(live_server: LiveServer, call_id: str) -> None:
    response = schema["/api/v1/calls/{call_id}"]["GET"].Case(path_parameters={"call_id": call_id}).call_and_validate(
        base_url=live_server.url, headers=AUTH, checks=CHECKS)
    assert response.status_code == 200 and response.json()["legs"]


def test_lists_with_every_filter_conform(live_server: LiveServer) -> None:
    for path in ("/api/v1/calls", "/api/v1/calls.csv"):
        query = {"campaign": "spring", "number": "+5550100001", "test": "false", "since": "2026-11-22T17:00:11Z",
                 "until": "2026-11-22T17:00:20.5Z"} | ({"limit": 2} if path == "/api/v1/calls" else {})
        response = schema[path]["GET"].Case(query=query).call_and_validate(
            base_url=live_server.url, headers=AUTH, checks=CHECKS)
        assert response.status_code == 200


def test_account_and_ban_lifecycle_conforms(live_server: LiveServer) -> None:
    def run(path: str, method: str, **kwargs: Any) -> int:
        return schema[path][method].Case(**kwargs).call_and_validate(
            base_url=live_server.url, headers=AUTH, checks=CHECKS).status_code

    body = {"username": "lifecycle", "caller_number": "+15557770199", "caller_name": "Life Cycle",
            "headers": {"Privacy": "id"}}
    assert run("/api/v1/test-accounts", "POST", body=body, media_type="application/json") == 201
    assert run("/api/v1/test-accounts", "POST", body=body, media_type="application/json") == 409
    assert run("/api/v1/test-accounts/{username}", "DELETE", path_parameters={"username": "lifecycle"}) == 200
    assert run("/api/v1/test-accounts/{username}", "DELETE", path_parameters={"username": "alice"}) == 409
    assert run("/api/v1/security/bans/{address}", "DELETE", path_parameters={"address": "192.0.2.7"}) == 200
    assert run("/api/v1/security/events", "GET", query={"address": "192.0.2.7", "limit": 5}) == 200


# --- 5xx found while probing the live server (fixed in ari_app/admin/http.py) -----------------------------------


def raw_request(server: LiveServer, request: bytes) -> tuple[int, bytes]:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_a_non_utf8_authorization_header_is_401_not_500(live_server: LiveServer) -> None:
    status, body = raw_request(live_server, b"GET /api/v1/calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                            b"Authorization: Bearer \xff\xfe\r\n\r\n")
    assert status == 401 and b"bearer token" in body


@pytest.mark.parametrize(("name", "content_type"), [
    ("charset-a", "application/json; charset=no-such-charset"),  # was a 500 (LookupError in request.json())
    ("charset-b", "application/json"),
    ("charset-c", "text/plain"),
    ("charset-d", "application/json; charset=latin-1"),
])
def test_a_body_with_any_declared_charset_is_read_as_json(live_server: LiveServer, name: str,
                                                           content_type: str) -> None:
    resp = requests.post(f"{live_server.url}/api/v1/test-accounts", headers=AUTH | {"Content-Type": content_type},
                         data=f'{{"username": "{name}", "caller_number": "1"}}'.encode(), timeout=10)
    assert resp.status_code == 201, resp.text


def test_deeply_nested_json_is_400_not_500(live_server: LiveServer) -> None:
    resp = requests.post(f"{live_server.url}/api/v1/test-accounts", headers=AUTH, data=b"[" * 60000, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"].startswith("body:")


def test_the_document_is_served_without_a_token(live_server: LiveServer) -> None:
    resp = requests.get(f"{live_server.url}/api/v1/openapi.json", timeout=10)
    assert resp.status_code == 200 and resp.json() == served_document()  # the document the run above used
    # and nothing else under /api/v1 is
    resp = requests.get(f"{live_server.url}/api/v1/calls", timeout=10)
    assert resp.status_code == 401
