"""The labelled screening scenario set (issue 5), end to end: robocalls and real-looking people call campaign
"screened" through the bundled Asterisk, and the spam decision is scored against the labels.

    .venv/bin/python -m tests.scenarios.run_screening            # starts its own stack, prints the results
    .venv/bin/python -m tests.scenarios.run_screening --only fax_machine --only person_forwarded_call
    .venv/bin/pytest -m integration -s tests/integration/test_screening_accuracy.py

Scenarios live in screening.yaml (its header documents the format). Each scenario runs in order on its own (rules,
then history calls, then its labelled calls, one call at a time); up to ``concurrency`` scenarios run at once, and
a scenario with ``after`` starts only when those scenarios are done.

The system's verdict on a labelled call, read from its record through the API (GET /api/v1/calls/{id}):

    spam  when any of these holds, named in the "how" column:
          refused    decision == "reject": refused before answer (a block rule, a red score 1)
          dropped    a "dialer_dropped" event: a fax or modem tone on the bridged call, both legs dropped
          challenge  the challenge result has passed == false (wrong or no digit, or nothing heard)
          score2     spam == 1 because score 2 reached spam_at after the call
          marked     spam == 1 for another reason (e.g. the opening matched a spam announcement)
    person otherwise: the call reached the desk, or the caller hung up before anything was decided (a caller who
          hangs up during the challenge, before its result, counts as not judged spam: "hung up in challenge").

Precision = TP / (TP + FP) and recall = TP / (TP + FN) of that spam decision, with spam the positive class.
A scenario that could not be placed or whose record never appeared is an error row: it counts as a wrong
verdict in the matrix, and the pytest test fails on it separately.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ari_app.testcall import run_softphone
from detectors import testsignals as ts

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "screening.yaml"
SIPP_HOLD = HERE / "sipp" / "uac_headers.xml"
SIPP_WAIT_BYE = HERE / "sipp" / "uac_headers_remote_bye.xml"
RATE = 8000
AUDIO_CACHE = Path(tempfile.gettempdir()) / "ringpool-scenario-audio"
SPEECH_CACHE = Path(tempfile.gettempdir()) / "ringpool-testspeech"
CONCURRENCY = 4
# The bar the set is held to: what issue 5 asks (precision >= 0.9, recall >= 0.8). Today the set gives precision
# 1.0 and recall 0.94 (16 of 17). The known miss:
#   spoofed_caller  the trunk's trust_id_inbound makes the caller number the P-Asserted-Identity, so pai_mismatch
#       never fires and the spoofed From number is not recorded; the clean PAI and a spoken message pass (and
#       pai_mismatch weighs 15: firing alone it would leave the call green, so this one needs more than that fix)
# Fixed since the set was written: silent callers (score 2's silent_caller: no voice or sound in 6 s of listening)
# and RFC 4733 DTMF blasting (out-of-band digits now get the in-band machine-dialling analysis).
MIN_PRECISION = 0.9
MIN_RECALL = 0.8
RECORD_TIMEOUT = 30.0  # seconds for a call's record to show its end after the caller is done

PERSON_SIGNALING = {"name": None, "from": None, "pai": "caller", "pai_name": "name", "privacy": "none",
                    "charge": "caller", "diversion": None}


# --- the scenario set -------------------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    label: str
    kind: str
    caller: str
    signaling: dict[str, Any]
    call: dict[str, Any]
    setup: dict[str, Any] = field(default_factory=dict)
    calls: int = 1
    note: str | None = None
    after: list[str] = field(default_factory=list)  # scenarios that must finish first

    @property
    def from_user(self) -> str:
        return str(self.signaling.get("from") or self.caller)

    def pai_number(self) -> str | None:
        pai = self.signaling.get("pai")
        return None if pai is None else self.caller if pai == "caller" else str(pai)

    def lookup_numbers(self) -> list[str]:
        """Numbers the call record may carry as its caller: Asterisk trusts P-Asserted-Identity on the trunk."""
        out: list[str] = []
        pai = self.pai_number()
        for value in (pai, self.caller, self.from_user):
            if value and not (pai and not any(ch.isdigit() for ch in value)):  # not "anonymous" behind a PAI
                digits = "".join(ch for ch in value if ch.isdigit()) or value
                if digits not in out:
                    out.append(digits)
        return out


def load(path: Path = SCENARIOS) -> tuple[str, list[Scenario]]:
    data = yaml.safe_load(path.read_text())
    scenarios, names = [], set()
    for raw in data["scenarios"]:
        unknown = set(raw) - {"name", "label", "kind", "caller", "signaling", "call", "setup", "calls", "note",
                              "after"}
        assert not unknown, f"{raw.get('name')}: unknown keys {unknown}"
        assert raw["label"] in ("spam", "person"), raw
        assert raw["name"] not in names, f"duplicate scenario {raw['name']}"
        names.add(raw["name"])
        signaling = PERSON_SIGNALING | (raw.get("signaling") or {})
        assert set(signaling) == set(PERSON_SIGNALING), f"{raw['name']}: unknown signaling keys"
        call = raw["call"]
        assert call.get("phone") in ("softphone", "sipp"), raw["name"]
        scenarios.append(Scenario(name=raw["name"], label=raw["label"], kind=raw.get("kind", ""),
                                  caller=str(raw["caller"]), signaling=signaling, call=call,
                                  setup=raw.get("setup") or {}, calls=int(raw.get("calls", 1)), note=raw.get("note"),
                                  after=list(raw.get("after") or [])))
    for scenario in scenarios:
        missing = set(scenario.after) - names
        assert not missing, f"{scenario.name}: after unknown scenario(s) {missing}"
    return data.get("target", "screened"), scenarios


# --- audio ------------------------------------------------------------------------------------------------------

def render_audio(parts: list[dict[str, Any]], noise: dict[str, Any] | None = None,
                 cache: Path = AUDIO_CACHE) -> Path:
    """The WAV for an audio recipe (8 kHz mono), rendered once per recipe."""
    key = hashlib.sha1(json.dumps([parts, noise], sort_keys=True).encode()).hexdigest()[:16]
    out = cache / f"{key}.wav"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    pieces = []
    for part in parts:
        if "speech" in part:
            pieces.append(ts.espeak(part["speech"], RATE, voice=part.get("voice", "en-us"), cache_dir=SPEECH_CACHE,
                                    speed=int(part.get("speed", 150))))
        elif "silence" in part:
            pieces.append(ts.silence(float(part["silence"]), RATE))
        elif "cng" in part:
            pieces.append(ts.cng(RATE, cycles=int(part["cng"])))
        elif "v21" in part:
            pieces.append(ts.v21_flags(RATE, dur=float(part["v21"])))
        elif "ansam" in part:
            pieces.append(ts.answer_tone(RATE, dur=float(part["ansam"]), am=True))
        elif "dtmf" in part:
            signal, _ = ts.dtmf_sequence(str(part["dtmf"]), float(part.get("tone", 0.08)), float(part.get("gap", 0.08)),
                                         RATE)
            pieces.append(signal)
        else:
            raise ValueError(f"unknown audio part {part}")
    samples = np.concatenate(pieces)
    if noise:
        voiced = np.abs(samples) > 0
        power = float(np.mean(samples[voiced] ** 2)) if voiced.any() else ts.amp(-20) ** 2
        rng = np.random.default_rng(int(key[:8], 16))
        samples = ts.add_noise(samples, float(noise["snr_db"]), rng, kind=noise.get("kind", "white"),
                               signal_power=power)
    tmp = out.with_suffix(".tmp.wav")
    ts.write_wav(tmp, samples, RATE)
    tmp.replace(out)
    return out


# --- signaling --------------------------------------------------------------------------------------------------

def _uri(number: str) -> str:
    """A header's address for a number: E.164 with + for 11+ digits (country code included), else as given."""
    digits = number.lstrip("+")
    if not digits.isdigit():
        return f"<sip:{number}@carrier.example>"
    return f"<sip:{'+' if len(digits) >= 11 else ''}{digits}@carrier.example;user=phone>"


