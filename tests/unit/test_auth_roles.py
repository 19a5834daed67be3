"""Tokens with roles and the audit log (issue 7): ari_app/admin/auth.py, ari_app/admin/tokens.py and
ari_app/admin/tokens_cli.py, against the real admin app and a real AsyncCallStore on a temporary SQLite file."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import socket
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import tokens as tokens_mod
from ari_app.admin.auth import REDACTED, redact
from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.admin.tokens import TOKEN_RE, TokenRegistry, hash_token
from ari_app.cli import main as cli_main
from storage.async_store import AsyncCallStore
from storage.calls import CallFilter, CallStore, NewCall
from storage.db import open_database

ADMIN_TOKEN = "config-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_PASSWORD = "hunter2-very-secret-password"

CALLS = [  # id, second, campaign
    ("call-s1", 10, "spring"),
    ("call-s2", 20, "spring"),
    ("call-a1", 30, "autumn"),
    ("call-w1", 40, "winter"),
    ("call-none", 50, None),  # rejected before a campaign was known
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    def __init__(self, client: TestClient, store: AsyncCallStore, db_path: Path) -> None:
        self.client = client
        self.store = store
        self.db_path = db_path

    async def create(self, name: str, role: str, campaigns: list[str] | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"name": name, "role": role, **extra}
        if campaigns is not None:
            body["campaigns"] = campaigns
        resp = await self.client.post("/api/v1/tokens", json=body, headers=ADMIN)
        data = await resp.json()
        assert resp.status == 201, data
        assert TOKEN_RE.match(data["token"]) and resp.headers["Cache-Control"] == "no-store"
        return data["token"]

    async def audit(self, **params: str) -> list[dict[str, Any]]:
        resp = await self.client.get("/api/v1/audit", params=params or None, headers=ADMIN)
        assert resp.status == 200, await resp.text()
        return (await resp.json())["entries"]


async def seed(store: AsyncCallStore) -> None:
    for call_id, second, campaign in CALLS:
        await store.call("create_call", NewCall(id=call_id, inbound_channel=f"chan-{call_id}",
                                                 arrived_at=f"2026-11-22T17:00:{second:02d}.000Z",
                                                 dialed_number="15550100001", caller_number="15551110000"))
        if campaign:
            await store.call("update_call", call_id, campaign=campaign, decision="proceed")
        await store.call("finish_call", call_id, disposition="completed",
                         ended_at=f"2026-11-22T17:00:{second + 5:02d}.000Z")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    db_path = tmp_path / "roles.db"
    store = AsyncCallStore(db_path)
    await store.open()
    await seed(store)

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=ADMIN_TOKEN, status=status))))
    await client.start_server()
    try:
        yield Api(client, store, db_path)
    finally:
        await client.close()
        await store.close()


async def call_ids(api: Api, token: str, **params: str) -> list[str]:
    resp = await api.client.get("/api/v1/calls", params=params or None, headers=bearer(token))
    body = await resp.json()
    assert resp.status == 200, body
    return [c["id"] for c in body["calls"]]


# --- the configured admin token and stored admin tokens --------------------------------------------------------


async def test_config_admin_token_still_works_and_is_audited_as_config_admin(api: Api) -> None:
    resp = await api.client.get("/api/v1/calls", headers=ADMIN)
    assert resp.status == 200 and len((await resp.json())["calls"]) == len(CALLS)
    await api.create("ops", "admin")
    [entry] = await api.audit()
    assert entry["actor"] == "config-admin" and entry["role"] == "admin" and entry["method"] == "POST"
    assert entry["path"] == "/api/v1/tokens" and entry["status"] == 201 and entry["target"] == "name=ops"
    assert entry["details"] == {"body": {"name": "ops", "role": "admin"}} and entry["remote"]


async def test_a_stored_admin_token_can_do_everything(api: Api) -> None:
    token = await api.create("ops", "admin")
    assert len(await call_ids(api, token)) == len(CALLS)
    resp = await api.client.post("/api/v1/tokens", json={"name": "ops2", "role": "read_only"}, headers=bearer(token))
    assert resp.status == 201
    resp = await api.client.get("/api/v1/audit", headers=bearer(token))
    assert resp.status == 200
    entries = (await resp.json())["entries"]
    assert [(e["actor"], e["role"], e["target"]) for e in entries] == [
        ("config-admin", "admin", "name=ops"), ("ops", "admin", "name=ops2")]


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer rpt_" + "A" * 43,
                                    "Bearer not-a-token", f"Bearer {ADMIN_TOKEN}x"])
async def test_anything_else_is_401(api: Api, header: str) -> None:
    resp = await api.client.get("/api/v1/calls", headers={"Authorization": header} if header else {})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == 'Bearer realm="ringpool"'
    assert (await resp.json())["error"] == "missing or invalid bearer token"


async def test_an_empty_configured_token_never_matches_an_empty_bearer(tmp_path: Path) -> None:
    store = AsyncCallStore(tmp_path / "empty.db")
    await store.open()

    async def status() -> dict[str, Any]:
        return {}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token="", status=status))))
    await client.start_server()
    try:
        resp = await client.get("/api/v1/calls", headers={"Authorization": "Bearer "})
        assert resp.status == 401
    finally:
        await client.close()
        await store.close()


# --- read_only ---------------------------------------------------------------------------------------------------


async def test_read_only_reads_everything_but_changes_nothing(api: Api) -> None:
    token = await api.create("auditor", "read_only")
    assert len(await call_ids(api, token)) == len(CALLS)
    resp = await api.client.head("/api/v1/calls", headers=bearer(token))
    assert resp.status == 200
    resp = await api.client.get("/api/v1/calls.csv", headers=bearer(token))
    assert resp.status == 200
    for method, path, body in [
        ("POST", "/api/v1/tokens", {"name": "sneaky", "role": "admin"}),
        ("DELETE", "/api/v1/tokens/auditor", None),
        ("POST", "/api/v1/calls/call-s1/spam", {"spam": True}),
        ("POST", "/api/v1/calls/call-s1/conversion", {"name": "sale", "value": 10}),
        ("DELETE", "/api/v1/security/bans/192.0.2.1", None),
        ("PUT", "/api/v1/calls", None),
    ]:
        resp = await api.client.request(method, path, json=body, headers=bearer(token))
        assert resp.status == 403, (method, path)
        assert "read-only" in (await resp.json())["error"] or "admin" in (await resp.json())["error"]
    # tokens and the audit log are for admins, even to read
    for path in ("/api/v1/tokens", "/api/v1/audit"):
        resp = await api.client.get(path, headers=bearer(token))
        assert resp.status == 403, path
    # nothing changed
    call = await api.store.call("get_call", "call-s1")
    assert call["spam"] == 0 and call["converted_at"] is None
    resp = await api.client.get("/api/v1/tokens", headers=ADMIN)
    assert {t["name"] for t in (await resp.json())["tokens"]} == {"auditor"}
    # the dashboard's live view may still take a ticket (no live feed in this app: 404, not 403)
    resp = await api.client.post("/api/v1/live/ticket", headers=bearer(token))
    assert resp.status == 404


# --- publisher ---------------------------------------------------------------------------------------------------


async def test_publisher_lists_only_its_campaigns_calls(api: Api) -> None:
    token = await api.create("partner", "publisher", ["spring", "winter"])
    assert await call_ids(api, token) == ["call-w1", "call-s2", "call-s1"]
    assert await call_ids(api, token, campaign="spring") == ["call-s2", "call-s1"]
    assert await call_ids(api, token, campaign="autumn") == []  # asking for another campaign finds nothing
    # pagination stays inside the campaigns
    seen, cursor = [], None
    while True:
        params = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        resp = await api.client.get("/api/v1/calls", params=params, headers=bearer(token))
        page = await resp.json()
        seen += [c["id"] for c in page["calls"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["call-w1", "call-s2", "call-s1"]


async def test_publisher_detail_is_404_outside_its_campaigns(api: Api) -> None:
    token = await api.create("partner", "publisher", ["spring"])
    resp = await api.client.get("/api/v1/calls/call-s1", headers=bearer(token))
    assert resp.status == 200 and (await resp.json())["campaign"] == "spring"
    for call_id in ("call-a1", "call-none", "no-such-call"):
        resp = await api.client.get(f"/api/v1/calls/{call_id}", headers=bearer(token))
        # the same answer as for a call that does not exist: no oracle for other publishers' calls
        assert resp.status == 404 and await resp.json() == {"error": f"no call {call_id}"}


async def test_publisher_csv_has_only_its_campaigns_calls(api: Api) -> None:
    token = await api.create("partner", "publisher", ["autumn"])
    resp = await api.client.get("/api/v1/calls.csv", headers=bearer(token))
    assert resp.status == 200
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["id"], r["campaign"]) for r in rows] == [("call-a1", "autumn")]
    resp = await api.client.get("/api/v1/calls.csv", params={"campaign": "spring"}, headers=bearer(token))
    assert list(csv.DictReader(io.StringIO(await resp.text()))) == []


async def test_publisher_may_not_use_anything_else(api: Api) -> None:
    token = await api.create("partner", "publisher", ["spring"])
    for method, path in [("GET", "/api/v1/stats/today"), ("GET", "/api/v1/stats/hourly"),
                         ("GET", "/api/v1/conversions.csv?since=2026-01-01T00:00:00Z&until=2027-01-01T00:00:00Z"),
                         ("GET", "/api/v1/test-accounts"), ("GET", "/api/v1/security/events"),
                         ("GET", "/api/v1/tokens"), ("GET", "/api/v1/audit"), ("GET", "/api/v1/nothing-here"),
                         ("POST", "/api/v1/calls/call-s1/spam"), ("POST", "/api/v1/live/ticket"),
                         ("DELETE", "/api/v1/tokens/partner")]:
        resp = await api.client.request(method, path, headers=bearer(token), json={"spam": True})
        assert resp.status == 403, (method, path)
    assert (await api.store.call("get_call", "call-s1"))["spam"] == 0


# --- token lifecycle ---------------------------------------------------------------------------------------------


async def test_revoked_tokens_get_401_at_once(api: Api) -> None:
    token = await api.create("temp", "read_only")
    assert await call_ids(api, token)  # used: now in the lookup cache
    resp = await api.client.delete("/api/v1/tokens/temp", headers=ADMIN)
    body = await resp.json()
    assert resp.status == 200 and body["revoked"] == "temp" and body["revoked_at"]
    resp = await api.client.get("/api/v1/calls", headers=bearer(token))
    assert resp.status == 401
    resp = await api.client.delete("/api/v1/tokens/temp", headers=ADMIN)
    assert resp.status == 404
    # the name is not reused: an actor in the audit log always means one token
    resp = await api.client.post("/api/v1/tokens", json={"name": "temp", "role": "read_only"}, headers=ADMIN)
    assert resp.status == 409
    resp = await api.client.get("/api/v1/tokens", headers=ADMIN)
    [listed] = (await resp.json())["tokens"]
    assert listed["revoked_at"] == body["revoked_at"] and listed["last_used_at"]


async def test_a_revocation_written_elsewhere_takes_effect_within_the_cache_ttl(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens_mod, "CACHE_TTL", 0.2)
    token = await api.create("temp", "read_only")
    assert await call_ids(api, token)
    await api.store.run(tokens_mod.revoke_token, api.store.db, "temp")  # e.g. the CLI, straight to the database
    await asyncio.sleep(0.3)
    resp = await api.client.get("/api/v1/calls", headers=bearer(token))
    assert resp.status == 401


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"name": "p", "role": "publisher"}, 400, "campaigns"),
    ({"name": "p", "role": "publisher", "campaigns": []}, 400, "campaigns"),
    ({"name": "p", "role": "publisher", "campaigns": ["spring", "spring"]}, 400, "twice"),
    ({"name": "p", "role": "publisher", "campaigns": ["Not A Campaign"]}, 400, "campaigns"),
    ({"name": "p", "role": "read_only", "campaigns": ["spring"]}, 400, "only for role publisher"),
    ({"name": "p", "role": "root"}, 400, "role"),
    ({"name": "config-admin", "role": "admin"}, 400, "reserved"),
    ({"name": "cli", "role": "admin"}, 400, "reserved"),
    ({"name": "Bad Name", "role": "admin"}, 400, "name"),
    ({"name": "p", "role": "admin", "token": "rpt_mine"}, 400, "unknown key"),
    (["not", "an", "object"], 400, "JSON object"),
])
async def test_bad_token_requests_are_400(api: Api, body: Any, status: int, message: str) -> None:
    resp = await api.client.post("/api/v1/tokens", json=body, headers=ADMIN)
    assert resp.status == status and message in (await resp.json())["error"]


async def test_listing_never_shows_tokens_or_hashes(api: Api) -> None:
    token = await api.create("partner", "publisher", ["spring"], publisher="Acme Ads")
    resp = await api.client.get("/api/v1/tokens", headers=ADMIN)
    [listed] = (await resp.json())["tokens"]
    assert set(listed) == {"name", "role", "publisher", "campaigns", "created_at", "last_used_at", "revoked_at"}
    assert listed["publisher"] == "Acme Ads" and listed["campaigns"] == ["spring"]
    assert token not in json.dumps(listed) and hash_token(token) not in json.dumps(listed)


async def test_tokens_are_stored_only_as_sha256(api: Api) -> None:
    tokens = [await api.create(f"t{i}", role, campaigns)
              for i, (role, campaigns) in enumerate([("admin", None), ("read_only", None), ("publisher", ["spring"])])]
    for token in tokens:
        assert await call_ids(api, token) is not None
    await api.store.run(lambda: api.store.db.conn.execute("PRAGMA wal_checkpoint(FULL)"))
    files = [p for p in api.db_path.parent.iterdir() if p.name.startswith(api.db_path.name)]  # db, -wal, -shm
    data = b"".join(p.read_bytes() for p in files)
    for token in tokens:
        assert token.encode() not in data
        assert token[4:].encode() not in data  # not even without the prefix
        assert hashlib.sha256(token.encode()).hexdigest().encode() in data
    stored = await api.store.run(lambda: api.store.db.conn.execute("SELECT token_hash FROM api_tokens").fetchall())
    assert {r[0] for r in stored} == {hash_token(t) for t in tokens}


async def test_token_shaped_garbage_never_reaches_the_database() -> None:
    registry = TokenRegistry(None)  # no store: any database lookup would fail
    assert await registry.principal_for(b"nope") is None
    assert await registry.principal_for("rpt_é".encode()) is None
    assert await registry.principal_for(b"\xff\xfe") is None


# --- audit -------------------------------------------------------------------------------------------------------


async def test_every_change_is_audited_with_secrets_redacted(api: Api) -> None:
    partner = await api.create("partner", "publisher", ["spring"])
    reader = await api.create("reader", "read_only")
    # a change that succeeds
    resp = await api.client.post("/api/v1/calls/call-s1/spam", json={"spam": True}, headers=ADMIN)
    assert resp.status == 200
    # a body full of secrets (no account manager here: 503, but audited all the same)
    resp = await api.client.post("/api/v1/test-accounts", headers=ADMIN, json={
        "username": "alice", "password": SECRET_PASSWORD, "caller_number": "+15557770100",
        "headers": {"Authorization": "Bearer abc", "Privacy": "id"}, "note": partner,
        "webhook": {"secret": "whsec-123", "api_key": "k-123"}})
    assert resp.status == 503
    # refused changes are audited too
    resp = await api.client.post("/api/v1/calls/call-s1/spam", json={"spam": False}, headers=bearer(reader))
    assert resp.status == 403
    resp = await api.client.delete("/api/v1/tokens/reader", headers=bearer(partner))
    assert resp.status == 403
    resp = await api.client.post("/api/v1/tokens", json={"name": "x", "role": "admin"},
                                 headers=bearer("rpt_" + "B" * 43))
    assert resp.status == 401
    resp = await api.client.delete("/api/v1/tokens/partner", headers=ADMIN)
    assert resp.status == 200
    # reads are not
    await api.client.get("/api/v1/calls", headers=ADMIN)

    entries = await api.audit()
    summary = [(e["actor"], e["role"], e["method"], e["path"], e["status"], e["target"]) for e in entries]
    assert summary == [
        ("config-admin", "admin", "POST", "/api/v1/tokens", 201, "name=partner"),
        ("config-admin", "admin", "POST", "/api/v1/tokens", 201, "name=reader"),
        ("config-admin", "admin", "POST", "/api/v1/calls/call-s1/spam", 200, "call_id=call-s1"),
        ("config-admin", "admin", "POST", "/api/v1/test-accounts", 503, "username=alice"),
        ("reader", "read_only", "POST", "/api/v1/calls/call-s1/spam", 403, "call_id=call-s1"),
        ("partner", "publisher", "DELETE", "/api/v1/tokens/reader", 403, "name=reader"),
        (None, None, "POST", "/api/v1/tokens", 401, None),
        ("config-admin", "admin", "DELETE", "/api/v1/tokens/partner", 200, "name=partner"),
    ]
    body = entries[3]["details"]["body"]
    assert body["password"] == REDACTED and body["headers"]["Authorization"] == REDACTED
    assert body["headers"]["Privacy"] == "id" and body["caller_number"] == "+15557770100"
    assert body["note"] == REDACTED  # a token under an innocent key is recognised by its shape
    assert body["webhook"] == {"secret": REDACTED, "api_key": REDACTED}
    assert entries[2]["details"] == {"body": {"spam": True}}
    assert entries[6]["details"] is None  # without a valid token the body is not even read
    # and nothing secret reached the database at all
    await api.store.run(lambda: api.store.db.conn.execute("PRAGMA wal_checkpoint(FULL)"))
    data = b"".join(p.read_bytes() for p in api.db_path.parent.iterdir() if p.name.startswith(api.db_path.name))
    for secret in (SECRET_PASSWORD, "whsec-123", "k-123", partner, reader, ADMIN_TOKEN):
        assert secret.encode() not in data, secret


async def test_audit_query_filters_and_pages(api: Api) -> None:
    for i in range(5):
        await api.create(f"t{i}", "read_only")
    token = await api.create("ops", "admin")
    await api.client.delete("/api/v1/tokens/t0", headers=bearer(token))
    everything = await api.audit()
    assert len(everything) == 7
    assert [e["target"] for e in await api.audit(actor="ops")] == ["name=t0"]
    assert await api.audit(actor="nobody") == []
    resp = await api.client.get("/api/v1/audit", params={"limit": "3"}, headers=ADMIN)
    page = await resp.json()
    assert [e["id"] for e in page["entries"]] == [e["id"] for e in everything[:3]]
    resp = await api.client.get("/api/v1/audit", params={"limit": "3", "after": str(page["next_after"])},
                                headers=ADMIN)
    assert [e["id"] for e in (await resp.json())["entries"]] == [e["id"] for e in everything[3:6]]
    assert await api.audit(since=everything[-1]["at"].replace(".000Z", "Z")[:19] + "Z") != []
    assert await api.audit(since="2999-01-01T00:00:00Z") == []
    for params in ({"limit": "0"}, {"limit": "1001"}, {"after": "-1"}, {"since": "yesterday"},
                   {"actor": "a b"}, {"whatever": "1"}):
        resp = await api.client.get("/api/v1/audit", params=params, headers=ADMIN)
        assert resp.status == 400, params


async def test_unauthenticated_audit_rows_are_rate_limited(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from ari_app.admin import auth

    monkeypatch.setattr(auth, "UNAUTHENTICATED_PER_MINUTE", 3)
    for _ in range(10):
        resp = await api.client.post("/api/v1/tokens", json={}, headers=bearer("wrong"))
        assert resp.status == 401
    assert len(await api.audit()) == 3


def test_redact() -> None:
    assert redact({"password": "x", "Site_Key": "y", "nested": [{"token": "z", "ok": 1}], "pin": "1234"}) == {
        "password": REDACTED, "Site_Key": REDACTED, "nested": [{"token": REDACTED, "ok": 1}], "pin": REDACTED}
    assert redact("rpt_" + "a" * 43) == REDACTED and redact("lt_" + "a" * 30) == REDACTED
    assert redact("Bearer xyz") == REDACTED and redact("x" * 40) == REDACTED
    assert redact("a" * 300 + " b").endswith("...") and len(redact("a" * 300 + " b")) == 203
    assert len(redact(list(range(50)))) == 21


# --- storage: the campaigns filter -------------------------------------------------------------------------------


def test_call_filter_campaigns(tmp_path: Path) -> None:
    store = CallStore(open_database(tmp_path / "f.db"))
    for call_id, second, campaign in CALLS:
        store.create_call(NewCall(id=call_id, inbound_channel=f"c-{call_id}",
                                  arrived_at=f"2026-11-22T17:00:{second:02d}.000Z"))
        if campaign:
            store.update_call(call_id, campaign=campaign)

    def ids(**kwargs: Any) -> list[str]:
        return [c["id"] for c in store.list_calls(CallFilter(**kwargs)).calls]

    assert ids(campaigns=("spring", "autumn")) == ["call-a1", "call-s2", "call-s1"]
    assert ids(campaigns=("spring",), campaign="autumn") == []
    assert ids(campaigns=()) == []  # an empty list sees nothing, never everything
    assert len(ids(campaigns=None)) == len(CALLS)


# --- the CLI -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, port: int) -> Path:
    path = folder / "ringpool.yaml"
    path.write_text(f"""\
