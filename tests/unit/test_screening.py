"""Screening on a real SQLite database: list matching of every kind and scope, caller history facts, score 1 and
its thresholds, score 2 from detections, and the configuration's errors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest

from ari_app.config import load_settings
from ari_app.screening.after import score2
from ari_app.screening.model import Hours, Refusal, ScreeningSettings
from ari_app.screening.score import assess
from ari_app.screening.store import Facts, ScreeningStore
from ari_app.yaml_located import ConfigError
from dialplan.signaling import Signaling
from storage.calls import CallStore, NewCall
from storage.db import open_database

NOW = "2026-11-22T12:00:00.000Z"
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
CALLER = "13126247391"


def signaling(caller: str | None = CALLER, **kw: Any) -> Signaling:
    values = dict(channel_id="c", channel_name="PJSIP/trunk", caller_number=caller, caller_name="Pat Jones",
                  dialed_number="15550003001", trunk="trunk", p_asserted_identity=f'"Pat Jones" <sip:{caller}@x>',
                  privacy="none", diversion=None, p_charge_info=None)
    return Signaling(**(values | kw))


@pytest.fixture
def store(tmp_path: Path) -> ScreeningStore:
    return ScreeningStore(open_database(tmp_path / "s.db"))


def match(store: ScreeningStore, caller: str | None = CALLER, *, campaign: str | None = "c", name: str | None = None,
          charge: str | None = None, anonymous: bool = False, list_: str = "block") -> dict[str, Any] | None:
    return store.match(list_, caller, charge=charge, name=name, anonymous=anonymous, campaign=campaign, now=NOW)


def test_every_kind_of_rule_matches_and_only_its_own(store: ScreeningStore) -> None:
    store.add_rule("block", "number", CALLER, now=NOW)
    store.add_rule("block", "prefix", "1900", now=NOW)
    store.add_rule("block", "range", "13125550000", value_end="13125559999", now=NOW)
    store.add_rule("block", "name", "*warranty*", now=NOW)
    store.add_rule("block", "charge", "18885550000", now=NOW)
    assert match(store)["kind"] == "number"
    assert match(store, "19005550123")["kind"] == "prefix"
    assert match(store, "13125554444")["kind"] == "range"
    assert match(store, "13125560000") is None  # just past the range
    assert match(store, "13126240000", name="Car WARRANTY Dept")["kind"] == "name"
    assert match(store, "13126240000", charge="18885550000")["kind"] == "charge"
    assert match(store, "13126240000") is None
    assert match(store, None, anonymous=True) is None
    store.add_rule("block", "anonymous", "", now=NOW)
    assert match(store, None, anonymous=True)["kind"] == "anonymous"


def test_scope_and_expiry(store: ScreeningStore) -> None:
    store.add_rule("block", "number", CALLER, campaign="other", now=NOW)
    assert match(store, campaign="c") is None and match(store, campaign="other") is not None
    store.add_rule("block", "number", "13126240001", expires_at="2026-11-22T11:59:59.000Z", now=NOW)
    assert match(store, "13126240001") is None  # expired
    renewed = store.add_rule("block", "number", "13126240001", expires_at="2026-11-23T00:00:00.000Z", now=NOW)
    assert match(store, "13126240001")["id"] == renewed["id"]  # the same rule, renewed


def test_allow_wins_and_clearing_a_false_positive(store: ScreeningStore) -> None:
    store.add_rule("block", "prefix", "1312624", now=NOW)
    facts = store.facts("x", CALLER, charge=None, name=None, anonymous=False, campaign="c", now=NOW, rate_window=3600,
                        short_window=3600, short_seconds=10, candidate_days=90)
    assert facts.block is not None and facts.allow is None
    store.add_rule("block", "number", CALLER, now=NOW)
    assert store.clear(CALLER, allow=True, now=NOW)["block_rules_removed"] == 1
    facts = store.facts("x", CALLER, charge=None, name=None, anonymous=False, campaign="c", now=NOW, rate_window=3600,
                        short_window=3600, short_seconds=10, candidate_days=90)
    assert facts.allow is not None and facts.block is None  # the prefix rule is still there, but allow wins


def test_history_facts(tmp_path: Path) -> None:
    db = open_database(tmp_path / "h.db")
    calls, screens = CallStore(db), ScreeningStore(db)
    for i, seconds in enumerate((3.0, 3.5, 4.0)):
        calls.create_call(NewCall(id=f"old{i}", inbound_channel=f"ch{i}", arrived_at=f"2026-11-22T11:5{i}:00.000Z",
                                  caller_number=CALLER))
        db.execute("UPDATE calls SET answered_at = arrived_at, total_seconds = ? WHERE id = ?", [seconds, f"old{i}"])
    db.conn.commit()
    screens.quarantine(CALLER, "15550003002", "idle", "old0", NOW)
    facts = screens.facts("new", CALLER, charge=None, name=None, anonymous=False, campaign="c", now=NOW,
                          rate_window=3600, short_window=3600, short_seconds=10, candidate_days=90)
    assert (facts.calls_in_window, facts.short_calls, facts.durations) == (3, 3, [4.0, 3.5, 3.0])
    assert facts.quarantined_at == NOW and not facts.spam_before


def test_score1_thresholds_quarantine_block_and_candidates() -> None:
    settings = ScreeningSettings(rate_calls=3)
    ok = assess(signaling(), Facts(), settings, number_state="active", returning=False, now=MONDAY_NOON)
    assert (ok.action, ok.score, ok.color) == ("proceed", 0, "green")
    q = assess(signaling(), Facts(), settings, number_state="idle", returning=False, now=MONDAY_NOON)
    assert q.action == "quarantine" and q.refusal == Refusal("reject", 404)
    late = assess(signaling(), Facts(), settings, number_state="idle", returning=True, now=MONDAY_NOON)
    assert late.action == "proceed"  # a returning caller on a released number is a late call, not quarantine
    burst = assess(signaling(), Facts(calls_in_window=3), settings, number_state="active", returning=False,
                   now=MONDAY_NOON)
    assert (burst.action, burst.color, [f.factor for f in burst.factors]) == ("extra", "yellow", ["rate"])
    red = assess(signaling(), Facts(calls_in_window=5, short_calls=3, durations=[3.0, 3.1, 3.2]), settings,
                 number_state="active", returning=False, now=MONDAY_NOON)
    assert red.action == "refuse" and red.score == 95 and red.refusal == Refusal("reject", 603)
    candidate = assess(signaling(), Facts(quarantined_at=NOW), replace(settings, weights={"quarantined": 5}),
                       number_state="active", returning=False, now=MONDAY_NOON)
    assert candidate.candidate and candidate.color == "green" and candidate.action == "extra"
    blocked = assess(signaling(), Facts(block={"id": 7, "list": "block", "kind": "number", "value": CALLER,
                                               "campaign": None, "reason": "robocaller"}),
                     settings, number_state="active", returning=False, now=MONDAY_NOON)
    assert blocked.action == "refuse" and "robocaller" in blocked.factors[0].detail


def test_campaign_state_and_hours() -> None:
    settings = ScreeningSettings(active_until=date(2026, 7, 31),
                                 hours=Hours(days=("mon", "tue"), open=time(9), close=time(17),
                                             timezone="America/Chicago"))
    during = datetime(2026, 11, 23, 16, 0, tzinfo=timezone.utc)  # Monday 10:00 in Chicago
    verdict = assess(signaling(), Facts(), settings, number_state="active", returning=False, now=during)
    assert {f.factor for f in verdict.factors} == {"campaign_inactive"}
    night = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)  # Monday 21:00 in Chicago
    assert {f.factor for f in assess(signaling(), Facts(), settings, number_state="active", returning=False,
                                     now=night).factors} == {"campaign_inactive", "outside_hours"}


@dataclass
class D:
    leg: str
    kind: str
    details: dict[str, Any] = field(default_factory=dict)


def test_score2_factors() -> None:
    settings = ScreeningSettings()
    fax = score2([D("caller", "fax_cng")], settings, answered=True, total_seconds=30, hangup_side="destination",
                 seconds_after_answer=25, challenge_failed=False)
    assert fax.score == 70 and fax.spam(settings)
    modem = score2([D("caller", "answer_tone", {"variant": "ansam"})], settings, answered=True, total_seconds=30,
                   hangup_side=None, seconds_after_answer=None, challenge_failed=False)
    assert [f.factor for f in modem.factors] == ["modem_tone"]
    robot = score2([D("caller", "dtmf", {"digit": "A"}), D("caller", "no_speech")], settings, answered=True,
                   total_seconds=4, hangup_side="caller", seconds_after_answer=1.0, challenge_failed=False)
    assert {f.factor for f in robot.factors} == {"dtmf_abcd", "no_speech", "very_short", "caller_hung_up_at_once"}
    person = score2([D("caller", "speech_start"), D("destination", "fax_cng")], settings, answered=True,
                    total_seconds=95, hangup_side="caller", seconds_after_answer=80, challenge_failed=False)
    assert person.score == 0 and not person.spam(settings)  # the agent's side is not the caller's


def config(tmp_path: Path, screening: str) -> Path:
    path = tmp_path / "ringpool.yaml"
    path.write_text(f"""\
