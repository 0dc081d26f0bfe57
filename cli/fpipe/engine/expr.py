"""Compile the expression AST of spec/expr.py into a Polars expression.

Semantics: SQL-like three-valued logic (nulls propagate; AND/OR are Kleene); `/` is true division and
dividing by zero gives null; `%` by zero gives null; string literals compare as strings.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from fpipe.spec.expr import Binary, Call, Case, Column, InList, IsNull, Literal, Node, Unary, parse_expr


def compile_expr(node: Node | str, column: Callable[[str], pl.Expr] = pl.col) -> pl.Expr:
    if isinstance(node, str):
        node = parse_expr(node)
    return _compile(node, column)


def _lit(value: object) -> pl.Expr:
    return pl.lit(value)


def _compile(n: Node, col: Callable[[str], pl.Expr]) -> pl.Expr:
    if isinstance(n, Literal):
        return _lit(n.value)
    if isinstance(n, Column):
        return col(n.name)
    if isinstance(n, Unary):
        inner = _compile(n.operand, col)
        return inner.not_() if n.op == "not" else -inner
    if isinstance(n, IsNull):
        inner = _compile(n.operand, col)
        return inner.is_not_null() if n.negated else inner.is_null()
    if isinstance(n, InList):
        inner = _compile(n.operand, col)
        values = [v for v in n.values if v is not None]
        res = inner.is_in(pl.lit(pl.Series(values)).implode()) if values else pl.lit(False)
        res = pl.when(inner.is_null()).then(None).otherwise(res)
        return res.not_() if n.negated else res
    if isinstance(n, Binary):
        a = _compile(n.left, col)
        b = _compile(n.right, col)
        op = n.op
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return pl.when(b == 0).then(None).otherwise(a.cast(pl.Float64) / b.cast(pl.Float64))
        if op == "%":
            return pl.when(b == 0).then(None).otherwise(a % b)
        if op == "=":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "and":
            return a & b
        if op == "or":
            return a | b
        raise ValueError(f"unknown operator {op}")
    if isinstance(n, Call):
        args = [_compile(a, col) for a in n.args]
        name = n.name
        if name == "coalesce":
            return pl.coalesce(args)
        if name == "abs":
            return args[0].abs()
        if name == "sqrt":
            return pl.when(args[0] < 0).then(None).otherwise(args[0].cast(pl.Float64).sqrt())
        if name in ("ln", "log"):
            return pl.when(args[0] <= 0).then(None).otherwise(args[0].cast(pl.Float64).log())
        if name == "log10":
            return pl.when(args[0] <= 0).then(None).otherwise(args[0].cast(pl.Float64).log10())
        if name == "exp":
            return args[0].cast(pl.Float64).exp()
        if name == "floor":
            return args[0].cast(pl.Float64).floor()
        if name == "ceil":
            return args[0].cast(pl.Float64).ceil()
        if name == "round":
            digits = n.args[1].value if len(n.args) > 1 and isinstance(n.args[1], Literal) else 0
            return args[0].cast(pl.Float64).round(int(digits))
        if name == "least":
            return pl.when(pl.any_horizontal([a.is_null() for a in args])).then(None).otherwise(pl.min_horizontal(args))
        if name == "greatest":
            return pl.when(pl.any_horizontal([a.is_null() for a in args])).then(None).otherwise(pl.max_horizontal(args))
        if name == "lower":
            return args[0].str.to_lowercase()
        if name == "upper":
            return args[0].str.to_uppercase()
        if name == "length":
            return args[0].str.len_chars().cast(pl.Int64)
        if name == "nullif":
            return pl.when(args[0] == args[1]).then(None).otherwise(args[0])
        if name == "hour":
            return args[0].dt.hour().cast(pl.Int64)
        if name == "day_of_week":
            return args[0].dt.weekday().cast(pl.Int64)
        raise ValueError(f"unknown function {name}")
    if isinstance(n, Case):
        whens = n.whens
        chain = pl.when(_compile(whens[0][0], col)).then(_compile(whens[0][1], col))
        for cond, value in whens[1:]:
            chain = chain.when(_compile(cond, col)).then(_compile(value, col))  # type: ignore[assignment]
        return chain.otherwise(_compile(n.otherwise, col) if n.otherwise is not None else pl.lit(None))
    raise ValueError(f"cannot compile {n!r}")
