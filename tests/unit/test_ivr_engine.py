"""ivr.engine: each node kind walked through a scripted port, the menu retry rules, gathers, HTTP decisions,
variables, the record of every step, and the runaway guard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dialplan.facts import CallFacts
from ivr.engine import FlowOutcome, render, run_flow
from ivr.flow import Flow, Prompt, load_flow_text, load_flows

REPO = Path(__file__).resolve().parents[2]
ARRIVED = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class NineToFive:
    def is_open(self, when: datetime) -> bool:
        return 9 <= when.hour < 17


SCHEDULES = {"business": NineToFive()}


class ScriptedPort:
    """Answers every question with the next scripted input; when the script runs out, or the next input is not
    an answer to that question, the caller is silent."""

    def __init__(self, *inputs: Any) -> None:
        self.inputs = list(inputs)
        self.calls: list[tuple[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def next(self, silent: Any, *kinds: type) -> Any:
        if self.inputs and isinstance(self.inputs[0], kinds):
            return self.inputs.pop(0)
        return silent

    async def play(self, prompts, *, interruptible):
        self.calls.append(("play", prompts))
        assert not interruptible

    async def menu_input(self, prompts, *, keys, words, timeout):
        self.calls.append(("menu", (prompts, keys, words, timeout)))
        return self.next((None, "timeout"), tuple)

    async def gather_digits(self, prompts, *, min_len, max_len, terminator, timeout):
        self.calls.append(("gather", (prompts, min_len, max_len, terminator, timeout)))
        return self.next("", str)

    async def gather_speech(self, prompts, *, words, timeout):
        self.calls.append(("speech", (prompts, words, timeout)))
        return self.next(None, str, type(None))

    async def http_decision(self, url, payload, timeout):
        self.calls.append(("http", (url, payload, timeout)))
        return self.next(None, dict, type(None))

    async def record_voicemail(self, prompts, max_seconds):
        self.calls.append(("voicemail", (prompts, max_seconds)))
        return self.next(None, str, type(None))

    async def event(self, kind, data):
        self.events.append((kind, data))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]

    def played(self) -> list[Prompt]:
        return [p for kind, what in self.calls if kind == "play" for p in what]


def facts(**changes) -> CallFacts:
    base = dict(call_id="c1", campaign="spring", dialed_number="15550100300", caller_number="13125550123",
                arrived_at=ARRIVED)
    base.update(changes)
    return CallFacts(**base)


def flow(nodes: str, start: str = "a") -> Flow:
    return load_flow_text(f"name: t\nstart: {start}\nnodes:\n{nodes}", "t.yaml", Path("."))


async def run(f: Flow, port: ScriptedPort, call: CallFacts | None = None, **kwargs) -> FlowOutcome:
    return await run_flow(f, port, call or facts(), schedules=SCHEDULES, **kwargs)


MENU = flow("""\
  a:
    menu:
      prompt: [{text: "For sales press or say one. For support press or say two."}]
      keys: {"1": sales, "2": support}
      words: {one: "1", sales: "1", two: "2", support: "2"}
      timeout: 5
      invalid: [{text: "Sorry, that is not an option."}]
      save: department
    default: operator
  sales: {route: {destinations: [sales-desk], strategy: priority}}
  support: {queue: {}}
  operator: {route: default}
""")
SORRY = Prompt("text", "Sorry, that is not an option.")


async def test_menu_routes_the_key():
    port, call = ScriptedPort(("1", "dtmf")), facts()
    out = await run(MENU, port, call)
    assert (out.kind, out.node, out.spec, out.path) == (
        "route", "sales", {"destinations": ["sales-desk"], "strategy": "priority"}, ["a", "sales"])
    assert out.answers == {"keys": ["1"], "department": "1"} and call.variables == {"department": "1"}
    prompts, keys, words, timeout = port.calls[0][1]
    assert (keys, words, timeout) == (("1", "2"), ("one", "sales", "two", "support"), 5.0)
    assert port.kinds("key") == [{"node": "a", "key": "1", "how": "dtmf", "heard": "1"}]


async def test_four_invalid_tries_reach_the_default():
    port = ScriptedPort(("9", "dtmf"), (None, "timeout"), ("*", "dtmf"), ("billing", "speech"), ("1", "dtmf"))
    out = await run(MENU, port)
    assert (out.kind, out.node, out.spec) == ("route", "operator", "default")
    assert [kind for kind, _ in port.calls].count("menu") == 4
    assert port.played().count(SORRY) == 4
    assert [e["input"] for e in port.kinds("invalid")] == ["9", None, "*", "billing"]
    assert [e["attempt"] for e in port.kinds("retry")] == [2, 3, 4]
    assert port.kinds("default") == [{"node": "a", "next": "operator"}]
    assert out.answers == {"keys": []} and port.inputs == [("1", "dtmf")]


async def test_a_timeout_counts_as_an_invalid_try():
    port = ScriptedPort((None, "timeout"), ("2", "dtmf"))
    out = await run(MENU, port)
    assert (out.kind, out.node, out.spec) == ("queue", "support", {})
    assert len(port.kinds("invalid")) == 1 and port.played() == [SORRY]


async def test_a_spoken_word_maps_to_its_key():
    port = ScriptedPort(("sales", "speech"))
    out = await run(MENU, port)
    assert out.node == "sales" and out.answers == {"keys": ["1"], "department": "1"}
    assert port.kinds("key") == [{"node": "a", "key": "1", "how": "speech", "heard": "sales"}]


async def test_retries_are_configurable():
    f = flow("""\
  a:
    menu: {prompt: [{text: "Press one."}], keys: {"1": b}, retries: 2}
    default: c
  b: {hangup: {}}
  c: {voicemail: {max_seconds: 30}}
