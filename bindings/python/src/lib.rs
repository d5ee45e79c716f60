//! `segkit._segkit`: the native module behind the Python package `segkit`.
//!
//! Thin by design: argument and result conversion, one tokio runtime (re-created after `fork()`), GIL release
//! with Ctrl-C support around every blocking call, and one error mapping. Segment and rule logic live in core.

use pyo3::prelude::*;

mod action;
mod appender;
mod convert;
mod error;
mod runtime;
mod source;
mod sources;
mod static_keys;
mod workspace;

/// The native module. Import `segkit` instead.
#[pymodule]
fn _segkit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_RULE_DEPTH", segkit::limits::MAX_RULE_DEPTH)?;
    m.add("MAX_RULE_NODES", segkit::limits::MAX_RULE_NODES)?;
    m.add("MAX_EXPLAIN_CONDITIONS", segkit::limits::MAX_EXPLAIN_CONDITIONS)?;
    m.add("MAX_RULE_LIST_VALUES", segkit::limits::MAX_RULE_LIST_VALUES)?;
    m.add("MAX_RULE_STRING_BYTES", segkit::limits::MAX_RULE_STRING_BYTES)?;
    m.add("MAX_REGEX_PATTERN_BYTES", segkit::limits::MAX_REGEX_PATTERN_BYTES)?;
    m.add("MAX_REGEX_PROGRAM_BYTES", segkit::limits::MAX_REGEX_PROGRAM_BYTES)?;
    m.add("MAX_ACTION_PARTS", segkit::limits::MAX_ACTION_PARTS)?;
    m.add("MAX_DELIVERY_WINDOW", segkit::limits::MAX_DELIVERY_WINDOW)?;
    m.add_class::<workspace::PyWorkspace>()?;
    m.add_class::<workspace::PySegmentRun>()?;
    m.add_class::<appender::PyAppender>()?;
    m.add("MAX_EVENT_BATCH", segkit::limits::MAX_EVENT_BATCH)?;
    m.add_function(wrap_pyfunction!(check_source, m)?)?;
    m.add_function(wrap_pyfunction!(check_action, m)?)?;
    m.add_function(wrap_pyfunction!(infer_entity, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_in_task, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_sync, m)?)?;
    error::register(m)?;
    Ok(())
}

/// Runs segkit's `Source` conformance checks on `source` (anything `Workspace.ingest` accepts, typically an
/// object with `schema()` and `scan()`); raises `IngestError` describing the first violation.
#[pyfunction]
fn check_source(py: Python<'_>, source: &Bound<'_, PyAny>) -> PyResult<()> {
    use error::IntoPy;
    error::guard(|| {
        let source = source::resolve(source)?;
        runtime::wait_for_future(py, move || async move { segkit::testing::source_conformance(source.as_ref()).await })?
            .py()
    })
}

/// Runs segkit's `Action` conformance checks (`segkit::testing::action_conformance`) on `action` (a config
/// dict or a custom action object; `parts` / `max_rate_per_second` as for `register_action`) with `delivery`
/// (a delivery dict, or None for a generic sample), the secret values that must never show, the per-execute
/// `timeout` in seconds and `received`, a callable listing the idempotency keys the receiver saw. Raises
/// `DefinitionError("invalid definition of action …: conformance: …")` on the first violation.
#[pyfunction]
#[pyo3(signature = (action, parts=None, max_rate_per_second=None, delivery=None, secrets=vec![], timeout=30.0, received=None))]
#[allow(clippy::too_many_arguments)] // keyword arguments of segkit.testing.check_action
fn check_action(
    py: Python<'_>,
    action: &Bound<'_, PyAny>,
    parts: Option<Vec<String>>,
    max_rate_per_second: Option<f64>,
    delivery: Option<&Bound<'_, PyAny>>,
    secrets: Vec<String>,
    timeout: f64,
    received: Option<Py<PyAny>>,
) -> PyResult<()> {
    use error::IntoPy;
    error::guard(|| {
        let action = action::resolve(action, parts, max_rate_per_second)?;
        let delivery = match delivery.filter(|d| !d.is_none()) {
            Some(d) => segkit::testing::delivery_from_json(&convert::to_json_data(d, "delivery")?).py()?,
            None => segkit::testing::ActionCheck::sample(action.as_ref()),
        };
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
            return Err(error::invalid_argument(format!("timeout must be 0 to 3600 seconds, not {timeout}")));
        }
        let mut check = segkit::testing::ActionCheck::new(delivery)
            .secrets(secrets)
            .timeout(std::time::Duration::from_secs_f64(timeout));
        if let Some(f) = received {
            check = check.received(move || {
                Python::attach(|py| -> PyResult<Vec<String>> { f.call0(py)?.extract(py) }).map_err(|e| {
                    let message = Python::attach(|py| source::raised(py, "received()", &e));
                    segkit::Error::InvalidArgument(message)
                })
            });
        }
        runtime::wait_for_future(py, move || async move {
            segkit::testing::action_conformance(action.as_ref(), &check).await
        })?
        .py()
    })
}

/// Test hook: panics in a synchronous native call (no runtime involved), through the same guard as every
/// synchronous method, so tests can check that it surfaces as `InternalError` rather than `PanicException`.
#[pyfunction]
fn _panic_sync(message: String) -> PyResult<()> {
    error::guard(|| -> PyResult<()> { panic!("{message}") })
}

/// Proposes an entity definition from a sample of `source` (anything `Workspace.ingest` accepts: a path, a
/// config dict, Arrow data, a source object). Returns `{"entity", "mapping", "fields", "sampled_rows", "notes"}`.
#[pyfunction]
#[pyo3(signature = (source, name, key=None, sample_rows=10_000))]
fn infer_entity<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    name: String,
    key: Option<String>,
    sample_rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    use error::IntoPy;
    let source = source::resolve(source)?;
    let mut options = segkit_connectors::InferOptions::default().sample_rows(sample_rows);
    options.key = key;
    let proposal = runtime::wait_for_future(py, move || async move {
        segkit_connectors::infer_entity(source.as_ref(), &name, &options).await
    })?
    .py()?;
    convert::from_json(py, &proposal.to_json())
}

/// Test hook: panics inside a task on the binding's runtime (a real panic, through the same bridge as every
/// workspace call), so tests can check that it surfaces as `InternalError` rather than aborting.
#[pyfunction]
fn _panic_in_task(py: Python<'_>, message: String) -> PyResult<()> {
    runtime::wait_for_future(py, move || async move {
        tokio::task::spawn_blocking(move || -> () { panic!("{message}") }).await.unwrap_or_else(|e| {
            std::panic::resume_unwind(e.into_panic());
        })
    })
}