def identity_headers(scenario: Scenario) -> dict[str, str]:
    """The identity headers of the INVITE, by name (absent ones left out)."""
    s = scenario.signaling
    headers: dict[str, str] = {}
    pai = scenario.pai_number()
    if pai:
        display = s["name"] if s["pai_name"] == "name" else s["pai_name"]
        headers["P-Asserted-Identity"] = (f'"{display}" ' if display else "") + _uri(pai)
    if s["privacy"]:
        headers["Privacy"] = str(s["privacy"])
    if s["diversion"]:
        headers["Diversion"] = str(s["diversion"])
    charge = scenario.caller if s["charge"] == "caller" else s["charge"]
    if charge:
        headers["P-Charge-Info"] = _uri(str(charge))
    return headers


# --- results ----------------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    label: str
    kind: str
    verdict: str = "error"  # spam | person | error
    how: str = ""
    caller_recorded: str | None = None
    score1: int | None = None
    color: str | None = None
    score2: int | None = None
    factors1: list[str] = field(default_factory=list)
    factors2: list[str] = field(default_factory=list)
    spam_reason: str | None = None
    disposition: str | None = None
    challenge: dict[str, Any] | None = None
    detections: list[str] = field(default_factory=list)
    dtmf: str | None = None  # the caller's digits with their source and median tone length and gap
    call_id: str | None = None
    seconds: float | None = None
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.verdict == self.label


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def judge(call: dict[str, Any]) -> tuple[str, str]:
    """(verdict, how): see the module docstring."""
    challenge = _json(call.get("challenge"))
    events = call.get("events") or []
    how = []
    if call.get("decision") == "reject":
        how.append("refused")
    if any(e["kind"] == "dialer_dropped" for e in events):
        how.append("dropped")
    if challenge is not None and not challenge.get("passed"):
        how.append("challenge")
    if call.get("spam") == 1 and not how:
        how.append("score2" if (call.get("spam_reason") or "").startswith("score 2") else "marked")
    if how:
        return "spam", "+".join(how)
    if challenge is not None and challenge.get("passed"):
        return "person", "passed challenge"
    if any(e["kind"] == "challenge_prompt" for e in events):
        return "person", "hung up in challenge"
    return "person", "bridged" if call.get("bridged_at") else (call.get("disposition") or "")


