//! Sorting ingested rows into storage order with bounded memory.
//!
//! [`ExternalSort`] buffers rows up to half of [`WorkspaceOptions::ingest_memory`](crate::WorkspaceOptions::ingest_memory)
//! bytes (the rows plus what sorting them costs), sorts the buffer as one run by integer keys
//! ([`sort_indices`]: every sort column becomes one or two order-preserving `u64` per row, so a comparison is a
//! few integer compares, not a row-format `memcmp`), and spills the run to a temporary Arrow IPC file when more
//! rows follow. The sorting and writing of a run happen on a thread of their own while the next half fills (at
//! most one run is being written at a time), so a spilling ingest keeps a second core busy. The runs are then merged as a stream ([`Sorted`]): the merge takes from the run whose next row is
//! smallest as many rows as come before the next row of any other run (found by a galloping search), so input
//! that arrives in storage order — or runs that do not overlap, as rows exported by key from a database and
//! then grouped by an indexed attribute — moves in slices of whole batches instead of row by row. An already
//! sorted buffer (the sort of sorted input is a linear check) is kept as it is, without a gathered copy.
//!
//! The order is ascending with nulls last, as Arrow's `lexsort_to_indices`; rows with equal sort keys keep
//! their input order.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{concat, concat_batches, interleave_record_batch, sort_to_indices, take, SortOptions};
use arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type, SchemaRef, UInt64Type};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{RowConverter, Rows, SortField};

use crate::error::{Error, Result};

/// Rows per batch of the sorted output (and of the spilled runs).
pub(crate) const SORTED_BATCH_ROWS: usize = 8192;

/// Ascending, nulls last: the storage order.
const ORDER: SortOptions = SortOptions { descending: false, nulls_first: false };

/// What sorting a row costs besides the row itself, as counted against the budget: the sort keys (up to four
/// `u64` and the row's position) and the index of the result.
const SORT_BYTES_PER_ROW: usize = 48;

/// Sorts batches of one schema by some of its columns with about `memory` bytes, spilling sorted runs to
/// temporary files beyond that. Feed it with [`push`](Self::push), then read the rows in order from
/// [`finish`](Self::finish).
pub(crate) struct ExternalSort {
    schema: SchemaRef,
    columns: Vec<usize>,
    memory: usize,
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    buffered_bytes: usize,
    spill: Option<tempfile::TempDir>,
    runs: Vec<std::path::PathBuf>,
    /// The thread writing the last run, if it has not been waited for.
    writing: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Drop for ExternalSort {
    fn drop(&mut self) {
        // The run's thread must not outlive the temporary directory it writes into.
        let _ = self.wait_for_run();
    }
}

impl std::fmt::Debug for ExternalSort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalSort")
            .field("buffered_rows", &self.buffered_rows)
            .field("runs", &self.runs.len())
            .finish_non_exhaustive()
    }
}

fn spill_error(e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("the ingest sort could not spill to a temporary file: {e}")))
}

impl ExternalSort {
    /// A sort of rows of `schema` by `columns` holding about `memory` bytes.
    pub(crate) fn new(schema: SchemaRef, columns: &[String], memory: usize) -> Result<Self> {
        if columns.is_empty() {
            return Err(Error::InvalidArgument("a sort needs a column".into()));
        }
        let columns = columns.iter().map(|c| schema.index_of(c)).collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(ExternalSort {
            schema,
            columns,
            memory,
            buffered: vec![],
            buffered_rows: 0,
            buffered_bytes: 0,
            spill: None,
            runs: vec![],
            writing: None,
        })
    }

    /// Adds rows; sorts and spills the buffer when it reaches the budget.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buffered_rows += batch.num_rows();
        self.buffered_bytes += batch.get_array_memory_size();
        self.buffered.push(batch);
        // Half the budget: the previous half may still be being sorted and written.
        if self.buffered_bytes + self.buffered_rows * SORT_BYTES_PER_ROW >= self.memory / 2 {
            self.spill_buffer()?;
        }
        Ok(())
    }

    /// The buffered rows as one sorted run: the batches and the order of their rows (`None` when they are in
    /// order already).
    fn sort_buffer(&mut self) -> Result<(Vec<RecordBatch>, Option<UInt32Array>)> {
        let batches = std::mem::take(&mut self.buffered);
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        sort_run(batches, &self.columns)
    }

    /// Waits for the thread writing the last run; its error, if it failed.
    fn wait_for_run(&mut self) -> Result<()> {
        match self.writing.take() {
            None => Ok(()),
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("the ingest sort's spill thread panicked")))),
        }
    }

    fn spill_buffer(&mut self) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        self.wait_for_run()?;
        let batches = std::mem::take(&mut self.buffered);
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        if self.spill.is_none() {
            self.spill = Some(tempfile::Builder::new().prefix("segkit-ingest-sort-").tempdir().map_err(spill_error)?);
        }
        let dir = self.spill.as_ref().expect("set above").path();
        let path = dir.join(format!("run-{}.arrow", self.runs.len()));
        self.runs.push(path.clone());
        let (schema, columns) = (self.schema.clone(), self.columns.clone());
        let work = move || write_run(batches, &columns, &schema, &path);
        match std::thread::Builder::new().name("segkit-sort-spill".into()).spawn(work) {
            Ok(t) => self.writing = Some(t),
            Err(e) => return Err(spill_error(e)),
        }
        Ok(())
    }

    /// Ends the input: the rows in order, as batches of at most [`SORTED_BATCH_ROWS`].
    pub(crate) fn finish(mut self) -> Result<Sorted> {
        if self.runs.is_empty() {
            return Ok(match self.sort_buffer()? {
                (batches, None) => Sorted::InOrder(batches.into()),
                (batches, Some(idx)) => Sorted::Memory { batches, idx, next: 0 },
            });
        }
        self.spill_buffer()?;
        self.wait_for_run()?;
        self.merge()
    }
}

