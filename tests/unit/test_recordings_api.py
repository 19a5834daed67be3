"""Recordings, voicemail, sale amounts and payouts on the admin API (ari_app/admin/recordings.py and
ari_app/admin/conversions.py), against the real admin app, a real AsyncCallStore and settings with payout rules."""

from __future__ import annotations

import io
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import auth
from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.admin.recordings import download_name, stored_audio
from ari_app.config import Settings, load_settings
from ari_app.routing.payout import payout_fields
from ari_app.service import catalog_rows
from storage.async_store import AsyncCallStore
from storage.call_history import settle
from storage.calls import NewCall
from storage.db import format_time

TOKEN = "recordings-test-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """\
state_dir: var
asterisk: {bundled: false}
ari: {password: unit-test-ari-password}
trunks: [{name: carrier, match: [127.0.0.1]}]
destinations: [{name: desk, host: 127.0.0.1}]
campaigns:
  - name: spring
    destination: desk
    numbers: ["5550100001"]
    payout:
      revenue: 50
      base: 5
      qualify: {talk_seconds: 30}
      bonuses: [{amount: 5, when: {converted: true}}]
      sale_share: 0.1
  - {name: autumn, destination: desk, numbers: ["5550100002"]}
"""

CALLS = [  # id, minute, campaign, talk seconds (None: still in progress)
    ("call-s1", 0, "spring", 60),
    ("call-s2", 1, "spring", 10),  # too short to qualify
    ("call-s3", 2, "spring", None),
    ("call-a1", 3, "autumn", 60),  # a campaign without payout rules
]


def t(minute: int, seconds: int = 0) -> str:
    return format_time(datetime(2026, 11, 22, 17, minute, tzinfo=timezone.utc) + timedelta(seconds=seconds))


def wav_bytes(frames: int = 800) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * frames)
    return out.getvalue()


class Api:
    def __init__(self, client: TestClient, store: AsyncCallStore, settings: Settings) -> None:
        self.client, self.store, self.settings = client, store, settings

    async def set(self, call_id: str, **fields: Any) -> None:
        await self.store.call("update_call", call_id, **fields)

    async def row(self, call_id: str) -> dict[str, Any]:
        return await self.store.call("call_row", call_id)

    async def post(self, path: str, body: Any, headers: dict[str, str] = ADMIN) -> tuple[int, Any]:
        resp = await self.client.post(path, json=body, headers=headers)
        return resp.status, await resp.json()

    async def token(self, name: str, role: str, campaigns: list[str] | None = None) -> dict[str, str]:
        body: dict[str, Any] = {"name": name, "role": role} | ({"campaigns": campaigns} if campaigns else {})
        status, data = await self.post("/api/v1/tokens", body)
        assert status == 201, data
        return {"Authorization": f"Bearer {data['token']}"}

    def write(self, relative: str, data: bytes) -> Path:
        path = self.settings.state_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


async def seed(store: AsyncCallStore, settings: Settings) -> None:
    for call_id, minute, campaign, talk in CALLS:
        await store.call("create_call", NewCall(id=call_id, inbound_channel=f"chan-{call_id}", arrived_at=t(minute),
                                                 dialed_number="15550100001", caller_number=f"1555111000{minute}"))
        await store.call("update_call", call_id, campaign=campaign, decision="proceed", bridged_at=t(minute))
        if talk is not None:
            await store.call("finish_call", call_id, disposition="completed", ended_at=t(minute, talk))
            # what the end of the call stores (ari_app/routing/service.py settle)
            await store.run(settle, store.db, call_id, lambda row: payout_fields(store.db, row, settings))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "ringpool.yaml").write_text(CONFIG, encoding="utf-8")
    return load_settings(tmp_path / "ringpool.yaml")


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    store = AsyncCallStore(settings.database)
    await store.open()
    await store.call("sync_catalog", *catalog_rows(settings))
    await seed(store, settings)

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=status,
                                                             settings=settings))))
    await client.start_server()
    try:
        yield Api(client, store, settings)
    finally:
        await client.close()
        await store.close()


# --- downloads ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["recording", "voicemail"])
async def test_download_streams_the_wav_as_an_attachment(api: Api, kind: str) -> None:
    audio = wav_bytes()
    relative = f"recordings/call-s1{'' if kind == 'recording' else '-voicemail'}.wav"
    api.write(relative, audio)
    await api.set("call-s1", **{kind: relative})
    resp = await api.client.get(f"/api/v1/calls/call-s1/{kind}", headers=ADMIN)
    assert resp.status == 200
    assert resp.content_type == "audio/wav"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="ringpool-call-s1-{kind}.wav"'
    assert resp.headers["X-Content-Type-Options"] == "nosniff" and "no-store" in resp.headers["Cache-Control"]
    assert await resp.read() == audio


async def test_head_answers_without_the_body(api: Api) -> None:
    api.write("recordings/call-s1.wav", wav_bytes())
    await api.set("call-s1", recording="recordings/call-s1.wav")
    resp = await api.client.head("/api/v1/calls/call-s1/recording", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "audio/wav" and await resp.read() == b""


@pytest.mark.parametrize(("call_id", "stored", "message"), [
    ("call-none", None, "no call call-none"),
    ("call-s1", None, "has no recording"),
    ("call-s1", "recordings/call-s1.wav", "file of call call-s1 is missing"),
    ("call-s1", "recordings", "is missing"),  # the folder itself
])
async def test_missing_call_column_or_file_is_a_json_404(api: Api, call_id: str, stored: str | None,
                                                         message: str) -> None:
    (api.settings.state_dir / "recordings").mkdir(parents=True, exist_ok=True)
    if stored is not None:
        await api.set(call_id, recording=stored)
    resp = await api.client.get(f"/api/v1/calls/{call_id}/recording", headers=ADMIN)
    assert resp.status == 404 and resp.content_type == "application/json"
    assert message in (await resp.json())["error"]


async def test_an_odd_call_id_is_a_400(api: Api) -> None:
    resp = await api.client.get("/api/v1/calls/a%20b/recording", headers=ADMIN)
    assert resp.status == 400 and "call id" in (await resp.json())["error"]


async def test_downloads_need_a_token(api: Api) -> None:
    resp = await api.client.get("/api/v1/calls/call-s1/recording")
    assert resp.status == 401


@pytest.mark.parametrize("stored", [
    "recordings/../ringpool.db",  # the database, next to recordings/
    "../ringpool.yaml",  # outside the state folder
    "SECRET_ABSOLUTE",  # an absolute path (replaced by the secret's path)
    "recordings/link.wav",  # a link inside recordings/ to a file outside
    "recordings/\x00.wav",
])
async def test_a_stored_path_outside_the_recordings_folder_is_never_served(api: Api, stored: str) -> None:
    secret = api.write("secrets/admin-token", b"top-secret-token-bytes")
    (api.settings.state_dir / "recordings").mkdir(parents=True, exist_ok=True)
    (api.settings.state_dir / "recordings" / "link.wav").symlink_to(secret)
    await api.set("call-s1", recording=str(secret) if stored == "SECRET_ABSOLUTE" else stored)
    resp = await api.client.get("/api/v1/calls/call-s1/recording", headers=ADMIN)
    assert resp.status == 404 and resp.content_type == "application/json"
    assert b"top-secret" not in await resp.read()


def test_stored_audio_accepts_only_files_inside_recordings(tmp_path: Path) -> None:
    (tmp_path / "recordings" / "sub").mkdir(parents=True)
    (tmp_path / "recordings" / "sub" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "recordings-old.wav").write_bytes(b"RIFF")  # shares the folder's name as a prefix
    assert stored_audio(tmp_path, "recordings/sub/a.wav") == (tmp_path / "recordings/sub/a.wav").resolve()
    assert stored_audio(tmp_path, "recordings/sub/../sub/a.wav") is not None
    for stored in ("recordings-old.wav", "recordings/../recordings-old.wav", "recordings/sub", "", None,
                   "recordings/nope.wav"):
        assert stored_audio(tmp_path, stored) is None, stored


def test_download_name_is_safe() -> None:
    assert download_name("1700000000.42", "voicemail") == "ringpool-1700000000.42-voicemail.wav"
    assert download_name('a"b\r\n/c', "recording") == "ringpool-a_b___c-recording.wav"


async def test_a_read_only_token_may_download_and_reads_are_not_audited(api: Api) -> None:
    api.write("recordings/call-a1.wav", wav_bytes())
    await api.set("call-a1", recording="recordings/call-a1.wav")
    reader = await api.token("reader", "read_only")
    resp = await api.client.get("/api/v1/calls/call-a1/recording", headers=reader)
    assert resp.status == 200
    resp = await api.client.get("/api/v1/audit", headers=ADMIN)
    assert [e["path"] for e in (await resp.json())["entries"]] == ["/api/v1/tokens"]


async def test_a_publisher_never_gets_another_campaigns_recording(api: Api) -> None:
    api.write("recordings/call-a1.wav", wav_bytes())
    await api.set("call-a1", recording="recordings/call-a1.wav")
    publisher = await api.token("pub", "publisher", ["spring"])
    resp = await api.client.get("/api/v1/calls/call-a1/recording", headers=publisher)
    assert resp.status in (403, 404) and resp.content_type == "application/json"


async def test_once_opened_to_publishers_the_handler_keeps_them_to_their_campaigns(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's own check, as GET /api/v1/calls/{call_id}: with the download routes in PUBLISHER_ROUTES, a
    publisher gets its campaigns' recordings and a 404 for anyone else's, the same 404 as an unknown call."""
    monkeypatch.setattr(auth, "PUBLISHER_ROUTES", auth.PUBLISHER_ROUTES | {
        "/api/v1/calls/{call_id}/recording", "/api/v1/calls/{call_id}/voicemail"})
    for call_id in ("call-s1", "call-a1"):
        api.write(f"recordings/{call_id}.wav", wav_bytes())
        await api.set(call_id, recording=f"recordings/{call_id}.wav")
    publisher = await api.token("pub", "publisher", ["spring"])
    resp = await api.client.get("/api/v1/calls/call-s1/recording", headers=publisher)
    assert resp.status == 200 and resp.content_type == "audio/wav"
    resp = await api.client.get("/api/v1/calls/call-a1/recording", headers=publisher)
    assert resp.status == 404 and (await resp.json())["error"] == "no call call-a1"


