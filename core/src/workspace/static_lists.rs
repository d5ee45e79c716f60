//! Static-list segments: a segment that is an uploaded list of keys (the "these customers" segment).
//!
//! A static segment is a segment like any other — rules reference it (`{"in_segment": "vip_list"}`), it is
//! evaluated into membership versions with entered/exited, counted, previewed and explained — whose members are
//! the entities whose key is in its list. The list is stored durably: each change (replace, add, remove) writes
//! one Parquet file of the whole sorted, distinct key list under `static/<segment>/` and commits a new version
//! row in the catalog in the same transaction as the segment definition; the latest version is the list, and
//! [`Workspace::vacuum`] forgets old versions like old snapshots.
//!
//! **Keys no entity has (yet)** are kept in the list, counted in [`StaticListReport::unmatched`], and are not
//! members: membership is the list intersected with the entity table at evaluation time, so such a key becomes
//! a member (and "enters") when an entity with it is ingested, and leaves when the entity is gone. **Null keys,
//! keys of another type** (text for an integer key, a value out of an `int32` key's range) and a batch without
//! a usable key column are refused with [`Error::InvalidArgument`] naming the row; nothing is committed.
//! Duplicates are kept once. At most [`MAX_STATIC_LIST_KEYS`](crate::limits::MAX_STATIC_LIST_KEYS) keys are
//! read per call.
//!
//! The definition stored for a static segment has the rule `{"in_segment": <itself>}` (its list), so listing
//! segments shows what it is; defining a rule segment under the same name turns it back into a rule segment and
//! forgets the list.

use std::sync::{Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType as ArrowType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::{HashMap, TableReference};
use datafusion::datasource::{MemTable, TableProvider};
use futures::StreamExt;
use serde::Serialize;

use crate::catalog::StaticListVersion;
use crate::error::{Error, Result};
use crate::limits::{MAX_RULE_STRING_BYTES, MAX_STATIC_LIST_KEYS};
use crate::model::{check_name, normalize_name, DataType, Entity};
use crate::rules::{column, Checked, CheckedSegmentRef, Rule, SegmentRef};
use crate::segment::SegmentDefinition;
use crate::source::{RecordBatchSource, ScanRequest, Source};

use super::Workspace;

/// What a change of a static list did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticListReport {
    /// Segment name.
    pub segment: String,
    /// The committed version of the list.
    pub version: i64,
    /// `replace`, `add` or `remove`.
    pub operation: String,
    /// Keys read from the upload (duplicates included).
    pub keys_read: u64,
    /// Distinct keys in the list now.
    pub key_count: u64,
    /// Keys of the list that an entity has now (the members an evaluation would select).
    pub matched: u64,
    /// Keys of the list that no entity has now (kept; they become members when such an entity is ingested).
    pub unmatched: u64,
}

/// How a change combines the uploaded keys with the current list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Replace,
    Add,
    Remove,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Replace => "replace",
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }
}

/// Sorted, distinct keys of one key type.
#[derive(Debug)]
enum Keys {
    I64(Vec<i64>),
    I32(Vec<i32>),
    Str(Vec<String>),
}

