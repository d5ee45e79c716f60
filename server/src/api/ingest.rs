//! Bulk data over HTTP: file uploads into an entity (`POST /entities/{name}/upload`, through core's ingest) and
//! batched behavioural events (`POST /events`, through core's group-commit [`Appender`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use segkit::appender::{decode_rows, Appender};
use segkit::limits::MAX_EVENT_BATCH;
use segkit::spec::{self, IngestSpec};
use segkit::{ErrorKind, IngestReport};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

type ApiResult<T> = Result<T, Problem>;

/// The routes of uploads and events.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload)).routes(routes!(post_events))
}

/// The file options an upload may set (as the libraries' file source configs); anything naming a location
/// (`path`, `url`, `options`) is refused, so an upload can only read its own body.
const UPLOAD_FILE_OPTIONS: &[&str] = &[
    "delimiter",
    "quote",
    "escape",
    "comment",
    "header",
    "columns",
    "null_values",
    "encoding",
    "compression",
    "record_path",
    "batch_size",
];

/// The media types uploads accept, and the file source `type` (or `arrow`) each is read as.
const UPLOAD_TYPES: &[(&str, &str)] = &[
    ("text/csv", "csv"),
    ("text/tab-separated-values", "tsv"),
    ("application/x-ndjson", "ndjson"),
    ("application/jsonl", "ndjson"),
    ("application/json", "json"),
    ("application/vnd.apache.parquet", "parquet"),
    ("application/x-parquet", "parquet"),
    ("application/vnd.apache.arrow.stream", "arrow"),
    ("application/vnd.apache.arrow.file", "arrow"),
];

fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Query of `POST /entities/{name}/upload`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// `append`, `upsert` or `replace` (= `full_refresh`); default: upsert for profiles, append for events.
    mode: Option<String>,
    /// The field mapping as JSON text, as in the libraries' ingest options (`{"email": "Email Address"}`).
    mapping: Option<String>,
    /// File options as JSON text, as in the libraries' file sources: `delimiter`, `quote`, `escape`, `comment`,
    /// `header`, `columns`, `null_values`, `encoding`, `compression`, `record_path`, `batch_size`.
    options: Option<String>,
}

fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> ApiResult<T> {
    Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|e| Problem::bad_request(e.body_text()))
}

/// A problem with a `path`.
fn at(status: StatusCode, kind: &str, path: &str, detail: String) -> Problem {
    Problem { path: Some(path.to_string()), ..Problem::new(status, kind, detail) }
}

/// The uploaded file is the caller's input: when it cannot be read or ingested that is a 422, not a 502.
fn upload_error(e: segkit::Error) -> Problem {
    if e.kind() == ErrorKind::Ingest {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "ingest", format!("the uploaded file was not ingested: {e}"))
    } else {
        Problem::from(e)
    }
}

/// The report as JSON; quarantined rows are raw input and may hold personal data, so only a caller allowed
/// to read pii sees them.
fn report_json(report: &IngestReport, c: &Caller) -> Value {
    let mut v = json!(report);
    if !c.role.can_read_pii() {
        if let Value::Object(m) = &mut v {
            m.insert("quarantine_sample".into(), json!([]));
        }
    }
    v
}

/// Uploads a file into an entity through the same ingest as the libraries (mapping, coercion, quarantine of
/// bad rows with their row numbers, one atomic snapshot). The format is the `Content-Type`: `text/csv`,
/// `text/tab-separated-values`, `application/x-ndjson`, `application/json` (an array or NDJSON),
/// `application/vnd.apache.parquet` or an Arrow IPC stream or file (`application/vnd.apache.arrow.stream` /
/// `.file`). The body streams to a temporary file (at most the server's upload limit, `--upload-limit`).
/// Editors and admins only; every upload is audited.
#[utoipa::path(post, path = "/entities/{name}/upload", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name"), UploadQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Vec<u8>, description = "The file", content_type = "text/csv"),
    responses((status = 200, description = "The ingest report (quarantined rows counted; their sample only for pii readers)", body = Object),
        (status = 400, description = "Bad query parameter or empty body", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entity", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported Content-Type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is malformed or does not fit the entity", body = Problem, content_type = "application/problem+json")))]
