//! The store: entity data as Parquet files on an `object_store` (a local directory by default; `s3://` URLs
//! work through the same code). Files are immutable; what is visible is decided by catalog snapshots.
//!
//! Storage choices (measured with `segkit-bench`, see the README): LZ4 compression (fast to decode), row groups
//! of 128 Ki rows with page statistics and the page index (row-group and page pruning for range rules), and
//! files sorted by the entity's `indexed` attributes, then the profile key or the event time (so rules on them
//! prune, and profile upserts merge one old batch at a time).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
#[allow(deprecated)] // The replacement (a hand-written AsyncFileReader) buys nothing here yet.
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::catalog::DataFile;
use crate::error::{Error, Result};
use crate::source::BatchStream;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per file before a new file is started.
pub const FILE_ROWS: usize = 1024 * 1024;
/// Largest dictionary page of a column chunk; a column whose dictionary would grow beyond it is written with
/// plain pages (see [`Store::writer_properties`]).
pub const DICTIONARY_PAGE_BYTES: usize = 128 * 1024;

/// Rows of a file's first batch at which [`Store::writer_properties`] looks to choose integer encodings.
const ENCODING_SAMPLE_ROWS: usize = 4096;

/// Whether `a` is an integer or timestamp column (`Int32`, `Int64`, `Date32`, `Timestamp`) of which the first
/// [`ENCODING_SAMPLE_ROWS`] non-null values (at least 256 of them) are more than half distinct: a dictionary
/// of its row group would not pay.
fn mostly_distinct(a: &dyn arrow::array::Array) -> bool {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType as T, Int32Type, Int64Type};
    let a = a.slice(0, a.len().min(ENCODING_SAMPLE_ROWS));
    let mut values: Vec<i64> = match a.data_type() {
        T::Int32 | T::Date32 => match arrow::compute::cast(&a, &T::Int32) {
            Ok(c) => c.as_primitive::<Int32Type>().iter().flatten().map(i64::from).collect(),
            Err(_) => return false,
        },
        T::Int64 | T::Timestamp(..) => match arrow::compute::cast(&a, &T::Int64) {
            Ok(c) => c.as_primitive::<Int64Type>().iter().flatten().collect(),
            Err(_) => return false,
        },
        _ => return false,
    };
    if values.len() < 256 {
        return false;
    }
    values.sort_unstable();
    let total = values.len();
    values.dedup();
    values.len() * 2 > total
}

/// Where entity data lives.
#[derive(Debug, Clone)]
pub struct Store {
    store: Arc<dyn ObjectStore>,
    base_url: Url,
    base_path: ObjectPath,
    /// Decoded footers of files read by [`Store::read_rows`], newest last.
    footers: Arc<FooterCache>,
    /// The local file system under a local store (`None` for a remote one), for [`Store::durable`] syncs.
    local: Option<Arc<LocalFileSystem>>,
    /// Every finished file is synced to disk, with its directory, before the writer reports it (see
    /// [`Store::durable`]).
    durable: bool,
}

/// How [`Store::read_rows`] loads a footer: with the page index when the file has one (segkit's files do), so a
/// read of a few rows fetches and decodes only the pages that hold them.
fn page_index_options() -> parquet::arrow::arrow_reader::ArrowReaderOptions {
    parquet::arrow::arrow_reader::ArrowReaderOptions::new()
        .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional)
}

/// Most file footers [`Store::read_rows`] keeps decoded.
const FOOTER_CACHE_FILES: usize = 64;

/// Decoded Parquet footers by file path. A file's content never changes once it has its (random, unique) name,
/// so an entry never goes stale; the cache holds the [`FOOTER_CACHE_FILES`] most recently read files.
#[derive(Debug, Default)]
struct FooterCache(std::sync::Mutex<std::collections::VecDeque<(String, ArrowReaderMetadata)>>);

impl FooterCache {
    fn get(&self, rel: &str) -> Option<ArrowReaderMetadata> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().rev().find(|(p, _)| p == rel).map(|(_, m)| m.clone())
    }

    fn put(&self, rel: &str, meta: ArrowReaderMetadata) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|(p, _)| p != rel);
        if g.len() >= FOOTER_CACHE_FILES {
            g.pop_front();
        }
        g.push_back((rel.to_string(), meta));
    }
}