impl Keys {
    fn empty(t: &DataType) -> Keys {
        match t {
            DataType::Int64 => Keys::I64(vec![]),
            DataType::Int32 => Keys::I32(vec![]),
            _ => Keys::Str(vec![]),
        }
    }
    fn len(&self) -> usize {
        match self {
            Keys::I64(v) => v.len(),
            Keys::I32(v) => v.len(),
            Keys::Str(v) => v.len(),
        }
    }
    fn normalize(&mut self) {
        match self {
            Keys::I64(v) => {
                v.sort_unstable();
                v.dedup();
            }
            Keys::I32(v) => {
                v.sort_unstable();
                v.dedup();
            }
            Keys::Str(v) => {
                v.sort_unstable();
                v.dedup();
            }
        }
    }
    fn array(self) -> ArrayRef {
        match self {
            Keys::I64(v) => Arc::new(Int64Array::from(v)),
            Keys::I32(v) => Arc::new(Int32Array::from(v)),
            Keys::Str(v) => Arc::new(StringArray::from(v)),
        }
    }
    /// Appends the keys of a stored key column.
    fn extend_from(&mut self, a: &ArrayRef) -> Result<()> {
        match self {
            Keys::I64(v) => {
                v.extend_from_slice(arrow::compute::cast(a, &ArrowType::Int64)?.as_primitive::<Int64Type>().values())
            }
            Keys::I32(v) => {
                v.extend_from_slice(arrow::compute::cast(a, &ArrowType::Int32)?.as_primitive::<Int32Type>().values())
            }
            Keys::Str(v) => {
                let s = arrow::compute::cast(a, &ArrowType::Utf8)?;
                v.extend(s.as_string::<i32>().iter().map(|x| x.unwrap_or_default().to_string()))
            }
        }
        Ok(())
    }
    /// Combines `self` (the current list, sorted) with `other` (the upload, sorted) by `op`.
    fn combine(self, other: Keys, op: Op) -> Keys {
        fn merge<T: Ord + Clone>(a: Vec<T>, b: Vec<T>, op: Op) -> Vec<T> {
            match op {
                Op::Replace => b,
                Op::Add => {
                    let mut out = a;
                    out.extend(b);
                    out.sort_unstable();
                    out.dedup();
                    out
                }
                Op::Remove => {
                    let mut j = 0;
                    a.into_iter()
                        .filter(|x| {
                            while j < b.len() && b[j] < *x {
                                j += 1;
                            }
                            !(j < b.len() && b[j] == *x)
                        })
                        .collect()
                }
            }
        }
        match (self, other) {
            (Keys::I64(a), Keys::I64(b)) => Keys::I64(merge(a, b, op)),
            (Keys::I32(a), Keys::I32(b)) => Keys::I32(merge(a, b, op)),
            (Keys::Str(a), Keys::Str(b)) => Keys::Str(merge(a, b, op)),
            (_, b) => b,
        }
    }
}

/// The column of `batch` that holds the keys: the one named after the key attribute, or the only column.
fn key_column<'a>(batch: &'a RecordBatch, key: &str) -> Result<&'a ArrayRef> {
    if let Some(c) = batch.column_by_name(key) {
        return Ok(c);
    }
    if batch.num_columns() == 1 {
        return Ok(batch.column(0));
    }
    let names: Vec<String> = batch.schema().fields().iter().map(|f| format!("`{}`", f.name())).collect();
    Err(Error::InvalidArgument(format!(
        "static list keys: expected one column, or a column named `{key}`; got {}",
        if names.is_empty() { "no columns".to_string() } else { names.join(", ") }
    )))
}

