//! The ingest pipeline: plan → per-batch map/coerce/validate → write → commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, StringBuilder,
    UInt64Array,
};
use arrow::compute::{concat_batches, filter_record_batch, interleave_record_batch, take_record_batch};
use arrow::datatypes::{DataType as ArrowType, Field, Int32Type, Int64Type, Schema, SchemaRef, UInt64Type};
use arrow::row::{RowConverter, SortField};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use serde_json::Value;

use super::coerce::{coerce, nulls, RowError};
use super::sort::{sort_indices, ExternalSort};
use super::stages::FileSink;
use super::typed::TypedField;
use super::{IngestMode, IngestOptions, IngestReport, QuarantinedRow, Transform};
use crate::catalog::{DataFile, Snapshot};
use crate::error::{Error, Result};
use crate::memory::PeriodicRelease;
use crate::model::{Attribute, DataType, Entity, EntityKind};
use crate::source::{ScanRequest, Source, MALFORMED_COLUMN, MALFORMED_REASON_COLUMN};
use crate::sources::Tracker;
use crate::store::Store;

enum Input {
    Field(usize),
    Constant(Value),
    Missing,
}

struct ColumnPlan {
    attr: Attribute,
    input: Input,
    transforms: Vec<Transform>,
    separator: String,
}

/// The schema of quarantine files.
pub(crate) fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("row", ArrowType::Int64, false),
        Field::new("reason", ArrowType::Utf8, false),
        Field::new("record", ArrowType::Utf8, false),
    ]))
}

fn plan(entity: &Entity, source: &Schema, options: &IngestOptions) -> Result<(Vec<ColumnPlan>, Vec<String>)> {
    let here = |a: &str| format!("entity {}.attribute {a}", entity.name);
    for name in options.mapping.0.keys() {
        if entity.get(name).is_none() {
            entity.attr(name).map_err(|e| Error::definition(format!("mapping.{name}"), e.to_string()))?;
        }
    }
    let mut used: Vec<bool> =
        source.fields().iter().map(|f| f.name() == MALFORMED_COLUMN || f.name() == MALFORMED_REASON_COLUMN).collect();
    let mut cols = vec![];
    for attr in &entity.attributes {
        let fm = options.mapping.0.get(&attr.name).cloned().unwrap_or_default();
        let input = if let Some(c) = fm.constant.clone() {
            Input::Constant(c)
        } else {
            let wanted = fm.source.clone().unwrap_or_else(|| attr.name.clone());
            let idx = source.index_of(&wanted).ok().or_else(|| {
                (fm.source.is_none())
                    .then(|| source.fields().iter().position(|f| f.name().eq_ignore_ascii_case(&wanted)))
                    .flatten()
            });
            match idx {
                Some(i) => {
                    used[i] = true;
                    Input::Field(i)
                }
                None if fm.source.is_some() => {
                    let hint = crate::error::hint(&wanted, source.fields().iter().map(|f| f.name().as_str()));
                    return Err(Error::definition(
                        format!("mapping.{}", attr.name),
                        format!("the source has no field `{wanted}`{hint}"),
                    ));
                }
                None if !attr.nullable || Some(&attr.name) == entity.key.as_ref() => {
                    return Err(Error::definition(
                        here(&attr.name),
                        format!(
                            "required attribute has no source field (source fields: {})",
                            source.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
                None => Input::Missing,
            }
        };
        let separator = fm
            .transforms
            .iter()
            .rev()
            .find_map(|t| if let Transform::Split(s) = t { Some(s.clone()) } else { None })
            .unwrap_or_else(|| "|".to_string());
        cols.push(ColumnPlan { attr: attr.clone(), input, transforms: fm.transforms, separator });
    }
    let ignored = source
        .fields()
        .iter()
        .zip(used)
        .filter(|(f, u)| !u && f.name() != MALFORMED_COLUMN && f.name() != MALFORMED_REASON_COLUMN)
        .map(|(f, _)| f.name().clone())
        .collect();
    Ok((cols, ignored))
}

fn constant_array(v: &Value, len: usize) -> ArrayRef {
    let text = match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    Arc::new(StringArray::from(vec![text; len]))
}

fn apply_transform(a: ArrayRef, t: &Transform, attr: &Attribute, errors: &mut Vec<RowError>) -> Result<ArrayRef> {
    let text = || -> Result<StringArray> { Ok(arrow::compute::cast(&a, &ArrowType::Utf8)?.as_string::<i32>().clone()) };
    Ok(match t {
        Transform::Trim => Arc::new(text()?.iter().map(|v| v.map(str::trim)).collect::<StringArray>()),
        Transform::Lower => Arc::new(text()?.iter().map(|v| v.map(str::to_lowercase)).collect::<StringArray>()),
        Transform::Upper => Arc::new(text()?.iter().map(|v| v.map(str::to_uppercase)).collect::<StringArray>()),
        Transform::Split(_) => a,
        Transform::ParseTimestamp(fmt) => {
            let s = text()?;
            let v: arrow::array::TimestampMicrosecondArray = s
                .iter()
                .enumerate()
                .map(|(i, v)| match v.map(str::trim) {
                    None | Some("") => None,
                    Some(x) => {
                        let r = chrono::DateTime::parse_from_str(x, fmt)
                            .map(|t| t.timestamp_micros())
                            .or_else(|_| {
                                chrono::NaiveDateTime::parse_from_str(x, fmt).map(|t| t.and_utc().timestamp_micros())
                            })
                            .or_else(|_| {
                                chrono::NaiveDate::parse_from_str(x, fmt)
                                    .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros())
                            })
                            .ok();
                        if r.is_none() {
                            errors.push((
                                i,
                                format!(
                                    "attribute `{}`: {} does not match the timestamp format {fmt:?}",
                                    attr.name,
                                    super::coerce::show(&s, i, attr.pii)
                                ),
                            ));
                        }
                        r
                    }
                })
                .collect();
            Arc::new(v.with_timezone(crate::model::UTC))
        }
        Transform::Cast(to) => {
            let tmp = Attribute { data_type: to.clone(), ..attr.clone() };
            let (out, errs) = coerce(&a, &tmp, "|")?;
            errors.extend(errs);
            out
        }
    })
}

#[derive(Default)]
struct KeySeen {
    ints: HashMap<i64, u64>,
    strs: HashMap<String, u64>,
}

impl KeySeen {
    /// Records `key` first seen at `row`; returns the earlier row if it was seen before.
    fn insert_int(&mut self, k: i64, row: u64) -> Option<u64> {
        match self.ints.entry(k) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
                None
            }
        }
    }
    fn insert_str(&mut self, k: &str, row: u64) -> Option<u64> {
        if let Some(r) = self.strs.get(k) {
            return Some(*r);
        }
        self.strs.insert(k.to_string(), row);
        None
    }
    fn contains(&self, key: &dyn Array, i: usize) -> bool {
        match key.data_type() {
            ArrowType::Int64 => self.ints.contains_key(&key.as_primitive::<Int64Type>().value(i)),
            ArrowType::Int32 => self.ints.contains_key(&(key.as_primitive::<Int32Type>().value(i) as i64)),
            _ => self.strs.contains_key(key.as_string::<i32>().value(i)),
        }
    }
}

/// The hidden column of source row numbers that rides along through the sort of a profile's new rows.
const ROW_COLUMN: &str = "__segkit_row";

/// Finds the repeated keys of a profile ingest in its keys sorted by (key, source row): the first row of each key
/// is kept; each later one is a duplicate of it. Sorting (which spills) replaces a hash of every key seen.
#[derive(Default)]
struct RepeatedKeys {
    /// The last key of the previous batch (one element) and the source row of its first occurrence.
    last: Option<(ArrayRef, u64)>,
}

impl RepeatedKeys {
    /// For each row of sorted `keys` / `rows`: `Some(first row of its key)` when the key came before, else None.
    fn scan(&mut self, keys: &ArrayRef, rows: &UInt64Array) -> Result<Vec<Option<u64>>> {
        use arrow::compute::kernels::cmp::eq;
        let n = keys.len();
        let same_as_previous = if n > 1 { Some(eq(&keys.slice(1, n - 1), &keys.slice(0, n - 1))?) } else { None };
        let mut out = Vec::with_capacity(n);
        let mut first = self.last.as_ref().map(|l| l.1).unwrap_or(0);
        for i in 0..n {
            let repeated = match (i, &self.last, &same_as_previous) {
                (0, Some((k, _)), _) => {
                    let e = eq(&keys.slice(0, 1), k)?;
                    e.is_valid(0) && e.value(0)
                }
                (0, None, _) => false,
                (_, _, Some(e)) => e.is_valid(i - 1) && e.value(i - 1),
                (_, _, None) => false,
            };
            if repeated {
                out.push(Some(first));
            } else {
                first = rows.value(i);
                out.push(None);
            }
        }
        if n > 0 {
            self.last = Some((keys.slice(n - 1, 1), first));
        }
        Ok(out)
    }
}

/// The integer keys of a profile ingest with their source rows, in chunks of [`KEY_CHUNK`] pairs (16 bytes each,
/// no hash table, no reallocation of one huge vector): when the storage order puts indexed attributes before the
/// key, repeated keys are found by sorting these once the input has ended.
#[derive(Default)]
struct KeyRows {
    chunks: Vec<Vec<(i64, u64)>>,
}

/// Pairs per [`KeyRows`] chunk (16 MiB).
const KEY_CHUNK: usize = 1 << 20;

impl KeyRows {
    fn push(&mut self, key: &dyn Array, rows: &UInt64Array) {
        for i in 0..key.len() {
            let k = match key.data_type() {
                ArrowType::Int32 => key.as_primitive::<Int32Type>().value(i) as i64,
                _ => key.as_primitive::<Int64Type>().value(i),
            };
            if self.chunks.last().is_none_or(|c| c.len() == KEY_CHUNK) {
                self.chunks.push(Vec::with_capacity(64 * 1024));
            }
            self.chunks.last_mut().expect("pushed above").push((k, rows.value(i)));
        }
    }

    /// Row → first row of its key, for every row whose key came earlier (each chunk sorted, then merged).
    fn repeats(mut self) -> HashMap<u64, u64> {
        use std::cmp::Reverse;
        for c in &mut self.chunks {
            c.sort_unstable();
        }
        let mut heap: std::collections::BinaryHeap<Reverse<(i64, u64, usize, usize)>> = self
            .chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.first().map(|&(k, r)| Reverse((k, r, i, 0))))
            .collect();
        let mut out = HashMap::new();
        let mut last: Option<(i64, u64)> = None;
        while let Some(Reverse((k, r, i, j))) = heap.pop() {
            match last {
                Some((lk, first)) if lk == k => {
                    out.insert(r, first);
                }
                _ => last = Some((k, r)),
            }
            if let Some(&(k2, r2)) = self.chunks[i].get(j + 1) {
                heap.push(Reverse((k2, r2, i, j + 1)));
            }
        }
        out
    }
}

