//! Named sources from Python: the source factory the binding's workspaces use, and the progress bridge.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

/// The factory of named sources: every built-in connector; with the cargo feature `test-sources` (test builds
/// only, never a release), also segkit's test sources (`testing_parts`).
pub fn factory() -> Arc<dyn segkit::SourceFactory> {
    #[allow(unused_mut)]
    let mut r = segkit_connectors::registry();
    #[cfg(feature = "test-sources")]
    segkit::testing::register_sources(&mut r);
    Arc::new(r)
}

/// An [`segkit::IngestControl`] that calls the Python callable `callback` with a progress dict. If the callback
/// raises, the sync is cancelled and the exception is kept in the returned slot to be raised instead of the
/// cancellation error.
pub fn control(
    callback: Option<Py<PyAny>>,
    token: segkit::CancellationToken,
) -> (segkit::IngestControl, Arc<Mutex<Option<PyErr>>>) {
    let failed: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let mut control = segkit::IngestControl::new().cancel_with(token.clone());
    if let Some(cb) = callback {
        let slot = failed.clone();
        control = control.on_progress(move |p| {
            Python::attach(|py| {
                let result = crate::convert::to_py(py, p).and_then(|d| cb.call1(py, (d,)));
                if let Err(e) = result {
                    slot.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    token.cancel();
                }
            });
        });
    }
    (control, failed)
}

#[cfg(test)]
mod tests {
    /// `testing_parts` is known only to builds with the `test-sources` feature.
    #[test]
    fn test_sources_are_registered_only_with_their_feature() {
        let config = serde_json::json!({"type": "testing_parts", "dir": ".", "fields": ["id"]});
        let built = super::factory().build(&config);
        if cfg!(feature = "test-sources") {
            assert!(built.is_ok(), "{:?}", built.err());
        } else {
            let Err(e) = built else { panic!("`testing_parts` was built without the test-sources feature") };
            assert!(e.to_string().contains("unknown source type `testing_parts`"), "{e}");
        }
    }
}
