//! Group commit of delivery outcomes: the deliveries of a dispatch pass hand their outcome ([`LedgerWrite`]) to
//! one writer and wait for it; the writer commits everything handed to it while the previous group was being
//! committed (at most [`MAX_GROUP_COMMIT_ROWS`]) in ONE catalog transaction, then answers each delivery. With
//! durable commits that is one sync to disk per group instead of one per delivery, and a delivery is reported
//! (and its concurrency slot freed) only after its outcome is committed — so what a process killed with SIGKILL
//! can lose is still only the deliveries in flight.

use std::sync::Arc;

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use crate::catalog::{Catalog, LedgerWrite};
use crate::error::{Error, Result};
use crate::limits::MAX_GROUP_COMMIT_ROWS;

type Waiting = (LedgerWrite, oneshot::Sender<Result<bool>>);

/// The handle deliveries record their outcomes through (cheap to clone). The writer stops when every handle
/// is dropped.
#[derive(Clone)]
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<Waiting>,
}

impl Recorder {
    /// Hands `write` to the next group commit, without waiting for it: the returned [`Pending`] answers once it
    /// is committed. (A delivery's task ends here; the dispatch awaits the commits of all its deliveries on one
    /// task, so a commit wakes that task once rather than every delivery of its group.)
    pub(super) fn submit(&self, write: LedgerWrite) -> Result<Pending> {
        let (done, wait) = oneshot::channel();
        self.tx.unbounded_send((write, done)).map_err(|_| stopped())?;
        Ok(Pending(wait))
    }
}

/// A write handed to the group commit (see [`Recorder::submit`]), not known to be committed yet.
#[must_use = "a delivery is done only once its outcome is committed"]
pub(super) struct Pending(oneshot::Receiver<Result<bool>>);

impl Pending {
    /// Waits for the write's group commit: whether it applied (the row was still claimed by this attempt).
    pub(super) async fn committed(self) -> Result<bool> {
        self.0.await.map_err(|_| stopped())?
    }
}

/// The error of a write whose group commit can no longer happen.
fn stopped() -> Error {
    Error::Catalog { message: "the ledger writer has stopped".into(), cause: None }
}

/// A recorder and the writer future that must run beside the deliveries (it ends when every [`Recorder`] is
/// dropped). `now` gives the instant (ms) each group is recorded at (`updated_at`, `sent_at`): the pass's
/// instant for one pass, the clock's now for a dispatch of many (see `Workspace::dispatch_backlog`).
pub(super) fn group_commit(
    catalog: Arc<Catalog>,
    now: Box<dyn Fn() -> i64 + Send>,
) -> (Recorder, impl std::future::Future<Output = ()> + Send + 'static) {
    let (tx, mut rx) = mpsc::unbounded::<Waiting>();
    let writer = async move {
        while let Some(first) = rx.next().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP_COMMIT_ROWS {
                match rx.try_recv() {
                    Ok(w) => group.push(w),
                    Err(_) => break,
                }
            }
            let (writes, waiting): (Vec<LedgerWrite>, Vec<oneshot::Sender<Result<bool>>>) = group.into_iter().unzip();
            let catalog = catalog.clone();
            let now = now();
            // The commit (a sync to disk when durable) runs off the async threads.
            let result =
                tokio::task::spawn_blocking(move || catalog.record_outcomes(&writes, now)).await.unwrap_or_else(|e| {
                    Err(Error::Catalog { message: format!("the ledger writer failed: {e}"), cause: None })
                });
            match result {
                Ok(applied) => {
                    for (done, ok) in waiting.into_iter().zip(applied) {
                        let _ = done.send(Ok(ok));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, rows = waiting.len(), "group commit of delivery outcomes failed");
                    for done in waiting {
                        let _ = done.send(Err(shared(&e)));
                    }
                }
            }
        }
    };
    (Recorder { tx }, writer)
}

/// A copy of a group commit's error for each delivery in the group (a busy catalog stays a conflict).
fn shared(e: &Error) -> Error {
    match e {
        Error::Conflict { what, message } => Error::Conflict { what: what.clone(), message: message.clone() },
        other => Error::Catalog { message: other.to_string(), cause: None },
    }
}