impl Store {
    /// A store in a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let base_url = Url::from_directory_path(&dir)
            .map_err(|_| Error::InvalidArgument(format!("cannot turn {} into a URL", dir.display())))?;
        let base_path = ObjectPath::from_absolute_path(&dir)
            .map_err(|e| Error::InvalidArgument(format!("bad store path {}: {e}", dir.display())))?;
        let local = Arc::new(LocalFileSystem::new());
        Ok(Store {
            store: local.clone(),
            base_url,
            base_path,
            footers: Default::default(),
            local: Some(local),
            durable: false,
        })
    }

    /// A store at a URL such as `s3://bucket/prefix` or `file:///data/ws`, configured by `options`
    /// (for example `aws_region`, `aws_endpoint`; credentials are read from the environment when absent).
    pub fn from_url(url: &str, options: &[(String, String)]) -> Result<Self> {
        let mut base_url =
            Url::parse(url).map_err(|e| Error::InvalidArgument(format!("bad store URL {url:?}: {e}")))?;
        if base_url.scheme() == "file" {
            let p = base_url.to_file_path().map_err(|_| Error::InvalidArgument(format!("bad file URL {url:?}")))?;
            return Store::local(&p);
        }
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        let (store, base_path) = object_store::parse_url_opts(&base_url, options.iter().cloned())?;
        Ok(Store {
            store: Arc::from(store),
            base_url,
            base_path,
            footers: Default::default(),
            local: None,
            durable: false,
        })
    }

    /// With `durable`, every Parquet file a [`RollingWriter`] finishes is synced to disk (`fsync` of the file,
    /// then of its directory, so its name survives too) before the writer reports it, so a catalog commit that
    /// references it cannot outlive it in a power loss. Each sync counts in
    /// [`FILES_SYNCED`](crate::monitoring::FILES_SYNCED). This applies to a local store only: an object store
    /// such as S3 has stored an object durably once its upload completed. Off by default.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether finished files are synced to disk (see [`Store::durable`]).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Syncs the finished file `rel` and its directory to disk, when the store is local and durable.
    async fn sync_finished(&self, rel: &str) -> Result<()> {
        let (true, Some(local)) = (self.durable, &self.local) else { return Ok(()) };
        let file = local.path_to_filesystem(&self.path(rel))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)??;
        let kind = rel.split('/').next().unwrap_or_default().to_string();
        metrics::counter!(crate::monitoring::FILES_SYNCED, "kind" => kind).increment(1);
        tracing::debug!(file = rel, "synced to disk");
        Ok(())
    }

    /// The underlying object store.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The URL of the store's root (ends with `/`).
    pub fn url(&self) -> &Url {
        &self.base_url
    }

    /// The URL that DataFusion should register [`object_store`](Self::object_store) under.
    pub fn registration_url(&self) -> Url {
        let mut u = self.base_url.clone();
        u.set_path("/");
        u
    }

    fn path(&self, rel: &str) -> ObjectPath {
        let mut p = self.base_path.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// The full URL of a file relative to the root.
    pub fn file_url(&self, rel: &str) -> Result<Url> {
        self.base_url.join(rel).map_err(|e| Error::InvalidArgument(format!("bad relative path {rel:?}: {e}")))
    }

    /// Writer settings for entity and membership files of `schema`, sorted by the comma-separated columns of
    /// `sorting_hint`.
    ///
    /// The last sort column holds (nearly) distinct values — the key of a profile or a membership, the time of
    /// an event — where a dictionary never pays (the writer would hash every value only to fall back to plain
    /// pages). An integer or timestamp one is delta-encoded, uncompressed: ascending runs of it pack into a few
    /// bits per value that decode several times faster than LZ4 pages of plain values (the key column is what
    /// every segment evaluation reads).
    ///
    /// Dictionaries are for the few-valued columns (a country, a plan, an event type): a column chunk's
    /// dictionary may grow to [`DICTIONARY_PAGE_BYTES`] before the writer falls back to plain pages, so a column
    /// of mostly distinct values (an id, an e-mail, a time) hashes only the first few thousand values of each row
    /// group instead of (with parquet's 1 MiB default) all 128 Ki of an `Int64` one. Float columns get no
    /// dictionary at all (measured values rarely repeat).
    ///
    /// An integer or timestamp column whose values in `sample` (the first rows of the file) are mostly distinct
    /// (see [`mostly_distinct`]) — an id, a foreign key, a time — is delta-encoded, uncompressed, without a
    /// dictionary: its dictionary would overflow in each row group after hashing the first values, and its plain
    /// pages would then go through LZ4 (the two were 7 % of an events ingest's CPU). Delta pages of such values
    /// are also smaller than LZ4 pages of plain ones (random 25-bit ids: about 3.3 bytes a value, against 5.4;
    /// ids ascending by runs, as an event id in a file sorted by type and time: under a byte).
    pub fn writer_properties(
        schema: &arrow::datatypes::Schema,
        sorting_hint: Option<&str>,
        sample: Option<&RecordBatch>,
    ) -> WriterProperties {
        let mut b = WriterProperties::builder()
            .set_compression(Compression::LZ4_RAW)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(16 * 1024)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_created_by(format!("segkit {}", env!("CARGO_PKG_VERSION")));
        for f in schema.fields() {
            if matches!(f.data_type(), arrow::datatypes::DataType::Float64 | arrow::datatypes::DataType::Float32) {
                b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(f.name().as_str()), false);
            }
        }
        for (i, f) in schema.fields().iter().enumerate() {
            let column = sample.and_then(|b| (b.schema().fields().get(i) == Some(f)).then(|| b.column(i)));
            if column.is_some_and(|c| mostly_distinct(c.as_ref())) {
                let path = parquet::schema::types::ColumnPath::from(f.name().as_str());
                b = b
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path.clone(), parquet::basic::Encoding::DELTA_BINARY_PACKED)
                    .set_column_compression(path, Compression::UNCOMPRESSED);
            }
        }
        if let Some(col) = sorting_hint {
            let last = col.rsplit(',').next().unwrap_or(col);
            let path = parquet::schema::types::ColumnPath::from(last);
            b = b.set_column_dictionary_enabled(path.clone(), false);
            use arrow::datatypes::DataType as T;
            let integer = schema
                .field_with_name(last)
                .map(|f| f.data_type().clone())
                .is_ok_and(|t| matches!(t, T::Int32 | T::Int64 | T::Timestamp(..) | T::Date32 | T::UInt32 | T::UInt64));
            if integer {
                b = b
                    .set_column_encoding(path.clone(), parquet::basic::Encoding::DELTA_BINARY_PACKED)
                    .set_column_compression(path, Compression::UNCOMPRESSED);
            }
            b = b.set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                "segkit.sorted_by".into(),
                col.to_string(),
            )]));
        }
        b.build()
    }

    /// Starts writing new files under `dir` (relative), rolling a file every [`FILE_ROWS`] rows.
    pub fn writer(&self, dir: &str, schema: SchemaRef, sorted_by: Option<&str>) -> RollingWriter {
        RollingWriter {
            store: self.clone(),
            dir: dir.to_string(),
            schema,
            sorted_by: sorted_by.map(str::to_string),
            max_rows: FILE_ROWS,
            current: None,
            files: vec![],
        }
    }

    /// Streams the batches of one file.
    pub async fn read(&self, rel: &str) -> Result<BatchStream> {
        #[allow(deprecated)]
        let reader = ParquetObjectReader::new(self.store.clone(), self.path(rel));
        let stream = ParquetRecordBatchStreamBuilder::new(reader).await?.with_batch_size(64 * 1024).build()?;
        Ok(stream.map_err(Error::from).boxed())
    }

    /// Reads rows `offset..offset + limit` of one file: with the file's page index, the Parquet reader reads
    /// only the pages that hold those rows and stops decoding after `limit` rows. The file's decoded footer (with
    /// its page index) is kept for the next read of the same file.
    ///
    /// A local store reads the file in the calling task (a page-sized read from the page cache costs a few tens
    /// of microseconds, less than handing it to another thread and back); a remote one goes through the object
    /// store.
    pub async fn read_rows(&self, rel: &str, offset: usize, limit: usize) -> Result<Vec<RecordBatch>> {
        if let Some(local) = &self.local {
            let file = local.path_to_filesystem(&self.path(rel))?;
            return self.read_rows_local(rel, &file, offset, limit);
        }
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(self.store.clone(), self.path(rel));
        let meta = match self.footers.get(rel) {
            Some(m) => m,
            None => {
                let m = ArrowReaderMetadata::load_async(&mut reader, page_index_options()).await?;
                self.footers.put(rel, m.clone());
                m
            }
        };
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
            .with_batch_size(limit.clamp(1, 64 * 1024))
            .with_offset(offset)
            .with_limit(limit)
            .build()?;
        stream.map_err(Error::from).try_collect().await
    }

    /// [`read_rows`](Self::read_rows) of a local file, synchronously.
    fn read_rows_local(
        &self,
        rel: &str,
        file: &std::path::Path,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<RecordBatch>> {
        let f = std::fs::File::open(file)?;
        let meta = match self.footers.get(rel) {
            Some(m) => m,
            None => {
                let m = ArrowReaderMetadata::load(&f, page_index_options())?;
                self.footers.put(rel, m.clone());
                m
            }
        };
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta)
            .with_batch_size(limit.clamp(1, 64 * 1024))
            .with_offset(offset)
            .with_limit(limit)
            .build()?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Reads all batches of one file.
    pub async fn read_all(&self, rel: &str) -> Result<Vec<RecordBatch>> {
        self.read(rel).await?.try_collect().await
    }

    /// The files under `dir` (relative), with their last modification time and size.
    pub async fn list(&self, dir: &str) -> Result<Vec<StoredFile>> {
        let prefix = self.path(dir);
        let metas: Vec<object_store::ObjectMeta> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let rel: Vec<String> =
                    m.location.prefix_match(&self.base_path)?.map(|p| p.as_ref().to_string()).collect();
                Some(StoredFile { path: rel.join("/"), modified: m.last_modified, bytes: m.size })
            })
            .collect())
    }

    /// Deletes files, ignoring failures (orphans are harmless: they are in no snapshot).
    pub async fn delete(&self, rels: &[String]) {
        for rel in rels {
            if let Err(e) = self.store.delete(&self.path(rel)).await {
                tracing::warn!(file = rel, error = %e, "could not delete file");
            }
        }
    }
}