# --- sale amounts and payouts ------------------------------------------------------------------------------------

def money(call: dict[str, Any]) -> tuple[Any, ...]:
    return call["sale_amount"], call["revenue"], call["payout"], call["margin"]


async def test_the_end_of_call_payout_is_there_before_any_conversion(api: Api) -> None:
    assert money(await api.row("call-s1")) == (None, 50.0, 5.0, 45.0)
    assert money(await api.row("call-s2")) == (None, 0.0, 0.0, 0.0)  # did not qualify


async def test_a_sale_amount_reprices_the_call(api: Api) -> None:
    status, call = await api.post("/api/v1/calls/call-s1/conversion", {"name": "sale", "sale_amount": 250})
    assert status == 200, call
    # base 5 + converted bonus 5 + 10% of 250
    assert money(call) == (250, 50.0, 35.0, 15.0)
    assert [i["item"] for i in call["payout_details"]["items"]] == ["qualify", "revenue", "base", "bonus",
                                                                    "sale_share"]
    assert call["converted_at"] and call["conversion_name"] == "sale"
    assert money(await api.row("call-s1")) == money(call)  # stored, not only answered
    # posted again without a sale amount: the stored one stays, and so does the payout
    status, call = await api.post("/api/v1/calls/call-s1/conversion", {"name": "sale", "value": 99.5})
    assert status == 200 and money(call) == (250, 50.0, 35.0, 15.0) and call["conversion_value"] == 99.5