async fn upload(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let ws = s.workspace();
    let entity = ws.entity(&name)?;
    let (parts, body) = req.into_parts();
    let q: UploadQuery = query(&parts.uri)?;
    let mime = media_type(&parts.headers);
    let Some(format) = mime.as_deref().and_then(|m| UPLOAD_TYPES.iter().find(|(t, _)| *t == m)).map(|(_, f)| *f) else {
        let known: Vec<&str> = UPLOAD_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {} is not an upload format; use one of {}",
                mime.as_deref().unwrap_or("(none)"),
                known.join(", ")
            ),
        ));
    };
    // The ingest options, parsed with core's request model (errors carry their path).
    let mapping = match &q.mapping {
        None => Value::Null,
        Some(t) => serde_json::from_str(t).map_err(|e| {
            at(StatusCode::BAD_REQUEST, "invalid_argument", "mapping", format!("mapping is not JSON: {e}"))
        })?,
    };
    let options = spec::from_value::<IngestSpec>(json!({"mode": q.mode, "mapping": mapping}))
        .and_then(IngestSpec::into_options)?;
    let mut config = Map::new();
    if let Some(t) = &q.options {
        let v: Value = serde_json::from_str(t).map_err(|e| {
            at(StatusCode::BAD_REQUEST, "invalid_argument", "options", format!("options is not JSON: {e}"))
        })?;
        let Value::Object(o) = v else {
            return Err(at(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "options",
                "options must be a JSON object".into(),
            ));
        };
        for (k, v) in o {
            if !UPLOAD_FILE_OPTIONS.contains(&k.as_str()) {
                return Err(at(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &format!("options.{k}"),
                    format!("`{k}` is not an upload file option; expected one of {}", UPLOAD_FILE_OPTIONS.join(", ")),
                ));
            }
            config.insert(k, v);
        }
    }
    // Stream the body to a temporary file, counting bytes against the limit.
    let suffix = match format {
        "tsv" => ".tsv",
        "ndjson" => ".ndjson",
        "json" => ".json",
        "parquet" => ".parquet",
        "arrow" => ".arrow",
        _ => ".csv",
    };
    let spool = |e: std::io::Error| Problem::from(segkit::Error::from(e));
    let tmp = tempfile::Builder::new().prefix("segkit-upload-").suffix(suffix).tempfile().map_err(spool)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen().map_err(spool)?);
    let limit = s.0.upload_limit;
    let mut bytes = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_request(format!("reading the upload failed: {e}")))?;
        bytes += chunk.len();
        if bytes > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the upload is larger than {limit} bytes (the server's --upload-limit, MAX_UPLOAD_BYTES)"),
            ));
        }
        file.write_all(&chunk).await.map_err(spool)?;
    }
    file.flush().await.map_err(spool)?;
    drop(file);
    if bytes == 0 {
        return Err(Problem::bad_request("the upload is empty: send the file as the request body"));
    }
    let label = format!("upload:{}{suffix}", entity.name);
    let source: std::sync::Arc<dyn segkit::Source> = if format == "arrow" {
        std::sync::Arc::new(segkit::sources::ArrowIpcSource::new(tmp.path(), label))
    } else {
        config.insert("type".into(), json!(format));
        config.insert("path".into(), json!(tmp.path()));
        segkit_connectors::from_config(&Value::Object(config)).map_err(|e| match e {
            // A bad file option names its field.
            segkit::Error::Definition { .. } | segkit::Error::InvalidArgument(_) => Problem::from(e),
            other => upload_error(other),
        })?
    };
    let report = ws.ingest(&entity.name, source.as_ref(), options).await.map_err(upload_error)?;
    drop(tmp);
    ws.audit(
        &c.name,
        "entity.upload",
        &entity.name,
        Some(&format!(
            "format={format} bytes={bytes} rows_written={} rows_quarantined={} ingest={}",
            report.rows_written, report.rows_quarantined, report.id
        )),
    )?;
    Ok(Json(report_json(&report, &c)))
}

/// Query of `POST /events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// The event entity (required for an NDJSON body; a JSON body may name it instead).
    entity: Option<String>,
}

/// The body, read within the request body limit.
async fn body_bytes(req: Request, s: &AppState) -> ApiResult<Bytes> {
    Bytes::from_request(req, s).await.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_argument" };
        Problem::new(status, kind, e.body_text())
    })
}