/// A file found by [`Store::list`].
#[derive(Debug, Clone)]
pub struct StoredFile {
    /// Path relative to the store root.
    pub path: String,
    /// Last modification.
    pub modified: chrono::DateTime<chrono::Utc>,
    /// Size in bytes.
    pub bytes: u64,
}

/// Writes batches to a sequence of Parquet files; nothing is visible until the files are committed in a snapshot.
///
/// Row groups are encoded column by column on the runtime's blocking threads: the columns of a full row group
/// are split into up to [`ENCODE_TASKS`] tasks of about equal size (so both cores of a small machine encode at
/// once), and while they run the next row group fills; the finished column chunks are appended in column order
/// before the next row group is encoded (at most one row group being encoded, one filling). Without a tokio
/// runtime, and for a small last row group, the columns are encoded inline.
pub struct RollingWriter {
    store: Store,
    dir: String,
    schema: SchemaRef,
    sorted_by: Option<String>,
    max_rows: usize,
    current: Option<OpenFile>,
    files: Vec<DataFile>,
}

/// Most tasks one row group's columns are encoded by.
pub const ENCODE_TASKS: usize = 4;

/// Row groups with fewer rows are encoded inline (a task would cost more than it saves).
const INLINE_ENCODE_ROWS: usize = 16 * 1024;

