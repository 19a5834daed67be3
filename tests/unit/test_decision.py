"""dialplan (signaling, decision, dial strings), ari_app.asterisk_config and ari_app.call_state."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.asterisk_config import destination_sections, render_all, render_template, trunk_sections
from ari_app.call_state import (ChannelView, DialResult, ari_time, event_channel_ids, result_from_cause,
                                result_from_dialstatus)
from ari_app.config import Settings, Trunk, load_settings
from dialplan.decision import CAUSE_UNALLOCATED, Action, decide
from dialplan.destinations import dial_string
from dialplan.signaling import MAX_HEADER, Signaling, clean, signaling_from_channel

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "ringpool.yaml"

CONFIG = """\
trunks:
  - name: carrier
    match: [192.0.2.0/24, 198.51.100.7]
    contact: sip:192.0.2.10:5060
  - name: inbound-only
    match: [203.0.113.9]
destinations:
  - name: desk
    host: 10.0.0.5
    port: 5070
    user: alice
  - name: mobile
    trunk: carrier
    number: "+15550001111"
campaigns:
  - name: spring
    destination: desk
    fallback:
      destination: mobile
      message: vm-nobodyavail
    numbers: ["+1 555 010 0001"]
  - name: same-fallback
    destination: desk
    fallback:
      destination: desk
    numbers: ["15550100002"]
  - name: no-fallback
    destination: mobile
    numbers: ["15550100003"]
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    path = tmp_path_factory.mktemp("cfg") / "ringpool.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return load_settings(path)


def channel(exten: str | None = "+1 (555) 010-0001", **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "1700000000.1",
        "name": "PJSIP/trunk-carrier-00000001",
        "state": "Ring",
        "caller": {"name": "Alice", "number": "+1 555-123-4567"},
        "dialplan": {"context": "ringpool-inbound", "exten": exten, "priority": 7},
        "channelvars": {
            "RINGPOOL_TRUNK": "trunk-carrier",
            "RINGPOOL_PAI": "<sip:+15551234567@carrier.example>",
            "RINGPOOL_PRIVACY": "",
            "RINGPOOL_DIVERSION": None,
            "RINGPOOL_CHARGE": "",
        },
    }
    data.update(overrides)
    return data


# --- signaling --------------------------------------------------------------------------------------


def test_signaling_from_channel() -> None:
    s = signaling_from_channel(channel())
    assert s.channel_id == "1700000000.1"
    assert s.channel_name == "PJSIP/trunk-carrier-00000001"
    assert s.dialed_number == "15550100001"
    assert s.caller_number == "15551234567"
    assert s.caller_name == "Alice"
    assert s.trunk == "trunk-carrier"
    assert s.p_asserted_identity == "<sip:+15551234567@carrier.example>"
    assert s.privacy is None and s.diversion is None and s.p_charge_info is None  # empty -> None
    assert s.anonymous is False


def test_control_characters_stripped_and_headers_truncated() -> None:
    vars_ = {"RINGPOOL_PAI": "<sip:1@x>\r\nX-Injected: yes\x00\x1b[31m", "RINGPOOL_DIVERSION": "D" * 2000,
             "RINGPOOL_CHARGE": "\t\n  ", "RINGPOOL_TRUNK": "t" * 100}
    s = signaling_from_channel(channel(channelvars=vars_, caller={"name": "Eve\u200b\x07", "number": "555\n1"}))
    assert s.p_asserted_identity == "<sip:1@x>X-Injected: yes[31m"
    assert s.diversion == "D" * MAX_HEADER and MAX_HEADER == 512
    assert s.p_charge_info is None  # nothing printable left
    assert s.trunk == "t" * 64
    assert s.caller_name == "Eve"
    assert s.caller_number == "5551"


def test_clean() -> None:
    assert clean(None) is None
    assert clean("") is None
    assert clean(12345) == "12345"
    assert clean("abc", limit=2) == "ab"
    assert clean("  x  ") == "x"


