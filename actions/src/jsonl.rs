//! [`JsonlFileAction`]: deliveries appended to a local JSON-lines file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use segkit::{Clock, SystemClock};

use crate::{Action, Delivery, Outcome};

/// Appends each delivery as one JSON line to a local file, creating the file and its parent directories.
///
/// Each line is an object with `idempotency_key`, `origin`, `step`, `channel`, `entity`, `entity_key`,
/// `attributes`, `content` (the rendered template parts, `{}` without a template), `attempt` and `delivered_at` (RFC 3339, from the action's clock). Concurrent
/// [`execute`](Action::execute) calls on one action are serialised by a lock and every line is written with a
/// single `write` to a file opened in append mode, so lines never interleave.
///
/// The receipt of a delivery is the byte offset at which its line starts. I/O failures (an unwritable path, a
/// full disk) are [`Outcome::Retryable`].
///
/// ```no_run
/// # async fn demo() {
/// use segkit_actions::{Action, Delivery, JsonlFileAction, Outcome};
/// let action = JsonlFileAction::new("out/deliveries.jsonl");
/// let mut delivery = Delivery::new("wf1:1:0:42", "welcome", "user", "42");
/// delivery.content.insert("text".into(), "Hello".into());
/// assert!(matches!(action.execute(&delivery).await, Outcome::Delivered { .. }));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JsonlFileAction {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    lock: Arc<Mutex<()>>,
}

impl JsonlFileAction {
    /// Appends to the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonlFileAction { path: path.into(), clock: Arc::new(SystemClock), lock: Arc::new(Mutex::new(())) }
    }

    /// Uses `clock` for `delivered_at` (e.g. a workspace's fixed clock in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The JSON line (without the newline) written for `delivery`.
    pub fn line(&self, delivery: &Delivery) -> String {
        let record: Value = json!({
            "idempotency_key": delivery.idempotency_key,
            "origin": delivery.origin,
            "step": delivery.step,
            "channel": delivery.channel,
            "entity": delivery.entity,
            "entity_key": delivery.entity_key,
            "attributes": delivery.attributes,
            "content": delivery.content,
            "attempt": delivery.attempt,
            "delivered_at": self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        record.to_string()
    }
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<u64> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let offset = file.metadata()?.len();
    file.write_all(bytes)?;
    file.flush()?;
    Ok(offset)
}

#[async_trait]
impl Action for JsonlFileAction {
    fn kind(&self) -> &str {
        "jsonl"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let mut line = self.line(delivery);
        line.push('\n');
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || append(&path, line.as_bytes())).await;
        match result {
            Ok(Ok(offset)) => Outcome::Delivered { receipt: Some(offset.to_string()) },
            Ok(Err(e)) => Outcome::Retryable {
                reason: format!("cannot append to {}: {e}", self.path.display()),
                retry_after: None,
            },
            Err(e) => Outcome::Retryable { reason: format!("write task failed: {e}"), retry_after: None },
        }
    }
}