/// A file being written.
struct OpenFile {
    rel: String,
    out: BufWriter,
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    /// The Arrow field each Parquet leaf column belongs to.
    leaf_fields: Vec<usize>,
    rows: u64,
    /// Rows of the row group filling.
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    /// The row group being encoded.
    encoding: Option<Vec<EncodeJob>>,
}

/// The encoded column chunks of a row group, with their leaf column indices.
type Chunks = Vec<(usize, ArrowColumnChunk)>;

/// A part of a row group's columns, encoded by a task or inline.
enum EncodeJob {
    Task(tokio::task::JoinHandle<Result<Chunks>>),
    Done(Chunks),
}

/// One column to encode: the field, its leaf column writers with their leaf indices, its arrays in row order.
type ColumnWork = (arrow::datatypes::FieldRef, Vec<(usize, ArrowColumnWriter)>, Vec<ArrayRef>);

/// Encodes the columns `fields` (each: the field, its leaf writers with their leaf indices, its arrays in row
/// order) and closes their writers.
fn encode_columns(fields: Vec<ColumnWork>) -> Result<Chunks> {
    let mut out = vec![];
    for (field, mut writers, arrays) in fields {
        for a in &arrays {
            let leaves = compute_leaves(&field, a)?;
            if leaves.len() != writers.len() {
                return Err(Error::Io(std::io::Error::other("parquet leaf columns do not match the schema")));
            }
            for ((_, w), leaf) in writers.iter_mut().zip(leaves) {
                w.write(&leaf)?;
            }
        }
        for (i, w) in writers {
            out.push((i, w.close()?));
        }
    }
    Ok(out)
}

