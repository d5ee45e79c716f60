//! Pagination, sorting and filtering, the same on every list: `limit` (1 to [`MAX_LIST_PAGE_ITEMS`], default
//! [`DEFAULT_LIMIT`]), `cursor` (the `next_cursor` of the previous page) or `offset`, `sort` (a field, `-field`
//! for descending) and per-list equality filters (`?entity=user`). A page answers
//! `{"items": […], "total": N, "next_cursor": "…", "next": "/api/v1/…?…"}` (`total` when known; `next` and
//! `next_cursor` absent on the last page) and sends the next page as a `Link: <…>; rel="next"` header too.
//!
//! Lists the catalog holds in full (definitions, syncs, runs) are filtered, sorted and paged here; lists that can
//! grow without bound (the delivery ledger, the audit log) page in the catalog by id ([`Keyset`]).

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, OriginalUri, Query};
use axum::http::{header, request::Parts, HeaderValue};
use axum::response::{IntoResponse, Response};
use segkit::deps::arrow::array::RecordBatch;
use segkit::limits::{MAX_LISTED_ITEMS, MAX_LIST_PAGE_ITEMS};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::common::ApiResult;
use super::AppState;
use crate::error::Problem;

/// Items per page when `limit` is not given.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// The query parameters every list takes (for the OpenAPI document; [`ListParams`] reads them).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct ListQuery {
    /// Items per page (default 100, 1 to 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (leave out for the first page).
    cursor: Option<String>,
    /// Items to skip (instead of `cursor`, on lists that are not paged by id; a `cursor` wins).
    #[param(minimum = 0, maximum = 100000)]
    offset: Option<u64>,
    /// The field to sort by, `-field` for descending; each list names its fields.
    sort: Option<String>,
}

/// A page of a list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct Page {
    /// The items of this page.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// The sort applied (`name`, `-created_at`).
    sort: String,
    /// How many items match (absent on lists paged by id).
    total: Option<u64>,
    /// The cursor of the next page (null on the last page).
    next_cursor: Option<String>,
    /// The next page's URL (null on the last page).
    next: Option<String>,
}

/// What one list allows: its sort fields and filters, each a name and where it is in an item (a JSON pointer,
/// or a column name for Arrow-backed lists).
pub(super) struct Listing {
    /// `(name, pointer)` of sortable fields; the first is the default (ascending).
    pub sorts: &'static [(&'static str, &'static str)],
    /// `(name, pointer)` of equality filters.
    pub filters: &'static [(&'static str, &'static str)],
}

/// The list parameters of one request, checked against its [`Listing`].
pub(super) struct ListParams {
    /// Items per page.
    pub limit: usize,
    /// `cursor` or `offset`, as sent.
    cursor: Option<String>,
    offset: Option<usize>,
    /// The sort field's pointer and whether descending.
    pub sort: (&'static str, bool),
    /// The sort field's name as sent (`-name`).
    sort_text: String,
    /// `pointer → value` of the filters sent.
    pub filters: Vec<(&'static str, String)>,
    /// Filters by their public names.
    by_name: BTreeMap<String, String>,
    /// The request path and the query pairs other than `cursor` / `offset`, for the next link.
    path: String,
    keep: Vec<(String, String)>,
}

/// The raw query pairs, before a list checks them.
pub(super) struct RawList {
    pairs: Vec<(String, String)>,
    path: String,
}

impl FromRequestParts<AppState> for RawList {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::bad_request(e.body_text()))?;
        // Nested routers see the path without `/api/v1`; the next link needs the whole one.
        let path = match parts.extensions.get::<OriginalUri>() {
            Some(u) => u.0.path().to_string(),
            None => parts.uri.path().to_string(),
        };
        Ok(RawList { pairs, path })
    }
}

pub(crate) fn bad(name: &str, message: impl std::fmt::Display) -> Problem {
    let mut p = Problem::bad_request(format!("query parameter `{name}`: {message}"));
    p.path = Some(format!("query.{name}"));
    p
}