async def test_the_webhook_snapshot_carries_the_new_payout(api: Api) -> None:
    calls = api.store.store
    assert calls is not None
    seen: list[tuple[str, Any]] = []
    calls.observers.append(lambda event, call_id: seen.append((event, money(calls.call_row(call_id) or {}))))
    await api.post("/api/v1/calls/call-s1/conversion", {"sale_amount": 100})
    assert seen == [("call.converted", (100, 50.0, 20.0, 30.0))]


async def test_a_call_that_did_not_qualify_stays_at_zero(api: Api) -> None:
    status, call = await api.post("/api/v1/calls/call-s2/conversion", {"sale_amount": 1000})
    assert status == 200 and money(call) == (1000, 0.0, 0.0, 0.0)


async def test_a_call_in_progress_keeps_its_sale_amount_for_the_end_of_call(api: Api) -> None:
    status, call = await api.post("/api/v1/calls/call-s3/conversion", {"sale_amount": 80.5})
    assert status == 200 and money(call) == (80.5, None, None, None)


async def test_a_campaign_without_rules_stores_the_sale_amount_only(api: Api) -> None:
    status, call = await api.post("/api/v1/calls/call-a1/conversion", {"sale_amount": 40})
    assert status == 200 and money(call) == (40, None, None, None)


