//! HTTP JSON APIs (feature `http`): [`HttpSource`] pages through an API with reqwest and streams its records as
//! Arrow batches, one page at a time.
//!
//! Config (type `http`; every field but `url` is optional):
//!
//! ```json
//! {"type": "http", "url": "https://api.example.com/v1/orders", "method": "GET",
//!  "headers": {"Accept": "application/json"}, "query": {"status": "paid"},
//!  "auth": {"type": "bearer", "token": "env:ORDERS_TOKEN"},
//!  "records": "/data/items",
//!  "fields": ["id", "customer", "amount", "updated_at"],
//!  "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 100},
//!  "incremental": {"field": "updated_at", "param": "since"},
//!  "max_pages": 10000, "max_attempts": 5, "timeout_secs": 30, "requests_per_second": 10,
//!  "max_response_bytes": 67108864}
//! ```
//!
//! - `method`: `GET` (default) or `POST`; `body` is the JSON body of a POST. Pagination and `since` parameters
//!   always go in the query string.
//! - `auth`: `{"type": "bearer", "token": …}`, `{"type": "basic", "username": …, "password": …}`, or
//!   `{"type": "api_key", "name": "X-API-Key", "in": "header" | "query", "api_key": …}`. Secrets are given as
//!   `env:NAME` references only (an inline secret is refused) and never appear in `Debug`, errors or the
//!   source's name; an API key sent in the query is masked in every URL an error shows. Header values may be
//!   `env:NAME` references too.
//! - `records`: a JSON pointer to the array of records in each response body (default: the body itself). A
//!   pointer that resolves to `null` is an empty page; one that is missing or points at something other than
//!   an array is an error naming the URL. An element that is not a JSON object is delivered as a malformed row
//!   (quarantined by ingest with its page and position).
//! - `fields`: the record fields to deliver, in order. Without it, the schema is discovered from the records of
//!   the first page (union of their keys). Like the NDJSON reader, fields are delivered as text (numbers and
//!   booleans as their JSON text, arrays and objects as compact JSON) and ingest parses them into the
//!   attributes' types, quarantining values that do not parse; the last two columns are `_raw` and `_error`.
//! - `pagination` (default none: one request):
//!   - `{"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 100}`: page numbers;
//!   - `{"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": 100}`;
//!   - `{"type": "cursor", "token_pointer": "/meta/next", "param": "cursor"}`: the next page's token read
//!     from the body with a JSON pointer, sent back as `param`; a missing, `null` or empty token ends the scan;
//!   - `{"type": "link"}`: follow the `Link` header's `rel="next"` URL until there is none.
//!
//!   Page and offset pagination stop at an empty page, or at a page shorter than the page size when one is
//!   given. Every style stops after `max_pages` requests (default 10 000).
//! - `incremental`: the cursor is the greatest value of `field` seen in the records a sync delivered (numbers
//!   compared as numbers, anything else as text); the next sync sends it as query parameter `param`, and the
//!   API is expected to answer the records after it.
//! - Requests that fail with 429, a 5xx status, a timeout or a connection error are retried up to
//!   `max_attempts` times in all (default 5) with exponential backoff and jitter (a random wait between half and all of it; from `backoff_ms`,
//!   default 200, capped at 30 s), waiting at least what `Retry-After` asks (seconds or an HTTP date; at most
//!   `max_retry_after_secs`, default 120). Then the scan fails with an error naming the source and the URL.
//! - `requests_per_second` spaces the requests of a source evenly (a token bucket of one).
//! - A response body larger than `max_response_bytes` (default 64 MiB) is refused without reading the rest; a
//!   body that is not JSON is an error naming the URL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use segkit::sources::{check_no_inline_secrets, parse_config, resolve_secret};
use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};

use crate::file::text::{text_schema, KeyUnion, TextBatchBuilder};

/// Default cap on one response body: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 << 20;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    url: String,
    #[serde(default)]
    method: Method,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default)]
    query: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    auth: Option<AuthConfig>,
    #[serde(default)]
    records: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    pagination: Option<Pagination>,
    #[serde(default)]
    incremental: Option<Incremental>,
    #[serde(default = "default_max_pages")]
    max_pages: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_backoff_ms")]
    backoff_ms: u64,
    #[serde(default = "default_max_retry_after")]
    max_retry_after_secs: u64,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default)]
    requests_per_second: Option<f64>,
    #[serde(default = "default_max_response_bytes")]
    max_response_bytes: u64,
}

