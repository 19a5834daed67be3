"""dialplan.quality: the call quality score's factors at arrival, after IVR answers and after the call."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.facts import CallFacts, Region
from dialplan.quality import (WEIGHTS, AnswerRule, Quality, QualitySettings, final_quality, initial_quality,
                              quality_band, read_quality, spoken_keywords, with_answers)

CHICAGO = Region("US", "IL", "312", "Chicago, IL")
BUFFALO = Region("US", "NY", "716", "Buffalo, NY")
LA = Region("US", "CA", "213", "Los Angeles, CA")


def facts(**kw: Any) -> CallFacts:
    base: dict[str, Any] = dict(call_id="c1", campaign="spring", dialed_number="5550100001",
                                caller_number="13125550123", arrived_at=datetime(2026, 3, 2, 15, tzinfo=timezone.utc),
                                number_type="fixed_line_or_mobile")
    return CallFacts(**(base | kw))


def points(q: Quality) -> dict[str, int]:
    """Factor -> summed points (several keyword factors share a name)."""
    result: dict[str, int] = {}
    for f in q.factors:
        result[f.factor] = result.get(f.factor, 0) + f.points
    return result


def details(q: Quality) -> list[str]:
    return [f.detail for f in q.factors]


# --- arrival -------------------------------------------------------------------------------------------------


def test_a_call_with_nothing_known_scores_the_base() -> None:
    q = initial_quality(facts(), QualitySettings())
    assert q.score == 50 and q.stage == "arrival" and points(q) == {"base": 50}
    assert initial_quality(facts(), QualitySettings(base=20)).score == 20


def test_repeat_caller_and_known_customer_raise_it() -> None:
    q = initial_quality(facts(repeat_caller=True, known_caller=True), QualitySettings())
    assert points(q) == {"base": 50, "repeat_caller": 10, "known_caller": 15} and q.score == 75
    assert "repeat caller within 90 days" in details(q)


def test_region_in_out_and_unknown_against_target_regions() -> None:
    s = QualitySettings(target_regions=("US-NY", "IL"))
    inside = initial_quality(facts(region=CHICAGO), s)
    assert points(inside)["in_region"] == 10 and "in target region IL" in details(inside)
    assert points(initial_quality(facts(region=BUFFALO), s))["in_region"] == 10
    outside = initial_quality(facts(region=LA), s)
    assert points(outside)["out_of_region"] == -15 and outside.score == 35
    assert "US-CA is outside the target regions US-NY, IL" in details(outside)
    assert points(initial_quality(facts(region=None), s))["region_unknown"] == -5
    assert points(initial_quality(facts(region=Region(None)), s))["region_unknown"] == -5
    # no target regions: where the caller is does not count
    assert points(initial_quality(facts(region=LA), QualitySettings())) == {"base": 50}


def test_inside_or_outside_the_campaigns_hours() -> None:
    s = QualitySettings()
    assert points(initial_quality(facts(), s, open=True))["in_hours"] == 5
    assert points(initial_quality(facts(), s, open=False))["outside_hours"] == -10
    assert "in_hours" not in points(initial_quality(facts(), s, open=None))


@pytest.mark.parametrize("number_type, anonymous, expected", [
    ("mobile", False, 5), ("toll_free", False, -10), ("invalid", False, -30), ("premium_rate", False, -20),
    ("fixed_line", False, 0), ("mobile", True, -15), ("anonymous", False, -15),
])
def test_number_type(number_type: str, anonymous: bool, expected: int) -> None:
    q = initial_quality(facts(number_type=number_type, anonymous=anonymous), QualitySettings())
    assert points(q).get("number_type", 0) == expected
    custom = QualitySettings(number_types={"mobile": 25})
    assert points(initial_quality(facts(number_type="mobile"), custom))["number_type"] == 25


def test_source_medium_device_and_search_keyword_from_the_session() -> None:
    s = QualitySettings(sources={"google": 10, "bing": -5}, mediums={"cpc": 5}, devices={"mobile": 3},
                        keywords={"baby fans": 12, "free": -8, "fan": 4})
    session = {"source": "Google", "medium": "cpc", "device_type": "mobile", "keyword": "Cheap BABY fans near me"}
    q = initial_quality(facts(session=session), s)
    assert points(q) == {"base": 50, "source": 10, "medium": 5, "device_type": 3, "search_keyword": 12}
    assert "search keyword 'baby fans' +12" in details(q)
    # whole words: "freedom" is not "free", "fans" is not "fan"
    q = initial_quality(facts(session={"source": "bing", "keyword": "freedom fans"}), s)
    assert points(q) == {"base": 50, "source": -5}


def test_a_high_spam_score_lowers_quality_in_proportion() -> None:
    s = QualitySettings()
    assert points(initial_quality(facts(spam_score=60), s))["spam"] == -30
    assert points(initial_quality(facts(spam_score=100), s))["spam"] == -50
    assert "spam" not in points(initial_quality(facts(spam_score=0), s))
    assert "screening spam score 60" in details(initial_quality(facts(spam_score=60), s))


def test_weights_override_named_factors_and_zero_drops_them() -> None:
    s = QualitySettings(weights={"repeat_caller": 30, "known_caller": 0}, number_types={"mobile": 25})
    q = initial_quality(facts(repeat_caller=True, known_caller=True, spam_score=20), s)
    assert points(q) == {"base": 50, "repeat_caller": 30, "spam": -10}  # spam: the default weight fills in
    assert points(initial_quality(facts(number_type="invalid"), s))["number_type"] == -30


def test_the_score_is_clamped_to_0_100() -> None:
    high = QualitySettings(base=100, sources={"google": 100})
    assert initial_quality(facts(session={"source": "google"}, repeat_caller=True), high).score == 100
    low = QualitySettings(base=0)
    q = initial_quality(facts(number_type="invalid", spam_score=100), low)
    assert q.score == 0 and sum(f.points for f in q.factors) == -80  # the factors still say how far below


# --- IVR answers and tags --------------------------------------------------------------------------------------


def test_ivr_answers_and_tags_replace_their_earlier_factors() -> None:
    s = QualitySettings(answers=(AnswerRule("department", ("1",), 10), AnswerRule("department", ("2", "3"), -5),
                                 AnswerRule("budget", ("yes",), 7)),
                        tags={"vip": 20, "complaint": -10})
    f = facts(repeat_caller=True)
    q = initial_quality(f, s)
    f.variables["department"] = "1"
    q = with_answers(q, f, s)
    assert q.stage == "ivr" and points(q) == {"base": 50, "repeat_caller": 10, "ivr_answer": 10}
    assert "IVR department = 1" in details(q)
    f.variables.update(department="3", budget="yes")
    f.tags.update({"vip", "unknown-tag"})
    q = with_answers(q, f, s)
    assert points(q) == {"base": 50, "repeat_caller": 10, "ivr_answer": 2, "tag": 20} and q.score == 82
    f.tags.clear()
    f.variables.clear()
    q = with_answers(q, f, s)
    assert points(q) == {"base": 50, "repeat_caller": 10}


# --- after the call --------------------------------------------------------------------------------------------


def after(q: Quality, s: QualitySettings, *, talk: float | None = 60, detections: tuple[str, ...] = (),
          transcript: str | None = None, spotted: tuple[str, ...] = ()) -> Quality:
    return final_quality(q, s, talk_seconds=talk, detections=detections, transcript=transcript, spotted=spotted)


def test_talk_duration_thresholds() -> None:
    s = QualitySettings(short_call=20, long_call=90)
    q = initial_quality(facts(), s)
    assert points(after(q, s, talk=19.5))["short_call"] == -15
    assert points(after(q, s, talk=20)) == {"base": 50}
    long = after(q, s, talk=90)
    assert points(long)["long_call"] == 15 and long.stage == "final"
    assert points(after(q, s, talk=None)) == {"base": 50}  # never connected: the duration says nothing


def test_detections() -> None:
    s = QualitySettings()
    q = initial_quality(facts(), s)
    assert points(after(q, s, detections=("machine",)))["answering_machine"] == -40
    assert points(after(q, s, detections=("fax_cng", "v21_preamble")))["fax"] == -50
    assert points(after(q, s, detections=("answer_tone",)))["fax"] == -50
    assert points(after(q, s, detections=("no_speech",)))["silence"] == -20
    spoke = points(after(q, s, detections=("speech_start", "speech", "silence", "dtmf", "speech")))
    assert spoke == {"base": 50, "speech": 10}  # pauses between words are not a silent caller


def test_spoken_keywords_count_once_whole_words_any_case() -> None:
    s = QualitySettings(positive={"buy": 15, "credit card": 20}, negative={"not interested": -20, "cancel": -10})
    q = after(initial_quality(facts(), s), s,
              transcript="I want to BUY it. Buy buy buy! My Credit-card is ready. I'm a buyer, not a canceller.")
    assert points(q)["spoken_keyword"] == 35
    assert "keyword 'credit card' +20" in details(q) and "keyword 'buy' +15" in details(q)
    q = after(initial_quality(facts(), s), s, transcript="Cancel that, I am not interested")
    assert sorted(details(q)) == ["keyword 'cancel' -10", "keyword 'not interested' -20", "the campaign's base score"]
    assert q.score == 20
    # a phrase across two texts does not match: "credit" ends the transcript, "card" is a spotted term
    assert spoken_keywords(s, ["pay by credit", "card"]) == []


def test_a_longer_phrase_takes_its_words_from_a_shorter_one() -> None:
    s = QualitySettings(positive={"interested": 10}, negative={"not interested": -20})
    assert spoken_keywords(s, ["I'm not interested"]) == [("not interested", -20)]
    assert spoken_keywords(s, ["not interested now, but interested later"]) == [("not interested", -20),
                                                                                   ("interested", 10)]


def test_spotted_terms_count_like_transcript_words_but_still_once() -> None:
    s = QualitySettings(positive={"friend": 25})
    q = initial_quality(facts(), s)
    assert points(after(q, s, transcript=None, spotted=("friend",)))["spoken_keyword"] == 25
    assert points(after(q, s, transcript="my friend said", spotted=("Friend",)))["spoken_keyword"] == 25


def test_final_replaces_earlier_final_factors_and_keeps_the_rest() -> None:
    s = QualitySettings(answers=(AnswerRule("department", ("1",), 10),), positive={"buy": 15})
    f = facts(repeat_caller=True, variables={"department": "1"})
    q = with_answers(initial_quality(f, s), f, s)
    first = after(q, s, talk=200, detections=("speech",), transcript="buy")
    assert points(first) == {"base": 50, "repeat_caller": 10, "ivr_answer": 10, "long_call": 15, "speech": 10,
                             "spoken_keyword": 15}
    again = after(first, s, talk=5, detections=(), transcript=None)
    assert points(again) == {"base": 50, "repeat_caller": 10, "ivr_answer": 10, "short_call": -15}
    # a late answer after the call (say, a post-call survey) keeps the final factors and the stage
    f.variables["department"] = "2"
    late = with_answers(first, f, s)
    assert late.stage == "final" and "ivr_answer" not in points(late) and points(late)["long_call"] == 15


def test_record_and_bands() -> None:
    q = initial_quality(facts(repeat_caller=True), QualitySettings())
    record = q.record()
    assert record["quality"] == 60
    assert record["quality_factors"][1] == {"factor": "repeat_caller", "points": 10,
                                            "detail": "repeat caller within 90 days"}
    json.dumps(record)
    assert [quality_band(s) for s in (100, 70, 69, 40, 39, 0)] == ["high", "high", "medium", "medium", "low", "low"]


# --- configuration ---------------------------------------------------------------------------------------------


def section(tmp_path: Path, body: str) -> _Section:
    path = tmp_path / "ringpool.yaml"
    path.write_text("campaign: spring\nquality:\n" + body, encoding="utf-8")
    return _Section(path, load_located(path), "", 1).section("quality")


FULL = """\
  base: 40
  target_regions: [IL, US-NY]
  weights: {repeat_caller: 20, outside_hours: -30}
  number_types: {mobile: 12}
  sources: {Google: 10}
  mediums: {cpc: 5}
  keywords: {"Baby  Fans": 8}
  devices: {mobile: 3}
  tags: {vip: 20}
  answers:
    - {var: department, equals: "1", points: 10}
    - {var: department, equals: [2, 3], points: -5}
  short_call: 10
  long_call: 180
  positive: {buy: 15, "Credit Card": 20}
  negative: {"not interested": -20, cancel: -10}
