//! Evaluating segments: members, runs, history, counts and previews.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};

use crate::catalog::RunRecord;
use crate::error::{Error, Result};
use crate::ingest::pipeline::{self};
use crate::model::{check_name, Entity};
use crate::rules::{check_with, column, Checked};
use crate::segment::{diff_sorted, sort_keys, DryRun, SegmentDefinition, SegmentRun};
use crate::source::BatchStream;

use tracing::Instrument;

use super::Workspace;

impl Workspace {
    /// Members (sorted keys, plus `variant` with a split) of a checked segment, and their schema.
    pub(super) async fn compute_members(
        &self,
        def: &SegmentDefinition,
        entity: &Entity,
        checked: &Checked,
    ) -> Result<(RecordBatch, SchemaRef)> {
        let key = entity.key.clone().expect("checked on define");
        let key_schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false)]));
        // A static segment's members come from its list directly (see `static_members`).
        let own_list = matches!(checked, Checked::InSegment(r) if r.static_list && !r.negated && r.segment == def.name);
        let listed = match own_list {
            true => self.static_members(entity, &def.name).await?,
            false => None,
        };
        let keys = match listed {
            Some(keys) => keys,
            None => {
                let df = self.filtered(entity, checked).await?.select(vec![column(&key)])?;
                sort_keys(concat_batches(&key_schema, &df.collect().await?)?)?
            }
        };
        // With a split, each membership version carries the variant of every member next to its key.
        Ok(match &def.split {
            None => (keys, key_schema),
            Some(split) => {
                let schema: SchemaRef = Arc::new(Schema::new(vec![
                    key_schema.field(0).clone(),
                    Field::new("variant", ArrowType::Utf8, true),
                ]));
                let variants = split.assign(&def.name, keys.column(0))?;
                (RecordBatch::try_new(schema.clone(), vec![keys.column(0).clone(), Arc::new(variants)])?, schema)
            }
        })
    }

    /// The stored membership of a run (empty without one), shaped like `schema`.
    pub(super) async fn membership(&self, run: Option<&RunRecord>, schema: &SchemaRef) -> Result<RecordBatch> {
        match run {
            Some(r) => {
                let b = self.inner.store.read_all(&r.membership_file).await?;
                let b = b.iter().map(|b| pipeline::conform(b, schema)).collect::<Result<Vec<_>>>()?;
                Ok(concat_batches(schema, &b)?)
            }
            None => Ok(RecordBatch::new_empty(schema.clone())),
        }
    }

    /// Evaluates an edited (or new) segment definition without saving anything: who would be members, and who
    /// would enter and exit compared with the latest stored run of the segment with that name.
    pub async fn dry_run(&self, mut segment: SegmentDefinition) -> Result<DryRun> {
        segment.name = crate::model::normalize_name(&segment.name);
        check_name(&segment.name, "segment")?;
        let entity = self
            .entity(&segment.entity)
            .map_err(|e| Error::definition(format!("segment {}.entity", segment.name), e.to_string()))?;
        let checked = check_with(&segment.rule, &entity, self, std::slice::from_ref(&segment.name))?;
        if let Some(split) = &segment.split {
            split.validate(&format!("segment {}.split", segment.name))?;
        }
        let (members, schema) = self.compute_members(&segment, &entity, &checked).await?;
        let last = self.inner.catalog.last_run(&segment.name)?;
        let before = self.membership(last.as_ref(), &schema).await?;
        let (would_enter, would_exit) = diff_sorted(&before, &members)?;
        Ok(DryRun {
            count: members.num_rows() as u64,
            members,
            would_enter,
            would_exit,
            against_run: last.map(|r| r.run),
        })
    }

    /// The schema of a segment's stored memberships: the entity key, plus `variant` when the segment has a split
    /// (a membership without rows yields no batches; this keeps such results typed).
    pub fn members_schema(&self, name: &str) -> Result<SchemaRef> {
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let key = entity.key.clone().expect("segments select keyed entities");
        let mut fields = vec![Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false)];
        if def.split.is_some() {
            fields.push(Field::new("variant", ArrowType::Utf8, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The stored members of the latest run that started at or before `instant` (workspace clock).
    pub async fn members_as_of(&self, name: &str, instant: chrono::DateTime<chrono::Utc>) -> Result<BatchStream> {
        let runs = self.runs(name)?;
        let run = runs
            .iter()
            .rev()
            .find(|r| chrono::DateTime::parse_from_rfc3339(&r.started_at).is_ok_and(|t| t <= instant))
            .ok_or_else(|| Error::not_found("run", format!("{name} at or before {}", instant.to_rfc3339())))?;
        self.inner.store.read(&run.membership_file).await
    }

    /// The schemas of a segment's change log: its key alone (what membership files hold), and a log row
    /// (`run`, `started_at`, the key, `change`). Shared by [`Workspace::changes`] and
    /// [`Workspace::changes_page`].
    pub(super) fn changes_schemas(&self, name: &str) -> Result<(SchemaRef, SchemaRef)> {
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let key = entity.key.clone().expect("segments select keyed entities");
        let key_field = Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false);
        let key_schema: SchemaRef = Arc::new(Schema::new(vec![key_field.clone()]));
        let out_schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run", ArrowType::Int64, false),
            Field::new("started_at", ArrowType::Utf8, false),
            key_field,
            Field::new("change", ArrowType::Utf8, false),
        ]));
        Ok((key_schema, out_schema))
    }

    /// The log of membership changes: one row per key that entered or exited, per stored run (`run`,
    /// `started_at`, the key, `change` = `entered` / `exited`), oldest first. With `keep_runs`, the log starts
    /// after the oldest kept run.
    pub async fn changes(&self, name: &str) -> Result<RecordBatch> {
        let (key_schema, out_schema) = self.changes_schemas(name)?;
        let mut out = vec![];
        let mut before = RecordBatch::new_empty(key_schema.clone());
        let runs = self.runs(name)?;
        // Runs deleted by retention leave the first kept run without its predecessor: it starts the log.
        let first = runs.first().map(|r| r.run).unwrap_or(1);
        for r in runs {
            let now = self.membership(Some(&r), &key_schema).await?;
            if r.run == first && first > 1 {
                before = now;
                continue;
            }
            let (entered, exited) = diff_sorted(&before, &now)?;
            for (batch, change) in [(entered, "entered"), (exited, "exited")] {
                let n = batch.num_rows();
                if n == 0 {
                    continue;
                }
                out.push(RecordBatch::try_new(
                    out_schema.clone(),
                    vec![
                        Arc::new(arrow::array::Int64Array::from(vec![r.run; n])),
                        Arc::new(StringArray::from(vec![r.started_at.as_str(); n])),
                        batch.column(0).clone(),
                        Arc::new(StringArray::from(vec![change; n])),
                    ],
                )?);
            }
            before = now;
        }
        Ok(concat_batches(&out_schema, &out)?)
    }

    /// Evaluates a segment: computes its members, stores them as a new membership version and returns who
    /// entered and exited since the previous run.
    pub async fn evaluate(&self, name: &str) -> Result<SegmentRun> {
        let r = self.evaluate_inner(name).instrument(tracing::info_span!("evaluate", segment = %name)).await;
        crate::memory::release_unused_memory();
        if let Ok(run) = &r {
            metrics::gauge!(crate::monitoring::SEGMENT_MEMBERS, "segment" => run.segment.clone()).set(run.count as f64);
            metrics::histogram!(crate::monitoring::EVALUATION_SECONDS, "segment" => run.segment.clone())
                .record(run.duration.as_secs_f64());
        }
        r
    }

    async fn evaluate_inner(&self, name: &str) -> Result<SegmentRun> {
        let started = Instant::now();
        let started_at = self.now();
        let c = self.compiled(name)?;
        let (def, entity, checked) = (&c.def, &c.entity, &c.checked);
        let key = entity.key.clone().expect("checked on define");
        let snapshot = self.snapshot(&entity.name)?.version;
        let (members, membership_schema) = self.compute_members(def, entity, checked).await?;
        let previous = self.inner.catalog.last_run(name)?;
        let before = self.membership(previous.as_ref(), &membership_schema).await?;
        let (entered, exited) = diff_sorted(&before, &members)?;
        let run = previous.map(|r| r.run + 1).unwrap_or(1);
        // One file per run (an empty membership still gets a typed file to diff against next time).
        let mut writer = self
            .inner
            .store
            .writer(&format!("segments/{}", crate::store::path_segment(&def.name)), membership_schema, Some(&key))
            .single_file();
        if let Err(e) = writer.write(&members).await {
            writer.abort().await;
            return Err(e);
        }
        let membership_file = writer.finish().await?.remove(0).path;
        let duration = started.elapsed();
        let record = RunRecord {
            segment: def.name.clone(),
            run,
            started_at: started_at.to_rfc3339(),
            duration_ms: duration.as_secs_f64() * 1000.0,
            member_count: members.num_rows() as u64,
            entered: entered.num_rows() as u64,
            exited: exited.num_rows() as u64,
            membership_file: membership_file.clone(),
            snapshot,
        };
        if let Err(e) = self.commit_run(&record, entity, &entered, &exited).await {
            self.inner.store.delete(std::slice::from_ref(&membership_file)).await;
            return Err(e);
        }
        if let Some(keep) = def.keep_runs {
            let old = self.inner.catalog.delete_runs_before(&def.name, run - i64::from(keep.max(1)) + 1)?;
            self.inner.store.delete(&old).await;
        }
        Ok(SegmentRun {
            segment: def.name.clone(),
            run,
            count: members.num_rows() as u64,
            members,
            entered,
            exited,
            started_at,
            duration,
            snapshot,
        })
    }

    /// Evaluates `name` and then every segment that depends on it, in dependency order.
    pub async fn evaluate_with_dependents(&self, name: &str) -> Result<Vec<SegmentRun>> {
        let mut runs = vec![self.evaluate(name).await?];
        for d in self.dependents(name)? {
            runs.push(self.evaluate(&d).await?);
        }
        Ok(runs)
    }

    /// Counts a segment's members now, without materialising or storing them.
    pub async fn count(&self, name: &str) -> Result<u64> {
        let c = self.compiled(name)?;
        let (entity, checked) = (&c.entity, &c.checked);
        let n = self.filtered(entity, checked).await?.count().await? as u64;
        crate::memory::release_unused_memory();
        Ok(n)
    }

    /// Counts the members an edited (or new) segment definition would have now, without saving or
    /// materialising anything: the live count of a rule builder. Checked like [`dry_run`](Self::dry_run).
    pub async fn count_definition(&self, mut segment: SegmentDefinition) -> Result<u64> {
        segment.name = crate::model::normalize_name(&segment.name);
        check_name(&segment.name, "segment")?;
        let entity = self
            .entity(&segment.entity)
            .map_err(|e| Error::definition(format!("segment {}.entity", segment.name), e.to_string()))?;
        let checked = check_with(&segment.rule, &entity, self, std::slice::from_ref(&segment.name))?;
        let n = self.filtered(&entity, &checked).await?.count().await? as u64;
        crate::memory::release_unused_memory();
        Ok(n)
    }

    /// Up to `n` current member rows with every attribute; `pii` attributes are masked as `"***"`.
    pub async fn preview(&self, name: &str, n: usize) -> Result<RecordBatch> {
        self.preview_with(name, n, true).await
    }

    /// [`preview`](Self::preview) with the choice to leave `pii` attributes unmasked (`mask_pii = false`), for
    /// callers that hold the permission to see them (and record that they did: [`audit`](Self::audit)).
    pub async fn preview_with(&self, name: &str, n: usize, mask_pii: bool) -> Result<RecordBatch> {
        let c = self.compiled(name)?;
        let (entity, checked) = (&c.entity, &c.checked);
        let key = entity.key.clone().expect("checked on define");
        let df = self.filtered(entity, checked).await?.sort(vec![column(&key).sort(true, false)])?.limit(0, Some(n))?;
        let batch = concat_batches(&entity.schema(), &df.collect().await?)?;
        let mut fields = vec![];
        let mut cols = vec![];
        for (attr, col) in entity.attributes.iter().zip(batch.columns()) {
            if attr.pii && mask_pii {
                let masked: StringArray = (0..col.len()).map(|i| col.is_valid(i).then_some("***")).collect();
                fields.push(Field::new(&attr.name, ArrowType::Utf8, true));
                cols.push(Arc::new(masked) as ArrayRef);
            } else {
                fields.push(batch.schema().field_with_name(&attr.name)?.clone());
                cols.push(col.clone());
            }
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
    }

    /// The stored members of a segment's latest run (or of run `run`), as a stream of key batches.
    pub async fn members(&self, name: &str, run: Option<i64>) -> Result<BatchStream> {
        self.segment(name)?;
        let runs = self.inner.catalog.runs(name)?;
        let r = match run {
            None => runs.last(),
            Some(n) => runs.iter().find(|r| r.run == n),
        }
        .ok_or_else(|| {
            Error::not_found("run", format!("{name}#{}", run.map(|r| r.to_string()).unwrap_or_else(|| "latest".into())))
        })?;
        self.inner.store.read(&r.membership_file).await
    }

    /// One page of the stored members of a segment's latest run (or of run `run`): up to `limit` keys (1 to
    /// [`MAX_PAGE_ROWS`](crate::limits::MAX_PAGE_ROWS)) from position `offset`, read from the run's file with
    /// the offset and limit pushed into the Parquet reader. What the REST API's members page serves
    /// ([`members_run`](Self::members_run) then [`read_members_page`](Self::read_members_page)).
    pub async fn members_page(&self, name: &str, run: Option<i64>, offset: usize, limit: usize) -> Result<MembersPage> {
        check_page_limit(limit)?;
        let r = self.members_run(name, run)?;
        self.read_members_page(&r, offset, limit).await
    }

    /// The run a members page reads: run `run` of segment `name` (`None`: the latest), with the member columns
    /// that hold `pii` attributes. One cached catalog statement; a missing segment or run is
    /// [`Error::NotFound`]. A run's membership file never changes, so a page of it (same offset, limit and
    /// encoding) may be kept by its [`RunRecord::membership_file`].
    pub fn members_run(&self, name: &str, run: Option<i64>) -> Result<MembersRun> {
        let normalized = crate::model::normalize_name(name);
        let Some((r, entity)) = self.inner.catalog.segment_run(&normalized, run)? else {
            self.segment(name)?;
            return Err(Error::not_found(
                "run",
                format!(
                    "{name}#{}",
                    run.map(|r| r.to_string()).unwrap_or_else(|| "latest (evaluate the segment first)".into())
                ),
            ));
        };
        /// The part of a stored entity definition that says which member column is `pii` (serde skips the rest).
        #[derive(serde::Deserialize)]
        struct KeyPii {
            key: Option<String>,
            attributes: Vec<AttributePii>,
        }
        #[derive(serde::Deserialize)]
        struct AttributePii {
            name: String,
            #[serde(default)]
            pii: bool,
        }
        let pii_columns = match entity {
            Some(text) => {
                let e: KeyPii = serde_json::from_str(&text)?;
                // A membership file holds the entity key (and `variant`, never an attribute).
                e.attributes
                    .into_iter()
                    .filter(|a| a.pii && e.key.as_deref() == Some(a.name.as_str()))
                    .map(|a| a.name)
                    .collect()
            }
            None => vec![],
        };
        Ok(MembersRun { segment: normalized, record: r, pii_columns })
    }

    /// Up to `limit` keys (1 to [`MAX_PAGE_ROWS`](crate::limits::MAX_PAGE_ROWS)) of run `r` from position
    /// `offset`: the Parquet reader skips the pages before `offset` and decodes `limit + 1` rows (the one more
    /// says whether a next page exists). The keys are as stored: mask [`MembersPage::pii_columns`] with
    /// [`MembersPage::mask_pii`] for a caller who may not read `pii`.
    pub async fn read_members_page(&self, r: &MembersRun, offset: usize, limit: usize) -> Result<MembersPage> {
        check_page_limit(limit)?;
        let mut batches =
            self.inner.store.read_rows(&r.record.membership_file, offset, limit.saturating_add(1)).await?;
        let mut rows = 0;
        let mut more = false;
        for b in batches.iter_mut() {
            if rows + b.num_rows() > limit {
                *b = b.slice(0, limit - rows);
                more = true;
            }
            rows += b.num_rows();
        }
        batches.retain(|b| b.num_rows() > 0);
        // Stored files carry their own schema (field metadata may differ from the computed one): keep it.
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => self.members_schema(&r.segment)?,
        };
        Ok(MembersPage { run: r.record.run, schema, batches, more, pii_columns: r.pii_columns.clone() })
    }

    /// The run history of a segment, oldest first.
    pub fn runs(&self, name: &str) -> Result<Vec<RunRecord>> {
        self.segment(name)?;
        self.inner.catalog.runs(name)
    }
}

