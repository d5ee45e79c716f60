//! Pages of the logs kept as Parquet rather than catalog rows — a segment's membership changes and an entity's
//! quarantined rows — read so that memory is bounded by the page, not by the log: filters select whole runs or
//! files, the sort and the window (`offset`, `limit`) are applied while reading, and `total` comes from counts
//! the catalog and the Parquet footers already hold.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::prelude::{col, lit, DataFrame, ParquetReadOptions};

use super::Workspace;
use crate::error::{Error, Result};
use crate::ingest::pipeline::quarantine_schema;
use crate::limits::MAX_LOG_PAGE_END;
use crate::segment::diff_sorted;

/// Which rows of a sorted log one page holds: `limit` rows from `offset` (at most [`MAX_LOG_PAGE_END`] together),
/// in ascending or descending order of the log's sort field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to skip.
    pub offset: usize,
    /// Rows to return (at least 1).
    pub limit: usize,
    /// Descending order of the sort field (ties keep the log's order).
    pub descending: bool,
}

impl PageRequest {
    /// The end of the window, checked against [`MAX_LOG_PAGE_END`].
    fn end(&self) -> Result<usize> {
        if self.limit == 0 {
            return Err(Error::InvalidArgument("a page needs a limit of at least 1 row".into()));
        }
        match self.offset.checked_add(self.limit) {
            Some(end) if end <= MAX_LOG_PAGE_END => Ok(end),
            _ => Err(Error::InvalidArgument(format!(
                "offset {} + limit {} is beyond {MAX_LOG_PAGE_END} rows (limit MAX_LOG_PAGE_END)",
                self.offset, self.limit
            ))),
        }
    }
}

/// One page of a log: its rows and how many rows match in all.
#[derive(Debug, Clone)]
pub struct RowsPage {
    /// The rows of the page, in order.
    pub batch: RecordBatch,
    /// How many rows the filters match in the whole log.
    pub total: u64,
}

/// `entered` or `exited`: a row of a segment's change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The key became a member in that run.
    Entered,
    /// The key stopped being a member in that run.
    Exited,
}

impl ChangeKind {
    /// `entered` or `exited`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Entered => "entered",
            ChangeKind::Exited => "exited",
        }
    }
}

impl std::str::FromStr for ChangeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "entered" => Ok(ChangeKind::Entered),
            "exited" => Ok(ChangeKind::Exited),
            other => Err(Error::InvalidArgument(format!("`{other}` is not `entered` or `exited`"))),
        }
    }
}

/// What a page of [`Workspace::changes_page`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangesQuery {
    /// Only the changes of this run.
    pub run: Option<i64>,
    /// Only entries or only exits.
    pub change: Option<ChangeKind>,
    /// Sorted by `started_at` instead of `run`.
    pub by_started_at: bool,
    /// The window and direction.
    pub page: PageRequest,
}

/// The sort field of [`Workspace::quarantine_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineSort {
    /// The row number in the source.
    Row,
    /// The ingest (sync) id.
    IngestId,
}

/// What a page of [`Workspace::quarantine_page`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineQuery {
    /// Only the rows of these ingests (`None`: of every ingest of the entity).
    pub ingest_ids: Option<std::collections::HashSet<String>>,
    /// The sort field (ties: the older ingest first, then by row).
    pub sort: QuarantineSort,
    /// The window and direction.
    pub page: PageRequest,
}

