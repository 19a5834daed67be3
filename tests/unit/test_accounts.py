"""Softphone test accounts: configuration validation (located errors), rendering into pjsip.conf, generated
passwords, test-call marking, the admin API and the fail2ban-style security watch."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.accounts import AccountManager
from ari_app.accounts.model import (ACCOUNTS_CONF, AccountSpec, account_sections, bans_section, password_digest,
                                    render_accounts_conf, secret_name)
from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.asterisk_config import render_all
from ari_app.config import load_settings
from ari_app.security_watch import FailureCounter, SecurityWatch, parse_security_line, remote_ip
from ari_app.yaml_located import ConfigError
from dialplan.destinations import dial_string
from dialplan.signaling import signaling_from_channel
from storage.async_store import AsyncCallStore
from storage.calls import CallFilter, NewCall

BASE = """\
state_dir: var
asterisk:
  bundled: false
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
    caller_name: Alice Tester
    headers:
      Privacy: id
      P-Asserted-Identity: "<sip:+15557770100@carrier.example;user=phone>"
  - username: bob
    password: bob-password-1234
    caller_number: anonymous
security:
  max_failures: 2
  window: 30
  ban_seconds: 60
  never_ban: [10.0.0.0/8]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, old: str, new: str) -> ConfigError:
    assert BASE.count(old) == 1, old
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, BASE.replace(old, new)))
    return info.value


def line_of(needle: str) -> int:
    return next(i for i, line in enumerate(BASE.splitlines(), 1) if needle in line)


# --- configuration ------------------------------------------------------------------------------------------

def test_accounts_security_and_account_destination_load(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, BASE))
    alice, bob = settings.test_accounts["alice"], settings.test_accounts["bob"]
    assert alice.password is None and alice.caller_number == "+15557770100" and alice.caller_name == "Alice Tester"
    assert alice.headers == {"Privacy": "id", "P-Asserted-Identity": "<sip:+15557770100@carrier.example;user=phone>"}
    assert bob.password == "bob-password-1234" and bob.caller_number == "anonymous"
    phone = settings.destinations["phone"]
    assert phone.kind == "sip" and phone.account == "bob" and phone.endpoint == "bob"
    assert dial_string(phone, settings.trunks) == "PJSIP/bob"
    assert settings.security.max_failures == 2 and settings.security.never_ban == ("10.0.0.0/8",)
    assert settings.asterisk.accounts_file is None  # external Asterisk: only when configured


def test_bundled_defaults_put_the_accounts_file_and_security_log_in_the_run_folder(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, BASE.replace("bundled: false", "bundled: true")))
    run = (tmp_path / "var" / "asterisk").resolve()
    assert settings.asterisk.accounts_file == run / "etc" / ACCOUNTS_CONF
    assert settings.asterisk.security_log == run / "log" / "security.log"


@pytest.mark.parametrize("username, message", [
    ("15551234567", "not a number"),
    ("trunk-carrier", "reserved"),
    ("dest-desk", "reserved"),
    ("anonymous", "reserved"),
    ("Alice", "lower-case"),
    ("a", "2-32 characters"),
])
def test_bad_usernames_are_located(tmp_path: Path, username: str, message: str) -> None:
    exc = error_for(tmp_path, "  - username: alice", f"  - username: \"{username}\"")
    assert exc.line == line_of("username: alice") and exc.key == "test_accounts[0].username"
    assert message in exc.message


@pytest.mark.parametrize("old, new, key, message", [
    ("password: bob-password-1234", "password: short", "test_accounts[1].password", "12 to 128"),
    ("password: bob-password-1234", "password: \"has space in it\"", "test_accounts[1].password", "without spaces"),
    ("caller_number: anonymous", "caller_number: \"555-1234\"", "test_accounts[1].caller_number", "digits"),
    ("caller_name: Alice Tester", "caller_name: 'Evil\"Name'", "test_accounts[0].caller_name", "quotes"),
    ("      Privacy: id", "      X-Evil: id", "test_accounts[0].headers", "not supported"),
    ("    account: bob", "    account: trunk-x", "destinations[1].account", "reserved"),
    ("    account: bob", "    account: bob\n    host: 127.0.0.1", "destinations[1].host", "either an account"),
    ("  max_failures: 2", "  max_failures: 0", "security.max_failures", "out of range"),
    ("  never_ban: [10.0.0.0/8]", "  never_ban: [nowhere]", "security.never_ban", "not an IP"),
])
def test_bad_account_values_are_located(tmp_path: Path, old: str, new: str, key: str, message: str) -> None:
    exc = error_for(tmp_path, old, new)
    assert exc.key == key and message in exc.message, str(exc)
    assert exc.line is not None