/// `batches` as one sorted run by `columns`: the batches and the order of their rows (`None` when they are in
/// order already).
fn sort_run(batches: Vec<RecordBatch>, columns: &[usize]) -> Result<(Vec<RecordBatch>, Option<UInt32Array>)> {
    if batches.is_empty() {
        return Ok((batches, None));
    }
    let sort_columns = columns
        .iter()
        .map(|&c| {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            Ok(concat(&parts)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let idx = sort_indices(&sort_columns)?;
    drop(sort_columns);
    let in_order = idx.values().iter().enumerate().all(|(i, &v)| v as usize == i);
    Ok((batches, (!in_order).then_some(idx)))
}

/// Sorts `batches` by `columns` and writes them as a run to a new Arrow IPC file at `path`.
///
/// A run to reorder is first made one array per column (each column's parts concatenated, then dropped, so this
/// holds one column twice at most), and its chunks are gathered from those with `take`: a gather from one array
/// costs about half of an interleave from many, which looks up the source batch of every row.
fn write_run(batches: Vec<RecordBatch>, columns: &[usize], schema: &SchemaRef, path: &std::path::Path) -> Result<()> {
    let (batches, idx) = sort_run(batches, columns)?;
    let file = File::create(path).map_err(spill_error)?;
    let mut w = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema)?;
    match idx {
        None => {
            for b in &batches {
                w.write(b)?;
            }
        }
        Some(idx) => {
            let mut parts: Vec<Vec<ArrayRef>> = (0..schema.fields().len()).map(|_| vec![]).collect();
            for b in batches {
                for (c, a) in b.columns().iter().enumerate() {
                    parts[c].push(a.clone());
                }
            }
            let whole = parts
                .into_iter()
                .map(|p| {
                    let refs: Vec<&dyn Array> = p.iter().map(|a| a.as_ref()).collect();
                    Ok(concat(&refs)?)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            let mut next = 0;
            while next < idx.len() {
                let len = SORTED_BATCH_ROWS.min(idx.len() - next);
                let picked = idx.slice(next, len);
                let cols = whole.iter().map(|a| take_rows(a.as_ref(), &picked)).collect::<Result<Vec<_>>>()?;
                w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
                next += len;
            }
        }
    }
    w.finish()?;
    w.into_inner()?.into_inner().map_err(|e| spill_error(e.into_error()))?;
    Ok(())
}

/// The rows `idx` of `a` (no null indices), as Arrow's `take`, but a list column's values are gathered by one
/// `take` of its child array at the indices of the picked lists' elements: Arrow's `take` of a list copies each
/// picked list through `MutableArrayData`, a call and an offset loop per row (a third of a `users` run's spill).
fn take_rows(a: &dyn Array, idx: &UInt32Array) -> Result<ArrayRef> {
    let (Some(list), ArrowType::List(field)) = (a.as_list_opt::<i32>(), a.data_type()) else {
        return Ok(take(a, idx, None)?);
    };
    let offsets = list.value_offsets();
    let mut new_offsets: Vec<i32> = Vec::with_capacity(idx.len() + 1);
    new_offsets.push(0);
    // Sized for the picked lists (the child array is the whole run's).
    let picked: usize = idx.values().iter().map(|&i| (offsets[i as usize + 1] - offsets[i as usize]) as usize).sum();
    let mut elements: Vec<u32> = Vec::with_capacity(picked);
    for &i in idx.values() {
        let (start, end) = (offsets[i as usize], offsets[i as usize + 1]);
        if !list.is_null(i as usize) {
            elements.extend(start as u32..end as u32);
        }
        new_offsets.push(
            i32::try_from(elements.len()).map_err(|_| arrow::error::ArrowError::OffsetOverflowError(elements.len()))?,
        );
    }
    let values = take(list.values().as_ref(), &UInt32Array::from(elements), None)?;
    let nulls = list.nulls().filter(|n| n.null_count() > 0).map(|n| {
        arrow::buffer::NullBuffer::from(idx.values().iter().map(|&i| n.is_valid(i as usize)).collect::<Vec<bool>>())
    });
    let out = arrow::array::ListArray::try_new(
        field.clone(),
        arrow::buffer::OffsetBuffer::new(new_offsets.into()),
        values,
        nulls,
    )?;
    Ok(std::sync::Arc::new(out))
}

impl ExternalSort {
    /// The merge of the spilled runs (all written).
    fn merge(mut self) -> Result<Sorted> {
        // Sort columns of the types `order_keys` maps to integers (their mapping does not depend on the batch) and
        // text compare as they are; others through Arrow's row format.
        let typed = self.columns.iter().all(|&c| match self.schema.field(c).data_type() {
            ArrowType::Utf8 => true,
            t => order_keys(arrow::array::new_empty_array(t).as_ref()).is_some(),
        });
        let converter = if typed {
            None
        } else {
            let fields = self
                .columns
                .iter()
                .map(|&c| SortField::new_with_options(self.schema.field(c).data_type().clone(), ORDER));
            Some(RowConverter::new(fields.collect())?)
        };
        let mut cursors = Vec::with_capacity(self.runs.len());
        for path in &self.runs {
            let file = File::open(path).map_err(spill_error)?;
            let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None)?;
            let mut c = Cursor { reader, batch: None, keys: None, pos: 0 };
            c.load(converter.as_ref(), &self.columns)?;
            if c.batch.is_some() {
                cursors.push(c);
            }
        }
        let mut merge = Merge {
            schema: self.schema.clone(),
            converter,
            columns: self.columns.clone(),
            order: (0..cursors.len()).collect(),
            cursors,
            _dir: self.spill.take(),
        };
        let mut order = std::mem::take(&mut merge.order);
        order.sort_by(|&a, &b| merge.compare(a, b));
        merge.order = order;
        Ok(Sorted::Merge(merge))
    }
}

/// The rows of `batches` in the order `idx` (or as they are), in chunks of [`SORTED_BATCH_ROWS`].
struct RunChunks<'a> {
    batches: &'a [RecordBatch],
    idx: Option<&'a UInt32Array>,
    starts: Vec<usize>,
    next: usize,
    batch: usize,
}

impl<'a> RunChunks<'a> {
    fn new(batches: &'a [RecordBatch], idx: Option<&'a UInt32Array>) -> Self {
        let mut starts = Vec::with_capacity(batches.len());
        let mut total = 0;
        for b in batches {
            starts.push(total);
            total += b.num_rows();
        }
        RunChunks { batches, idx, starts, next: 0, batch: 0 }
    }
}

impl Iterator for RunChunks<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(idx) = self.idx else {
            // In order: the batches themselves.
            let b = self.batches.get(self.batch)?;
            self.batch += 1;
            return Some(Ok(b.clone()));
        };
        let picked = idx.values().get(self.next..(self.next + SORTED_BATCH_ROWS).min(idx.len()))?;
        if picked.is_empty() {
            return None;
        }
        self.next += picked.len();
        let picks: Vec<(usize, usize)> = picked
            .iter()
            .map(|&g| {
                let g = g as usize;
                let b = self.starts.partition_point(|&s| s <= g) - 1;
                (b, g - self.starts[b])
            })
            .collect();
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        Some(interleave_record_batch(&refs, &picks).map_err(Error::from))
    }
}