/// Rows dropped after the sort as duplicates of an earlier row's key, quarantined with the same reason a hash of
/// the keys seen would give: "duplicate key … (first seen at row N)".
struct Duplicates {
    key_pos: usize,
    row_pos: usize,
    pii: bool,
    dropped: u64,
    q_rows: Vec<i64>,
    q_reasons: Vec<String>,
    q_records: Vec<String>,
}

impl Duplicates {
    fn new(schema: &Schema, key: &str, pii: bool) -> Result<Self> {
        Ok(Duplicates {
            key_pos: schema.index_of(key)?,
            row_pos: schema.index_of(ROW_COLUMN)?,
            pii,
            dropped: 0,
            q_rows: vec![],
            q_reasons: vec![],
            q_records: vec![],
        })
    }

    /// `batch` without the rows `first_of` names (row index, source row → first row of its key) and without the
    /// row column, shaped as `out`; the dropped rows are quarantined.
    fn drop_rows(
        &mut self,
        batch: &RecordBatch,
        first_of: impl Fn(usize, u64) -> Option<u64>,
        out: &SchemaRef,
    ) -> Result<RecordBatch> {
        let keys = batch.column(self.key_pos);
        let rows = batch.column(self.row_pos).as_primitive::<UInt64Type>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut fmts = None;
        for i in 0..batch.num_rows() {
            let Some(first) = first_of(i, rows.value(i)) else {
                keep.push(true);
                continue;
            };
            keep.push(false);
            self.dropped += 1;
            let shown = super::coerce::show(keys.as_ref(), i, self.pii);
            self.q_rows.push(rows.value(i) as i64);
            self.q_reasons.push(format!("duplicate key {shown} (first seen at row {first})"));
            if fmts.is_none() {
                fmts = Some(
                    batch
                        .columns()
                        .iter()
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            let fmts = fmts.as_ref().expect("set above");
            let mut rec = serde_json::Map::new();
            for (j, f) in batch.schema().fields().iter().enumerate() {
                if j == self.row_pos {
                    continue;
                }
                let v =
                    if batch.column(j).is_null(i) { Value::Null } else { Value::String(fmts[j].value(i).to_string()) };
                rec.insert(f.name().clone(), v);
            }
            self.q_records.push(Value::Object(rec).to_string());
        }
        let kept = if keep.iter().all(|k| *k) {
            batch.clone()
        } else {
            filter_record_batch(batch, &BooleanArray::from(keep))?
        };
        let mut columns = kept.columns().to_vec();
        columns.remove(self.row_pos);
        Ok(RecordBatch::try_new(out.clone(), columns)?)
    }
}

struct Processor<'a> {
    entity: &'a Entity,
    schema: SchemaRef,
    cols: Vec<ColumnPlan>,
    key_pos: Option<usize>,
    malformed_pos: Option<usize>,
    malformed_reason_pos: Option<usize>,
    dedupe: bool,
    seen: KeySeen,
    /// Append the 1-based source row number as [`ROW_COLUMN`] (the key's duplicates are then found by the
    /// sort, see [`RepeatedKeys`], instead of `seen`).
    with_rows: bool,
    next_row: u64,
    rows_read: u64,
    q_rows: Vec<i64>,
    q_reasons: Vec<String>,
    q_records: Vec<String>,
    /// Why each row of the batch being processed is bad (`None`: good); kept for the next batch.
    reasons: Vec<Option<String>>,
}

impl Processor<'_> {
    /// Coerces and validates `batch`: its good rows, the bad ones quarantined.
    fn process(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        // The per-row reasons (24 bytes a row, 1.5 MiB for a batch of 64 Ki rows) live in one buffer kept
        // across batches: a fresh one is above glibc's mmap threshold (`memory::tune_allocator`), so it was
        // mapped, faulted in and unmapped batch by batch (11 % of an events ingest's page faults).
        let mut reasons = std::mem::take(&mut self.reasons);
        reasons.clear();
        reasons.resize(batch.num_rows(), None);
        let processed = self.process_with(batch, &mut reasons);
        reasons.clear();
        self.reasons = reasons;
        processed
    }

