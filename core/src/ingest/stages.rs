//! Overlapping the stages of an ingest on the runtime's worker threads: the source is read and decoded in one
//! task ([`prefetch`]), the rows are coerced, validated and sorted in the ingest's own task, and the Parquet files
//! are encoded and written in a third ([`FileSink`]). Each hand-over is a bounded channel of a few batches, so
//! memory stays what one stage holds plus those few batches; without a tokio runtime (or on a current-thread
//! runtime) the stages simply take turns.

use arrow::array::RecordBatch;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::catalog::DataFile;
use crate::error::{Error, Result};
use crate::source::BatchStream;
use crate::store::RollingWriter;

/// Batches decoded ahead of the ingest (each a source batch, 64 Ki rows for the file sources).
const PREFETCH_BATCHES: usize = 2;

/// Batches queued for the Parquet writer task.
const WRITE_QUEUE_BATCHES: usize = 2;

/// Aborts a task when dropped (an ingest that fails or is cancelled stops its helper tasks).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether helper tasks can run in parallel with the caller: a multi-thread tokio runtime is current.
fn parallel_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| matches!(h.runtime_flavor(), tokio::runtime::RuntimeFlavor::MultiThread))
}

/// `stream`, polled by a task of its own that stays up to [`PREFETCH_BATCHES`] batches ahead, so the source's
/// reading and decoding overlap with the caller's work on the previous batches. Items (errors included) arrive
/// in order; dropping the returned stream stops the task. Without a multi-thread runtime, `stream` itself.
pub(crate) fn prefetch(stream: BatchStream) -> BatchStream {
    if !parallel_runtime() {
        return stream;
    }
    let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(PREFETCH_BATCHES);
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    futures::stream::unfold((rx, AbortOnDrop(task)), |(mut rx, guard)| async move {
        rx.recv().await.map(|item| (item, (rx, guard)))
    })
    .boxed()
}

/// Where an ingest's rows go: a [`RollingWriter`], driven by a task of its own on a multi-thread runtime (the
/// Parquet encoding then overlaps with the sort and coercion that produce the next batches), else inline.
pub(crate) enum FileSink {
    /// Written by the caller's task.
    Inline(Box<RollingWriter>),
    /// Written by a writer task fed through a bounded channel.
    Task { tx: mpsc::Sender<RecordBatch>, task: JoinHandle<(RollingWriter, Result<()>)> },
    /// The writer failed; its files are deleted.
    Failed,
}

/// An error of the writer task itself (a panic), as opposed to the writer's own errors, which pass through.
fn task_error(e: tokio::task::JoinError) -> Error {
    Error::Io(std::io::Error::other(format!("the Parquet writer task failed: {e}")))
}

impl FileSink {
    /// A sink over `writer`.
    pub(crate) fn new(writer: RollingWriter) -> Self {
        if !parallel_runtime() {
            return FileSink::Inline(Box::new(writer));
        }
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(WRITE_QUEUE_BATCHES);
        let task = tokio::spawn(async move {
            let mut writer = writer;
            while let Some(b) = rx.recv().await {
                if let Err(e) = writer.write(&b).await {
                    return (writer, Err(e));
                }
            }
            (writer, Ok(()))
        });
        FileSink::Task { tx, task }
    }

    /// Appends a batch (see [`RollingWriter::write`]). When the writer fails, its files are deleted and the
    /// error is returned, here or by [`finish`](Self::finish).
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            FileSink::Inline(w) => w.write(batch).await,
            FileSink::Task { tx, .. } => {
                if tx.send(batch.clone()).await.is_ok() {
                    return Ok(());
                }
                // The task stopped before the input ended: the writer failed.
                match std::mem::replace(self, FileSink::Failed).drain().await {
                    Ok(w) => {
                        w.abort().await;
                        Err(Error::Io(std::io::Error::other("the Parquet writer task stopped")))
                    }
                    Err(e) => Err(e),
                }
            }
            FileSink::Failed => Err(Error::Io(std::io::Error::other("the Parquet writer failed earlier"))),
        }
    }

    /// Waits for the queued batches to be written and returns the writer, or the writer's error (the writer is
    /// then aborted: its files deleted).
    async fn drain(self) -> Result<RollingWriter> {
        match self {
            FileSink::Inline(w) => Ok(*w),
            FileSink::Task { tx, task } => {
                drop(tx);
                match task.await {
                    Ok((w, Ok(()))) => Ok(w),
                    Ok((w, Err(e))) => {
                        w.abort().await;
                        Err(e)
                    }
                    Err(e) => Err(task_error(e)),
                }
            }
            FileSink::Failed => Err(Error::Io(std::io::Error::other("the Parquet writer failed earlier"))),
        }
    }

    /// Closes the last file and returns all files written (see [`RollingWriter::finish`]).
    pub(crate) async fn finish(self) -> Result<Vec<DataFile>> {
        self.drain().await?.finish().await
    }

    /// Deletes everything written so far (see [`RollingWriter::abort`]).
    pub(crate) async fn abort(self) {
        if let Ok(w) = self.drain().await {
            w.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    use super::*;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(from..from + n))]).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefetch_keeps_order_and_stops_at_the_first_error() {
        let items: Vec<Result<RecordBatch>> = (0..50)
            .map(|i| Ok(batch(i * 10, 10)))
            .chain([Err(Error::InvalidArgument("source broke".into())), Ok(batch(999, 1))])
            .collect();
        let mut s = prefetch(futures::stream::iter(items).boxed());
        let mut seen = vec![];
        let err = loop {
            match s.next().await {
                Some(Ok(b)) => {
                    seen.extend(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
                }
                Some(Err(e)) => break e,
                None => panic!("the error was lost"),
            }
        };
        assert_eq!(seen, (0..500).collect::<Vec<i64>>());
        assert!(err.to_string().contains("source broke"), "{err}");
        assert!(s.next().await.is_none(), "nothing after the error");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_task_writes_every_batch_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::local(dir.path()).unwrap();
        let mut sink = FileSink::new(store.writer("data/t", batch(0, 1).schema(), None));
        assert!(matches!(sink, FileSink::Task { .. }));
        for i in 0..20 {
            sink.write(&batch(i * 100, 100)).await.unwrap();
        }
        let files = sink.finish().await.unwrap();
        assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 2000);
        let mut got = vec![];
        for f in &files {
            let bs: Vec<RecordBatch> = store.read(&f.path).await.unwrap().try_collect().await.unwrap();
            for b in bs {
                got.extend(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec());
            }
        }
        assert_eq!(got, (0..2000).collect::<Vec<i64>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_error_surfaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::local(dir.path()).unwrap();
        // `data` is a file, so nothing can be written under `data/t`.
        std::fs::write(dir.path().join("data"), b"not a directory").unwrap();
        let mut sink = FileSink::new(store.writer("data/t", batch(0, 1).schema(), None));
        let mut failed = false;
        for i in 0..10 {
            if sink.write(&batch(i * 10, 10)).await.is_err() {
                failed = true;
                break;
            }
        }
        let finished = if failed { None } else { Some(sink.finish().await) };
        assert!(
            failed || finished.as_ref().is_some_and(|r| r.is_err()),
            "the writer's error must surface: {finished:?}"
        );
    }
}