/// One spilled run being merged: its reader, the current batch and its sort columns as [`Keys`].
struct Cursor {
    reader: StreamReader<BufReader<File>>,
    batch: Option<RecordBatch>,
    keys: Option<Keys>,
    pos: usize,
}

impl Cursor {
    /// Reads the run's next non-empty batch (none at the end); its keys in row format with `converter`, else
    /// typed.
    fn load(&mut self, converter: Option<&RowConverter>, columns: &[usize]) -> Result<()> {
        self.batch = None;
        self.keys = None;
        self.pos = 0;
        for b in self.reader.by_ref() {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            let cols: Vec<ArrayRef> = columns.iter().map(|&c| b.column(c).clone()).collect();
            self.keys = Some(match converter {
                Some(converter) => Keys::Rows(converter.convert_columns(&cols)?),
                None => Keys::Typed(cols.iter().map(|c| KeyColumn::new(c.as_ref())).collect::<Result<Vec<_>>>()?),
            });
            self.batch = Some(b);
            break;
        }
        Ok(())
    }

    fn keys(&self) -> &Keys {
        self.keys.as_ref().expect("a loaded cursor")
    }
}

/// The sort columns of a run's batch in a form that compares with other runs' batches.
enum Keys {
    /// Column by column, as they are or as order-preserving integers.
    Typed(Vec<KeyColumn>),
    /// Arrow's row format (sort columns of other types).
    Rows(Rows),
}

/// One sort column of a batch: text, or the order-preserving integers of [`order_keys`] (their mapping depends
/// on the value only, unlike the ranks it gives text); and its nulls.
enum KeyColumn {
    Text(StringArray),
    Int(Vec<u64>, Option<arrow::buffer::NullBuffer>),
}

impl KeyColumn {
    fn new(a: &dyn Array) -> Result<KeyColumn> {
        if let Some(s) = a.as_string_opt::<i32>() {
            return Ok(KeyColumn::Text(s.clone()));
        }
        let mut keys = order_keys(a).ok_or_else(|| {
            arrow::error::ArrowError::NotYetImplemented(format!("merging runs sorted by {}", a.data_type()))
        })?;
        let values = keys.pop().unwrap_or_default();
        Ok(KeyColumn::Int(values, a.nulls().filter(|n| n.null_count() > 0).cloned()))
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            KeyColumn::Text(s) => s.is_null(i),
            KeyColumn::Int(_, nulls) => nulls.as_ref().is_some_and(|n| n.is_null(i)),
        }
    }
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::Typed(cols) => cols.first().map_or(0, |c| match c {
                KeyColumn::Text(s) => s.len(),
                KeyColumn::Int(v, _) => v.len(),
            }),
            Keys::Rows(r) => r.num_rows(),
        }
    }

    /// The order of row `i` of these keys and row `j` of `other` (ascending, nulls last).
    fn cmp(&self, i: usize, other: &Keys, j: usize) -> Ordering {
        match (self, other) {
            (Keys::Rows(x), Keys::Rows(y)) => x.row(i).cmp(&y.row(j)),
            (Keys::Typed(x), Keys::Typed(y)) => {
                for (a, b) in x.iter().zip(y) {
                    let o = match (a.is_null(i), b.is_null(j)) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        (false, false) => match (a, b) {
                            (KeyColumn::Int(a, _), KeyColumn::Int(b, _)) => a[i].cmp(&b[j]),
                            (KeyColumn::Text(a), KeyColumn::Text(b)) => a.value(i).cmp(b.value(j)),
                            // The runs share one schema, so their columns are of one kind.
                            _ => Ordering::Equal,
                        },
                    };
                    if o.is_ne() {
                        return o;
                    }
                }
                Ordering::Equal
            }
            _ => Ordering::Equal,
        }
    }
}

/// The merge of spilled runs.
pub(crate) struct Merge {
    schema: SchemaRef,
    /// The row format of the sort columns, when they are not all [`KeyColumn`]s.
    converter: Option<RowConverter>,
    columns: Vec<usize>,
    /// The runs, in run order.
    cursors: Vec<Cursor>,
    /// The runs with rows left, ordered by their next row (ties: the earlier run, which holds the earlier rows).
    order: Vec<usize>,
    _dir: Option<tempfile::TempDir>,
}

