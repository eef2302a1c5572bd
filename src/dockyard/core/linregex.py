"""Regular expressions from tenants, matched in linear time.

Python's ``re`` backtracks: ``(a+)+$`` against a long enough string runs for hours, and a
pattern a tenant supplies runs in a process every tenant shares. Docker's daemon uses Go's
RE2, which never backtracks. This module compiles the usual syntax (literals, ``.``,
classes and escapes, groups, ``|``, ``* + ? {m,n}``, ``^ $``) to a Thompson NFA and
simulates it, so a match costs O(len(text) x len(pattern)) whatever the pattern.
Backreferences and lookaround (which RE2 lacks too) are refused.

Matching is ``search``: the pattern may match anywhere, as Go's ``MatchString``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LinearRegex", "RegexError"]

_MAX_PATTERN = 1024
_MAX_STATES = 20_000
_MAX_REPEAT = 100


class RegexError(ValueError):
    """The pattern is malformed or uses what a linear matcher cannot do."""


Predicate = Callable[[str], bool]


@dataclass(eq=False, slots=True)
class _State:
    kind: str  # "char", "split", "bol", "eol", "match"
    test: Predicate | None = None
    out: list[_State] = field(default_factory=list)


# parsing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Char:
    test: Predicate


@dataclass(frozen=True, slots=True)
class _Seq:
    items: list[_Node]


@dataclass(frozen=True, slots=True)
class _Alt:
    branches: list[_Node]


@dataclass(frozen=True, slots=True)
class _Repeat:
    node: _Node
    lo: int
    hi: int | None  # None: unbounded


@dataclass(frozen=True, slots=True)
class _Anchor:
    kind: str  # "bol" or "eol"


_Node = _Char | _Seq | _Alt | _Repeat | _Anchor


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self.pos != len(self.text):
            raise RegexError(f"unexpected ) at position {self.pos}")
        return node

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _alternation(self) -> _Node:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return branches[0] if len(branches) == 1 else _Alt(branches)

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            items.append(self._quantified(self._atom()))
        return _Seq(items)

    def _atom(self) -> _Node:
        char = self._peek()
        start = self.pos
        self.pos += 1
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self._peek() == "?":
                if self.text.startswith("?P<", self.pos):
                    end = self.text.find(">", self.pos)
                    if end < 0:
                        raise RegexError("unterminated group name")
                    self.pos = end + 1
                else:
                    raise RegexError("lookaround and inline flags are not supported")
            inner = self._alternation()
            if self._peek() != ")":
                raise RegexError("missing ), unterminated subpattern")
            self.pos += 1
            return inner
        if char == "^":
            return _Anchor("bol")
        if char == "$":
            return _Anchor("eol")
        if char in "*+?{":
            raise RegexError(f"nothing to repeat at position {start}")
        if char == ".":
            return _Char(lambda c: c != "\n")
        if char == "[":
            end = self._class_end()
            return _Char(_single(self.text[start:end]))
        if char == "\\":
            if self.pos >= len(self.text):
                raise RegexError("bad escape (end of pattern)")
            escaped = self.text[self.pos]
            self.pos += 1
            if escaped.isdigit() and escaped != "0":
                raise RegexError("backreferences are not supported")
            if escaped in "bBAzZ":
                raise RegexError(f"\\{escaped} is not supported")
            return _Char(_single(self.text[start : self.pos]))
        return _Char(_literal(char))

    def _class_end(self) -> int:
        pos = self.pos
        if pos < len(self.text) and self.text[pos] == "^":
            pos += 1
        if pos < len(self.text) and self.text[pos] == "]":
            pos += 1
        while pos < len(self.text) and self.text[pos] != "]":
            pos += 2 if self.text[pos] == "\\" else 1
        if pos >= len(self.text):
            raise RegexError("unterminated character set")
        self.pos = pos + 1
        return self.pos

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        lo: int
        hi: int | None
        if char in ("*", "+", "?"):
            self.pos += 1
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and (bounds := re.match(r"\{(\d+)(,(\d*))?\}", self.text[self.pos :])):
            self.pos += bounds.end()
            lo = int(bounds.group(1))
            hi = lo
            if bounds.group(2) is not None:
                hi = int(bounds.group(3)) if bounds.group(3) else None
            if (hi is not None and hi < lo) or max(lo, hi or 0) > _MAX_REPEAT:
                raise RegexError(f"bad repeat {bounds.group(0)}")
        else:
            return atom
        if self._peek() == "?":  # lazy: the same language
            self.pos += 1
        if isinstance(atom, _Anchor):
            raise RegexError("nothing to repeat")
        return _Repeat(atom, lo, hi)


def _literal(want: str) -> Predicate:
    return lambda c: c == want


def _single(text: str) -> Predicate:
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise RegexError(exc.msg) from None
    return lambda c: compiled.fullmatch(c) is not None


# the NFA ----------------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.count = 0

    def state(self, kind: str, test: Predicate | None = None) -> _State:
        self.count += 1
        if self.count > _MAX_STATES:
            raise RegexError("pattern too large")
        return _State(kind, test)

    def build(self, node: _Node, then: _State) -> _State:
        """A fragment for ``node`` that continues with ``then``; returns its entry."""
        if isinstance(node, _Char):
            state = self.state("char", node.test)
            state.out.append(then)
            return state
        if isinstance(node, _Anchor):
            state = self.state(node.kind)
            state.out.append(then)
            return state
        if isinstance(node, _Seq):
            entry = then
            for item in reversed(node.items):
                entry = self.build(item, entry)
            return entry
        if isinstance(node, _Alt):
            split = self.state("split")
            split.out.extend(self.build(branch, then) for branch in node.branches)
            return split
        entry = then
        if node.hi is None:
            loop = self.state("split")
            loop.out = [self.build(node.node, loop), then]
            entry = loop
        else:
            for _ in range(node.hi - node.lo):
                optional = self.state("split")
                optional.out = [self.build(node.node, entry), then]
                entry = optional
        for _ in range(node.lo):
            entry = self.build(node.node, entry)
        return entry


class LinearRegex:
    """A compiled pattern; :meth:`search` says whether it matches anywhere in a text."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > _MAX_PATTERN:
            raise RegexError(f"pattern longer than {_MAX_PATTERN} characters")
        self.pattern = pattern
        self._start = _Builder().build(_Parser(pattern).parse(), _State("match"))

    def search(self, text: str) -> bool:
        current: dict[int, _State] = {}
        for pos in range(len(text) + 1):
            self._add(current, self._start, pos, text)
            if any(s.kind == "match" for s in current.values()):
                return True
            if pos == len(text):
                return False
            char = text[pos]
            following: dict[int, _State] = {}
            for state in current.values():
                if state.kind == "char" and state.test is not None and state.test(char):
                    self._add(following, state.out[0], pos + 1, text)
            current = following
        return False

    def _add(self, states: dict[int, _State], state: _State, pos: int, text: str) -> None:
        stack = [state]
        while stack:
            item = stack.pop()
            if id(item) in states:
                continue
            states[id(item)] = item
            if item.kind == "split":
                stack.extend(reversed(item.out))
            elif item.kind == "bol":
                if pos == 0:
                    stack.append(item.out[0])
            elif item.kind == "eol" and pos == len(text):
                stack.append(item.out[0])