fn default_max_pages() -> u64 {
    10_000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    200
}
fn default_max_retry_after() -> u64 {
    120
}
fn default_timeout() -> f64 {
    30.0
}
fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[default]
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "post")]
    Post,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum AuthConfig {
    Bearer {
        token: String,
    },
    Basic {
        username: String,
        #[serde(default)]
        password: Option<String>,
    },
    ApiKey {
        name: String,
        #[serde(default, rename = "in")]
        location: KeyLocation,
        api_key: String,
    },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// How the pages of a scan are requested.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Pagination {
    Page {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default = "default_page_start")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
    Offset {
        #[serde(default = "default_offset_param")]
        offset_param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
        limit: u64,
    },
    Cursor {
        token_pointer: String,
        param: String,
    },
    Link,
}

fn default_page_param() -> String {
    "page".into()
}
fn default_page_start() -> u64 {
    1
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Incremental {
    field: String,
    param: String,
}

/// Resolved authentication; never printed.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, Option<String>),
    Header(String, String),
    Query(String, String),
}

/// What the requests of a scan share (cheap to clone into the stream).
#[derive(Clone)]
struct Requester {
    name: String,
    client: reqwest::Client,
    method: Method,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    auth: Option<Auth>,
    max_attempts: u32,
    backoff: Duration,
    max_retry_after: Duration,
    max_response_bytes: u64,
    interval: Option<Duration>,
    next_slot: Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>,
}

/// A source over a paginated JSON HTTP API (see the [module documentation](self)). `Debug` and `name()` show
/// the URL without its query string and no secret.
#[derive(Clone)]
pub struct HttpSource {
    url: Url,
    query: Vec<(String, String)>,
    records: String,
    fields: Option<Vec<String>>,
    pagination: Option<Pagination>,
    incremental: Option<Incremental>,
    max_pages: u64,
    requester: Requester,
    schema: Arc<OnceCell<SchemaRef>>,
    last_cursor: Arc<Mutex<Option<Value>>>,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &self.requester.name)
            .field("method", &self.requester.method)
            .field("records", &self.records)
            .field("pagination", &self.pagination)
            .field("incremental", &self.incremental)
            .field("auth", &self.requester.auth.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn def(path: &str, message: impl Into<String>) -> Error {
    Error::Definition { path: format!("source.{path}"), message: message.into() }
}

fn scalar_text(path: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(def(path, "expected a string, number or boolean")),
    }
}