def test_missing_fields_are_tolerated() -> None:
    s = signaling_from_channel({})
    assert s.channel_id == "" and s.dialed_number == ""
    assert s.caller_number is None and s.caller_name is None and s.trunk is None and s.channel_name is None
    assert s.anonymous is True
    s = signaling_from_channel({"id": "x", "caller": None, "dialplan": None, "channelvars": None})
    assert s.channel_id == "x" and s.dialed_number == ""
    s = signaling_from_channel(channel(exten=None))
    assert s.dialed_number == ""


@pytest.mark.parametrize(("number", "privacy", "anonymous"), [
    ("+15551234567", None, False),
    ("+15551234567", "none", False),
    ("+15551234567", "id", True),
    ("+15551234567", "user;critical", True),
    ("+15551234567", "ID", True),
    ("", None, True),
    (None, None, True),
    ("anonymous", None, True),
])
def test_anonymous_detection(number: str | None, privacy: str | None, anonymous: bool) -> None:
    s = signaling_from_channel(channel(caller={"number": number},
                                       channelvars={"RINGPOOL_PRIVACY": privacy}))
    assert s.anonymous is anonymous


def test_non_numeric_caller_number_is_kept() -> None:
    s = signaling_from_channel(channel(caller={"number": "anonymous"}))
    assert s.caller_number == "anonymous"


# --- decision ---------------------------------------------------------------------------------------


def sig(dialed: str) -> Signaling:
    return signaling_from_channel(channel(exten=dialed))


def test_unknown_number_is_rejected(settings: Settings) -> None:
    for dialed in ("15559999999", "", "s"):
        d = decide(sig(dialed), settings)
        assert d.action is Action.REJECT
        assert d.hangup_cause == CAUSE_UNALLOCATED == 1
        assert d.route is None
        assert d.reasons and all(isinstance(r, str) and r for r in d.reasons)


def test_known_number_proceeds_with_primary_then_fallback(settings: Settings) -> None:
    d = decide(sig("+1 555 010 0001"), settings)
    assert d.action is Action.PROCEED and d.hangup_cause is None
    assert d.route is not None
    assert d.route.campaign.name == "spring"
    assert d.route.tracking_number.number == "15550100001"
    assert [dest.name for dest in d.route.destinations] == ["desk", "mobile"]
    assert d.route.fallback_message == "vm-nobodyavail"
    assert any("spring" in r for r in d.reasons)


def test_fallback_same_as_primary_is_not_duplicated(settings: Settings) -> None:
    d = decide(sig("15550100002"), settings)
    assert [dest.name for dest in d.route.destinations] == ["desk"]
    assert d.route.fallback_message is None


def test_no_fallback(settings: Settings) -> None:
    d = decide(sig("15550100003"), settings)
    assert [dest.name for dest in d.route.destinations] == ["mobile"]


def test_sample_config_decisions() -> None:
    s = load_settings(SAMPLE)
    d = decide(sig("15550100101"), s)
    assert d.action is Action.PROCEED and d.route.campaign.name == "print-ads"
    assert [x.name for x in d.route.destinations] == ["support-desk"]
    assert d.route.fallback_message == "vm-nobodyavail"


def test_dial_strings(settings: Settings) -> None:
    assert dial_string(settings.destinations["desk"], settings.trunks) == "PJSIP/dest-desk"
    assert dial_string(settings.destinations["mobile"], settings.trunks) == "PJSIP/15550001111@trunk-carrier"


# --- asterisk configuration -------------------------------------------------------------------------


def test_render_template() -> None:
    text = "exten => ${EXTEN},1,NoOp({{ name }}) $[${X} = 1] {{other}}"
    assert render_template(text, {"name": "n", "other": 5}) == "exten => ${EXTEN},1,NoOp(n) $[${X} = 1] 5"
    with pytest.raises(KeyError, match="missing"):
        render_template("a {{missing}} b", {}, name="t.conf.tmpl")
    assert render_template("${NOT_A_PLACEHOLDER} {CURLY}", {}) == "${NOT_A_PLACEHOLDER} {CURLY}"


def sections(text: str) -> list[tuple[str, dict[str, str]]]:
    result: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            result.append((line[1:-1], {}))
        elif "=" in line and result:
            key, _, value = line.partition("=")
            result[-1][1][key.strip()] = value.strip()
    return result


