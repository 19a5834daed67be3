"""ari_app.config / ari_app.yaml_located: the sample loads, and every bad input is located exactly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ari_app.config import load_settings, normalise_number
from ari_app.yaml_located import ConfigError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "ringpool.yaml"

# A small valid configuration. Line numbers matter: tests below refer to them.
BASE = """\
state_dir: var
asterisk:
  bundled: true
  sip_port: 5060
ari:
  username: ringpool
admin:
  port: 8080
trunks:
  - name: carrier
    match: [192.0.2.0/24, 198.51.100.7]
    contact: sip:192.0.2.10:5060
destinations:
  - name: desk
    host: 127.0.0.1
  - name: mobile
    trunk: carrier
    number: "+15550001111"
campaigns:
  - name: spring
    destination: desk
    fallback:
      destination: mobile
      message: vm-nobodyavail
    numbers:
      - "+1 555 010 0001"
      - "5550100002"
"""


def write(tmp_path: Path, text: str, name: str = "ringpool.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def variant(old: str, new: str, base: str = BASE) -> str:
    assert base.count(old) == 1, f"fixture text {old!r} must occur exactly once"
    return base.replace(old, new)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing needle."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not in fixture"
    return hits[nth - 1]


def error_for(tmp_path: Path, text: str) -> tuple[ConfigError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value, path.resolve()


def assert_located(exc: ConfigError, path: Path, line: int | None, key: str) -> None:
    assert (exc.file, exc.line, exc.key) == (str(path), line, key), str(exc)
    prefix = f"{path}:{line}:" if line else f"{path}:"
    assert str(exc).startswith(prefix)


# --- valid files ----------------------------------------------------------------------------------


def test_sample_config_loads() -> None:
    s = load_settings(SAMPLE)
    assert sorted(s.campaigns) == ["phone-menu", "print-ads", "spring-search", "web-visits"]
    assert sorted(s.destinations) == ["after-hours-line", "sales-desk", "support-desk"]
    assert list(s.trunks) == ["local"]
    assert sorted(n for n, tn in s.numbers.items() if tn.role == "static") == [
        "15550100001", "15550100002", "15550100003", "15550100101"]
    assert s.campaigns["phone-menu"].flow == "sales-menu" and set(s.flows) == {"sales-menu", "after-hours"}
    assert s.numbers["15550100299"].role == "overflow" and s.numbers["15550100250"].role == "extension"
    assert s.pools["web"].campaign == "web-visits" and s.inventory == ("15550100300", "15550100301")
    assert s.numbers["15550100101"].campaign == "print-ads"
    assert s.numbers["15550100001"].campaign == "spring-search"
    after_hours = s.destinations["after-hours-line"]
    assert (after_hours.kind, after_hours.trunk, after_hours.number) == ("trunk", "local", "15550109999")
    support = s.destinations["support-desk"]
    assert (support.kind, support.host, support.port, support.user) == ("sip", "127.0.0.1", 5080, "support")
    spring = s.campaigns["spring-search"]
    assert spring.fallback.destination == "after-hours-line"
    assert spring.fallback.message == "vm-nobodyavail"
    assert spring.greeting == "hello-world"
    assert s.campaigns["print-ads"].fallback.destination is None
    assert s.campaigns["print-ads"].ring_timeout == 25
    # relative paths are relative to the file, not the working directory
    assert s.state_dir == (SAMPLE.parent / ".." / "var").resolve()
    assert s.database == s.state_dir / "ringpool.db"
    assert s.ari.password is None and s.admin.token is None
    assert s.ari.url == "http://127.0.0.1:8088"


def test_base_fixture_loads_with_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, BASE))
    assert s.state_dir == tmp_path.resolve() / "var"
    assert sorted(s.numbers) == ["15550100001", "5550100002"]
    assert s.trunks["carrier"].match == ("192.0.2.0/24", "198.51.100.7")
    assert s.campaigns["spring"].title == "spring"  # title defaults to the name
    assert s.campaigns["spring"].ring_timeout == 20
    assert s.asterisk.rtp_start == 20000 and s.asterisk.rtp_end == 29999
    assert s.admin.bind == "127.0.0.1"


def test_normalise_number() -> None:
    assert normalise_number("+1 (555) 010-0001") == "15550100001"
    assert normalise_number("") == ""


# --- located errors -------------------------------------------------------------------------------


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    text = variant("  sip_port: 5060\n", "  sip_port: 5060: 5061\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "sip_port"), "")
    assert "YAML syntax" in exc.message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = BASE + "campaings: []\n"
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "campaings"), "campaings")
    assert exc.message == "unknown key"


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = variant("  sip_port: 5060\n", "  sip_prot: 5060\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "sip_prot"), "asterisk.sip_prot")


def test_unknown_key_deep_in_a_list_item(tmp_path: Path) -> None:
    text = variant("      message: vm-nobodyavail\n", "      mesage: vm-nobodyavail\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "mesage"), "campaigns[0].fallback.mesage")


def test_wrong_type(tmp_path: Path) -> None:
    text = variant("  sip_port: 5060\n", "  sip_port: five\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "sip_port"), "asterisk.sip_port")
    assert "whole number" in exc.message


def test_wrong_type_boolean(tmp_path: Path) -> None:
    text = variant("  bundled: true\n", '  bundled: "true"\n')
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "bundled"), "asterisk.bundled")


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    text = variant("admin:\n  port: 8080\n", "admin: 8080\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "admin:"), "admin")


def test_out_of_range_port(tmp_path: Path) -> None:
    text = variant("  port: 8080\n", "  port: 70000\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "port: 70000"), "admin.port")
    assert "out of range" in exc.message


def test_duplicate_key(tmp_path: Path) -> None:
    text = variant("  sip_port: 5060\n", "  sip_port: 5060\n  sip_port: 5070\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "sip_port", nth=2), "sip_port")
    assert exc.message == "duplicate key"


def test_duplicate_campaign_name(tmp_path: Path) -> None:
    text = BASE + "  - name: spring\n    destination: desk\n    numbers: ['5550109999']\n"
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "- name: spring", nth=2), "campaigns")
    assert "duplicate name 'spring'" in exc.message


def test_campaign_naming_missing_destination(tmp_path: Path) -> None:
    text = variant("    destination: desk\n", "    destination: nowhere\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "destination: nowhere"), "campaigns[0].destination")
    assert "nowhere" in exc.message


def test_missing_fallback_destination(tmp_path: Path) -> None:
    text = variant("      destination: mobile\n", "      destination: voicemail\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "destination: voicemail"), "campaigns[0].fallback.destination")


def test_tracking_number_in_two_campaigns(tmp_path: Path) -> None:
    text = BASE + "  - name: autumn\n    destination: desk\n    numbers:\n      - '555 010 9999'\n      - '+1 (555) 010-0001'\n"
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "+1 (555) 010-0001"), "campaigns[1].numbers")
    assert "'spring'" in exc.message and "15550100001" in exc.message


def test_trunk_destination_whose_trunk_has_no_contact(tmp_path: Path) -> None:
    text = variant("    contact: sip:192.0.2.10:5060\n", "")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "trunk: carrier"), "destinations[1].trunk")
    assert "no contact" in exc.message


def test_trunk_destination_naming_unknown_trunk(tmp_path: Path) -> None:
    text = variant("    trunk: carrier\n", "    trunk: other\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "trunk: other"), "destinations[1].trunk")


def test_trunk_with_invalid_cidr(tmp_path: Path) -> None:
    text = variant("192.0.2.0/24,", "192.0.2.0/33,")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "match:"), "trunks[0].match")
    assert "192.0.2.0/33" in exc.message


def test_bad_phone_number_in_numbers_list(tmp_path: Path) -> None:
    text = variant('      - "5550100002"\n', '      - "555-CALL-NOW"\n')
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "555-CALL-NOW"), "campaigns[0].numbers[1]")


def test_phone_number_without_digits_is_rejected(tmp_path: Path) -> None:
    # "( )" matches the allowed characters but normalises to "", which would match a call with no exten
    text = variant('      - "5550100002"\n', '      - "( -)"\n')
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "( -)"), "campaigns[0].numbers[1]")


def test_numeric_destination_name_is_accepted(tmp_path: Path) -> None:
    # YAML reads `name: 411` as an int; it must be treated as the name "411", not crash with KeyError
    text = variant("  - name: desk\n", "  - name: 411\n")
    text = variant("    destination: desk\n", '    destination: "411"\n', text)
    s = load_settings(write(tmp_path, text))
    assert s.destinations["411"].host == "127.0.0.1"
    assert s.campaigns["spring"].destination == "411"


def test_missing_required_key(tmp_path: Path) -> None:
    text = variant("    destination: desk\n", "")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "- name: spring"), "campaigns[0].destination")
    assert exc.message == "is required"


def test_missing_trunks(tmp_path: Path) -> None:
    text = "destinations: []\ncampaigns: []\n"
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, 1, "trunks")


def test_ari_password_required_when_not_bundled(tmp_path: Path) -> None:
    text = variant("  bundled: true\n", "  bundled: false\n")
    exc, path = error_for(tmp_path, text)
    # the ari mapping has no password key: the error points at that mapping
    assert_located(exc, path, line_of(text, "username: ringpool"), "ari.password")
    s = load_settings(write(tmp_path, variant("  username: ringpool\n", "  username: ringpool\n  password: s3cret\n", text)))
    assert s.ari.password == "s3cret" and s.asterisk.bundled is False


def test_rtp_range_inverted(tmp_path: Path) -> None:
    text = variant("  sip_port: 5060\n", "  sip_port: 5060\n  rtp_start: 30000\n  rtp_end: 30000\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "rtp_end"), "asterisk.rtp_end")


def test_empty_file(tmp_path: Path) -> None:
    exc, path = error_for(tmp_path, "")
    assert_located(exc, path, 1, "trunks")


def test_top_level_list(tmp_path: Path) -> None:
    exc, path = error_for(tmp_path, "- trunks\n- campaigns\n")
    assert_located(exc, path, 1, "")
    assert "mapping" in exc.message


def test_unreadable_file(tmp_path: Path) -> None:
    missing = (tmp_path / "nope.yaml").resolve()
    with pytest.raises(ConfigError) as info:
        load_settings(missing)
    assert_located(info.value, missing, None, "")
    assert str(info.value).startswith(f"{missing}: cannot read")
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError) as info:
        load_settings(folder)
    assert info.value.line is None and "cannot read" in info.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_permissions(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "cannot read" in info.value.message


def test_config_error_is_a_value_error_and_formats() -> None:
    exc = ConfigError("/x/y.yaml", 7, "a.b", "bad")
    assert isinstance(exc, ValueError)
    assert str(exc) == "/x/y.yaml:7: a.b: bad"
    assert str(ConfigError("/x/y.yaml", None, "", "bad")) == "/x/y.yaml: bad"


# --- issue 6: click-to-call, the queue, flows ----------------------------------------------------------------

C2C = variant("      - \"5550100002\"\n", "      - \"5550100002\"\n    click_to_call:\n      trunk: carrier\n"
              "      prefixes: [\"1\", \"44\"]\n")


def test_click_to_call_reads_its_trunk_and_prefixes(tmp_path: Path) -> None:
    campaign = load_settings(write(tmp_path, C2C)).campaigns["spring"]
    assert campaign.click_to_call is not None
    assert (campaign.click_to_call.trunk, campaign.click_to_call.prefixes) == ("carrier", ("1", "44"))


def test_click_to_call_needs_a_trunk_that_can_carry_calls(tmp_path: Path) -> None:
    text = variant("destinations:\n", "  - name: inbound-only\n    match: [203.0.113.9]\ndestinations:\n", C2C)
    text = variant("      trunk: carrier\n", "      trunk: inbound-only\n", text)
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "trunk: inbound-only"), "campaigns[0].click_to_call.trunk")


def test_click_to_call_prefixes_are_digits(tmp_path: Path) -> None:
    text = variant('prefixes: ["1", "44"]', 'prefixes: ["+1"]', C2C)
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "prefixes:"), "campaigns[0].click_to_call.prefixes")


def test_an_empty_queue_section_is_a_queue_with_defaults(tmp_path: Path) -> None:
    text = variant("    destination: desk\n", "    destination: desk\n    queue: {}\n")
    queue = load_settings(write(tmp_path, text)).campaigns["spring"].queue
    assert queue is not None and (queue.max_wait, queue.fallback) == (300, "voicemail")


def test_queue_callback_needs_click_to_call(tmp_path: Path) -> None:
    text = variant("    destination: desk\n", "    destination: desk\n    queue:\n      fallback: callback\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "fallback: callback"), "campaigns[0].queue.fallback")
    text = variant("    destination: desk\n", "    destination: desk\n    queue:\n      fallback: callback\n", C2C)
    assert load_settings(write(tmp_path, text)).campaigns["spring"].queue.fallback == "callback"


def test_a_flow_queue_node_needs_the_campaigns_queue(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "wait.yaml").write_text("name: wait\nstart: hold\nnodes:\n  hold: {queue: {}}\n")
    text = variant("    destination: desk\n", "    destination: desk\n    flow: wait\n")
    exc, path = error_for(tmp_path, text)
    assert (exc.file, exc.line, exc.key) == (str((flows / "wait.yaml")), 4, "nodes.hold.queue"), str(exc)
    text = variant("    destination: desk\n", "    destination: desk\n    flow: wait\n    queue: {}\n")
    assert load_settings(write(tmp_path, text)).campaigns["spring"].flow == "wait"


def test_a_flow_route_node_names_configured_destinations(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "go.yaml").write_text("name: go\nstart: out\nnodes:\n  out:\n    route: {destinations: [nowhere]}\n")
    text = variant("    destination: desk\n", "    destination: desk\n    flow: go\n")
    exc, _path = error_for(tmp_path, text)
    assert exc.file == str(flows / "go.yaml") and "nowhere" in exc.message, str(exc)


def test_a_campaign_names_an_existing_flow(tmp_path: Path) -> None:
    text = variant("    destination: desk\n", "    destination: desk\n    flow: missing\n")
    exc, path = error_for(tmp_path, text)
    assert_located(exc, path, line_of(text, "flow: missing"), "campaigns[0].flow")
