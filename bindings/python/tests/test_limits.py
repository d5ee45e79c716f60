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


def test_a_panic_in_a_synchronous_call_is_an_internal_error_not_a_panic_exception():
    # pyo3 alone would raise pyo3_runtime.PanicException, a BaseException that `except Exception` misses.
    with pytest.raises(segkit.InternalError, match="Rust panic.*boom in a sync call") as info:
        _segkit._panic_sync("boom in a sync call")
    assert isinstance(info.value, Exception)
    assert info.value.kind == "internal"
    assert info.value.causes == [str(info.value)]
    with pytest.raises(segkit.InternalError):
        _segkit._panic_sync("again")


# ---- the other rule limits (core: MAX_RULE_NODES, MAX_RULE_LIST_VALUES, MAX_RULE_STRING_BYTES, regex sizes)


def or_of(nodes: int) -> dict:
    """A rule of exactly `nodes` objects: one `or` group and `nodes - 1` conditions (age = 0, 1, 2, …)."""
    return {"or": [{"attribute": "age", "op": "eq", "value": i} for i in range(nodes - 1)]}


@pytest.mark.parametrize("nodes", [_segkit.MAX_RULE_NODES - 1, _segkit.MAX_RULE_NODES])
def test_rule_nodes_at_and_below_the_limit_work(users, nodes):
    users.define_segment("wide", entity="user", rule=or_of(nodes))
    assert users.count("wide") == 5  # ages 17, 25, 40, 33, 61 are all below nodes - 1


@pytest.mark.parametrize("nodes", [_segkit.MAX_RULE_NODES + 1, 10 * _segkit.MAX_RULE_NODES])
def test_rule_nodes_past_the_limit_are_a_rule_error(users, nodes):
    with pytest.raises(segkit.RuleError, match=f"more than {_segkit.MAX_RULE_NODES} conditions.*MAX_RULE_NODES"):
        users.define_segment("wide", entity="user", rule=or_of(nodes))
    with pytest.raises(segkit.RuleError, match="MAX_RULE_NODES"):
        users.dry_run("wide", entity="user", rule=json.dumps(or_of(nodes)))


def in_list(values: int) -> dict:
    """An `in` rule whose one list has `values` elements (0, 1, 2, …)."""
    return {"attribute": "age", "op": "in", "value": list(range(values))}


@pytest.mark.parametrize("values", [_segkit.MAX_RULE_LIST_VALUES - 1, _segkit.MAX_RULE_LIST_VALUES])
def test_list_values_at_and_below_the_limit_work(users, values):
    users.define_segment("long", entity="user", rule=in_list(values))
    assert users.count("long") == 5


@pytest.mark.parametrize("values", [_segkit.MAX_RULE_LIST_VALUES + 1, _segkit.MAX_RULE_LIST_VALUES + 2_000_000])
def test_list_values_past_the_limit_are_a_rule_error(users, values):
    with pytest.raises(segkit.RuleError, match=f"more than {_segkit.MAX_RULE_LIST_VALUES} list values.*MAX_RULE_LIST_VALUES"):
        users.define_segment("long", entity="user", rule=in_list(values))


def eq_string(nbytes: int) -> dict:
    return {"attribute": "country", "op": "eq", "value": "C" * nbytes}


@pytest.mark.parametrize("nbytes", [_segkit.MAX_RULE_STRING_BYTES - 1, _segkit.MAX_RULE_STRING_BYTES])
def test_strings_at_and_below_the_limit_work(users, nbytes):
    users.define_segment("str", entity="user", rule=eq_string(nbytes))
    assert users.count("str") == 0


@pytest.mark.parametrize("nbytes", [_segkit.MAX_RULE_STRING_BYTES + 1, 100 * _segkit.MAX_RULE_STRING_BYTES])
@pytest.mark.parametrize("as_text", [False, True])
def test_strings_past_the_limit_are_a_rule_error(users, nbytes, as_text):
    rule = eq_string(nbytes)
    with pytest.raises(segkit.RuleError, match=f"bytes, longer than {_segkit.MAX_RULE_STRING_BYTES}.*MAX_RULE_STRING_BYTES"):
        users.define_segment("str", entity="user", rule=json.dumps(rule) if as_text else rule)


def matches(pattern: str) -> dict:
    return {"attribute": "country", "op": "matches", "value": pattern}


@pytest.mark.parametrize("nbytes", [_segkit.MAX_REGEX_PATTERN_BYTES - 1, _segkit.MAX_REGEX_PATTERN_BYTES])
def test_regex_patterns_at_and_below_the_limit_work(users, nbytes):
    # Verbose mode ignores the padding spaces: exactly `nbytes` long, and it matches CN, CN and DE.
    pattern = "(?x)^(CN|DE)$".ljust(nbytes)
    assert len(pattern.encode()) == nbytes
    users.define_segment("re", entity="user", rule=matches(pattern))
    assert users.count("re") == 3


@pytest.mark.parametrize("nbytes", [_segkit.MAX_REGEX_PATTERN_BYTES + 1, 60 * _segkit.MAX_REGEX_PATTERN_BYTES])
def test_regex_patterns_past_the_limit_are_a_rule_error(users, nbytes):
    with pytest.raises(segkit.RuleError, match=f"longer than {_segkit.MAX_REGEX_PATTERN_BYTES}.*MAX_REGEX_PATTERN_BYTES"):
        users.define_segment("re", entity="user", rule=matches("a" * nbytes))


@pytest.mark.parametrize("repeats", [1, 3, 20])
def test_regex_programs_past_the_limit_are_a_rule_error(users, repeats):
    # Short patterns that compile huge: counted repetitions of a Unicode class.
    pattern = r"\w{1000}" * repeats if repeats > 1 else r"\w{100000}"
    assert len(pattern) <= _segkit.MAX_REGEX_PATTERN_BYTES
    with pytest.raises(segkit.RuleError, match=f"more than {_segkit.MAX_REGEX_PROGRAM_BYTES} bytes.*MAX_REGEX_PROGRAM_BYTES"):
        users.define_segment("re", entity="user", rule=matches(pattern))


def test_a_regex_program_just_within_the_limit_works(users):
    users.define_segment("re", entity="user", rule=matches(r"^\w{2}$"))
    assert users.count("re") == 4


def test_explain_of_a_wide_rule_works_below_its_limit_and_names_it_beyond(users):
    # age = 0 … age = 1999: user 1 (age 17) matches one of them.
    users.define_segment("wide", entity="user", rule=or_of(2001))
    ex = users.explain("wide", 1)
    assert ex.member is True
    assert sum(1 for c in ex.root["children"] if c["value"] is True) == 1
    limit = _segkit.MAX_EXPLAIN_CONDITIONS
    users.define_segment("too_wide", entity="user", rule=or_of(limit + 2))
    assert users.count("too_wide") == 5
    with pytest.raises(segkit.InvalidArgumentError, match=f"MAX_EXPLAIN_CONDITIONS = {limit}"):
        users.explain("too_wide", 1)