def by_type(parsed: list[tuple[str, dict[str, str]]], kind: str) -> dict[str, dict[str, str]]:
    return {name: opts for name, opts in parsed if opts.get("type") == kind}


def test_render_all(settings: Settings, tmp_path: Path) -> None:
    files = render_all(settings, root=tmp_path, run_dir=tmp_path / "run", ari_password="pw-123")
    assert {"pjsip.conf", "extensions.conf", "ari.conf", "http.conf"} <= set(files)
    for name, text in files.items():
        assert "{{" not in text, name
    assert "${EXTEN}" in files["extensions.conf"]  # Asterisk's own syntax survives

    pjsip = sections(files["pjsip.conf"])
    identify = by_type(pjsip, "identify")
    assert identify == {
        "trunk-carrier-identify": {"type": "identify", "endpoint": "trunk-carrier", "match": "192.0.2.0/24,198.51.100.7"},
        "trunk-inbound-only-identify": {"type": "identify", "endpoint": "trunk-inbound-only", "match": "203.0.113.9"},
    }
    endpoints = by_type(pjsip, "endpoint")
    assert set(endpoints) == {"trunk-carrier", "trunk-inbound-only", "dest-desk"}  # no dest-mobile (trunk kind)
    assert endpoints["trunk-carrier"]["context"] == "ringpool-inbound"
    assert endpoints["trunk-carrier"]["aors"] == "trunk-carrier"
    assert "aors" not in endpoints["trunk-inbound-only"]
    assert endpoints["dest-desk"]["context"] == "ringpool-outbound"
    aors = by_type(pjsip, "aor")
    assert aors == {
        "trunk-carrier": {"type": "aor", "contact": "sip:192.0.2.10:5060", "qualify_frequency": "0"},
        "dest-desk": {"type": "aor", "contact": "sip:alice@10.0.0.5:5070", "qualify_frequency": "0"},
    }
    transport = by_type(pjsip, "transport")["transport-udp"]
    assert transport["bind"] == f"{settings.asterisk.sip_bind}:{settings.asterisk.sip_port}"
    assert "password = pw-123" in files["ari.conf"]


def test_trunk_destination_has_no_sections(settings: Settings) -> None:
    assert destination_sections(settings.destinations["mobile"]) == ""
    text = trunk_sections(Trunk(name="x", match=("10.0.0.0/8",), contact=None))
    assert "type = aor" not in text and "match = 10.0.0.0/8" in text


# --- call state -------------------------------------------------------------------------------------


def test_ari_time() -> None:
    assert ari_time({"timestamp": "2026-11-22T17:01:02.123+0000"}) == "2026-11-22T17:01:02.123Z"
    assert ari_time({"timestamp": "2026-11-22T17:01:02.123+0100"}) == "2026-11-22T16:01:02.123Z"
    assert ari_time({"timestamp": "2026-11-22T17:01:02.123456-0230"}) == "2026-11-22T19:31:02.123Z"
    assert ari_time({}) is None
    assert ari_time({"timestamp": ""}) is None
    assert ari_time({"timestamp": "yesterday"}) is None


def test_result_mappings() -> None:
    assert result_from_dialstatus("ANSWER") is DialResult.ANSWERED
    assert result_from_dialstatus("answer") is DialResult.ANSWERED
    assert result_from_dialstatus("BUSY") is DialResult.BUSY
    assert result_from_dialstatus("NOANSWER") is DialResult.NO_ANSWER
    assert result_from_dialstatus("CHANUNAVAIL") is DialResult.FAILED
    assert result_from_dialstatus("CONGESTION") is DialResult.FAILED
    assert result_from_dialstatus("RINGING") is None
    assert result_from_dialstatus("") is None
    assert result_from_cause(17) is DialResult.BUSY
    assert result_from_cause(21) is DialResult.BUSY
    assert result_from_cause(18) is DialResult.NO_ANSWER
    assert result_from_cause(19) is DialResult.NO_ANSWER
    assert result_from_cause(34) is DialResult.FAILED
    assert result_from_cause(None) is DialResult.FAILED


