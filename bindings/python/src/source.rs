//! What `Workspace.ingest` accepts as a source: a path/URL, a connector config dict, any Arrow PyCapsule
//! exporter (`__arrow_c_stream__` / `__arrow_c_array__`: pyarrow, polars, pandas ≥ 2.2, nanoarrow, …), or a
//! Python object implementing segkit's `Source` protocol ([`PySource`]).

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3_arrow::input::AnyRecordBatch;
use segkit::source::to_declared;
use segkit::{BatchStream, ScanRequest, Source};

use crate::error::IntoPy;

/// A one-shot source over an Arrow C stream imported from Python. The stream is read lazily during the
/// ingest (with the GIL released; exporters that call back into Python take it themselves).
pub struct ArrowStreamSource {
    name: String,
    schema: SchemaRef,
    reader: Mutex<Option<Box<dyn RecordBatchReader + Send>>>,
}

impl fmt::Debug for ArrowStreamSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrowStreamSource").field("name", &self.name).finish()
    }
}

#[async_trait]
impl Source for ArrowStreamSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> segkit::Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, _request: &ScanRequest) -> segkit::Result<BatchStream> {
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take().ok_or_else(|| {
            segkit::Error::InvalidArgument(format!("the Arrow stream `{}` was already consumed", self.name))
        })?;
        Ok(futures::stream::iter(reader.map(|r| r.map_err(segkit::Error::from))).boxed())
    }
}

/// A segkit [`Source`] implemented in Python: an object with `schema()` (returning any `__arrow_c_schema__`
/// exporter, e.g. a `pyarrow.Schema`), `scan()` (returning Arrow data — any `__arrow_c_stream__` /
/// `__arrow_c_array__` exporter — or an iterable of such pieces, e.g. a generator over the pages of an HTTP API)
/// and, optionally, a `name` attribute. Each call takes the GIL on a blocking thread; a Python exception becomes
/// a source error naming the source.
pub struct PySource {
    obj: Arc<Py<PyAny>>,
    name: String,
}

impl fmt::Debug for PySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PySource").field("name", &self.name).finish()
    }
}

impl PySource {
    /// Whether `obj` looks like a Python source (callable `schema` and `scan`).
    pub fn accepts(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
        for m in ["schema", "scan"] {
            if !obj.hasattr(m)? || !obj.getattr(m)?.is_callable() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = match obj.getattr("name") {
            Ok(n) if !n.is_none() => n.str()?.to_string(),
            _ => format!("python:{}", obj.get_type().qualname()?),
        };
        Ok(PySource { obj: Arc::new(obj.clone().unbind()), name })
    }

    fn error(&self, what: &str, e: PyErr) -> segkit::Error {
        let message = Python::attach(|py| raised(py, what, &e));
        segkit::Error::Source { source_name: self.name.clone(), message, cause: None }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<T> + Send + 'static,
    ) -> segkit::Result<T> {
        let obj = self.obj.clone();
        let result =
            tokio::task::spawn_blocking(move || Python::attach(|py| f(py, obj.bind(py)))).await.map_err(|e| {
                segkit::Error::Source { source_name: self.name.clone(), message: e.to_string(), cause: None }
            })?;
        result.map_err(|e| self.error(what, e))
    }
}

#[async_trait]
impl Source for PySource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> segkit::Result<SchemaRef> {
        self.blocking("schema()", |_, obj| {
            let schema: pyo3_arrow::PySchema = obj.call_method0("schema")?.extract()?;
            Ok(schema.into_inner())
        })
        .await
    }

    async fn scan(&self, _request: &ScanRequest) -> segkit::Result<BatchStream> {
        let name = self.name.clone();
        let schema = self.schema().await?;
        let pieces = self
            .blocking("scan()", |_, obj| {
                let data = obj.call_method0("scan")?;
                if data.hasattr("__arrow_c_stream__")? || data.hasattr("__arrow_c_array__")? {
                    let any: AnyRecordBatch = data.extract()?;
                    return Ok(Pieces::Reader(any.into_reader()?));
                }
                Ok(Pieces::Iter(data.try_iter()?.unbind()))
            })
            .await?;
        Ok(match pieces {
            Pieces::Reader(reader) => {
                let source_error =
                    move |message| segkit::Error::Source { source_name: name.clone(), message, cause: None };
                futures::stream::iter(reader.map(move |r| {
                    let b = r.map_err(segkit::Error::from)?;
                    to_declared(&b, &schema).map_err(&source_error)
                }))
                .boxed()
            }
            Pieces::Iter(iter) => {
                // One piece at a time, each taking the GIL on a blocking thread.
                let iter = Arc::new(iter);
                segkit::source::paged(name, move || {
                    let (it, declared) = (iter.clone(), schema.clone());
                    async move {
                        tokio::task::spawn_blocking(move || Python::attach(|py| next_piece(py, &it, &declared)))
                            .await
                            .map_err(|e| e.to_string())?
                    }
                })
            }
        })
    }
}

