//! What `Workspace.define_static_segment` / `add_static_keys` / `remove_static_keys` accept as `keys`: a list or
//! tuple of ints or strs, any Arrow PyCapsule exporter of a table *or of a single column* (a pyarrow Array or
//! ChunkedArray, a polars or pandas Series), or anything `ingest` accepts (a path or URL, a source config dict).
//! Conversion only: core checks the types, nulls and limits.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyString, PyTuple};
use pyo3_arrow::input::{AnyArray, AnyRecordBatch};
use segkit::{RecordBatchSource, Source};

use crate::error::IntoPy;

/// Turns the `keys` argument into a segkit `Source` of one key column (or of a table with one).
pub fn resolve(keys: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Source>> {
    if keys.cast::<PyList>().is_ok() || keys.cast::<PyTuple>().is_ok() {
        return Ok(Arc::new(from_sequence(keys)?));
    }
    if keys.hasattr("__arrow_c_stream__")? || keys.hasattr("__arrow_c_array__")? {
        // A table (struct-typed stream) goes through ingest's path; a single column becomes a one-column table.
        if let Ok(table) = keys.extract::<AnyRecordBatch>() {
            let reader = table.into_reader()?;
            let schema = reader.schema();
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(segkit::Error::from).py()?;
            return Ok(Arc::new(batches_source(batches, schema)?));
        }
        let column: AnyArray = keys.extract()?;
        let reader = column.into_reader()?;
        let field = reader.field();
        let schema = Arc::new(Schema::new(vec![Field::new(
            if field.name().is_empty() { "key" } else { field.name() },
            field.data_type().clone(),
            true,
        )]));
        let batches = reader
            .map(|a| a.and_then(|a| RecordBatch::try_new(schema.clone(), vec![a])))
            .collect::<Result<Vec<_>, _>>()
            .map_err(segkit::Error::from)
            .py()?;
        return Ok(Arc::new(batches_source(batches, schema)?));
    }
    crate::source::resolve(keys)
}

fn batches_source(batches: Vec<RecordBatch>, schema: arrow::datatypes::SchemaRef) -> PyResult<RecordBatchSource> {
    if batches.is_empty() {
        Ok(RecordBatchSource::empty("keys", schema))
    } else {
        RecordBatchSource::new("keys", batches).py()
    }
}

/// A list of ints becomes an int64 column, a list of strs a string column (`None` stays a null, which core
/// refuses with the row number).
fn from_sequence(keys: &Bound<'_, PyAny>) -> PyResult<RecordBatchSource> {
    let items: Vec<Bound<'_, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
    let is_int = |x: &Bound<'_, PyAny>| x.cast::<PyInt>().is_ok() && x.cast::<PyBool>().is_err();
    let column: ArrayRef = if items.iter().any(|x| x.cast::<PyString>().is_ok()) {
        let mut v: Vec<Option<String>> = Vec::with_capacity(items.len());
        for (i, x) in items.iter().enumerate() {
            if x.is_none() {
                v.push(None);
            } else if let Ok(s) = x.cast::<PyString>() {
                v.push(Some(s.to_str()?.to_string()));
            } else {
                return Err(mixed(i, x));
            }
        }
        Arc::new(StringArray::from(v))
    } else {
        let mut v: Vec<Option<i64>> = Vec::with_capacity(items.len());
        for (i, x) in items.iter().enumerate() {
            if x.is_none() {
                v.push(None);
            } else if is_int(x) {
                v.push(Some(x.extract::<i64>().map_err(|_| {
                    PyTypeError::new_err(format!("keys[{i}]: {} does not fit a 64-bit integer key", x))
                })?));
            } else {
                return Err(mixed(i, x));
            }
        }
        Arc::new(Int64Array::from(v))
    };
    let dt: DataType = column.data_type().clone();
    let schema = Arc::new(Schema::new(vec![Field::new("key", dt, true)]));
    RecordBatchSource::new("keys", vec![RecordBatch::try_new(schema, vec![column]).map_err(segkit::Error::from).py()?])
        .py()
}

fn mixed(i: usize, x: &Bound<'_, PyAny>) -> PyErr {
    let t = x.get_type().qualname().map(|q| q.to_string()).unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("keys[{i}] is a {t}; keys must be all int or all str"))
}