def test_duplicate_username(tmp_path: Path) -> None:
    exc = error_for(tmp_path, "  - username: bob\n", "  - username: alice\n")
    assert exc.key == "test_accounts" and "duplicate" in exc.message


# --- rendering ----------------------------------------------------------------------------------------------

def test_account_sections_digest_auth_registration_nat_and_context() -> None:
    spec = AccountSpec(username="alice", password_digest=password_digest("alice", "secret-password"),
                       caller_number="+15557770100", caller_name="Alice",
                       headers={"P-Asserted-Identity": "<sip:1@x;user=phone>", "Privacy": "id"})
    text = account_sections(spec, opus=True)
    for line in ("type = endpoint", "context = ringpool-test", "identify_by = username", "auth = alice",
                 "allow = ulaw,alaw,opus", "rtp_symmetric = yes", "force_rport = yes", "rewrite_contact = yes",
                 "auth_type = digest", "realm = ringpool", "max_contacts = 1", "remove_existing = yes",
                 f"password_digest = md5:{password_digest('alice', 'secret-password')}",
                 "set_var = RINGPOOL_TA_NUMBER=+15557770100", "set_var = RINGPOOL_TA_NAME=Alice",
                 "set_var = RINGPOOL_TA_PRIVACY=id", "set_var = RINGPOOL_TA_PAI=<sip:1@x\\;user=phone>"):
        assert line in text.splitlines(), line
    assert "secret-password" not in text
    assert "opus" not in account_sections(spec, opus=False)


def test_bans_render_as_a_pjsip_acl() -> None:
    assert bans_section([]) == ""
    text = bans_section(["192.0.2.7", "2001:db8::1", "192.0.2.7"])
    assert text.splitlines() == ["[ringpool-bans]", "type = acl", "deny = 192.0.2.7/32", "deny = 2001:db8::1/128"]
    with pytest.raises(ValueError):
        bans_section(["192.0.2.7\n[evil]"])
    assert "[ringpool-bans]" in render_accounts_conf([], ["192.0.2.7"])


def test_render_all_includes_accounts_with_generated_password_kept_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, BASE))
    files = render_all(settings, root=tmp_path / "root", run_dir=tmp_path / "run", ari_password="x")
    assert "endpoint_identifier_order = username,ip" in files["pjsip.conf"]
    assert f"#tryinclude {ACCOUNTS_CONF}" in files["pjsip.conf"]
    assert "[dest-phone]" not in files["pjsip.conf"], "an account destination is the account's own endpoint"
    assert "RINGPOOL_TEST_ACCOUNT" in files["ari.conf"]
    assert "[ringpool-test]" in files["extensions.conf"] and "Stasis(ringpool,inbound)" in files["extensions.conf"]
    secret = settings.state_dir / "secrets" / secret_name("alice")
    password = secret.read_text().strip()
    assert len(password) >= 20 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    conf = files[ACCOUNTS_CONF]
    assert f"md5:{password_digest('alice', password)}" in conf
    assert f"md5:{password_digest('bob', 'bob-password-1234')}" in conf
    again = render_all(settings, root=tmp_path / "root", run_dir=tmp_path / "run", ari_password="x")
    assert again[ACCOUNTS_CONF] == conf, "the generated password is stable"


# --- test-call marking --------------------------------------------------------------------------------------