impl Merge {
    /// The order of runs `a` and `b` by their next rows (equal rows: the earlier run first).
    fn compare(&self, a: usize, b: usize) -> Ordering {
        let (x, y) = (&self.cursors[a], &self.cursors[b]);
        x.keys().cmp(x.pos, y.keys(), y.pos).then(a.cmp(&b))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // The output as ranges (source batch, start, length) of the runs' batches it takes rows from.
        let mut sources: Vec<RecordBatch> = vec![];
        let mut source_of: Vec<Option<usize>> = vec![None; self.cursors.len()];
        let mut ranges: Vec<(usize, usize, usize)> = vec![];
        let mut n = 0;
        while n < SORTED_BATCH_ROWS && !self.order.is_empty() {
            // The run with the smallest next row, and the runner-up.
            let best = self.order[0];
            let c = &self.cursors[best];
            let len = c.keys().len();
            let limit = (c.pos + SORTED_BATCH_ROWS - n).min(len);
            // Rows of `best` that come before the runner-up's next row (equal ones too when `best` is the earlier
            // run, so equal rows keep their input order).
            let end = match self.order.get(1) {
                None => limit,
                Some(&s) => {
                    let o = &self.cursors[s];
                    let (bound, at) = (o.keys(), o.pos);
                    let before = |i: usize| match c.keys().cmp(i, bound, at) {
                        Ordering::Less => true,
                        Ordering::Equal => best < s,
                        Ordering::Greater => false,
                    };
                    gallop(c.pos, limit, before)
                }
            };
            let end = end.max(c.pos + 1);
            let source = match source_of[best] {
                Some(s) => s,
                None => {
                    sources.push(c.batch.clone().expect("a loaded cursor"));
                    source_of[best] = Some(sources.len() - 1);
                    sources.len() - 1
                }
            };
            match ranges.last_mut() {
                Some((s, start, l)) if *s == source && *start + *l == c.pos => *l += end - c.pos,
                _ => ranges.push((source, c.pos, end - c.pos)),
            }
            n += end - c.pos;
            let c = &mut self.cursors[best];
            c.pos = end;
            if c.pos == len {
                c.load(self.converter.as_ref(), &self.columns)?;
                source_of[best] = None;
            }
            // Put `best` back in its place among the others (or drop it at its end).
            if self.cursors[best].batch.is_some() {
                let at = 1 + self.order[1..].partition_point(|&o| self.compare(o, best) == Ordering::Less);
                self.order[..at].rotate_left(1);
            } else {
                self.order.remove(0);
            }
        }
        Ok(match ranges.as_slice() {
            [] => None,
            [(s, 0, l)] if *l == sources[*s].num_rows() => Some(sources.swap_remove(*s)),
            [(s, start, l)] => Some(sources[*s].slice(*start, *l)),
            // Long ranges: copied slice by slice; short ones (interleaved runs): gathered row by row.
            _ if ranges.len() * 64 <= n => {
                let parts: Vec<RecordBatch> = ranges.iter().map(|&(s, start, l)| sources[s].slice(start, l)).collect();
                Some(concat_batches(&self.schema, &parts)?)
            }
            _ => {
                let picks: Vec<(usize, usize)> =
                    ranges.iter().flat_map(|&(s, start, l)| (start..start + l).map(move |r| (s, r))).collect();
                let refs: Vec<&RecordBatch> = sources.iter().collect();
                Some(interleave_record_batch(&refs, &picks)?)
            }
        })
    }
}

/// The first index in `from..to` where `before` is false (`before` holds for a prefix of the range; `from` is
/// not checked and counts as before): an exponential search from `from`, then a binary search.
fn gallop(from: usize, to: usize, before: impl Fn(usize) -> bool) -> usize {
    let mut lo = from + 1;
    let mut step = 1;
    let mut hi = lo;
    while hi < to && before(hi) {
        lo = hi + 1;
        hi = (hi + step).min(to);
        step *= 2;
    }
    let hi = hi.min(to);
    // before(lo - 1) holds; before(hi) does not (or hi == to).
    let (mut l, mut h) = (lo, hi);
    while l < h {
        let m = l + (h - l) / 2;
        if before(m) {
            l = m + 1;
        } else {
            h = m;
        }
    }
    l
}

/// The rows of an [`ExternalSort`] in order.
pub(crate) enum Sorted {
    /// Everything fitted in memory, in order already.
    InOrder(std::collections::VecDeque<RecordBatch>),
    /// Everything fitted in memory: the batches, the order of their rows and the next position in it.
    Memory { batches: Vec<RecordBatch>, idx: UInt32Array, next: usize },
    /// Spilled runs being merged.
    Merge(Merge),
}

impl Sorted {
    /// The next batch of rows in order (at most [`SORTED_BATCH_ROWS`] unless the input was in order already).
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Sorted::InOrder(batches) => Ok(batches.pop_front()),
            Sorted::Memory { batches, idx, next } => {
                let mut chunks = RunChunks::new(batches, Some(idx));
                chunks.next = *next;
                let out = chunks.next().transpose()?;
                *next = chunks.next;
                if out.is_none() {
                    batches.clear();
                }
                Ok(out)
            }
            Sorted::Merge(m) => m.next_batch(),
        }
    }
}

