"""ivr.flow: the sample flows load, every node kind reads into its dataclass, and every mistake is a ConfigError
with the exact file, line and dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_app.yaml_located import ConfigError
from ivr.conditions import Hours
from ivr.flow import (Branch, Gather, Hangup, HttpDecision, Menu, Play, Prompt, Queue, Route, SetVars, Speech,
                      Voicemail, load_flow_text, load_flows, prompt_media)

REPO = Path(__file__).resolve().parents[2]
FILE = "flows/t.yaml"

# Line numbers matter: the cases below refer to them.
BASE = """\
name: t
start: welcome
nodes:
  welcome:
    play: [{text: "Hello."}]
    next: main
  main:
    menu:
      prompt: [{text: "Press or say one or two."}]
      keys: {"1": sales, "2": support}
      words: {one: "1", two: "2"}
    default: sales
  sales:
    route: default
  support:
    queue: {}
"""


def load(text: str, base: Path = Path("."), **kwargs):
    return load_flow_text(text, FILE, base, **kwargs)


def error(text: str, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, **kwargs)
    assert caught.value.file == FILE
    return caught.value


def test_samples_load():
    flows = load_flows(REPO / "config" / "flows", schedules={"business"})
    assert set(flows) == {"sales-menu", "after-hours"}
    sales = flows["sales-menu"]
    assert sales.file == str(REPO / "config" / "flows" / "sales-menu.yaml")
    assert isinstance(sales.nodes["open-check"], Branch) and sales.nodes["open-check"].condition == Hours("business")
    main = sales.nodes["main"]
    assert isinstance(main, Menu) and main.retries == 4 and main.words["sales"] == "1"


def test_samples_name_their_schedules():
    with pytest.raises(ConfigError) as caught:
        load_flows(REPO / "config" / "flows", schedules={"weekdays"})
    assert caught.value.key == "nodes.open-check.condition.hours"


def test_base_reads_into_dataclasses():
    flow = load(BASE)
    assert flow.name == "t" and flow.start == "welcome" and flow.file == FILE
    assert flow.nodes["welcome"] == Play("welcome", 4, (Prompt("text", "Hello."),), "main")
    main = flow.nodes["main"]
    assert isinstance(main, Menu)
    assert (main.keys, main.words, main.timeout, main.retries, main.invalid, main.save, main.default) == (
        {"1": "sales", "2": "support"}, {"one": "1", "two": "2"}, 5.0, 4, (), None, "sales")
    assert flow.nodes["sales"] == Route("sales", 13, "default")
    assert flow.nodes["support"] == Queue("support", 15, {})


EVERY_KIND = """\
name: t
start: a
nodes:
  a:
    play: [{sound: hello-world}, {digits: "0123"}, {number: 42}, {tone: "440+480/2000,0/4000"}, {say_var: zip}]
    next: b
  b:
    condition: {tag: vip}
    then: c
    else: d
  c:
    gather: {prompt: [{text: "Zip?"}], min: 5, max: 5, terminator: "", pattern: "^[0-9]{5}$", retries: 2,
             save: zip, timeout: 4.5, invalid: [{text: "No."}]}
    next: d
    fail: h
  d:
    speech: {prompt: {text: "Say sales or support."}, words: [Sales, support, billing], save: intent}
    branches: {sales: e, SUPPORT: f}
    default: g
  e:
    http: {url: "https://decide.example/x", timeout: 0.5}
    branches: {gold: f}
    fallback: i
  f:
    set: {tier: gold, greeting: "hi {name} from {session.source}", n: 3}
    tags: [vip, "campaign:x"]
    next: j
  g:
    tags: [lost]
    next: h
  h:
    voicemail: {}
  i:
    hangup:
  j:
    route: {destinations: [sales-desk], strategy: priority}
