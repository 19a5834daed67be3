"""The call quality score: how likely a call is to become business, 0-100 (seed 000: pay and route by quality;
seed 002: show buyers the quality before they bid).

Three stages, each a pure function of the call's facts and the campaign's ``quality:`` section:

- arrival (before answer): repeat caller and existing customer, region against the campaign's target regions,
  inside or outside its hours, number type, the visitor's source, medium, search keyword and device, and
  screening's spam score;
- ivr: the caller's IVR answers and the call's tags, re-evaluated whenever they change;
- final (after the call): talk duration, what the detectors heard, and the words the caller spoke.

The score is the sum of its factors (the base included), clamped to 0-100. Every factor is kept with its points
and a sentence, so the call record says why a call scored what it did, as screening's spam score does.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from detectors import events as kinds
from dialplan.facts import CallFacts, Region
from dialplan.regions import NUMBER_TYPES, matches_region, valid_region_pattern

if TYPE_CHECKING:
    from ari_app.config import _Section

BANDS = ("high", "medium", "low")

# Points of the named factors; a campaign's quality.weights overrides any of them by name.
WEIGHTS: dict[str, int] = {
    "repeat_caller": 10,  # called before (any campaign, 90 days): interest
    "known_caller": 15,  # converted before: an existing customer
    "in_region": 10,  # the caller's number is from one of the campaign's target regions
    "out_of_region": -15,
    "region_unknown": -5,  # target regions are set and the number tells no region
    "in_hours": 5,  # the call came while the campaign takes calls
    "outside_hours": -10,
    "spam": -50,  # at spam score 100; scaled down with the score
    "short_call": -15,  # talked less than short_call seconds
    "long_call": 15,  # talked long_call seconds or more
    "answering_machine": -40,
    "fax": -50,  # fax or modem tones from the caller
    "silence": -20,  # silence or no speech, and no speech heard at all
    "speech": 10,  # the caller spoke
}
# Points by number type (dialplan.regions.NUMBER_TYPES); a campaign's quality.number_types overrides single types.
NUMBER_TYPE_POINTS: dict[str, int] = {
    "mobile": 5, "toll_free": -10, "premium_rate": -20, "voip": -5, "shared_cost": -5, "personal_number": -5,
    "pager": -20, "uan": -5, "voicemail": -20, "invalid": -30, "anonymous": -15,
}
# Detector kinds (detectors.events, plus "machine" for an AMD verdict) and the factor each one counts toward.
DETECTIONS: dict[str, str] = {
    "machine": "answering_machine", kinds.FAX_CNG: "fax", kinds.V21_PREAMBLE: "fax", kinds.ANSWER_TONE: "fax",
    kinds.SILENCE: "silence", kinds.NO_SPEECH: "silence", kinds.SPEECH: "speech", kinds.SPEECH_START: "speech",
}
IVR_FACTORS = frozenset({"ivr_answer", "tag"})
FINAL_FACTORS = frozenset({"short_call", "long_call", "answering_machine", "fax", "silence", "speech",
                           "spoken_keyword"})
VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


@dataclass(frozen=True)
class AnswerRule:
    """An IVR answer worth points: variable ``var`` set to one of ``equals``."""

    var: str
    equals: tuple[str, ...]
    points: int


@dataclass(frozen=True)
class QualitySettings:
    base: int = 50
    weights: Mapping[str, int] = field(default_factory=lambda: dict(WEIGHTS))  # every named factor
    number_types: Mapping[str, int] = field(default_factory=lambda: dict(NUMBER_TYPE_POINTS))
    target_regions: tuple[str, ...] = ()  # dialplan.regions patterns; none: region does not count
    sources: Mapping[str, int] = field(default_factory=dict)  # the visitor's source (lower case) -> points
    mediums: Mapping[str, int] = field(default_factory=dict)
    keywords: Mapping[str, int] = field(default_factory=dict)  # words/phrases in the visitor's search keyword
    devices: Mapping[str, int] = field(default_factory=dict)  # the visitor's device_type -> points
    tags: Mapping[str, int] = field(default_factory=dict)
    answers: tuple[AnswerRule, ...] = ()
    short_call: int = 15  # seconds
    long_call: int = 120  # seconds
    positive: Mapping[str, int] = field(default_factory=dict)  # spoken words/phrases (lower case) -> points > 0
    negative: Mapping[str, int] = field(default_factory=dict)  # -> points < 0

    def weight(self, factor: str) -> int:
        """A named factor's points; the defaults fill in what a hand-built ``weights`` leaves out."""
        return self.weights.get(factor, WEIGHTS[factor])

    def number_type_points(self, number_type: str) -> int:
        return self.number_types.get(number_type, NUMBER_TYPE_POINTS.get(number_type, 0))


@dataclass(frozen=True)
class QualityFactor:
    factor: str  # snake_case id; for named factors also the key of quality.weights
    points: int
    detail: str  # why, for the call record


