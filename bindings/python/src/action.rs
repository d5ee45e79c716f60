//! Actions from Python: a config dict built by the built-in families (`segkit_actions::registry()`), or a
//! custom action — an object with `execute(delivery)`, sync or `async def` — adapted to core's `Action` trait
//! ([`PyAction`]), so the same dispatcher, retries and ledger drive it.
//!
//! The Python half lives in `segkit/_actions.py` (`_execute`): it builds the `segkit.Delivery`, runs
//! `execute` (a coroutine on the event loop segkit manages in a daemon thread), turns the result or the
//! exception into an outcome dict, which core's `Outcome::from_json` parses.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use segkit::action::{ActionFactory, Delivery, Outcome};
use segkit::Action;

use crate::error::IntoPy;

/// The factory of action configs: every compiled-in family (jsonl, smtp, webhook, wecom, dingtalk, feishu, sms).
pub fn factory() -> Arc<dyn ActionFactory> {
    Arc::new(segkit_actions::registry())
}

/// The longest a coroutine `execute` may run before its delivery is retried (the dispatcher's own limit).
const EXECUTE_TIMEOUT_S: f64 = 30.0;

/// A segkit [`Action`] implemented in Python.
pub struct PyAction {
    kind: String,
    obj: Arc<Py<PyAny>>,
    parts: Option<Vec<&'static str>>,
    rate: Option<f64>,
}

impl fmt::Debug for PyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyAction").field("kind", &self.kind).field("parts", &self.parts).finish()
    }
}

#[async_trait]
impl Action for PyAction {
    fn kind(&self) -> &str {
        &self.kind
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let json = match serde_json::to_value(delivery) {
            Ok(v) => v,
            Err(e) => return Outcome::Permanent { reason: format!("the delivery cannot be converted: {e}") },
        };
        let obj = self.obj.clone();
        let joined = tokio::task::spawn_blocking(move || {
            Python::attach(|py| -> PyResult<serde_json::Value> {
                let run = py.import("segkit._actions")?.getattr("_execute")?;
                let out = run.call1((obj.bind(py), crate::convert::from_json(py, &json)?, EXECUTE_TIMEOUT_S))?;
                crate::convert::to_json_data(&out, "the outcome of execute()")
            })
        })
        .await;
        match joined {
            Err(e) => Outcome::Retryable {
                reason: format!("{}: execute() did not complete: {e}", self.kind),
                retry_after: None,
            },
            Ok(Err(e)) => Outcome::Permanent {
                reason: Python::attach(|py| format!("{}: {}", self.kind, crate::source::raised(py, "execute()", &e))),
            },
            Ok(Ok(v)) => Outcome::from_json(&v).unwrap_or_else(|m| Outcome::Permanent {
                reason: format!("{}: execute() returned an invalid outcome: {m}", self.kind),
            }),
        }
    }

    fn parts(&self) -> Option<&[&str]> {
        self.parts.as_deref()
    }

    fn max_rate_per_second(&self) -> Option<f64> {
        self.rate
    }
}

/// `action`: a config dict (`{"type": "webhook", …}`) or an object with a callable `execute`; `parts` and
/// `rate` are what the Python wrapper read from the object's `parts` / `max_rate_per_second`.
pub fn resolve(action: &Bound<'_, PyAny>, parts: Option<Vec<String>>, rate: Option<f64>) -> PyResult<Arc<dyn Action>> {
    if let Ok(d) = action.cast::<PyDict>() {
        let config = crate::convert::to_json_data(d.as_any(), "action config")?;
        return factory().build(&config).py();
    }
    if !action.hasattr("execute")? || !action.getattr("execute")?.is_callable() {
        let t = action.get_type().qualname()?;
        return Err(crate::error::invalid_argument(format!(
            "an action is a config dict tagged by `type` or an object with an execute(delivery) method, not a {t}"
        )));
    }
    let parts = parts.map(|p| segkit::action::declared_parts(&p)).transpose().py()?;
    let rate = segkit::action::check_declared_rate(rate).py()?;
    let kind = format!("python:{}", action.get_type().qualname()?);
    Ok(Arc::new(PyAction { kind, obj: Arc::new(action.clone().unbind()), parts, rate }))
}
