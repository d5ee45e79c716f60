"""Static-list segments from Python: keys as lists, pyarrow, polars and pandas, referenced by rules."""
from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import segkit


def member_ids(run: segkit.SegmentRun) -> list[int]:
    return run.members().to_pyarrow().column(0).to_pylist()


def test_static_segment_from_a_list_is_evaluated_referenced_and_changed(users):
    r = users.define_static_segment("picked", entity="user", keys=[3, 1, 3, 99])
    assert isinstance(r, segkit.StaticListReport)
    assert (r.version, r.operation, r.keys_read, r.key_count, r.matched, r.unmatched) == (1, "replace", 4, 3, 2, 1)
    run = users.evaluate("picked")
    assert member_ids(run) == [1, 3]
    assert run.entered.to_pyarrow().column(0).to_pylist() == [1, 3]
    assert users.count("picked") == 2
    assert users.static_keys("picked").to_pyarrow().column(0).to_pylist() == [1, 3, 99]
    # Referenced by a rule like any segment.
    users.define_segment(
        "picked_cn",
        entity="user",
        rule={"and": [{"in_segment": "picked"}, {"attribute": "country", "op": "eq", "value": "CN"}]},
    )
    assert member_ids(users.evaluate("picked_cn")) == [1, 3]
    users.define_segment("not_picked", entity="user", rule={"not_in_segment": "picked"})
    assert member_ids(users.evaluate("not_picked")) == [2, 4, 5]
    assert users.explain("picked", 3).member
    assert "static list" in str(users.explain("picked", 3))
    # Add and remove, then entered / exited.
    assert users.add_static_keys("picked", [2]).key_count == 4
    assert users.remove_static_keys("picked", pa.array([1], pa.int64())).version == 3
    run = users.evaluate("picked")
    assert member_ids(run) == [2, 3]
    assert run.entered.to_pyarrow().column(0).to_pylist() == [2]
    assert run.exited.to_pyarrow().column(0).to_pylist() == [1]
    assert [v["operation"] for v in users.static_list_versions("picked")] == ["replace", "add", "remove"]


def test_keys_from_pyarrow_polars_pandas_and_parquet(users, tmp_path):
    forms = {
        "pa_array": pa.array([2, 4], pa.int64()),
        "pa_chunked": pa.chunked_array([[2], [4]], pa.int64()),
        "pa_table": pa.table({"user_id": [4, 2], "note": ["x", "y"]}),
        "pl_series": pl.Series("ids", [2, 4]),
        "pl_frame": pl.DataFrame({"user_id": [2, 4]}),
        "pd_series": pd.Series([4, 2], name="ids"),
        "pd_frame": pd.DataFrame({"user_id": [2, 4]}),
        "tuple": (2, 4),
    }
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"id": pa.array([2, 4], pa.int32())}), path)
    forms["parquet_path"] = path
    for name, keys in forms.items():
        r = users.define_static_segment(name, entity="user", keys=keys)
        assert (r.key_count, r.matched) == (2, 2), name
        assert member_ids(users.evaluate(name)) == [2, 4], name


def test_bad_keys_raise_clear_errors(users):
    with pytest.raises(segkit.InvalidArgumentError, match="row 2 is null; a static list holds keys of `user`, never null"):
        users.define_static_segment("bad", entity="user", keys=[1, None])
    with pytest.raises(segkit.InvalidArgumentError, match="the key column has type Utf8, but the key `user_id` of `user` is int64"):
        users.define_static_segment("bad", entity="user", keys=["1", "2"])
    with pytest.raises(TypeError, match=r"keys\[1\] is a float; keys must be all int or all str"):
        users.define_static_segment("bad", entity="user", keys=[1, 2.5])
    with pytest.raises(segkit.DefinitionError, match="nobody"):
        users.define_static_segment("bad", entity="nobody", keys=[1])
    with pytest.raises(segkit.NotFoundError):
        users.add_static_keys("missing", [1])
    users.define_segment("adults", entity="user", rule={"attribute": "age", "op": "ge", "value": 18})
    with pytest.raises(segkit.InvalidArgumentError, match="`adults` is a rule segment, not a static list"):
        users.add_static_keys("adults", [1])
    with pytest.raises(segkit.NotFoundError):
        users.segment("bad")
