//! `Idempotency-Key` on POSTs: the first response to a key is kept (for [`TTL`], at most
//! [`MAX_IDEMPOTENCY_ENTRIES`] keys) and replayed for a retry with the same key and body, so a client that lost
//! the answer to "create" or "trigger" can send it again without doing the work twice. A key reused with another
//! body is refused (422); a retry while the first request still runs gets 409. An empty key is no key. Keys are scoped by the caller's
//! credentials and the path. Responses with a 5xx status are not kept (the retry runs again).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use segkit::limits::{MAX_IDEMPOTENCY_ENTRIES, MAX_IDEMPOTENCY_KEY_BYTES};
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

enum State_ {
    InFlight,
    Done { status: StatusCode, content_type: Option<HeaderValue>, body: Bytes },
}

struct Entry {
    fingerprint: [u8; 32],
    at: Instant,
    state: State_,
}

/// The kept responses.
#[derive(Default)]
pub struct Store {
    inner: Mutex<(HashMap<String, Entry>, VecDeque<String>)>,
}

impl Store {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, &mut VecDeque<String>) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        f(map, order)
    }
}

enum Begin {
    Run,
    Replay(Response),
    Refuse(Problem),
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
    let fingerprint: [u8; 32] = Sha256::digest(&body).into();
    let now = Instant::now();
    let begin = state.0.idempotency.with(|map, order| {
        // Forget expired entries from the old end first.
        while let Some(oldest) = order.front() {
            match map.get(oldest) {
                Some(e) if now.duration_since(e.at) < TTL && map.len() <= MAX_IDEMPOTENCY_ENTRIES => break,
                _ => {
                    let k = order.pop_front().expect("front exists");
                    map.remove(&k);
                }
            }
        }
        match map.get(&scope) {
            Some(e) if e.fingerprint != fingerprint => Begin::Refuse(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body; use a new key for a new request",
            )),
            Some(Entry { state: State_::InFlight, .. }) => Begin::Refuse(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still running; retry later",
            )),
            Some(Entry { state: State_::Done { status, content_type, body }, .. }) => {
                let mut r = (*status, body.clone()).into_response();
                if let Some(ct) = content_type {
                    r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                }
                r.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
                Begin::Replay(r)
            }
            None => {
                map.insert(scope.clone(), Entry { fingerprint, at: now, state: State_::InFlight });
                order.push_back(scope.clone());
                Begin::Run
            }
        }
    });
    match begin {
        Begin::Replay(r) => return r,
        Begin::Refuse(p) => return p.into_response(),
        Begin::Run => {}
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (rparts, rbody) = response.into_parts();
    let bytes = match axum::body::to_bytes(rbody, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            state.0.idempotency.with(|map, _| map.remove(&scope));
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "response", e.to_string()).into_response();
        }
    };
    state.0.idempotency.with(|map, _| {
        if rparts.status.is_server_error() || bytes.len() > MAX_KEPT_BODY {
            map.remove(&scope);
        } else if let Some(e) = map.get_mut(&scope) {
            e.state = State_::Done {
                status: rparts.status,
                content_type: rparts.headers.get(header::CONTENT_TYPE).cloned(),
                body: bytes.clone(),
            };
        }
    });
    Response::from_parts(rparts, Body::from(bytes))
}
