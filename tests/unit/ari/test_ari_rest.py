"""AriRest against the fake ARI server."""

from __future__ import annotations

import time

import aiohttp
import pytest

from ari_app.ari import (
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriRest,
    AriServerError,
    AriTimeout,
    AriUnprocessable,
)
from ari_app.ari.errors import extract_message
from ari_app.ari.rest import ari_root_url, render_params


@pytest.fixture
async def rest(fake_ari):
    client = AriRest(fake_ari.base_url, fake_ari.user, fake_ari.password, timeout=2.0)
    yield client
    await client.close()


async def test_sends_basic_auth(rest, fake_ari):
    info = await rest.get_info()
    assert info["system"]["version"] == "22.10.1"
    assert fake_ari.requests[-1]["auth"] == fake_ari.auth_header
    assert fake_ari.requests[-1]["path"] == "/ari/asterisk/info"


async def test_wrong_password_is_http_401(fake_ari):
    bad = AriRest(fake_ari.base_url, fake_ari.user, "wrong")
    try:
        with pytest.raises(AriHttpError) as info:
            await bad.get_info()
    finally:
        await bad.close()
    assert info.value.status == 401
    assert info.value.message == "Authentication required"
    assert type(info.value) is AriHttpError


def test_render_params():
    assert render_params(
        {"a": True, "b": False, "c": None, "d": 5, "e": ["x", "y"], "f": "s"}
    ) == {"a": "true", "b": "false", "d": "5", "e": "x,y", "f": "s"}
    assert render_params(None) == {}


async def test_params_on_the_wire(rest, fake_ari):
    result = await rest.request(
        "post", "echo", params={"yes": True, "no": False, "gone": None, "n": 3, "m": ["a", "b"]}
    )
    assert result["method"] == "POST"
    assert result["path"] == "/ari/echo"
    assert result["query"] == {"yes": "true", "no": "false", "n": "3", "m": "a,b"}


def test_root_url_variants():
    assert ari_root_url("http://h:8088") == "http://h:8088/ari"
    assert ari_root_url("http://h:8088/") == "http://h:8088/ari"
    assert ari_root_url("http://h:8088/ari/") == "http://h:8088/ari"


async def test_base_url_with_ari_suffix(fake_ari):
    client = AriRest(fake_ari.base_url + "/ari/", fake_ari.user, fake_ari.password)
    try:
        assert (await client.get_info())["system"]["entity_id"] == "fake"
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, AriBadRequest),
        (404, AriNotFound),
        (409, AriConflict),
        (422, AriUnprocessable),
        (500, AriServerError),
        (503, AriServerError),
        (403, AriHttpError),
    ],
)
async def test_typed_http_errors(rest, code, cls):
    with pytest.raises(cls) as info:
        await rest.request("GET", f"/status/{code}")
    err = info.value
    assert type(err) is cls
    assert isinstance(err, AriError)
    assert (err.status, err.method, err.path, err.message) == (
        code,
        "GET",
        f"/status/{code}",
        f"fake error {code}",
    )
    assert f"HTTP {code}" in str(err)


async def test_error_without_json_body_uses_text(rest):
    with pytest.raises(AriServerError) as info:
        await rest.request("GET", "/status-text/502")
    assert info.value.message == "plain failure"


def test_extract_message_fallbacks():
    assert extract_message(b'{"message": "Channel not found"}', "x") == "Channel not found"
    assert extract_message(b"", "Not Found") == "Not Found"
    assert extract_message(b'{"error": 1}', "x") == '{"error": 1}'


async def test_channel_not_found(rest):
    with pytest.raises(AriNotFound) as info:
        await rest.get_channel("nope")
    assert info.value.message == "Channel not found"
    assert info.value.path == "/channels/nope"


async def test_204_returns_none(rest, fake_ari):
    assert await rest.request("DELETE", "/channels/chan-1") is None
    assert "chan-1" not in fake_ari.channels


async def test_timeout_raises_ari_timeout(rest):
    t0 = time.monotonic()
    with pytest.raises(AriTimeout) as info:
        await rest.request("GET", "/slow", timeout=0.2)
    assert time.monotonic() - t0 < 1.5
    assert isinstance(info.value, TimeoutError)
    assert info.value.timeout == 0.2


async def test_default_timeout_always_applies(fake_ari):
    client = AriRest(fake_ari.base_url, fake_ari.user, fake_ari.password, timeout=0.2)
    try:
        with pytest.raises(AriTimeout):
            await client.request("GET", "/slow")
    finally:
        await client.close()


async def test_connection_refused(free_port):
    client = AriRest(f"http://127.0.0.1:{free_port}", "u", "p", timeout=2.0)
    try:
        with pytest.raises(AriConnectionError) as info:
            await client.get_info()
    finally:
        await client.close()
    assert isinstance(info.value, ConnectionError)
    assert info.value.path == "/asterisk/info"


async def test_connection_reset(rest):
    with pytest.raises(AriConnectionError):
        await rest.request("GET", "/reset")


async def test_list_get_and_hangup(rest, fake_ari):
    chans = await rest.list_channels()
    assert [c["id"] for c in chans] == ["chan-1"]
    assert (await rest.get_channel("chan-1"))["state"] == "Ring"
    await rest.hangup("chan-1", reason_code=17)
    assert fake_ari.requests[-1]["method"] == "DELETE"
    assert fake_ari.requests[-1]["query"] == {"reason_code": "17"}
    with pytest.raises(AriNotFound):
        await rest.hangup("chan-1", reason="busy")
    assert fake_ari.requests[-1]["query"] == {"reason": "busy"}
    with pytest.raises(ValueError):
        await rest.hangup("chan-1", reason="busy", reason_code=17)


