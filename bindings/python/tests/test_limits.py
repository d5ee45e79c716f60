"""Hostile rule input: depth limits from Python (dicts and JSON text), through every entry point."""

from __future__ import annotations

import json

import pytest

import segkit
from segkit import _segkit

LIMIT = _segkit.MAX_RULE_DEPTH


def depth(v) -> int:
    d, stack = 0, [(v, 1)]
    while stack:
        x, n = stack.pop()
        if isinstance(x, dict):
            d = max(d, n)
            stack.extend((y, n + 1) for y in x.values())
        elif isinstance(x, list):
            d = max(d, n)
            stack.extend((y, n + 1) for y in x)
    return d


def deep(dialect: str, wrapper: str, target: int):
    """`age > 30` wrapped (iteratively) until its nesting is `target`; returns (rule, negated)."""
    v = {
        "segkit": {"attribute": "age", "op": "gt", "value": 30},
        "jsonlogic": {">": [{"var": "age"}, 30]},
        "querybuilder": {"combinator": "and", "rules": [{"field": "age", "operator": ">", "value": 30}]},
    }[dialect]
    d, negated = depth(v), False
    step = 1 if wrapper == "not" and dialect != "querybuilder" else 2
    while d + step <= target:
        if dialect == "segkit":
            v = {"not": v} if wrapper == "not" else {"and": [v]}
        elif dialect == "jsonlogic":
            v = {"!": v} if wrapper == "not" else {"and": [v]}
        else:
            v = {"combinator": "and", "not": True, "rules": [v]} if wrapper == "not" else {"combinator": "or", "rules": [v]}
        d += step
        negated ^= wrapper == "not"
    assert depth(v) == d
    return v, negated


CASES = [(d, w) for d in ("segkit", "querybuilder", "jsonlogic") for w in ("not", "and")]


def test_limit_is_exported():
    assert isinstance(LIMIT, int) and 16 <= LIMIT <= 1000


@pytest.mark.parametrize("dialect,wrapper", CASES)
@pytest.mark.parametrize("as_text", [False, True])
def test_rule_at_the_limit_works_everywhere(users, dialect, wrapper, as_text):
    for target in (LIMIT, LIMIT - 1):
        rule, negated = deep(dialect, wrapper, target)
        want = [1, 2] if negated else [3, 4, 5]
        sent = json.dumps(rule) if as_text else rule
        name = f"deep_{target}"
        dry = users.dry_run(name, entity="user", rule=sent)
        assert dry.count == len(want)
        users.define_segment(name, entity="user", rule=sent)
        assert users.count(name) == len(want)
        assert users.evaluate(name).members().column("user_id") == want
        assert users.explain(name, 3).member is (not negated)


@pytest.mark.parametrize("dialect,wrapper", CASES)
@pytest.mark.parametrize("as_text", [False, True])
@pytest.mark.parametrize("extra", [1, 100_000])
def test_rule_past_the_limit_is_a_rule_error(users, dialect, wrapper, as_text, extra):
    if extra == 1:
        rule, _ = deep(dialect, wrapper, LIMIT + 2)
    else:
        rule = {"attribute": "age", "op": "gt", "value": 30}
        for _ in range(extra):
            rule = {"not": rule} if wrapper == "not" else {"and": [rule]}
    assert depth(rule) > LIMIT
    if as_text:
        if extra > 1:
            # json.dumps itself recurses; build the text directly
            open_, close = ('{"not":', "}") if wrapper == "not" else ('{"and":[', "]}")
            sent = open_ * extra + '{"attribute":"age","op":"gt","value":30}' + close * extra
        else:
            sent = json.dumps(rule)
    else:
        sent = rule
    for call in (
        lambda: users.define_segment("too_deep", entity="user", rule=sent),
        lambda: users.dry_run("too_deep", entity="user", rule=sent),
    ):
        with pytest.raises(segkit.RuleError, match="MAX_RULE_DEPTH"):
            call()
    assert "too_deep" not in [s.name for s in users.segments()]


def test_a_panic_in_a_task_is_an_internal_error_not_an_abort():
    with pytest.raises(segkit.InternalError, match="Rust panic.*boom in a blocking task") as info:
        _segkit._panic_in_task("boom in a blocking task")
    assert isinstance(info.value, segkit.SegkitError)
    assert info.value.kind == "internal"
    # the runtime survives: the next call works
    with pytest.raises(segkit.InternalError):
        _segkit._panic_in_task("again")