state_dir: var
asterisk: {{bundled: false}}
ari: {{password: unit-test-ari-password}}
admin: {{bind: 127.0.0.1, port: {port}, token: {ADMIN_TOKEN}}}
trunks: [{{name: carrier, match: [127.0.0.1]}}]
destinations: [{{name: desk, host: 127.0.0.1}}]
campaigns: [{{name: spring, destination: desk, numbers: ["5550100001"]}}]
""", encoding="utf-8")
    return path


def cli(config: Path, *args: str) -> int:
    return cli_main(["--config", str(config), "--log-level", "WARNING", "tokens", *args])


def test_cli_offline_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, free_port())  # nobody listens: straight to the database
    assert cli(config, "create", "partner", "--role", "publisher", "--campaign", "spring",
               "--campaign", "autumn") == 0
    out = capsys.readouterr().out
    token = next(word for word in out.split() if word.startswith("rpt_"))
    assert TOKEN_RE.match(token) and "shown only now" in out and "not running" in out
    assert cli(config, "create", "reader", "--role", "read_only") == 0
    capsys.readouterr()
    assert cli(config, "list") == 0
    out = capsys.readouterr().out
    assert "partner" in out and "spring,autumn" in out and "reader" in out and token not in out
    assert cli(config, "revoke", "partner") == 0
    assert "revoked token partner" in capsys.readouterr().out
    assert cli(config, "revoke", "partner") == 1
    assert "no active token" in capsys.readouterr().err
    assert cli(config, "create", "bad", "--role", "publisher") == 1  # a publisher needs campaigns
    assert "campaigns" in capsys.readouterr().err
    assert cli(config, "revoke", "../x") == 2

    db = open_database(tmp_path / "var" / "ringpool.db")
    rows = db.conn.execute("SELECT name, role, campaigns, token_hash, revoked_at FROM api_tokens ORDER BY name").fetchall()
    assert [(r[0], r[1], r[2], r[4] is not None) for r in rows] == [
        ("partner", "publisher", '["spring", "autumn"]', True), ("reader", "read_only", None, False)]
    assert rows[0][3] == hash_token(token)
    audit = db.conn.execute("SELECT actor, role, method, path, status, target FROM audit_log ORDER BY id").fetchall()
    assert audit == [("cli", "admin", "CLI", "ringpool tokens create", 201, "name=partner"),
                     ("cli", "admin", "CLI", "ringpool tokens create", 201, "name=reader"),
                     ("cli", "admin", "CLI", "ringpool tokens revoke", 200, "name=partner")]
    db.conn.close()
    files = [p for p in (tmp_path / "var").iterdir() if p.name.startswith("ringpool.db")]
    assert all(token.encode() not in p.read_bytes() for p in files)


async def test_cli_goes_through_the_running_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    config = write_config(tmp_path, port)
    store = AsyncCallStore(tmp_path / "var" / "ringpool.db")
    await store.open()

    async def status() -> dict[str, Any]:
        return {}

    server = TestServer(build_admin_app(AdminDeps(store=store, token=ADMIN_TOKEN, status=status)),
                        host="127.0.0.1", port=port)
    client = TestClient(server)
    await client.start_server()
    try:
        # the CLI blocks (urllib): run it on a thread while the server runs on this loop
        assert await asyncio.to_thread(cli, config, "create", "reader", "--role", "read_only") == 0
        out = capsys.readouterr().out
        token = next(word for word in out.split() if word.startswith("rpt_"))
        assert "not running" not in out
        resp = await client.get("/api/v1/calls", headers=bearer(token))
        assert resp.status == 200
        assert await asyncio.to_thread(cli, config, "list") == 0
        assert "reader" in capsys.readouterr().out
        assert await asyncio.to_thread(cli, config, "revoke", "reader") == 0
        resp = await client.get("/api/v1/calls", headers=bearer(token))
        assert resp.status == 401  # the running app's cache dropped it at once
        resp = await client.get("/api/v1/audit", headers=ADMIN)
        assert [(e["actor"], e["method"], e["target"]) for e in (await resp.json())["entries"]] == [
            ("config-admin", "POST", "name=reader"), ("config-admin", "DELETE", "name=reader")]
    finally:
        await client.close()
        await store.close()