fn too_many(n: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("more than {MAX_EVENT_BATCH} events in one request ({n}; limit MAX_EVENT_BATCH): send several batches"),
    )
}

/// Appends a batch of behavioural events to an event entity and answers once they are committed (concurrent
/// requests share one commit: group commit). The body is JSON, `{"entity": "click", "events": [{…}, …]}`, or
/// NDJSON (`Content-Type: application/x-ndjson`, one event per line, the entity in `?entity=`); at most 10,000
/// events (`MAX_EVENT_BATCH`, 413 above it) and the request body limit. Events are checked strictly against the
/// entity's attributes: a bad one is a 400 naming its path (`events[3].amount`) and nothing is stored.
#[utoipa::path(post, path = "/events", tag = "entities", security(("bearer" = [])), params(EventsQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Object, description = "`{entity, events: [...]}`, or NDJSON with `?entity=`"),
    responses((status = 200, description = "Committed: rows, snapshot, and the group commit they were part of", body = Object),
        (status = 400, description = "A bad event or body, with the path of the bad field", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entity", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Too many events or too large a body", body = Problem, content_type = "application/problem+json")))]
async fn post_events(State(s): State<AppState>, c: Caller, req: Request) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let q: EventsQuery = query(req.uri())?;
    let ndjson = matches!(media_type(req.headers()).as_deref(), Some("application/x-ndjson" | "application/jsonl"));
    let body = body_bytes(req, &s).await?;
    let (entity, events) = if ndjson {
        let entity = q.entity.ok_or_else(|| {
            at(StatusCode::BAD_REQUEST, "invalid_argument", "entity", "an NDJSON body needs ?entity=NAME".into())
        })?;
        let text = std::str::from_utf8(&body).map_err(|_| Problem::bad_request("the request body is not UTF-8"))?;
        let mut events = vec![];
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            if events.len() == MAX_EVENT_BATCH {
                return Err(too_many(MAX_EVENT_BATCH + 1));
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                at(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    &format!("events[{i}]"),
                    format!("events[{i}] is not valid JSON: {e}"),
                )
            })?;
            events.push(v);
        }
        (entity, events)
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the request body is not valid JSON: {e}")))?;
        let Value::Object(mut o) = v else {
            return Err(Problem::bad_request("the body must be {\"entity\": \"…\", \"events\": [ … ]} (or NDJSON)"));
        };
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "entity" | "events")) {
            return Err(at(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                k,
                format!("unknown field `{k}`: expected entity, events"),
            ));
        }
        let entity = match (o.remove("entity"), q.entity) {
            (Some(Value::String(b)), Some(q)) if b != q => {
                return Err(at(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "entity",
                    format!("the body names entity `{b}`, the query `{q}`; they must agree"),
                ))
            }
            (Some(Value::String(b)), _) => b,
            (None | Some(Value::Null), Some(q)) => q,
            (None | Some(Value::Null), None) => {
                return Err(at(StatusCode::BAD_REQUEST, "invalid_argument", "entity", "`entity` is required".into()))
            }
            (Some(_), _) => {
                return Err(at(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "entity",
                    "`entity` must be a string".into(),
                ))
            }
        };
        let events = match o.remove("events") {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(at(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "events",
                    "`events` must be an array".into(),
                ))
            }
            None => {
                return Err(at(StatusCode::BAD_REQUEST, "invalid_argument", "events", "`events` is required".into()))
            }
        };
        if events.len() > MAX_EVENT_BATCH {
            return Err(too_many(events.len()));
        }
        (entity, events)
    };
    if events.is_empty() {
        return Err(at(StatusCode::BAD_REQUEST, "invalid_argument", "events", "no events: send at least one".into()));
    }
    let ws = s.workspace();
    let e = ws.entity(&entity)?;
    let batch = decode_rows(&e, &events, "events")
        .map_err(|fe| at(StatusCode::BAD_REQUEST, "invalid_argument", &fe.path, fe.to_string()))?;
    drop(events);
    let receipt = s.0.appender.append(&e.name, batch).await?;
    Ok(Json(json!(receipt)))
}

/// The appender of a server (one per workspace).
pub(super) fn appender(ws: &segkit::Workspace) -> Appender {
    Appender::new(ws.clone())
}