impl Workspace {
    /// One page of [`changes`](Self::changes) (same columns, same rows in the same order when unfiltered and
    /// sorted by `run` ascending), read run by run: the catalog's per-run counts of entries and exits give the
    /// total and which runs the page covers, and only those runs' member files are compared. Memory is the page
    /// plus the members of two runs, however long the log. Ties of the sort field keep the log's order.
    pub async fn changes_page(&self, name: &str, q: &ChangesQuery) -> Result<RowsPage> {
        let end = q.page.end()?;
        let (key_schema, out_schema) = self.changes_schemas(name)?;
        let all = self.runs(name)?;
        // The first kept run of a segment with retention has no predecessor: it starts the log (see `changes`).
        let first = all.first().map(|r| r.run).unwrap_or(1);
        let mut runs: Vec<usize> = (0..all.len())
            .filter(|&i| !(all[i].run == first && first > 1) && q.run.is_none_or(|r| r == all[i].run))
            .collect();
        // A stable sort of the runs is a stable sort of their rows (every row of a run has its run's fields);
        // descending reverses the comparison, so equal fields keep the log's (ascending) order.
        runs.sort_by(|&a, &b| {
            let o =
                if q.by_started_at { all[a].started_at.cmp(&all[b].started_at) } else { all[a].run.cmp(&all[b].run) };
            if q.page.descending {
                o.reverse()
            } else {
                o
            }
        });
        let counted = |i: usize| -> [(ChangeKind, u64); 2] {
            [(ChangeKind::Entered, all[i].entered), (ChangeKind::Exited, all[i].exited)]
        };
        let wanted = |k: ChangeKind| q.change.is_none_or(|c| c == k);
        let total: u64 = runs.iter().flat_map(|&i| counted(i)).filter(|(k, _)| wanted(*k)).map(|(_, n)| n).sum();
        let mut out = vec![];
        let mut pos = 0usize;
        for &i in &runs {
            if pos >= end {
                break;
            }
            let in_run: usize = counted(i).iter().filter(|(k, _)| wanted(*k)).map(|(_, n)| *n as usize).sum();
            if pos + in_run <= q.page.offset {
                pos += in_run;
                continue;
            }
            let r = &all[i];
            let before = match i.checked_sub(1) {
                Some(p) => self.membership(Some(&all[p]), &key_schema).await?,
                None => RecordBatch::new_empty(key_schema.clone()),
            };
            let now = self.membership(Some(r), &key_schema).await?;
            let (entered, exited) = diff_sorted(&before, &now)?;
            drop((before, now));
            for (batch, kind) in [(entered, ChangeKind::Entered), (exited, ChangeKind::Exited)] {
                if !wanted(kind) {
                    continue;
                }
                let n = batch.num_rows();
                let from = q.page.offset.saturating_sub(pos).min(n);
                let to = (end - pos.min(end)).min(n);
                pos += n;
                if from >= to {
                    continue;
                }
                let take = to - from;
                out.push(RecordBatch::try_new(
                    out_schema.clone(),
                    vec![
                        Arc::new(Int64Array::from(vec![r.run; take])),
                        Arc::new(StringArray::from(vec![r.started_at.as_str(); take])),
                        batch.column(0).slice(from, take),
                        Arc::new(StringArray::from(vec![kind.as_str(); take])),
                    ],
                )?);
            }
        }
        Ok(RowsPage { batch: arrow::compute::concat_batches(&out_schema, &out)?, total })
    }

