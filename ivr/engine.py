"""Runs a flow for one call: walks its nodes, asks the caller through a port, and ends at a terminal node.

The engine knows nothing of ARI: the call implements FlowPort (play, listen, ask a URL), so the whole walk is
testable with a scripted port. Every step goes on the call's record through ``port.event``, and everything
the caller answers lands in ``facts.variables`` and ``facts.tags`` for conditions, routing and payouts later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ari_app.config import NAME_RE
from dialplan.facts import CallFacts
from ivr.conditions import describe, evaluate
from ivr.flow import (PLACEHOLDER_RE, VAR_RE, Branch, Flow, Gather, Hangup, HttpDecision, Menu, Node, Play,
                      Prompt, Prompts, Queue, Route, SetVars, Speech, Voicemail)

if TYPE_CHECKING:
    from dialplan.hours import Schedule


class FlowPort(Protocol):
    """What a call offers the engine. Prompts reach it resolved: only text, sound, file, digits, number and
    tone (see ivr.flow.prompt_media)."""

    async def play(self, prompts: Prompts, *, interruptible: bool) -> str | None:
        """Play; when ``interruptible``, stop at a key and return it."""

    async def menu_input(self, prompts: Prompts, *, keys: tuple[str, ...], words: tuple[str, ...],
                         timeout: float) -> tuple[str | None, str]:
        """Play the prompts and listen for a key and, when ``words`` are given, for speech at once, until
        ``timeout`` seconds after the prompts. Returns (the key pressed, "dtmf"), (the word heard, "speech")
        or (None, "timeout"). Any key counts: the engine judges whether it is one of ``keys``."""

    async def gather_digits(self, prompts: Prompts, *, min_len: int, max_len: int, terminator: str | None,
                            timeout: float) -> str:
        """The digits entered ("" when none)."""

    async def gather_speech(self, prompts: Prompts, *, words: tuple[str, ...], timeout: float) -> str | None:
        """The word among ``words`` the caller said, or None."""

    async def http_decision(self, url: str, payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """POST ``payload`` as JSON and return the JSON object answered; None on any failure."""

    async def record_voicemail(self, prompts: Prompts, max_seconds: int) -> str | None:
        """Play the prompts, record a message; the recording's name, or None when nothing was recorded."""

    async def event(self, kind: str, data: dict[str, Any]) -> None:
        """Put one step on the call's record."""


@dataclass
class FlowOutcome:
    """Where the flow left the call. ``kind`` is route, queue, voicemail, hangup or destination (an HTTP
    decision named a destination, which the caller must check against its configuration). ``spec`` is the
    route or queue mapping, the destination's name, or the voicemail recording; ``answers`` holds what the
    caller answered by variable name, and ``keys``, every menu key chosen in order."""

    kind: str
    node: str
    spec: Any
    path: list[str]
    answers: dict[str, Any]
    reason: str = ""


def render(template: str, facts: CallFacts) -> str:
    """Fill ``{var}`` from the call's variables and ``{session.name}`` from its session; unknown ones are empty."""

    def value(match: Any) -> str:
        source: Mapping[str, Any] = facts.session if match.group(1) else facts.variables
        found = source.get(match.group(2))
        return "" if found is None else str(found)

    return PLACEHOLDER_RE.sub(value, template)


async def run_flow(flow: Flow, port: FlowPort, facts: CallFacts, *, schedules: Mapping[str, "Schedule"],
                   max_steps: int = 200, clock: Callable[[], datetime] | None = None) -> FlowOutcome:
    """Walk ``flow`` from its start until a terminal node. ``clock`` gives the time hours conditions are judged
    at (pass ``lambda: datetime.now(timezone.utc)`` on a live call); without it, when the call arrived.
    A flow still walking after ``max_steps`` nodes (a caller circling a menu) ends in a hangup."""
    return await _Run(flow, port, facts, schedules, clock).walk(max_steps)