"""


def test_every_kind():
    flow = load(EVERY_KIND)
    n = flow.nodes
    assert [p.kind for p in n["a"].prompts] == ["sound", "digits", "number", "tone", "say_var"]
    assert n["a"].prompts[1] == Prompt("digits", "0123") and n["a"].prompts[2] == Prompt("number", "42")
    c = n["c"]
    assert isinstance(c, Gather)
    assert (c.min_len, c.max_len, c.terminator, c.pattern.pattern, c.retries, c.save, c.timeout, c.next, c.fail) == (
        5, 5, None, "^[0-9]{5}$", 2, "zip", 4.5, "d", "h")
    d = n["d"]
    assert isinstance(d, Speech)
    assert (d.words, d.branches, d.default, d.save, d.retries) == (
        ("sales", "support", "billing"), {"sales": "e", "support": "f"}, "g", "intent", 2)
    assert n["e"] == HttpDecision("e", 20, "https://decide.example/x", 0.5, {"gold": "f"}, "i")
    assert n["f"] == SetVars("f", 24, {"tier": "gold", "greeting": "hi {name} from {session.source}", "n": "3"},
                             ("vip", "campaign:x"), "j")
    assert n["g"] == SetVars("g", 28, {}, ("lost",), "h")
    assert n["h"] == Voicemail("h", 31, (), 120)
    assert n["i"] == Hangup("i", 33, ())
    assert n["j"].spec == {"destinations": ["sales-desk"], "strategy": "priority"}
    assert n["j"].spec.line == 36  # located: the caller validates destinations with lines


def test_the_brief_example_message():
    text = BASE.replace('keys: {"1": sales, "2": support}', 'keys:\n        "1": sales\n        "3": suport')
    text = text.replace('two: "2"', 'three: "3"')
    err = error(text)
    assert str(err) == "flows/t.yaml:12: nodes.main.menu.keys.3: unknown node 'suport'"


WELCOME = '    play: [{text: "Hello."}]\n    next: main'


def branch(condition: str, otherwise: str = "else") -> str:
    return f"    condition: {condition}\n    then: main\n    {otherwise}: sales"


# (text replaced in BASE, replacement, line, key, part of the message)
CASES = [
    # unknown kind, key, missing keys
    ("    play:", "    ploy:", 5, "nodes.welcome.ploy", "unknown node kind 'ploy'"),
    ("    next: main\n", "    next: main\n    then: sales\n", 7, "nodes.welcome.then",
     "unknown key: a play node has play, next"),
    ("    default: sales\n", "    default: sales\n    play: [{text: x}]\n", 13, "nodes.main.play",
     "a node does one thing: menu or play"),
    ("    route: default\n", "    next: support\n", 13, "nodes.sales", "missing the node's kind"),
    ("      words:", "      retrys: 3\n      words:", 11, "nodes.main.menu.retrys", "unknown key"),
    ("    next: main\n", "", 5, "nodes.welcome.next", "is required"),
    ("    default: sales\n", "", 8, "nodes.main.default", "is required"),  # at the node's first key
    ('      keys: {"1": sales, "2": support}\n      words: {one: "1", two: "2"}\n', "", 9, "nodes.main.menu.keys",
     "is required"),
    ("start: welcome\n", "", 1, "start", "is required"),
    ("start: welcome", "start: hello", 2, "start", "unknown node 'hello'"),
    ("name: t", "name: sales", 1, "name", "must be the file's name"),
    ("name: t", "name: t\nowner: me", 2, "owner", "unknown key"),
    # references
    ("    next: main", "    next: mian", 6, "nodes.welcome.next", "unknown node 'mian'"),
    ("    default: sales", "    default: operator", 12, "nodes.main.default", "unknown node 'operator'"),
    ('"2": support}', '"2": suport}', 10, "nodes.main.menu.keys.2", "unknown node 'suport'"),
    # unreachable
    ("    queue: {}\n", "    queue: {}\n  spare:\n    hangup: {}\n", 17, "nodes.spare", "unreachable"),
    ('{"1": sales, "2": support}', '{"1": sales, "2": sales}', 15, "nodes.support", "unreachable"),
    # menu keys and words
    ('"2": support}', '"a": support}', 10, "nodes.main.menu.keys.a", "bad key 'a'"),
    ('"2": support}', '10: support}', 10, "nodes.main.menu.keys.10", "bad key '10'"),
    ('"2": support}', '2: support, "2": sales}', 10, "nodes.main.menu.keys.2", "duplicate key"),
    ('two: "2"', 'two: "3"', 11, "nodes.main.menu.words.two", "key '3' is not in the menu's keys"),
    ('two: "2"', 'Two!: "2"', 11, "nodes.main.menu.words.Two!", "a word is letters"),
    ("      words:", "      timeout: 0\n      words:", 11, "nodes.main.menu.timeout", "out of range"),
    ("      words:", "      retries: 0\n      words:", 11, "nodes.main.menu.retries", "out of range"),
    ("      words:", "      save: 9lives\n      words:", 11, "nodes.main.menu.save", "invalid value '9lives'"),
    # prompts
    ('[{text: "Hello."}]', "[]", 5, "nodes.welcome.play", "expected a list of prompts"),
    ('[{text: "Hello."}]', '[{text: "Hello."}, {sing: la}]', 5, "nodes.welcome.play[1].sing",
     "unknown prompt kind 'sing'"),
    ('[{text: "Hello."}]', '[{text: "Hello.", sound: beep}]', 5, "nodes.welcome.play[0].sound",
     "a prompt is exactly one of"),
    ('[{text: "Hello."}]', '[{text: "  "}]', 5, "nodes.welcome.play[0].text", "empty text"),
    ('[{text: "Hello."}]', '[{text: "Hello {name"}]', 5, "nodes.welcome.play[0].text", "bad placeholder"),
    ('[{text: "Hello."}]', '[{text: "Hello {user.name}"}]', 5, "nodes.welcome.play[0].text", "bad placeholder"),
    ('[{text: "Hello."}]', "[{sound: ../../etc/passwd}]", 5, "nodes.welcome.play[0].sound", "not an Asterisk sound"),
    ('[{text: "Hello."}]', '[{digits: "12a"}]', 5, "nodes.welcome.play[0].digits", "expected digits"),
    ('[{text: "Hello."}]', "[{number: 1.5}]", 5, "nodes.welcome.play[0].number", "expected a whole number"),
    ('[{text: "Hello."}]', '[{tone: "440 480"}]', 5, "nodes.welcome.play[0].tone", "not an Asterisk tone"),
    ('[{text: "Hello."}]', "[{say_var: my-zip}]", 5, "nodes.welcome.play[0].say_var", "not a variable name"),
    ('[{text: "Hello."}]', "[{file: prompts/missing.wav}]", 5, "nodes.welcome.play[0].file", "no such file"),
    ('[{text: "Hello."}]', "[{file: ../secret.wav}]", 5, "nodes.welcome.play[0].file", "inside the flows folder"),
    ('[{text: "Hello."}]', "[{file: /etc/x.wav}]", 5, "nodes.welcome.play[0].file", "inside the flows folder"),
    ('[{text: "Hello."}]', "[{file: prompts/x.mp3}]", 5, "nodes.welcome.play[0].file", "expected one of .wav"),
    # conditions
    (WELCOME, branch("{regoin: IL}"), 5, "nodes.welcome.condition.regoin", "unknown condition 'regoin'"),
    (WELCOME, branch("{region: [IL, ZZ]}"), 5, "nodes.welcome.condition.region[1]", "bad region pattern 'ZZ'"),
    (WELCOME, branch("{number_type: cell}"), 5, "nodes.welcome.condition.number_type", "unknown number type 'cell'"),
    (WELCOME, branch("{hours: weekend}"), 5, "nodes.welcome.condition.hours", "unknown schedule 'weekend'"),
    (WELCOME, branch("{hours: business}", "els"), 7, "nodes.welcome.els", "unknown key"),
    # duplicates (yaml_located finds them; the flow loader names the dotted key)
    ("  support:\n", "  welcome:\n    hangup: {}\n  support:\n", 15, "nodes.welcome", "duplicate key"),
    ('two: "2"}', 'two: "2", one: "2"}', 11, "nodes.main.menu.words.one", "duplicate key"),
    # shapes
    ("nodes:\n", "nodes:\n  bad name:\n    hangup: {}\n", 4, "nodes.bad name", "a node name is"),
    ("    queue: {}", "    queue: [a]", 16, "nodes.support.queue", "expected a mapping"),
    ("    route: default", "    route: sales-desk", 14, "nodes.sales.route", "expected default or a mapping"),
    ("    route: default", "    route: {}", 14, "nodes.sales.route", "expected default or a mapping"),
]


@pytest.mark.parametrize("old, new, line, key, message", CASES, ids=[c[3] + ":" + c[4] for c in CASES])
def test_located_mistakes(old, new, line, key, message):
    assert old in BASE
    err = error(BASE.replace(old, new, 1), schedules={"business"})
    assert (err.line, err.key) == (line, key), str(err)
    assert message in err.message, str(err)


NODES = """\
name: t
start: a
nodes:
  a:
{node}
  end:
    hangup: {{}}
