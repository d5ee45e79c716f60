//! Spreadsheets (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine: a header row, typed columns,
//! merged header cells, batches of bounded size. See [`super::ExcelOptions`] for the typing rules.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use calamine::{Data, Dimensions, Range, Reader, Sheets};
use chrono::{NaiveDate, NaiveDateTime, Timelike};
use futures::StreamExt;

use segkit::{BatchStream, Error, Result};

use super::{ExcelOptions, MergedHeaders, SheetRef};

use segkit::limits::MAX_SPREADSHEET_CELLS;

/// What a cell holds, for typing a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Int,
    Float,
    Bool,
    Date,
    DateTime,
    Text,
}

fn unify(a: Kind, b: Kind) -> Kind {
    use Kind::*;
    match (a, b) {
        (x, y) if x == y => x,
        (Empty, x) | (x, Empty) => x,
        (Int, Float) | (Float, Int) => Float,
        (Date, DateTime) | (DateTime, Date) => DateTime,
        _ => Text,
    }
}

fn iso_datetime(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
}

/// A cell's date-time, if it is one (not a duration).
fn cell_datetime(c: &Data) -> Option<NaiveDateTime> {
    match c {
        Data::DateTime(d) if !d.is_duration() => d.as_datetime(),
        Data::DateTimeIso(s) => iso_datetime(s),
        _ => None,
    }
}

fn kind(c: &Data) -> Kind {
    match c {
        Data::Empty => Kind::Empty,
        Data::Int(_) => Kind::Int,
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Kind::Int,
        Data::Float(_) => Kind::Float,
        Data::Bool(_) => Kind::Bool,
        Data::String(s) if s.is_empty() => Kind::Empty,
        Data::DateTime(_) | Data::DateTimeIso(_) => match cell_datetime(c) {
            Some(t) if t.time().num_seconds_from_midnight() == 0 && t.nanosecond() == 0 => Kind::Date,
            Some(_) => Kind::DateTime,
            None => Kind::Text,
        },
        Data::String(_) | Data::DurationIso(_) | Data::Error(_) => Kind::Text,
    }
}

fn text(c: &Data) -> Option<String> {
    Some(match c {
        Data::Empty => return None,
        Data::String(s) if s.is_empty() => return None,
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::Error(e) => e.to_string(),
        Data::DurationIso(s) => s.clone(),
        Data::DateTime(_) | Data::DateTimeIso(_) => match (cell_datetime(c), kind(c)) {
            (Some(t), Kind::Date) => t.date().format("%Y-%m-%d").to_string(),
            (Some(t), _) => t.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            (None, _) => match c {
                Data::DateTimeIso(s) => s.clone(),
                Data::DateTime(d) => d.as_f64().to_string(),
                _ => unreachable!("a date-time cell"),
            },
        },
    })
}

fn arrow_type(k: Kind) -> ArrowType {
    match k {
        Kind::Int => ArrowType::Int64,
        Kind::Float => ArrowType::Float64,
        Kind::Bool => ArrowType::Boolean,
        Kind::Date => ArrowType::Date32,
        Kind::DateTime => ArrowType::Timestamp(TimeUnit::Microsecond, Some(segkit::model::UTC.into())),
        Kind::Empty | Kind::Text => ArrowType::Utf8,
    }
}

/// The opened sheet: its cells, the header names and the data rows' positions.
struct Sheet {
    range: Range<Data>,
    names: Vec<String>,
    /// Absolute column of each name.
    cols: Vec<u32>,
    /// Absolute rows holding data (non-empty rows after the header).
    rows: Vec<u32>,
}

/// The non-empty cells `next` yields, refused past [`MAX_SPREADSHEET_CELLS`] cells or a used area larger than that.
fn bounded_cells(
    short: &str,
    sheet: &str,
    mut next: impl FnMut() -> std::result::Result<Option<((u32, u32), Data)>, String>,
) -> std::result::Result<Vec<calamine::Cell<Data>>, String> {
    let mut cells = vec![];
    let (mut r0, mut r1, mut c0, mut c1) = (u32::MAX, 0u32, u32::MAX, 0u32);
    while let Some(((r, c), value)) = next()? {
        if matches!(value, Data::Empty) {
            continue;
        }
        (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c));
        cells.push(calamine::Cell::new((r, c), value));
        if cells.len() > MAX_SPREADSHEET_CELLS {
            return Err(format!(
                "{short}: sheet `{sheet}` has more than {MAX_SPREADSHEET_CELLS} cells (limit MAX_SPREADSHEET_CELLS)"
            ));
        }
    }
    let extent = if cells.is_empty() { 0 } else { u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1) };
    if extent > MAX_SPREADSHEET_CELLS as u64 {
        return Err(format!(
            "{short}: sheet `{sheet}` spans {} rows × {} columns, more than the {MAX_SPREADSHEET_CELLS} cells a sheet \
             may cover (limit MAX_SPREADSHEET_CELLS)",
            r1 - r0 + 1,
            c1 - c0 + 1
        ));
    }
    Ok(cells)
}