/// The row order that sorts `columns` (ascending, nulls last; equal rows keep their order): as integer keys (see
/// [`order_keys`]) sorted as tuples with the row's position last; other types with Arrow's sort kernel (one
/// column) or by comparing their row-format encodings.
pub(crate) fn sort_indices(columns: &[ArrayRef]) -> Result<UInt32Array> {
    if let Some(keys) = columns.iter().map(|c| order_keys(c.as_ref())).collect::<Option<Vec<Vec<Vec<u64>>>>>() {
        // Each column as one or two order-preserving integer keys per row; rows compare key by key, then by
        // position (so equal rows keep their order). A sort of sorted input is a linear pass, and so is one whose
        // keys after the first are in order (see `leading_key_order`).
        let keys: Vec<Vec<u64>> = keys.into_iter().flatten().collect();
        if let Some(out) = leading_key_order(&keys) {
            return Ok(UInt32Array::from(out));
        }
        let n = columns[0].len();
        let pos = 0..n as u32;
        let out: Vec<u32> = match keys.as_slice() {
            [a] => tuple_sort(pos.map(|i| (a[i as usize], i)).collect(), |t| t.1),
            [a, b] => tuple_sort(pos.map(|i| (a[i as usize], b[i as usize], i)).collect(), |t| t.2),
            [a, b, c] => {
                let i = |i: u32| i as usize;
                tuple_sort(pos.map(|p| (a[i(p)], b[i(p)], c[i(p)], p)).collect(), |t| t.3)
            }
            [a, b, c, d] => {
                let i = |i: u32| i as usize;
                tuple_sort(pos.map(|p| (a[i(p)], b[i(p)], c[i(p)], d[i(p)], p)).collect(), |t| t.4)
            }
            _ => {
                let mut idx: Vec<u32> = pos.collect();
                idx.sort_by(|&x, &y| {
                    keys.iter().map(|k| k[x as usize].cmp(&k[y as usize])).find(|o| o.is_ne()).unwrap_or(x.cmp(&y))
                });
                idx
            }
        };
        return Ok(UInt32Array::from(out));
    }
    if let [only] = columns {
        return Ok(sort_to_indices(only, Some(ORDER), None)?);
    }
    let converter =
        RowConverter::new(columns.iter().map(|c| SortField::new_with_options(c.data_type().clone(), ORDER)).collect())?;
    let rows = converter.convert_columns(columns)?;
    let mut idx: Vec<u32> = (0..rows.num_rows() as u32).collect();
    idx.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok(UInt32Array::from(idx))
}

