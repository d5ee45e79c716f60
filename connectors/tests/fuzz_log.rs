//! Fuzzing the log reader with proptest: arbitrary bytes and near-valid logs (random line kinds, `\r\n`,
//! invalid UTF-8, overlong lines, gzip, appends cut anywhere between syncs) never panic, and every input line
//! comes out exactly once — as a row, a quarantined row, or a skipped empty line.
//!
//! Every run replays the kept corpus `tests/fixtures/fuzz/log/` (add a file there for every crash found), then
//! `SEGKIT_FUZZ_CASES` generated cases per property (default 64; a long run:
//! `SEGKIT_FUZZ_CASES=20000 nice -n 19 cargo test -p segkit-connectors --features log --test fuzz_log`).

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use segkit::deps::arrow::array::{Array, AsArray, RecordBatch};
use segkit::ScanRequest;
use serde_json::{json, Value};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/fuzz/log");

fn cases() -> u32 {
    std::env::var("SEGKIT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One scan: (good rows' `a` values, quarantined reasons, cursor).
fn scan(
    rt: &tokio::runtime::Runtime,
    config: &Value,
    cursor: Option<Value>,
) -> (Vec<Option<String>>, Vec<String>, Option<Value>) {
    rt.block_on(async {
        let source = segkit_connectors::log::from_config(config).unwrap();
        let schema = source.schema().await.unwrap();
        let batches: Vec<RecordBatch> =
            segkit::testing::collect_scan(source.as_ref(), &ScanRequest::all().with_cursor(cursor)).await.unwrap();
        let (mut good, mut bad) = (vec![], vec![]);
        for b in &batches {
            assert_eq!(b.schema(), schema);
            let a = b.column_by_name("a").unwrap().as_string::<i32>();
            let raw = b.column_by_name("_raw").unwrap().as_string::<i32>();
            let err = b.column_by_name("_error").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                assert_eq!(raw.is_valid(i), err.is_valid(i), "a quarantined line always says why");
                if err.is_valid(i) {
                    let e = err.value(i);
                    assert!(e.contains(" line ") && e.contains(", byte "), "{e}");
                    bad.push(e.to_string());
                } else {
                    good.push(a.is_valid(i).then(|| a.value(i).to_string()));
                }
            }
        }
        (good, bad, source.cursor().await.unwrap())
    })
}

/// The lines a full read must account for (split at `\n`, a last piece without one included, blank ones not).
fn counted_lines(bytes: &[u8]) -> usize {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(bytes);
    let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces.iter().filter(|p| !p.iter().all(u8::is_ascii_whitespace)).count()
}

fn config(path: &Path, tail: bool) -> Value {
    json!({"type": "log", "path": path, "pattern": r"^(?P<a>\S+) (?P<b>.*)$", "max_line_bytes": 64, "tail": tail,
           "time_fields": [], "batch_size": 7})
}

/// Arbitrary bytes (plain, or gzip'd, or gzip'd and cut): no panic, and a plain file's lines all accounted for.
fn check_bytes(rt: &tokio::runtime::Runtime, bytes: &[u8], gzip: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(if gzip.is_some() { "f.log.gz" } else { "f.log" });
    match gzip {
        None => std::fs::write(&p, bytes).unwrap(),
        Some(cut) => {
            let z = gz(bytes);
            std::fs::write(&p, &z[..z.len() - cut.min(z.len())]).unwrap();
        }
    }
    let (good, bad, _) = scan(rt, &config(&p, false), None);
    let expected = counted_lines(bytes);
    match gzip {
        Some(cut) if cut > 0 => assert!(good.len() + bad.len() <= expected + 1, "a cut gzip: at most one extra row"),
        _ => assert_eq!(good.len() + bad.len(), expected, "every line is a row or quarantined"),
    }
}

#[test]
fn the_kept_corpus_replays() {
    let rt = rt();
    let mut n = 0;
    for entry in std::fs::read_dir(CORPUS).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        check_bytes(&rt, &bytes, None);
        check_bytes(&rt, &bytes, Some(0));
        check_bytes(&rt, &bytes, Some(5));
        n += 1;
    }
    assert!(n >= 4, "the corpus is there");
}

