//! Fuzzing the file readers (CSV, JSON, Excel) with proptest: arbitrary bytes and near-valid files (one record
//! broken, truncated or corrupt gzip, mutated spreadsheets) must give `Ok` or a clear `Err`, never a panic or
//! a hang, and the records that were not touched must come through intact.
//!
//! Every run replays the kept corpus `tests/fixtures/fuzz/{csv,json,excel}/` (add a file there for every crash
//! found), then `SEGKIT_FUZZ_CASES` generated cases per property (default 64; a long run:
//! `SEGKIT_FUZZ_CASES=20000 nice -n 19 cargo test -p segkit-connectors --test fuzz_files`).

use std::io::Write;

use proptest::prelude::*;
use segkit::deps::arrow::array::{Array, AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::DataType as ArrowType;
use segkit::ScanRequest;
use segkit_connectors::{from_config, ERROR_COLUMN, RAW_COLUMN};
use serde_json::json;

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fuzz");
const FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/files");

fn cases() -> u32 {
    std::env::var("SEGKIT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

/// Reads a file with `config` (its `path` set): `Ok(batches)` or `Err(message)`; panics propagate.
fn read(
    rt: &tokio::runtime::Runtime,
    bytes: &[u8],
    name: &str,
    mut config: serde_json::Value,
) -> Result<Vec<RecordBatch>, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    config["path"] = json!(p);
    rt.block_on(async {
        let source = from_config(&config).map_err(|e| e.to_string())?;
        let schema = source.schema().await.map_err(|e| e.to_string())?;
        let batches =
            segkit::testing::collect_scan(source.as_ref(), &ScanRequest::all()).await.map_err(|e| e.to_string())?;
        for b in &batches {
            assert_eq!(b.schema(), schema, "every batch has the declared schema");
            if let (Some(raw), Some(err)) = (b.column_by_name(RAW_COLUMN), b.column_by_name(ERROR_COLUMN)) {
                for i in 0..b.num_rows() {
                    assert_eq!(raw.is_valid(i), err.is_valid(i), "a malformed row always says why");
                }
            }
        }
        Ok(batches)
    })
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = segkit::deps::arrow::compute::cast(b.column_by_name(name).unwrap(), &ArrowType::Utf8).unwrap();
            a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        })
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn replay(kind: &str, config: serde_json::Value) -> usize {
    let rt = rt();
    let mut n = 0;
    for entry in std::fs::read_dir(format!("{FUZZ}/{kind}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let _ = read(&rt, &bytes, &name, config.clone());
        n += 1;
    }
    n
}

#[test]
fn corpus_replays() {
    assert!(replay("csv", json!({"type": "csv"})) >= 5);
    assert!(replay("json", json!({"type": "json"})) >= 5);
    assert!(replay("excel", json!({"type": "excel"})) >= 3);
}

const GOOD: [&str; 6] = ["1,ann,30", "2,\"bob, jr\",41", "3,cat,", "4,\"multi\nline\",7", "5,eve,19", "6,zed,0"];

fn csv_of(records: &[String]) -> String {
    let mut s = String::from("id,name,age\n");
    for r in records {
        s.push_str(r);
        s.push('\n');
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes as CSV (any encoding, gzip or not) and as JSON: no panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                   enc in prop::sample::select(vec!["utf-8", "gbk", "big5", "utf-16le", "shift_jis"])) {
        let rt = rt();
        let _ = read(&rt, &bytes, "x.csv", json!({"type": "csv", "encoding": enc}));
        let _ = read(&rt, &bytes, "x.csv", json!({"type": "csv", "header": false, "comment": "#", "escape": "\\"}));
        let _ = read(&rt, &bytes, "x.csv.gz", json!({"type": "csv"}));
        let _ = read(&rt, &bytes, "x.json", json!({"type": "json"}));
        let _ = read(&rt, &bytes, "x.json", json!({"type": "json", "record_path": "data"}));
        let _ = read(&rt, &bytes, "x.ndjson", json!({"type": "ndjson", "encoding": enc}));
        let mut with_gzip_head = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        with_gzip_head.extend_from_slice(&bytes);
        let _ = read(&rt, &with_gzip_head, "x.ndjson.gz", json!({"type": "ndjson"}));
    }

    /// One record broken (an extra field, a bad byte, a stray delimiter): exactly that row is malformed, every
    /// other record comes through as written.
    #[test]
    fn one_broken_csv_record_leaves_the_others_intact(which in 0usize..6, how in 0usize..3) {
        let rt = rt();
        let mut records: Vec<String> = GOOD.iter().map(|s| s.to_string()).collect();
        records[which] = match how {
            0 => format!("{},extra", records[which]),
            1 => format!("{}~", records[which]),
            _ => records[which].replacen(',', ",,", 1),
        };
        // `~` stands for a byte that is not UTF-8.
        let bytes: Vec<u8> = csv_of(&records).into_bytes().into_iter().map(|b| if b == b'~' { 0xFF } else { b }).collect();
        let b = read(&rt, &bytes, "f.csv", json!({"type": "csv"})).unwrap();
        let ids = column(&b, "id");
        prop_assert_eq!(ids.len(), 6);
        for (i, id) in ids.iter().enumerate() {
            if i == which {
                prop_assert!(id.is_none());
                prop_assert!(column(&b, ERROR_COLUMN)[i].is_some());
            } else {
                prop_assert_eq!(id.clone(), Some((i + 1).to_string()));
            }
        }
    }

    /// A gzip'd CSV cut anywhere: every row delivered as good is a row of the file, in order (a prefix), and the
    /// cut is at most one malformed row saying so. With a byte flipped as well: no panic (deflate may decode
    /// garbage before the checksum at the end exposes it; such rows are quarantined or typed-checked by ingest).
    #[test]
    fn damaged_gzip_keeps_a_prefix(cut in 0.0f64..1.0, flip in proptest::option::of(0.0f64..1.0)) {
        let rt = rt();
        let mut text = String::from("id,v\n");
        for i in 0..400 { text.push_str(&format!("{i},value {i}\n")); }
        let mut gz = gzip(text.as_bytes());
        let n = ((gz.len() as f64) * cut) as usize;
        gz.truncate(n.max(1));
        if let Some(f) = flip {
            let at = ((gz.len() as f64) * f) as usize % gz.len();
            gz[at] ^= 0x5a;
        }
        let got = read(&rt, &gz, "d.csv.gz", json!({"type": "csv"}));
        if let (Ok(b), None) = (&got, flip) {
            let ids = column(b, "id");
            let good: Vec<&String> = ids.iter().flatten().collect();
            for (i, id) in good.iter().enumerate() {
                prop_assert_eq!(id.to_string(), i.to_string());
            }
            let errs: Vec<String> = column(b, ERROR_COLUMN).into_iter().flatten().collect();
            prop_assert!(errs.len() <= 1, "{:?}", errs);
            prop_assert!(!errs.is_empty() || good.len() == 400, "a cut file without a reported cut: {} rows", good.len());
        }
    }

    /// A JSON array with one element broken: the others come through.
    #[test]
    fn one_broken_json_element_leaves_the_others_intact(which in 0usize..5, how in 0usize..3) {
        let rt = rt();
        let mut elems: Vec<String> = (0..5).map(|i| format!("{{\"id\": {i}, \"s\": \"a,]}}{i}\"}}")).collect();
        elems[which] = match how {
            0 => "[1, 2]".to_string(),
            1 => format!("{{\"id\": {which}, \"s\": }}"),
            _ => "\"text\"".to_string(),
        };
        let doc = format!("[{}]", elems.join(", "));
        let b = read(&rt, doc.as_bytes(), "a.json", json!({"type": "json"})).unwrap();
        let ids = column(&b, "id");
        prop_assert_eq!(ids.len(), 5);
        for (i, id) in ids.iter().enumerate() {
            if i == which { prop_assert!(id.is_none()); } else { prop_assert_eq!(id.clone(), Some(i.to_string())); }
        }
    }

    /// Spreadsheets with bytes flipped or cut: `Ok` or a clear error, never a panic.
    #[test]
    fn mutated_spreadsheets_never_panic(file in prop::sample::select(vec!["customers.xlsx", "sales.xlsx", "customers.xls", "customers.ods"]),
                                        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..8),
                                        cut in proptest::option::of(0.0f64..1.0)) {
        let rt = rt();
        let mut bytes = std::fs::read(format!("{FILES}/{file}")).unwrap();
        for (at, b) in flips {
            let i = ((bytes.len() as f64) * at) as usize % bytes.len();
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(((bytes.len() as f64) * c) as usize);
        }
        match read(&rt, &bytes, file, json!({"type": "excel"})) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.contains(file), "{}", e),
        }
    }
}