    fn process_with(&mut self, batch: &RecordBatch, reasons: &mut [Option<String>]) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let first_row = self.next_row;
        self.next_row += n as u64;
        self.rows_read += n as u64;
        let note = |errs: Vec<RowError>, reasons: &mut [Option<String>]| {
            for (i, r) in errs {
                if reasons[i].is_none() {
                    reasons[i] = Some(r);
                }
            }
        };
        if let Some(m) = self.malformed_pos {
            let raw = batch.column(m);
            let why = self.malformed_reason_pos.and_then(|p| batch.column(p).as_string_opt::<i32>().cloned());
            for (i, r) in reasons.iter_mut().enumerate() {
                if raw.is_valid(i) {
                    *r = Some(match why.as_ref().filter(|w| w.is_valid(i)) {
                        Some(w) => format!("malformed record: {}", w.value(i)),
                        None => "malformed record (the source could not parse it)".to_string(),
                    });
                }
            }
        }
        let mut columns = Vec::with_capacity(self.cols.len());
        for c in &self.cols {
            let raw = match &c.input {
                Input::Field(i) => batch.column(*i).clone(),
                Input::Constant(v) => constant_array(v, n),
                Input::Missing => nulls(&c.attr, n),
            };
            let mut errs = vec![];
            let mut a = raw;
            for t in &c.transforms {
                a = apply_transform(a, t, &c.attr, &mut errs)?;
            }
            let (a, e) = coerce(&a, &c.attr, &c.separator)?;
            errs.extend(e);
            note(errs, reasons);
            columns.push(a);
        }
        // Schema checks: required attributes and the key.
        for (c, a) in self.cols.iter().zip(&columns) {
            let is_key = Some(&c.attr.name) == self.entity.key.as_ref();
            if (is_key || !c.attr.nullable) && a.null_count() > 0 {
                for (i, r) in reasons.iter_mut().enumerate() {
                    if a.is_null(i) && r.is_none() {
                        *r = Some(if is_key {
                            format!("missing key `{}`", c.attr.name)
                        } else {
                            format!("attribute `{}` is required but missing", c.attr.name)
                        });
                    }
                }
            }
        }
        if let (true, Some(k)) = (self.dedupe, self.key_pos) {
            let key = &columns[k];
            let pii = self.cols[k].attr.pii;
            for (i, reason) in reasons.iter_mut().enumerate() {
                if reason.is_some() {
                    continue;
                }
                let row = first_row + i as u64 + 1;
                let earlier = match key.data_type() {
                    ArrowType::Int64 => self.seen.insert_int(key.as_primitive::<Int64Type>().value(i), row),
                    ArrowType::Int32 => self.seen.insert_int(key.as_primitive::<Int32Type>().value(i) as i64, row),
                    _ => self.seen.insert_str(key.as_string::<i32>().value(i), row),
                };
                if let Some(e) = earlier {
                    let shown = super::coerce::show(key.as_ref(), i, pii);
                    *reason = Some(format!("duplicate key {shown} (first seen at row {e})"));
                }
            }
        }
        if self.with_rows {
            columns.push(Arc::new(UInt64Array::from_iter_values((1..=n as u64).map(|i| first_row + i))));
        }
        let good = BooleanArray::from(reasons.iter().map(Option::is_none).collect::<Vec<_>>());
        if good.false_count() > 0 {
            let fmts = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()))
                .collect::<Result<Vec<_>, _>>()?;
            let schema = batch.schema();
            for (i, r) in reasons.iter().enumerate() {
                if let Some(r) = r {
                    let mut rec = serde_json::Map::new();
                    for (j, f) in schema.fields().iter().enumerate() {
                        let v = if batch.column(j).is_null(i) {
                            Value::Null
                        } else {
                            Value::String(fmts[j].value(i).to_string())
                        };
                        rec.insert(f.name().clone(), v);
                    }
                    self.q_rows.push((first_row + i as u64 + 1) as i64);
                    self.q_reasons.push(r.clone());
                    self.q_records.push(Value::Object(rec).to_string());
                }
            }
        }
        if good.false_count() == 0 {
            return Ok(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        // Bad rows may hold nulls in non-nullable columns: filter first, then apply the strict schema.
        let loose = Arc::new(Schema::new(
            self.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<_>>(),
        ));
        let kept = filter_record_batch(&RecordBatch::try_new(loose, columns)?, &good)?;
        Ok(RecordBatch::try_new(self.schema.clone(), kept.columns().to_vec())?)
    }

    /// Adds rows quarantined after the sort (repeated keys), keeping the quarantine in source row order.
    fn add_quarantined(&mut self, more: Duplicates) {
        if more.q_rows.is_empty() {
            return;
        }
        self.q_rows.extend(more.q_rows);
        self.q_reasons.extend(more.q_reasons);
        self.q_records.extend(more.q_records);
        let mut order: Vec<usize> = (0..self.q_rows.len()).collect();
        order.sort_by_key(|&i| self.q_rows[i]);
        let take = |v: &mut Vec<String>| -> Vec<String> {
            let mut old: Vec<Option<String>> = std::mem::take(v).into_iter().map(Some).collect();
            order.iter().map(|&i| old[i].take().unwrap_or_default()).collect()
        };
        self.q_reasons = take(&mut self.q_reasons);
        self.q_records = take(&mut self.q_records);
        self.q_rows = order.iter().map(|&i| self.q_rows[i]).collect();
    }

    fn quarantine_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.q_rows.is_empty() {
            return Ok(None);
        }
        let rows = Int64Array::from(std::mem::take(&mut self.q_rows));
        let reasons = StringArray::from(std::mem::take(&mut self.q_reasons));
        let mut rec = StringBuilder::new();
        for r in std::mem::take(&mut self.q_records) {
            rec.append_value(r);
        }
        Ok(Some(RecordBatch::try_new(
            quarantine_schema(),
            vec![Arc::new(rows), Arc::new(reasons), Arc::new(rec.finish())],
        )?))
    }
}