/// The next piece of a Python `scan()` iterable as batches; `None` at the end.
fn next_piece(
    py: Python<'_>,
    iter: &Py<pyo3::types::PyIterator>,
    schema: &SchemaRef,
) -> Result<Option<Vec<RecordBatch>>, String> {
    let describe = |e: PyErr| raised(py, "scan()", &e);
    let Some(item) = iter.bind(py).clone().next() else { return Ok(None) };
    let item = item.map_err(describe)?;
    if item.cast::<pyo3::types::PyList>().is_ok() {
        // A page of records (dicts), decoded against the declared schema.
        let rows = match crate::convert::to_json_data(&item, "ingested rows").map_err(describe)? {
            serde_json::Value::Array(rows) => rows,
            _ => unreachable!("a list converts to a JSON array"),
        };
        return segkit::source::decode_json_rows(&rows, schema).map(|b| Some(vec![b]));
    }
    let any: AnyRecordBatch = item.extract().map_err(|_| {
        let t = item.get_type().qualname().map(|q| q.to_string()).unwrap_or_default();
        format!(
            "scan() yielded a {t}, not a page (an Arrow object with __arrow_c_stream__ or __arrow_c_array__, or a list \
             of dicts)"
        )
    })?;
    let reader = any.into_reader().map_err(describe)?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    batches.iter().map(|b| to_declared(b, schema)).collect::<Result<Vec<_>, _>>().map(Some)
}

enum Pieces {
    Reader(Box<dyn RecordBatchReader + Send>),
    Iter(Py<pyo3::types::PyIterator>),
}

/// Turns the `source` argument of `ingest` into a segkit `Source`.
pub fn resolve(source: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Source>> {
    let py = source.py();
    if let Ok(s) = source.cast::<PyString>() {
        return segkit_connectors::open(s.to_str()?).py();
    }
    if source.hasattr("__fspath__")? {
        let p = py.import("os")?.call_method1("fspath", (source,))?;
        let s: String =
            p.extract().map_err(|_| PyTypeError::new_err("a bytes path is not supported; pass a str path"))?;
        return segkit_connectors::open(&s).py();
    }
    if let Ok(d) = source.cast::<PyDict>() {
        let config = crate::convert::to_json_data(d.as_any(), "source config")?;
        return segkit_connectors::from_config(&config).py();
    }
    if source.hasattr("__arrow_c_stream__")? || source.hasattr("__arrow_c_array__")? {
        let ty = source.get_type();
        let module: String = ty.module()?.extract().unwrap_or_default();
        let package = module.split('.').next().unwrap_or_default();
        let name = if package.is_empty() {
            format!("arrow:{}", ty.qualname()?)
        } else {
            format!("arrow:{package}.{}", ty.qualname()?)
        };
        let any: AnyRecordBatch = source.extract()?;
        let reader = any.into_reader()?;
        return Ok(Arc::new(ArrowStreamSource { name, schema: reader.schema(), reader: Mutex::new(Some(reader)) }));
    }
    if PySource::accepts(source)? {
        return Ok(Arc::new(PySource::new(source)?));
    }
    let ty = source.get_type();
    let module: String = ty.module()?.extract().unwrap_or_default();
    let qualname: String = ty.qualname()?.extract().unwrap_or_default();
    if module.starts_with("pandas") {
        return Err(PyTypeError::new_err(format!(
            "this pandas {qualname} does not implement the Arrow PyCapsule interface (__arrow_c_stream__, pandas >= 2.2); \
             upgrade pandas, or pass pyarrow.Table.from_pandas(df) or polars.from_pandas(df)"
        )));
    }
    Err(PyTypeError::new_err(format!(
        "cannot ingest from {module}.{qualname}: expected a file path or URL (str / os.PathLike), a source config dict, \
         or an Arrow object implementing __arrow_c_stream__ or __arrow_c_array__ (pyarrow, polars, pandas >= 2.2, nanoarrow)"
    )))
}

/// "`what` raised `ExceptionType`: message", for a Python exception from a source's method.
pub fn raised(py: Python<'_>, what: &str, e: &PyErr) -> String {
    match e.value(py).get_type().qualname() {
        Ok(t) => format!("{what} raised {t}: {}", e.value(py)),
        Err(_) => format!("{what} raised {e}"),
    }
}
