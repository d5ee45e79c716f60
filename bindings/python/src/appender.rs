//! `Appender`: group-commit appends to one event entity (`segkit::appender::Appender`). Each `append` converts
//! its data (Arrow through the PyCapsule interface, or a list of dicts decoded strictly by core's
//! `decode_rows`) and hands it to core's appender on the binding's runtime without waiting; `flush` waits (GIL
//! released) until every append handed over so far is committed. At most `MAX_APPEND_QUEUE` appends are in
//! flight per appender: one more waits for the oldest first.

use std::collections::VecDeque;
use std::sync::Mutex;

use arrow::array::RecordBatch;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyRecordBatch;
use segkit::appender::{decode_rows, AppendReceipt, Appender};
use tokio::task::JoinHandle;

use crate::error::{invalid_argument, IntoPy};
use crate::runtime::{join_error, runtime, wait_for_future};

type Pending = JoinHandle<segkit::Result<AppendReceipt>>;

struct State {
    /// `None` once closed (dropping the last clone ends core's writer task).
    appender: Option<Appender>,
    /// Appends handed over and not yet waited for, oldest first.
    pending: VecDeque<Pending>,
    /// Outcomes of appends waited for before a flush (backpressure), oldest first.
    done: Vec<PyResult<AppendReceipt>>,
}

/// Group-commit appender for one event entity (native). Use `segkit.Appender`, from `Workspace.appender`.
#[pyclass(name = "Appender", module = "segkit._segkit", frozen)]
pub struct PyAppender {
    entity: segkit::Entity,
    state: Mutex<State>,
}

impl PyAppender {
    /// An appender for the event entity `entity` (NotFound / InvalidArgument from core otherwise).
    pub fn new(ws: &segkit::Workspace, entity: &str) -> PyResult<Self> {
        let appender = Appender::new(ws.clone());
        let entity = appender.event_entity(entity).py()?;
        Ok(PyAppender {
            entity,
            state: Mutex::new(State { appender: Some(appender), pending: VecDeque::new(), done: vec![] }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `data` as one batch: an Arrow PyCapsule exporter (its batches concatenated) or a list of dicts.
    fn batch(&self, data: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
        if data.hasattr("__arrow_c_stream__")? || data.hasattr("__arrow_c_array__")? {
            let any: AnyRecordBatch = data.extract()?;
            let reader = any.into_reader()?;
            let schema = reader.schema();
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| crate::error::to_py(e.into()))?;
            return arrow::compute::concat_batches(&schema, &batches).map_err(|e| crate::error::to_py(e.into()));
        }
        if data.is_instance_of::<pyo3::types::PyList>() || data.is_instance_of::<pyo3::types::PyTuple>() {
            let rows = match crate::convert::to_json_data(data, "appended rows")? {
                serde_json::Value::Array(rows) => rows,
                _ => unreachable!("a list converts to a JSON array"),
            };
            return decode_rows(&self.entity, &rows, "rows").map_err(|e| crate::error::to_py(e.into()));
        }
        let t = data.get_type().qualname().map(|q| q.to_string()).unwrap_or_default();
        Err(PyTypeError::new_err(format!(
            "cannot append a {t}: expected Arrow data (__arrow_c_stream__ / __arrow_c_array__: pyarrow, polars, …) or a \
             list of dicts"
        )))
    }

    fn closed(&self) -> PyErr {
        invalid_argument(format!("the appender of `{}` is closed", self.entity.name))
    }
}

/// Waits (GIL released) for `handles`, in order.
fn wait_all(py: Python<'_>, handles: Vec<Pending>) -> PyResult<Vec<PyResult<AppendReceipt>>> {
    if handles.is_empty() {
        return Ok(vec![]);
    }
    let joined = wait_for_future(py, move || futures::future::join_all(handles))?;
    Ok(joined.into_iter().map(|j| j.map_err(join_error).and_then(|r| r.py())).collect())
}

#[pymethods]
impl PyAppender {
    #[getter]
    fn entity(&self) -> &str {
        &self.entity.name
    }

    /// Appends handed over and not yet flushed.
    #[getter]
    fn pending(&self) -> usize {
        let s = self.state();
        s.pending.len() + s.done.len()
    }

    /// Converts `data` and hands it to the group committer without waiting for the commit.
    fn append(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        crate::error::guard(|| {
            if self.state().appender.is_none() {
                return Err(self.closed());
            }
            let batch = self.batch(data)?;
            if batch.num_rows() > segkit::limits::MAX_EVENT_BATCH {
                return Err(crate::error::to_py(segkit::Error::InvalidArgument(format!(
                    "{} events in one append; at most {} (limit MAX_EVENT_BATCH): send several",
                    batch.num_rows(),
                    segkit::limits::MAX_EVENT_BATCH
                ))));
            }
            // Backpressure: never more than MAX_APPEND_QUEUE appends in flight.
            loop {
                let oldest = {
                    let mut s = self.state();
                    if s.pending.len() < segkit::limits::MAX_APPEND_QUEUE {
                        break;
                    }
                    s.pending.pop_front()
                };
                let outcome = wait_all(py, oldest.into_iter().collect())?;
                self.state().done.extend(outcome);
            }
            let rt = runtime()?;
            let mut s = self.state();
            let appender = s.appender.clone().ok_or_else(|| self.closed())?;
            let entity = self.entity.name.clone();
            s.pending.push_back(rt.spawn(async move { appender.append(&entity, batch).await }));
            Ok(())
        })
    }

    /// Waits until every append handed over so far is committed; returns their receipts in order, or raises the
    /// first error among them (the others are committed or failed all the same).
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let (mut outcomes, handles) = {
                let mut s = self.state();
                (std::mem::take(&mut s.done), std::mem::take(&mut s.pending).into_iter().collect::<Vec<_>>())
            };
            outcomes.extend(wait_all(py, handles)?);
            let receipts = outcomes.into_iter().collect::<PyResult<Vec<_>>>()?;
            crate::convert::to_py(py, &receipts)
        })
    }

    /// Flushes, then closes: later appends raise. Closing again returns an empty list.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // Closed first, so an append racing the close is refused rather than left unflushed; the appends in
        // flight hold their own clones and commit.
        self.state().appender = None;
        self.flush(py)
    }
}
