//! Files as users have them: CSV dialects, null markers, encodings and BOMs, JSON arrays, gzip (good and
//! broken), globs with a file column, spreadsheets, type inference, and the issue-11 Chinese-header CSV end to
//! end through a workspace.

use std::io::Write;

use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Int64Type};
use segkit::testing::{collect_scan, source_conformance};
use segkit::{ErrorKind, IngestOptions, ScanRequest, SegmentDefinition, Workspace};
use segkit_connectors::{from_config, infer_entity, InferOptions, ERROR_COLUMN, FILE_COLUMN, RAW_COLUMN};
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/files");

fn col(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()));
            let a = segkit::deps::arrow::compute::cast(a, &ArrowType::Utf8).unwrap();
            a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

async fn scan(config: serde_json::Value) -> Vec<RecordBatch> {
    let source = from_config(&config).unwrap();
    source_conformance(source.as_ref()).await.unwrap();
    collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn csv_null_markers_defaults_and_configured() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nulls.csv");
    std::fs::write(&p, "id,v\n1,NA\n2,\\N\n3,NULL\n4,\n5,-\n6,N/A\n7,x\n8,na\n").unwrap();
    let b = scan(json!({"type": "csv", "path": p})).await;
    assert_eq!(col(&b, "v"), [None, None, None, None, s("-"), None, s("x"), s("na")], "defaults");
    let b = scan(json!({"type": "csv", "path": p, "null_values": ["-", ""]})).await;
    assert_eq!(col(&b, "v"), [s("NA"), s("\\N"), s("NULL"), None, None, s("N/A"), s("x"), s("na")]);
    let b = scan(json!({"type": "csv", "path": p, "null_values": []})).await;
    assert_eq!(col(&b, "v")[3], s(""), "no markers: an empty field is empty text");
}

#[tokio::test]
async fn csv_dialects_quote_escape_comment_crlf_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.txt");
    std::fs::write(&p, "# exported 2026-01-01\r\n1|'a|b'|x\r\n# a comment\r\n2|'it\\'s'|y\r\n\r\n3|plain|z").unwrap();
    let config = json!({"type": "csv", "path": p, "delimiter": "|", "quote": "'", "escape": "\\", "comment": "#",
                        "header": false, "columns": ["id", "name", "tag"]});
    let b = scan(config).await;
    assert_eq!(col(&b, "id"), [s("1"), s("2"), s("3")]);
    assert_eq!(col(&b, "name"), [s("a|b"), s("it's"), s("plain")]);
    assert_eq!(col(&b, "tag"), [s("x"), s("y"), s("z")], "CRLF and a last line without a terminator");
    // A header, replaced by the given names.
    let p2 = dir.path().join("h.csv");
    std::fs::write(&p2, "A,B\n1,2\n").unwrap();
    let b = scan(json!({"type": "csv", "path": p2, "columns": ["x", "y"]})).await;
    assert_eq!((col(&b, "x"), col(&b, "y")), (vec![s("1")], vec![s("2")]));
    // Positions count comment and blank lines: the bad record is on line 4.
    let p3 = dir.path().join("bad.csv");
    std::fs::write(&p3, "id,v\n# note\n\n1,2,3\n2,ok\n").unwrap();
    let b = scan(json!({"type": "csv", "path": p3, "comment": "#"})).await;
    assert_eq!(col(&b, ERROR_COLUMN)[0], s("bad.csv line 4, byte 13: 3 fields, expected 2"));
    assert_eq!(col(&b, RAW_COLUMN)[0], s("1,2,3"));
}

