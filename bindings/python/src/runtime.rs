//! The binding's one tokio runtime, and the bridge that runs a future with the GIL released while letting
//! Ctrl-C through (the pattern of datafusion-python's `wait_for_future`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// (pid that created it, runtime). After `fork()` the child has the parent's memory but not its threads, so a
/// runtime made before the fork is unusable there: a new one is made when the pid changes. The parent's
/// runtime is leaked in the child on purpose (dropping it would wait for threads that do not exist).
static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// How often a blocking call wakes up to check for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

pub fn runtime() -> PyResult<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(rt.clone());
        }
    }
    if let Some((_, old)) = slot.take() {
        std::mem::forget(old);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("segkit")
        .build()
        .map_err(|e| crate::error::to_py(segkit::Error::Io(e)))?;
    let rt = Arc::new(rt);
    *slot = Some((pid, rt.clone()));
    Ok(rt)
}

/// Runs the future made by `make` to completion on the binding's runtime with the GIL released. The future runs
/// on the runtime's worker threads, never on the calling thread, so the calling thread wakes every 100 ms to take
/// the GIL briefly and run Python's signal handlers even while a query is busy; if one raises
/// (KeyboardInterrupt), the task is aborted (the query is cancelled) and the exception propagates.
pub fn wait_for_future<M, Fut>(py: Python<'_>, make: M) -> PyResult<Fut::Output>
where
    M: FnOnce() -> Fut + Send,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    wait(py, OnSignal::Abort, make)
}

/// How long a cancelled operation gets to stop cleanly (delete the files it wrote) after Ctrl-C before its task
/// is aborted.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Like [`wait_for_future`], for operations that take a cancellation token: on a signal (Ctrl-C raises
/// KeyboardInterrupt) the token is cancelled and the task gets [`CANCEL_GRACE`] to stop cleanly — leaving the
/// previous snapshot and source cursor intact and deleting its staged files — before the exception propagates.
pub fn wait_cancellable<M, Fut>(py: Python<'_>, token: segkit::CancellationToken, make: M) -> PyResult<Fut::Output>
where
    M: FnOnce() -> Fut + Send,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    wait(py, OnSignal::Cancel(token), make)
}

/// A task that panicked or was cancelled, as a Python exception.
pub(crate) fn join_error(e: tokio::task::JoinError) -> PyErr {
    if e.is_panic() {
        crate::error::panic_to_py(e.into_panic())
    } else {
        pyo3::exceptions::PyRuntimeError::new_err(format!("segkit task failed: {e}"))
    }
}

/// What the waiting loop does when a Python signal handler raises.
enum OnSignal {
    /// Abort the task at once and raise ([`wait_for_future`]).
    Abort,
    /// Cancel the token, give the task [`CANCEL_GRACE`] to stop, then raise ([`wait_cancellable`]).
    Cancel(segkit::CancellationToken),
    /// The signal is the normal way to stop: cancel the token and return the task's own result once it has
    /// shut down, or abort and raise after `grace` plus [`CANCEL_GRACE`] ([`serve_until_signal`]).
    Stop(segkit::CancellationToken, Duration),
}

/// The one waiting loop of [`wait_for_future`], [`wait_cancellable`] and [`serve_until_signal`].
fn wait<M, Fut>(py: Python<'_>, on_signal: OnSignal, make: M) -> PyResult<Fut::Output>
where
    M: FnOnce() -> Fut + Send,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let rt = runtime()?;
    py.detach(move || {
        let mut task = rt.spawn(make());
        rt.block_on(async {
            loop {
                tokio::select! {
                    joined = &mut task => return joined.map_err(join_error),
                    _ = tokio::time::sleep(SIGNAL_CHECK) => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            match &on_signal {
                                OnSignal::Abort => {}
                                OnSignal::Cancel(token) => {
                                    token.cancel();
                                    if tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_ok() {
                                        return Err(e);
                                    }
                                }
                                OnSignal::Stop(token, grace) => {
                                    token.cancel();
                                    let within = grace.saturating_add(CANCEL_GRACE);
                                    if let Ok(joined) = tokio::time::timeout(within, &mut task).await {
                                        return joined.map_err(join_error);
                                    }
                                }
                            }
                            task.abort();
                            return Err(e);
                        }
                    }
                }
            }
        })
    })
}

/// Runs a long-lived operation (the scheduler's `serve`) until a Python signal handler raises (Ctrl-C:
/// KeyboardInterrupt; the Python wrapper maps SIGTERM to it too), with the GIL released. The signal is its
/// normal way to stop: the token is cancelled and the task's own result is returned once it has shut down
/// gracefully. If it has not finished `grace` plus [`CANCEL_GRACE`] after the signal, it is aborted and the
/// exception propagates.
pub fn serve_until_signal<M, Fut>(
    py: Python<'_>,
    token: segkit::CancellationToken,
    grace: Duration,
    make: M,
) -> PyResult<Fut::Output>
where
    M: FnOnce() -> Fut + Send,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    wait(py, OnSignal::Stop(token, grace), make)
}