@dataclass(frozen=True)
class Quality:
    score: int
    factors: tuple[QualityFactor, ...]
    stage: str  # arrival, ivr, final: the last stage evaluated

    def record(self) -> dict[str, Any]:
        """The call record's quality columns."""
        return {"quality": self.score, "quality_factors": [asdict(f) for f in self.factors]}


def quality_band(score: int) -> str:
    """High, medium or low: campaigns price and route by band (seed 000: pay per H/M/L)."""
    return "high" if score >= 70 else "medium" if score >= 40 else "low"


def initial_quality(facts: CallFacts, settings: QualitySettings, *, open: bool | None = None) -> Quality:
    """Before answer. ``open``: the call came inside the campaign's schedule (None: the campaign has none).
    ``facts.spam_score`` should already hold screening's score 1."""
    w = settings.weight
    found = [QualityFactor("base", settings.base, "the campaign's base score")]
    if facts.repeat_caller:
        found.append(QualityFactor("repeat_caller", w("repeat_caller"), "repeat caller within 90 days"))
    if facts.known_caller:
        found.append(QualityFactor("known_caller", w("known_caller"), "existing customer: converted before"))
    found += _region(facts.region, settings)
    if open is not None:
        found.append(QualityFactor("in_hours", w("in_hours"), "inside the campaign's hours") if open else
                     QualityFactor("outside_hours", w("outside_hours"), "outside the campaign's hours"))
    number_type = "anonymous" if facts.anonymous else facts.number_type
    found.append(QualityFactor("number_type", settings.number_type_points(number_type),
                               f"number type {number_type}"))
    found += _session(facts.session, settings)
    if facts.spam_score:
        found.append(QualityFactor("spam", round(w("spam") * min(facts.spam_score, 100) / 100),
                                   f"screening spam score {facts.spam_score}"))
    return _quality(found, "arrival")


def with_answers(q: Quality, facts: CallFacts, settings: QualitySettings) -> Quality:
    """After IVR answers or tags change: their factors are recomputed from scratch, the others kept."""
    found = [f for f in q.factors if f.factor not in IVR_FACTORS]
    for rule in settings.answers:
        value = facts.variables.get(rule.var)
        if value is not None and str(value) in rule.equals:
            found.append(QualityFactor("ivr_answer", rule.points, f"IVR {rule.var} = {value}"))
    for tag in sorted(facts.tags):
        if tag in settings.tags:
            found.append(QualityFactor("tag", settings.tags[tag], f"tag {tag}"))
    return _quality(found, "final" if q.stage == "final" else "ivr")


def final_quality(q: Quality, settings: QualitySettings, *, talk_seconds: float | None, detections: Iterable[str],
                  transcript: str | None, spotted: Iterable[str] = ()) -> Quality:
    """After the call. ``talk_seconds``: from the destination's answer to the end, None when never connected
    (then the duration says nothing about the caller). ``detections``: the kinds detected on the caller's leg
    (detectors.events names, "machine" for an AMD verdict). ``transcript`` and ``spotted`` (terms the live
    keyword spotter heard): the caller's side only, so the agent's words do not rate the caller."""
    w = settings.weight
    found = [f for f in q.factors if f.factor not in FINAL_FACTORS]
    if talk_seconds is not None:
        if talk_seconds < settings.short_call:
            found.append(QualityFactor("short_call", w("short_call"),
                                       f"talked {talk_seconds:.0f} s, under {settings.short_call} s"))
        elif talk_seconds >= settings.long_call:
            found.append(QualityFactor("long_call", w("long_call"),
                                       f"talked {talk_seconds:.0f} s, at least {settings.long_call} s"))
    heard = {DETECTIONS[kind] for kind in detections if kind in DETECTIONS}
    if "speech" in heard:
        heard.discard("silence")  # pauses in a conversation are not a silent caller
    texts = {"answering_machine": "an answering machine answered", "fax": "fax or modem tones from the caller",
             "silence": "the caller was silent", "speech": "the caller spoke"}
    found += [QualityFactor(name, w(name), texts[name]) for name in texts if name in heard]
    for word, points in spoken_keywords(settings, [transcript or "", *spotted]):
        found.append(QualityFactor("spoken_keyword", points, f"keyword {word!r} {points:+d}"))
    return _quality(found, "final")


def spoken_keywords(settings: QualitySettings, texts: Iterable[str]) -> list[tuple[str, int]]:
    """The listed words and phrases in ``texts``, each counted once, case-insensitive, whole words only.
    Longer phrases match first and take their words: "not interested" does not also count "interested"."""
    listed = {**settings.positive, **settings.negative}
    phrases = sorted(listed, key=lambda p: (-len(_words(p)), p))
    found: set[str] = set()
    for text in texts:
        words = _words(text)
        taken = [False] * len(words)
        for phrase in phrases:
            target = _words(phrase)
            for start in _occurrences(words, target):
                span = range(start, start + len(target))
                if not any(taken[i] for i in span):
                    found.add(phrase)
                    for i in span:
                        taken[i] = True
    return [(phrase, listed[phrase]) for phrase in phrases if phrase in found]


