//! What every resource module shares: the body and query extractors, JSON helpers and `ETag` / `If-Match`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::error::Problem;

/// What a handler returns: a value or a problem+json answer.
pub(super) type ApiResult<T> = Result<T, Problem>;

/// The request body as UTF-8 text; a bad body is a problem+json 4xx.
pub(super) struct Text(pub(super) String);

impl FromRequest<AppState> for Text {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Problem> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_argument" };
            Problem::new(status, kind, e.body_text())
        })?;
        String::from_utf8(bytes.to_vec()).map(Text).map_err(|_| Problem::bad_request("the request body is not UTF-8"))
    }
}

/// Query parameters; a bad one is a problem+json 400.
pub(super) struct Q<T>(pub(super) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Q<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// The request body as a JSON value; not JSON is a 400.
pub(super) fn json_body(text: &str) -> ApiResult<Value> {
    serde_json::from_str(text).map_err(|e| Problem::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// 201 with a JSON body.
pub(super) fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// A strong ETag over a stored definition (its JSON form).
pub(super) fn etag(d: &impl serde::Serialize) -> ApiResult<String> {
    let text = serde_json::to_string(d).map_err(|e| Problem::from(segkit::Error::from(e)))?;
    Ok(format!("\"{}\"", hex::encode(&Sha256::digest(text.as_bytes())[..16])))
}

pub(super) fn with_etag(v: Value, tag: &str, status: StatusCode) -> Response {
    let mut r = (status, Json(v)).into_response();
    if let Ok(h) = HeaderValue::from_str(tag) {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

/// 412 unless `If-Match` (when sent) names the current version of `what` (`segment`, `source`, …).
pub(super) fn check_if_match(headers: &HeaderMap, current: &str, what: &str) -> ApiResult<()> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let v = v.to_str().map_err(|_| Problem::bad_request("the If-Match header is not text"))?;
    if v.trim() == "*" || v.split(',').any(|t| t.trim() == current) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("the {what} changed since you read it (If-Match {v}, current ETag {current}): read it again"),
        ))
    }
}

/// A definition body as a JSON value whose `name` agrees with the path's: filled in from the path when left out,
/// a 422 at `<what>.name` when it names another object.
pub(super) fn named_body(body: &str, name: &str, what: &str) -> ApiResult<Value> {
    let mut v = json_body(body)?;
    if let Value::Object(m) = &mut v {
        match m.get("name") {
            None => {
                m.insert("name".into(), Value::String(name.to_string()));
            }
            Some(Value::String(n)) if segkit::model::normalize_name(n) == segkit::model::normalize_name(name) => {}
            Some(other) => {
                return Err(segkit::Error::Definition {
                    path: format!("{what}.name"),
                    message: format!("the body names {what} {other}, the path `{name}`; they must agree"),
                }
                .into())
            }
        }
    }
    Ok(v)
}

/// A small request body (not a definition): malformed JSON is a 400; a field of the wrong shape a 422 whose path
/// is the field's (`trigger.keys`).
pub(super) fn small_body<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> ApiResult<T> {
    // Every small request is a JSON object (serde would also take a struct as a list of its fields).
    if !body.trim_start().starts_with('{') {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            format!("{what}: the request body must be a JSON object"),
        );
        p.path = Some(what.to_string());
        return Err(p);
    }
    let mut de = serde_json::Deserializer::from_str(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path.is_empty() || path == "." { what.to_string() } else { format!("{what}.{path}") };
        (path, inner)
    });
    let v = v.and_then(|v: T| de.end().map(|_| v).map_err(|e| (what.to_string(), e)));
    v.map_err(|(path, e)| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut p = Problem::new(status, "invalid_argument", format!("{path}: {e}"));
        p.path = Some(path);
        p
    })
}