""")
    port = ScriptedPort(("5", "dtmf"), ("6", "dtmf"), "rec-1")
    out = await run(f, port)
    assert (out.kind, out.node, out.spec) == ("voicemail", "c", "rec-1")
    assert port.calls[-1] == ("voicemail", ((), 30))


GATHER = flow("""\
  a:
    gather: {prompt: [{text: "Enter your 5 digit zip code."}], min: 5, max: 5, terminator: "#", timeout: 6,
             pattern: "^[0-9]{5}$", retries: 2, save: zip, invalid: [{text: "That is not a zip code."}]}
    next: b
    fail: operator
  b:
    play: [{text: "Your zip is"}, {say_var: zip}, {text: "{zip}, thanks."}]
    next: done
  done: {hangup: {prompt: [{text: "Goodbye."}]}}
  operator: {route: default}
""")


async def test_gather_retries_a_short_answer():
    port, call = ScriptedPort("1234", "60601"), facts()
    out = await run(GATHER, port, call)
    assert (out.kind, out.node, out.path) == ("hangup", "done", ["a", "b", "done"])
    assert out.answers == {"keys": [], "zip": "60601"} and call.variables["zip"] == "60601"
    assert port.calls[0] == ("gather", ((Prompt("text", "Enter your 5 digit zip code."),), 5, 5, "#", 6.0))
    assert [e["digits"] for e in port.kinds("digits")] == ["1234", "60601"]
    assert port.kinds("invalid") == [{"node": "a", "input": "1234", "attempt": 1, "of": 2}]
    assert port.played() == [Prompt("text", "That is not a zip code."), Prompt("text", "Your zip is"),
                             Prompt("digits", "60601"), Prompt("text", "60601, thanks."), Prompt("text", "Goodbye.")]


async def test_gather_fails_after_its_retries():
    port = ScriptedPort("6060a", "")
    out = await run(GATHER, port)
    assert (out.kind, out.node, out.path) == ("route", "operator", ["a", "operator"])
    assert "zip" not in out.answers and len(port.kinds("invalid")) == 2


async def test_say_var_without_a_value_is_left_out():
    f = flow("""\
  a:
    play: [{text: "Number"}, {say_var: account}]
    next: b
  b: {hangup: {}}
""")
    port = ScriptedPort()
    await run(f, port, facts(variables={"account": "no digits"}))
    assert port.played() == [Prompt("text", "Number")]
    assert port.kinds("prompt") == [{"node": "a", "prompts": ["text:Number", "say_var:account"]}]


SPEECH = flow("""\
  a:
    speech: {prompt: [{text: "Say sales, support or billing."}], words: [sales, support, billing], timeout: 4,
             save: intent, retries: 2}
    branches: {sales: s, support: t}
    default: d
  s: {route: {destinations: [sales-desk]}}
  t: {queue: {}}
  d: {route: default}
""")


async def test_speech_branches_on_the_word():
    port, call = ScriptedPort(None, "support"), facts()
    out = await run(SPEECH, port, call)
    assert out.node == "t" and out.answers == {"keys": [], "intent": "support"}
    assert call.variables["intent"] == "support"
    assert port.calls[0][1][1:] == (("sales", "support", "billing"), 4.0)
    assert len(port.kinds("invalid")) == 1


async def test_speech_word_without_a_branch_and_silence_go_to_the_default():
    out = await run(SPEECH, ScriptedPort("billing"))
    assert out.node == "d" and out.answers["intent"] == "billing"
    port = ScriptedPort()
    out = await run(SPEECH, port)
    assert out.node == "d" and "intent" not in out.answers and len(port.kinds("invalid")) == 2


HTTP = flow("""\
  a:
    http: {url: "http://127.0.0.1:9000/decide", timeout: 1.5}
    branches: {gold: vip, silver: main}
    fallback: main
  vip: {route: {destinations: [vip-desk]}}
  main: {route: default}