impl RawList {
    /// Checks the parameters against `listing` (and `extra`: names the handler reads itself): an unknown or
    /// repeated parameter, a bad limit, cursor, offset or sort field is a 400 naming the parameter.
    pub fn check(self, listing: &Listing, extra: &[&str]) -> ApiResult<ListParams> {
        let mut seen = std::collections::HashSet::new();
        let (mut limit, mut cursor, mut offset, mut sort) = (DEFAULT_LIMIT, None, None, None);
        let (mut filters, mut by_name, mut keep) = (vec![], BTreeMap::new(), vec![]);
        for (k, v) in self.pairs {
            if !seen.insert(k.clone()) {
                return Err(bad(&k, "given more than once"));
            }
            // An empty `cursor`, `offset` or `sort` is the same as none (what a form sends for an empty field).
            if v.is_empty() && matches!(k.as_str(), "cursor" | "offset" | "sort") {
                continue;
            }
            match k.as_str() {
                "limit" => {
                    limit =
                        v.parse::<usize>().ok().filter(|n| (1..=MAX_LIST_PAGE_ITEMS).contains(n)).ok_or_else(|| {
                            bad("limit", format!("`{v}` is not 1 to {MAX_LIST_PAGE_ITEMS} (limit MAX_LIST_PAGE_ITEMS)"))
                        })?;
                }
                "cursor" => {
                    cursor = Some(v);
                    continue;
                }
                "offset" => {
                    let n = v.parse::<usize>().ok().filter(|n| *n <= MAX_LISTED_ITEMS);
                    offset = Some(n.ok_or_else(|| {
                        bad("offset", format!("`{v}` is not 0 to {MAX_LISTED_ITEMS} (limit MAX_LISTED_ITEMS)"))
                    })?);
                    continue;
                }
                "sort" => {
                    let (name, desc) = match v.strip_prefix('-') {
                        Some(n) => (n, true),
                        None => (v.as_str(), false),
                    };
                    let (_, ptr) = listing.sorts.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                        let names: Vec<&str> = listing.sorts.iter().map(|(n, _)| *n).collect();
                        bad(
                            "sort",
                            format!("`{v}`: sort by one of {} (`-` before it for descending)", names.join(", ")),
                        )
                    })?;
                    sort = Some((*ptr, desc, v.clone()));
                }
                name => {
                    if let Some((_, ptr)) = listing.filters.iter().find(|(n, _)| *n == name) {
                        filters.push((*ptr, v.clone()));
                        by_name.insert(k.clone(), v.clone());
                    } else if !extra.contains(&name) {
                        let mut known: Vec<&str> = vec!["limit", "cursor", "offset", "sort"];
                        known.extend(listing.filters.iter().map(|(n, _)| *n));
                        known.extend(extra);
                        return Err(bad(name, format!("unknown parameter (this list takes {})", known.join(", "))));
                    }
                }
            }
            keep.push((k, v));
        }
        let (ptr, desc, text) = sort.unwrap_or_else(|| (listing.sorts[0].1, false, listing.sorts[0].0.to_string()));
        Ok(ListParams {
            limit,
            cursor,
            offset,
            sort: (ptr, desc),
            sort_text: text,
            filters,
            by_name,
            path: self.path,
            keep,
        })
    }
}