"""

# (node a's body, indented by 4; line, key, message)
NODE_CASES = [
    ("gather: {prompt: [{text: x}], min: 6, max: 5}\nnext: end\nfail: end", 5, "nodes.a.gather.min",
     "min 6 is more than max 5"),
    ('gather: {prompt: [{text: x}], pattern: "[0-9"}\nnext: end\nfail: end', 5, "nodes.a.gather.pattern",
     "invalid regular expression"),
    ('gather: {prompt: [{text: x}], terminator: "0"}\nnext: end\nfail: end', 5, "nodes.a.gather.terminator",
     "expected \"#\""),
    ("gather: {prompt: [{text: x}]}\nnext: end", 5, "nodes.a.fail", "is required"),
    ("gather: {prompt: [{text: x}]}\nnext: end\nfail: nowhere", 7, "nodes.a.fail", "unknown node 'nowhere'"),
    ("gather: {min: 2}\nnext: end\nfail: end", 5, "nodes.a.gather.prompt", "is required"),
    ("speech: {prompt: [{text: x}], words: []}\ndefault: end", 5, "nodes.a.speech.words", "non-empty list"),
    ("speech: {prompt: [{text: x}], words: [yes]}\nbranches: {no: end}\ndefault: end", 6, "nodes.a.branches.no",
     "'no' is not one of the words"),
    ("gather: {promt: [{text: x}]}\nnext: end\nfail: end", 5, "nodes.a.gather.promt", "unknown key: a gather has"),
    ("speech: {prompt: [{text: x}], words: [yes]}\nbranches: {yes: gone}\ndefault: end", 6, "nodes.a.branches.yes",
     "unknown node 'gone'"),
    ("http: {url: 'ftp://x/y'}\nfallback: end", 5, "nodes.a.http.url", "expected an http:// or https:// URL"),
    ("http: {url: 'http://x/y', timeout: 30}\nfallback: end", 5, "nodes.a.http.timeout", "out of range"),
    ("http: {url: 'http://x/y'}\nbranches: {gold: vip}\nfallback: end", 6, "nodes.a.branches.gold",
     "unknown node 'vip'"),
    ("http: {url: 'http://x/y'}\nfallback: somewhere", 6, "nodes.a.fallback", "unknown node 'somewhere'"),
    ("set: {}\nnext: end", 4, "nodes.a", "sets nothing"),
    ("set: {tier: [a]}\nnext: end", 5, "nodes.a.set.tier", "expected a string"),
    ("set: {tier: '{x'}\nnext: end", 5, "nodes.a.set.tier", "bad placeholder"),
    ("set: {my-var: x}\nnext: end", 5, "nodes.a.set.my-var", "a variable name"),
    ("tags: [a b]\nnext: end", 5, "nodes.a.tags", "a tag is"),
    ("condition: {tag: x}\nthen: end\nelse: gone", 7, "nodes.a.else", "unknown node 'gone'"),
    ("voicemail: {max_seconds: 2}", 5, "nodes.a.voicemail.max_seconds", "out of range"),
    ("voicemail: {}\nnext: end", 6, "nodes.a.next", "unknown key"),
    ("hangup: {prompt: [{text: bye}], after: 3}", 5, "nodes.a.hangup.after", "unknown key"),
    ("condition: {tag: x}\nthen: a\nelse: end", 4, "nodes.a",
     "a loop with no menu, gather or speech never ends: a -> a"),
    ("speech: {prompt: [{text: x}], words: [yes, no, on]}\nbranches: {yes: end, off: end}\ndefault: end", 6,
     "nodes.a.branches.off", "'off' is not one of the words (yes, no, on)"),  # YAML 1.2: yes stays a word
]


@pytest.mark.parametrize("body, line, key, message", NODE_CASES, ids=[c[2] + ":" + c[3] for c in NODE_CASES])
def test_located_node_mistakes(body, line, key, message):
    text = NODES.format(node="\n".join("    " + row for row in body.splitlines()))
    err = error(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert message in err.message, str(err)


LOOP = """\
name: t
start: a
nodes:
  a:
    play: [{text: hi}]
    next: b
  b:
    condition: {tag: vip}
    then: c
    else: d
  c:
    set: {x: "1"}
    next: e
  e:
    http: {url: "http://127.0.0.1:9/x"}
    fallback: b
  d:
    menu: {prompt: [{text: "1 or 2"}], keys: {"1": a, "2": f}}
    default: d
  f:
    hangup: {}
