//! Named sources from JavaScript: `defineSource`, `sources`, `source`, `deleteSource`, `sync` (with a progress
//! callback and an AbortSignal, bridged through a cancellation token registered by id).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::Value;

use crate::{camel_keys, ingest_options, NativeWorkspace, OrJs, Result};

/// `(progress) => void`, called without blocking (weak: it does not keep the event loop alive).
pub type ProgressFn = ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false, true>;

/// The factory of named sources: every built-in connector; with the cargo feature `test-sources` (test builds
/// only, never a release), also segkit's test sources (`testing_parts`).
pub fn factory() -> Arc<dyn segkit::SourceFactory> {
    #[allow(unused_mut)]
    let mut r = segkit_connectors::registry();
    #[cfg(feature = "test-sources")]
    segkit::testing::register_sources(&mut r);
    Arc::new(r)
}

static TOKENS: Mutex<BTreeMap<u32, segkit::CancellationToken>> = Mutex::new(BTreeMap::new());
static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);

fn tokens() -> std::sync::MutexGuard<'static, BTreeMap<u32, segkit::CancellationToken>> {
    TOKENS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new cancellation token; returns its id (index.js ties it to an AbortSignal).
#[napi]
pub fn cancel_token_new() -> u32 {
    let id = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    tokens().insert(id, segkit::CancellationToken::new());
    id
}

/// Cancels the token `id` (no-op if it was released).
#[napi]
pub fn cancel_token_cancel(id: u32) {
    if let Some(t) = tokens().get(&id) {
        t.cancel();
    }
}

/// Forgets the token `id`.
#[napi]
pub fn cancel_token_release(id: u32) {
    tokens().remove(&id);
}

/// The registered token `id`.
pub fn token(id: u32) -> Result<segkit::CancellationToken> {
    tokens().get(&id).cloned().ok_or_else(|| crate::invalid(format!("unknown cancel token {id}")))
}

/// The control of one call: progress to `on_progress` (camelCase keys), cancellation by the token `cancel`.
pub fn control(on_progress: Option<ProgressFn>, cancel: Option<u32>) -> Result<segkit::IngestControl> {
    let mut control = segkit::IngestControl::new();
    if let Some(id) = cancel {
        control = control.cancel_with(token(id)?);
    }
    if let Some(f) = on_progress {
        control = control.on_progress(move |p| {
            let v = camel_keys(serde_json::to_value(p).unwrap_or_default());
            let _ = f.call(v, ThreadsafeFunctionCallMode::NonBlocking);
        });
    }
    Ok(control)
}

#[napi]
impl NativeWorkspace {
    /// Defines (or replaces) a named source; `options_json`: an ingest spec `{mapping, mode}` as JSON text.
    #[napi]
    pub async fn define_source(
        &self,
        name: String,
        entity: String,
        config: Value,
        options_json: Option<String>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let mut def = segkit::SourceDefinition::new(name, entity, config).mapping(opts.mapping);
        def.mode = opts.mode;
        let out = self.inner.define_source(def).await.js()?;
        Ok(camel_keys(serde_json::to_value(out).js()?))
    }

    /// A named source with its sync state.
    #[napi]
    pub fn source(&self, name: String) -> Result<Value> {
        Ok(camel_keys(serde_json::to_value(self.inner.source(&name).js()?).js()?))
    }

    /// All named sources.
    #[napi]
    pub fn sources(&self) -> Result<Vec<Value>> {
        self.inner.sources().js()?.into_iter().map(|s| Ok(camel_keys(serde_json::to_value(s).js()?))).collect()
    }

    /// Deletes a named source (its data stays).
    #[napi]
    pub async fn delete_source(&self, name: String) -> Result<()> {
        self.inner.delete_source(&name).await.js()
    }

    /// Syncs a named source; `on_progress` gets progress objects, `cancel` is a token id from
    /// `cancelTokenNew`.
    #[napi]
    pub async fn sync(&self, name: String, on_progress: Option<ProgressFn>, cancel: Option<u32>) -> Result<Value> {
        let control = control(on_progress, cancel)?;
        let report = self.inner.sync_with(&name, &control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }
}
