//! Size guards of the spreadsheet reader for `.xls` and `.ods`, which calamine parses whole: a tiny crafted
//! workbook asking for a huge grid is refused before calamine allocates it, naming the limit; the small real
//! fixtures still read.

use std::io::{Cursor, Write};

use segkit::limits::{MAX_SPREADSHEET_CELLS, MAX_SPREADSHEET_SHEETS};
use segkit::testing::collect_scan;
use segkit::ScanRequest;
use segkit_connectors::from_config;
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/files");

fn record(t: u16, data: &[u8]) -> Vec<u8> {
    let mut r = t.to_le_bytes().to_vec();
    r.extend((data.len() as u16).to_le_bytes());
    r.extend(data);
    r
}

fn bof(dt: u16) -> Vec<u8> {
    let mut d = 0x0600u16.to_le_bytes().to_vec();
    d.extend(dt.to_le_bytes());
    d.extend([0u8; 12]);
    record(0x0809, &d)
}

fn number(row: u16, col: u16) -> Vec<u8> {
    let mut d = row.to_le_bytes().to_vec();
    d.extend(col.to_le_bytes());
    d.extend(0u16.to_le_bytes());
    d.extend(1.5f64.to_le_bytes());
    record(0x0203, &d)
}

/// A BIFF8 workbook stream: globals with one BoundSheet8 per sheet, then the sheets (each a list of records).
fn workbook(sheets: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let bound = |pos: u32, i: usize| {
        let name = format!("S{i}");
        let mut d = pos.to_le_bytes().to_vec();
        d.extend([0u8, 0u8, name.len() as u8, 0u8]);
        d.extend(name.as_bytes());
        record(0x0085, &d)
    };
    let globals_len = bof(5).len() + (0..sheets.len()).map(|i| bound(0, i).len()).sum::<usize>() + 4;
    let mut pos = globals_len as u32;
    let mut globals = bof(5);
    let mut body = vec![];
    for (i, records) in sheets.iter().enumerate() {
        globals.extend(bound(pos, i));
        let mut sheet = bof(0x10);
        for r in records {
            sheet.extend(r);
        }
        sheet.extend(record(0x000A, &[]));
        pos += sheet.len() as u32;
        body.extend(sheet);
    }
    globals.extend(record(0x000A, &[]));
    assert_eq!(globals.len(), globals_len);
    globals.extend(body);
    globals
}

/// `stream` as the `Workbook` stream of a compound file (an `.xls`).
fn xls(stream: &[u8]) -> Vec<u8> {
    let mut cfb = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    cfb.create_stream("/Workbook").unwrap().write_all(stream).unwrap();
    cfb.flush().unwrap();
    cfb.into_inner().into_inner()
}

/// An `.ods` with `content` as the body of `office:spreadsheet`.
fn ods(content: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("mimetype", stored).unwrap();
    z.write_all(b"application/vnd.oasis.opendocument.spreadsheet").unwrap();
    z.start_file("content.xml", stored).unwrap();
    write!(
        z,
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>{content}</office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    z.start_file("META-INF/manifest.xml", stored).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#).unwrap();
    z.finish().unwrap().into_inner()
}

async fn schema_error(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let source = from_config(&json!({"type": "excel", "path": path})).unwrap();
    source.schema().await.unwrap_err().to_string()
}

#[tokio::test]
async fn xls_sheets_spanning_too_many_cells_together_are_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    // Small sheets read (calamine parses this hand-made BIFF8 file: the records are real ones).
    let small = vec![number(0, 0), number(999, 9)];
    let path = dir.path().join("small.xls");
    std::fs::write(&path, xls(&workbook(&[small.clone(), small]))).unwrap();
    let source = from_config(&json!({"type": "excel", "path": path})).unwrap();
    assert_eq!(source.schema().await.unwrap().fields().len(), 10);
    // One cell at A1 and one at IV65536 span 16.7 M cells; three such sheets are more than the limit.
    let corners = vec![number(0, 0), number(65535, 255)];
    let three = xls(&workbook(&[corners.clone(), corners.clone(), corners]));
    let e = schema_error(&dir, "three.xls", &three).await;
    assert!(
        e.contains(&format!(
            "three.xls: its sheets span at least 50331648 cells, more than the {MAX_SPREADSHEET_CELLS}"
        )) && e.contains("(limit MAX_SPREADSHEET_CELLS"),
        "{e}"
    );
    // A DIMENSIONS record claiming 4 billion rows (calamine would reserve them).
    let mut dims = 0u32.to_le_bytes().to_vec();
    dims.extend(u32::MAX.to_le_bytes());
    dims.extend([0, 0, 10, 0, 0, 0]);
    let e = schema_error(&dir, "dims.xls", &xls(&workbook(&[vec![record(0x0200, &dims), number(0, 0)]]))).await;
    assert!(e.contains("dims.xls: its sheets span at least") && e.contains("MAX_SPREADSHEET_CELLS"), "{e}");
    // Many BoundSheet8 records pointing at one sheet count once each, as calamine reads each.
    let stream = workbook(&vec![vec![number(0, 0)]; MAX_SPREADSHEET_SHEETS + 1]);
    let e = schema_error(&dir, "many.xls", &xls(&stream)).await;
    assert!(e.contains(&format!("many.xls has more than {MAX_SPREADSHEET_SHEETS} sheets")), "{e}");
    // A sheet position past the end of the stream.
    let mut stream = workbook(&[vec![number(0, 0)]]);
    let at = bof(5).len() + 4;
    stream[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = schema_error(&dir, "past.xls", &xls(&stream)).await;
    assert!(e.contains("past.xls is not a readable .xls workbook: a sheet starts at byte 4294967295"), "{e}");
}

#[tokio::test]
async fn ods_rows_repeated_past_the_limit_are_refused_and_trailing_empty_repeats_are_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let row = |repeat: u64, cells: &str| {
        format!(r#"<table:table-row table:number-rows-repeated="{repeat}">{cells}</table:table-row>"#)
    };
    let header = r#"<table:table-row><table:table-cell office:value-type="string"><text:p>n</text:p></table:table-cell></table:table-row>"#;
    let value = r#"<table:table-cell office:value-type="float" office:value="7"><text:p>7</text:p></table:table-cell>"#;
    // 40 M repeated data rows (a 2 KB file).
    let big = ods(&format!(r#"<table:table table:name="T">{header}{}</table:table>"#, row(40_000_000, value)));
    let e = schema_error(&dir, "big.ods", &big).await;
    assert!(
        e.contains("big.ods: its sheets span at least 40000001 cells") && e.contains("MAX_SPREADSHEET_CELLS"),
        "{e}"
    );
    // 2 data rows, then the empty rows and columns LibreOffice writes to the sheet's end: read normally.
    let empty = r#"<table:table-cell table:number-columns-repeated="1024"/>"#;
    let fine = ods(&format!(
        r#"<table:table table:name="T">{header}{}{}</table:table>"#,
        row(2, value),
        row(1_048_573, empty)
    ));
    let path = dir.path().join("fine.ods");
    std::fs::write(&path, fine).unwrap();
    let source = from_config(&json!({"type": "excel", "path": path})).unwrap();
    let batches = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[tokio::test]
async fn the_real_fixtures_pass_the_guards() {
    for f in ["customers.xls", "customers.ods"] {
        let source = from_config(&json!({"type": "excel", "path": format!("{FIXTURES}/{f}")})).unwrap();
        let rows: usize =
            collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap().iter().map(|b| b.num_rows()).sum();
        assert!(rows >= 5, "{f}: {rows} rows");
    }
}