def _words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def _occurrences(words: list[str], target: list[str]) -> Iterator[int]:
    """Where the phrase ``target`` starts in ``words``."""
    return (i for i in range(len(words) - len(target) + 1) if words[i:i + len(target)] == target)


def _region(region: Region | None, settings: QualitySettings) -> list[QualityFactor]:
    w, targets = settings.weight, settings.target_regions
    if not targets:
        return []
    if region is None or region.country is None:
        return [QualityFactor("region_unknown", w("region_unknown"), "the number tells no region")]
    hit = next((p for p in targets if matches_region(region, (p,))), None)
    if hit is not None:
        return [QualityFactor("in_region", w("in_region"), f"in target region {hit}")]
    where = "-".join(part for part in (region.country, region.state) if part)
    return [QualityFactor("out_of_region", w("out_of_region"),
                          f"{where} is outside the target regions {', '.join(targets)}")]


def _session(session: Mapping[str, Any], settings: QualitySettings) -> list[QualityFactor]:
    found = []
    for key, table in (("source", settings.sources), ("medium", settings.mediums),
                       ("device_type", settings.devices)):
        value = session.get(key)
        if value is not None and str(value).lower() in table:
            found.append(QualityFactor(key, table[str(value).lower()], f"{key.replace('_', ' ')} {value}"))
    keyword = session.get("keyword")
    if keyword:
        searched = _words(str(keyword))
        for phrase, points in settings.keywords.items():
            if any(_occurrences(searched, _words(phrase))):
                found.append(QualityFactor("search_keyword", points, f"search keyword {phrase!r} {points:+d}"))
    return found


def _quality(found: list[QualityFactor], stage: str) -> Quality:
    kept = tuple(f for f in found if f.points or f.factor == "base")
    return Quality(max(0, min(100, sum(f.points for f in kept))), kept, stage)


# --- configuration ----------------------------------------------------------------------------------------------


def read_quality(s: "_Section") -> QualitySettings:
    """A campaign's ``quality:`` section; empty: the defaults."""
    if not s.data:
        return QualitySettings()
    targets = s.string_list("target_regions")
    for pattern in targets:
        if not valid_region_pattern(pattern):
            raise s.error("target_regions", f"{pattern!r} is not a region such as US, US-NY, CA-ON or 312")
    answers = []
    for item, _line in s.items("answers"):
        equals = tuple(item.string_list("equals"))
        if not equals:
            raise item.error("equals", "is required: the answer (or answers) worth the points")
        answers.append(AnswerRule(var=item.string("var", pattern=VARIABLE_RE, hint="a variable name"),
                                  equals=equals, points=item.integer("points", low=-100, high=100)))
        item.reject_unknown()
    positive = _points(s, "positive", low=1, words=True)
    settings = QualitySettings(
        base=s.integer("base", 50, low=0, high=100),
        weights={**WEIGHTS, **_points(s, "weights", known=WEIGHTS)},
        number_types={**NUMBER_TYPE_POINTS, **_points(s, "number_types", known=NUMBER_TYPES)},
        target_regions=tuple(targets),
        sources=_points(s, "sources"), mediums=_points(s, "mediums"), keywords=_points(s, "keywords", words=True),
        devices=_points(s, "devices"), tags=_points(s, "tags"), answers=tuple(answers),
        short_call=s.integer("short_call", 15, low=0, high=86400),
        long_call=s.integer("long_call", 120, low=1, high=86400),
        positive=positive, negative=_points(s, "negative", high=-1, words=True, taken=positive))
    if settings.short_call >= settings.long_call:
        raise s.error("short_call", f"{settings.short_call} must be below long_call ({settings.long_call})")
    s.reject_unknown()
    return settings


def _points(s: "_Section", name: str, *, low: int = -100, high: int = 100, known: Iterable[str] | None = None,
            words: bool = False, taken: Mapping[str, int] | None = None) -> dict[str, int]:
    """A mapping of lower-cased names (words or phrases when ``words``) to whole points ``low``..``high``;
    ``taken``: the positive words, which a negative word must not repeat."""
    table = s.section(name)
    result: dict[str, int] = {}
    for key in table.data:
        label = " ".join(_words(str(key))) if words else str(key).lower()
        if known is not None and label not in known:
            raise table.error(key, f"unknown name: expected one of {', '.join(sorted(known))}")
        if not label:
            raise table.error(key, "expected a word or phrase")
        if label in result:
            raise table.error(key, "listed twice (names are not case-sensitive)")
        if taken is not None and label in taken:
            raise table.error(key, "is also a positive word")
        result[label] = table.integer(key, low=low, high=high)
    return result