#[tokio::test]
async fn encodings_boms_and_undecodable_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let text = "id,城市\n1,北京\n2,臺北\n";
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("utf8.csv", text.as_bytes().to_vec(), None),
        ("bom.csv", [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(), None),
        ("gb18030.csv", encoding_rs::GB18030.encode(text).0.into_owned(), Some("gb18030")),
        ("big5.csv", encoding_rs::BIG5.encode(text).0.into_owned(), Some("big5")),
        (
            "utf16le.csv",
            [vec![0xFF, 0xFE], text.encode_utf16().flat_map(u16::to_le_bytes).collect()].concat(),
            None, // the BOM alone says UTF-16LE
        ),
        ("utf16be.csv", text.encode_utf16().flat_map(u16::to_be_bytes).collect(), Some("utf-16be")),
    ];
    for (name, bytes, enc) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let mut config = json!({"type": "csv", "path": p});
        if let Some(e) = enc {
            config["encoding"] = json!(e);
        }
        let b = scan(config).await;
        assert_eq!(b[0].schema().field(1).name(), "城市", "{name}");
        assert_eq!(col(&b, "城市"), [s("北京"), s("臺北")], "{name}");
        assert!(col(&b, RAW_COLUMN).iter().all(Option::is_none), "{name}");
    }
    // Bytes that are not GBK (0x81 0x20 is no GBK character) and not UTF-8: that record only is malformed.
    let p = dir.path().join("broken-gbk.csv");
    let mut bytes = encoding_rs::GBK.encode("id,城市\n1,北京\n").0.into_owned();
    bytes.extend_from_slice(b"2,\x81 x\n3,");
    bytes.extend_from_slice(&encoding_rs::GBK.encode("上海\n").0);
    std::fs::write(&p, bytes).unwrap();
    let b = scan(json!({"type": "csv", "path": p, "encoding": "gbk"})).await;
    assert_eq!(col(&b, "城市"), [s("北京"), None, s("上海")]);
    assert_eq!(col(&b, ERROR_COLUMN)[1], s("broken-gbk.csv line 3, byte 19: field 2 has bytes that are not valid GBK"));
    assert_eq!(col(&b, RAW_COLUMN)[1], s("2,\u{FFFD} x"));
    let p = dir.path().join("broken-utf8.csv");
    std::fs::write(&p, b"id,v\n1,\xC3\x28\n2,ok\n").unwrap();
    let b = scan(json!({"type": "csv", "path": p})).await;
    assert_eq!(col(&b, "v"), [None, s("ok")]);
    assert_eq!(col(&b, ERROR_COLUMN)[0], s("broken-utf8.csv line 2, byte 5: field 2 is not valid UTF-8"));
}

