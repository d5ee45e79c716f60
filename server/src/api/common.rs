//! What every resource module shares: the body and query extractors, JSON helpers, `ETag` / `If-Match`, and
//! the CRUD of definitions ([`DefinitionResource`]: one implementation of get / create / replace / delete for
//! entities, segments, sources, templates and workflows).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use std::future::Future;

use segkit::Workspace;

use super::AppState;
use crate::auth::Caller;
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
    if v.trim().is_empty() {
        return Err(Problem::bad_request("the If-Match header is empty: send the ETag you read (or *)"));
    }
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

// ------------------------------------------------------------------------------------------ definition resources

/// A stored definition as the API answers it: its name, its JSON form and its `ETag`.
pub(super) struct Stored {
    /// The stored (normalised) name.
    pub(super) name: String,
    /// What `GET` / `POST` / `PUT` answer.
    pub(super) json: Value,
    /// A strong ETag over the definition.
    pub(super) etag: String,
}

impl Stored {
    /// `json` answered, its ETag computed over `versioned` (the definition; for a source, without its sync
    /// state).
    pub(super) fn new(name: &str, json: Value, versioned: &impl serde::Serialize) -> ApiResult<Stored> {
        Ok(Stored { name: name.to_string(), etag: etag(versioned)?, json })
    }

    /// A definition answered as its own JSON form, the ETag over it.
    pub(super) fn of(name: &str, d: &impl serde::Serialize) -> ApiResult<Stored> {
        let json = serde_json::to_value(d).map_err(|e| Problem::from(segkit::Error::from(e)))?;
        Stored::new(name, json, d)
    }
}

/// A kind of definition served with one shape of CRUD: `GET` with an `ETag`, `POST` (409 when one of that name
/// exists, unless [`CREATE_EVOLVES`](DefinitionResource::CREATE_EVOLVES)), `PUT` and `DELETE` checked against
/// `If-Match`, every change serialised by the API's write lock and audited as `<kind>.<verb>`.
pub(super) trait DefinitionResource {
    /// The singular noun (`segment`): in messages, `If-Match` answers and audit actions (`segment.update`).
    const KIND: &'static str;
    /// The collection in paths (`segments`), for the 409's hint.
    const COLLECTION: &'static str;
    /// `POST` of an existing name evolves it (audited `<kind>.define`) instead of answering 409.
    const CREATE_EVOLVES: bool = false;
    /// A parsed request body.
    type Input: Send;
    /// Parses a body with core's request model; `path_name` is the path's name (`PUT`), which the body's must
    /// agree with (or leave out, where the kind allows it).
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<Self::Input>;
    /// The name a parsed body defines.
    fn input_name(input: &Self::Input) -> &str;
    /// The stored definition (404 when there is none).
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored>;
    /// Stores a definition.
    fn define(ws: &Workspace, input: Self::Input) -> impl Future<Output = ApiResult<Stored>> + Send;
    /// Deletes the definition `name` (its stored name).
    fn delete(ws: &Workspace, name: &str) -> impl Future<Output = segkit::Result<()>> + Send;
}

/// `GET /<collection>/{name}`: the definition with its `ETag`.
pub(super) fn get_definition<D: DefinitionResource>(s: &AppState, name: &str) -> ApiResult<Response> {
    let d = D::read(s.workspace(), name)?;
    Ok(with_etag(d.json, &d.etag, StatusCode::OK))
}

/// `POST /<collection>`: 201 with the stored definition and its `ETag`.
pub(super) async fn create_definition<D: DefinitionResource>(
    s: &AppState,
    c: &Caller,
    body: &str,
) -> ApiResult<Response> {
    c.require_write()?;
    let input = D::parse(body, None)?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    if !D::CREATE_EVOLVES && D::read(ws, D::input_name(&input)).is_ok() {
        return Err(segkit::Error::Conflict {
            what: format!("{} `{}`", D::KIND, D::input_name(&input)),
            message: format!("it exists already; change it with PUT /api/v1/{}/{{name}}", D::COLLECTION),
        }
        .into());
    }
    let d = D::define(ws, input).await?;
    let verb = if D::CREATE_EVOLVES { "define" } else { "create" };
    ws.audit(&c.name, &format!("{}.{verb}", D::KIND), &d.name, None)?;
    Ok(with_etag(d.json, &d.etag, StatusCode::CREATED))
}

/// `PUT /<collection>/{name}`: replaces the definition if `If-Match` (when sent) names the current one.
pub(super) async fn replace_definition<D: DefinitionResource>(
    s: &AppState,
    c: &Caller,
    name: &str,
    headers: &HeaderMap,
    body: &str,
) -> ApiResult<Response> {
    c.require_write()?;
    let input = D::parse(body, Some(name))?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let current = D::read(ws, name)?;
    check_if_match(headers, &current.etag, D::KIND)?;
    let d = D::define(ws, input).await?;
    ws.audit(&c.name, &format!("{}.update", D::KIND), &d.name, None)?;
    Ok(with_etag(d.json, &d.etag, StatusCode::OK))
}

/// `DELETE /<collection>/{name}`: 204 if `If-Match` (when sent) names the current definition.
pub(super) async fn delete_definition<D: DefinitionResource>(
    s: &AppState,
    c: &Caller,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<StatusCode> {
    c.require_write()?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let current = D::read(ws, name)?;
    check_if_match(headers, &current.etag, D::KIND)?;
    D::delete(ws, &current.name).await?;
    ws.audit(&c.name, &format!("{}.delete", D::KIND), &current.name, None)?;
    Ok(StatusCode::NO_CONTENT)
}
