"""A small SQL-like expression language, parsed without `eval`.

Used for derived features (`user_spend_7d / (user_spend_30d + 1)`), row filters
(`status = 'approved'`) and label expressions (`fraud_30d > 0`). This module only parses into an AST and
answers which names an expression uses; engine/expr.py compiles the AST to a Polars expression.

Grammar (case-insensitive keywords):
    expr    := or
    or      := and (OR and)*
    and     := not (AND not)*
    not     := NOT not | cmp
    cmp     := add [ (= | == | != | <> | < | <= | > | >=) add
                   | IS [NOT] NULL | [NOT] IN ( literal, ... ) | [NOT] BETWEEN add AND add ]
    add     := mul ((+ | -) mul)*
    mul     := unary ((* | / | %) unary)*
    unary   := - unary | + unary | primary
    primary := number | 'string' | "identifier" | TRUE | FALSE | NULL | name | name ( args )
             | ( expr ) | CASE (WHEN expr THEN expr)+ [ELSE expr] END
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FUNCTIONS: dict[str, tuple[int, int | None]] = {  # name -> (min args, max args)
    "coalesce": (1, None),
    "abs": (1, 1),
    "sqrt": (1, 1),
    "ln": (1, 1),
    "log": (1, 1),
    "log10": (1, 1),
    "exp": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "round": (1, 2),
    "least": (1, None),
    "greatest": (1, None),
    "lower": (1, 1),
    "upper": (1, 1),
    "length": (1, 1),
    "nullif": (2, 2),
    "hour": (1, 1),
    "day_of_week": (1, 1),
}


class ExprError(ValueError):
    def __init__(self, message: str, pos: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos  # 0-based offset in the expression text
        self.hint = hint


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True)
class Column(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str  # '-' | 'not'
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / % = != < <= > >= and or
    left: Node
    right: Node


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    values: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Case(Node):
    whens: tuple[tuple[Node, Node], ...]
    otherwise: Node | None


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*")
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<>|!=|==|[-+*/%()<>=,])
""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "is", "null", "in", "between", "true", "false", "case", "when", "then", "else", "end"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num str id kw op eof
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            raise ExprError(f"unexpected character {text[i]!r} in expression", i)
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "id" and tok.lower() in _KEYWORDS:
            out.append(_Tok("kw", tok.lower(), i))
        elif kind == "qid":
            out.append(_Tok("id", tok[1:-1].replace('""', '"'), i))
        elif kind != "ws":
            out.append(_Tok(kind, tok, i))
        i = m.end()
    out.append(_Tok("eof", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> _Tok | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def expect(self, kind: str, text: str) -> _Tok:
        t = self.accept(kind, text)
        if t is None:
            got = "end of expression" if self.tok.kind == "eof" else repr(self.tok.text)
            raise ExprError(f"expected {text!r} but found {got}", self.tok.pos)
        return t

    def parse(self) -> Node:
        if self.tok.kind == "eof":
            raise ExprError("empty expression", 0)
        node = self.or_()
        if self.tok.kind != "eof":
            hint = "use '=' for equality and AND/OR to combine conditions" if self.tok.text == "&&" else None
            raise ExprError(f"unexpected {self.tok.text!r}", self.tok.pos, hint)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while (t := self.accept("kw", "or")) is not None:
            node = Binary(t.pos, "or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while (t := self.accept("kw", "and")) is not None:
            node = Binary(t.pos, "and", node, self.not_())
        return node

    def not_(self) -> Node:
        if (t := self.accept("kw", "not")) is not None:
            return Unary(t.pos, "not", self.not_())
        return self.cmp()

    def cmp(self) -> Node:
        left = self.add()
        t = self.tok
        if t.kind == "op" and t.text in ("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            self.take()
            op = {"==": "=", "<>": "!="}.get(t.text, t.text)
            return Binary(t.pos, op, left, self.add())
        if self.accept("kw", "is"):
            negated = self.accept("kw", "not") is not None
            self.expect("kw", "null")
            return IsNull(t.pos, left, negated)
        negated = False
        if t.kind == "kw" and t.text == "not" and self.toks[self.i + 1].text in ("in", "between"):
            self.take()
            negated = True
        if self.accept("kw", "in"):
            self.expect("op", "(")
            values = [self.literal_value()]
            while self.accept("op", ","):
                values.append(self.literal_value())
            self.expect("op", ")")
            return InList(t.pos, left, tuple(values), negated)
        if self.accept("kw", "between"):
            lo = self.add()
            self.expect("kw", "and")
            hi = self.add()
            node: Node = Binary(t.pos, "and", Binary(t.pos, ">=", left, lo), Binary(t.pos, "<=", left, hi))
            return Unary(t.pos, "not", node) if negated else node
        return left

    def literal_value(self) -> Any:
        node = self.unary()
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, Literal):
            return -node.operand.value
        raise ExprError("IN (...) takes literal values only", node.pos)

    def add(self) -> Node:
        node = self.mul()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            t = self.take()
            node = Binary(t.pos, t.text, node, self.mul())
        return node

    def mul(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "%"):
            t = self.take()
            node = Binary(t.pos, t.text, node, self.unary())
        return node

    def unary(self) -> Node:
        t = self.tok
        if self.accept("op", "-"):
            operand = self.unary()
            if isinstance(operand, Literal) and isinstance(operand.value, int | float):
                return Literal(t.pos, -operand.value)
            return Unary(t.pos, "-", operand)
        if self.accept("op", "+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "num":
            is_float = any(c in t.text for c in ".eE")
            return Literal(t.pos, float(t.text) if is_float else int(t.text))
        if t.kind == "str":
            return Literal(t.pos, t.text[1:-1].replace("''", "'"))
        if t.kind == "kw":
            if t.text in ("true", "false"):
                return Literal(t.pos, t.text == "true")
            if t.text == "null":
                return Literal(t.pos, None)
            if t.text == "case":
                return self.case(t)
            raise ExprError(f"unexpected keyword {t.text.upper()}", t.pos)
        if t.kind == "id":
            if self.accept("op", "("):
                name = t.text.lower()
                if name not in FUNCTIONS:
                    from fpipe.spec.suggest import did_you_mean

                    raise ExprError(
                        f"unknown function '{t.text}'",
                        t.pos,
                        did_you_mean(name, FUNCTIONS) or "functions: " + ", ".join(sorted(FUNCTIONS)),
                    )
                args: list[Node] = []
                if not self.accept("op", ")"):
                    args.append(self.or_())
                    while self.accept("op", ","):
                        args.append(self.or_())
                    self.expect("op", ")")
                lo, hi = FUNCTIONS[name]
                if len(args) < lo or (hi is not None and len(args) > hi):
                    want = str(lo) if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}"
                    raise ExprError(f"function {name}() takes {want} argument(s), got {len(args)}", t.pos)
                return Call(t.pos, name, tuple(args))
            return Column(t.pos, t.text)
        if t.kind == "op" and t.text == "(":
            node = self.or_()
            self.expect("op", ")")
            return node
        got = "end of expression" if t.kind == "eof" else repr(t.text)
        raise ExprError(f"expected a value but found {got}", t.pos)

    def case(self, start: _Tok) -> Node:
        whens: list[tuple[Node, Node]] = []
        while self.accept("kw", "when"):
            cond = self.or_()
            self.expect("kw", "then")
            whens.append((cond, self.or_()))
        if not whens:
            raise ExprError("CASE needs at least one WHEN ... THEN ...", self.tok.pos)
        otherwise = self.or_() if self.accept("kw", "else") else None
        self.expect("kw", "end")
        return Case(start.pos, tuple(whens), otherwise)


def parse_expr(text: str) -> Node:
    """Parse an expression; raises ExprError with a 0-based position on bad syntax."""
    return _Parser(text).parse()


def referenced_names(node: Node) -> list[tuple[str, int]]:
    """Every column/feature name the expression reads, with its position, in order of appearance."""
    out: list[tuple[str, int]] = []

    def walk(n: Node) -> None:
        if isinstance(n, Column):
            out.append((n.name, n.pos))
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, IsNull | InList):
            walk(n.operand)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)
        elif isinstance(n, Case):
            for c, v in n.whens:
                walk(c)
                walk(v)
            if n.otherwise is not None:
                walk(n.otherwise)

    walk(node)
    return out