#[tokio::test]
async fn json_arrays_streamed_with_record_path_and_broken_elements() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.json");
    std::fs::write(
        &p,
        r#" [ {"id": 1, "tags": ["x", "y"], "s": "a,]}\"b"}, {"id": 2, "n": {"k": [1]}} ,7, {"id": 3} ] "#,
    )
    .unwrap();
    let b = scan(json!({"type": "json", "path": p})).await;
    assert_eq!(col(&b, "id"), [s("1"), s("2"), None, s("3")]);
    assert_eq!(col(&b, "tags")[0], s(r#"["x","y"]"#));
    assert_eq!(col(&b, "s")[0], s("a,]}\"b"), "brackets and quotes inside strings do not split");
    assert_eq!(col(&b, "n")[1], s(r#"{"k":[1]}"#));
    assert_eq!(col(&b, ERROR_COLUMN)[2], s("a.json element 3, byte 78: not a JSON object"));
    // A wrapped array, with other keys (even an array) before it.
    let p = dir.path().join("w.json");
    std::fs::write(&p, r#"{"meta": {"data": [0]}, "skip": [{"id": 9}], "data": [{"id": 1}, {"id": 2}], "next": null}"#)
        .unwrap();
    let b = scan(json!({"type": "json", "path": p, "record_path": "data"})).await;
    assert_eq!(col(&b, "id"), [s("1"), s("2")]);
    let nested = dir.path().join("n.json");
    std::fs::write(&nested, r#"{"result": {"items": [{"id": "a"}]}}"#).unwrap();
    let b = scan(json!({"type": "json", "path": nested, "record_path": ["result", "items"]})).await;
    assert_eq!(col(&b, "id"), [s("a")]);
    // No such path: a clear error.
    let source = from_config(&json!({"type": "json", "path": p, "record_path": "rows"})).unwrap();
    let e = source.schema().await.unwrap_err();
    assert!(e.to_string().contains("no array at record path `rows`"), "{e}");
    // A truncated array keeps its complete elements and quarantines the cut one.
    let p = dir.path().join("t.json");
    std::fs::write(&p, r#"[{"id": 1}, {"id": 2}, {"id": 3, "na"#).unwrap();
    let b = scan(json!({"type": "json", "path": p})).await;
    assert_eq!(col(&b, "id"), [s("1"), s("2"), None]);
    assert_eq!(col(&b, RAW_COLUMN)[2], s(r#"{"id": 3, "na"#));
    assert!(
        col(&b, ERROR_COLUMN)[2].as_deref().unwrap().contains("element 3, byte 23: the file ends inside the array"),
        "{:?}",
        col(&b, ERROR_COLUMN)
    );
    // `json` with NDJSON content is NDJSON.
    let p = dir.path().join("l.json");
    std::fs::write(&p, "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    assert_eq!(col(&scan(json!({"type": "json", "path": p})).await, "id"), [s("1"), s("2")]);
}

#[tokio::test]
async fn gzip_is_read_and_a_broken_stream_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("id,name\n");
    for i in 0..5000 {
        text.push_str(&format!("{i},name number {i}\n"));
    }
    let gz = gzip(text.as_bytes());
    let p = dir.path().join("users.csv.gz");
    std::fs::write(&p, &gz).unwrap();
    let b = scan(json!({"path": p})).await;
    assert_eq!(col(&b, "id").len(), 5000);
    assert!(col(&b, RAW_COLUMN).iter().all(Option::is_none));
    // Truncated: the rows before the cut are kept; the cut record is quarantined with the reason.
    let p = dir.path().join("cut.csv.gz");
    std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
    let b = scan(json!({"path": p})).await;
    let ids = col(&b, "id");
    let good = ids.iter().filter(|v| v.is_some()).count();
    assert!(good > 100 && good < 5000, "{good}");
    assert_eq!(ids.len(), good + 1, "one malformed row for the cut");
    let why = col(&b, ERROR_COLUMN).into_iter().flatten().collect::<Vec<_>>();
    assert_eq!(why.len(), 1);
    assert!(why[0].starts_with("cut.csv.gz line ") && why[0].contains("truncated gzip data"), "{why:?}");
    // Corrupt bytes in the middle.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b = !*b;
    }
    let p = dir.path().join("bad.ndjson.gz");
    let mut lines = String::new();
    for i in 0..5000 {
        lines.push_str(&format!("{{\"id\": {i}, \"name\": \"name number {i}\"}}\n"));
    }
    let mut bad_json = gzip(lines.as_bytes());
    let mid = bad_json.len() / 2;
    for b in &mut bad_json[mid..mid + 64] {
        *b = !*b;
    }
    std::fs::write(&p, &bad_json).unwrap();
    let source = from_config(&json!({"path": p})).unwrap();
    let batches = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    let why: Vec<String> = col(&batches, ERROR_COLUMN).into_iter().flatten().collect();
    assert!(!why.is_empty() && why.last().unwrap().contains("gzip data"), "{why:?}");
    assert!(col(&batches, "id").iter().flatten().count() > 100);
    // Through a workspace: the good rows commit, the break is quarantined.
    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    ws.define_entity(
        serde_json::from_value(json!({"name": "u", "key": "id", "attributes": [
        {"name": "id", "type": "int64"}, {"name": "name", "type": "string"}]}))
        .unwrap(),
    )
    .await
    .unwrap();
    let r = ws.ingest("u", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert!(r.rows_written > 100 && r.rows_quarantined >= 1, "{r:?}");
    // The report samples the first quarantined rows; the quarantine holds them all, the break last.
    let q = ws.quarantine("u").await.unwrap();
    let reasons = col(std::slice::from_ref(&q), "reason");
    assert_eq!(reasons.len() as u64, r.rows_quarantined);
    let last = reasons.last().unwrap().as_deref().unwrap();
    assert!(last.starts_with("malformed record: bad.ndjson.gz line ") && last.contains("gzip data"), "{last}");
}

#[tokio::test]
async fn globs_union_columns_and_name_each_rows_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("in/2026/01")).unwrap();
    std::fs::write(dir.path().join("in/a.csv"), "id,name\n1,a\n").unwrap();
    std::fs::write(dir.path().join("in/b.csv"), "id,city\n2,Paris\n").unwrap();
    std::fs::write(dir.path().join("in/c.txt"), "id\n3\n").unwrap();
    std::fs::write(dir.path().join("in/2026/01/d.csv.gz"), gzip(b"name,id\nd,4\n")).unwrap();
    let base = dir.path().join("in").to_str().unwrap().to_string();
    let b = scan(json!({"type": "csv", "path": format!("{base}/*.csv"), "file_column": true})).await;
    assert_eq!(col(&b, "id"), [s("1"), s("2")]);
    assert_eq!(col(&b, "name"), [s("a"), None]);
    assert_eq!(col(&b, "city"), [None, s("Paris")]);
    assert_eq!(col(&b, FILE_COLUMN), [s(&format!("{base}/a.csv")), s(&format!("{base}/b.csv"))]);
    let b = scan(json!({"type": "csv", "path": format!("{base}/**/*.{{csv,csv.gz}}"), "file_column": "src"})).await;
    assert_eq!(col(&b, "id"), [s("4"), s("1"), s("2")], "path order; `**` crosses directories");
    assert!(col(&b, "src")[0].as_deref().unwrap().ends_with("in/2026/01/d.csv.gz"));
    let source = from_config(&json!({"type": "csv", "path": format!("{base}/*.tsv")})).unwrap();
    let e = source.schema().await.unwrap_err();
    assert!(e.to_string().contains("no file matches"), "{e}");
    // Typed files must agree on types.
    let write = |name: &str, batch: RecordBatch| {
        let f = std::fs::File::create(dir.path().join("in").join(name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    };
    use segkit::deps::arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;
    write("p1.parquet", RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1])) as _)]).unwrap());
    write("p2.parquet", RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(vec!["x"])) as _)]).unwrap());
    let source = from_config(&json!({"path": format!("{base}/p*.parquet")})).unwrap();
    let e = source.schema().await.unwrap_err();
    assert!(
        e.to_string().contains("file `") && e.to_string().contains("p2.parquet") && e.to_string().contains("`id`"),
        "{e}"
    );
}