#[derive(Debug, Clone)]
enum Line {
    Good(u16),
    Garbage(Vec<u8>),
    Blank(String),
    Long(usize),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        4 => any::<u16>().prop_map(Line::Good),
        2 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40).prop_map(Line::Garbage),
        1 => "[ \t\r]{0,3}".prop_map(Line::Blank),
        1 => (65usize..400).prop_map(Line::Long),
    ]
}

fn render(lines: &[Line], crlf: bool) -> Vec<u8> {
    let mut out = vec![];
    for l in lines {
        match l {
            Line::Good(n) => out.extend(format!("k{n} v").as_bytes()),
            Line::Garbage(b) => out.extend(b),
            Line::Blank(s) => out.extend(s.as_bytes()),
            Line::Long(n) => out.extend(format!("long {}", "y".repeat(*n)).as_bytes()),
        }
        out.extend(if crlf { b"\r\n".as_slice() } else { b"\n" });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_every_line_is_accounted_for(
        bytes in proptest::collection::vec(any::<u8>(), 0..600), gzip in any::<bool>(), cut in 0usize..30,
    ) {
        let rt = rt();
        check_bytes(&rt, &bytes, gzip.then_some(cut));
    }

    /// Near-valid logs: the good lines come out exactly, in order; the rest are quarantined or skipped.
    #[test]
    fn good_lines_are_kept_around_bad_ones(lines in proptest::collection::vec(line(), 0..40), crlf in any::<bool>(),
                                           gzip in any::<bool>()) {
        let rt = rt();
        let dir = tempfile::tempdir().unwrap();
        let bytes = render(&lines, crlf);
        let p = dir.path().join(if gzip { "f.log.gz" } else { "f.log" });
        std::fs::write(&p, if gzip { gz(&bytes) } else { bytes.clone() }).unwrap();
        let (good, bad, _) = scan(&rt, &config(&p, true), None);
        let want: Vec<Option<String>> = lines.iter().filter_map(|l| match l {
            Line::Good(n) => Some(Some(format!("k{n}"))),
            _ => None,
        }).collect();
        let garbage_good = good.len() - want.len().min(good.len());
        // A garbage line may happen to match `\S+ .*`: then it is a (good) row too.
        prop_assert!(good.len() >= want.len());
        prop_assert_eq!(good.iter().filter(|g| want.contains(g)).count() >= want.len(), true);
        let long = lines.iter().filter(|l| matches!(l, Line::Long(_))).count();
        prop_assert_eq!(bad.iter().filter(|e| e.contains("longer than max_line_bytes")).count(), long);
        prop_assert_eq!(good.len() + bad.len(), counted_lines(&bytes), "garbage matched: {}", garbage_good);
    }

    /// Appends cut anywhere (inside a line, a `\r\n`, a UTF-8 character), a scan from the cursor after each:
    /// the rows of all scans together are those of one scan of the whole file — nothing lost, nothing doubled.
    #[test]
    fn appends_between_syncs_lose_and_double_nothing(lines in proptest::collection::vec(line(), 0..30),
                                                     cuts in proptest::collection::vec(any::<usize>(), 0..6),
                                                     crlf in any::<bool>()) {
        let rt = rt();
        let dir = tempfile::tempdir().unwrap();
        let bytes = render(&lines, crlf);
        let p = dir.path().join("f.log");
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        std::fs::write(&p, b"").unwrap();
        let (mut good, mut bad, mut cursor) = (vec![], vec![], None);
        let mut at = 0;
        for c in cuts {
            std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&bytes[at..c]).unwrap();
            at = c;
            let (g, b, next) = scan(&rt, &config(&p, true), cursor.take());
            good.extend(g);
            bad.extend(b);
            cursor = next;
        }
        let dir2 = tempfile::tempdir().unwrap();
        let whole = dir2.path().join("f.log");
        std::fs::write(&whole, &bytes).unwrap();
        let (g, b, _) = scan(&rt, &config(&whole, true), None);
        prop_assert_eq!(good, g);
        prop_assert_eq!(bad, b);
    }
}