/// Appends the keys of one uploaded column, refusing nulls and values of another type. `first_row` is the
/// 1-based number of the column's first row in the upload.
fn append_upload(keys: &mut Keys, col: &ArrayRef, entity: &Entity, key: &str, first_row: u64) -> Result<()> {
    let key_type = entity.attr(key)?.data_type.clone();
    if let Some(i) = (0..col.len()).find(|&i| col.is_null(i)) {
        return Err(Error::InvalidArgument(format!(
            "static list keys: row {} is null; a static list holds keys of `{}`, never null",
            first_row + i as u64,
            entity.name
        )));
    }
    let wrong = || {
        Error::InvalidArgument(format!(
            "static list keys: the key column has type {}, but the key `{key}` of `{}` is {key_type}",
            col.data_type(),
            entity.name
        ))
    };
    let is_int = |t: &ArrowType| t.is_integer();
    match keys {
        Keys::I64(v) => {
            if !is_int(col.data_type()) {
                return Err(wrong());
            }
            if col.data_type() == &ArrowType::UInt64 {
                let u = col.as_primitive::<arrow::datatypes::UInt64Type>();
                if let Some(i) = u.values().iter().position(|&x| x > i64::MAX as u64) {
                    return Err(Error::InvalidArgument(format!(
                        "static list keys: row {} does not fit the int64 key `{key}`",
                        first_row + i as u64
                    )));
                }
            }
            v.extend_from_slice(arrow::compute::cast(col, &ArrowType::Int64)?.as_primitive::<Int64Type>().values());
        }
        Keys::I32(v) => {
            if !is_int(col.data_type()) {
                return Err(wrong());
            }
            // Through int64 (lossless for every integer type but uint64, checked first), then range-checked.
            if col.data_type() == &ArrowType::UInt64 {
                let u = col.as_primitive::<arrow::datatypes::UInt64Type>();
                if let Some(i) = u.values().iter().position(|&x| x > i32::MAX as u64) {
                    return Err(Error::InvalidArgument(format!(
                        "static list keys: row {} does not fit the int32 key `{key}`",
                        first_row + i as u64
                    )));
                }
            }
            let wide = arrow::compute::cast(col, &ArrowType::Int64)?;
            let wide = wide.as_primitive::<Int64Type>().values();
            if let Some(i) = wide.iter().position(|&x| i32::try_from(x).is_err()) {
                return Err(Error::InvalidArgument(format!(
                    "static list keys: row {} does not fit the int32 key `{key}`",
                    first_row + i as u64
                )));
            }
            v.extend(wide.iter().map(|&x| x as i32));
        }
        Keys::Str(v) => {
            let s = match col.data_type() {
                ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
                    arrow::compute::cast(col, &ArrowType::Utf8)?
                }
                _ => return Err(wrong()),
            };
            let s = s.as_string::<i32>();
            for (i, x) in s.iter().enumerate() {
                let x = x.unwrap_or_default();
                if x.len() > MAX_RULE_STRING_BYTES {
                    return Err(Error::InvalidArgument(format!(
                        "static list keys: row {} is {} bytes long; keys are at most {MAX_RULE_STRING_BYTES} bytes \
                         (MAX_RULE_STRING_BYTES)",
                        first_row + i as u64,
                        x.len()
                    )));
                }
                v.push(x.to_string());
            }
        }
    }
    Ok(())
}

impl Workspace {
    /// Defines (or replaces) segment `name` of `entity` as a static list of keys read from `keys` (one column, or
    /// a column named after the entity's key). See the [module documentation](self) for what happens to keys
    /// no entity has, and what is refused.
    ///
    /// Replacing a rule segment keeps its description, split, retention and run history: the next evaluation
    /// diffs against its last run.
    ///
    /// ```no_run
    /// # async fn f(ws: segkit::Workspace, ids: Vec<segkit::deps::arrow::array::RecordBatch>) -> segkit::Result<()> {
    /// let report = ws.define_static_segment_batches("vip_list", "users", ids).await?;
    /// println!("{} keys, {} without a user yet", report.key_count, report.unmatched);
    /// let run = ws.evaluate("vip_list").await?;
    /// # Ok(()) }
    /// ```
    pub async fn define_static_segment(&self, name: &str, entity: &str, keys: &dyn Source) -> Result<StaticListReport> {
        self.change_static_list(name, Some(entity), Op::Replace, keys).await
    }

    /// [`define_static_segment`](Self::define_static_segment) from in-memory batches (zero batches: an empty list
    /// is not expressible this way; use a [`RecordBatchSource::empty`] source).
    pub async fn define_static_segment_batches(
        &self,
        name: &str,
        entity: &str,
        keys: Vec<RecordBatch>,
    ) -> Result<StaticListReport> {
        let source = RecordBatchSource::new("static keys", keys)?;
        self.define_static_segment(name, entity, &source).await
    }

    /// Adds keys to static segment `name` (keys already listed are kept once).
    pub async fn add_static_keys(&self, name: &str, keys: &dyn Source) -> Result<StaticListReport> {
        self.change_static_list(name, None, Op::Add, keys).await
    }

    /// Removes keys from static segment `name` (keys not listed are ignored).
    pub async fn remove_static_keys(&self, name: &str, keys: &dyn Source) -> Result<StaticListReport> {
        self.change_static_list(name, None, Op::Remove, keys).await
    }