/// Makes `batch` match `schema`: columns by name, missing (added later) attributes as nulls.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(arrow::compute::cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// Sorts rows by `columns` (ascending, nulls last), the last one being the key.
pub(crate) fn sort_by(batch: &RecordBatch, columns: &[String]) -> Result<RecordBatch> {
    let values: Vec<ArrayRef> = columns.iter().map(|c| batch.column_by_name(c).expect("sort column").clone()).collect();
    Ok(take_record_batch(batch, &sort_indices(&values)?)?)
}

/// `batch` as compact copies of at most about `max_bytes` each (itself when it is small enough).
fn pieces(batch: RecordBatch, max_bytes: usize) -> Result<Vec<RecordBatch>> {
    let (size, rows) = (batch.get_array_memory_size(), batch.num_rows());
    if size <= max_bytes || rows <= 1 {
        return Ok(vec![batch]);
    }
    let per = rows.div_ceil(size.div_ceil(max_bytes.max(1))).max(1);
    (0..rows)
        .step_by(per)
        .map(|start| {
            let end = (start + per).min(rows);
            let idx = arrow::array::UInt32Array::from_iter_values(start as u32..end as u32);
            Ok(take_record_batch(&batch, &idx)?)
        })
        .collect()
}

/// Takes the first `n` rows of `batches` (zero-copy slices), leaving the rest.
fn split_rows(batches: &mut Vec<RecordBatch>, n: usize) -> Vec<RecordBatch> {
    let mut out = vec![];
    let mut need = n;
    while need > 0 && !batches.is_empty() {
        let b = batches.remove(0);
        if b.num_rows() <= need {
            need -= b.num_rows();
            out.push(b);
        } else {
            out.push(b.slice(0, need));
            batches.insert(0, b.slice(need, b.num_rows() - need));
            need = 0;
        }
    }
    out
}

/// The rows of some batches in sorted order (see [`sorted_rows`]).
struct SortedRows {
    /// The rows' positions in the batches taken as one, in sorted order.
    order: arrow::array::UInt32Array,
    /// Each batch's first position.
    starts: Vec<usize>,
}

impl SortedRows {
    /// Row groups of the sorted rows.
    fn groups(&self) -> usize {
        self.order.len().div_ceil(crate::store::ROW_GROUP_ROWS)
    }

    /// The rows of row group `group` as (batch, row) positions, into `picks` (one buffer reused group after
    /// group: a file's 1 Mi picks at once were 16 MiB of fresh pages per event file).
    fn picks(&self, group: usize, picks: &mut Vec<(usize, usize)>) {
        let from = group * crate::store::ROW_GROUP_ROWS;
        let to = (from + crate::store::ROW_GROUP_ROWS).min(self.order.len());
        picks.clear();
        // Consecutive rows mostly come from the same batch: its bounds are checked before a search.
        let (mut b, mut start, mut end) = (0, 0, 0);
        picks.extend(self.order.values()[from..to].iter().map(|&g| {
            let g = g as usize;
            if g < start || g >= end {
                b = self.starts.partition_point(|&s| s <= g) - 1;
                start = self.starts[b];
                end = self.starts.get(b + 1).copied().unwrap_or(usize::MAX);
            }
            (b, g - start)
        }));
    }
}

