//! The one place where Rust errors become Python exceptions.
//!
//! `segkit::ErrorKind` picks the class; the message is the Rust cause chain, outermost first. The exception
//! also carries `kind` (e.g. `"rule"`) and `causes` (the list of messages, outermost first) attributes — the same
//! name as the Node error property.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(segkit, SegkitError, PyException, "Base class of every error raised by segkit.");
create_exception!(
    segkit,
    DefinitionError,
    SegkitError,
    "An entity, attribute, link, mapping or segment definition is invalid, or a change to it is incompatible."
);
create_exception!(segkit, NotFoundError, SegkitError, "A named entity, segment or run does not exist.");
create_exception!(segkit, RuleError, SegkitError, "A rule does not parse or does not type-check against its entity.");
create_exception!(segkit, IngestError, SegkitError, "An ingest (or its source) failed as a whole.");
create_exception!(segkit, ConflictError, SegkitError, "Another writer committed first; retry.");
create_exception!(segkit, StorageError, SegkitError, "The catalog, object store, Parquet or local I/O failed.");
create_exception!(segkit, EngineError, SegkitError, "Arrow, DataFusion or JSON failed.");
create_exception!(
    segkit,
    CancelledError,
    SegkitError,
    "An operation was cancelled before it committed (a cancellation from a progress callback, say); nothing it did is visible."
);
create_exception!(
    segkit,
    InternalError,
    SegkitError,
    "A bug in segkit: a Rust panic, reported as an exception instead of aborting the process."
);

/// `InvalidArgumentError(SegkitError, ValueError)`: built at import, since it has two bases.
static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

pub fn invalid_argument_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    INVALID_ARGUMENT
        .get_or_try_init(py, || -> PyResult<Py<PyType>> {
            let bases = PyTuple::new(py, [py.get_type::<SegkitError>(), py.get_type::<PyValueError>()])?;
            let ns = PyDict::new(py);
            ns.set_item("__module__", "segkit")?;
            ns.set_item("__doc__", "An argument is out of range or malformed (also a ValueError).")?;
            let builtins = py.import("builtins")?;
            let cls = builtins.getattr("type")?.call1(("InvalidArgumentError", bases, ns))?;
            Ok(cls.cast_into::<PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

/// Converts a segkit error into the matching Python exception.
pub fn to_py(err: segkit::Error) -> PyErr {
    Python::attach(|py| {
        let chain = err.chain();
        let message = chain.join("\n  caused by: ");
        let kind = err.kind();
        let cls: Bound<'_, PyType> = match kind {
            segkit::ErrorKind::Definition => py.get_type::<DefinitionError>(),
            segkit::ErrorKind::NotFound => py.get_type::<NotFoundError>(),
            segkit::ErrorKind::Rule => py.get_type::<RuleError>(),
            segkit::ErrorKind::Ingest => py.get_type::<IngestError>(),
            segkit::ErrorKind::Conflict => py.get_type::<ConflictError>(),
            segkit::ErrorKind::InvalidArgument => match invalid_argument_type(py) {
                Ok(t) => t.clone(),
                Err(e) => return e,
            },
            segkit::ErrorKind::Storage => py.get_type::<StorageError>(),
            segkit::ErrorKind::Engine => py.get_type::<EngineError>(),
            segkit::ErrorKind::Cancelled => py.get_type::<CancelledError>(),
            _ => py.get_type::<SegkitError>(),
        };
        let make = || -> PyResult<PyErr> {
            let exc = cls.call1((message.clone(),))?;
            exc.setattr("kind", kind.as_str())?;
            exc.setattr("causes", chain.clone())?;
            Ok(PyErr::from_value(exc))
        };
        make().unwrap_or_else(|e| e)
    })
}

/// Converts a Rust panic's payload (from a tokio `JoinError` or `catch_unwind`) into an `InternalError`.
pub fn panic_to_py(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    let message = format!("internal error (a Rust panic inside segkit; please report it): {what}");
    Python::attach(|py| {
        let make = || -> PyResult<PyErr> {
            let exc = py.get_type::<InternalError>().call1((message.clone(),))?;
            exc.setattr("kind", "internal")?;
            exc.setattr("causes", vec![message.clone()])?;
            Ok(PyErr::from_value(exc))
        };
        make().unwrap_or_else(|e| e)
    })
}

/// Runs the body of a synchronous native call so that a Rust panic in it becomes `InternalError` (a
/// `SegkitError`); left to pyo3 it would be `PanicException`, a `BaseException` that `except Exception` misses.
/// (Calls that wait on the runtime map panics of their tasks in [`crate::runtime::wait_for_future`].)
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_to_py(p)))
}

/// An `InvalidArgumentError` with `message` (for bad input detected in the binding itself).
pub fn invalid_argument(message: impl Into<String>) -> PyErr {
    to_py(segkit::Error::InvalidArgument(message.into()))
}

/// `Result` extension: `.py()` converts the error.
pub trait IntoPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for segkit::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SegkitError", py.get_type::<SegkitError>())?;
    m.add("DefinitionError", py.get_type::<DefinitionError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("IngestError", py.get_type::<IngestError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("InvalidArgumentError", invalid_argument_type(py)?)?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("EngineError", py.get_type::<EngineError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    Ok(())
}