    /// The current keys of static segment `name`, ascending, one column named after the entity key (also the
    /// keys no entity has).
    pub async fn static_keys(&self, name: &str) -> Result<RecordBatch> {
        let name = normalize_name(name);
        let list = self.require_static(&name)?;
        let def = self.segment(&name)?;
        let entity = self.entity(&def.entity)?;
        let schema = static_schema(&entity)?;
        let batches = self.inner.store.read_all(&list.file).await?;
        let batches =
            batches.iter().map(|b| crate::ingest::pipeline::conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        Ok(arrow::compute::concat_batches(&schema, &batches)?)
    }

    /// The committed versions of static segment `name`, oldest first.
    pub fn static_list_versions(&self, name: &str) -> Result<Vec<StaticListVersion>> {
        let name = normalize_name(name);
        self.require_static(&name)?;
        self.inner.catalog.static_list_versions(&name)
    }

    /// Whether segment `name` is a static list.
    pub fn is_static_segment(&self, name: &str) -> Result<bool> {
        Ok(self.inner.catalog.static_list(&normalize_name(name))?.is_some())
    }

    fn require_static(&self, name: &str) -> Result<StaticListVersion> {
        self.segment(name)?;
        self.inner.catalog.static_list(name)?.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "segment `{name}` is a rule segment, not a static list; define it with define_static_segment"
            ))
        })
    }

    async fn change_static_list(
        &self,
        name: &str,
        entity: Option<&str>,
        op: Op,
        source: &dyn Source,
    ) -> Result<StaticListReport> {
        let name = normalize_name(name);
        check_name(&name, "segment")?;
        let _guard = self.entity_lock(&format!("static list:{name}")).lock_owned().await;
        let current = self.inner.catalog.static_list(&name)?;
        let existing = self.inner.catalog.segment(&name)?;
        let entity_name = match (entity, &existing) {
            (Some(e), _) => normalize_name(e),
            (None, Some(def)) if current.is_some() => def.entity.clone(),
            (None, _) => {
                self.segment(&name)?;
                return Err(Error::InvalidArgument(format!(
                    "segment `{name}` is a rule segment, not a static list; define it with define_static_segment"
                )));
            }
        };
        if existing.is_none() {
            self.check_new_segment_name(&name)?;
        }
        let entity = self
            .entity(&entity_name)
            .map_err(|e| Error::definition(format!("segment {name}.entity"), e.to_string()))?;
        let Some(key) = entity.key.clone() else {
            return Err(Error::definition(
                format!("segment {name}.entity"),
                format!("entity `{}` has no key; segments select keyed entities", entity.name),
            ));
        };
        let key_type = entity.attr(&key)?.data_type.clone();
        // The upload, sorted and distinct.
        let mut upload = Keys::empty(&key_type);
        let mut stream = source.scan(&ScanRequest::all()).await?;
        let mut read = 0u64;
        while let Some(b) = stream.next().await {
            let b = b?;
            if b.num_rows() == 0 {
                continue;
            }
            if read + b.num_rows() as u64 > MAX_STATIC_LIST_KEYS as u64 {
                return Err(Error::InvalidArgument(format!(
                    "static list keys: more than {MAX_STATIC_LIST_KEYS} keys in one upload \
                     (MAX_STATIC_LIST_KEYS); upload them in parts with add_static_keys"
                )));
            }
            append_upload(&mut upload, key_column(&b, &key)?, &entity, &key, read + 1)?;
            read += b.num_rows() as u64;
        }
        drop(stream);
        upload.normalize();
        // Combined with the current list (only of the same entity: a replace onto another entity starts afresh).
        let same_entity = existing.as_ref().is_some_and(|d| d.entity == entity.name);
        let list = match (&current, op) {
            (Some(cur), Op::Add | Op::Remove) if same_entity => {
                let mut now = Keys::empty(&key_type);
                for b in self.inner.store.read_all(&cur.file).await? {
                    now.extend_from(b.column(0))?;
                }
                now.combine(upload, op)
            }
            _ => upload,
        };
        let key_count = list.len() as u64;
        let schema = static_schema(&entity)?;
        let batch = RecordBatch::try_new(schema.clone(), vec![list.array()])?;
        let dir = format!("static/{}", crate::store::path_segment(&name));
        let mut writer = self.inner.store.writer(&dir, schema, Some(&key)).single_file();
        if let Err(e) = writer.write(&batch).await {
            writer.abort().await;
            return Err(e);
        }
        drop(batch);
        let file = writer.finish().await?.remove(0);
        let def = match existing {
            Some(d) if d.entity == entity.name => SegmentDefinition { rule: own_rule(&name), ..d },
            _ => SegmentDefinition::new(name.clone(), entity.name.clone(), own_rule(&name)),
        };
        let expected = current.as_ref().map(|c| c.version).unwrap_or(0);
        let version =
            match self.inner.catalog.commit_static_list(&def, expected, &file.path, key_count, file.bytes, op.name()) {
                Ok(v) => v,
                Err(e) => {
                    self.inner.store.delete(std::slice::from_ref(&file.path)).await;
                    return Err(e);
                }
            };
        let matched = self.count(&name).await?; // also releases the upload's memory (crate::memory)
        Ok(StaticListReport {
            segment: name,
            version: version.version,
            operation: op.name().to_string(),
            keys_read: read,
            key_count,
            matched,
            unmatched: key_count.saturating_sub(matched),
        })
    }

    /// The current keys of a static list as an in-memory table (for [`PlanSources`](super::planning)).
    pub(super) async fn static_table(&self, name: &str, list: &StaticListVersion) -> Result<Arc<dyn TableProvider>> {
        Ok(self.decoded_list(name, list).await?.table.clone())
    }

    /// A static list version decoded in memory. A list version's file never changes, so the decoded list is
    /// kept (the last [`STATIC_TABLES_KEPT`] versions used) and later evaluations of the list skip reading and
    /// decoding it again.
    pub(super) async fn decoded_list(&self, name: &str, list: &StaticListVersion) -> Result<Arc<DecodedList>> {
        let cached = |kept: &[Arc<DecodedList>]| kept.iter().find(|d| d.file == list.file).cloned();
        if let Some(d) = cached(&self.inner.static_tables.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(d);
        }
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let schema = static_schema(&entity)?;
        let batches = self.inner.store.read_all(&list.file).await?;
        let batches =
            batches.iter().map(|b| crate::ingest::pipeline::conform(b, &schema)).collect::<Result<Vec<_>>>()?;
        let keys = match batches.len() {
            1 => batches[0].column(0).clone(),
            _ => arrow::compute::concat_batches(&schema, &batches)?.column(0).clone(),
        };
        let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);
        let decoded = Arc::new(DecodedList { file: list.file.clone(), table, keys, positions: OnceLock::new() });
        let mut kept = self.inner.static_tables.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|d| d.file != list.file);
        if kept.len() >= STATIC_TABLES_KEPT {
            kept.remove(0);
        }
        kept.push(decoded.clone());
        Ok(decoded)
    }

    /// The members of the static segment `name` (its list's keys that the entity has now), sorted; `None` when
    /// `name` is not a static list or its key type has no index (then the rule's plan computes them).
    ///
    /// One pass over the entity's key column: each stored key is looked up in the list's key → position index
    /// and marks that position, and the marked keys, already in list order, are the members — no join, and no
    /// sort of the result.
    pub(super) async fn static_members(&self, entity: &Entity, name: &str) -> Result<Option<RecordBatch>> {
        let Some(list) = self.inner.catalog.static_list(name)? else {
            return Ok(None);
        };
        let decoded = self.decoded_list(name, &list).await?;
        let Some(positions) = decoded.positions() else {
            return Ok(None);
        };
        let key = entity.key.clone().unwrap_or_default();
        let df = self.inner.ctx.table(TableReference::bare(entity.name.as_str())).await?.select(vec![column(&key)])?;
        let mut marks = positions.new_marks(decoded.keys.len());
        let mut stream = df.execute_stream().await?;
        while let Some(b) = stream.next().await {
            positions.mark(b?.column(0), &mut marks)?;
        }
        let members = arrow::compute::filter(&decoded.keys, &positions.found(&decoded.keys, marks)?)?;
        Ok(Some(RecordBatch::try_new(static_schema(entity)?, vec![members])?))
    }
}

