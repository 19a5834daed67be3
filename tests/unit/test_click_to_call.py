"""ari_app.click_to_call: which requests may place a call (the call itself: tests/integration/test_routing_calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.click_to_call import ClickToCallLimits, ClickToCallRefused
from ari_app.config import load_settings

CONFIG = """
trunks:
  - {name: carrier, match: [192.0.2.1], contact: "sip:192.0.2.1:5060"}
destinations:
  - {name: desk, host: 127.0.0.1}
campaigns:
  - name: web
    destination: desk
    click_to_call: {trunk: carrier, prefixes: ["1"], per_number_hour: 2}
    numbers: ["15550100001"]
  - {name: print, destination: desk, numbers: ["15550100002"]}
"""


@pytest.fixture
def settings(tmp_path: Path):
    path = tmp_path / "ringpool.yaml"
    path.write_text(CONFIG)
    return load_settings(path)


def test_allowed_number_is_normalised_and_counted(settings) -> None:
    limits = ClickToCallLimits()
    campaign, number = limits.check_and_count(settings, "web", "+1 (312) 555-0110")
    assert (campaign.name, number) == ("web", "13125550110")


@pytest.mark.parametrize("campaign, number, message", [
    ("nope", "+13125550110", "campaign: no campaign"),
    ("print", "+13125550110", "does not allow click-to-call"),
    ("web", "+44 20 7946 0000", "only numbers starting with 1"),
    ("web", "911", "8 to 15 digits"),
    ("web", 13125550110, "8 to 15 digits"),
    ("web", "1" * 40, "8 to 15 digits"),
])
def test_refused_requests_say_why(settings, campaign, number, message) -> None:
    with pytest.raises(ClickToCallRefused) as refused:
        ClickToCallLimits().check_and_count(settings, campaign, number)
    assert message in str(refused.value) and refused.value.status == 400


def test_one_number_is_called_a_few_times_an_hour_at_most(settings) -> None:
    limits = ClickToCallLimits()
    for _ in range(2):
        limits.check_and_count(settings, "web", "+13125550110")
    with pytest.raises(ClickToCallRefused) as refused:
        limits.check_and_count(settings, "web", "+13125550110")
    assert refused.value.status == 429
    limits.check_and_count(settings, "web", "+13125550111")  # another number is not affected
