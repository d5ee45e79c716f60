//! `Idempotency-Key` on POSTs: the first response to a key is kept in the workspace catalog (for [`TTL`], at most
//! [`segkit::limits::MAX_IDEMPOTENCY_ENTRIES`] keys, see [`segkit::Workspace::keep_idempotency_record`]) and replayed for a retry
//! with the same key and body — also after the server restarted — so a client that lost the answer to "create",
//! "upload" or "trigger" can send it again without doing the work twice. A key reused with another body is
//! refused (422); a retry while the first request still runs in this process gets 409. An empty key is no key.
//! Keys are scoped by the caller's credentials and the path. Responses with a 5xx status are not kept (the retry
//! runs again).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use segkit::catalog::IdempotencyRecord;
use segkit::limits::MAX_IDEMPOTENCY_KEY_BYTES;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::Problem;

/// How long a response is kept for its key.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// The header a client sends.
pub const HEADER: &str = "idempotency-key";

/// The header on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

/// Largest response body kept for replay; a larger one is returned but not kept.
const MAX_KEPT_BODY: usize = 1024 * 1024;

/// The scopes whose first request is running in this process (the kept answers are in the catalog).
#[derive(Default)]
pub struct Store {
    in_flight: Mutex<HashSet<String>>,
}

impl Store {
    fn with<T>(&self, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        let mut g = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

/// Removes a scope from the in-flight set when the request ends, however it ends (also when the client goes
/// away and the handler's future is dropped).
struct InFlight<'a> {
    store: &'a Store,
    scope: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.store.with(|set| set.remove(&self.scope));
    }
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    // Without credentials the handler answers 401; a key of an unauthenticated request is not worth checking.
    if !req.headers().contains_key(header::AUTHORIZATION) || key.is_empty() {
        return next.run(req).await;
    }
    let Ok(key) = key.to_str().map(str::to_string) else {
        return Problem::bad_request("the Idempotency-Key header is not text").into_response();
    };
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Problem::bad_request(format!(
            "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes (limit MAX_IDEMPOTENCY_KEY_BYTES)"
        ))
        .into_response();
    }
    let (parts, body) = req.into_parts();
    // An upload may be larger than other bodies; with a key it is held in memory for the fingerprint.
    let (limit, name) = if parts.uri.path().ends_with("/upload") {
        (state.0.upload_limit, "the server's --upload-limit, MAX_UPLOAD_BYTES")
    } else {
        (state.0.body_limit, "limit MAX_REQUEST_BODY_BYTES")
    };
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {limit} bytes ({name})"),
            )
            .into_response()
        }
    };
    let auth = parts.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let scope = hex::encode(Sha256::digest(
        [auth.as_slice(), b"\n", parts.uri.path().as_bytes(), b"\n", key.as_bytes()].concat(),
    ));
    let fingerprint = hex::encode(Sha256::digest(&body));
    let ws = state.workspace().clone();
    let replay = |rec: IdempotencyRecord| -> Response {
        if rec.fingerprint != fingerprint {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body; use a new key for a new request",
            )
            .into_response();
        }
        let status = StatusCode::from_u16(rec.status).unwrap_or(StatusCode::OK);
        let mut r = (status, Bytes::from(rec.body)).into_response();
        if let Some(ct) = rec.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        r.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
        r
    };
    // Claim the scope first, then look for a kept answer: the first request keeps its answer before it leaves
    // the in-flight set, so a retry either finds it running (409) or finds its answer.
    if !state.0.idempotency.with(|set| set.insert(scope.clone())) {
        return Problem::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running; retry later",
        )
        .into_response();
    }
    let _in_flight = InFlight { store: &state.0.idempotency, scope: scope.clone() };
    let kept = {
        let (ws, scope) = (ws.clone(), scope.clone());
        tokio::task::spawn_blocking(move || ws.idempotency_record(&scope, TTL)).await
    };
    match kept {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(rec))) => return replay(rec),
        Ok(Err(e)) => return Problem::from(e).into_response(),
        Err(e) => return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()).into_response(),
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (rparts, rbody) = response.into_parts();
    let bytes = match axum::body::to_bytes(rbody, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "response", e.to_string()).into_response();
        }
    };
    if !rparts.status.is_server_error() && bytes.len() <= MAX_KEPT_BODY {
        let record = IdempotencyRecord {
            fingerprint,
            status: rparts.status.as_u16(),
            content_type: rparts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string),
            body: bytes.to_vec(),
            created_at: 0,
        };
        let kept = tokio::task::spawn_blocking(move || ws.keep_idempotency_record(&scope, record, TTL)).await;
        // The work is done; failing to keep its answer only means a retry would run it again: say so in the log.
        match kept {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not keep an idempotent response"),
            Err(e) => tracing::warn!(error = %e, "could not keep an idempotent response"),
        }
    }
    Response::from_parts(rparts, Body::from(bytes))
}