    /// One page of [`quarantine`](Self::quarantine) (same columns: `ingest_id`, `row`, `reason`, `record`),
    /// sorted by `row` or `ingest_id` (ties: the older ingest first, then by row), read file by file: by
    /// `ingest_id`, whole files before the window are skipped by their row counts (Parquet footers) and only the
    /// window's rows are read; by `row`, each file answers its first `offset + limit` rows in that order (a
    /// DataFusion top-k) and a running top `offset + limit` is kept. Memory is bounded by the window, not by
    /// the quarantine.
    pub async fn quarantine_page(&self, entity: &str, q: &QuarantineQuery) -> Result<RowsPage> {
        let end = q.page.end()?;
        let out_schema = Arc::new(Schema::new(
            std::iter::once(Arc::new(Field::new("ingest_id", ArrowType::Utf8, false)))
                .chain(quarantine_schema().fields().iter().cloned())
                .collect::<Vec<_>>(),
        ));
        let mut files: Vec<(usize, String, DataFrame, u64)> = vec![];
        let schema = quarantine_schema();
        for (seq, r) in self
            .ingest_history(entity)?
            .into_iter()
            .filter(|r| q.ingest_ids.as_ref().is_none_or(|ids| ids.contains(&r.id)))
            .enumerate()
        {
            let Some(file) = r.quarantine_file else { continue };
            let url = self.inner.store.file_url(&file)?;
            let df = self.inner.ctx.read_parquet(url.as_str(), ParquetReadOptions::default().schema(&schema)).await?;
            let rows = df.clone().count().await? as u64;
            files.push((seq, r.id, df, rows));
        }
        let total = files.iter().map(|f| f.3).sum();
        let asc = !q.page.descending;
        // Rows of one file in the page's order, at most `n`, with its ingest id and sequence number in front.
        let read = |df: DataFrame, skip: usize, n: usize, id: String, descending: bool| async move {
            let batches = df
                .sort(vec![col("row").sort(!descending, descending)])?
                .limit(skip, Some(n))?
                .select(vec![lit(id).alias("ingest_id"), col("row"), col("reason"), col("record")])?
                .collect()
                .await?;
            Ok::<_, Error>(batches)
        };
        let mut out: Vec<RecordBatch> = vec![];
        match q.sort {
            QuarantineSort::IngestId => {
                files.sort_by(|a, b| {
                    let o = a.1.cmp(&b.1);
                    if asc {
                        o.then(a.0.cmp(&b.0))
                    } else {
                        o.reverse().then(a.0.cmp(&b.0))
                    }
                });
                let mut pos = 0usize;
                for (_, id, df, rows) in files {
                    let rows = rows as usize;
                    if pos >= end {
                        break;
                    }
                    if pos + rows > q.page.offset {
                        let from = q.page.offset.saturating_sub(pos);
                        let to = (end - pos).min(rows);
                        out.extend(read(df, from, to - from, id, false).await?);
                    }
                    pos += rows;
                }
            }
            QuarantineSort::Row => {
                // The running top `end` rows; `seq` breaks ties of `row` (the older ingest first).
                let mut kept: Option<(RecordBatch, Vec<usize>)> = None;
                for (seq, id, df, _) in files {
                    let mut batches = read(df, 0, end, id, q.page.descending).await?;
                    if batches.is_empty() {
                        continue;
                    }
                    let mut seqs = vec![];
                    if let Some((b, s)) = kept.take() {
                        batches.insert(0, b);
                        seqs = s;
                    }
                    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches)?;
                    seqs.resize(all.num_rows(), seq);
                    let keys = [
                        arrow::compute::SortColumn {
                            values: all.column(1).clone(),
                            options: Some(arrow::compute::SortOptions { descending: !asc, nulls_first: false }),
                        },
                        arrow::compute::SortColumn {
                            values: Arc::new(arrow::array::UInt64Array::from_iter_values(
                                seqs.iter().map(|s| *s as u64),
                            )),
                            options: None,
                        },
                    ];
                    let idx = arrow::compute::lexsort_to_indices(&keys, Some(end))?;
                    let cols = all
                        .columns()
                        .iter()
                        .map(|c| arrow::compute::take(c, &idx, None))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let seqs = idx.values().iter().map(|i| seqs[*i as usize]).collect();
                    kept = Some((RecordBatch::try_new(all.schema(), cols)?, seqs));
                }
                if let Some((b, _)) = kept {
                    let from = q.page.offset.min(b.num_rows());
                    out.push(b.slice(from, (b.num_rows() - from).min(q.page.limit)));
                }
            }
        }
        let out = out
            .iter()
            .map(|b| Ok(RecordBatch::try_new(out_schema.clone(), b.columns().to_vec())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(RowsPage { batch: arrow::compute::concat_batches(&out_schema, &out)?, total })
    }
}
