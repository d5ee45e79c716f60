//! Encoders of results for front ends: Arrow IPC streams for bulk data and JSON rows for small results, shared
//! by the Node binding and a later HTTP service so neither writes its own.
//!
//! They encode what they are given: results that must not show personal data are masked where they are made
//! ([`Workspace::preview`](crate::Workspace::preview) masks `pii` attributes; members, memberships and dry runs
//! carry keys only), so an encoder never sees an unmasked `pii` value it could leak.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileReader, StreamReader};
use arrow::ipc::writer::StreamWriter;

use crate::error::{Error, Result};

/// The batches as one Arrow IPC stream, typed by `schema` even when there are no batches (or no rows).
pub fn to_ipc_stream(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// One batch as an Arrow IPC stream.
pub fn batch_to_ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>> {
    to_ipc_stream(&batch.schema(), std::slice::from_ref(batch))
}

/// Decodes an Arrow IPC stream or file (told apart by the file magic `ARROW1`) into its schema and batches.
pub fn from_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if bytes.starts_with(b"ARROW1") {
        let r = FileReader::try_new(Cursor::new(bytes), None)?;
        let schema = r.schema();
        Ok((schema, r.collect::<std::result::Result<Vec<_>, _>>()?))
    } else {
        let r = StreamReader::try_new(Cursor::new(bytes), None)?;
        let schema = r.schema();
        Ok((schema, r.collect::<std::result::Result<Vec<_>, _>>()?))
    }
}

/// The rows of the batches as the JSON text of an array of objects, columns in schema order, nulls explicit
/// (`[{"id": 1, "城市": null}]`); `[]` when there are none.
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<String> {
    let mut bytes = Vec::new();
    write_json_rows(&mut bytes, batches)?;
    String::from_utf8(bytes).map_err(|e| Error::InvalidArgument(format!("JSON rows are not UTF-8: {e}")))
}

/// [`to_json_rows`], appended to `out` (no copy of the text: a response body can be written in one buffer).
///
/// Rows whose columns are all 64-bit integers or strings (what a members page holds: the key, maybe `variant`)
/// are written directly, each value formatted once into `out`; any other rows go through Arrow's JSON writer.
pub fn write_json_rows(out: &mut Vec<u8>, batches: &[RecordBatch]) -> Result<()> {
    if batches.iter().all(|b| b.columns().iter().all(|c| flat_column(c).is_some())) {
        return write_flat_json_rows(out, batches);
    }
    let start = out.len();
    let mut w =
        arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::JsonArray>(out);
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    let out = w.into_inner();
    if out.len() == start {
        out.extend_from_slice(b"[]");
    }
    Ok(())
}

/// A column [`write_flat_json_rows`] writes itself.
enum Flat<'a> {
    Int64(&'a arrow::array::Int64Array),
    Utf8(&'a arrow::array::StringArray),
}

fn flat_column(c: &arrow::array::ArrayRef) -> Option<Flat<'_>> {
    use arrow::array::AsArray;
    match c.data_type() {
        arrow::datatypes::DataType::Int64 => Some(Flat::Int64(c.as_primitive())),
        arrow::datatypes::DataType::Utf8 => Some(Flat::Utf8(c.as_string())),
        _ => None,
    }
}

/// [`write_json_rows`] of batches whose columns are all [`Flat`]: the same text as Arrow's writer (`{"name":
/// value,…}` per row, nulls explicit), with each object's keys escaped once per batch.
fn write_flat_json_rows(out: &mut Vec<u8>, batches: &[RecordBatch]) -> Result<()> {
    use arrow::array::Array;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        out.extend_from_slice(b"[]");
        return Ok(());
    }
    out.reserve(2 + rows * 24);
    out.push(b'[');
    let mut first = true;
    let mut ints = IntBuffer::new();
    for b in batches {
        // `{"name":` for the first column, `,"name":` for the others.
        let mut keys = Vec::with_capacity(b.num_columns());
        for (i, f) in b.schema().fields().iter().enumerate() {
            let mut k = vec![if i == 0 { b'{' } else { b',' }];
            serde_json::to_writer(&mut k, f.name())?;
            k.push(b':');
            keys.push(k);
        }
        let cols: Vec<Flat<'_>> = b.columns().iter().filter_map(flat_column).collect();
        for row in 0..b.num_rows() {
            if !first {
                out.push(b',');
            }
            first = false;
            if cols.is_empty() {
                out.push(b'{');
            }
            for (key, col) in keys.iter().zip(&cols) {
                out.extend_from_slice(key);
                match col {
                    Flat::Int64(a) if a.is_valid(row) => out.extend_from_slice(ints.format(a.value(row)).as_bytes()),
                    Flat::Utf8(a) if a.is_valid(row) => serde_json::to_writer(&mut *out, a.value(row))?,
                    _ => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
    }
    out.push(b']');
    Ok(())
}

/// A buffer an `i64` is formatted into, in decimal, without allocating.
struct IntBuffer([u8; 20]);

impl IntBuffer {
    fn new() -> Self {
        IntBuffer([0; 20])
    }

    fn format(&mut self, v: i64) -> &str {
        let mut n = v.unsigned_abs();
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            i -= 1;
            self.0[i] = b'-';
        }
        // Only ASCII digits and a sign were written.
        std::str::from_utf8(&self.0[i..]).unwrap_or("0")
    }
}

/// The rows of the batches as CSV text (RFC 4180 quoting) with a header line of the column names, also when
/// there are no rows. Nested columns (lists, structs) are refused by the CSV writer with an error.
pub fn to_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if batches.iter().all(|b| b.num_rows() == 0) {
        let names: Vec<String> = schema.fields().iter().map(|f| csv_field(f.name())).collect();
        out.extend_from_slice(names.join(",").as_bytes());
        out.push(b'\n');
        return Ok(out);
    }
    let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
    for b in batches {
        w.write(b)?;
    }
    drop(w);
    Ok(out)
}