def fill(row: Row, call: dict[str, Any]) -> Row:
    screening = _json(call.get("screening")) or {}
    row.verdict, row.how = judge(call)
    row.call_id = call["id"]
    row.caller_recorded = call.get("caller_number")
    row.score1, row.color, row.score2 = call.get("score1"), call.get("score1_color"), call.get("score2")
    row.factors1 = [f"{f['factor']}:{f['weight']}" for f in screening.get("factors") or [] if f["weight"]]
    row.factors2 = [f"{f['factor']}:{f['weight']}" for f in screening.get("score2_factors") or []]
    row.spam_reason = call.get("spam_reason")
    row.disposition = call.get("disposition")
    row.challenge = _json(call.get("challenge"))
    row.seconds = call.get("total_seconds")
    kinds: dict[str, int] = {}
    for d in call.get("detections") or []:
        if d["leg"] == "caller":
            kind = d["kind"] + (f"({(d.get('details') or {}).get('digit')})" if d["kind"] == "dtmf" else "")
            kinds[kind] = kinds.get(kind, 0) + 1
    row.detections = [f"{k}x{n}" if n > 1 else k for k, n in kinds.items()]
    digits = [d for d in call.get("detections") or [] if d["leg"] == "caller" and d["kind"] == "dtmf"]
    if digits:
        tones = [d["duration_s"] or 0.0 for d in digits]
        gaps = [(d.get("details") or {}).get("gap_s") for d in digits[1:]]
        gaps = [g for g in gaps if g is not None]
        row.dtmf = (f"{''.join(str((d.get('details') or {}).get('digit')) for d in digits)} "
                    f"({'/'.join(sorted({d['source'] for d in digits}))}: tones {np.median(tones) * 1000:.0f} ms"
                    + (f", gaps {np.median(gaps) * 1000:.0f} ms" if gaps else "") + " median)")
    return row