impl OpenFile {
    /// Starts encoding the buffered rows as a row group (the previous one must have been appended).
    fn start_row_group(&mut self, schema: &SchemaRef) -> Result<()> {
        let batches = std::mem::take(&mut self.buffered);
        let rows = std::mem::replace(&mut self.buffered_rows, 0);
        if rows == 0 {
            return Ok(());
        }
        let index = self.file.flushed_row_groups().len();
        let mut writers: Vec<Vec<(usize, ArrowColumnWriter)>> = schema.fields().iter().map(|_| vec![]).collect();
        for (leaf, w) in self.factory.create_column_writers(index)?.into_iter().enumerate() {
            let f = *self
                .leaf_fields
                .get(leaf)
                .ok_or_else(|| Error::Io(std::io::Error::other("parquet leaf without a field")))?;
            writers[f].push((leaf, w));
        }
        // Each field with its arrays and its size; the fields then go to the least loaded task, largest first.
        let mut fields: Vec<(usize, ColumnWork)> = schema
            .fields()
            .iter()
            .zip(writers)
            .enumerate()
            .map(|(i, (f, w))| {
                let arrays: Vec<ArrayRef> = batches.iter().map(|b| b.column(i).clone()).collect();
                let size = arrays.iter().map(|a| a.get_array_memory_size()).sum();
                (size, (f.clone(), w, arrays))
            })
            .collect();
        let handle = tokio::runtime::Handle::try_current().ok();
        let tasks = match &handle {
            Some(_) if rows >= INLINE_ENCODE_ROWS => {
                std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, ENCODE_TASKS).min(fields.len())
            }
            _ => 1,
        };
        fields.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut groups: Vec<(usize, Vec<_>)> = (0..tasks.max(1)).map(|_| (0, vec![])).collect();
        for (size, work) in fields {
            let g = groups.iter_mut().min_by_key(|g| g.0).expect("at least one group");
            g.0 += size;
            g.1.push(work);
        }
        let jobs = groups
            .into_iter()
            .map(|(_, g)| match &handle {
                Some(h) if rows >= INLINE_ENCODE_ROWS => {
                    Ok(EncodeJob::Task(h.spawn_blocking(move || encode_columns(g))))
                }
                _ => Ok(EncodeJob::Done(encode_columns(g)?)),
            })
            .collect::<Result<Vec<_>>>()?;
        self.encoding = Some(jobs);
        Ok(())
    }

    /// Waits for the row group being encoded, appends it to the file and hands its bytes to the store.
    async fn append_row_group(&mut self) -> Result<()> {
        let Some(jobs) = self.encoding.take() else { return Ok(()) };
        let mut chunks: Chunks = vec![];
        for j in jobs {
            match j {
                EncodeJob::Done(c) => chunks.extend(c),
                EncodeJob::Task(t) => {
                    chunks.extend(t.await.map_err(|e| {
                        Error::Io(std::io::Error::other(format!("a Parquet encoding task failed: {e}")))
                    })??)
                }
            }
        }
        chunks.sort_by_key(|c| c.0);
        let mut rg = self.file.next_row_group()?;
        for (_, c) in chunks {
            c.append_to_row_group(&mut rg)?;
        }
        rg.close()?;
        self.drain().await
    }

    /// Hands the bytes encoded so far to the store. The encoded bytes' buffer is kept (emptied) for the next row
    /// group: a fresh one grew by doubling through copies to a row group's size, each step above glibc's mmap
    /// threshold mapped and faulted in anew (`memory::tune_allocator`), row group after row group. (Lending it
    /// to the store without a copy, `BufWriter::put` from a pool of buffers, raised users' peak by 10–15 MiB.)
    async fn drain(&mut self) -> Result<()> {
        let bytes = self.file.inner_mut();
        if !bytes.is_empty() {
            self.out.write_all(bytes).await.map_err(Error::Io)?;
            bytes.clear();
        }
        Ok(())
    }
}

impl std::fmt::Debug for RollingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingWriter").field("dir", &self.dir).field("files", &self.files.len()).finish()
    }
}

impl RollingWriter {
    /// Writes everything into a single file instead of rolling every [`FILE_ROWS`] rows.
    pub fn single_file(mut self) -> Self {
        self.max_rows = usize::MAX;
        self
    }

