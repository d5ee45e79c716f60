//! Sorting ingested rows into storage order with bounded memory: DataFusion's `SortExec` under a memory pool of
//! [`WorkspaceOptions::ingest_memory`](crate::WorkspaceOptions::ingest_memory) bytes, which sorts runs in memory and spills them to temporary Arrow files beyond that, then
//! merges the runs as a stream. An ingest of any size therefore holds about the budget, not the whole input.

use std::sync::{Arc, Mutex};

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::expressions::col;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};

/// Rows per batch of the sorted output.
const SORTED_BATCH_ROWS: usize = 8192;

/// A stream handed to `SortExec` once.
struct OneStream {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneStream").finish_non_exhaustive()
    }
}

impl PartitionStream for OneStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.unwrap_or_else(|| {
            let schema = self.schema.clone();
            Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::once(async { Err(DataFusionError::Internal("ingest sort input read twice".into())) }),
            ))
        })
    }
}

/// Sorts `input` by `columns` (ascending, nulls last) with at most `memory` bytes of sort buffers, spilling to
/// the system's temporary directory beyond that. The returned stream yields the rows in order; the sort
/// starts when it is first polled and reads `input` to its end first.
pub(crate) fn sorted(
    input: SendableRecordBatchStream,
    columns: &[String],
    memory: usize,
) -> Result<SendableRecordBatchStream> {
    let schema = input.schema();
    let exprs = columns
        .iter()
        .map(|c| Ok(PhysicalSortExpr::new(col(c, &schema)?, SortOptions { descending: false, nulls_first: false })))
        .collect::<Result<Vec<_>>>()?;
    let ordering = LexOrdering::new(exprs).ok_or_else(|| Error::InvalidArgument("a sort needs a column".into()))?;
    let partition = Arc::new(OneStream { schema: schema.clone(), stream: Mutex::new(Some(input)) });
    let scan = StreamingTableExec::try_new(schema, vec![partition], None, vec![], false, None)?;
    let sort = SortExec::new(ordering, Arc::new(scan));
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(GreedyMemoryPool::new(memory)))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()?;
    let mut config = SessionConfig::new().with_batch_size(SORTED_BATCH_ROWS).with_target_partitions(1);
    // What the merge of spilled runs reserves up front: a share of the budget, not DataFusion's fixed 10 MB.
    config.options_mut().execution.sort_spill_reservation_bytes = (memory / 8).max(64 * 1024);
    let task = TaskContext::default().with_session_config(config).with_runtime(runtime);
    Ok(sort.execute(0, Arc::new(task))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use futures::TryStreamExt;

    fn batches(n: i64, per: i64) -> (SchemaRef, Vec<RecordBatch>) {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true), Field::new("v", DataType::Utf8, false)]));
        let mut out = vec![];
        let mut i = 0;
        while i < n {
            // A scrambled order with some nulls and repeats.
            let ks: Vec<Option<i64>> =
                (i..(i + per).min(n)).map(|j| if j % 97 == 0 { None } else { Some((j * 7919) % 1000) }).collect();
            let vs: Vec<String> = (i..(i + per).min(n)).map(|j| format!("row {j} with some padding text")).collect();
            out.push(
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from(ks)), Arc::new(StringArray::from(vs))],
                )
                .unwrap(),
            );
            i += per;
        }
        (schema, out)
    }

    async fn sort_all(memory: usize) -> Vec<Option<i64>> {
        let (schema, input) = batches(200_000, 4096);
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(input.into_iter().map(Ok::<_, DataFusionError>)),
        ));
        let out: Vec<RecordBatch> = sorted(stream, &["k".to_string()], memory).unwrap().try_collect().await.unwrap();
        assert!(out.iter().all(|b| b.num_rows() <= SORTED_BATCH_ROWS));
        out.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>()).collect()
    }

    fn expected() -> Vec<Option<i64>> {
        let mut v: Vec<Option<i64>> =
            (0..200_000i64).map(|j| if j % 97 == 0 { None } else { Some((j * 7919) % 1000) }).collect();
        // Ascending, nulls last.
        v.sort_by(|a, b| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, _) => std::cmp::Ordering::Greater,
            (_, None) => std::cmp::Ordering::Less,
            (Some(a), Some(b)) => a.cmp(b),
        });
        v
    }

    #[tokio::test]
    async fn sorts_in_memory_under_the_budget() {
        assert_eq!(sort_all(256 << 20).await, expected());
    }

    #[tokio::test]
    async fn sorts_through_spilled_runs_over_the_budget() {
        // ~10 MB of rows under a 2 MiB budget: several spilled runs merged back.
        assert_eq!(sort_all(2 << 20).await, expected());
    }

    #[tokio::test]
    async fn an_input_error_fails_the_sort() {
        let (schema, input) = batches(10_000, 1000);
        let items: Vec<std::result::Result<RecordBatch, DataFusionError>> = input
            .into_iter()
            .map(Ok)
            .chain(std::iter::once(Err(DataFusionError::External("source broke".into()))))
            .collect();
        let stream = Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(items)));
        let e = sorted(stream, &["k".to_string()], 1 << 20).unwrap().try_collect::<Vec<_>>().await.unwrap_err();
        assert!(e.to_string().contains("source broke"), "{e}");
    }
}