async def test_variables(rest):
    assert await rest.get_variable("chan-1", "RP_DID") == "15550001111"
    assert await rest.get_variable("chan-1", "UNSET") is None
    assert await rest.get_variable("gone", "RP_DID") is None
    assert await rest.get_global_variable("DB_KEYS(ringpool)") == "a,b"
    assert await rest.get_global_variable("NOPE") is None


# (callable on rest, expected method, path, query, json body)
CASES = [
    (lambda r: r.answer("c1"), "POST", "/ari/channels/c1/answer", {}, None),
    (lambda r: r.ring("c1"), "POST", "/ari/channels/c1/ring", {}, None),
    (lambda r: r.progress("c1"), "POST", "/ari/channels/c1/progress", {}, None),
    (lambda r: r.play("c1", "sound:hello-world"), "POST", "/ari/channels/c1/play",
     {"media": "sound:hello-world"}, None),
    (lambda r: r.play("c1", ["sound:a", "sound:b"], playback_id="pb1"), "POST",
     "/ari/channels/c1/play/pb1", {"media": "sound:a,sound:b"}, None),
    (lambda r: r.stop_playback("pb1"), "DELETE", "/ari/playbacks/pb1", {}, None),
    (lambda r: r.create_channel("PJSIP/100", "rp", app_args="out,1", channel_id="o1",
                                other_channel_id="o2", originator="c1", formats=["ulaw", "alaw"],
                                variables={"CALLERID(num)": "555"}),
     "POST", "/ari/channels/create",
     {"endpoint": "PJSIP/100", "app": "rp", "appArgs": "out,1", "channelId": "o1",
      "otherChannelId": "o2", "originator": "c1", "formats": "ulaw,alaw"},
     {"variables": {"CALLERID(num)": "555"}}),
    (lambda r: r.create_channel("PJSIP/100", "rp"), "POST", "/ari/channels/create",
     {"endpoint": "PJSIP/100", "app": "rp"}, None),
    (lambda r: r.dial("o1", caller="c1", timeout=30), "POST", "/ari/channels/o1/dial",
     {"caller": "c1", "timeout": "30"}, None),
    (lambda r: r.originate("PJSIP/100", "rp", app_args="x", channel_id="o3", caller_id="Rp <1>",
                           timeout=20, originator="c1", variables={"A": "1"}),
     "POST", "/ari/channels",
     {"endpoint": "PJSIP/100", "app": "rp", "appArgs": "x", "channelId": "o3",
      "callerId": "Rp <1>", "timeout": "20", "originator": "c1"},
     {"variables": {"A": "1"}}),
    (lambda r: r.set_variable("c1", "RP_TAG", "x"), "POST", "/ari/channels/c1/variable",
     {"variable": "RP_TAG", "value": "x"}, None),
    (lambda r: r.create_bridge(), "POST", "/ari/bridges", {"type": "mixing"}, None),
    (lambda r: r.create_bridge("b1", type="mixing,dtmf_events", name="call"), "POST",
     "/ari/bridges", {"type": "mixing,dtmf_events", "bridgeId": "b1", "name": "call"}, None),
    (lambda r: r.add_to_bridge("b1", ["c1", "o1"]), "POST", "/ari/bridges/b1/addChannel",
     {"channel": "c1,o1"}, None),
    (lambda r: r.remove_from_bridge("b1", ["o1"]), "POST", "/ari/bridges/b1/removeChannel",
     {"channel": "o1"}, None),
    (lambda r: r.destroy_bridge("b1"), "DELETE", "/ari/bridges/b1", {}, None),
    (lambda r: r.list_bridges(), "GET", "/ari/bridges", {}, None),
    (lambda r: r.snoop("c1", "rp", app_args="snoop", snoop_id="s1"), "POST",
     "/ari/channels/c1/snoop",
     {"app": "rp", "spy": "in", "whisper": "none", "appArgs": "snoop", "snoopId": "s1"}, None),
    (lambda r: r.external_media("rp", "127.0.0.1:4000", channel_id="em1"), "POST",
     "/ari/channels/externalMedia",
     {"app": "rp", "external_host": "127.0.0.1:4000", "format": "slin16", "channelId": "em1",
      "encapsulation": "rtp", "transport": "udp"}, None),
    (lambda r: r.external_media("rp", "h:1", format="ulaw", direction="in"), "POST",
     "/ari/channels/externalMedia",
     {"app": "rp", "external_host": "h:1", "format": "ulaw", "encapsulation": "rtp",
      "transport": "udp", "direction": "in"}, None),
]


@pytest.mark.parametrize(("call", "method", "path", "query", "body"), CASES)
async def test_convenience_methods(rest, fake_ari, call, method, path, query, body):
    await call(rest)
    req = fake_ari.requests[-1]
    assert (req["method"], req["path"], req["query"], req["json"]) == (method, path, query, body)
    assert req["auth"] == fake_ari.auth_header


async def test_ids_are_quoted_as_one_segment(rest, fake_ari):
    await rest.answer("weird/id 1")
    assert fake_ari.requests[-1]["raw_path"] == "/ari/channels/weird%2Fid%201/answer"


async def test_shared_session_not_closed(fake_ari):
    async with aiohttp.ClientSession() as session:
        client = AriRest(fake_ari.base_url, fake_ari.user, fake_ari.password, session=session)
        await client.get_info()
        await client.close()
        assert not session.closed
        assert client.session is session


async def test_owned_session_closed(fake_ari):
    client = AriRest(fake_ari.base_url, fake_ari.user, fake_ari.password)
    await client.get_info()
    session = client.session
    await client.close()
    assert session is not None and session.closed