/// One CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            ("城市", Arc::new(StringArray::from(vec![Some("上海"), None])) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn ipc_round_trips_and_stays_typed_when_empty() {
        let b = batch();
        let (schema, got) = from_ipc(&batch_to_ipc_stream(&b).unwrap()).unwrap();
        assert_eq!(schema, b.schema());
        assert_eq!(got, vec![b.clone()]);
        let (schema, got) = from_ipc(&to_ipc_stream(&b.schema(), &[]).unwrap()).unwrap();
        assert_eq!(schema, b.schema());
        assert!(got.is_empty());
        let e = from_ipc(b"not arrow").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Engine, "{e}");
    }

    #[test]
    fn csv_has_a_header_also_without_rows() {
        let b = batch();
        let text = String::from_utf8(to_csv(&b.schema(), std::slice::from_ref(&b)).unwrap()).unwrap();
        assert_eq!(text, "id,城市\n1,上海\n2,\n");
        let text = String::from_utf8(to_csv(&b.schema(), &[]).unwrap()).unwrap();
        assert_eq!(text, "id,城市\n");
        assert_eq!(csv_field("a,\"b"), "\"a,\"\"b\"");
    }

    /// Rows of integer and string columns are written directly: the same JSON values as Arrow's writer, for
    /// extreme integers, escapes, unicode, nulls, several batches and a key-only page; other types still go
    /// through Arrow's writer.
    #[test]
    fn flat_json_rows_match_the_arrow_writer() {
        let a = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(-7), Some(0), None, Some(i64::MAX)])) as ArrayRef,
            ),
            (
                "va\"r",
                Arc::new(StringArray::from(vec![Some("a\"b\\c\n"), None, Some("上海"), Some(""), Some("\u{1}")]))
                    as ArrayRef,
            ),
        ])
        .unwrap();
        let keys = RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(vec![3, 1, 2])) as ArrayRef)]).unwrap();
        for batches in
            [vec![a.clone()], vec![a.clone(), a.slice(1, 2)], vec![keys.clone()], vec![keys.slice(0, 0), keys]]
        {
            let mut fast = Vec::new();
            write_json_rows(&mut fast, &batches).unwrap();
            let mut arrow_out = Vec::new();
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut arrow_out);
            for b in &batches {
                w.write(b).unwrap();
            }
            w.finish().unwrap();
            let fast: serde_json::Value = serde_json::from_slice(&fast).unwrap();
            let slow: serde_json::Value = serde_json::from_slice(&arrow_out).unwrap();
            assert_eq!(fast, slow);
        }
        assert_eq!(
            to_json_rows(std::slice::from_ref(&a.slice(0, 2))).unwrap(),
            r#"[{"id":-9223372036854775808,"va\"r":"a\"b\\c\n"},{"id":-7,"va\"r":null}]"#
        );
        // A float column is not flat: Arrow's writer encodes it.
        let f = RecordBatch::try_from_iter([("x", Arc::new(arrow::array::Float64Array::from(vec![1.5])) as ArrayRef)])
            .unwrap();
        assert_eq!(to_json_rows(&[f]).unwrap(), r#"[{"x":1.5}]"#);
    }

    #[test]
    fn json_rows_keep_names_order_and_nulls() {
        assert_eq!(to_json_rows(&[batch()]).unwrap(), r#"[{"id":1,"城市":"上海"},{"id":2,"城市":null}]"#);
        assert_eq!(to_json_rows(&[]).unwrap(), "[]");
        assert_eq!(to_json_rows(&[batch().slice(0, 0)]).unwrap(), "[]");
    }
}
