"""IOS-style command parsing: a keyword tree with typed arguments and unique-prefix matching.

A grammar is a list of patterns such as `show crypto ipsec sa [peer <ip>] [detail]`.
Patterns are merged into one tree; each input token is matched against the keywords of
the current node by unique prefix (so `sh cry ips sa` works), then against its argument
slots. The result is either a match (handler + captured arguments) or a parse error that
carries where IOS would put its caret.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from collector.lab.logbuf import LEVELS


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # the value (quotes removed for a quoted string)
    start: int  # column of the token's first character in the input line
    quoted: bool = False


def tokenize(line: str) -> list[Token]:
    """Split on blanks; a double-quoted string is one token (EEM `cli command "..."`)."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start = i
        if line[i] == '"':
            end = line.find('"', i + 1)
            if end < 0:
                end = n
            tokens.append(Token(line[i + 1 : end], start, True))
            i = end + 1
            continue
        while i < n and not line[i].isspace():
            i += 1
        tokens.append(Token(line[start:i], start))
    return tokens


class Ambiguous(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ArgType:
    """One argument slot: `<ip>`, `<int:1-100>`, `<word>`, `<string>`, `<line>`, `<level>`."""

    kind: str
    low: int = 0
    high: int = 0

    @classmethod
    def parse(cls, spec: str) -> ArgType:
        body = spec[1:-1]
        if body.startswith("int:"):
            low, high = body[4:].split("-")
            return cls("int", int(low), int(high))
        if body not in ("ip", "word", "string", "line", "level"):
            raise ValueError(f"unknown argument type {spec}")
        return cls(body)

    def accept(self, token: Token) -> Any:
        """The converted value, or None if the token does not fit this slot."""
        text = token.text
        if self.kind == "word":
            return None if token.quoted else text
        if self.kind == "string":
            return text
        if self.kind == "ip":
            if token.quoted or not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", text):
                return None
            try:
                return str(ipaddress.IPv4Address(text))
            except ValueError:
                return None
        if self.kind == "int":
            if not text.isdigit():
                return None
            value = int(text)
            return value if self.low <= value <= self.high else None
        if self.kind == "level":
            if text.isdigit():
                value = int(text)
                return {v: k for k, v in LEVELS.items()}.get(value)
            matches = [name for name in LEVELS if name.startswith(text.lower())]
            if len(matches) > 1 and text.lower() not in LEVELS:
                raise Ambiguous(text)
            return matches[0] if matches else None
        return None


@dataclass
class Node:
    keywords: dict[str, Node] = field(default_factory=dict)
    args: list[tuple[ArgType, Node]] = field(default_factory=list)
    action: Any = None  # whatever the grammar owner attached (handler, options)

    def child_for_arg(self, arg: ArgType) -> Node:
        for existing, node in self.args:
            if existing == arg:
                return node
        node = Node()
        self.args.append((arg, node))
        return node


def expand_optional(pattern: str) -> list[list[str]]:
    """`a [b <ip>] [c]` -> [a], [a b <ip>], [a c], [a b <ip> c]."""
    words = re.findall(r"\[[^\]]*\]|\S+", pattern)
    variants: list[list[str]] = [[]]
    for word in words:
        if word.startswith("["):
            inner = word[1:-1].split()
            variants = variants + [v + inner for v in variants]
        else:
            variants = [v + [word] for v in variants]
    return variants


class Grammar:
    def __init__(self) -> None:
        self.root = Node()

    def add(self, pattern: str, action: Any) -> None:
        for words in expand_optional(pattern):
            node = self.root
            for word in words:
                if word.startswith("<"):
                    node = node.child_for_arg(ArgType.parse(word))
                else:
                    node = node.keywords.setdefault(word.lower(), Node())
            node.action = action

    def extend(self, other: Grammar) -> None:
        """Merge another grammar's patterns into this one (keywords and args)."""
        _merge(self.root, other.root)


def _merge(into: Node, other: Node) -> None:
    for key, child in other.keywords.items():
        _merge(into.keywords.setdefault(key, Node()), child)
    for arg, child in other.args:
        _merge(into.child_for_arg(arg), child)
    if other.action is not None:
        into.action = other.action


@dataclass(frozen=True, slots=True)
class Match:
    action: Any
    args: tuple[Any, ...]
    words: tuple[str, ...]  # the full keywords matched, in order
    expanded: str = ""  # the command with every keyword spelled out (what IOS sends to TACACS+)


@dataclass(frozen=True, slots=True)
class ParseError:
    kind: str  # "invalid" | "incomplete" | "ambiguous"
    column: int  # caret column for "invalid"
    token_index: int


def parse(grammar: Grammar, line: str, tokens: list[Token] | None = None) -> Match | ParseError:
    tokens = tokenize(line) if tokens is None else tokens
    node = grammar.root
    args: list[Any] = []
    words: list[str] = []
    spelled: list[str] = []  # each token, keywords in full
    for index, token in enumerate(tokens):
        lower = token.text.lower()
        nxt: Node | None = None
        if not token.quoted:
            if lower in node.keywords:
                nxt = node.keywords[lower]
                words.append(lower)
            else:
                candidates = [k for k in node.keywords if k.startswith(lower)]
                if len(candidates) > 1:
                    return ParseError("ambiguous", token.start, index)
                if len(candidates) == 1:
                    nxt = node.keywords[candidates[0]]
                    words.append(candidates[0])
        if nxt is None:
            for arg, child in node.args:
                if arg.kind == "line":
                    args.append(line[token.start :].rstrip())
                    if child.action is None:
                        return ParseError("incomplete", len(line), index)
                    spelled.append(args[-1])
                    return Match(child.action, tuple(args), tuple(words), " ".join(spelled))
                try:
                    value = arg.accept(token)
                except Ambiguous:
                    return ParseError("ambiguous", token.start, index)
                if value is not None:
                    nxt = child
                    args.append(value)
                    break
        else:
            spelled.append(words[-1])
        if nxt is None:
            return ParseError("invalid", token.start + _matched_prefix(node, lower, token), index)
        if len(spelled) == index:
            spelled.append(f'"{token.text}"' if token.quoted else token.text)
        node = nxt
    if node.action is None:
        return ParseError("incomplete", len(line), len(tokens))
    return Match(node.action, tuple(args), tuple(words), " ".join(spelled))


def _matched_prefix(node: Node, lower: str, token: Token) -> int:
    """How many characters of the token still matched some keyword (IOS puts the caret after them)."""
    if token.quoted or node.args:
        return 0
    best = 0
    for key in node.keywords:
        n = 0
        while n < len(lower) and n < len(key) and lower[n] == key[n]:
            n += 1
        best = max(best, n)
    return best