impl ListParams {
    /// A filter's value by its public name.
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(String::as_str)
    }

    /// A filter that must be an integer when given; `what` names it in the 400 (`an integer`, `a run number`).
    pub fn integer_filter(&self, name: &str, what: &str) -> ApiResult<Option<i64>> {
        self.filter(name).map(|v| v.parse::<i64>().map_err(|_| bad(name, format!("`{v}` is not {what}")))).transpose()
    }

    /// Whether the list is sorted descending.
    pub fn descending(&self) -> bool {
        self.sort.1
    }

    /// Where an offset-paged list starts (`cursor` is an offset there; a `cursor` wins over an `offset`).
    pub fn offset(&self) -> ApiResult<usize> {
        match (&self.cursor, self.offset) {
            (Some(c), _) => c.parse().map_err(|_| bad("cursor", format!("`{c}` is not a cursor of this list"))),
            (None, Some(o)) => Ok(o),
            (None, None) => Ok(0),
        }
    }

    /// Where an id-paged list starts (`cursor` is the last id seen; `offset` is refused unless 0).
    pub fn after_id(&self) -> ApiResult<Option<i64>> {
        if self.offset.is_some_and(|o| o > 0) {
            return Err(bad("offset", "this list is paged by `cursor` only"));
        }
        match &self.cursor {
            None => Ok(None),
            Some(c) => c.parse().map(Some).map_err(|_| bad("cursor", format!("`{c}` is not a cursor of this list"))),
        }
    }

    fn next_link(&self, cursor: &str) -> String {
        let mut q: Vec<(String, String)> = self.keep.clone();
        q.push(("cursor".into(), cursor.to_string()));
        let query: Vec<String> = q.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        format!("{}?{}", self.path, query.join("&"))
    }

    /// The page answer: `items`, `total` (when known), `next_cursor` and `next`, plus a `Link` header.
    pub fn respond(&self, items: Vec<Value>, total: Option<usize>, next_cursor: Option<String>) -> Response {
        let next = next_cursor.as_deref().map(|c| self.next_link(c));
        let mut body = json!({"items": items, "sort": self.sort_text});
        if let Value::Object(m) = &mut body {
            if let Some(t) = total {
                m.insert("total".into(), json!(t));
            }
            m.insert("next_cursor".into(), json!(next_cursor));
            m.insert("next".into(), json!(next));
        }
        let mut r = axum::Json(body).into_response();
        if let Some(link) = next.and_then(|n| HeaderValue::from_str(&format!("<{n}>; rel=\"next\"")).ok()) {
            r.headers_mut().insert(header::LINK, link);
        }
        r
    }

    /// Filters, sorts and pages `items` held in full.
    pub fn page(&self, items: Vec<Value>) -> ApiResult<Response> {
        let mut items: Vec<Value> = items
            .into_iter()
            .filter(|it| self.filters.iter().all(|(ptr, want)| matches(it.pointer(ptr), want)))
            .collect();
        let (ptr, desc) = self.sort;
        items.sort_by(|a, b| {
            let o = compare(a.pointer(ptr), b.pointer(ptr));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        let total = items.len();
        let start = self.offset()?.min(total);
        let end = start.saturating_add(self.limit).min(total);
        let next = (end < total).then(|| end.to_string());
        Ok(self.respond(items.drain(start..end).collect(), Some(total), next))
    }

    /// The window of this request for a list the workspace pages itself ([`segkit::PageRequest`]).
    pub fn page_request(&self) -> ApiResult<segkit::PageRequest> {
        Ok(segkit::PageRequest { offset: self.offset()?, limit: self.limit, descending: self.descending() })
    }

    /// Answers a page the workspace read (`page`: the rows of the window, `total`: how many match), the rows
    /// encoded as JSON.
    pub fn respond_rows(&self, page: &RecordBatch, total: u64) -> ApiResult<Response> {
        let end = self.offset()?.saturating_add(page.num_rows());
        let next = (page.num_rows() > 0 && (end as u64) < total).then(|| end.to_string());
        let rows: Vec<Value> = serde_json::from_str(&segkit::encode::to_json_rows(std::slice::from_ref(page))?)
            .map_err(|e| Problem::from(segkit::Error::from(e)))?;
        Ok(self.respond(rows, Some(total as usize), next))
    }
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn matches(v: Option<&Value>, want: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == want,
        Some(Value::Null) | None => false,
        Some(Value::Array(a)) => a.iter().any(|x| matches(Some(x), want)),
        // A number or boolean, compared by its JSON text (`?run=3`, `?pii=true`).
        Some(other) => {
            let text = other.to_string();
            text == want
        }
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Pages a keyset list: `fetched` holds up to `limit + 1` items in order; the extra one says there is a next page,
/// whose cursor is the last returned item's id.
pub(super) fn keyset_page(p: &ListParams, mut fetched: Vec<Value>) -> Response {
    let more = fetched.len() > p.limit;
    fetched.truncate(p.limit);
    let next = if more { fetched.last().and_then(|v| v["id"].as_i64()).map(|id| id.to_string()) } else { None };
    p.respond(fetched, None, next)
}