fn open(data: &[u8], o: &ExcelOptions, short: &str) -> std::result::Result<Sheet, String> {
    super::excel_guard::check(data, short)?;
    let cursor = Cursor::new(data);
    let mut wb: Sheets<Cursor<&[u8]>> = calamine::open_workbook_auto_from_rs(cursor)
        .map_err(|e| format!("{short} is not a readable spreadsheet (xlsx, xlsm, xlsb, xls or ods): {e}"))?;
    let names = wb.sheet_names();
    let sheet = match &o.sheet {
        SheetRef::Index(i) => names.get(*i).cloned().ok_or_else(|| {
            format!(
                "{short} has {} sheet(s), so there is no sheet at index {i} (sheets: {})",
                names.len(),
                names.join(", ")
            )
        })?,
        SheetRef::Name(n) => names
            .iter()
            .find(|s| *s == n)
            .cloned()
            .ok_or_else(|| format!("{short} has no sheet `{n}` (sheets: {})", names.join(", ")))?,
    };
    let range = match &mut wb {
        // xlsx / xlsb: cells are streamed and the sheet's extent checked before the dense grid is built, so a file
        // with one cell at A1 and one at XFD1048576 is refused instead of allocating 17 billion cells.
        Sheets::Xlsx(x) => {
            let read_err = |e: calamine::XlsxError| format!("{short}: cannot read sheet `{sheet}`: {e}");
            let mut reader = x.worksheet_cells_reader(&sheet).map_err(read_err)?;
            let cells = bounded_cells(short, &sheet, || {
                Ok(reader.next_cell().map_err(read_err)?.map(|c| (c.get_position(), c.get_value().clone().into())))
            })?;
            drop(reader);
            Range::from_sparse(cells)
        }
        Sheets::Xlsb(x) => {
            let read_err = |e: calamine::XlsbError| format!("{short}: cannot read sheet `{sheet}`: {e}");
            let mut reader = x.worksheet_cells_reader(&sheet).map_err(read_err)?;
            let cells = bounded_cells(short, &sheet, || {
                Ok(reader.next_cell().map_err(read_err)?.map(|c| (c.get_position(), c.get_value().clone().into())))
            })?;
            drop(reader);
            Range::from_sparse(cells)
        }
        // xls / ods: calamine parsed every sheet when it opened the file, after `excel_guard` bounded their size.
        _ => wb.worksheet_range(&sheet).map_err(|e| format!("{short}: cannot read sheet `{sheet}`: {e}"))?,
    };
    let merged: Vec<Dimensions> = match &mut wb {
        Sheets::Xlsx(x) => x.merge_cells_by_sheet_name(&sheet).unwrap_or_default(),
        Sheets::Xls(x) => x.merge_cells_by_sheet_name(&sheet).unwrap_or_default(),
        _ => vec![],
    };
    let Some((r0, c0)) = range.start() else {
        return Ok(Sheet { range, names: vec![], cols: vec![], rows: vec![] });
    };
    let (r1, c1) = range.end().expect("a non-empty range has an end");
    let cell = |r: u32, c: u32| -> &Data { range.get_value((r, c)).unwrap_or(&Data::Empty) };
    let header = o.header_row;
    let rows: Vec<u32> = (header.saturating_add(1).max(r0)..=r1)
        .filter(|&r| (c0..=c1).any(|c| !matches!(kind(cell(r, c)), Kind::Empty)))
        .collect();
    // Columns: up to the last one with a header or any data.
    let used = |c: u32| {
        !matches!(kind(cell(header, c)), Kind::Empty)
            || merged.iter().any(|m| m.contains(header, c))
            || rows.iter().any(|&r| !matches!(kind(cell(r, c)), Kind::Empty))
    };
    let last = (c0..=c1).rev().find(|&c| used(c));
    let cols: Vec<u32> = match last {
        Some(l) => (c0..=l).collect(),
        None => vec![],
    };
    // A merged region's value sits in its top-left cell.
    let merged_value = |r: u32, c: u32| -> Option<String> {
        match merged.iter().find(|m| m.contains(r, c)) {
            Some(m) => text(cell(m.start.0, m.start.1)),
            None => text(cell(r, c)),
        }
    };
    let raw_names: Vec<String> = cols
        .iter()
        .map(|&c| {
            let own = merged_value(header, c).unwrap_or_default().trim().to_string();
            match o.merged_headers {
                MergedHeaders::Repeat => own,
                MergedHeaders::Join if header == 0 => own,
                MergedHeaders::Join => {
                    let parent = merged_value(header - 1, c).unwrap_or_default().trim().to_string();
                    match (parent.is_empty(), own.is_empty()) {
                        (true, _) => own,
                        (false, true) => parent,
                        (false, false) if parent == own => own,
                        (false, false) => format!("{parent}_{own}"),
                    }
                }
            }
        })
        .collect();
    let names = super::csv::dedupe_names(raw_names);
    Ok(Sheet { range, names, cols, rows })
}