impl HttpSource {
    /// Builds the source from its JSON config (see the [module documentation](self)), resolving secret
    /// references now. Errors are [`Error::Definition`] naming the field (`source.pagination.limit`).
    pub fn from_config(config: &Value) -> Result<Self> {
        check_no_inline_secrets(config)?;
        let c: Config = parse_config(config)?;
        let url = Url::parse(&c.url).map_err(|e| def("url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(def("url", format!("scheme `{}` is not http or https", url.scheme())));
        }
        if !url.username().is_empty() {
            return Err(def("url", "put credentials in `auth`, not in the URL"));
        }
        if !c.records.is_empty() && !c.records.starts_with('/') {
            return Err(def("records", "a JSON pointer starts with `/` (e.g. \"/data/items\"); \"\" is the body"));
        }
        let mut query = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect::<Vec<_>>();
        for (k, v) in &c.query {
            query.push((k.clone(), scalar_text(&format!("query.{k}"), v)?));
        }
        let mut headers = vec![];
        for (k, v) in &c.headers {
            let path = format!("headers.{k}");
            let v = resolve_secret(&path, &scalar_text(&path, v)?)?;
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| def(&path, "not a valid header name"))?;
            reqwest::header::HeaderValue::from_str(&v).map_err(|_| def(&path, "not a valid header value"))?;
            headers.push((k.clone(), v));
        }
        if c.body.is_some() && c.method != Method::Post {
            return Err(def("body", "a body is sent with \"method\": \"POST\" only"));
        }
        let auth = match c.auth {
            None => None,
            Some(AuthConfig::Bearer { token }) => Some(Auth::Bearer(resolve_secret("auth.token", &token)?)),
            Some(AuthConfig::Basic { username, password }) => {
                Some(Auth::Basic(username, password.map(|p| resolve_secret("auth.password", &p)).transpose()?))
            }
            Some(AuthConfig::ApiKey { name, location, api_key }) => {
                if name.is_empty() {
                    return Err(def("auth.name", "must not be empty"));
                }
                let key = resolve_secret("auth.api_key", &api_key)?;
                Some(match location {
                    KeyLocation::Header => {
                        reqwest::header::HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| def("auth.name", "not a valid header name"))?;
                        Auth::Header(name, key)
                    }
                    KeyLocation::Query => Auth::Query(name, key),
                })
            }
        };
        match &c.pagination {
            Some(Pagination::Page { size: Some(0), .. }) => return Err(def("pagination.size", "must be at least 1")),
            Some(Pagination::Page { size: Some(_), size_param: None, .. }) => {
                return Err(def("pagination.size_param", "required with `size`"))
            }
            Some(Pagination::Offset { limit: 0, .. }) => return Err(def("pagination.limit", "must be at least 1")),
            Some(Pagination::Cursor { token_pointer, .. }) if !token_pointer.starts_with('/') => {
                return Err(def("pagination.token_pointer", "a JSON pointer into the body, e.g. \"/meta/next\""))
            }
            _ => {}
        }
        if c.max_pages == 0 {
            return Err(def("max_pages", "must be at least 1"));
        }
        if c.max_attempts == 0 || c.max_attempts > 100 {
            return Err(def("max_attempts", "must be 1..=100"));
        }
        if !(c.timeout_secs > 0.0 && c.timeout_secs <= 3600.0) {
            return Err(def("timeout_secs", "must be in (0, 3600]"));
        }
        if c.max_response_bytes == 0 {
            return Err(def("max_response_bytes", "must be at least 1"));
        }
        let interval = match c.requests_per_second {
            None => None,
            Some(r) if r > 0.0 && r.is_finite() => Some(Duration::from_secs_f64(1.0 / r)),
            Some(_) => return Err(def("requests_per_second", "must be a positive number")),
        };
        if let Some(f) = &c.fields {
            if f.is_empty() {
                return Err(def("fields", "list at least one field, or leave `fields` out to discover them"));
            }
        }
        if let (Some(inc), Some(fields)) = (&c.incremental, &c.fields) {
            if !fields.contains(&inc.field) {
                return Err(def("incremental.field", format!("`{}` is not one of `fields`", inc.field)));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(c.timeout_secs))
            .connect_timeout(Duration::from_secs_f64(c.timeout_secs.min(30.0)))
            .build()
            .map_err(|e| def("url", format!("cannot build an HTTP client: {}", e.without_url())))?;
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        let mut base = url;
        base.set_query(None);
        Ok(HttpSource {
            url: base,
            query,
            records: c.records,
            fields: c.fields,
            pagination: c.pagination,
            incremental: c.incremental,
            max_pages: c.max_pages,
            requester: Requester {
                name: format!("http:{shown}"),
                client,
                method: c.method,
                headers,
                body: c.body,
                auth,
                max_attempts: c.max_attempts,
                backoff: Duration::from_millis(c.backoff_ms),
                max_retry_after: Duration::from_secs(c.max_retry_after_secs),
                max_response_bytes: c.max_response_bytes,
                interval,
                next_slot: Arc::default(),
            },
            schema: Arc::default(),
            last_cursor: Arc::default(),
        })
    }

    fn pages(&self, cursor: Option<&Value>) -> Pages {
        let mut query = self.query.clone();
        if let (Some(inc), Some(c)) = (&self.incremental, cursor) {
            let v = c.get(&inc.param).unwrap_or(c);
            query.push((inc.param.clone(), crate::file::text::value_text(v).unwrap_or_default()));
        }
        Pages {
            base: self.url.clone(),
            query,
            records: self.records.clone(),
            pagination: self.pagination.clone(),
            max_pages: self.max_pages,
            requested: 0,
            next: Next::First,
            requester: self.requester.clone(),
        }
    }
}

/// Where the next page comes from.
enum Next {
    First,
    Page(u64),
    Offset(u64),
    Token(String),
    Url(Url),
    Done,
}