/// A static list version decoded in memory (see [`Workspace::decoded_list`]).
pub(super) struct DecodedList {
    /// The list version's file.
    file: String,
    /// The keys as a table, for rules that reference the list.
    table: Arc<dyn TableProvider>,
    /// The keys, sorted and distinct.
    keys: ArrayRef,
    /// How keys are found in `keys`, built on first use by [`Workspace::static_members`].
    positions: OnceLock<Option<Positions>>,
}

impl DecodedList {
    fn positions(&self) -> Option<&Positions> {
        self.positions.get_or_init(|| Positions::build(&self.keys)).as_ref()
    }
}

/// How a decoded list finds a key: integer keys in a range at most [`DENSE_BITS_PER_KEY`] times the number
/// of keys wide have one bit per value of the range (a few MiB, cache-friendly); other keys map to their
/// position through a hash map with a randomly seeded hasher.
enum Positions {
    /// Bit `k - min` is set for every listed key `k`; `span` bits.
    Dense {
        min: i64,
        span: u64,
        listed: Vec<u64>,
    },
    I64(HashMap<i64, u32>),
    I32(HashMap<i32, u32>),
    Str(HashMap<Box<str>, u32>),
}

/// The widest key range, in bits per listed key, that [`Positions::Dense`] covers (at most 16 bytes per key,
/// about what a hash map entry costs).
const DENSE_BITS_PER_KEY: u64 = 64;