#[tokio::test]
async fn s3_glob_through_a_real_s3_server() {
    let Ok(endpoint) = std::env::var("SEGKIT_TEST_S3_ENDPOINT") else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this test: scripts/test-all.sh starts an S3 server");
        eprintln!("skipped: set SEGKIT_TEST_S3_ENDPOINT (scripts/test-all.sh does) to run against an S3 server");
        return;
    };
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_allow_http", "true"),
    ];
    let url = url::Url::parse("s3://segkit-test/").unwrap();
    let (store, _) =
        object_store::parse_url_opts(&url, options.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    let prefix = format!("files-{}", std::process::id());
    use object_store::ObjectStoreExt;
    for (name, body) in
        [("a.csv", b"id,v\n1,x\n".to_vec()), ("b.csv.gz", gzip(b"id,v\n2,y\n")), ("c.json", b"[]".to_vec())]
    {
        store.put(&object_store::path::Path::from(format!("{prefix}/{name}")), body.into()).await.unwrap();
    }
    let opts: serde_json::Map<String, serde_json::Value> =
        options.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let b = scan(json!({"type": "csv", "url": format!("s3://segkit-test/{prefix}/*.csv*"), "options": opts,
                        "file_column": true}))
    .await;
    assert_eq!(col(&b, "v"), [s("x"), s("y")]);
    assert_eq!(col(&b, FILE_COLUMN)[1], s(&format!("s3://segkit-test/{prefix}/b.csv.gz")));
}

