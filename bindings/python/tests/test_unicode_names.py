"""Names in the users' own language (issue 11), end to end from Python: a Chinese entity ingested from a CSV with
a Chinese header and no mapping, segments in all three dialects, results, explain, memberships, SQL with keyword
columns, quarantine reasons, did-you-mean, NFC and case collisions."""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest

import segkit

ATTRIBUTES = {
    "客户编号": "int64",
    "姓名": {"type": "string", "pii": True},
    "城市": "string",
    "年龄": "int32",
    "select": "string",
    "order": "int64",
}

CSV = "客户编号,姓名,城市,年龄,select,order\n1,张三,上海,34,a,10\n2,李四,北京,28,b,20\n3,王五,上海,45,c,30\n4,赵六,广州,老,d,40\n"

RULES = {
    "segkit": ({"and": [{"attribute": "城市", "op": "eq", "value": "上海"}, {"attribute": "年龄", "op": "gt", "value": 30}]}, [1, 3]),
    "querybuilder": (
        {"combinator": "and", "rules": [{"field": "城市", "operator": "=", "value": "上海"}, {"field": "order", "operator": ">", "value": "10"}]},
        [3],
    ),
    "jsonlogic": ({"or": [{"in": [{"var": "城市"}, ["北京", "广州"]]}, {"==": [{"var": "select"}, "a"]}]}, [1, 2]),
}


def chinese(ws, tmp_path, bom: bool) -> segkit.IngestReport:
    ws.define_entity("客户", key="客户编号", attributes=ATTRIBUTES)
    path = tmp_path / "客户.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + CSV.encode())
    return ws.ingest("客户", str(path))  # no mapping: the header names are the attribute names


@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "utf8-bom"])
def test_chinese_names_end_to_end(ws, tmp_path, bom):
    report = chinese(ws, tmp_path, bom)
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (4, 3, 1)
    assert list(report.ignored_fields) == []
    e = ws.entity("客户")
    assert e.attribute_names == list(ATTRIBUTES)
    assert not e.attribute("客户编号").nullable

    # The quarantined row's reason names the Chinese attribute.
    q = pa.table(ws.quarantine("客户"))
    assert q.column("row").to_pylist() == [4]
    assert "年龄" in q.column("reason")[0].as_py()

    for dialect, (rule, want) in RULES.items():
        name = f"上海_{dialect}"
        seg = ws.define_segment(name, entity="客户", rule=rule, dialect=dialect)
        assert seg.name == name and seg.entity == "客户"
        assert ws.count(name) == len(want)
        run = ws.evaluate(name)
        members = pa.table(run.members())
        assert members.column_names == ["客户编号"]
        assert members.column("客户编号").to_pylist() == want
        stored = pa.table(ws.members(name))
        assert stored.column("客户编号").to_pylist() == want
        assert [s.name for s in ws.segments()].count(name) == 1

    preview = pa.table(ws.preview("上海_segkit"))
    assert preview.column_names == list(ATTRIBUTES)
    assert preview.column("城市").to_pylist() == ["上海", "上海"]
    assert all(v != "张三" and v != "王五" for v in preview.column("姓名").to_pylist())  # pii masked

    ex = ws.explain("上海_segkit", 1)
    assert ex.member is True
    assert "城市" in ex.text and "年龄" in ex.text and "上海" in ex.text
    ex = ws.explain("上海_segkit", 2)
    assert ex.member is False and "城市" in ex.text

    # Memberships across runs: a change of the data moves 客户 2 in.
    changes = pa.table(ws.changes("上海_jsonlogic"))
    assert "客户编号" in changes.column_names
    assert ws.runs("上海_jsonlogic")[-1]["run"] == 1

    # SQL: Chinese, keyword columns quoted.
    t = pa.table(ws.sql('SELECT "客户编号", "城市", "order" FROM "客户" WHERE "order" > 10 ORDER BY "order"'))
    assert t.column_names == ["客户编号", "城市", "order"]
    assert t.column("客户编号").to_pylist() == [2, 3]
    assert t.column("order").to_pylist() == [20, 30]
    t = pa.table(ws.sql('SELECT "select" FROM "客户" ORDER BY "客户编号"'))
    assert t.column("select").to_pylist() == ["a", "b", "c"]


def test_did_you_mean_on_a_misspelt_chinese_name(ws, tmp_path):
    chinese(ws, tmp_path, bom=False)
    with pytest.raises(segkit.RuleError) as info:
        ws.define_segment("错", entity="客户", rule={"attribute": "城巿", "op": "eq", "value": "上海"})
    assert info.value.causes[0] == "rule error at <root>.attribute: entity `客户` has no attribute `城巿` (did you mean `城市`?)"
    with pytest.raises(segkit.NotFoundError) as info:
        ws.entity("客尸")
    assert "did you mean `客户`" in str(info.value)


def test_nfd_and_nfc_are_one_name(ws):
    nfd = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731
    assert nfd("café") != "café"
    ws.define_entity(nfd("café客户"), key=nfd("编号é"), attributes={nfd("编号é"): "int64", nfd("prénom"): "string"})
    e = ws.entity("café客户")
    assert e.name == "café客户"
    assert e.attribute_names == ["编号é", "prénom"]
    ws.ingest("café客户", pa.table({"编号é": [1, 2], "prénom": ["Zoé", "Noël"]}))
    ws.define_segment("noël", entity=nfd("café客户"), rule={"attribute": "prénom", "op": "eq", "value": "Noël"})
    assert ws.count(nfd("noël")) == 1
    # Redefining with the other form is the same entity (no new attribute).
    assert ws.define_entity("café客户", key="编号é", attributes={"编号é": "int64", "prénom": "string"}).attribute_names == [
        "编号é",
        "prénom",
    ]
    assert len(ws.entities()) == 1


def test_names_differing_only_by_case_are_refused(ws):
    with pytest.raises(segkit.DefinitionError, match="differ only by case"):
        ws.define_entity("ä客户", key="id", attributes={"id": "int64", "Ärger": "string", "ärger": "string"})
    ws.define_entity("Kunde", key="id", attributes={"id": "int64"})
    with pytest.raises(segkit.DefinitionError, match="differ only by case"):
        ws.define_entity("kunde", key="id", attributes={"id": "int64"})