state_dir: var
asterisk: {{bundled: false}}
ari: {{password: unit-test-ari-password}}
trunks: [{{name: carrier, match: [127.0.0.1]}}]
destinations: [{{name: desk, host: 127.0.0.1}}]
campaigns:
  - name: spring
    destination: desk
    numbers: ["5550100001"]
    screening:
      rate_calls: 9
{screening}""", encoding="utf-8")
    return path


def test_campaign_screening_overrides_the_global_section(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, "screening:\n  rate_calls: 4\n  refuse: {action: ring, seconds: 20}\n"))
    campaign = settings.screening_for(settings.campaigns["spring"])
    assert campaign.rate_calls == 9 and campaign.refuse == Refusal("ring", 603, 20)  # the rest from the global
    assert settings.screening_for(None).rate_calls == 4


@pytest.mark.parametrize("bad, key", [
    ("screening:\n  refuse: {code: 499}\n", "screening.refuse.code"),
    ("screening:\n  extra_at: 80\n  reject_at: 70\n", "screening.extra_at"),
    ("screening:\n  hours: {timezone: Mars/Olympus}\n", "screening.hours.timezone"),
    ("screening:\n  quarantine_states: [leased]\n", "screening.quarantine_states"),
    ("screening:\n  surprise: 1\n", "screening.surprise"),
])
def test_bad_screening_config_names_the_key(tmp_path: Path, bad: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, bad))
    assert info.value.key == key and info.value.line > 10


def test_escalation_steps_up_on_short_or_spam_calls_and_back_down(tmp_path: Path) -> None:
    from ari_app.screening.model import Escalation
    from ari_app.screening.score import next_level

    settings = ScreeningSettings(escalation=Escalation(window=3600, min_calls=4, up=0.5, down=0.2, max_level=2))
    assert next_level(0, 3, 3, settings) == 0  # too few calls to say anything
    assert next_level(0, 4, 2, settings) == 1 and next_level(1, 4, 4, settings) == 2 and next_level(2, 4, 4, settings) == 2
    assert next_level(2, 10, 1, settings) == 1 and next_level(1, 10, 3, settings) == 1  # between down and up: stay
    db = open_database(tmp_path / "e.db")
    calls = CallStore(db)
    for i, (seconds, spam) in enumerate(((2.0, 0), (40.0, 0), (30.0, 1), (50.0, 0))):
        calls.create_call(NewCall(id=f"c{i}", inbound_channel=f"ch{i}", arrived_at=f"2026-11-22T11:5{i}:00.000Z",
                                  caller_number=CALLER))
        db.execute("UPDATE calls SET campaign = 'c', answered_at = arrived_at, ended_at = arrived_at,"
                   " total_seconds = ?, spam = ? WHERE id = ?", [seconds, spam, f"c{i}"])
    db.conn.commit()
    assert ScreeningStore(db).window_counts("c", "2026-11-22T11:00:00.000Z", 10) == (4, 2)
    # level 1 challenges callers with no history; level 3 refuses yellow scores
    new = assess(signaling(), Facts(), settings, number_state="active", returning=False, now=MONDAY_NOON, level=1)
    known = assess(signaling(), Facts(calls_in_window=1, durations=[60.0]), settings, number_state="active",
                   returning=False, now=MONDAY_NOON, level=1)
    assert (new.action, known.action) == ("extra", "proceed")
    yellow = assess(signaling(), Facts(calls_in_window=9), ScreeningSettings(rate_calls=3), number_state="active",
                    returning=False, now=MONDAY_NOON, level=3)
    assert yellow.action == "refuse"


def test_a_silent_caller_is_spam_after_long_enough_listening() -> None:
    settings = ScreeningSettings()
    silent = score2([D("caller", "silence")], settings, answered=True, total_seconds=20, hangup_side="caller",
                    seconds_after_answer=19, challenge_failed=False, listened_seconds=18)
    assert [f.factor for f in silent.factors] == ["silent_caller"] and silent.spam(settings)
    brief = score2([], settings, answered=True, total_seconds=5, hangup_side="caller", seconds_after_answer=4,
                   challenge_failed=False, listened_seconds=4)
    talker = score2([D("caller", "speech_start")], settings, answered=True, total_seconds=20, hangup_side="caller",
                    seconds_after_answer=19, challenge_failed=False, listened_seconds=18)
    assert not brief.spam(settings) and talker.score == 0