    /// Appends a batch.
    /// An empty batch still creates a file when none exists yet, so an empty result has a typed file.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 && self.current.is_none() && self.files.is_empty() {
            self.open(None)?;
        }
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.current.is_none() {
                self.open(Some(&batch.slice(offset, batch.num_rows() - offset)))?;
            }
            let f = self.current.as_mut().expect("set above");
            let take =
                (self.max_rows - f.rows as usize).min(ROW_GROUP_ROWS - f.buffered_rows).min(batch.num_rows() - offset);
            f.buffered.push(batch.slice(offset, take));
            f.buffered_rows += take;
            f.rows += take as u64;
            offset += take;
            if f.buffered_rows >= ROW_GROUP_ROWS {
                f.append_row_group().await?;
                f.start_row_group(&self.schema)?;
            }
            if f.rows as usize >= self.max_rows {
                self.roll().await?;
            }
        }
        Ok(())
    }

    /// Opens the next file; `sample`, the rows it will start with, guides its columns' encodings.
    fn open(&mut self, sample: Option<&RecordBatch>) -> Result<()> {
        let rel = format!("{}/{}.parquet", self.dir, uuid::Uuid::new_v4());
        let out = BufWriter::new(self.store.store.clone(), self.store.path(&rel));
        let props = Store::writer_properties(&self.schema, self.sorted_by.as_deref(), sample);
        // The Arrow writer's setup (the Parquet schema and the encoded Arrow schema in the footer), then its
        // parts: the file writer and the column writers' factory.
        let (file, factory) =
            ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))?.into_serialized_writer()?;
        let descr = file.schema_descr();
        let leaf_fields = (0..descr.num_columns()).map(|i| descr.get_column_root_idx(i)).collect();
        self.current = Some(OpenFile {
            rel,
            out,
            file,
            factory,
            leaf_fields,
            rows: 0,
            buffered: vec![],
            buffered_rows: 0,
            encoding: None,
        });
        Ok(())
    }

    async fn roll(&mut self) -> Result<()> {
        if let Some(mut f) = self.current.take() {
            f.append_row_group().await?;
            f.start_row_group(&self.schema)?;
            f.append_row_group().await?;
            f.file.finish()?;
            f.drain().await?;
            f.out.shutdown().await.map_err(Error::Io)?;
            self.store.sync_finished(&f.rel).await?;
            let meta = self.store.store.head(&self.store.path(&f.rel)).await?;
            self.files.push(DataFile { path: f.rel, rows: f.rows, bytes: meta.size });
        }
        Ok(())
    }

    /// Closes the last file and returns all files written.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        if let Err(e) = self.roll().await {
            self.abort().await;
            return Err(e);
        }
        Ok(std::mem::take(&mut self.files))
    }

    /// Deletes everything written so far.
    pub async fn abort(mut self) {
        if let Some(mut f) = self.current.take() {
            for j in f.encoding.take().into_iter().flatten() {
                if let EncodeJob::Task(t) = j {
                    let _ = t.await;
                }
            }
            let _ = f.out.abort().await;
            self.files.push(DataFile { path: f.rel, rows: 0, bytes: 0 });
        }
        let paths: Vec<String> = self.files.iter().map(|f| f.path.clone()).collect();
        self.store.delete(&paths).await;
    }

    /// Files completed so far.
    pub fn files(&self) -> &[DataFile] {
        &self.files
    }
}

