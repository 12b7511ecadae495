"""How many AST nodes expr-lang's parser makes of a condition: the engine refuses more than 10,000.

expr-lang (v1.17, as Argo CD 3.x pins it) stops parsing at `conf.DefaultMaxNodes` nodes with
"compilation failed: expression exceeds maximum allowed nodes". The engine compiles every trigger when
it loads the configuration, so one condition over the limit silences every notification of the instance.
Routes are the only part of a condition that grows with the spec (each route's condition also carries
the negation of every earlier route's), so rendering counts each condition and refuses the spec first.

The count follows expr-lang's parser (parser/parser.go) for the syntax ArgoBridge writes: every literal,
identifier, operator, array and builtin call is one node; a member access is two (the property's string
and the member), plus a chain node for each access within an optional (`?.`) chain; a call of a
non-builtin adds its callee; a predicate and a `.` pointer inside it are one each. Where the parser's
rule is finer than a token walk can see, the count errs high, never low.
"""

from __future__ import annotations

import re

ENGINE_MAX_NODES = 10_000
# Builtins are one node each (parser.parseCall); other calls add an identifier node for the callee.
_BUILTINS = frozenset(
    {
        "all",
        "none",
        "any",
        "one",
        "filter",
        "map",
        "count",
        "sum",
        "find",
        "findIndex",
        "findLast",
        "findLastIndex",
        "groupBy",
        "sortBy",
        "reduce",
        "len",
        "abs",
        "ceil",
        "floor",
        "round",
        "int",
        "float",
        "string",
        "trim",
        "trimPrefix",
        "trimSuffix",
        "upper",
        "lower",
        "split",
        "splitAfter",
        "replace",
        "repeat",
        "join",
        "indexOf",
        "lastIndexOf",
        "hasPrefix",
        "hasSuffix",
        "max",
        "min",
        "mean",
        "median",
        "toJSON",
        "fromJSON",
        "toBase64",
        "fromBase64",
        "now",
        "duration",
        "date",
        "timezone",
        "first",
        "last",
        "get",
        "keys",
        "values",
        "type",
        "toPairs",
        "fromPairs",
        "concat",
        "flatten",
        "uniq",
        "sort",
        "reverse",
        "bitand",
    }
)
_KEYWORD_OPERATORS = frozenset({"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"})
_TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')"""
    r"|(?P<number>\d[\d_]*(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<op>\?\.|\?\?|==|!=|<=|>=|&&|\|\||[-+*/%<>!.,;:()\[\]{}#|^])"
    r"|(?P<space>\s+)"
)


def expr_node_count(expression: str) -> int:
    """An upper bound of the nodes expr-lang's parser creates for `expression` (exact for ArgoBridge's)."""
    tokens = [(match.lastgroup, match.group()) for match in _TOKEN.finditer(expression) if match.lastgroup != "space"]
    count = 0
    chained = False  # inside a postfix chain that went through `?.`: every further access adds a chain node
    outer: list[bool] = []
    previous: tuple[str | None, str] = (None, "")
    for index, (kind, text) in enumerate(tokens):
        after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        prev_kind, prev_text = previous
        postfix = (
            prev_kind in ("string", "number")
            or prev_text in (")", "]")
            or (prev_kind == "name" and prev_text not in _KEYWORD_OPERATORS)
        )
        if kind in ("string", "number"):
            count += 1
        elif kind == "name" and prev_text in (".", "?."):
            count += 2 + (1 if chained or prev_text == "?." else 0) + (1 if after == "(" else 0)
            chained = chained or prev_text == "?."
        elif kind == "name":
            if text in _KEYWORD_OPERATORS:
                chained = False
            if after == "(" and text not in _KEYWORD_OPERATORS:
                count += 1 if text in _BUILTINS else 2
            else:
                count += 1
        elif text == ".":
            if not postfix:
                count += 1  # a pointer (`.field` inside a predicate)
        elif text == "?.":
            pass  # counted with the property or index that follows
        elif text == "[":
            # An index after a value is a member (a chain node too when optional), else an array literal.
            count += 1 + (1 if prev_text == "?." else 0)
            chained = chained or prev_text == "?."
        elif text == "{":
            count += 1  # a predicate
        elif text in ("(", ")", "]", "}", ",", ";", ":"):
            # A group or the arguments of a call start fresh; the chain around them resumes after.
            if text == "(":
                outer.append(chained)
                chained = False
            elif text == ")":
                chained = outer.pop() if outer else False
            elif text == ",":
                chained = False
        else:
            count += 1  # a binary or unary operator
            chained = False
        previous = (kind, text)
    return count