/// The rows `picks` ((batch, row) positions) of `batches`, as Arrow's `interleave_record_batch`, but a
/// primitive or text column is gathered run by run of picks from one batch (see [`gather_primitive`],
/// [`gather_text`]).
fn gather_rows(batches: &[&RecordBatch], picks: &[(usize, usize)]) -> Result<RecordBatch> {
    let Some(first) = batches.first().filter(|_| !picks.is_empty()) else {
        return Ok(interleave_record_batch(batches, picks)?);
    };
    let schema = first.schema();
    let columns = (0..schema.fields().len())
        .map(|i| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            match gather_column(&arrays, picks) {
                Some(a) => Ok(a),
                None => Ok(arrow::compute::interleave(&arrays, picks)?),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(picks.len()));
    Ok(RecordBatch::try_new_with_options(schema, columns, &options)?)
}

/// [`gather_primitive`] or [`gather_text`] for the primitive and text types of stored columns; `None` for
/// other types.
fn gather_column(arrays: &[&dyn Array], picks: &[(usize, usize)]) -> Option<ArrayRef> {
    use arrow::datatypes::{Date32Type, Float64Type, TimeUnit, TimestampMicrosecondType, UInt32Type};
    match arrays.first()?.data_type() {
        ArrowType::Int64 => gather_primitive::<Int64Type>(arrays, picks),
        ArrowType::Int32 => gather_primitive::<Int32Type>(arrays, picks),
        ArrowType::UInt64 => gather_primitive::<UInt64Type>(arrays, picks),
        ArrowType::UInt32 => gather_primitive::<UInt32Type>(arrays, picks),
        ArrowType::Float64 => gather_primitive::<Float64Type>(arrays, picks),
        ArrowType::Date32 => gather_primitive::<Date32Type>(arrays, picks),
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => gather_primitive::<TimestampMicrosecondType>(arrays, picks),
        ArrowType::Utf8 => gather_text(arrays, picks),
        _ => None,
    }
}

/// The texts at `picks` of text arrays (`None` if one is not `Utf8`, or the texts are too long for `Utf8`), with
/// their validity when some array has nulls: the offsets first, then each text copied into a buffer of the total
/// length. A text of up to 16 bytes is copied as 16 bytes (a fixed-size copy, where Arrow's `interleave` calls
/// `memmove` per value; the excess is written over by the next text, or cut off) when its array has 16 bytes
/// from its start.
fn gather_text(arrays: &[&dyn Array], picks: &[(usize, usize)]) -> Option<ArrayRef> {
    const WIDE: usize = 16;
    let arrays: Vec<&StringArray> = arrays.iter().map(|a| a.as_string_opt::<i32>()).collect::<Option<_>>()?;
    let mut offsets: Vec<i32> = Vec::with_capacity(picks.len() + 1);
    offsets.push(0);
    let mut total = 0usize;
    for run in picks.chunk_by(|x, y| x.0 == y.0) {
        let o = arrays.get(run[0].0)?.value_offsets();
        for &(_, row) in run {
            total += (o[row + 1] - o[row]) as usize;
            offsets.push(i32::try_from(total).ok()?);
        }
    }
    let mut bytes = vec![0u8; total + WIDE];
    let mut valid =
        arrays.iter().any(|a| a.null_count() > 0).then(|| arrow::array::BooleanBufferBuilder::new(picks.len()));
    let mut at = 0;
    for run in picks.chunk_by(|x, y| x.0 == y.0) {
        let array = arrays.get(run[0].0)?;
        let (o, values) = (array.value_offsets(), array.value_data());
        for &(_, row) in run {
            let (start, end) = (o[row] as usize, o[row + 1] as usize);
            let len = end - start;
            if len <= WIDE && start + WIDE <= values.len() {
                bytes[at..at + WIDE].copy_from_slice(&values[start..start + WIDE]);
            } else {
                bytes[at..at + len].copy_from_slice(&values[start..end]);
            }
            at += len;
        }
        if let Some(valid) = valid.as_mut() {
            append_validity(valid, array.nulls(), run);
        }
    }
    bytes.truncate(total);
    let nulls = valid.map(|mut v| arrow::buffer::NullBuffer::new(v.finish()));
    let array = StringArray::try_new(arrow::buffer::OffsetBuffer::new(offsets.into()), bytes.into(), nulls).ok()?;
    Some(Arc::new(array))
}

/// Appends to `valid` whether each row of `run` (picks from one array) is valid under that array's `nulls`.
fn append_validity(
    valid: &mut arrow::array::BooleanBufferBuilder,
    nulls: Option<&arrow::buffer::NullBuffer>,
    run: &[(usize, usize)],
) {
    match nulls {
        Some(nulls) => run.iter().for_each(|&(_, row)| valid.append(nulls.is_valid(row))),
        None => valid.append_n(run.len(), true),
    }
}

/// The values at `picks` of primitive arrays of one type (`None` if one is not of type `T`), with the validity
/// of those values when some array has nulls. Each run of picks from one array reads from that array's value
/// slice: Arrow's `interleave` looks up the array of every pick.
fn gather_primitive<T: arrow::datatypes::ArrowPrimitiveType>(
    arrays: &[&dyn Array],
    picks: &[(usize, usize)],
) -> Option<ArrayRef> {
    let arrays: Vec<&arrow::array::PrimitiveArray<T>> =
        arrays.iter().map(|a| a.as_primitive_opt::<T>()).collect::<Option<_>>()?;
    let data_type = arrays.first()?.data_type().clone();
    let mut values: Vec<T::Native> = Vec::with_capacity(picks.len());
    let mut valid =
        arrays.iter().any(|a| a.null_count() > 0).then(|| arrow::array::BooleanBufferBuilder::new(picks.len()));
    for run in picks.chunk_by(|x, y| x.0 == y.0) {
        let array = arrays.get(run[0].0)?;
        let source = array.values();
        values.extend(run.iter().map(|&(_, row)| source[row]));
        if let Some(valid) = valid.as_mut() {
            append_validity(valid, array.nulls(), run);
        }
    }
    let nulls = valid.map(|mut v| arrow::buffer::NullBuffer::new(v.finish()));
    Some(Arc::new(arrow::array::PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(data_type)))
}

/// The rows of `batches` in the order of `columns` (ascending, nulls last, as [`sort_by`]): only the sort columns
/// are concatenated, and the rows are then gathered from the batches directly.
fn sorted_rows(batches: &[RecordBatch], columns: &[String]) -> Result<SortedRows> {
    let sort_columns = columns
        .iter()
        .map(|c| {
            let parts: Vec<&dyn Array> =
                batches.iter().map(|b| b.column_by_name(c).expect("sort column").as_ref()).collect();
            Ok(arrow::compute::concat(&parts)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let order = sort_indices(&sort_columns)?;
    drop(sort_columns);
    let mut starts = Vec::with_capacity(batches.len());
    let mut total = 0usize;
    for b in batches {
        starts.push(total);
        total += b.num_rows();
    }
    Ok(SortedRows { order, starts })
}

/// The sorted rows of `batches` one row group at a time, each handed to `emit` (which returns `false` to stop).
fn sorted_row_groups(
    batches: &[RecordBatch],
    columns: &[String],
    mut emit: impl FnMut(RecordBatch) -> bool,
) -> Result<()> {
    let sorted = sorted_rows(batches, columns)?;
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut picks = vec![];
    for group in 0..sorted.groups() {
        sorted.picks(group, &mut picks);
        if !emit(gather_rows(&refs, &picks)?) {
            break;
        }
    }
    Ok(())
}

/// Row groups of one event file ready ahead of the writer.
const SORTED_GROUPS_AHEAD: usize = 2;

/// One event file's rows sorted and gathered into row groups on the blocking pool ([`sorted_row_groups`]),
/// handed back through a bounded channel, so the next file's rows are decoded and coerced meanwhile. Without a
/// tokio runtime the work is done when the groups are written.
enum SortJob {
    Background { rx: tokio::sync::mpsc::Receiver<RecordBatch>, task: tokio::task::JoinHandle<Result<()>> },
    Inline { batches: Vec<RecordBatch>, columns: Vec<String> },
}

impl SortJob {
    fn start(batches: Vec<RecordBatch>, columns: &[String]) -> SortJob {
        let columns = columns.to_vec();
        if tokio::runtime::Handle::try_current().is_err() {
            return SortJob::Inline { batches, columns };
        }
        let (tx, rx) = tokio::sync::mpsc::channel(SORTED_GROUPS_AHEAD);
        // A closed channel (the ingest stopped) ends the work.
        let task = tokio::task::spawn_blocking(move || {
            sorted_row_groups(&batches, &columns, |group| tx.blocking_send(group).is_ok())
        });
        SortJob::Background { rx, task }
    }

    /// Writes the row groups that are ready, without waiting.
    async fn write_ready(&mut self, writer: &mut FileSink) -> Result<()> {
        if let SortJob::Background { rx, .. } = self {
            while let Ok(group) = rx.try_recv() {
                writer.write(&group).await?;
            }
        }
        Ok(())
    }

    /// Writes all the file's row groups.
    async fn finish(self, writer: &mut FileSink) -> Result<()> {
        match self {
            SortJob::Background { mut rx, task } => {
                while let Some(group) = rx.recv().await {
                    writer.write(&group).await?;
                }
                task.await.map_err(|e| Error::Io(std::io::Error::other(format!("the event sort failed: {e}"))))?
            }
            SortJob::Inline { batches, columns } => write_sorted(writer, &batches, &columns).await,
        }
    }
}

/// Writes the rows of `batches` sorted by `columns` on the caller's task, one row group at a time.
async fn write_sorted(writer: &mut FileSink, batches: &[RecordBatch], columns: &[String]) -> Result<()> {
    let sorted = sorted_rows(batches, columns)?;
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut picks = vec![];
    for group in 0..sorted.groups() {
        sorted.picks(group, &mut picks);
        writer.write(&gather_rows(&refs, &picks)?).await?;
    }
    Ok(())
}

/// Writes the rows of `current` whose key is not in `replaced`, merged in storage order with `incoming` (already
/// sorted), one old batch at a time; returns how many old rows were replaced. The current files are sorted in
/// storage order one after the other (each ingest writes them so); were they not, every row would still be
/// written once, only less well sorted.
async fn merge_into(
    writer: &mut FileSink,
    store: &Store,
    current: &Snapshot,
    incoming: &RecordBatch,
    order: &[String],
    entity: &Entity,
    replaced: &KeySeen,
) -> Result<u64> {
    let schema = incoming.schema();
    let key = entity.key.as_deref().expect("profiles have keys");
    let sort_columns = |b: &RecordBatch| -> Vec<ArrayRef> {
        order.iter().map(|c| b.column_by_name(c).expect("sort column").clone()).collect()
    };
    let converter = RowConverter::new(
        sort_columns(incoming)
            .iter()
            .map(|c| {
                SortField::new_with_options(
                    c.data_type().clone(),
                    arrow::compute::SortOptions { descending: false, nulls_first: false },
                )
            })
            .collect(),
    )?;
    let new_rows = converter.convert_columns(&sort_columns(incoming))?;
    let (mut next, mut updated) = (0usize, 0u64);
    for f in &current.files {
        let mut s = store.read(&f.path).await?;
        while let Some(b) = s.next().await {
            let b = conform(&b?, &schema)?;
            let keys = b.column_by_name(key).expect("key column").clone();
            let keep =
                BooleanArray::from((0..b.num_rows()).map(|i| !replaced.contains(keys.as_ref(), i)).collect::<Vec<_>>());
            updated += keep.false_count() as u64;
            let old = filter_record_batch(&b, &keep)?;
            if old.num_rows() == 0 {
                continue;
            }
            let old_rows = converter.convert_columns(&sort_columns(&old))?;
            let mut picks = Vec::with_capacity(old.num_rows());
            for j in 0..old.num_rows() {
                while next < incoming.num_rows() && new_rows.row(next) < old_rows.row(j) {
                    picks.push((0, next));
                    next += 1;
                }
                picks.push((1, j));
            }
            writer.write(&interleave_record_batch(&[incoming, &old], &picks)?).await?;
        }
    }
    if next < incoming.num_rows() {
        writer.write(&incoming.slice(next, incoming.num_rows() - next)).await?;
    }
    Ok(updated)
}

/// The storage order inside a file: the entity's `indexed` attributes (so row groups and pages prune on them),
/// then the key of a profile or the timestamp of an event. Event files follow each other in arrival (time)
/// order, so an event file covers a time range and each of its row groups one value range of the indexed
/// attributes.
pub(crate) fn storage_order(entity: &Entity) -> Vec<String> {
    let last = match entity.kind {
        EntityKind::Profile => entity.key.clone().expect("profiles have keys"),
        EntityKind::Event => entity.timestamp.clone().expect("events have a timestamp"),
    };
    let mut cols: Vec<String> = entity
        .attributes
        .iter()
        .filter(|a| {
            a.indexed
                && a.name != last
                && !matches!(a.data_type, crate::model::DataType::List(_) | crate::model::DataType::Json)
        })
        .map(|a| a.name.clone())
        .collect();
    cols.push(last);
    cols
}

/// How a first ingest (or full refresh) of a profile finds repeated keys after its sort: `(by_key, pairs)` — in
/// the sorted rows themselves when the storage order is the key alone, or by sorting the (key, source row) pairs
/// of an integer key; neither: by a hash of the keys seen as the rows arrive.
fn sort_dedupe(entity: &Entity) -> (bool, bool) {
    let Some(key) = entity.key.as_ref().filter(|_| entity.kind == EntityKind::Profile) else { return (false, false) };
    let by_key = storage_order(entity).len() == 1;
    let int_key = entity.get(key).is_some_and(|a| matches!(a.data_type, DataType::Int64 | DataType::Int32));
    (by_key, !by_key && int_key)
}

/// The source fields an ingest can take already typed (see [`super::typed`]): every mapped field, when each one
/// maps to one attribute of a readable type without transforms, no attribute is a constant and the source
/// delivers the field as text; else none.
fn typed_fields(cols: &[ColumnPlan], entity: &Entity, source: &Schema) -> Vec<TypedField> {
    let mut out: Vec<TypedField> = vec![];
    for c in cols {
        match &c.input {
            Input::Missing => {}
            Input::Constant(_) => return vec![],
            Input::Field(i) => {
                let field = source.field(*i);
                if !c.transforms.is_empty()
                    || !TypedField::readable(&c.attr.data_type)
                    || field.data_type() != &ArrowType::Utf8
                    || out.iter().any(|f| &f.name == field.name())
                {
                    return vec![];
                }
                out.push(TypedField {
                    name: field.name().clone(),
                    data_type: c.attr.data_type.clone(),
                    required: !c.attr.nullable || entity.key.as_ref() == Some(&c.attr.name),
                });
            }
        }
    }
    out
}

/// What the pipeline hands back to the workspace for committing.
pub(crate) struct Staged {
    pub files: Vec<DataFile>,
    pub written: Vec<DataFile>,
    pub quarantine_file: Option<String>,
    pub report: IngestReport,
}

/// Where an ingest writes: the store, the entity, its current snapshot, and the memory its sort may hold.
pub(crate) struct Target<'a> {
    pub store: &'a Store,
    pub entity: &'a Entity,
    pub current: &'a Snapshot,
    pub memory: usize,
}

/// Runs an ingest up to (not including) the catalog commit.
pub(crate) async fn stage(
    target: &Target<'_>,
    source: &dyn Source,
    options: &IngestOptions,
    id: &str,
    request: &ScanRequest,
    tracker: &mut Tracker<'_>,
) -> Result<Staged> {
    let Target { store, entity, current, memory } = *target;
    let started = Instant::now();
    let mode = match (entity.kind, options.mode) {
        (EntityKind::Profile, None) => IngestMode::Upsert,
        (EntityKind::Event, None) => IngestMode::Append,
        (EntityKind::Profile, Some(IngestMode::Append)) => {
            return Err(Error::ingest(&entity.name, "profiles ingest with mode upsert or full_refresh, not append"))
        }
        (EntityKind::Event, Some(IngestMode::Upsert)) => {
            return Err(Error::ingest(&entity.name, "events are append-only: use mode append or full_refresh"))
        }
        (_, Some(m)) => m,
    };
    let source_schema = source.schema().await?;
    let (cols, ignored) = plan(entity, &source_schema, options)?;
    let schema = entity.schema();
    let key_pos = entity.key.as_ref().and_then(|k| entity.attributes.iter().position(|a| &a.name == k));
    let mut proc = Processor {
        entity,
        schema: schema.clone(),
        cols,
        key_pos,
        malformed_pos: source_schema.index_of(MALFORMED_COLUMN).ok(),
        malformed_reason_pos: source_schema.index_of(MALFORMED_REASON_COLUMN).ok(),
        dedupe: entity.kind == EntityKind::Profile,
        seen: KeySeen::default(),
        with_rows: false,
        next_row: 0,
        rows_read: 0,
        q_rows: vec![],
        q_reasons: vec![],
        q_records: vec![],
        reasons: vec![],
    };
    let dir = format!("data/{}", crate::store::path_segment(&entity.name));
    // Whether repeated keys are found by the sort (after the rows are coerced) or as the rows arrive.
    let profile_merge = entity.kind == EntityKind::Profile && mode == IngestMode::Upsert && !current.files.is_empty();
    let (by_key, pairs) = sort_dedupe(entity);
    let keys_as_rows_arrive = entity.kind == EntityKind::Profile && (profile_merge || !(by_key || pairs));
    let typed = if keys_as_rows_arrive { vec![] } else { typed_fields(&proc.cols, entity, &source_schema) };
    let request = request.clone().with_typed(typed);
    let scanned = tracker.or_cancel(source.scan(&request)).await.ok_or_else(cancelled)?;
    let mut stream = super::stages::prefetch(scanned.map_err(|e| wrap_source(e, source))?);
    let written: Vec<DataFile>;
    let inserted: u64;
    let mut updated = 0u64;
    let files: Vec<DataFile>;
    let rows_written: u64;
    if entity.kind == EntityKind::Event {
        let order = storage_order(entity);
        let sorts = order.len() > 1;
        let mut writer = FileSink::new(store.writer(&dir, schema.clone(), Some(&order.join(","))));
        let res: Result<u64> = async {
            // With indexed attributes, each file's rows are buffered and sorted before they are written.
            let mut rows = 0;
            let mut pending: Vec<RecordBatch> = vec![];
            let mut pending_rows = 0;
            let mut release = PeriodicRelease::default();
            // The previous file's rows, being sorted while this one's are read (at most one file in the sort).
            let mut sorting: Option<SortJob> = None;
            while let Some(b) = next_batch(&mut stream, tracker).await? {
                let b = b.map_err(|e| wrap_source(e, source))?;
                let good = proc.process(&b)?;
                tracker.batch(b.num_rows(), b.get_array_memory_size(), b.num_rows() - good.num_rows());
                rows += good.num_rows() as u64;
                release.rows(b.num_rows());
                if !sorts {
                    writer.write(&good).await?;
                    continue;
                }
                pending_rows += good.num_rows();
                pending.push(good);
                if let Some(job) = sorting.as_mut() {
                    job.write_ready(&mut writer).await?;
                }
                while pending_rows >= crate::store::FILE_ROWS {
                    // One file's rows, sorted straight from the received batches (no concatenated copy).
                    let chunk = split_rows(&mut pending, crate::store::FILE_ROWS);
                    pending_rows -= crate::store::FILE_ROWS;
                    if let Some(job) = sorting.take() {
                        job.finish(&mut writer).await?;
                    }
                    sorting = Some(SortJob::start(chunk, &order));
                }
            }
            drop(stream);
            tracker.done();
            if let Some(job) = sorting.take() {
                job.finish(&mut writer).await?;
            }
            if pending_rows > 0 {
                SortJob::start(std::mem::take(&mut pending), &order).finish(&mut writer).await?;
            }
            if tracker.cancelled() {
                return Err(cancelled());
            }
            Ok(rows)
        }
        .await;
        match res {
            Ok(r) => {
                rows_written = r;
                written = writer.finish().await?;
            }
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        }
        inserted = rows_written;
        files = match mode {
            IngestMode::FullRefresh => written.clone(),
            _ => current.files.iter().cloned().chain(written.iter().cloned()).collect(),
        };
    } else if profile_merge {
        // An upsert onto stored rows: the new rows are sorted in memory; the current files (sorted the same way,
        // one after the other) are then streamed, the rows whose key came again dropped, and the two sorted
        // sequences merged into the new files. Memory holds the new rows and one batch of the old ones.
        let mut good = vec![];
        let mut release = PeriodicRelease::default();
        while let Some(b) = next_batch(&mut stream, tracker).await? {
            let b = b.map_err(|e| wrap_source(e, source))?;
            let g = proc.process(&b)?;
            tracker.batch(b.num_rows(), b.get_array_memory_size(), b.num_rows() - g.num_rows());
            release.rows(b.num_rows());
            if g.num_rows() > 0 {
                good.push(g);
            }
        }
        drop(stream);
        tracker.done();
        rows_written = good.iter().map(|b| b.num_rows() as u64).sum();
        let order = storage_order(entity);
        if rows_written == 0 {
            written = vec![];
            files = current.files.clone();
        } else {
            let incoming = concat_batches(&schema, &good)?;
            drop(good);
            let incoming = sort_by(&incoming, &order)?;
            let mut writer = FileSink::new(store.writer(&dir, schema.clone(), Some(&order.join(","))));
            let res = merge_into(&mut writer, store, current, &incoming, &order, entity, &proc.seen).await;
            let res = res.and_then(|r| if tracker.cancelled() { Err(cancelled()) } else { Ok(r) });
            match res {
                Ok(replaced) => updated = replaced,
                Err(e) => {
                    writer.abort().await;
                    return Err(e);
                }
            }
            written = writer.finish().await?;
            files = written.clone();
        }
        inserted = rows_written - updated;
    } else {
        // Nothing to merge with (a first ingest, a full refresh): the new rows stream through a sort into storage
        // order that spills to disk beyond the workspace's `ingest_memory` (see `super::sort`), straight into the
        // new files. The rows carry their source row number through the sort, and repeated keys are found
        // without a hash of every key: in the sorted rows themselves when the storage order is the key alone,
        // else (indexed attributes first) by sorting the (key, row) pairs of an integer key once the input has
        // ended. Other keys with indexed attributes use the hash of keys seen.
        let order = storage_order(entity);
        let key = entity.key.clone().expect("profiles have keys");
        let mut sort_cols = order.clone();
        if by_key || pairs {
            proc.dedupe = false;
            proc.with_rows = true;
            let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(ROW_COLUMN, ArrowType::UInt64, false));
            proc.schema = Arc::new(Schema::new(fields));
            sort_cols.push(ROW_COLUMN.to_string());
        }
        let mut sorter = ExternalSort::new(proc.schema.clone(), &sort_cols, memory)?;
        let mut dups =
            if by_key || pairs { Some(Duplicates::new(&proc.schema, &key, entity.attr(&key)?.pii)?) } else { None };
        let mut key_rows = KeyRows::default();
        let mut writer = FileSink::new(store.writer(&dir, schema.clone(), Some(&order.join(","))));
        let res: Result<u64> = async {
            let mut rows = 0u64;
            let mut release = PeriodicRelease::default();
            while let Some(b) = next_batch(&mut stream, tracker).await? {
                let b = b.map_err(|e| wrap_source(e, source))?;
                let g = proc.process(&b)?;
                tracker.batch(b.num_rows(), b.get_array_memory_size(), b.num_rows() - g.num_rows());
                release.rows(b.num_rows());
                rows += g.num_rows() as u64;
                if g.num_rows() == 0 {
                    continue;
                }
                if pairs {
                    let row = g.column_by_name(ROW_COLUMN).expect("row column").as_primitive::<UInt64Type>();
                    key_rows.push(g.column_by_name(&key).expect("key column").as_ref(), row);
                }
                // A batch larger than an eighth of the budget goes in compact pieces, so no single batch can
                // exceed the sort's memory.
                for piece in pieces(g, memory / 8)? {
                    sorter.push(piece)?;
                }
            }
            drop(stream);
            tracker.done();
            let first_of = if pairs { std::mem::take(&mut key_rows).repeats() } else { HashMap::new() };
            let mut sorted = sorter.finish()?;
            let mut repeated = RepeatedKeys::default();
            let mut release = PeriodicRelease::default();
            while let Some(b) = sorted.next_batch()? {
                if tracker.cancelled() {
                    return Err(cancelled());
                }
                release.rows(b.num_rows());
                let b = match dups.as_mut() {
                    Some(d) if by_key => {
                        let rows = b.column_by_name(ROW_COLUMN).expect("row column").as_primitive::<UInt64Type>();
                        let firsts = repeated.scan(b.column_by_name(&key).expect("key column"), rows)?;
                        d.drop_rows(&b, |i, _| firsts[i], &schema)?
                    }
                    Some(d) => d.drop_rows(&b, |_, row| first_of.get(&row).copied(), &schema)?,
                    None => b,
                };
                if b.num_rows() > 0 {
                    writer.write(&b).await?;
                }
            }
            if tracker.cancelled() {
                return Err(cancelled());
            }
            Ok(rows)
        }
        .await;
        match res {
            Ok(rows) => {
                let dropped = dups.as_ref().map(|d| d.dropped).unwrap_or(0);
                rows_written = rows - dropped;
                if let Some(d) = dups {
                    proc.add_quarantined(d);
                }
                written = writer.finish().await?;
                files = written.clone();
            }
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        }
        inserted = rows_written - updated;
    }
    let quarantine_sample = proc
        .q_rows
        .iter()
        .zip(&proc.q_reasons)
        .take(20)
        .map(|(r, why)| QuarantinedRow { row: *r as u64, reason: why.clone() })
        .collect();
    let quarantine_file = match proc.quarantine_batch()? {
        None => None,
        Some(q) => {
            let mut w =
                store.writer(&format!("quarantine/{}", crate::store::path_segment(&entity.name)), q.schema(), None);
            if let Err(e) = w.write(&q).await {
                w.abort().await;
                let paths: Vec<String> = written.iter().map(|f| f.path.clone()).collect();
                store.delete(&paths).await;
                return Err(e);
            }
            w.finish().await?.into_iter().next().map(|f| f.path)
        }
    };
    let report = IngestReport {
        id: id.to_string(),
        entity: entity.name.clone(),
        source: source.name(),
        mode,
        rows_read: proc.rows_read,
        rows_written,
        rows_inserted: inserted,
        rows_updated: updated,
        rows_quarantined: proc.rows_read - rows_written,
        snapshot: None,
        quarantine_file: quarantine_file.clone(),
        quarantine_sample,
        ignored_fields: ignored,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    Ok(Staged { files, written, quarantine_file, report })
}

fn cancelled() -> Error {
    Error::Cancelled { what: "the ingest".into() }
}

/// The next item of `stream`, or [`Error::Cancelled`] if the token fires first (checked before each batch too,
/// so a source that never waits is still stopped).
async fn next_batch(
    stream: &mut crate::source::BatchStream,
    tracker: &Tracker<'_>,
) -> Result<Option<Result<RecordBatch>>> {
    if tracker.cancelled() {
        return Err(cancelled());
    }
    tracker.or_cancel(stream.next()).await.ok_or_else(cancelled)
}

fn wrap_source(e: Error, source: &dyn Source) -> Error {
    match e {
        e @ Error::Source { .. } => e,
        other => Error::Source { source_name: source.name(), message: other.to_string(), cause: Some(Box::new(other)) },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
        UInt64Array,
    };
    use arrow::compute::interleave_record_batch;
    use arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
    use proptest::prelude::*;

    use super::{gather_rows, SortedRows};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int64, true),
            Field::new("at", ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("amount", ArrowType::Float64, true),
            Field::new("kind", ArrowType::Utf8, true),
            Field::new("age", ArrowType::Int32, true),
            Field::new("day", ArrowType::Date32, true),
            Field::new("row", ArrowType::UInt64, false),
            Field::new("note", ArrowType::Utf8, true),
        ]))
    }

    /// A batch of `rows` rows from `seed`, with nulls in every nullable column when `nulls`.
    fn batch(seed: i64, rows: usize, nulls: bool) -> RecordBatch {
        let v = |i: usize| seed * 1000 + i as i64;
        let keep = |i: usize| !nulls || i % 3 != 1;
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from_iter((0..rows).map(|i| keep(i).then_some(v(i))))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter((0..rows).map(|i| keep(i).then_some(v(i) * 7)))
                        .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter((0..rows).map(|i| keep(i + 1).then_some(v(i) as f64 / 4.0)))),
                Arc::new(StringArray::from_iter((0..rows).map(|i| keep(i).then(|| format!("k{}", v(i) % 5))))),
                Arc::new(Int32Array::from_iter((0..rows).map(|i| keep(i + 2).then_some(i as i32)))),
                Arc::new(Date32Array::from_iter((0..rows).map(|i| keep(i).then_some(v(i) as i32)))),
                Arc::new(UInt64Array::from_iter_values((0..rows).map(|i| v(i) as u64))),
                // Texts of 0 to 40 bytes, multi-byte characters among them.
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| keep(i + 1).then(|| "é-note".repeat(i % 6) + &"x".repeat(i % 5))),
                )),
            ],
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any picks from any batches (with and without nulls, some empty): the rows Arrow's interleave gives,
        /// with the same nulls.
        #[test]
        fn gathered_rows_are_arrows_interleave(sizes in proptest::collection::vec((0usize..40, any::<bool>()), 1..6),
                                               picks in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..200)) {
            let batches: Vec<RecordBatch> =
                sizes.iter().enumerate().map(|(s, &(rows, nulls))| batch(s as i64, rows, nulls)).collect();
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            let filled: Vec<usize> = (0..batches.len()).filter(|&b| batches[b].num_rows() > 0).collect();
            let picks: Vec<(usize, usize)> = if filled.is_empty() {
                vec![]
            } else {
                picks.iter().map(|&(b, r)| { let b = filled[b % filled.len()]; (b, r % batches[b].num_rows()) }).collect()
            };
            let got = gather_rows(&refs, &picks).unwrap();
            let want = interleave_record_batch(&refs, &picks).unwrap();
            prop_assert_eq!(got.schema(), want.schema());
            prop_assert_eq!(got.num_rows(), picks.len());
            for c in 0..want.num_columns() {
                prop_assert_eq!(got.column(c).to_data(), want.column(c).to_data(), "column {}", c);
                prop_assert_eq!(got.column(c).logical_nulls(), want.column(c).logical_nulls(), "column {}", c);
            }
        }

        /// The (batch, row) picks of each row group are those of a search of the batch starts for every row.
        #[test]
        fn picks_find_each_rows_batch(sizes in proptest::collection::vec(0usize..5000, 1..40), seed in any::<u64>()) {
            let mut starts = vec![];
            let mut total = 0;
            for s in &sizes {
                starts.push(total);
                total += s;
            }
            // A scrambled order with runs from one batch, as sorted rows come.
            let mut order: Vec<u32> = (0..total as u32).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 4 == 0 {
                    order.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
            let sorted = SortedRows { order: order.clone().into(), starts: starts.clone() };
            let mut picks = vec![];
            let mut all = vec![];
            for g in 0..sorted.groups() {
                sorted.picks(g, &mut picks);
                all.extend_from_slice(&picks);
            }
            let want: Vec<(usize, usize)> = order
                .iter()
                .map(|&g| {
                    let b = starts.partition_point(|&s| s <= g as usize) - 1;
                    (b, g as usize - starts[b])
                })
                .collect();
            prop_assert_eq!(all, want);
        }
    }
}
