//! What `Workspace.ingest` accepts as a source: a path/URL, a connector config dict, or any Arrow PyCapsule
//! exporter (`__arrow_c_stream__` / `__arrow_c_array__`: pyarrow, polars, pandas ≥ 2.2, nanoarrow, …).

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatchReader;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3_arrow::input::AnyRecordBatch;
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
        let config = crate::convert::to_json(d.as_any())?;
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