def test_event_channel_ids() -> None:
    assert event_channel_ids({"type": "Dial", "peer": {"id": "B"}, "caller": {"id": "A"}}) == ["B"]
    assert event_channel_ids({"channel": {"id": "A"}, "peer": {"id": "B"}}) == ["A", "B"]
    assert event_channel_ids({"playback": {"id": "p", "target_uri": "channel:C"}}) == ["C"]
    assert event_channel_ids({"playback": {"id": "p", "target_uri": "bridge:X"}}) == []
    assert event_channel_ids({"channel": {}, "peer": "B", "playback": None}) == []


def ev(kind: str, channel_id: str | None = None, ts: str | None = None, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {"type": kind, **extra}
    if channel_id:
        event["channel"] = {"id": channel_id, "state": "Up"}
    if ts:
        event["timestamp"] = f"2026-11-22T17:00:{ts}+0000"
    return event


def test_channel_view_end_order_and_causes() -> None:
    view = ChannelView()
    view.observe(ev("ChannelHangupRequest", "B", "05.000", cause=16, cause_txt="Normal Clearing"))
    view.observe(ev("ChannelHangupRequest", "A", "06.000", cause=19))
    view.observe(ev("ChannelHangupRequest", "B", "06.500", cause=18))  # a later request does not override
    view.observe(ev("StasisEnd", "B", "07.000"))
    view.observe(ev("ChannelDestroyed", "B", "07.500", cause=17, cause_txt="User busy"))
    view.observe(ev("ChannelDestroyed", "A", "08.000", cause=16, cause_txt="Normal Clearing"))
    assert view.end_order == ["B", "A"]
    b, a = view.ended["B"], view.ended["A"]
    assert (b.cause, b.cause_text, b.final, b.at) == (17, "User busy", True, "2026-11-22T17:00:07.500Z")
    assert (a.cause, a.cause_text, a.final) == (16, "Normal Clearing", True)
    assert view.first_remote_end() == "B"


def test_channel_view_request_only_is_not_final() -> None:
    view = ChannelView()
    view.observe(ev("ChannelHangupRequest", "A", "01.000", cause=16))
    end = view.ended["A"]
    assert (end.final, end.cause, end.at) == (False, 16, "2026-11-22T17:00:01.000Z")
    view.observe(ev("StasisEnd", "A", "02.000"))
    assert (end.final, end.cause, end.at) == (True, 16, "2026-11-22T17:00:02.000Z")


def test_first_remote_end_skips_channels_we_hung_up() -> None:
    view = ChannelView()
    view.hung_up_by_us.add("B")
    view.observe(ev("ChannelHangupRequest", "B", "01.000", cause=16))
    assert view.ended["B"].by_us is True
    assert view.first_remote_end() is None
    view.observe(ev("ChannelDestroyed", "A", "02.000", cause=16))
    assert view.first_remote_end() == "A"


def test_channel_view_dial_up_playbacks_and_ignored_events() -> None:
    view = ChannelView()
    view.observe({"type": "Dial", "peer": {"id": "B"}, "dialstatus": ""})
    assert view.dial_status == {}
    view.observe({"type": "Dial", "peer": {"id": "B"}, "dialstatus": "RINGING"})
    view.observe({"type": "Dial", "peer": {"id": "B"}, "dialstatus": "ANSWER"})
    assert view.dial_status == {"B": "ANSWER"}
    view.observe({"type": "ChannelStateChange", "channel": {"id": "B", "state": "Ringing"}})
    assert view.up == set()
    view.observe({"type": "ChannelStateChange", "channel": {"id": "B", "state": "Up"}})
    assert view.up == {"B"}
    view.observe({"type": "PlaybackFinished", "playback": {"id": "pb-1", "target_uri": "channel:A"}})
    assert view.playbacks_done == {"pb-1"}
    view.observe({"type": "ChannelHangupRequest"})  # no channel: ignored
    view.observe({"type": "SomethingElse", "channel": {"id": "A"}})
    assert view.ended == {} and view.end_order == []
