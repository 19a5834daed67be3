"""IVR flows: how a business wants its calls handled, one YAML file per flow, validated whole at load.

A flow that loads cannot go wrong on a live call: every node it names exists, every node is reachable, every
prompt file is there, and no loop can spin without waiting for the caller. Each mistake is a ConfigError with
the file, the line and the dotted key (``nodes.main.menu.keys.3``), whether the flow comes from the flows
folder or is posted as text to the admin API before it goes live.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

import yaml

from ari_app.config import NAME_RE, SOUND_RE, _Section
from ari_app.yaml_located import ConfigError, LocatedList, LocatedMap, _Loader, parse_located
from ivr.conditions import Condition, parse_condition, read_regex

PROMPT_KINDS = ("text", "sound", "file", "digits", "number", "tone", "say_var")
NODE_KEYS = {  # a node's kind and the other keys a node of that kind has
    "play": ("next",), "condition": ("then", "else"), "menu": ("default",), "gather": ("next", "fail"),
    "speech": ("branches", "default"), "http": ("branches", "fallback"), "set": ("tags", "next"), "route": (),
    "queue": (), "voicemail": (), "hangup": (),
}
NODE_KINDS = tuple(NODE_KEYS)
EXIT_KEYS = {key for keys in NODE_KEYS.values() for key in keys}
AUDIO_SUFFIXES = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722")  # what Asterisk plays natively
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
PLACEHOLDER_RE = re.compile(r"\{(session\.)?([A-Za-z_][A-Za-z0-9_]{0,63})\}")
# Any language's letters (a Vosk model may be Korean or French), spaces, ' and -; no digits or punctuation
WORD_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[' -]){0,63}$")
MENU_KEY_RE = re.compile(r"^[0-9*#]$")
DIGITS_RE = re.compile(r"^[0-9*#]{1,64}$")
TONE_RE = re.compile(r"^[A-Za-z0-9!+*/,.;=-]{1,200}$")


@dataclass(frozen=True)
class Prompt:
    """One thing to play. ``file`` values are absolute paths; ``text`` may hold ``{var}`` placeholders and
    ``say_var`` names a variable: the engine resolves both before a port sees the prompt."""

    kind: str  # one of PROMPT_KINDS
    value: str


Prompts = tuple[Prompt, ...]


@dataclass(frozen=True)
class Play:
    name: str
    line: int
    prompts: Prompts
    next: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (self.next,)


@dataclass(frozen=True)
class Branch:
    name: str
    line: int
    condition: Condition
    then: str
    else_: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (self.then, self.else_)


@dataclass(frozen=True)
class Menu:
    name: str
    line: int
    prompts: Prompts
    keys: Mapping[str, str]  # key -> node
    words: Mapping[str, str]  # spoken word -> key
    timeout: float
    retries: int  # invalid or missing answers before ``default``
    invalid: Prompts
    save: str | None
    default: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (*self.keys.values(), self.default)


@dataclass(frozen=True)
class Gather:
    name: str
    line: int
    prompts: Prompts
    min_len: int
    max_len: int
    terminator: str | None
    timeout: float
    pattern: re.Pattern[str] | None  # searched, so anchor it (^...$) to match the whole answer
    retries: int
    invalid: Prompts
    save: str | None
    next: str
    fail: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (self.next, self.fail)


@dataclass(frozen=True)
class Speech:
    name: str
    line: int
    prompts: Prompts
    words: tuple[str, ...]
    timeout: float
    retries: int
    invalid: Prompts
    save: str | None
    branches: Mapping[str, str]  # word -> node; a recognised word without a branch goes to ``default``
    default: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (*self.branches.values(), self.default)


@dataclass(frozen=True)
class HttpDecision:
    name: str
    line: int
    url: str
    timeout: float
    branches: Mapping[str, str]
    fallback: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (*self.branches.values(), self.fallback)


@dataclass(frozen=True)
class SetVars:
    name: str
    line: int
    values: Mapping[str, str]  # templates: ``{var}`` and ``{session.name}`` are filled in on the call
    tags: tuple[str, ...]
    next: str

    @property
    def exits(self) -> tuple[str, ...]:
        return (self.next,)


@dataclass(frozen=True)
class Route:
    """Connect the caller. ``spec`` is ``"default"`` (the campaign's routing) or the located mapping from the
    file, for the caller to validate against its destinations with ``_Section(flow.file, spec, ...)``."""

    name: str
    line: int
    spec: Mapping[str, Any] | str

    exits = ()


@dataclass(frozen=True)
class Queue:
    name: str
    line: int
    spec: Mapping[str, Any]  # empty: the campaign's queue as configured

    exits = ()


@dataclass(frozen=True)
class Voicemail:
    name: str
    line: int
    prompts: Prompts
    max_seconds: int

    exits = ()


@dataclass(frozen=True)
class Hangup:
    name: str
    line: int
    prompts: Prompts

    exits = ()


Node = Union[Play, Branch, Menu, Gather, Speech, HttpDecision, SetVars, Route, Queue, Voicemail, Hangup]
INPUT_NODES = (Menu, Gather, Speech)  # a loop must pass one of these, or it would spin without the caller


@dataclass(frozen=True)
class Flow:
    name: str
    file: str
    start: str
    nodes: Mapping[str, Node]
    description: str = ""


def load_flows(folder: Path, *, schedules: Collection[str] = (),
               sound_exists: Callable[[str], bool] | None = None) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``folder`` by name. ``schedules`` are the configured schedule names (checked
    when given); ``sound_exists`` tells whether Asterisk has a sound (not checked when None)."""
    if not folder.is_dir():
        raise ConfigError(folder, None, "", "no such folder of flows")
    flows: dict[str, Flow] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(path, None, "", f"cannot read: {exc}") from exc
        flow = load_flow_text(text, str(path), path.parent, schedules=schedules, sound_exists=sound_exists)
        flows[flow.name] = flow
    return flows


def load_flow_text(text: str, file_name: str, base: Path, *, schedules: Collection[str] = (),
                   sound_exists: Callable[[str], bool] | None = None) -> Flow:
    """One flow from YAML text; errors name ``file_name``, and prompt files are looked up under ``base``."""
    data = _parse(text, file_name)
    return _Reader(Path(file_name), base, schedules, sound_exists).flow(data)


def prompt_media(prompts: Iterable[Prompt], render_text: Callable[[str], str]) -> list[str]:
    """ARI media URIs for prompts the engine has resolved (no ``say_var``, placeholders filled in).
    ``render_text`` turns text into a media URI, e.g. ``asterisk_sound(render_wav(text, folder))`` from
    ivr.prompts; it may run a subprocess, so call this in an executor."""
    uris = []
    for prompt in prompts:
        if prompt.kind == "text":
            uris.append(render_text(prompt.value))
        elif prompt.kind == "file":
            uris.append("sound:" + str(Path(prompt.value).with_suffix("")))
        elif prompt.kind in ("sound", "digits", "number", "tone"):
            uris.append(f"{prompt.kind}:{prompt.value}")
        else:
            raise ValueError(f"unresolved prompt {prompt.kind}: run it through the engine first")
    return uris


class _FlowLoader(_Loader):
    """yaml_located's loader with YAML 1.2 booleans (true and false only), so that words callers say, such
    as yes, no, on and off, stay words in menus and speech nodes."""


_FlowLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_FlowLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


def _parse(text: str, file: str) -> LocatedMap:
    try:
        data = parse_located(text, file, _FlowLoader)
    except ConfigError as exc:  # duplicate or non-string keys: yaml_located names the bare key
        if not exc.key:  # a syntax error: there is no key to name
            raise
        raise ConfigError(file, exc.line, _key_path(text, exc.line, exc.key) or exc.key, exc.message) from None
    if not isinstance(data, LocatedMap):
        raise ConfigError(file, 1, "", "a flow is a mapping with name, start and nodes")
    return data


def _key_path(text: str, line: int | None, key: str) -> str | None:
    """The dotted path of the mapping key ``key`` on ``line``."""

    def walk(node: yaml.Node, path: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                here = f"{path}.{k.value}" if path else str(k.value)
                if k.start_mark.line + 1 == line and str(k.value) == key:
                    return here
                found = walk(v, here)
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, f"{path}[{i}]")
                if found:
                    return found
        return None

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return walk(root, "") if root is not None else None


def _seconds(s: _Section, name: str, default: float, low: float, high: float) -> float:
    value = s.raw(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise s.error(name, "expected a number of seconds")
    if not low <= value <= high:
        raise s.error(name, f"{value} is out of range {low}..{high}")
    return float(value)


def _variable(s: _Section, name: str) -> str | None:
    return s.string(name, None, pattern=VAR_RE, hint="a variable name: letters, digits and _")


def _only(s: _Section, keys: Collection[str], has: str) -> None:
    """Reject unknown keys first: a misspelt key explains a missing one better than "is required" does."""
    for key in s.data:
        if key not in keys:
            raise s.error(key, f"unknown key: {has} {', '.join(keys)}")


def _template(s: _Section, name: Any, text: str) -> str:
    """``text``, once every brace in it is part of a placeholder the engine can fill in."""
    rest = PLACEHOLDER_RE.sub("", text)
    if "{" in rest or "}" in rest:
        raise s.error(name, f"bad placeholder in {text!r}: use {{variable}} or {{session.name}}")
    return text


class _Reader:
    """Reads one flow; collects every reference to a node with its place, to check them once all are read."""

    def __init__(self, file: Path, base: Path, schedules: Collection[str],
                 sound_exists: Callable[[str], bool] | None) -> None:
        self.file, self.base, self.schedules, self.sound_exists = file, base, schedules, sound_exists
        self.refs: list[tuple[str, int, str]] = []  # (node named, line, dotted key)

    def flow(self, data: LocatedMap) -> Flow:
        top = _Section(self.file, data, "", 1)
        _only(top, ("name", "description", "start", "nodes"), "a flow has")
        name = top.string("name", pattern=NAME_RE, hint="lower-case letters, digits, - and _")
        expected = self.file.name.removesuffix(".yaml")
        if name != expected:
            raise top.error("name", f"{name!r} must be the file's name without .yaml ({expected!r})")
        description = top.string("description", "")
        start = top.string("start")
        nodes_section = top.section("nodes", optional=False)
        if not nodes_section.data:
            raise top.error("nodes", "a flow needs at least one node")
        nodes: dict[str, Node] = {}
        for key, raw in nodes_section.data.items():
            if not isinstance(key, str) or not NAME_RE.match(key):
                raise nodes_section.error(key, "a node name is lower-case letters, digits, - and _")
            nodes[key] = self.node(key, raw, nodes_section.line_of(key))
        if start not in nodes:
            raise top.error("start", f"unknown node {start!r}")
        for target, line, key in self.refs:
            if target not in nodes:
                raise ConfigError(self.file, line, key, f"unknown node {target!r}")
        self.check_reachable(nodes, start)
        self.check_loops(nodes)
        return Flow(name=name, file=str(self.file), start=start, nodes=nodes, description=description)

    def node(self, name: str, raw: Any, line: int) -> Node:
        s = _Section(self.file, raw, f"nodes.{name}", line)
        kinds = [k for k in s.data if k in NODE_KINDS]
        if len(kinds) > 1:
            raise s.error(kinds[1], f"a node does one thing: {kinds[0]} or {kinds[1]}, not both")
        if kinds:
            kind = kinds[0]
        elif "tags" in s.data:
            kind = "set"
        else:
            unknown = [k for k in s.data if k not in EXIT_KEYS]
            if unknown:
                raise s.error(unknown[0], f"unknown node kind {unknown[0]!r}: expected one of {', '.join(NODE_KINDS)}")
            raise ConfigError(self.file, line, s.key, f"missing the node's kind: one of {', '.join(NODE_KINDS)}")
        _only(s, (kind, *NODE_KEYS[kind]), f"a {kind} node has")
        return getattr(self, f"read_{kind}")(s, name, line)

    def ref(self, s: _Section, name: Any) -> str:
        target = s.string(name)
        self.refs.append((target, s.line_of(name), s._path(str(name))))
        return target

    def branches(self, s: _Section, name: str, words: Collection[str] | None = None) -> dict[str, str]:
        b = s.section(name)
        out: dict[str, str] = {}
        for label in b.data:
            text = str(label).lower() if words is not None else str(label)
            if words is not None and text not in words:
                raise b.error(label, f"{text!r} is not one of the words ({', '.join(words)})")
            out[text] = self.ref(b, label)
        return out

    def prompts(self, s: _Section, name: str, *, required: bool) -> Prompts:
        value = s.raw(name, ... if required else None)
        if value is None:
            return ()
        if isinstance(value, LocatedMap):
            value = LocatedList([value])
            value.line, value.item_lines = value[0].line, [value[0].line]
        if not isinstance(value, LocatedList) or not value:
            raise s.error(name, "expected a list of prompts such as [{text: Hello}, {sound: hello-world}]")
        return tuple(self.prompt(_Section(self.file, item, f"{s._path(name)}[{i}]", value.item_lines[i]))
                     for i, item in enumerate(value))

    def prompt(self, p: _Section) -> Prompt:
        keys = list(p.data)
        bad = [k for k in keys if k not in PROMPT_KINDS]
        if bad:
            raise p.error(bad[0], f"unknown prompt kind {bad[0]!r}: expected one of {', '.join(PROMPT_KINDS)}")
        if len(keys) != 1:
            where = keys[1] if keys else ""
            raise ConfigError(self.file, p.line_of(where), p._path(where) if where else p.key,
                              f"a prompt is exactly one of {', '.join(PROMPT_KINDS)}")
        kind = keys[0]
        if kind == "number":
            return Prompt(kind, str(p.integer(kind, low=-999_999_999, high=999_999_999)))
        value = p.string(kind)
        if kind == "text":
            if not value.strip():
                raise p.error(kind, "empty text")
            _template(p, kind, value)
        elif kind == "sound":
            if not SOUND_RE.match(value) or ".." in value.split("/") or value.startswith("/"):
                raise p.error(kind, f"{value!r} is not an Asterisk sound name such as hello-world")
            if self.sound_exists is not None and not self.sound_exists(value):
                raise p.error(kind, f"Asterisk has no sound {value!r}")
        elif kind == "file":
            value = self.prompt_file(p, value)
        elif kind == "digits" and not DIGITS_RE.match(value):
            raise p.error(kind, f"{value!r}: expected digits, * and # (quote them: \"0123\")")
        elif kind == "tone" and not TONE_RE.match(value):
            raise p.error(kind, f"{value!r} is not an Asterisk tone such as 440+480/2000,0/4000 or ring")
        elif kind == "say_var" and not VAR_RE.match(value):
            raise p.error(kind, f"{value!r} is not a variable name")
        return Prompt(kind, value)

    def prompt_file(self, p: _Section, value: str) -> str:
        relative = Path(value)
        if relative.is_absolute() or ".." in relative.parts:
            raise p.error("file", f"{value!r}: a prompt file is a path inside the flows folder")
        if relative.suffix not in AUDIO_SUFFIXES:
            raise p.error("file", f"{value!r}: expected one of {', '.join(AUDIO_SUFFIXES)} (8 kHz mono for .wav)")
        path = (self.base / relative).absolute()
        if not path.is_file():
            raise p.error("file", f"no such file {str(path)!r}")
        return str(path)

    def read_play(self, s: _Section, name: str, line: int) -> Play:
        return Play(name, line, self.prompts(s, "play", required=True), self.ref(s, "next"))

    def read_condition(self, s: _Section, name: str, line: int) -> Branch:
        condition = parse_condition(s.raw("condition"), self.file, s.line_of("condition"), s._path("condition"),
                                    schedules=self.schedules)
        return Branch(name, line, condition, self.ref(s, "then"), self.ref(s, "else"))

    def read_menu(self, s: _Section, name: str, line: int) -> Menu:
        m = s.section("menu", optional=False)
        _only(m, ("prompt", "keys", "words", "timeout", "retries", "invalid", "save"), "a menu has")
        prompts = self.prompts(m, "prompt", required=True)
        keys = self.menu_keys(m)
        words = self.menu_words(m, keys)
        timeout = _seconds(m, "timeout", 5, 1, 60)
        retries = m.integer("retries", 4, low=1, high=10)
        invalid = self.prompts(m, "invalid", required=False)
        save = _variable(m, "save")
        return Menu(name, line, prompts, keys, words, timeout, retries, invalid, save, self.ref(s, "default"))

    def menu_keys(self, m: _Section) -> dict[str, str]:
        ks = m.section("keys", optional=False)
        if not ks.data:
            raise m.error("keys", "a menu needs at least one key")
        keys: dict[str, str] = {}
        for k in ks.data:
            key = str(k)
            if isinstance(k, bool) or not MENU_KEY_RE.match(key):
                raise ks.error(k, f"bad key {key!r}: a menu key is one of 0-9, * and #")
            if key in keys:
                raise ks.error(k, "duplicate key")
            keys[key] = self.ref(ks, k)
        return keys

    def menu_words(self, m: _Section, keys: Mapping[str, str]) -> dict[str, str]:
        ws = m.section("words")
        words: dict[str, str] = {}
        for w in ws.data:
            word = str(w).strip().lower()
            if not WORD_RE.match(word):
                raise ws.error(w, f"{word!r}: a word is letters, spaces, ' and -")
            key = ws.string(w)
            if key not in keys:
                raise ws.error(w, f"key {key!r} is not in the menu's keys")
            words[word] = key
        return words

    def read_gather(self, s: _Section, name: str, line: int) -> Gather:
        g = s.section("gather", optional=False)
        _only(g, ("prompt", "min", "max", "terminator", "timeout", "pattern", "retries", "invalid", "save"),
              "a gather has")
        prompts = self.prompts(g, "prompt", required=True)
        min_len = g.integer("min", 1, low=1, high=64)
        max_len = g.integer("max", max(min_len, 20), low=1, high=64)
        if min_len > max_len:
            raise g.error("min", f"min {min_len} is more than max {max_len}")
        terminator = g.string("terminator", "#")
        if terminator not in ("#", "*", ""):
            raise g.error("terminator", f"{terminator!r}: expected \"#\", \"*\" or \"\" (none)")
        timeout = _seconds(g, "timeout", 6, 1, 60)
        pattern = read_regex(g, "pattern") if "pattern" in g.data else None
        retries = g.integer("retries", 3, low=1, high=10)
        invalid = self.prompts(g, "invalid", required=False)
        save = _variable(g, "save")
        return Gather(name, line, prompts, min_len, max_len, terminator or None, timeout, pattern, retries, invalid,
                      save, self.ref(s, "next"), self.ref(s, "fail"))

    def read_speech(self, s: _Section, name: str, line: int) -> Speech:
        sp = s.section("speech", optional=False)
        _only(sp, ("prompt", "words", "timeout", "retries", "invalid", "save"), "a speech has")
        prompts = self.prompts(sp, "prompt", required=True)
        words = tuple(w.strip().lower() for w in sp.string_list("words"))
        if not words:
            raise sp.error("words", "expected a non-empty list of words to listen for")
        for word in words:
            if not WORD_RE.match(word):
                raise sp.error("words", f"{word!r}: a word is letters, spaces, ' and -")
        timeout = _seconds(sp, "timeout", 6, 1, 60)
        retries = sp.integer("retries", 2, low=1, high=10)
        invalid = self.prompts(sp, "invalid", required=False)
        save = _variable(sp, "save")
        branches = self.branches(s, "branches", words)
        return Speech(name, line, prompts, words, timeout, retries, invalid, save, branches, self.ref(s, "default"))

    def read_http(self, s: _Section, name: str, line: int) -> HttpDecision:
        h = s.section("http", optional=False)
        _only(h, ("url", "timeout"), "an http has")
        url = h.string("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise h.error("url", f"{url!r}: expected an http:// or https:// URL")
        timeout = _seconds(h, "timeout", 2, 0.1, 10)
        return HttpDecision(name, line, url, timeout, self.branches(s, "branches"), self.ref(s, "fallback"))

    def read_set(self, s: _Section, name: str, line: int) -> SetVars:
        v = s.section("set")
        values: dict[str, str] = {}
        for var in v.data:
            if not isinstance(var, str) or not VAR_RE.match(var):
                raise v.error(var, "a variable name is letters, digits and _")
            values[var] = _template(v, var, v.string(var))
        tags = s.string_list("tags")
        for tag in tags:
            if not TAG_RE.match(tag):
                raise s.error("tags", f"{tag!r}: a tag is letters, digits, _ . : and -")
        if not values and not tags:
            raise ConfigError(self.file, line, s.key, "sets nothing: give set, tags or both")
        return SetVars(name, line, values, tuple(tags), self.ref(s, "next"))

    def read_route(self, s: _Section, name: str, line: int) -> Route:
        spec = s.raw("route")
        if spec != "default" and not (isinstance(spec, LocatedMap) and spec):
            raise s.error("route", "expected default or a mapping such as {destinations: [sales-desk]}")
        return Route(name, line, spec)

    def read_queue(self, s: _Section, name: str, line: int) -> Queue:
        spec = s.raw("queue", None)
        if spec is not None and not isinstance(spec, LocatedMap):
            raise s.error("queue", "expected a mapping ({} for the campaign's queue)")
        return Queue(name, line, spec if spec is not None else {})

    def read_voicemail(self, s: _Section, name: str, line: int) -> Voicemail:
        v = s.section("voicemail")
        _only(v, ("prompt", "max_seconds"), "a voicemail has")
        prompts = self.prompts(v, "prompt", required=False)
        max_seconds = v.integer("max_seconds", 120, low=5, high=3600)
        return Voicemail(name, line, prompts, max_seconds)

    def read_hangup(self, s: _Section, name: str, line: int) -> Hangup:
        h = s.section("hangup")
        _only(h, ("prompt",), "a hangup has")
        return Hangup(name, line, self.prompts(h, "prompt", required=False))

    def check_reachable(self, nodes: Mapping[str, Node], start: str) -> None:
        seen, todo = {start}, [start]
        while todo:
            for target in nodes[todo.pop()].exits:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name, node in nodes.items():
            if name not in seen:
                raise ConfigError(self.file, node.line, f"nodes.{name}",
                                  f"unreachable: nothing leads here from start {start!r}")

    def check_loops(self, nodes: Mapping[str, Node]) -> None:
        """A cycle through nodes that neither wait for the caller nor end the call would spin forever."""
        done: set[str] = set()

        def visit(name: str, stack: list[str]) -> None:
            if name in stack:
                loop = stack[stack.index(name):] + [name]
                first = nodes[loop[0]]
                raise ConfigError(self.file, first.line, f"nodes.{loop[0]}",
                                  f"a loop with no menu, gather or speech never ends: {' -> '.join(loop)}")
            if name in done or isinstance(nodes[name], INPUT_NODES):
                return
            stack.append(name)
            for target in nodes[name].exits:
                visit(target, stack)
            stack.pop()
            done.add(name)

        for name in nodes:
            visit(name, [])