"""


def test_read_quality(tmp_path: Path) -> None:
    s = read_quality(section(tmp_path, FULL))
    assert s.base == 40 and s.target_regions == ("IL", "US-NY")
    assert s.weights["repeat_caller"] == 20 and s.weights["outside_hours"] == -30 and s.weights["fax"] == -50
    assert s.number_types["mobile"] == 12 and s.number_types["invalid"] == -30
    assert s.sources == {"google": 10} and s.keywords == {"baby fans": 8} and s.devices == {"mobile": 3}
    assert s.answers == (AnswerRule("department", ("1",), 10), AnswerRule("department", ("2", "3"), -5))
    assert (s.short_call, s.long_call) == (10, 180)
    assert s.positive == {"buy": 15, "credit card": 20} and s.negative == {"not interested": -20, "cancel": -10}


def test_an_empty_section_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ringpool.yaml"
    path.write_text("campaign: spring\n", encoding="utf-8")
    assert read_quality(_Section(path, load_located(path), "", 1).section("quality")) == QualitySettings()


@pytest.mark.parametrize("body, key, line", [
    ("  surprise: 1\n", "quality.surprise", 3),
    ("  base: 101\n", "quality.base", 3),
    ("  weights:\n    repeat_caller: 5\n    repeat: 10\n", "quality.weights.repeat", 5),
    ("  weights: {spam: -101}\n", "quality.weights.spam", 3),
    ("  number_types: {cellphone: 5}\n", "quality.number_types.cellphone", 3),
    ("  target_regions: [IL, Mars]\n", "quality.target_regions", 3),
    ("  positive:\n    buy: 5\n    cheap: -5\n", "quality.positive.cheap", 5),
    ("  negative: {cancel: 10}\n", "quality.negative.cancel", 3),
    ("  positive: {refund: 5}\n  negative: {Refund: -5}\n", "quality.negative.Refund", 4),
    ("  positive: {buy: 5, BUY: 6}\n", "quality.positive.BUY", 3),
    ("  positive: {'...': 5}\n", "quality.positive....", 3),
    ("  sources: {google: ten}\n", "quality.sources.google", 3),
    ("  short_call: 200\n  long_call: 100\n", "quality.short_call", 3),
    ("  answers:\n    - {var: department, points: 5}\n", "quality.answers[0].equals", 4),
    ("  answers:\n    - {var: 'dep art', equals: '1', points: 5}\n", "quality.answers[0].var", 4),
    ("  answers:\n    - {var: dept, equals: '1', points: 5, extra: 1}\n", "quality.answers[0].extra", 4),
    ("  tags: [vip]\n", "quality.tags", 3),
])
def test_bad_quality_config_names_file_line_and_key(tmp_path: Path, body: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        read_quality(section(tmp_path, body))
    assert (info.value.key, info.value.line) == (key, line)
    assert info.value.file == str(tmp_path / "ringpool.yaml")


# --- properties ------------------------------------------------------------------------------------------------

words = st.sampled_from(["buy", "credit", "card", "not", "interested", "cancel", "uh", "friend"])
small = st.integers(-100, 100)


@hsettings(max_examples=200, deadline=None)
@given(base=st.integers(0, 100), weights=st.dictionaries(st.sampled_from(sorted(WEIGHTS)), small),
       repeat=st.booleans(), known=st.booleans(), spam=st.none() | st.integers(0, 100),
       number_type=st.sampled_from(["mobile", "invalid", "toll_free", "unknown"]), open_=st.none() | st.booleans(),
       region=st.sampled_from([None, CHICAGO, LA]), talk=st.none() | st.floats(0, 10_000),
       detections=st.lists(st.sampled_from(["machine", "fax_cng", "silence", "speech", "dtmf"]), max_size=4),
       said=st.lists(words, max_size=12), tag_points=small, answer_points=small)
def test_the_score_stays_within_0_100(base: int, weights: dict[str, int], repeat: bool, known: bool,
                                      spam: int | None, number_type: str, open_: bool | None, region: Region | None,
                                      talk: float | None, detections: list[str], said: list[str], tag_points: int,
                                      answer_points: int) -> None:
    s = QualitySettings(base=base, weights={**WEIGHTS, **weights}, target_regions=("IL",), tags={"t": tag_points},
                        answers=(AnswerRule("v", ("1",), answer_points),),
                        positive={"buy": 100, "credit card": 100}, negative={"not interested": -100, "cancel": -100})
    f = facts(repeat_caller=repeat, known_caller=known, spam_score=spam, number_type=number_type, region=region,
              tags={"t"}, variables={"v": "1"})
    stages = [initial_quality(f, s, open=open_)]
    stages.append(with_answers(stages[-1], f, s))
    stages.append(after(stages[-1], s, talk=talk, detections=tuple(detections), transcript=" ".join(said)))
    for q in stages:
        assert 0 <= q.score <= 100
        assert q.score == max(0, min(100, sum(f.points for f in q.factors)))