#[tokio::test]
async fn excel_sheets_types_dates_and_merged_headers() {
    let x = format!("{FIXTURES}/customers.xlsx");
    let source = from_config(&json!({"path": x, "sheet": "客户", "header_row": 1})).unwrap();
    let schema = source.schema().await.unwrap();
    let types: Vec<(String, ArrowType)> =
        schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let ts = ArrowType::Timestamp(segkit::deps::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(
        types,
        [
            ("客户编号".to_string(), ArrowType::Int64),
            ("姓名".into(), ArrowType::Utf8),
            ("城市".into(), ArrowType::Utf8),
            ("年龄".into(), ArrowType::Utf8),
            ("注册日期".into(), ArrowType::Date32),
            ("登录时间".into(), ts.clone()),
            ("VIP".into(), ArrowType::Boolean),
            ("余额".into(), ArrowType::Float64),
        ]
    );
    source_conformance(source.as_ref()).await.unwrap();
    let b = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    assert_eq!(col(&b, "客户编号"), [s("1"), s("2"), s("3"), s("4"), s("5")], "empty trailing rows ignored");
    assert_eq!(col(&b, "年龄")[3], s("unknown"));
    assert_eq!(col(&b, "年龄")[0], s("34"));
    assert_eq!(col(&b, "注册日期")[0], s("2024-01-15"));
    assert_eq!(col(&b, "登录时间")[2], s("2026-03-03T18:45:10Z"));
    // The same sheet by index; the first sheet by default; a missing sheet names the ones there are.
    let by_index = from_config(&json!({"path": x, "sheet": 1, "header_row": 1})).unwrap();
    assert_eq!(by_index.schema().await.unwrap(), schema);
    let e = from_config(&json!({"path": x, "sheet": "Sheet9"})).unwrap().schema().await.unwrap_err();
    assert!(e.to_string().contains("no sheet `Sheet9` (sheets: 说明, 客户)"), "{e}");
    // Merged header cells: repeated, or joined with the row above.
    let sales = format!("{FIXTURES}/sales.xlsx");
    let names = |v: serde_json::Value| async move {
        let s = from_config(&v).unwrap().schema().await.unwrap();
        s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(json!({"path": sales})).await, ["id", "Q1", "Q1_2", "Q2", "Q2_2"]);
    assert_eq!(
        names(json!({"path": sales, "header_row": 1, "merged_headers": "join"})).await,
        ["id", "Q1_north", "Q1_south", "Q2_north", "Q2_south"]
    );
    let b = scan(json!({"path": sales, "header_row": 1, "merged_headers": "join"})).await;
    assert_eq!(col(&b, "Q2_south"), [s("40"), s("41"), s("42")]);
    // .xls and .ods read the same customers.
    for f in ["customers.xls", "customers.ods"] {
        let b = scan(json!({"path": format!("{FIXTURES}/{f}")})).await;
        assert_eq!(col(&b, "姓名"), [s("张三"), s("李四"), s("王五"), s("赵六"), s("钱七")], "{f}");
        assert_eq!(col(&b, "注册日期")[0], s("2024-01-15"), "{f}");
        assert_eq!(col(&b, "余额")[0], s("1200.5"), "{f}");
    }
    // A sheet whose two cells span the whole grid is refused, not allocated.
    let far = format!("{FIXTURES}/../fuzz/excel/far-cells.xlsx");
    let e = from_config(&json!({"path": far})).unwrap().schema().await.unwrap_err();
    assert!(e.to_string().contains("spans 1048576 rows × 16384 columns"), "{e}");
    // Not a spreadsheet: a clear error, nothing read.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fake.xlsx");
    std::fs::write(&p, b"PK\x03\x04 truncated").unwrap();
    let e = from_config(&json!({"path": p})).unwrap().schema().await.unwrap_err();
    assert!(e.to_string().contains("fake.xlsx is not a readable spreadsheet"), "{e}");
}

#[tokio::test]
async fn excel_ingests_with_wrong_typed_cells_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    let source =
        from_config(&json!({"path": format!("{FIXTURES}/customers.xlsx"), "sheet": "客户", "header_row": 1})).unwrap();
    let proposal = infer_entity(source.as_ref(), "客户", &InferOptions::default()).await.unwrap();
    assert_eq!(proposal.entity.key.as_deref(), Some("客户编号"));
    let mut entity = proposal.entity.clone();
    // The user edits the proposal: 年龄 is an integer (one cell says "unknown").
    entity.attributes.iter_mut().find(|a| a.name == "年龄").unwrap().data_type = segkit::DataType::Int64;
    ws.define_entity(entity).await.unwrap();
    let r = ws.ingest("客户", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (4, 1), "{r:?}");
    assert_eq!(r.quarantine_sample[0].row, 4);
    assert!(r.quarantine_sample[0].reason.contains("attribute `年龄`: cannot read \"unknown\" as int64"), "{r:?}");
    let out =
        ws.sql("SELECT \"客户编号\" FROM \"客户\" WHERE \"注册日期\" < DATE '2023-01-01' ORDER BY 1").await.unwrap();
    let ids: Vec<i64> = out.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, [3, 5]);
}