""")


async def test_http_branch_and_variables():
    port, call = ScriptedPort({"branch": "gold", "variables": {"tier": "gold", "score": 9, "bad-name": "x",
                                                               "nested": {"a": 1}, "flag": True}}), facts()
    call.variables["zip"] = "60601"
    out = await run(HTTP, port, call)
    assert (out.kind, out.node) == ("route", "vip")
    assert call.variables == {"zip": "60601", "tier": "gold", "score": "9"}
    url, payload, timeout = port.calls[0][1]
    assert (url, timeout) == ("http://127.0.0.1:9000/decide", 1.5)
    assert payload == {"flow": "t", "node": "a", **call.public(), "variables": {"zip": "60601"}}
    assert "caller_number" not in payload
    assert [(e["name"], e["value"]) for e in port.kinds("variable")] == [("tier", "gold"), ("score", "9")]


async def test_http_destination():
    port = ScriptedPort({"destination": "portland-office"})
    out = await run(HTTP, port)
    assert (out.kind, out.node, out.spec, out.path) == ("destination", "a", "portland-office", ["a"])


async def test_http_fallback():
    for answer in (None, {"branch": "bronze"}, {"destination": "Not A Name!"}, {}):
        port = ScriptedPort(answer)
        out = await run(HTTP, port)
        assert out.node == "main", answer
        assert port.kinds("http")[-1]["next"] == "main"


async def test_set_variables_tags_and_conditions():
    f = flow("""\
  a:
    set: {greeting: "hi {name} from {session.source}{session.none}", tier: gold}
    tags: [vip]
    next: b
  b:
    condition: {all: [{tag: vip}, {var: {name: tier, equals: gold}}, {hours: business}]}
    then: yes
    else: no
  yes: {route: {destinations: [vip-desk]}}
  no: {route: default}
""")
    call = facts(variables={"name": "Ann"}, session={"source": "google"})
    port = ScriptedPort()
    out = await run(f, port, call)
    assert out.node == "yes"
    assert call.variables == {"name": "Ann", "greeting": "hi Ann from google", "tier": "gold"}
    assert call.tags == {"vip"}
    assert port.kinds("condition") == [{"node": "b", "result": True, "condition":
                                        "(tag vip and var tier equals 'gold' and hours business)"}]
    assert port.kinds("tag") == [{"node": "a", "tag": "vip"}]
    late = await run(f, ScriptedPort(), facts(), clock=lambda: ARRIVED.replace(hour=18))
    assert late.node == "no"


def test_render_leaves_unknown_placeholders_empty():
    assert render("{a}-{session.b}-{c}", facts(variables={"a": "1"}, session={"b": 2})) == "1-2-"


async def test_the_record_and_the_outcome():
    port = ScriptedPort(("2", "dtmf"))
    out = await run(MENU, port)
    assert [kind for kind, _ in port.events] == ["node", "prompt", "key", "variable", "node", "outcome"]
    assert port.events[0] == ("node", {"node": "a", "kind": "menu"})
    assert port.events[-1] == ("outcome", {"node": "support", "kind": "queue", "spec": {}})
    assert out.reason == ""


async def test_max_steps_ends_a_runaway_walk():
    f = flow("""\
  a:
    menu: {prompt: [{text: "Press one."}], keys: {"1": b}, retries: 1}
    default: a
  b: {hangup: {}}
""")
    port = ScriptedPort()
    out = await run(f, port, max_steps=10)
    assert (out.kind, out.spec, len(out.path)) == ("hangup", None, 10)
    assert out.reason == "still in the flow after 10 steps"
    assert port.events[-1][1]["reason"] == out.reason


SAMPLES = load_flows(REPO / "config" / "flows", schedules={"business"})
ANSWER = st.one_of(
    st.tuples(st.sampled_from(["1", "2", "3", "9", None]), st.sampled_from(["dtmf", "speech", "timeout"])),
    st.sampled_from(["", "60601", "123", "message", "goodbye", None, {"branch": "central"}, {"destination": "x"}]),
)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), answers=st.lists(ANSWER, max_size=12),
       hour=st.integers(0, 23), repeat=st.booleans())
def test_samples_always_end_at_a_terminal_node(name, answers, hour, repeat):
    """Whatever the caller does (wrong kinds of answers included), a sample flow ends properly, along edges."""
    f = SAMPLES[name]
    call = facts(repeat_caller=repeat, session={"keyword": "infant fans"} if repeat else {})
    out = asyncio.run(run_flow(f, ScriptedPort(*answers), call, schedules=SCHEDULES,
                               clock=lambda: ARRIVED.replace(hour=hour)))
    assert out.reason == "" and out.kind in ("route", "queue", "voicemail", "hangup", "destination")
    assert out.path[0] == f.start and out.path[-1] == out.node
    for here, there in zip(out.path, out.path[1:]):
        assert there in f.nodes[here].exits
