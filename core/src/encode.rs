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
pub fn write_json_rows(out: &mut Vec<u8>, batches: &[RecordBatch]) -> Result<()> {
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

    #[test]
    fn json_rows_keep_names_order_and_nulls() {
        assert_eq!(to_json_rows(&[batch()]).unwrap(), r#"[{"id":1,"城市":"上海"},{"id":2,"城市":null}]"#);
        assert_eq!(to_json_rows(&[]).unwrap(), "[]");
        assert_eq!(to_json_rows(&[batch().slice(0, 0)]).unwrap(), "[]");
    }
}