def test_signaling_and_record_mark_test_calls() -> None:
    channel = {"id": "c1", "caller": {"number": "+15557770100", "name": "Alice"}, "dialplan": {"exten": "5550100001"},
               "channelvars": {"RINGPOOL_TRUNK": "alice", "RINGPOOL_TEST_ACCOUNT": "alice", "RINGPOOL_PRIVACY": "id"}}
    s = signaling_from_channel(channel)
    assert s.test_account == "alice" and s.caller_number == "15557770100" and s.trunk is None
    # a header value can never make a trunk call a test call: only the test context sets RINGPOOL_TEST_ACCOUNT
    channel["channelvars"] = {"RINGPOOL_TRUNK": "trunk-carrier", "RINGPOOL_PAI": "alice"}
    trunk_call = signaling_from_channel(channel)
    assert trunk_call.test_account is None and trunk_call.trunk == "trunk-carrier"


# --- admin API with a real AccountManager and store ------------------------------------------------------

TOKEN = "unit-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient, AccountManager, list[str]]]:
    text = BASE
    path = write(tmp_path, text.replace("  bundled: false\n", f"  bundled: false\n  accounts_file: {tmp_path}/acc.conf\n"))
    settings = load_settings(path)
    reloads: list[str] = []

    async def reload() -> None:
        reloads.append((tmp_path / "acc.conf").read_text())

    manager = AccountManager(settings, reload=reload)
    await manager.open()
    store = AsyncCallStore(settings.database)
    await store.open()
    for i, (trunk, account, number) in enumerate([("trunk-carrier", None, "1"), (None, "alice", "2")]):
        await store.call("create_call", NewCall(id=f"call-{i}", inbound_channel=f"c{i}", trunk=trunk,
                                                 is_test=int(account is not None), test_account=account,
                                                 arrived_at=f"2026-01-01T00:00:0{i}.000Z", dialed_number=number))

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=status,
                                                             accounts=manager))))
    await client.start_server()
    try:
        yield client, manager, reloads
    finally:
        await client.close()
        await store.close()
        await manager.close()


async def test_calls_filter_by_test_flag(api: tuple[TestClient, AccountManager, list[str]]) -> None:
    client, _m, _r = api
    for value, expected in (("true", ["call-1"]), ("false", ["call-0"])):
        resp = await client.get("/api/v1/calls", params={"test": value}, headers=AUTH)
        assert [c["id"] for c in (await resp.json())["calls"]] == expected
    resp = await client.get("/api/v1/calls", params={"test": "maybe"}, headers=AUTH)
    assert resp.status == 400 and "test:" in (await resp.json())["error"]


async def test_accounts_api_create_list_delete(api: tuple[TestClient, AccountManager, list[str]]) -> None:
    client, _manager, reloads = api
    resp = await client.get("/api/v1/test-accounts")
    assert resp.status == 401
    resp = await client.post("/api/v1/test-accounts", headers=AUTH,
                             json={"username": "carol", "caller_number": "15557770300", "headers": {"privacy": "id"}})
    body = await resp.json()
    assert resp.status == 201 and len(body["password"]) >= 20 and body["applied"] is True, body
    assert body["headers"] == {"Privacy": "id"} and body["source"] == "api"
    assert "[carol]" in reloads[-1] and f"md5:{password_digest('carol', body['password'])}" in reloads[-1]
    assert body["password"] not in reloads[-1]
    resp = await client.get("/api/v1/test-accounts", headers=AUTH)
    accounts = (await resp.json())["accounts"]
    assert [a["username"] for a in accounts] == ["alice", "bob", "carol"]
    assert all("password" not in a and "password_digest" not in a for a in accounts)

    for payload, status, field in [
        ({"username": "carol", "caller_number": "1"}, 409, "username"),
        ({"username": "alice", "caller_number": "1"}, 409, "username"),
        ({"username": "12345", "caller_number": "1"}, 400, "username"),
        ({"username": "dave", "caller_number": "12ab"}, 400, "caller_number"),
        ({"username": "dave"}, 400, "caller_number"),
        ({"username": "dave", "caller_number": "1", "password": "short"}, 400, "password"),
        ({"username": "dave", "caller_number": "1", "headers": {"Via": "x"}}, 400, "headers"),
        ({"username": "dave", "caller_number": "1", "admin": True}, 400, "admin"),
    ]:
        resp = await client.post("/api/v1/test-accounts", headers=AUTH, json=payload)
        error = (await resp.json())["error"]
        assert resp.status == status and error.startswith(field + ":"), (payload, error)
    resp = await client.post("/api/v1/test-accounts", headers=AUTH, data="not json")
    assert resp.status == 400

    for name, status in (("alice", 409), ("bob", 409), ("nobody", 404), ("carol", 200)):
        resp = await client.delete(f"/api/v1/test-accounts/{name}", headers=AUTH)
        assert resp.status == status, (name, await resp.json())
    assert "[carol]" not in reloads[-1]


