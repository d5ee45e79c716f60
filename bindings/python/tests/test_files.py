"""File sources through config dicts (issue 8 points 7-8, issue 11): null markers, encodings, a BOM, JSON arrays,
spreadsheets, globs, gzip, and type inference — all via ``ws.ingest(entity, {...})`` / ``segkit.infer_entity``."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyarrow as pa
import pytest

import segkit

FILES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "files"
HEADER = "客户编号,姓名,城市,年龄\n"
ROWS = "1,张三,北京,34\n2,李四,上海,NA\n3,王五,北京,45\n4,赵六,广州,不详\n"


def define_customers(ws: segkit.Workspace) -> None:
    ws.define_entity(
        "客户",
        key="客户编号",
        attributes={"客户编号": "int64", "姓名": "string", "城市": "string", "年龄": "int32"},
    )


def names(ws: segkit.Workspace, sql: str) -> list:
    return pa.table(ws.sql(sql)).column(0).to_pylist()


@pytest.mark.parametrize(
    "name,data,extra",
    [
        ("plain.csv", (HEADER + ROWS).encode(), {}),
        ("bom.csv", b"\xef\xbb\xbf" + (HEADER + ROWS).encode(), {}),
        ("gbk.csv", (HEADER + ROWS).encode("gbk"), {"encoding": "gbk"}),
        ("utf16.csv", (HEADER + ROWS).encode("utf-16"), {}),  # with a BOM, which says UTF-16
    ],
)
def test_chinese_header_csv_ingests_without_a_mapping(tmp_path, ws, name, data, extra):
    path = tmp_path / name
    path.write_bytes(data)
    define_customers(ws)
    report = ws.ingest("客户", {"type": "csv", "path": str(path), **extra})
    # NA is a null marker (age unknown → null); 不详 is not a number → quarantined.
    assert (report.rows_written, report.rows_quarantined) == (3, 1)
    assert "attribute `年龄`" in report.quarantine_sample[0].reason
    ws.define_segment("北京", entity="客户", rule={"attribute": "城市", "op": "eq", "value": "北京"})
    assert ws.count("北京") == 2
    assert names(ws, 'SELECT "姓名" FROM "客户" WHERE "年龄" IS NULL') == ["李四"]


def test_null_markers_are_configurable(tmp_path, ws):
    path = tmp_path / "n.csv"
    path.write_text("id,v\n1,NA\n2,-\n3,\\N\n4,x\n")
    ws.define_entity("t", key="id", attributes={"id": "int64", "v": "string"})
    ws.ingest("t", {"type": "csv", "path": str(path)})
    assert names(ws, "SELECT v FROM t ORDER BY id") == [None, "-", None, "x"]
    ws.ingest("t", {"type": "csv", "path": str(path), "null_values": ["-"]}, mode="full_refresh")
    assert names(ws, "SELECT v FROM t ORDER BY id") == ["NA", None, "\\N", "x"]


def test_malformed_records_are_quarantined_with_their_position(tmp_path, ws):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,v\n1,a\n2,b,extra\n3,\xff\n4,d\n")
    ws.define_entity("t", key="id", attributes={"id": "int64", "v": "string"})
    r = ws.ingest("t", {"type": "csv", "path": str(path)})
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    reasons = [q.reason for q in r.quarantine_sample]
    assert reasons == [
        "malformed record: bad.csv line 3, byte 9: 3 fields, expected 2",
        "malformed record: bad.csv line 4, byte 19: field 2 is not valid UTF-8",
    ]


def test_json_arrays_and_record_path(tmp_path, ws):
    ws.define_entity("t", key="id", attributes={"id": "int64", "tags": "list<string>"})
    p = tmp_path / "a.json"
    p.write_text('[{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}, 3]')
    r = ws.ingest("t", {"type": "json", "path": str(p)})
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    assert r.quarantine_sample[0].reason == "malformed record: a.json element 3, byte 55: not a JSON object"
    w = tmp_path / "w.json"
    w.write_text('{"page": 1, "data": [{"id": 5, "tags": ["z"]}]}')
    ws.ingest("t", {"type": "json", "path": str(w), "record_path": "data"})
    assert names(ws, "SELECT id FROM t ORDER BY id") == [1, 2, 5]


def test_excel_sheet_header_row_and_types(ws):
    config = {"type": "excel", "path": str(FILES / "customers.xlsx"), "sheet": "客户", "header_row": 1}
    p = segkit.infer_entity(config, "客户")
    e = p["entity"]
    assert e["key"] == "客户编号"
    types = {a["name"]: a["type"] for a in e["attributes"]}
    assert types == {
        "客户编号": "int64", "姓名": "string", "城市": "string", "年龄": "string",
        "注册日期": "date", "登录时间": "timestamp", "VIP": "bool", "余额": "float64",
    }
    types["年龄"] = "int64"  # the user's edit: one cell says "unknown"
    ws.define_entity(e["name"], key=e["key"], attributes=types)
    r = ws.ingest("客户", config)
    assert (r.rows_written, r.rows_quarantined) == (4, 1)
    assert names(ws, 'SELECT "姓名" FROM "客户" WHERE "VIP" ORDER BY "客户编号"') == ["张三", "王五", "钱七"]
    for f in ("customers.xls", "customers.ods"):
        t = segkit.infer_entity({"path": str(FILES / f)}, "c")
        assert [a["name"] for a in t["entity"]["attributes"]][:3] == ["客户编号", "姓名", "城市"]


def test_glob_with_file_column_and_gzip(tmp_path, ws):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("id,v\n1,x\n")
    (tmp_path / "in" / "b.csv.gz").write_bytes(gzip.compress(b"id,v\n2,y\n"))
    ws.define_entity("t", key="id", attributes={"id": "int64", "v": "string", "src": "string"})
    r = ws.ingest("t", {"type": "csv", "path": str(tmp_path / "in" / "*.csv*"), "file_column": "src"})
    assert r.rows_written == 2
    got = pa.table(ws.sql("SELECT id, src FROM t ORDER BY id")).to_pylist()
    assert [os.path.basename(g["src"]) for g in got] == ["a.csv", "b.csv.gz"]
    with pytest.raises(segkit.IngestError, match="no file matches"):
        ws.ingest("t", {"type": "csv", "path": str(tmp_path / "in" / "*.tsv")})


def test_inference_sanitises_names_and_proposes_a_mapping(tmp_path, ws):
    p = tmp_path / "o.csv"
    p.write_text("order no.,amount,day,tags\nA-1,1.5,2026-01-02,\"[1,2]\"\nA-2,2,2026-01-03,[]\n")
    prop = segkit.infer_entity({"type": "csv", "path": str(p)}, "orders")
    assert [(f["attribute"], f["type"]) for f in prop["fields"]] == [
        ("order_no", "string"), ("amount", "float64"), ("day", "date"), ("tags", "list<int64>"),
    ]
    assert prop["mapping"] == {"order_no": "order no."}
    assert prop["entity"]["key"] == "order_no" and prop["sampled_rows"] == 2
    e = prop["entity"]
    ws.define_entity(e["name"], key=e["key"], attributes={a["name"]: a["type"] for a in e["attributes"]})
    assert ws.ingest("orders", {"type": "csv", "path": str(p)}, mapping=prop["mapping"]).rows_written == 2
    with pytest.raises(segkit.InvalidArgumentError, match="no field `nope`"):
        segkit.infer_entity({"type": "csv", "path": str(p)}, "orders", key="nope")


def test_config_errors_name_the_field(tmp_path, ws):
    ws.define_entity("t", key="id", attributes={"id": "int64"})
    with pytest.raises(segkit.DefinitionError, match=r"source\.delimeter.*unknown key"):
        ws.ingest("t", {"type": "csv", "path": "x.csv", "delimeter": ";"})
    with pytest.raises(segkit.DefinitionError, match="unknown encoding `klingon`"):
        ws.ingest("t", {"type": "csv", "path": "x.csv", "encoding": "klingon"})
