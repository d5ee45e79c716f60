//! Type conversions: Python objects ⇄ JSON values, Arrow batches → Python tables.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3_arrow::PyTable;
use serde_json::{Map, Number, Value};

use crate::error::invalid_argument;

/// Converts plain Python data (dict with str keys, list/tuple, str, int, float, bool, None, and anything with
/// `isoformat()` such as datetime/date) to JSON.
///
/// Nesting deeper than `segkit::limits::MAX_RULE_DEPTH` (dicts and lists) is refused before recursing further, so
/// a 100,000-deep dict is an error, not a stack overflow (nor a too-deep `Value`, whose drop would recurse).
pub fn to_json(ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(ob, "", 1)
}

fn to_json_at(ob: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    let here = || {
        if path.is_empty() {
            "<root>".to_string()
        } else {
            path.to_string()
        }
    };
    if ob.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = ob.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if ob.is_instance_of::<PyInt>() {
        if let Ok(i) = ob.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = ob.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(invalid_argument(format!("integer at {} does not fit in 64 bits", here())));
    }
    if let Ok(f) = ob.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| invalid_argument(format!("{v} at {} cannot be represented in JSON", here())));
    }
    if let Ok(s) = ob.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_string()));
    }
    let container = ob.is_instance_of::<PyDict>() || ob.is_instance_of::<PyList>() || ob.is_instance_of::<PyTuple>();
    if container && depth > segkit::limits::MAX_RULE_DEPTH {
        return Err(crate::error::to_py(segkit::limits::depth_error()));
    }
    if let Ok(d) = ob.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let key: String =
                k.extract().map_err(|_| PyTypeError::new_err(format!("dict keys must be str (at {})", here())))?;
            let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            m.insert(key, to_json_at(&v, &child, depth + 1)?);
        }
        return Ok(Value::Object(m));
    }
    if ob.is_instance_of::<PyList>() || ob.is_instance_of::<PyTuple>() {
        let mut out = vec![];
        for (i, v) in ob.try_iter()?.enumerate() {
            out.push(to_json_at(&v?, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if ob.hasattr("isoformat")? {
        return Ok(Value::String(ob.call_method0("isoformat")?.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot convert {} at {} to JSON (expected dict, list, str, int, float, bool, None or a date/datetime)",
        ob.get_type().name()?,
        here()
    )))
}

/// Converts JSON to plain Python data.
pub fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items = a.iter().map(|x| from_json(py, x)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, from_json(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// Serialises any serde value to Python data.
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value).map_err(|e| crate::error::to_py(segkit::Error::Json(e)))?;
    from_json(py, &v)
}

/// A Python table (`__arrow_c_stream__`) over `batches`; `schema` keeps it typed when there are none.
pub fn table(batches: Vec<RecordBatch>, schema: SchemaRef) -> PyResult<PyTable> {
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    PyTable::try_new(batches, schema)
}

/// A Python table over one batch.
pub fn batch_table(batch: RecordBatch) -> PyResult<PyTable> {
    let schema = batch.schema();
    PyTable::try_new(vec![batch], schema)
}