/// The object-store path segment for an entity or segment name: an ASCII name is used as it is (so existing
/// workspaces keep their paths); any other name becomes `u-` and the lowercase hex of its UTF-8 bytes, which is
/// ASCII-only, stable and cannot collide with an ASCII name (names never contain `-`).
pub fn path_segment(name: &str) -> std::borrow::Cow<'_, str> {
    if name.is_ascii() {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(2 + name.len() * 2);
    out.push_str("u-");
    for b in name.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::basic::Encoding;
    use parquet::file::metadata::ColumnChunkMetaData;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    fn all_dictionary(c: &ColumnChunkMetaData) -> bool {
        c.dictionary_page_offset().is_some()
            && c.page_encoding_stats_mask().is_some_and(|m| m.is_only(Encoding::RLE_DICTIONARY))
    }

    /// Rows written through the column-parallel encoder (a multi-thread runtime, row groups large enough for
    /// tasks, a file rolled mid-row-group, a small last row group encoded inline) read back unchanged and in
    /// order, with the row groups cut at `ROW_GROUP_ROWS`, the Arrow types (a time zone) and the sort metadata kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_column_encoding_round_trips() {
        use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap().durable(true);
        let schema = Arc::new(Schema::new(vec![
            Field::new("country", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("ltv", DataType::Float64, true),
            Field::new("at", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), false),
        ]));
        let batch = |from: i64, n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter(
                        (from..from + n).map(|i| (i % 7 != 0).then(|| ["de", "fr", "us"][(i % 3) as usize])),
                    )),
                    Arc::new(Int64Array::from_iter_values(from..from + n)),
                    Arc::new(Float64Array::from_iter((from..from + n).map(|i| (i % 5 != 0).then_some(i as f64 * 0.5)))),
                    Arc::new(TimestampMicrosecondArray::from_iter_values(from..from + n).with_timezone("UTC")),
                ],
            )
            .unwrap()
        };
        let mut w = store.writer("data/t", schema.clone(), Some("country,id"));
        w.max_rows = 3 * ROW_GROUP_ROWS + 1000;
        let total = 4 * ROW_GROUP_ROWS as i64 + 5000;
        let mut from = 0;
        while from < total {
            let n = 50_000.min(total - from);
            w.write(&batch(from, n)).await.unwrap();
            from += n;
        }
        let files = w.finish().await.unwrap();
        assert_eq!(
            files.iter().map(|f| f.rows).collect::<Vec<_>>(),
            vec![3 * ROW_GROUP_ROWS as u64 + 1000, ROW_GROUP_ROWS as u64 + 4000]
        );
        let mut got = vec![];
        for f in &files {
            let file = std::fs::File::open(dir.path().join(&f.path)).unwrap();
            assert_eq!(file.metadata().unwrap().len(), f.bytes);
            let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
            let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
            assert!(groups.iter().all(|&r| r <= ROW_GROUP_ROWS as i64), "{groups:?}");
            assert_eq!(groups[0], ROW_GROUP_ROWS as i64);
            let kv = meta.file_metadata().key_value_metadata().unwrap();
            assert!(kv.iter().any(|k| k.key == "segkit.sorted_by" && k.value.as_deref() == Some("country,id")));
            for b in store.read_all(&f.path).await.unwrap() {
                assert_eq!(b.schema(), schema, "Arrow types survive");
                got.push(b);
            }
        }
        let got = arrow::compute::concat_batches(&schema, &got).unwrap();
        let want = batch(0, total);
        assert_eq!(got.num_rows(), want.num_rows());
        for c in 0..4 {
            assert_eq!(got.column(c).to_data(), want.column(c).to_data(), "column {c}");
        }
        assert_eq!(got.column(0).as_string::<i32>().null_count(), want.column(0).null_count());
    }

    /// `read_rows` returns exactly rows `offset..offset + limit` across page and row-group boundaries (and an
    /// empty answer past the end), read in the calling task from a local store and through the object store
    /// otherwise, with the file's page index kept for the next read.
    #[tokio::test]
    async fn read_rows_slices_across_pages_and_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let n = 2 * ROW_GROUP_ROWS + 5_000;
        let keys: Vec<i64> = (0..n as i64).map(|i| i * 3).collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(keys.clone()))]).unwrap();
        let mut w = store.writer("t", schema, Some("k")).single_file();
        w.write(&batch).await.unwrap();
        let files = w.finish().await.unwrap();
        let rel = &files[0].path;
        // The same directory seen as a remote store: no local file system, so reads go through `object_store`.
        let remote = Store { local: None, footers: Default::default(), ..store.clone() };
        for (s, kind) in [(&store, "local"), (&remote, "object store")] {
            let cases = [
                (0, 10),
                (16_380, 10),
                (ROW_GROUP_ROWS - 3, 7),
                (ROW_GROUP_ROWS + 40_000, 1_001),
                (n - 2, 10),
                (n, 5),
                (n + 100, 1),
                (1_000, 50_000),
            ];
            for (offset, limit) in cases {
                let got: Vec<i64> = s
                    .read_rows(rel, offset, limit)
                    .await
                    .unwrap()
                    .iter()
                    .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
                    .collect();
                let (start, end) = (offset.min(n), (offset + limit).min(n));
                assert_eq!(got, keys[start..end], "{kind}: offset {offset}, limit {limit}");
            }
            let meta = s.footers.get(rel).expect("footer kept");
            assert!(meta.metadata().offset_index().is_some(), "{kind}: the page index is kept");
            assert!(s.read_rows("t/missing.parquet", 0, 1).await.is_err(), "{kind}: a missing file is an error");
        }
    }

    /// A few-valued column keeps its dictionary; a column whose first values repeat but whose later ones are
    /// many distinct integers falls back to plain pages once its dictionary reaches `DICTIONARY_PAGE_BYTES`; a
    /// float column has none at all, even when its values repeat; integer and timestamp columns whose first
    /// values are mostly distinct are delta-encoded, uncompressed, without a dictionary, and read back unchanged.
    #[tokio::test]
    async fn dictionaries_only_where_values_repeat() {
        use arrow::array::{Int32Array, TimestampMicrosecondArray};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path()).unwrap();
        let at = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan", DataType::Utf8, false),
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Float64, false),
            Field::new("k", DataType::Int64, false),
            Field::new("user", DataType::Int64, true),
            Field::new("age", DataType::Int32, true),
            Field::new("at", at, false),
        ]));
        let n = ROW_GROUP_ROWS as i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values((0..n).map(|i| ["free", "pro", "team"][(i % 3) as usize]))),
                // A few values first, then 60,000 distinct ones: a 480 KB dictionary, which parquet's default limit
                // (1 MiB) would keep.
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| if i < 8192 { i % 100 } else { i * 7_919 % 60_000 }),
                )),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| (i % 5) as f64 + 0.99))),
                Arc::new(Int64Array::from_iter_values(0..n)),
                // Random-looking ids (a few nulls), a few-valued integer, ascending instants.
                Arc::new(Int64Array::from_iter(
                    (0..n).map(|i| (i % 11 != 0).then_some(i * 2_654_435_761 % 35_000_000)),
                )),
                Arc::new(Int32Array::from_iter((0..n).map(|i| (i % 13 != 0).then_some(18 + (i * 7 % 60) as i32)))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..n).map(|i| 1_767_225_600_000_000 + i * 977))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let mut w = store.writer("data/t", schema.clone(), Some("plan,k"));
        w.write(&batch).await.unwrap();
        let files = w.finish().await.unwrap();
        let file = std::fs::File::open(dir.path().join(&files[0].path)).unwrap();
        let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
        let rg = meta.row_group(0);
        let col = |name: &str| rg.columns().iter().find(|c| c.column_path().string() == name).unwrap().clone();
        assert!(all_dictionary(&col("plan")), "{:?}", col("plan"));
        assert!(all_dictionary(&col("age")), "{:?}", col("age"));
        assert!(!all_dictionary(&col("id")), "distinct ids fall back to plain pages: {:?}", col("id"));
        assert!(col("id").dictionary_page_offset().is_some(), "the fallback comes after a dictionary page");
        assert_eq!(col("price").dictionary_page_offset(), None, "floats have no dictionary");
        assert_eq!(col("k").dictionary_page_offset(), None, "the last sort column has no dictionary");
        for name in ["k", "user", "at"] {
            let c = col(name);
            assert_eq!(c.dictionary_page_offset(), None, "{name}");
            assert!(c.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED), "{name}: {c:?}");
            assert_eq!(c.compression(), Compression::UNCOMPRESSED, "{name}");
        }
        assert_eq!(col("id").compression(), Compression::LZ4_RAW);
        let got = store.read_all(&files[0].path).await.unwrap();
        let got = arrow::compute::concat_batches(&schema, &got).unwrap();
        assert_eq!(got, batch);
    }

    /// Only integer and timestamp samples of at least 256 non-null values, more than half of them distinct.
    #[test]
    fn mostly_distinct_needs_enough_distinct_integers() {
        use arrow::array::{Array, Date32Array, Int32Array};
        let ints = |v: Vec<Option<i64>>| -> Arc<dyn Array> { Arc::new(Int64Array::from(v)) };
        assert!(mostly_distinct(ints((0..256).map(Some).collect()).as_ref()));
        assert!(!mostly_distinct(ints((0..255).map(Some).collect()).as_ref()), "too few values");
        assert!(
            !mostly_distinct(ints((0..1000).map(|i| (i % 4 == 0).then_some(i)).collect()).as_ref()),
            "nulls are not values"
        );
        assert!(!mostly_distinct(ints((0..1000).map(|i| Some(i / 2)).collect()).as_ref()), "half distinct");
        assert!(mostly_distinct(ints((0..1000).map(|i| Some(i * 2 / 3)).collect()).as_ref()));
        // Only the first rows count.
        let later: Vec<Option<i64>> =
            (0..20_000).map(|i| Some(if i < ENCODING_SAMPLE_ROWS as i64 { i % 10 } else { i })).collect();
        assert!(!mostly_distinct(ints(later).as_ref()));
        assert!(mostly_distinct(&Date32Array::from_iter_values(0..300)));
        assert!(!mostly_distinct(&Int32Array::from_iter_values((0..5000).map(|i| i % 60))));
        assert!(!mostly_distinct(&Float64Array::from_iter_values((0..300).map(f64::from))), "not an integer");
        assert!(!mostly_distinct(&StringArray::from_iter_values((0..300).map(|i| i.to_string()))));
    }
}
