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

/// Runs the future made by `make` to completion on the binding's runtime with the GIL released. Every 100 ms
/// it takes the GIL briefly to run Python's signal handlers; if one raises (KeyboardInterrupt), the future is
/// dropped (cancelled) and the exception propagates.
///
/// The future is created and polled on the calling thread after the GIL is released, so it need not be
/// `Send` itself (only what `make` captures must be).
pub fn wait_for_future<M, Fut>(py: Python<'_>, make: M) -> PyResult<Fut::Output>
where
    M: FnOnce() -> Fut + Send,
    Fut: Future,
    Fut::Output: Send,
{
    let rt = runtime()?;
    py.detach(move || {
        let fut = make();
        rt.block_on(async {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    out = &mut fut => return Ok(out),
                    _ = tokio::time::sleep(SIGNAL_CHECK) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}
