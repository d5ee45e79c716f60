//! An example third-party connector for segkit: a paginated JSON HTTP API read incrementally.
//!
//! The API it reads (a common shape): `GET {url}?after=<id>&limit=<n>` answers
//! `{"items": [{"id": 7, ...}, ...], "next": 9}` — up to `limit` records with ids greater than `after`, in id
//! order, and `next` (the id to continue after) or `null` on the last page. Records carry a numeric, increasing
//! `id` (the `cursor_field`).
//!
//! The source is incremental: its cursor is `{"after": <last id yielded>}`. A scan from a cursor asks for the
//! records after it; [`PagedJsonSource::cursor`] reports the id of the last record the most recent scan's stream
//! *yielded*, so segkit commits a cursor that never runs ahead of the data it committed. See `docs/connectors.md`
//! for the walkthrough.
//!
//! Config (type `paged_json`):
//!
//! ```json
//! {"type": "paged_json", "url": "http://127.0.0.1:8080/orders", "page_size": 100,
//!  "fields": {"id": "int64", "customer": "string", "amount": "float64"},
//!  "token": "env:ORDERS_API_TOKEN"}
//! ```

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use segkit::deps::arrow::datatypes::{Field, Schema, SchemaRef};
use segkit::sources::{parse_config, resolve_secret, SourceRegistry};
use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};
use serde::Deserialize;
use serde_json::Value;

/// The config, deserialized with serde (unknown keys refused; errors name the field path).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    url: String,
    #[serde(default = "default_page_size")]
    page_size: u32,
    /// Field name → segkit type (`int64`, `string`, `float64`, `bool`, `timestamp`, …), in order.
    fields: serde_json::Map<String, Value>,
    #[serde(default = "default_cursor_field")]
    cursor_field: String,
    /// A bearer token, as an `env:NAME` reference.
    #[serde(default)]
    token: Option<String>,
}

fn default_page_size() -> u32 {
    100
}

fn default_cursor_field() -> String {
    "id".into()
}

/// The source. Its `Debug` shows no token.
pub struct PagedJsonSource {
    url: String,
    page_size: u32,
    schema: SchemaRef,
    cursor_field: String,
    token: Option<String>,
    client: reqwest::Client,
    /// The cursor after the last record yielded by the most recent scan.
    last: Arc<Mutex<Option<Value>>>,
}

impl std::fmt::Debug for PagedJsonSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagedJsonSource")
            .field("url", &self.url)
            .field("page_size", &self.page_size)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl PagedJsonSource {
    /// Builds the source from its config, resolving the token reference now.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = parse_config(config)?;
        if c.page_size == 0 || c.page_size > 10_000 {
            return Err(Error::Definition { path: "source.page_size".into(), message: "must be 1..=10000".into() });
        }
        let mut fields = vec![];
        for (name, t) in &c.fields {
            let t: segkit::DataType = t
                .as_str()
                .ok_or_else(|| Error::Definition {
                    path: format!("source.fields.{name}"),
                    message: "expected a type name".into(),
                })?
                .parse()
                .map_err(|e: Error| Error::Definition {
                    path: format!("source.fields.{name}"),
                    message: e.to_string(),
                })?;
            fields.push(Field::new(name, t.to_arrow(), true));
        }
        if !c.fields.contains_key(&c.cursor_field) {
            return Err(Error::Definition {
                path: "source.cursor_field".into(),
                message: format!("`{}` is not one of the fields", c.cursor_field),
            });
        }
        let token = c.token.as_deref().map(|t| resolve_secret("token", t)).transpose()?;
        Ok(PagedJsonSource {
            url: c.url,
            page_size: c.page_size,
            schema: Arc::new(Schema::new(fields)),
            cursor_field: c.cursor_field,
            token,
            client: reqwest::Client::new(),
            last: Arc::default(),
        })
    }

    /// Registers the type `paged_json` in `registry`.
    pub fn register(registry: &mut SourceRegistry) {
        registry.register("paged_json", |config| Ok(Arc::new(PagedJsonSource::from_config(config)?) as _));
    }
}

/// One page: the records and the id to continue after.
struct Page {
    items: Vec<Value>,
    next: Option<i64>,
}

async fn fetch(
    client: &reqwest::Client,
    name: &str,
    url: &str,
    token: Option<&str>,
    after: Option<i64>,
    limit: u32,
) -> std::result::Result<Page, String> {
    let mut req = client.get(url).query(&[("limit", limit.to_string())]);
    if let Some(a) = after {
        req = req.query(&[("after", a.to_string())]);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{name}: the body is not JSON: {e}"))?;
    let items = match v.get("items") {
        Some(Value::Array(a)) => a.clone(),
        _ => return Err("the body has no `items` array".into()),
    };
    Ok(Page { items, next: v.get("next").and_then(Value::as_i64) })
}

#[async_trait]
impl Source for PagedJsonSource {
    fn name(&self) -> String {
        // The URL without query or credentials.
        format!("paged_json:{}", self.url.split(['?', '#']).next().unwrap_or_default())
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let after = match &request.cursor {
            None => None,
            Some(c) => Some(c.get("after").and_then(Value::as_i64).ok_or_else(|| Error::Source {
                source_name: self.name(),
                message: format!("cursor {c} has no integer `after`"),
                cause: None,
            })?),
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = request.cursor.clone();
        let (client, url, token, limit) = (self.client.clone(), self.url.clone(), self.token.clone(), self.page_size);
        let (name, schema, last, field) =
            (self.name(), self.schema.clone(), self.last.clone(), self.cursor_field.clone());
        // One page per step: the stream holds at most one page in memory.
        let pages = futures::stream::unfold(Some(after), move |state| {
            let (client, url, token, name, schema, last, field) =
                (client.clone(), url.clone(), token.clone(), name.clone(), schema.clone(), last.clone(), field.clone());
            async move {
                let after = state?;
                let fail = |m: String| Error::Source { source_name: name.clone(), message: m, cause: None };
                let page = match fetch(&client, &name, &url, token.as_deref(), after, limit).await {
                    Ok(p) => p,
                    Err(m) => return Some((Err(fail(m)), None)),
                };
                if page.items.is_empty() {
                    return None;
                }
                let batch = match segkit::source::decode_json_rows(&page.items, &schema) {
                    Ok(b) => b,
                    Err(m) => return Some((Err(fail(m)), None)),
                };
                let last_id = page.items.last().and_then(|r| r.get(&field)).and_then(Value::as_i64);
                let Some(last_id) = last_id else {
                    return Some((Err(fail(format!("a record has no integer `{field}`"))), None));
                };
                // This page is about to be yielded: the cursor moves past it now, not earlier.
                *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(serde_json::json!({ "after": last_id }));
                Some((Ok(batch), page.next.map(Some)))
            }
        });
        Ok(pages.boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none().with_incremental()
    }

    async fn cursor(&self) -> Result<Option<Value>> {
        Ok(self.last.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}
