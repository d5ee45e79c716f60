//! Type conversions: Python objects ⇄ JSON values, Arrow batches → Python tables.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3_arrow::PyTable;
use std::cell::RefCell;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::invalid_argument;

/// Converts plain Python data (dict with str keys, list/tuple, str, int, float, bool, None, and anything with
/// `isoformat()` such as datetime/date) to JSON.
///
/// Nesting deeper than `segkit::limits::MAX_RULE_DEPTH` (dicts and lists) is refused before recursing further, so
/// a 100,000-deep dict is an error, not a stack overflow (nor a too-deep `Value`, whose drop would recurse).
///
/// This is the conversion for rules (the depth error talks about the rule); use [`to_json_data`] for anything else.
pub fn to_json(ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    let err = RefCell::new(None);
    serde_json::to_value(PyJson { ob, at: &Seg::Root, depth: 1, what: None, err: &err }).map_err(|e| take(&err, e))
}

/// [`to_json`] for data that is not a rule; nesting past the limit is an `InvalidArgumentError` naming `what`
/// (`"ingested rows"`).
pub fn to_json_data(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    let err = RefCell::new(None);
    serde_json::to_value(PyJson { ob, at: &Seg::Root, depth: 1, what: Some(what), err: &err })
        .map_err(|e| take(&err, e))
}

/// [`to_json_data`] as JSON text, keeping the order of dict keys (a `Value` would sort them): what the request
/// model in core parses (`segkit::spec::from_json_text`), e.g. an entity's attribute map in storage order.
pub fn to_json_text(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let err = RefCell::new(None);
    serde_json::to_string(&PyJson { ob, at: &Seg::Root, depth: 1, what: Some(what), err: &err })
        .map_err(|e| take(&err, e))
}

fn take(err: &RefCell<Option<PyErr>>, e: serde_json::Error) -> PyErr {
    err.borrow_mut().take().unwrap_or_else(|| crate::error::to_py(segkit::Error::Json(e)))
}

/// Where a value sits, built only when an error needs it.
enum Seg<'a> {
    Root,
    Key(&'a Seg<'a>, &'a str),
    Index(&'a Seg<'a>, usize),
}

impl std::fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Root => f.write_str("<root>"),
            Seg::Key(Seg::Root, k) => f.write_str(k),
            Seg::Key(p, k) => write!(f, "{p}.{k}"),
            Seg::Index(Seg::Root, i) => write!(f, "[{i}]"),
            Seg::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// A Python object serialised as JSON; a conversion error is kept in `err` (serde's error type cannot hold it).
struct PyJson<'a, 'py> {
    ob: &'a Bound<'py, PyAny>,
    at: &'a Seg<'a>,
    depth: usize,
    /// What is converted, for the depth error (`None`: a rule).
    what: Option<&'a str>,
    err: &'a RefCell<Option<PyErr>>,
}

impl Serialize for PyJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fail = |e: PyErr| -> S::Error {
            *self.err.borrow_mut() = Some(e);
            serde::ser::Error::custom("python conversion failed")
        };
        let ob = self.ob;
        if ob.is_none() {
            return s.serialize_unit();
        }
        if let Ok(b) = ob.cast::<PyBool>() {
            return s.serialize_bool(b.is_true());
        }
        if ob.is_instance_of::<PyInt>() {
            if let Ok(i) = ob.extract::<i64>() {
                return s.serialize_i64(i);
            }
            if let Ok(u) = ob.extract::<u64>() {
                return s.serialize_u64(u);
            }
            return Err(fail(invalid_argument(format!("integer at {} does not fit in 64 bits", self.at))));
        }
        if let Ok(f) = ob.cast::<PyFloat>() {
            let v = f.value();
            if !v.is_finite() {
                return Err(fail(invalid_argument(format!("{v} at {} cannot be represented in JSON", self.at))));
            }
            return s.serialize_f64(v);
        }
        if let Ok(t) = ob.cast::<PyString>() {
            return s.serialize_str(t.to_str().map_err(fail)?);
        }
        let is_dict = ob.is_instance_of::<PyDict>();
        let is_list = ob.is_instance_of::<PyList>() || ob.is_instance_of::<PyTuple>();
        if (is_dict || is_list) && self.depth > segkit::limits::MAX_RULE_DEPTH {
            let e = match self.what {
                None => segkit::limits::depth_error(),
                Some(what) => segkit::limits::value_depth_error(what),
            };
            return Err(fail(crate::error::to_py(e)));
        }
        if let Ok(d) = ob.cast::<PyDict>() {
            let mut m = s.serialize_map(Some(d.len()))?;
            for (k, v) in d.iter() {
                let key: String = k
                    .extract()
                    .map_err(|_| fail(PyTypeError::new_err(format!("dict keys must be str (at {})", self.at))))?;
                let at = Seg::Key(self.at, &key);
                m.serialize_entry(
                    &key,
                    &PyJson { ob: &v, at: &at, depth: self.depth + 1, what: self.what, err: self.err },
                )?;
            }
            return m.end();
        }
        if is_list {
            let n = ob.len().map_err(fail)?;
            let mut q = s.serialize_seq(Some(n))?;
            for (i, v) in ob.try_iter().map_err(fail)?.enumerate() {
                let v = v.map_err(fail)?;
                let at = Seg::Index(self.at, i);
                q.serialize_element(&PyJson {
                    ob: &v,
                    at: &at,
                    depth: self.depth + 1,
                    what: self.what,
                    err: self.err,
                })?;
            }
            return q.end();
        }
        if ob.hasattr("isoformat").map_err(fail)? {
            let text: String = ob.call_method0("isoformat").and_then(|t| t.extract()).map_err(fail)?;
            return s.serialize_str(&text);
        }
        let type_name = ob.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        Err(fail(PyTypeError::new_err(format!(
            "cannot convert {type_name} at {} to JSON (expected dict, list, str, int, float, bool, None or a date/datetime)",
            self.at
        ))))
    }
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