/// Sets bit `i` of a bitset.
fn set_bit(bits: &mut [u64], i: u64) {
    bits[(i >> 6) as usize] |= 1 << (i & 63);
}

impl Positions {
    fn build(keys: &ArrayRef) -> Option<Positions> {
        fn index<K: std::hash::Hash + Eq>(it: impl ExactSizeIterator<Item = K>) -> HashMap<K, u32> {
            let mut m = HashMap::with_capacity(it.len());
            m.extend(it.enumerate().map(|(i, k)| (k, i as u32)));
            m
        }
        if keys.len() > u32::MAX as usize {
            return None;
        }
        let ints: Option<Vec<i64>> = match keys.data_type() {
            ArrowType::Int64 => Some(keys.as_primitive::<Int64Type>().values().to_vec()),
            ArrowType::Int32 => Some(keys.as_primitive::<Int32Type>().values().iter().map(|&k| k as i64).collect()),
            _ => None,
        };
        // Sorted keys: the range is first..=last.
        if let Some(v) = ints.filter(|v| !v.is_empty()) {
            let span = (v[v.len() - 1] as i128 - v[0] as i128 + 1) as u128;
            if span <= (DENSE_BITS_PER_KEY as u128) * v.len() as u128 + 65_536 {
                let (min, span) = (v[0], span as u64);
                let mut listed = vec![0u64; span.div_ceil(64) as usize];
                for k in v {
                    set_bit(&mut listed, k.wrapping_sub(min) as u64);
                }
                return Some(Positions::Dense { min, span, listed });
            }
        }
        Some(match keys.data_type() {
            ArrowType::Int64 => Positions::I64(index(keys.as_primitive::<Int64Type>().values().iter().copied())),
            ArrowType::Int32 => Positions::I32(index(keys.as_primitive::<Int32Type>().values().iter().copied())),
            ArrowType::Utf8 => {
                let s = keys.as_string::<i32>();
                Positions::Str(index((0..s.len()).map(|i| Box::<str>::from(s.value(i)))))
            }
            _ => return None,
        })
    }

    /// An empty bitset for [`Positions::mark`]: a bit per key of the range, or per position in the list.
    fn new_marks(&self, keys: usize) -> Vec<u64> {
        match self {
            Positions::Dense { span, .. } => vec![0; span.div_ceil(64) as usize],
            _ => vec![0; keys.div_ceil(64)],
        }
    }