@dataclass
class Summary:
    rows: list[Row]
    seconds: float

    def counts(self) -> dict[str, int]:
        c = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        for r in self.rows:
            said_spam = r.verdict == "spam" if r.verdict != "error" else r.label != "spam"  # errors count as wrong
            if r.label == "spam":
                c["tp" if said_spam else "fn"] += 1
            else:
                c["fp" if said_spam else "tn"] += 1
        return c

    @property
    def precision(self) -> float:
        c = self.counts()
        return c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0

    @property
    def recall(self) -> float:
        c = self.counts()
        return c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0

    def passes(self, precision: float = MIN_PRECISION, recall: float = MIN_RECALL) -> bool:
        return not self.errors and self.precision >= precision and self.recall >= recall

    @property
    def errors(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "error"]

    def report(self) -> str:
        c = self.counts()
        spam = sum(r.label == "spam" for r in self.rows)
        lines = [f"Screening accuracy: {len(self.rows)} labelled calls ({spam} spam, {len(self.rows) - spam} person) "
                 f"in {self.seconds:.0f} s", "",
                 "                 verdict spam   verdict person",
                 f"  label spam     {c['tp']:>12}   {c['fn']:>14}",
                 f"  label person   {c['fp']:>12}   {c['tn']:>14}", "",
                 f"  precision {self.precision:.3f}   recall {self.recall:.3f}   "
                 f"(TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']}; errors {len(self.errors)})",
                 f"  required: precision >= {MIN_PRECISION}, recall >= {MIN_RECALL} (issue 5 asks for 0.9 / 0.8)", ""]
        header = ("", "name", "label", "verdict", "how", "s1", "s2", "factors (score 1 | score 2)", "spam_reason")
        table = []
        for r in self.rows:
            mark = "" if r.correct else "!!"
            s1 = "-" if r.score1 is None else f"{r.score1}{(r.color or '?')[0]}"
            s2 = "-" if r.score2 is None else str(r.score2)
            factors = " ".join(r.factors1) + " | " + " ".join(r.factors2)
            reason = r.error or r.spam_reason or ""
            table.append((mark, r.name, r.label, r.verdict, r.how, s1, s2, factors, reason[:70]))
        widths = [max(len(str(x[i])) for x in [header, *table]) for i in range(len(header) - 2)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}  {}"
        lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths), "-" * 27, "-" * 11)]
        lines += [fmt.format(*t) for t in table]
        wrong = [r for r in self.rows if not r.correct]
        if wrong:
            lines += ["", "Misjudged (!!):"]
            for r in wrong:
                lines.append(f"  {r.name} [{r.label} -> {r.verdict}, {r.how or r.error}]: caller recorded "
                             f"{r.caller_recorded}, disposition {r.disposition}, challenge {r.challenge}, "
                             f"caller detections {r.detections or 'none'}"
                             + (f", DTMF {r.dtmf}" if r.dtmf else ""))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(), "precision": self.precision, "recall": self.recall, "seconds": self.seconds,
                "rows": [asdict(r) for r in self.rows]}


# --- placing calls ----------------------------------------------------------------------------------------------