async def test_security_watch_counts_bans_and_spares_trunks(api: tuple[TestClient, AccountManager, list[str]]) -> None:
    client, manager, reloads = api
    watch = SecurityWatch(manager.settings, manager, path=Path("/nonexistent"))

    attempts = iter(range(1000))

    def line(event: str, address: str, account: str = "alice") -> str:  # each line its own attempt (SessionID)
        return (f'[2026-01-01 00:00:00.000] SECURITY[1] res_security_log.c: SecurityEvent="{event}",'
                f'EventTV="2026-01-01T00:00:00.000+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
                f'AccountID="{account}",SessionID="s{next(attempts)}",LocalAddress="IPV4/UDP/127.0.0.1/5060",'
                f'RemoteAddress="IPV4/UDP/{address}/5062",Challenge="c",Response="r",ExpectedResponse=""')

    await watch.handle_line(line("ChallengeSent", "192.0.2.9"), 0.0)  # not a failure: not even stored
    await watch.handle_line(line("ChallengeResponseFailed", "192.0.2.9"), 1.0)
    assert (await manager.bans()) == []
    await watch.handle_line(line("InvalidAccountID", "192.0.2.9", "scanner"), 2.0)
    bans = await manager.bans()
    assert [b["address"] for b in bans] == ["192.0.2.9"] and bans[0]["failures"] == 2
    assert "deny = 192.0.2.9/32" in reloads[-1]
    for address in ("127.0.0.1", "10.1.2.3"):  # the trunk and never_ban
        for t in range(3):
            await watch.handle_line(line("ChallengeResponseFailed", address), 3.0 + t)
    assert [b["address"] for b in await manager.bans()] == ["192.0.2.9"]

    resp = await client.get("/api/v1/security/events", params={"address": "192.0.2.9"}, headers=AUTH)
    events = (await resp.json())["events"]
    assert [e["event"] for e in events] == ["Banned", "InvalidAccountID", "ChallengeResponseFailed"]
    resp = await client.get("/api/v1/security/bans", headers=AUTH)
    assert [b["address"] for b in (await resp.json())["bans"]] == ["192.0.2.9"]
    resp = await client.delete("/api/v1/security/bans/192.0.2.9", headers=AUTH)
    assert resp.status == 200 and "192.0.2.9" not in reloads[-1]
    resp = await client.delete("/api/v1/security/bans/192.0.2.9", headers=AUTH)
    assert resp.status == 404
    resp = await client.get("/api/v1/security/events", params={"address": "x;drop"}, headers=AUTH)
    assert resp.status == 400


def test_security_line_parsing_and_window() -> None:
    fields = parse_security_line('SecurityEvent="InvalidPassword",AccountID="a\\"b",RemoteAddress="IPV6/UDP/::1/5060"')
    assert fields is not None and fields["SecurityEvent"] == "InvalidPassword"
    assert remote_ip(fields["RemoteAddress"]) == "::1" and remote_ip("IPV4/UDP/not-an-ip/1") is None
    assert parse_security_line("VERBOSE something else") is None
    counter = FailureCounter(3, 10)
    assert [counter.add("a", t) for t in (0, 1, 2)] == [1, 2, 3]
    assert counter.add("a", 11.5) == 2  # 0 and 1 fell out of the 10 s window, 2 is still in
    # one failed attempt logged twice (or a retransmitted REGISTER under the same SessionID) counts once
    twice = FailureCounter(3, 10)
    assert [twice.add("b", t, "session-1") for t in (0, 0.001, 0.6)] == [1, 1, 1]
    assert twice.add("b", 1, "session-2") == 2
    json.dumps(fields)