/// The page-by-page state of one scan.
struct Pages {
    base: Url,
    query: Vec<(String, String)>,
    records: String,
    pagination: Option<Pagination>,
    max_pages: u64,
    requested: u64,
    next: Next,
    requester: Requester,
}

impl Pages {
    /// Fetches the next page's records (`None` at the end).
    async fn next_page(&mut self) -> Result<Option<(Vec<Value>, String)>> {
        if self.requested >= self.max_pages {
            return Ok(None);
        }
        let url = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return Ok(None),
            Next::Url(u) => u,
            n => {
                let mut u = self.base.clone();
                {
                    let mut q = u.query_pairs_mut();
                    for (k, v) in &self.query {
                        q.append_pair(k, v);
                    }
                    match (&self.pagination, &n) {
                        (Some(Pagination::Page { param, start, size_param, size }), n) => {
                            let p = if let Next::Page(p) = n { *p } else { *start };
                            q.append_pair(param, &p.to_string());
                            if let (Some(sp), Some(s)) = (size_param, size) {
                                q.append_pair(sp, &s.to_string());
                            }
                        }
                        (Some(Pagination::Offset { offset_param, limit_param, limit }), n) => {
                            let o = if let Next::Offset(o) = n { *o } else { 0 };
                            q.append_pair(offset_param, &o.to_string());
                            q.append_pair(limit_param, &limit.to_string());
                        }
                        (Some(Pagination::Cursor { param, .. }), Next::Token(t)) => {
                            q.append_pair(param, t);
                        }
                        _ => {}
                    }
                }
                if u.query() == Some("") {
                    u.set_query(None);
                }
                u
            }
        };
        self.requested += 1;
        let (body, link) = self.requester.fetch(&url).await?;
        let shown = self.requester.shown(&url);
        let doc: Value = serde_json::from_slice(&body).map_err(|e| {
            self.requester.error(format!("{shown}: the response body is not JSON ({e}), {} bytes", body.len()))
        })?;
        drop(body);
        let records = match doc.pointer(&self.records) {
            Some(Value::Array(_)) | Some(Value::Null) => match doc.pointer(&self.records).cloned() {
                Some(Value::Array(a)) => a,
                _ => vec![],
            },
            Some(other) => {
                return Err(self.requester.error(format!(
                    "{shown}: the record selector `{}` points at {}, not an array",
                    self.records,
                    kind(other)
                )))
            }
            None => {
                return Err(self
                    .requester
                    .error(format!("{shown}: the record selector `{}` matches nothing in the body", self.records)))
            }
        };
        let n = records.len() as u64;
        self.next = match &self.pagination {
            None => Next::Done,
            Some(Pagination::Page { start, size, .. }) => {
                if n == 0 || size.is_some_and(|s| n < s) {
                    Next::Done
                } else {
                    Next::Page(*start + self.requested)
                }
            }
            Some(Pagination::Offset { limit, .. }) => {
                if n == 0 || n < *limit {
                    Next::Done
                } else {
                    Next::Offset(self.requested * limit)
                }
            }
            Some(Pagination::Cursor { token_pointer, .. }) => match doc.pointer(token_pointer) {
                Some(Value::String(s)) if !s.is_empty() => Next::Token(s.clone()),
                Some(Value::Number(x)) => Next::Token(x.to_string()),
                _ => Next::Done,
            },
            Some(Pagination::Link) => match link.as_deref().and_then(next_link) {
                Some(target) => match url.join(&target) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Next::Url(u),
                    _ => return Err(self.requester.error(format!("{shown}: the Link header's next URL is not valid"))),
                },
                None => Next::Done,
            },
        };
        Ok(Some((records, format!("{shown} (page {})", self.requested))))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any.
fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let target = pieces.next()?.trim();
        let target = target.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim().trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// Why a request attempt failed, and whether to try again.
enum Failure {
    Retry(String, Option<Duration>),
    Fatal(String),
}

impl Requester {
    fn error(&self, message: String) -> Error {
        Error::Source { source_name: self.name.clone(), message, cause: None }
    }

    /// `url` as errors show it: with the query API key (added to each request) as `***`.
    fn shown(&self, url: &Url) -> String {
        let mut u = url.clone();
        if let Some(Auth::Query(name, _)) = &self.auth {
            u.query_pairs_mut().append_pair(name, "***");
        }
        u.to_string()
    }