def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class Runner:
    """Runs scenarios against a Stack (tests/integration/conftest.py)."""

    def __init__(self, stack: Any, *, target: str = "screened", concurrency: int = CONCURRENCY,
                 log: Any = None) -> None:
        from tests.integration.conftest import NUMBERS

        self.stack = stack
        self.number = NUMBERS[target]
        self.concurrency = concurrency
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.seen: set[str] = set()  # call ids already taken by a scenario
        self.scratch = Path(tempfile.mkdtemp(prefix="ringpool-scenarios-"))  # digit files; removed after run()

    async def api(self, path: str) -> Any:
        from tests.integration.conftest import ADMIN_TOKEN

        status, body = await asyncio.to_thread(self.stack.api, path, ADMIN_TOKEN)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    async def find_call(self, scenario: Scenario, since: str) -> dict[str, Any] | None:
        """The newest call from this scenario's caller to the target since ``since`` not taken yet (a summary
        row). Listed by the dialled number: the API's number filter takes digits only, and "anonymous" is not."""
        callers = set(scenario.lookup_numbers())
        body = await self.api(f"/api/v1/calls?number={self.number}&since={since}&limit=100")
        found = [c for c in body["calls"] if c["id"] not in self.seen and c.get("caller_number") in callers]
        return max(found, key=lambda c: c["arrived_at"]) if found else None

    async def wait_record(self, scenario: Scenario, since: str, timeout: float = RECORD_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = await self.find_call(scenario, since)
            if last is not None and last.get("ended_at"):
                self.seen.add(last["id"])
                return await self.api(f"/api/v1/calls/{last['id']}")
            await asyncio.sleep(0.3)
        raise RuntimeError(f"no ended call from {scenario.lookup_numbers()} since {since} after {timeout} s "
                           f"(last seen: {last and (last['id'], last.get('state'))})")

    async def place(self, scenario: Scenario, spec: dict[str, Any]) -> dict[str, Any]:
        """One call from the scenario's caller; returns its record."""
        since = _iso(time.time() - 0.05)
        if spec["phone"] == "sipp":
            await self._sipp(scenario, spec)
        else:
            await self._softphone(scenario, spec, since)
        return await self.wait_record(scenario, since)

    async def _sipp(self, scenario: Scenario, spec: dict[str, Any]) -> None:
        name = scenario.signaling["name"]
        headers = identity_headers(scenario)
        lines = [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"X-Scenario-Pad-{i}: {scenario.name}" for i in range(len(lines), 4)]
        keys = {"from_display": f'"{name}" ' if name else "", "from_user": scenario.from_user,
                **{f"h{i + 1}": line for i, line in enumerate(lines)}}
        wait_bye = bool(spec.get("wait_bye"))
        result = await asyncio.to_thread(
            self.stack.sipp, self.number, scenario=str(SIPP_WAIT_BYE if wait_bye else SIPP_HOLD),
            hold_ms=int(spec.get("hold_ms", 1500)), caller=scenario.from_user, keys=keys,
            timeout=int(spec.get("timeout", 60 if wait_bye else 30)))
        if result.returncode not in (0, 1):  # 1: the call failed in SIP terms (e.g. refused with 486): expected
            raise RuntimeError(f"sipp exited {result.returncode}: {result.stderr[-500:]!r}")

    async def _softphone(self, scenario: Scenario, spec: dict[str, Any], since: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "call": f"sip:{self.number}@127.0.0.1:{self.stack.sip_port}", "caller_id": scenario.from_user,
            "caller_name": scenario.signaling["name"], "header": identity_headers(scenario),
            "hold": spec.get("hold"), "timeout": float(spec.get("timeout", 60)),
        }
        if spec.get("audio"):
            options["play"] = str(await asyncio.to_thread(render_audio, spec["audio"], spec.get("noise")))
            options["play_loop"] = bool(spec.get("loop"))
        if spec.get("dtmf"):
            options |= {"dtmf": str(spec["dtmf"]), "dtmf_delay": float(spec.get("dtmf_delay", 1.0))}
        digit_file = None
        if spec.get("answers_challenge"):
            digit_file = self.scratch / f"{scenario.name}-{time.monotonic_ns()}.digit"
            options["dtmf_file"] = str(digit_file)
        phone = asyncio.create_task(run_softphone(**options))
        if digit_file is not None:
            await self._answer_challenge(scenario, since, digit_file, float(spec.get("press_after", 1.5)), phone)
        result = await phone
        if result.get("error"):
            raise RuntimeError(f"softphone: {result['error']}")
        return result

    async def _answer_challenge(self, scenario: Scenario, since: str, digit_file: Path, press_after: float,
                                phone: asyncio.Task[Any]) -> None:
        """A person listens to the challenge prompt and presses the digit it asks for."""
        prompted_at = None
        while not phone.done():
            await asyncio.sleep(0.3)
            call = await self.find_call(scenario, since)
            if call is None:
                continue
            detail = await self.api(f"/api/v1/calls/{call['id']}")
            asked = [e["data"]["expected"] for e in detail["events"] if e["kind"] == "challenge_prompt"]
            if asked and prompted_at is None:
                prompted_at = time.monotonic()
            if asked and time.monotonic() - prompted_at >= press_after:
                digit_file.write_text(asked[-1])
                return
            if detail.get("ended_at") or detail.get("bridged_at"):
                return  # never challenged

    async def run_scenario(self, scenario: Scenario) -> list[Row]:
        rows = [Row(f"{scenario.name}#{i + 1}" if scenario.calls > 1 else scenario.name, scenario.label, scenario.kind)
                for i in range(scenario.calls)]
        started = time.monotonic()
        try:
            from tests.integration.conftest import ADMIN_TOKEN

            for rule in scenario.setup.get("rules") or []:
                status, body = await asyncio.to_thread(self.stack.post, "/api/v1/screening/rules", rule,
                                                       token=ADMIN_TOKEN)
                if status != 201:
                    raise RuntimeError(f"adding rule {rule}: {status} {body}")
            gap = float(scenario.setup.get("gap", 1.0))
            for spec in scenario.setup.get("history") or []:
                await self.place(scenario, {**scenario.call, **spec})
                await asyncio.sleep(gap)
            for i, row in enumerate(rows):
                if i:
                    await asyncio.sleep(gap)
                fill(row, await self.place(scenario, scenario.call))
        except Exception as exc:  # one broken scenario must not hide the others' results
            for row in rows:
                if row.call_id is None:
                    row.error = f"{type(exc).__name__}: {exc}"[:300]
        self.log(f"  {scenario.name}: {', '.join(f'{r.verdict} ({r.how or r.error})' for r in rows)} "
                 f"[{time.monotonic() - started:.0f} s]")
        return rows

    async def run(self, scenarios: list[Scenario]) -> Summary:
        started = time.monotonic()
        gate = asyncio.Semaphore(self.concurrency)
        done = {s.name: asyncio.Event() for s in scenarios}

        async def one(scenario: Scenario) -> list[Row]:
            for name in scenario.after:  # waits without holding a slot
                if name in done:
                    await done[name].wait()
            try:
                async with gate:
                    return await self.run_scenario(scenario)
            finally:
                done[scenario.name].set()

        # The longest first (history, several calls, a challenge), so the slots finish together.
        def weight(s: Scenario) -> float:
            calls = len(s.setup.get("history") or []) + s.calls
            return calls * 5 + (s.call.get("hold") or (40 if s.call.get("wait_bye") else 0))

        order = sorted(scenarios, key=weight, reverse=True)
        try:
            results = await asyncio.gather(*(one(s) for s in order))
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        by_name = {s.name: rows for s, rows in zip(order, results)}
        rows = [row for s in scenarios for row in by_name[s.name]]
        return Summary(rows, time.monotonic() - started)


def run_set(stack: Any, *, only: list[str] | None = None, concurrency: int = CONCURRENCY,
            path: Path = SCENARIOS) -> Summary:
    target, scenarios = load(path)
    if only:
        missing = set(only) - {s.name for s in scenarios}
        assert not missing, f"no such scenario: {missing}"
        scenarios = [s for s in scenarios if s.name in only]
    # render every recipe up front (espeak and sox), so no call waits for it
    for s in scenarios:
        for spec in [s.call, *(s.setup.get("history") or [])]:
            if spec.get("audio"):
                render_audio(spec["audio"], spec.get("noise"))
    return asyncio.run(Runner(stack, target=target, concurrency=concurrency).run(scenarios))


# --- command line -----------------------------------------------------------------------------------------------

class _TempFactory:
    """The part of pytest's TempPathFactory the stack fixture uses."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    from tests.integration import conftest

    root = Path(tempfile.mkdtemp(prefix="ringpool-screening-"))
    fixture = conftest.stack.__wrapped__(_TempFactory(root))  # the session fixture's own setup and teardown
    stack = next(fixture)
    try:
        summary = run_set(stack, only=args.only, concurrency=args.concurrency)
    finally:
        next(fixture, None)
    print(summary.report())
    if args.json:
        Path(args.json).write_text(json.dumps(summary.to_json(), indent=2))
    print(f"\nstack files: {root}")
    if args.only:
        return 0 if not summary.errors else 1
    return 0 if summary.passes() else 1


if __name__ == "__main__":
    sys.exit(main())