@dataclass
class _Run:
    flow: Flow
    port: FlowPort
    facts: CallFacts
    schedules: Mapping[str, "Schedule"]
    clock: Callable[[], datetime] | None
    path: list[str] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=lambda: {"keys": []})

    async def walk(self, max_steps: int) -> FlowOutcome:
        name = self.flow.start
        for _ in range(max_steps):
            node = self.flow.nodes[name]
            self.path.append(name)
            await self.port.event("node", {"node": name, "kind": type(node).__name__.lower()})
            step = await self.step(node)
            if isinstance(step, FlowOutcome):
                await self.port.event("outcome", {"node": name, "kind": step.kind, "spec": step.spec})
                return step
            name = step
        reason = f"still in the flow after {max_steps} steps"
        await self.port.event("outcome", {"node": name, "kind": "hangup", "reason": reason})
        return self.outcome("hangup", name, None, reason)

    def outcome(self, kind: str, node: str, spec: Any, reason: str = "") -> FlowOutcome:
        return FlowOutcome(kind, node, spec, list(self.path), dict(self.answers), reason)

    async def step(self, node: Node) -> str | FlowOutcome:
        """The next node's name, or the outcome at a terminal node."""
        match node:
            case Play():
                await self.play(node.name, node.prompts)
                return node.next
            case Branch():
                result = evaluate(node.condition, self.facts, self.schedules, self.clock() if self.clock else None)
                await self.port.event("condition", {"node": node.name, "condition": describe(node.condition),
                                                    "result": result})
                return node.then if result else node.else_
            case Menu():
                return await self.menu(node)
            case Gather():
                return await self.gather(node)
            case Speech():
                return await self.speech(node)
            case HttpDecision():
                return await self.http(node)
            case SetVars():
                for var, template in node.values.items():
                    await self.set_variable(node.name, var, render(template, self.facts))
                for tag in node.tags:
                    self.facts.tags.add(tag)
                    await self.port.event("tag", {"node": node.name, "tag": tag})
                return node.next
            case Route() | Queue():
                return self.outcome(type(node).__name__.lower(), node.name, node.spec)
            case Voicemail():
                await self.announce(node.name, node.prompts)
                recording = await self.port.record_voicemail(self.resolve(node.prompts), node.max_seconds)
                await self.port.event("voicemail", {"node": node.name, "recording": recording})
                return self.outcome("voicemail", node.name, recording)
            case Hangup():
                if node.prompts:
                    await self.play(node.name, node.prompts)
                return self.outcome("hangup", node.name, None)
        raise TypeError(f"not a node: {node!r}")

    def resolve(self, prompts: Prompts) -> Prompts:
        """Prompts as a port plays them: placeholders filled in, ``say_var`` read out as the variable's digits
        (left out when it has none)."""
        out = []
        for prompt in prompts:
            if prompt.kind == "text":
                out.append(Prompt("text", render(prompt.value, self.facts)))
            elif prompt.kind == "say_var":
                digits = "".join(ch for ch in self.facts.variables.get(prompt.value, "") if ch in "0123456789*#")
                if digits:
                    out.append(Prompt("digits", digits))
            else:
                out.append(prompt)
        return tuple(out)

    async def announce(self, node: str, prompts: Prompts) -> None:
        if prompts:
            await self.port.event("prompt", {"node": node, "prompts": [f"{p.kind}:{p.value}" for p in prompts]})

    async def play(self, node: str, prompts: Prompts) -> None:
        await self.announce(node, prompts)
        await self.port.play(self.resolve(prompts), interruptible=False)

    async def invalid(self, node: str, answer: Any, attempt: int, tries: int, prompts: Prompts) -> None:
        await self.port.event("invalid", {"node": node, "input": answer, "attempt": attempt, "of": tries})
        if prompts:
            await self.play(node, prompts)

    async def set_variable(self, node: str, name: str, value: str) -> None:
        self.facts.variables[name] = value
        await self.port.event("variable", {"node": node, "name": name, "value": value})

    async def answer(self, node: str, save: str | None, value: str) -> None:
        if save:
            self.answers[save] = value
            await self.set_variable(node, save, value)

    async def menu(self, node: Menu) -> str:
        for attempt in range(1, node.retries + 1):
            if attempt > 1:
                await self.port.event("retry", {"node": node.name, "attempt": attempt})
            await self.announce(node.name, node.prompts)
            heard, how = await self.port.menu_input(self.resolve(node.prompts), keys=tuple(node.keys),
                                                    words=tuple(node.words), timeout=node.timeout)
            key = node.words.get(heard or "") if how == "speech" else heard
            if key in node.keys:
                await self.port.event("key", {"node": node.name, "key": key, "how": how, "heard": heard})
                self.answers["keys"].append(key)
                await self.answer(node.name, node.save, key)
                return node.keys[key]
            await self.invalid(node.name, heard, attempt, node.retries, node.invalid)
        await self.port.event("default", {"node": node.name, "next": node.default})
        return node.default

    async def gather(self, node: Gather) -> str:
        for attempt in range(1, node.retries + 1):
            if attempt > 1:
                await self.port.event("retry", {"node": node.name, "attempt": attempt})
            await self.announce(node.name, node.prompts)
            digits = await self.port.gather_digits(self.resolve(node.prompts), min_len=node.min_len,
                                                   max_len=node.max_len, terminator=node.terminator,
                                                   timeout=node.timeout)
            await self.port.event("digits", {"node": node.name, "digits": digits})
            if node.min_len <= len(digits) <= node.max_len and (node.pattern is None or node.pattern.search(digits)):
                await self.answer(node.name, node.save, digits)
                return node.next
            await self.invalid(node.name, digits, attempt, node.retries, node.invalid)
        await self.port.event("default", {"node": node.name, "next": node.fail})
        return node.fail

    async def speech(self, node: Speech) -> str:
        for attempt in range(1, node.retries + 1):
            if attempt > 1:
                await self.port.event("retry", {"node": node.name, "attempt": attempt})
            await self.announce(node.name, node.prompts)
            word = await self.port.gather_speech(self.resolve(node.prompts), words=node.words, timeout=node.timeout)
            await self.port.event("speech", {"node": node.name, "word": word})
            if word in node.words:
                await self.answer(node.name, node.save, word)
                return node.branches.get(word, node.default)
            await self.invalid(node.name, word, attempt, node.retries, node.invalid)
        await self.port.event("default", {"node": node.name, "next": node.default})
        return node.default

    async def http(self, node: HttpDecision) -> str | FlowOutcome:
        payload = {"flow": self.flow.name, "node": node.name, **self.facts.public()}
        answer = await self.port.http_decision(node.url, payload, node.timeout)
        if not isinstance(answer, dict):
            await self.port.event("http", {"node": node.name, "url": node.url, "error": "no answer",
                                           "next": node.fallback})
            return node.fallback
        await self.port.event("http", {"node": node.name, "url": node.url, "answer": answer})
        variables = answer.get("variables")
        if isinstance(variables, dict):
            for name, value in variables.items():
                if isinstance(name, str) and VAR_RE.match(name) and isinstance(value, (str, int, float)) \
                        and not isinstance(value, bool):
                    await self.set_variable(node.name, name, str(value))
        branch, destination = answer.get("branch"), answer.get("destination")
        if isinstance(branch, str) and branch in node.branches:
            return node.branches[branch]
        if isinstance(destination, str) and NAME_RE.match(destination):
            return self.outcome("destination", node.name, destination)
        await self.port.event("http", {"node": node.name, "error": "no known branch or destination",
                                       "next": node.fallback})
        return node.fallback