/// The row order of `keys` (compared key by key, then by position) when every key after the first is already in
/// order, row after row: then the rows stably sorted by the first key alone are in order (each first-key value's
/// rows are a subsequence of rows that were in order already) — an event file that arrives in time order, stored
/// by (event type, time). A first key whose values span fewer values than there are rows (a text column's ranks,
/// a small integer range) is sorted by counting, in two linear passes; any other by (key, position) tuples. `None` when there is a single key or
/// the later keys are out of order somewhere.
fn leading_key_order(keys: &[Vec<u64>]) -> Option<Vec<u32>> {
    let (first, rest) = keys.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let n = first.len();
    let in_order = match rest {
        [a] => a.is_sorted(),
        [a, b] => (1..n).all(|i| (a[i - 1], b[i - 1]) <= (a[i], b[i])),
        _ => (1..n).all(|i| rest.iter().map(|k| k[i - 1].cmp(&k[i])).find(|o| o.is_ne()) != Some(Ordering::Greater)),
    };
    if !in_order {
        return None;
    }
    let min = first.iter().copied().min().unwrap_or(0);
    let span = first.iter().copied().max().unwrap_or(0) - min;
    if span >= n as u64 {
        return Some(tuple_sort((0..n as u32).map(|i| (first[i as usize], i)).collect(), |t| t.1));
    }
    // Counting sort: where each key's rows start, then every row placed in input order.
    let mut starts = vec![0u32; span as usize + 2];
    for &k in first {
        starts[(k - min) as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut out = vec![0u32; n];
    for (i, &k) in first.iter().enumerate() {
        let at = &mut starts[(k - min) as usize];
        out[*at as usize] = i as u32;
        *at += 1;
    }
    Some(out)
}

/// Up to the first eight bytes of `b`, packed little-endian and zero-padded: with the length, it tells texts of up
/// to eight bytes apart exactly.
#[inline]
fn prefix(b: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let k = b.len().min(8);
    word[..k].copy_from_slice(&b[..k]);
    u64::from_le_bytes(word)
}

/// Sorts distinct tuples (the position is their last element) and returns the positions.
fn tuple_sort<T: Ord + Copy>(mut t: Vec<T>, position: impl Fn(&T) -> u32) -> Vec<u32> {
    if !t.is_sorted() {
        t.sort_unstable();
    }
    t.iter().map(position).collect()
}

/// A column as integer keys that sort its rows ascending with nulls last: a column with nulls gives two (null
/// flag, value), one without nulls gives one. Integers, timestamps and dates map order-preservingly to `u64`,
/// floats by their total order, booleans to 0/1, text to the rank of its value among the column's distinct values.
/// `None` for other types.
fn order_keys(a: &dyn Array) -> Option<Vec<Vec<u64>>> {
    use arrow::datatypes::{Date32Type, Float64Type, TimestampMicrosecondType};
    let n = a.len();
    let value: Vec<u64> = match a.data_type() {
        ArrowType::Int64 => a.as_primitive::<Int64Type>().values().iter().map(|v| (*v as u64) ^ (1 << 63)).collect(),
        ArrowType::UInt64 => a.as_primitive::<UInt64Type>().values().to_vec(),
        ArrowType::Int32 => {
            a.as_primitive::<Int32Type>().values().iter().map(|v| (*v as i64 as u64) ^ (1 << 63)).collect()
        }
        ArrowType::Date32 => {
            a.as_primitive::<Date32Type>().values().iter().map(|v| (*v as i64 as u64) ^ (1 << 63)).collect()
        }
        ArrowType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            a.as_primitive::<TimestampMicrosecondType>().values().iter().map(|v| (*v as u64) ^ (1 << 63)).collect()
        }
        ArrowType::Float64 => a
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|v| {
                // The IEEE 754 total order (f64::total_cmp) as an unsigned integer.
                let b = v.to_bits();
                if b >> 63 == 1 {
                    !b
                } else {
                    b | (1 << 63)
                }
            })
            .collect(),
        ArrowType::Boolean => a.as_boolean().values().iter().map(u64::from).collect(),
        ArrowType::Utf8 => {
            let s = a.as_string::<i32>();
            let mut ids: HashMap<&str, u32> = HashMap::new();
            let mut distinct: Vec<&str> = vec![];
            // While the column has shown at most FEW distinct values (an event type, a plan, a country), a value's
            // id is looked up in a small open-addressing table keyed by its length and first eight bytes (a
            // multiplicative mix of those, no hashing of the text; the whole text is compared only when they match
            // and it is longer). The table is at most a quarter full, so probes are short. Past FEW distinct
            // values, by hashing.
            const FEW: usize = 64;
            let mut few: Vec<(usize, u64)> = vec![];
            let mut slots = [u8::MAX; 256];
            let mut hashing = false;
            let first: Vec<u32> = (0..n)
                .map(|i| {
                    let v = if s.is_valid(i) { s.value(i) } else { "" };
                    if !hashing {
                        let b = v.as_bytes();
                        let sig = (b.len(), prefix(b));
                        let mut slot = ((sig.1 ^ (sig.0 as u64).rotate_left(56)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            >> 56) as usize;
                        while slots[slot] != u8::MAX {
                            let j = usize::from(slots[slot]);
                            if few[j] == sig && (b.len() <= 8 || distinct[j] == v) {
                                return j as u32;
                            }
                            slot = (slot + 1) % slots.len();
                        }
                        if few.len() < FEW {
                            slots[slot] = few.len() as u8;
                            few.push(sig);
                            distinct.push(v);
                            return distinct.len() as u32 - 1;
                        }
                        hashing = true;
                        ids.extend(distinct.iter().enumerate().map(|(j, d)| (*d, j as u32)));
                    }
                    *ids.entry(v).or_insert_with(|| {
                        distinct.push(v);
                        distinct.len() as u32 - 1
                    })
                })
                .collect();
            let mut order: Vec<u32> = (0..distinct.len() as u32).collect();
            order.sort_unstable_by_key(|&i| distinct[i as usize]);
            let mut rank = vec![0u64; distinct.len()];
            for (r, &i) in order.iter().enumerate() {
                rank[i as usize] = r as u64;
            }
            first.into_iter().map(|id| rank[id as usize]).collect()
        }
        _ => return None,
    };
    Some(match a.nulls().filter(|nb| nb.null_count() > 0) {
        None => vec![value],
        Some(nb) => vec![(0..n).map(|i| u64::from(nb.is_null(i))).collect(), value],
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{
        BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    /// The rows of `columns` in the order of `idx`, as text.
    fn rows(columns: &[ArrayRef], idx: &UInt32Array) -> Vec<String> {
        let fmts: Vec<ArrayFormatter> = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default().with_null("∅")).unwrap())
            .collect();
        idx.values()
            .iter()
            .map(|&i| fmts.iter().map(|f| f.value(i as usize).to_string()).collect::<Vec<_>>().join("|"))
            .collect()
    }

    #[test]
    fn storage_sort_matches_arrow_lexsort_and_keeps_equal_rows_in_order() {
        let mut x: u64 = 20260630;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let n = 5000;
        let words = ["", "a", "ab", "b", "ä", "z", "zz", "Z"];
        let text: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|_| {
            if next() % 11 == 0 {
                None
            } else {
                Some(words[next() as usize % words.len()])
            }
        })));
        let ints: ArrayRef = Arc::new(Int64Array::from_iter((0..n).map(|_| {
            if next() % 13 == 0 {
                None
            } else {
                Some(next() as i64 % 7 - 3)
            }
        })));
        let small: ArrayRef = Arc::new(Int32Array::from_iter_values((0..n).map(|_| next() as i32 % 5 - 2)));
        let floats: ArrayRef = Arc::new(Float64Array::from_iter((0..n).map(|_| match next() % 6 {
            0 => None,
            1 => Some(-0.0),
            2 => Some(0.0),
            k => Some((next() % 9) as f64 * if k == 3 { -1.5 } else { 2.25 }),
        })));
        let flags: ArrayRef = Arc::new(BooleanArray::from_iter((0..n).map(|_| Some(next() % 2 == 0))));
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from_iter_values((0..n).map(|_| next() as i64 % 1000 - 500))
                .with_timezone(crate::model::UTC),
        );
        for cols in [
            vec![text.clone(), ts.clone()],
            vec![ints.clone(), text.clone()],
            vec![small.clone(), floats.clone(), ts.clone()],
            vec![flags.clone(), text.clone(), ints.clone()],
            vec![floats.clone(), small.clone()],
        ] {
            sorts_like_lexsort(&cols);
        }
    }

    /// `sort_indices(cols)` orders the rows as Arrow's `lexsort_to_indices` does (ascending, nulls last), and
    /// equal rows keep their input order.
    fn sorts_like_lexsort(cols: &[ArrayRef]) {
        let options = arrow::compute::SortOptions { descending: false, nulls_first: false };
        let ours = sort_indices(cols).unwrap();
        let sort_columns: Vec<arrow::compute::SortColumn> =
            cols.iter().map(|c| arrow::compute::SortColumn { values: c.clone(), options: Some(options) }).collect();
        let theirs = arrow::compute::lexsort_to_indices(&sort_columns, None).unwrap();
        assert_eq!(rows(cols, &ours), rows(cols, &theirs));
        let r = rows(cols, &ours);
        for w in 0..r.len().saturating_sub(1) {
            if r[w] == r[w + 1] {
                assert!(ours.value(w) < ours.value(w + 1), "unstable at {w}");
            }
        }
    }

    /// Rows whose later sort columns arrive in order (an event file in time order, sorted by (type, time)) take
    /// the stable sort by the first key alone — by counting for text ranks (of few values, found by prefix, and
    /// of many, found by hashing) and small integers, by tuples for a wide integer range — and come out as
    /// Arrow's lexsort orders them, equal rows in input order; later columns out of order anywhere, or a first
    /// column with nulls, leave it to the general sort.
    #[test]
    fn sorted_later_keys_sort_by_the_first_alone() {
        let mut x: u64 = 7;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let n = 4000;
        let words = [
            "view",
            "search",
            "cart_add",
            "",
            "ä",
            "purchase",
            "login",
            "purchase_refund",
            "purchase_retry",
            "purchase_retry1",
        ];
        // More distinct values than the table of few holds: ids found by hashing after the first 64; many share a
        // length and their first eight bytes.
        let many_words: Vec<String> =
            (0..100).map(|i| format!("{}{}", ["purchase_", "a", ""][i % 3], (i * 7919) % 997)).collect();
        let many: ArrayRef =
            Arc::new(StringArray::from_iter_values((0..n).map(|_| many_words[next() as usize % 100].as_str())));
        let kinds: ArrayRef =
            Arc::new(StringArray::from_iter_values((0..n).map(|_| words[next() as usize % words.len()])));
        let kinds_nulls: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|_| {
            if next() % 9 == 0 {
                None
            } else {
                Some(words[next() as usize % words.len()])
            }
        })));
        let small: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|_| next() as i64 % 5 - 2)));
        let wide: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|_| next() as i64 * 1_000_003)));
        // Non-decreasing, with runs of equal times.
        let mut t = 0i64;
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from_iter_values((0..n).map(|_| {
                t += (next() % 3) as i64;
                t
            }))
            .with_timezone(crate::model::UTC),
        );
        let mut u = 0i64;
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| {
            if i % 7 == 0 {
                u += 1;
            }
            u
        })));
        let mut shuffled_ts: Vec<i64> = (0..n as i64).collect();
        shuffled_ts.swap(10, 3000);
        let shuffled: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(shuffled_ts));
        for (cols, fast) in [
            (vec![kinds.clone(), ts.clone()], true),
            (vec![many.clone(), ts.clone()], true),
            (vec![many.clone(), kinds.clone()], false),
            (vec![small.clone(), ts.clone()], true),
            (vec![wide.clone(), ts.clone()], true),
            (vec![kinds.clone(), ids.clone(), ts.clone()], true),
            (vec![kinds.clone(), ts.clone(), ids.clone()], true),
            (vec![kinds_nulls.clone(), ts.clone()], false),
            (vec![kinds.clone(), shuffled.clone()], false),
        ] {
            let keys: Vec<Vec<u64>> = cols.iter().flat_map(|c| order_keys(c.as_ref()).unwrap()).collect();
            assert_eq!(leading_key_order(&keys).is_some(), fast);
            sorts_like_lexsort(&cols);
        }
    }

    /// A batch of (`k` text with nulls, `n` int, `seq` = input position) rows from `from` on.
    fn scrambled(schema: &SchemaRef, from: u64, rows: u64) -> RecordBatch {
        let k: StringArray = (from..from + rows)
            .map(|i| if i % 31 == 0 { None } else { Some(["b", "a", "c", "ab", ""][(i * 7 % 5) as usize]) })
            .collect();
        let n = Int64Array::from_iter((from..from + rows).map(|i| (i * 7919 % 13) as i64 - 6));
        let seq = UInt64Array::from_iter_values(from..from + rows);
        RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(n), Arc::new(seq)]).unwrap()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", ArrowType::Utf8, true),
            Field::new("n", ArrowType::Int64, false),
            Field::new("seq", ArrowType::UInt64, false),
        ]))
    }

    fn drain(mut s: Sorted) -> Vec<RecordBatch> {
        let mut out = vec![];
        while let Some(b) = s.next_batch().unwrap() {
            out.push(b);
        }
        out
    }

    /// Sorts 60,000 scrambled rows by (k, n) with `memory` bytes; checks the order against Arrow's lexsort of
    /// the same rows (equal rows in input order, told apart by `seq`) and returns the runs spilled.
    fn external_sort_matches_lexsort(memory: usize) -> usize {
        let schema = schema();
        let mut sort = ExternalSort::new(schema.clone(), &["k".to_string(), "n".to_string()], memory).unwrap();
        let input: Vec<RecordBatch> = (0..15).map(|i| scrambled(&schema, i * 4000, 4000)).collect();
        for b in &input {
            sort.push(b.clone()).unwrap();
        }
        let runs = sort.runs.len();
        let out = drain(sort.finish().unwrap());
        assert!(out.iter().all(|b| b.num_rows() <= SORTED_BATCH_ROWS));
        let got = concat_batches(&schema, &out).unwrap();
        let all = concat_batches(&schema, &input).unwrap();
        let sort_columns: Vec<arrow::compute::SortColumn> = [0, 1]
            .iter()
            .map(|&c| arrow::compute::SortColumn { values: all.column(c).clone(), options: Some(ORDER) })
            .collect();
        let lex = arrow::compute::lexsort_to_indices(&sort_columns, None).unwrap();
        // lexsort is not stable: equal rows go in input order, after the rank of their key in lexsort's output.
        let keys = rows(&[all.column(0).clone(), all.column(1).clone()], &UInt32Array::from_iter_values(0..60_000));
        let mut rank: HashMap<&str, usize> = HashMap::new();
        for &i in lex.values() {
            let next = rank.len();
            rank.entry(keys[i as usize].as_str()).or_insert(next);
        }
        let mut by_rank: Vec<u32> = (0..60_000).collect();
        by_rank.sort_by_key(|&i| (rank[keys[i as usize].as_str()], i));
        let got_seq: Vec<u64> = got.column(2).as_primitive::<UInt64Type>().values().to_vec();
        let want_seq: Vec<u64> = by_rank.iter().map(|&i| i as u64).collect();
        assert_eq!(got_seq.len(), 60_000);
        assert_eq!(got_seq, want_seq);
        runs
    }

    #[test]
    fn an_external_sort_in_memory_matches_lexsort() {
        assert_eq!(external_sort_matches_lexsort(256 << 20), 0);
    }

    #[test]
    fn an_external_sort_through_spilled_runs_matches_lexsort() {
        // ~1.5 MB of rows and their sort keys under a 256 KiB budget: several runs merged back.
        assert!(external_sort_matches_lexsort(256 << 10) > 3);
    }

    #[test]
    fn sorted_input_passes_through_in_memory_and_through_runs() {
        let schema = schema();
        let sorted_batch = |from: u64, rows: u64| {
            let k = StringArray::from_iter_values((from..from + rows).map(|i| format!("{:08}", i / 3)));
            let n = Int64Array::from_iter_values((from..from + rows).map(|i| (i % 3) as i64));
            let seq = UInt64Array::from_iter_values(from..from + rows);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(n), Arc::new(seq)]).unwrap()
        };
        for memory in [64 << 20, 128 << 10] {
            let mut sort = ExternalSort::new(schema.clone(), &["k".to_string(), "n".to_string()], memory).unwrap();
            for i in 0..20 {
                sort.push(sorted_batch(i * 3000, 3000)).unwrap();
            }
            let spilled = !sort.runs.is_empty();
            assert_eq!(spilled, memory < 1 << 20, "memory {memory}");
            let sorted = sort.finish().unwrap();
            assert_eq!(matches!(sorted, Sorted::InOrder(_)), !spilled);
            let out = drain(sorted);
            let seq: Vec<u64> =
                out.iter().flat_map(|b| b.column(2).as_primitive::<UInt64Type>().values().to_vec()).collect();
            assert_eq!(seq, (0..60_000).collect::<Vec<u64>>());
        }
    }

    #[test]
    fn runs_sorted_by_a_column_without_integer_keys_merge_by_row_format() {
        use arrow::array::Int16Array;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", ArrowType::Int16, true),
            Field::new("seq", ArrowType::UInt64, false),
        ]));
        let mut sort = ExternalSort::new(schema.clone(), &["k".to_string(), "seq".to_string()], 128 << 10).unwrap();
        for b in 0..20u64 {
            let k = Int16Array::from_iter(
                (b * 2000..(b + 1) * 2000).map(|i| (i % 17 != 0).then_some((i * 31 % 101) as i16)),
            );
            let seq = UInt64Array::from_iter_values(b * 2000..(b + 1) * 2000);
            sort.push(RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(seq)]).unwrap()).unwrap();
        }
        assert!(sort.runs.len() > 3);
        let out = concat_batches(&schema, &drain(sort.finish().unwrap())).unwrap();
        let k = out.column(0).as_primitive::<arrow::datatypes::Int16Type>();
        let seq = out.column(1).as_primitive::<UInt64Type>();
        assert_eq!(out.num_rows(), 40_000);
        let key = |i: usize| (k.is_null(i), k.is_valid(i).then(|| k.value(i)), seq.value(i));
        for i in 1..out.num_rows() {
            assert!(key(i - 1) < key(i), "row {i}: {:?} then {:?}", key(i - 1), key(i));
        }
    }

    #[test]
    fn gallop_finds_the_end_of_the_prefix() {
        for len in 1..70 {
            for cut in 1..=len {
                assert_eq!(gallop(0, len, |i| i < cut), cut, "len {len} cut {cut}");
                if cut > 3 {
                    assert_eq!(gallop(3, len, |i| i < cut), cut);
                }
            }
        }
    }

    #[test]
    fn an_empty_sort_yields_nothing() {
        let sort = ExternalSort::new(schema(), &["k".to_string()], 1 << 20).unwrap();
        assert!(drain(sort.finish().unwrap()).is_empty());
    }

    #[test]
    fn a_sort_needs_known_columns() {
        assert!(ExternalSort::new(schema(), &[], 1 << 20).is_err());
        assert!(ExternalSort::new(schema(), &["nope".to_string()], 1 << 20).is_err());
    }

    #[test]
    fn take_rows_of_a_list_column_is_arrows_take() {
        use arrow::array::ListBuilder;
        use arrow::array::StringBuilder;
        let mut b = ListBuilder::new(StringBuilder::new());
        for i in 0..40u32 {
            match i % 5 {
                0 => b.append_null(),
                1 => b.append(true),
                _ => {
                    for j in 0..i % 4 {
                        if (i + j) % 7 == 0 {
                            b.values().append_null();
                        } else {
                            b.values().append_value(format!("t{i}-{j}"));
                        }
                    }
                    b.append(true);
                }
            }
        }
        let list: ArrayRef = Arc::new(b.finish());
        for a in [list.clone(), list.slice(3, 30)] {
            let idx = UInt32Array::from((0..a.len() as u32).rev().step_by(2).chain([0, 0, 7]).collect::<Vec<_>>());
            let ours = take_rows(a.as_ref(), &idx).unwrap();
            assert_eq!(ours.to_data(), take(a.as_ref(), &idx, None).unwrap().to_data());
            assert!(ours.null_count() > 0);
        }
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let idx = UInt32Array::from(vec![2, 1, 0]);
        assert_eq!(
            take_rows(ints.as_ref(), &idx).unwrap().to_data(),
            take(ints.as_ref(), &idx, None).unwrap().to_data()
        );
    }
}
