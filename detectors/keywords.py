"""Keyword rules over transcripts: AND / OR / NOT / ANDNOT / XOR, wildcards, phrases.

Grammar (operators case-insensitive, tightest last):
    expr    := xor (OR xor)*
    xor     := and (XOR and)*
    and     := unary ((AND | ANDNOT) unary)*
    unary   := NOT unary | atom
    atom    := WORD | "quoted phrase" | ( expr )
A WORD may use * (any run of characters) and ? (one character); a quoted
phrase matches consecutive words.  Two terms with no operator between them are
an error rather than a silent AND, so a typo cannot change a rule's meaning.
Matching is case-insensitive on Unicode word characters, so Korean works too.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .events import KEYWORD, Event

_OPS = {"AND", "OR", "NOT", "ANDNOT", "XOR"}
_TOKEN = re.compile(r'\s*(?:(?P<lp>\()|(?P<rp>\))|"(?P<q>[^"]*)"|(?P<w>[^\s()"]+)|(?P<bad>"))')
_WORD = re.compile(r"[\w'*?]+", re.UNICODE)


class KeywordSyntaxError(ValueError):
    """A malformed expression; message says what was expected and where."""

    def __init__(self, msg: str, expr: str, pos: int):
        super().__init__(msg)
        self.expr, self.pos, self.msg = expr, pos, msg

    def __str__(self) -> str:
        return f"{self.msg} at position {self.pos} in {self.expr!r}"


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True)
class Term:
    parts: tuple[str, ...]  # one word, or a phrase's words (lower case, may hold wildcards)

    def find(self, ws: list[str]) -> bool:
        n = len(self.parts)
        return any(all(fnmatch.fnmatchcase(ws[i + k], p) for k, p in enumerate(self.parts))
                   for i in range(len(ws) - n + 1))

    def __str__(self) -> str:
        return " ".join(self.parts) if len(self.parts) == 1 else '"' + " ".join(self.parts) + '"'


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple


Node = Term | Op


def _tokens(expr: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.group("bad"):
            raise KeywordSyntaxError("unterminated quote", expr, pos + (len(m.group(0)) - 1 if m else 0))
        start = m.start(m.lastgroup)
        if m.group("lp"):
            out.append(("(", "(", start))
        elif m.group("rp"):
            out.append((")", ")", start))
        elif m.group("q") is not None:
            ws = words(m.group("q"))
            if not ws:
                raise KeywordSyntaxError("empty phrase", expr, start)
            out.append(("term", " ".join(ws), start))
        else:
            w = m.group("w")
            if w.upper() in _OPS:
                out.append((w.upper(), w, start))
            else:
                ws = words(w)
                if not ws:
                    raise KeywordSyntaxError(f"not a word: {w!r}", expr, start)
                out.append(("term", " ".join(ws), start))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None):
        t = self.peek()
        if t is None:
            raise KeywordSyntaxError("unexpected end of expression, expected a term or '('", self.expr, len(self.expr))
        if kind and t[0] != kind:
            raise KeywordSyntaxError(f"expected {kind!r}, found {t[1]!r}", self.expr, t[2])
        self.i += 1
        return t

    def parse(self) -> Node:
        if not self.toks:
            raise KeywordSyntaxError("empty expression", self.expr, 0)
        node = self.binary(0)
        t = self.peek()
        if t is not None:
            what = "unbalanced ')'" if t[0] == ")" else f"expected an operator before {t[1]!r}"
            raise KeywordSyntaxError(what, self.expr, t[2])
        return node

    LEVELS = (("OR",), ("XOR",), ("AND", "ANDNOT"))

    def binary(self, level: int) -> Node:
        if level == len(self.LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while (t := self.peek()) is not None and t[0] in self.LEVELS[level]:
            self.i += 1
            rhs = self.binary(level + 1)
            node = Op("AND", (node, Op("NOT", (rhs,)))) if t[0] == "ANDNOT" else Op(t[0], (node, rhs))
        return node

    def unary(self) -> Node:
        t = self.take()
        if t[0] == "NOT":
            return Op("NOT", (self.unary(),))
        if t[0] == "(":
            node = self.binary(0)
            nxt = self.peek()
            if nxt is None:
                raise KeywordSyntaxError("missing ')'", self.expr, len(self.expr))
            if nxt[0] != ")":
                raise KeywordSyntaxError(f"expected an operator or ')' before {nxt[1]!r}", self.expr, nxt[2])
            self.i += 1
            return node
        if t[0] == "term":
            return Term(tuple(t[1].split(" ")))
        raise KeywordSyntaxError(f"expected a term or '(' but found {t[1]!r}", self.expr, t[2])


def parse(expr: str) -> Node:
    """Parse an expression; raises KeywordSyntaxError with position on bad input."""
    return _Parser(expr).parse()


def evaluate(node: Node, ws: list[str], hits: list[str] | None = None) -> bool:
    """True if the words satisfy the rule; positive terms found go into `hits`."""
    if isinstance(node, Term):
        ok = node.find(ws)
        if ok and hits is not None:
            hits.append(str(node))
        return ok
    if node.op == "NOT":
        return not evaluate(node.args[0], ws, None)
    a = evaluate(node.args[0], ws, hits)
    b = evaluate(node.args[1], ws, hits)
    return {"AND": a and b, "OR": a or b, "XOR": a != b}[node.op]


@dataclass
class KeywordRule:
    name: str
    expression: str

    def __post_init__(self) -> None:
        self.tree = parse(self.expression)

    def match(self, text: str) -> list[str] | None:
        """Matched terms if the rule fires on text, else None."""
        hits: list[str] = []
        return sorted(set(hits)) if evaluate(self.tree, words(text), hits) else None


class KeywordSpotter:
    """A set of named rules applied to each final transcript."""

    def __init__(self, rules: dict[str, str] | list[KeywordRule]):
        items = rules.items() if isinstance(rules, dict) else ((r.name, r.expression) for r in rules)
        self.rules = [KeywordRule(n, e) for n, e in items]

    def spot(self, text: str, start: float = 0.0, duration: float = 0.0) -> list[Event]:
        out = []
        for r in self.rules:
            terms = r.match(text)
            if terms is not None:
                out.append(Event(KEYWORD, start, duration,
                                 {"rule": r.name, "expression": r.expression, "terms": terms, "text": text}))
        return out