    /// Waits for the rate limiter's next slot.
    async fn pace(&self) {
        let Some(interval) = self.interval else { return };
        let mut next = self.next_slot.lock().await;
        let now = tokio::time::Instant::now();
        let at = next.map_or(now, |n| n.max(now));
        *next = Some(at + interval);
        drop(next);
        tokio::time::sleep_until(at).await;
    }

    /// GETs or POSTs `url` with retries; returns the body and the `Link` header.
    async fn fetch(&self, url: &Url) -> Result<(Vec<u8>, Option<String>)> {
        let shown = self.shown(url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace().await;
            let failure = match self.attempt(url).await {
                Ok(r) => return Ok(r),
                Err(f) => f,
            };
            match failure {
                Failure::Fatal(m) => return Err(self.error(format!("{shown}: {m}"))),
                Failure::Retry(m, _) if attempt >= self.max_attempts => {
                    return Err(self.error(format!("{shown}: {m} (gave up after {attempt} attempts)")))
                }
                Failure::Retry(_, retry_after) => {
                    let wait = backoff(self.backoff, attempt, retry_after.map(|d| d.min(self.max_retry_after)));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(&self, url: &Url) -> std::result::Result<(Vec<u8>, Option<String>), Failure> {
        let mut url = url.clone();
        if let Some(Auth::Query(k, v)) = &self.auth {
            url.query_pairs_mut().append_pair(k, v);
        }
        let mut req = match self.method {
            Method::Get => self.client.get(url),
            Method::Post => self.client.post(url),
        };
        req = req.header(reqwest::header::ACCEPT, "application/json");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match &self.auth {
            Some(Auth::Bearer(t)) => req = req.bearer_auth(t),
            Some(Auth::Basic(u, p)) => req = req.basic_auth(u, p.as_ref()),
            Some(Auth::Header(k, v)) => req = req.header(k.as_str(), v.as_str()),
            Some(Auth::Query(..)) | None => {}
        }
        if let Some(b) = &self.body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        let transport = |e: reqwest::Error| {
            let m = e.without_url();
            if m.is_timeout() {
                Failure::Retry(format!("timed out ({m})"), None)
            } else if m.is_connect() || m.is_request() || m.is_body() {
                Failure::Retry(format!("request failed: {}", chain(&m)), None)
            } else {
                Failure::Fatal(format!("request failed: {}", chain(&m)))
            }
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            return Err(Failure::Retry(format!("HTTP {status}"), retry_after));
        }
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => " (check the source's `auth`)",
                _ => "",
            };
            return Err(Failure::Fatal(format!("HTTP {status}{hint}")));
        }
        let limit = self.max_response_bytes;
        let too_large = |n: String| {
            Failure::Fatal(format!(
                "the response body is larger than max_response_bytes ({limit} bytes){n}; raise the limit or page \
                 smaller"
            ))
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large(format!(": Content-Length {}", resp.content_length().unwrap_or(0))));
        }
        let link = resp.headers().get(reqwest::header::LINK).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large(String::new()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, link))
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The wait before retry number `attempt` (1-based): a random wait between half and all of `base · 2^(attempt-1)` capped at 30 s,
/// but never less than what the server asked for.
fn backoff(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = base.saturating_mul(1u32 << (attempt - 1).min(20)).min(MAX_BACKOFF);
    let jittered = exp.mul_f64(jitter());
    retry_after.map_or(jittered, |r| r.max(jittered.min(r + base)))
}

/// A uniform number in [0.5, 1) from the standard library's randomly seeded hasher (jitter needs no more).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 53) as f64 / 2.0
}

/// Keeps the greatest cursor value seen (numbers as numbers, anything else as text).
fn max_value(current: &mut Option<Value>, v: &Value) {
    if v.is_null() {
        return;
    }
    let greater = match (current.as_ref(), v) {
        (None, _) => true,
        (Some(Value::Number(a)), Value::Number(b)) => b.as_f64() > a.as_f64(),
        (Some(a), b) => crate::file::text::value_text(b) > crate::file::text::value_text(a),
    };
    if greater {
        *current = Some(v.clone());
    }
}

#[async_trait]
impl Source for HttpSource {
    fn name(&self) -> String {
        self.requester.name.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        self.schema
            .get_or_try_init(|| async {
                if let Some(f) = &self.fields {
                    return Ok(text_schema(f.iter().cloned()));
                }
                let mut pages = self.pages(None);
                let mut keys = KeyUnion::default();
                if let Some((records, _)) = pages.next_page().await? {
                    for r in &records {
                        if let Value::Object(o) = r {
                            o.keys().for_each(|k| keys.add(k));
                        }
                    }
                }
                Ok(text_schema(keys.into_names()))
            })
            .await
            .cloned()
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let schema = self.schema().await?;
        let projection = match &request.projection {
            Some(fields) => Some(
                fields
                    .iter()
                    .map(|f| {
                        schema.index_of(f).map_err(|_| {
                            Error::InvalidArgument(format!("source `{}` has no field `{f}`", self.requester.name))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            None => None,
        };
        let pages = self.pages(request.cursor.as_ref());
        *self.last_cursor.lock().expect("cursor lock") = request.cursor.clone();
        let last = self.last_cursor.clone();
        let field = self.incremental.as_ref().map(|i| (i.field.clone(), i.param.clone()));
        let state = (pages, schema, projection, field, last, false);
        Ok(futures::stream::unfold(state, |(mut pages, schema, projection, field, last, done)| async move {
            if done {
                return None;
            }
            loop {
                let (records, place) = match pages.next_page().await {
                    Ok(Some(p)) => p,
                    Ok(None) => return None,
                    Err(e) => return Some((Err(e), (pages, schema, projection, field, last, true))),
                };
                if records.is_empty() {
                    continue;
                }
                let mut b = TextBatchBuilder::new(schema.clone());
                let mut max: Option<Value> = None;
                for (i, r) in records.iter().enumerate() {
                    match r {
                        Value::Object(o) => {
                            if let Some((f, _)) = &field {
                                if let Some(v) = o.get(f) {
                                    max_value(&mut max, v);
                                }
                            }
                            b.push_object(o.iter().map(|(k, v)| (k.as_str(), v)))
                        }
                        other => {
                            b.push_raw(&other.to_string(), &format!("{place} record {}: not a JSON object", i + 1))
                        }
                    }
                }
                drop(records);
                let batch = match b.finish() {
                    Ok(Some(batch)) => batch,
                    Ok(None) => continue,
                    Err(e) => return Some((Err(e), (pages, schema, projection, field, last, true))),
                };
                if let (Some((_, param)), Some(m)) = (&field, max) {
                    let mut l = last.lock().expect("cursor lock");
                    let mut cur = l.as_ref().and_then(|c| c.get(param.as_str()).cloned());
                    max_value(&mut cur, &m);
                    *l = cur.map(|c| serde_json::json!({ param.as_str(): c }));
                }
                let batch = match &projection {
                    Some(idx) => batch.project(idx).map_err(Error::from),
                    None => Ok(batch),
                };
                return Some((batch, (pages, schema, projection, field, last, false)));
            }
        })
        .boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        let c = SourceCapabilities::none().with_projection();
        if self.incremental.is_some() {
            c.with_incremental()
        } else {
            c
        }
    }

    async fn cursor(&self) -> Result<Option<Value>> {
        if self.incremental.is_none() {
            return Ok(None);
        }
        Ok(self.last_cursor.lock().expect("cursor lock").clone())
    }
}

/// Builds an [`HttpSource`] from a config of type `http` (see the [module documentation](self)).
pub fn from_config(config: &Value) -> Result<Arc<dyn Source>> {
    Ok(Arc::new(HttpSource::from_config(config)?))
}

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_retry_after_parse() {
        let h = r#"<https://api.x/items?page=1>; rel="prev", <https://api.x/items?page=3>; rel="next last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api.x/items?page=3"));
        assert_eq!(next_link(r#"<https://api.x/items?page=1>; rel="first""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(5));
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(3) && d <= Duration::from_secs(5), "{d:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let base = Duration::from_millis(100);
        for attempt in 1..=40 {
            let w = backoff(base, attempt, None);
            let exp = base.saturating_mul(1 << (attempt - 1).min(20)).min(MAX_BACKOFF);
            assert!(w >= exp / 2 && w <= exp, "attempt {attempt}: {w:?}");
        }
        assert!(backoff(base, 1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
    }
}