    /// Marks every key of `col` that is in the list.
    fn mark(&self, col: &ArrayRef, marks: &mut [u64]) -> Result<()> {
        match self {
            Positions::Dense { min, span, listed } => {
                let c = arrow::compute::cast(col, &ArrowType::Int64)?;
                for &k in c.as_primitive::<Int64Type>().values() {
                    let o = k.wrapping_sub(*min) as u64;
                    if o < *span {
                        let w = (o >> 6) as usize;
                        marks[w] |= listed[w] & (1 << (o & 63));
                    }
                }
            }
            Positions::I64(m) => {
                let c = arrow::compute::cast(col, &ArrowType::Int64)?;
                for k in c.as_primitive::<Int64Type>().values() {
                    if let Some(&i) = m.get(k) {
                        set_bit(marks, i as u64);
                    }
                }
            }
            Positions::I32(m) => {
                let c = arrow::compute::cast(col, &ArrowType::Int32)?;
                for k in c.as_primitive::<Int32Type>().values() {
                    if let Some(&i) = m.get(k) {
                        set_bit(marks, i as u64);
                    }
                }
            }
            Positions::Str(m) => {
                let c = arrow::compute::cast(col, &ArrowType::Utf8)?;
                for k in c.as_string::<i32>().iter().flatten() {
                    if let Some(&i) = m.get(k) {
                        set_bit(marks, i as u64);
                    }
                }
            }
        }
        Ok(())
    }

    /// Which of the list's `keys` were marked.
    fn found(&self, keys: &ArrayRef, marks: Vec<u64>) -> Result<BooleanArray> {
        let bit = |bits: &[u64], i: u64| bits[(i >> 6) as usize] >> (i & 63) & 1 == 1;
        match self {
            Positions::Dense { min, .. } => {
                let c = arrow::compute::cast(keys, &ArrowType::Int64)?;
                let v = c.as_primitive::<Int64Type>().values();
                Ok(v.iter().map(|&k| Some(bit(&marks, k.wrapping_sub(*min) as u64))).collect())
            }
            _ => Ok((0..keys.len() as u64).map(|i| Some(bit(&marks, i))).collect()),
        }
    }
}

/// How many static-list versions [`Workspace::static_table`] keeps decoded in memory.
pub(super) const STATIC_TABLES_KEPT: usize = 4;

/// One non-null column named and typed like the entity key.
fn static_schema(entity: &Entity) -> Result<SchemaRef> {
    let key = entity.key.clone().unwrap_or_default();
    Ok(Arc::new(Schema::new(vec![Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false)])))
}

/// The rule stored for a static segment: a reference to its own list.
fn own_rule(name: &str) -> Rule {
    Rule::InSegment(SegmentRef { segment: name.to_string(), negated: false, stored: false })
}

/// The checked rule a static segment evaluates: membership in its own list.
pub(super) fn own_checked(name: &str) -> Checked {
    Checked::InSegment(Box::new(CheckedSegmentRef {
        id: 0,
        segment: name.to_string(),
        negated: false,
        stored: false,
        static_list: true,
        rule: Checked::And(vec![]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_integer_lists_use_a_bitset_and_others_a_hash() {
        let dense: ArrayRef = Arc::new(Int64Array::from((0..1000).map(|i| i * 3).collect::<Vec<_>>()));
        let sparse: ArrayRef = Arc::new(Int64Array::from((0..1000).map(|i| i * 1_000_003).collect::<Vec<_>>()));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert!(matches!(Positions::build(&dense), Some(Positions::Dense { min: 0, span: 2998, .. })));
        assert!(matches!(Positions::build(&sparse), Some(Positions::I64(_))));
        assert!(matches!(Positions::build(&text), Some(Positions::Str(_))));
        // Marks and the found mask: keys outside the range, and inside it but not listed, are not found.
        for list in [&dense, &sparse] {
            let p = Positions::build(list).unwrap();
            let mut marks = p.new_marks(list.len());
            let probe: ArrayRef = Arc::new(Int64Array::from(vec![-3, 0, 1, 6, 2997, 3_000_009, i64::MAX, i64::MIN]));
            p.mark(&probe, &mut marks).unwrap();
            let found = p.found(list, marks).unwrap();
            let hits: Vec<i64> = (0..list.len())
                .filter(|&i| found.value(i))
                .map(|i| list.as_primitive::<Int64Type>().value(i))
                .collect();
            let want = if matches!(p, Positions::Dense { .. }) { vec![0, 6, 2997] } else { vec![0, 3_000_009] };
            assert_eq!(hits, want);
        }
    }
}