fn check_page_limit(limit: usize) -> Result<()> {
    use crate::limits::MAX_PAGE_ROWS;
    if limit == 0 || limit > MAX_PAGE_ROWS {
        return Err(Error::InvalidArgument(format!(
            "a members page is 1 to {MAX_PAGE_ROWS} rows, not {limit} (limit MAX_PAGE_ROWS)"
        )));
    }
    Ok(())
}

/// A segment run resolved for reading member pages (see [`Workspace::members_run`]).
#[derive(Debug, Clone)]
pub struct MembersRun {
    /// The segment's (normalised) name.
    pub segment: String,
    /// The run.
    pub record: RunRecord,
    /// The member columns holding `pii` attributes (the entity key when it is `pii`).
    pub pii_columns: Vec<String>,
}

/// One page of a segment's stored members (see [`Workspace::members_page`]).
#[derive(Debug, Clone)]
pub struct MembersPage {
    /// The run read.
    pub run: i64,
    /// The schema of the keys (the entity key, plus `variant` for a split segment).
    pub schema: SchemaRef,
    /// The page's keys, in stored order.
    pub batches: Vec<RecordBatch>,
    /// Whether rows follow this page.
    pub more: bool,
    /// The columns holding `pii` attributes; [`mask_pii`](Self::mask_pii) replaces their values.
    pub pii_columns: Vec<String>,
}

impl MembersPage {
    /// The page with every non-null value of its [`pii_columns`](Self::pii_columns) replaced by `***` (text
    /// columns), as previews mask them for a caller who may not read `pii`.
    pub fn mask_pii(self) -> Result<Self> {
        if self.pii_columns.is_empty() {
            return Ok(self);
        }
        let masked = |name: &str| self.pii_columns.iter().any(|c| c == name);
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| if masked(f.name()) { Field::new(f.name(), ArrowType::Utf8, true) } else { f.as_ref().clone() })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batches = self
            .batches
            .iter()
            .map(|b| {
                let cols = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, col)| {
                        if masked(f.name()) {
                            let m: StringArray = (0..col.len()).map(|i| col.is_valid(i).then_some("***")).collect();
                            Arc::new(m) as ArrayRef
                        } else {
                            col.clone()
                        }
                    })
                    .collect();
                Ok(RecordBatch::try_new(schema.clone(), cols)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MembersPage { schema, batches, ..self })
    }
}