"""


def test_a_loop_without_input_is_named():
    err = error(LOOP)
    assert (err.line, err.key) == (7, "nodes.b")
    assert err.message.endswith("b -> c -> e -> b")


def test_a_loop_through_a_menu_is_fine():
    flow = load(LOOP.replace("    fallback: b", "    fallback: d"))
    assert flow.nodes["d"].exits == ("a", "f", "d")


def test_prompt_files_are_relative_to_the_flow(tmp_path: Path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "hi.wav").write_bytes(b"RIFF")
    flow = load(BASE.replace('[{text: "Hello."}]', "[{file: prompts/hi.wav}]"), base=tmp_path)
    assert flow.nodes["welcome"].prompts == (Prompt("file", str(tmp_path / "prompts" / "hi.wav")),)


def test_sounds_are_checked_when_asked():
    text = BASE.replace('[{text: "Hello."}]', "[{sound: hello-world}, {sound: no-such}]")
    load(text)  # unchecked
    load(text.replace("no-such", "hello-world"), sound_exists=lambda name: name == "hello-world")
    err = error(text, sound_exists=lambda name: name == "hello-world")
    assert (err.line, err.key, err.message) == (5, "nodes.welcome.play[1].sound", "Asterisk has no sound 'no-such'")


def test_yaml_syntax_and_shape():
    err = error("name: t\nstart: [a\n")
    assert err.line == 3 and err.message.startswith("YAML syntax")
    assert error("- a\n").message.startswith("a flow is a mapping")
    assert error("name: t\nstart: a\nnodes: {}\n").key == "nodes"


def test_load_flows_names_the_file(tmp_path: Path):
    (tmp_path / "good.yaml").write_text(BASE.replace("name: t", "name: good"))
    assert set(load_flows(tmp_path)) == {"good"}
    (tmp_path / "bad.yaml").write_text(BASE.replace("next: main", "next: nowhere"))
    with pytest.raises(ConfigError) as caught:
        load_flows(tmp_path)
    assert (caught.value.file, caught.value.line, caught.value.key) == (str(tmp_path / "bad.yaml"), 1, "name")
    with pytest.raises(ConfigError, match="no such folder"):
        load_flows(tmp_path / "missing")


def test_prompt_media():
    prompts = (Prompt("text", "Hi."), Prompt("sound", "hello-world"), Prompt("digits", "123"), Prompt("number", "42"),
               Prompt("tone", "440+480/2000"), Prompt("file", "/srv/flows/prompts/hi.wav"))
    assert prompt_media(prompts, lambda text: f"sound:/cache/{len(text)}") == [
        "sound:/cache/3", "sound:hello-world", "digits:123", "number:42", "tone:440+480/2000",
        "sound:/srv/flows/prompts/hi"]
    with pytest.raises(ValueError):
        prompt_media([Prompt("say_var", "zip")], str)