fn kinds(s: &Sheet) -> Vec<Kind> {
    s.cols
        .iter()
        .map(|&c| {
            s.rows.iter().fold(Kind::Empty, |k, &r| unify(k, kind(s.range.get_value((r, c)).unwrap_or(&Data::Empty))))
        })
        .collect()
}

fn schema_of(s: &Sheet) -> SchemaRef {
    Arc::new(Schema::new(
        s.names.iter().zip(kinds(s)).map(|(n, k)| Field::new(n, arrow_type(k), true)).collect::<Vec<_>>(),
    ))
}

/// The sheet's schema: the header row's names and the column types.
pub(crate) fn schema(data: &[u8], o: &ExcelOptions, short: &str) -> std::result::Result<SchemaRef, String> {
    guarded(short, || Ok(schema_of(&open(data, o, short)?)))
}

/// Runs `f`, turning a panic inside the spreadsheet reader (a malformed file can trip one) into an error.
fn guarded<T>(short: &str, f: impl FnOnce() -> std::result::Result<T, String>) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(format!("{short} is not a readable spreadsheet (the reader failed on it)")))
}

fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

fn days(t: NaiveDateTime) -> i32 {
    (t.date() - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}

fn build(s: &Sheet, schema: &SchemaRef, rows: &[u32]) -> Result<RecordBatch> {
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(s.cols.len());
    for (f, &c) in schema.fields().iter().zip(&s.cols) {
        let cells = rows.iter().map(|&r| s.range.get_value((r, c)).unwrap_or(&Data::Empty));
        let a: ArrayRef = match f.data_type() {
            ArrowType::Int64 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for v in cells {
                    b.append_option(match v {
                        Data::Int(i) => Some(*i),
                        Data::Float(x) => Some(*x as i64),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            ArrowType::Float64 => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for v in cells {
                    b.append_option(match v {
                        Data::Int(i) => Some(*i as f64),
                        Data::Float(x) => Some(*x),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            ArrowType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for v in cells {
                    b.append_option(if let Data::Bool(x) = v { Some(*x) } else { None });
                }
                Arc::new(b.finish())
            }
            ArrowType::Date32 => {
                let mut b = Date32Builder::with_capacity(rows.len());
                for v in cells {
                    b.append_option(cell_datetime(v).map(days));
                }
                Arc::new(b.finish())
            }
            ArrowType::Timestamp(_, _) => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for v in cells {
                    b.append_option(cell_datetime(v).map(micros));
                }
                Arc::new(b.finish().with_timezone(segkit::model::UTC))
            }
            _ => {
                let mut b = StringBuilder::new();
                for v in cells {
                    b.append_option(text(v));
                }
                Arc::new(b.finish())
            }
        };
        cols.push(a);
    }
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Streams the sheet in batches of `batch_size` rows; the work runs on a blocking thread and at most two
/// batches wait in the channel.
pub(crate) fn scan(
    data: bytes::Bytes,
    o: ExcelOptions,
    schema: SchemaRef,
    batch_size: usize,
    short: String,
    name: String,
) -> BatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    tokio::task::spawn_blocking(move || {
        let sheet = match guarded(&short, || open(&data, &o, &short)) {
            Ok(s) => s,
            Err(message) => {
                let _ = tx.blocking_send(Err(Error::Source { source_name: name, message, cause: None }));
                return;
            }
        };
        let own = schema_of(&sheet);
        if own != schema {
            let message = format!("{short} changed while it was read (its columns are no longer the same)");
            let _ = tx.blocking_send(Err(Error::Source { source_name: name, message, cause: None }));
            return;
        }
        for chunk in sheet.rows.chunks(batch_size.max(1)) {
            let batch = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(&sheet, &schema, chunk)))
                .unwrap_or_else(|_| {
                    Err(Error::Source {
                        source_name: name.clone(),
                        message: format!("{short}: the spreadsheet reader failed on its rows"),
                        cause: None,
                    })
                });
            if tx.blocking_send(batch).is_err() {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }).boxed()
}