async def test_spam_earns_and_pays_nothing_until_cleared(api: Api) -> None:
    await api.post("/api/v1/calls/call-s1/conversion", {"sale_amount": 250})
    status, call = await api.post("/api/v1/calls/call-s1/spam", {"spam": True})
    assert status == 200 and call["spam"] == 1 and money(call) == (250, 0.0, 0.0, 0.0)
    assert [i["item"] for i in call["payout_details"]["items"]] == ["spam"]
    status, call = await api.post("/api/v1/calls/call-s1/spam", {"spam": False})
    assert status == 200 and money(call) == (250, 50.0, 35.0, 15.0)


async def test_an_unknown_call_is_a_404_and_nothing_is_stored(api: Api) -> None:
    status, body = await api.post("/api/v1/calls/call-none/conversion", {"sale_amount": 5})
    assert status == 404 and "call-none" in body["error"]


@pytest.mark.parametrize("raw", [b'{"sale_amount": -1}', b'{"sale_amount": "10"}', b'{"sale_amount": true}',
                                 b'{"sale_amount": 1e13}', b'{"sale_amount": NaN}', b'{"sale_amount": Infinity}',
                                 b'{"sale_amount": [1]}'])
async def test_a_bad_sale_amount_is_a_400_naming_it(api: Api, raw: bytes) -> None:
    resp = await api.client.post("/api/v1/calls/call-s1/conversion", data=raw,
                                 headers=ADMIN | {"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"].startswith("sale_amount:")
    assert money(await api.row("call-s1")) == (None, 50.0, 5.0, 45.0)  # nothing changed


async def test_read_only_and_publisher_tokens_may_not_post_a_sale(api: Api) -> None:
    for headers in (await api.token("reader", "read_only"), await api.token("pub", "publisher", ["spring"])):
        status, _ = await api.post("/api/v1/calls/call-s1/conversion", {"sale_amount": 5}, headers=headers)
        assert status == 403
    assert (await api.row("call-s1"))["sale_amount"] is None


async def test_without_settings_a_sale_amount_is_stored_and_nothing_repriced(tmp_path: Path) -> None:
    store = AsyncCallStore(tmp_path / "bare.db")
    await store.open()
    await store.call("create_call", NewCall(id="c1", inbound_channel="chan-c1", arrived_at=t(0)))
    await store.call("finish_call", "c1", disposition="completed", ended_at=t(1))

    async def status() -> dict[str, Any]:
        return {}

    app = build_admin_app(AdminDeps(store=store, token=TOKEN, status=status))
    assert not any(r.resource is not None and r.resource.canonical.endswith("/recording") for r in app.router.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.post("/api/v1/calls/c1/conversion", json={"sale_amount": 12}, headers=ADMIN)
        assert resp.status == 200 and money(await resp.json()) == (12, None, None, None)
    finally:
        await client.close()
        await store.close()


# --- the documented response shapes, on real rows ------------------------------------------------------------------

def test_downloads_and_sales_conform_to_the_openapi_document(tmp_path: Path) -> None:
    """The schemathesis run never finds a call with a recording; these requests do, and are validated the same way."""
    pytest.importorskip("schemathesis")
    from tests.unit.test_api_schemathesis import AUTH as LIVE_AUTH, CHECKS, LiveServer, schema

    server = LiveServer(tmp_path)
    server.start()
    try:
        audio = wav_bytes()
        (tmp_path / "var" / "recordings").mkdir(parents=True, exist_ok=True)
        (tmp_path / "var" / "recordings" / "call-0-voicemail.wav").write_bytes(audio)
        server._run(server.store.call("update_call", "call-0", voicemail="recordings/call-0-voicemail.wav",
                                      recording="recordings/call-0.wav"))  # this one is missing

        def run(path: str, method: str, call_id: str, **kwargs: Any) -> Any:
            return schema[path][method].Case(path_parameters={"call_id": call_id}, **kwargs).call_and_validate(
                base_url=server.url, headers=LIVE_AUTH, checks=CHECKS)

        response = run("/api/v1/calls/{call_id}/voicemail", "GET", "call-0")
        assert response.status_code == 200 and response.content == audio
        assert run("/api/v1/calls/{call_id}/recording", "GET", "call-0").status_code == 404
        assert run("/api/v1/calls/{call_id}/recording", "GET", "call-1").status_code == 404
        response = run("/api/v1/calls/{call_id}/conversion", "POST", "call-0", body={"sale_amount": 12.5},
                       media_type="application/json")
        assert response.status_code == 200 and response.json()["sale_amount"] == 12.5
    finally:
        server.stop()
