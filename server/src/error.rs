//! The one place where core's errors become exit codes (the command line) and HTTP statuses with RFC 9457
//! `application/problem+json` bodies (the REST API).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use segkit::{Error, ErrorKind};
use serde::Serialize;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a failure of storage, the engine or the process (not the caller's input).
pub const EXIT_ERROR: u8 = 1;
/// Exit code: the command line itself is wrong (unknown flag, missing argument); printed by clap.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a named object (entity, segment, source, key, run) does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: another writer got there first, or the object already exists; retrying may succeed.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code: the input is invalid (a definition, a rule, an argument).
pub const EXIT_INVALID: u8 = 5;
/// Exit code: a source or an ingest failed (the data or the system it comes from).
pub const EXIT_INGEST: u8 = 6;
/// Exit code: the operation was cancelled (Ctrl-C, SIGTERM) before it committed.
pub const EXIT_CANCELLED: u8 = 130;

/// The exit code of the command line for an error of `kind`.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => EXIT_NOT_FOUND,
        ErrorKind::Conflict => EXIT_CONFLICT,
        ErrorKind::Definition | ErrorKind::Rule | ErrorKind::InvalidArgument => EXIT_INVALID,
        ErrorKind::Ingest => EXIT_INGEST,
        ErrorKind::Cancelled => EXIT_CANCELLED,
        _ => EXIT_ERROR,
    }
}

/// The HTTP status of the REST API for an error of `kind`: every caller mistake is a 4xx.
pub fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Cancelled => StatusCode::CONFLICT,
        ErrorKind::Definition | ErrorKind::Rule => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Ingest => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The path inside the request an error is about (`segment.rule`, `rule and[1].value`), when it has one.
pub fn error_path(e: &Error) -> Option<String> {
    match e {
        Error::Definition { path, .. } | Error::IncompatibleChange { path, .. } => Some(path.clone()),
        Error::Rule { path, .. } => Some(format!("rule {path}")),
        _ => None,
    }
}

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, plus segkit's `kind` and the `path` of the bad field.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:segkit:problem:<kind>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in words (the library's error message).
    pub detail: String,
    /// segkit's error kind (`not_found`, `rule`, `definition`, …) or the API's own (`unauthorized`, …).
    pub kind: String,
    /// Where in the request the problem is, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Seconds to wait before retrying (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of the API itself (not from core): `kind` names it.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_: format!("urn:segkit:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            kind: kind.to_string(),
            path: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_argument", detail)
    }

    /// 401: no valid credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the caller's role may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        let kind = e.kind();
        let status = http_status(kind);
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        Problem { path: error_path(&e), ..Problem::new(status, kind.as_str(), e.to_string()) }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = retry {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_mistakes_are_4xx_and_exit_codes_differ() {
        for kind in [ErrorKind::NotFound, ErrorKind::Conflict, ErrorKind::Definition, ErrorKind::Rule] {
            assert!(http_status(kind).is_client_error(), "{kind:?}");
        }
        assert_eq!(http_status(ErrorKind::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(exit_code(ErrorKind::NotFound), EXIT_NOT_FOUND);
        assert_eq!(exit_code(ErrorKind::Storage), EXIT_ERROR);
        let p = Problem::from(Error::Rule { path: "and[1]".into(), message: "unknown attribute".into() });
        assert_eq!((p.status, p.kind.as_str(), p.path.as_deref()), (422, "rule", Some("rule and[1]")));
    }
}