#[tokio::test]
async fn inference_proposes_types_key_and_sanitised_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.csv");
    std::fs::write(
        &p,
        "order no.,Customer ID,amount,paid,day,at,tags,meta,zip,1st,Amount,\n\
         A-1,7,1.5,true,2026-01-02,2026-01-02 10:00:00,\"[1,2]\",\"{\"\"a\"\":1}\",007,x,1,\n\
         A-2,8,2,false,2026-01-03,2026-01-03T11:00:00Z,[3],{},010,y,2,\n\
         A-3,7,NA,no,2026-01-04,2026-01-04 12:00,[],\"{\"\"b\"\":[]}\",999,z,3,e\n",
    )
    .unwrap();
    let source = from_config(&json!({"path": p})).unwrap();
    let prop = infer_entity(source.as_ref(), "orders", &InferOptions::default()).await.unwrap();
    let got: Vec<(String, String, String)> =
        prop.fields.iter().map(|f| (f.source.clone(), f.attribute.clone(), f.data_type.to_string())).collect();
    let want = [
        ("order no.", "order_no", "string"),
        ("Customer ID", "Customer_ID", "int64"),
        ("amount", "amount", "float64"),
        ("paid", "paid", "bool"),
        ("day", "day", "date"),
        ("at", "at", "timestamp"),
        ("tags", "tags", "list<int64>"),
        ("meta", "meta", "json"),
        ("zip", "zip", "string"),
        ("1st", "_1st", "string"),
        ("Amount", "Amount_2", "int64"),
        ("column_12", "column_12", "string"),
    ];
    let want: Vec<(String, String, String)> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(got, want);
    assert_eq!(prop.entity.key.as_deref(), Some("order_no"), "the unique field; Customer ID repeats");
    assert_eq!(prop.mapping.get("order_no").map(String::as_str), Some("order no."));
    assert_eq!(prop.mapping.get("Amount_2").map(String::as_str), Some("Amount"));
    assert!(!prop.mapping.contains_key("amount"));
    assert_eq!(prop.sampled_rows, 3);
    let j = prop.to_json();
    assert_eq!(j["entity"]["attributes"][6]["type"], "list<int64>");
    // The proposal is accepted as it is, and ingests with its mapping.
    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    ws.define_entity(serde_json::from_value(j["entity"].clone()).unwrap()).await.unwrap();
    let mapping = segkit::Mapping::from_json(&j["mapping"]).unwrap();
    let r = ws.ingest("orders", source.as_ref(), IngestOptions { mapping, ..Default::default() }).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (3, 0), "{r:?}");
    // An explicit key; a key that is not there.
    let by = infer_entity(source.as_ref(), "orders", &InferOptions::default().key("Customer ID")).await.unwrap();
    assert_eq!(by.entity.key.as_deref(), Some("Customer_ID"));
    assert!(by.notes[0].contains("not unique"), "{:?}", by.notes);
    let e = infer_entity(source.as_ref(), "orders", &InferOptions::default().key("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("no field `nope`"), "{e}");
    let e = infer_entity(source.as_ref(), "orders", &InferOptions::default().sample_rows(0)).await.unwrap_err();
    assert!(e.to_string().contains("sample_rows"), "{e}");
    // Sampling stops early: one row decides.
    let one = infer_entity(source.as_ref(), "orders", &InferOptions::default().sample_rows(1)).await.unwrap();
    assert_eq!(one.sampled_rows, 1);
    assert_eq!(one.fields[2].data_type.to_string(), "float64");
}

/// Issue 11: a CSV whose header is `客户编号,姓名,城市,年龄` — with a BOM, without, and in GBK — ingests into
/// an entity with those attribute names without any mapping, and a segment's rule uses them.
#[tokio::test]
async fn chinese_header_csv_without_a_mapping_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let text = "客户编号,姓名,城市,年龄\n1,张三,北京,34\n2,李四,上海,28\n3,王五,北京,45\n4,赵六,广州,不详\n";
    let files = [
        ("plain.csv", text.as_bytes().to_vec(), json!({})),
        ("bom.csv", [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(), json!({})),
        ("gbk.csv", encoding_rs::GBK.encode(text).0.into_owned(), json!({"encoding": "gbk"})),
    ];
    for (i, (name, bytes, extra)) in files.into_iter().enumerate() {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let mut config = json!({"type": "csv", "path": p});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let source = from_config(&config).unwrap();
        let proposal = infer_entity(source.as_ref(), "客户", &InferOptions::default()).await.unwrap();
        let names: Vec<&str> = proposal.entity.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["客户编号", "姓名", "城市", "年龄"], "{name}");
        assert!(proposal.mapping.is_empty(), "{name}: no mapping needed");
        assert_eq!(proposal.entity.key.as_deref(), Some("客户编号"), "{name}");
        assert_eq!(proposal.fields[3].data_type.to_string(), "string", "{name}: 不详 is not a number");

        let ws = Workspace::open(dir.path().join(format!("ws{i}"))).await.unwrap();
        ws.define_entity(
            serde_json::from_value(json!({"name": "客户", "key": "客户编号", "attributes": [
                {"name": "客户编号", "type": "int64"}, {"name": "姓名", "type": "string"},
                {"name": "城市", "type": "string"}, {"name": "年龄", "type": "int32"}]}))
            .unwrap(),
        )
        .await
        .unwrap();
        let r = ws.ingest("客户", source.as_ref(), IngestOptions::default()).await.unwrap();
        assert_eq!((r.rows_written, r.rows_quarantined), (3, 1), "{name}: {r:?}");
        assert!(r.ignored_fields.is_empty(), "{name}: {r:?}");
        assert!(r.quarantine_sample[0].reason.contains("attribute `年龄`"), "{name}: {r:?}");
        let rule = segkit::rules::Rule::parse_str(
            r#"{"and": [{"attribute": "城市", "op": "eq", "value": "北京"}, {"attribute": "年龄", "op": "ge", "value": 40}]}"#,
        )
        .unwrap();
        ws.define_segment(SegmentDefinition::new("北京老客户", "客户", rule)).await.unwrap();
        let run = ws.evaluate("北京老客户").await.unwrap();
        assert_eq!(run.count, 1, "{name}");
        let out = ws.sql("SELECT \"姓名\" FROM \"客户\" WHERE \"客户编号\" = 3").await.unwrap();
        assert_eq!(col(&out, "姓名"), [s("王五")], "{name}");
    }
}

#[test]
fn config_errors_name_their_field() {
    let def = |v: serde_json::Value| -> String {
        let err = from_config(&v).expect_err("config should be rejected");
        assert_eq!(err.kind(), ErrorKind::Definition, "{err}");
        err.to_string()
    };
    assert!(def(json!({"type": "excel", "path": "a.xlsx", "merged_headers": "glue"})).contains("source.merged_headers"));
    assert!(def(json!({"type": "excel", "path": "a.xlsx", "sheet": -1})).contains("source.sheet"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "record_path": "data"})).contains("json sources only"));
    assert!(def(json!({"type": "json", "path": "a.json", "record_path": "a..b"})).contains("source.record_path"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "quote": ","})).contains("source.quote"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "compression": "zip"})).contains("source.compression"));
    assert!(def(json!({"type": "parquet", "path": "a.parquet", "encoding": "gbk"})).contains("text sources only"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "file_column": 3})).contains("source.file_column"));
    let e = from_config(&json!({"type": "csv", "path": "data/[a.csv"})).unwrap_err();
    assert!(e.to_string().contains("invalid glob pattern"), "{e}");
}
