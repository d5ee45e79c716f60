//! Segments: definitions (with `ETag` / `If-Match`), evaluation, counts, members, preview, explain and runs.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(get_segment, update_segment, delete_segment))
        .routes(routes!(evaluate_segment))
        .routes(routes!(count_segment))
        .routes(routes!(count_rule))
        .routes(routes!(segment_members))
        .routes(routes!(segment_preview))
        .routes(routes!(explain_segment))
        .routes(routes!(segment_runs))
        .routes(routes!(segment_changes))
}

use super::common::{
    create_definition, delete_definition, get_definition, json_body, named_body, replace_definition, ApiResult,
    DefinitionResource, Stored, Text, Q,
};
use super::list::{ListQuery, Listing, RawList};
use super::pages::{Page, PageKey};
use super::schemas::{SegmentPage, SegmentSpecDoc};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;
use segkit::limits::{MAX_PAGE_ROWS, MAX_PREVIEW_ROWS};
use segkit::spec::{self, SegmentSpec};
use segkit::{SegmentDefinition, Workspace};

fn segment_json(d: &SegmentDefinition) -> ApiResult<Value> {
    serde_json::to_value(d).map_err(|e| Problem::from(segkit::Error::from(e)))
}

/// Rule segments.
struct Segments;

impl DefinitionResource for Segments {
    const KIND: &'static str = "segment";
    const COLLECTION: &'static str = "segments";
    type Input = SegmentDefinition;
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<SegmentDefinition> {
        segment_from_body(body, path_name)
    }
    fn input_name(input: &SegmentDefinition) -> &str {
        &input.name
    }
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored> {
        let d = ws.segment(name)?;
        Stored::of(&d.name, &d)
    }
    async fn define(ws: &Workspace, input: SegmentDefinition) -> ApiResult<Stored> {
        let d = ws.define_segment(input).await?;
        Stored::of(&d.name, &d)
    }
    async fn delete(ws: &Workspace, name: &str) -> segkit::Result<()> {
        ws.delete_segment(name).await
    }
}

/// A segment spec from a body, with `name` taken from the path when the body has none.
fn segment_from_body(body: &str, name: Option<&str>) -> ApiResult<SegmentDefinition> {
    let v = match name {
        Some(n) => named_body(body, n, "segment")?,
        None => json_body(body)?,
    };
    Ok(spec::from_value::<SegmentSpec>(v).and_then(SegmentSpec::into_definition)?)
}

const LISTING: Listing =
    Listing { sorts: &[("name", "/name"), ("entity", "/entity")], filters: &[("entity", "/entity")] };

/// Segment definitions, a page at a time.
#[utoipa::path(get, path = "/segments", tag = "segments", security(("bearer" = [])),
    params(ListQuery, ("entity" = Option<String>, Query, description = "Only segments of this entity")),
    responses((status = 200, description = "A page of segment definitions (sort: name, entity)", body = SegmentPage)))]
async fn list_segments(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&LISTING, &[])?;
    p.page(s.workspace().segments()?.iter().map(segment_json).collect::<ApiResult<_>>()?)
}

/// Creates a segment (409 when one of that name exists: update it with PUT). The body is a segment spec:
/// `{name, entity, rule, dialect, description, split, keep_runs}`.
#[utoipa::path(post, path = "/segments", tag = "segments", security(("bearer" = [])),
    request_body(content = SegmentSpecDoc, description = "A segment spec"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    responses((status = 201, description = "The stored segment, with its ETag", body = SegmentSpecDoc),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A segment of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition or rule, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_segment(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    create_definition::<Segments>(&s, &c, &body).await
}

/// One segment definition, with its `ETag`.
#[utoipa::path(get, path = "/segments/{name}", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name")),
    responses((status = 200, description = "The segment", body = SegmentSpecDoc),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json")))]
async fn get_segment(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    get_definition::<Segments>(&s, &name)
}

/// Replaces a segment's definition. With `If-Match: <ETag>` the update applies only if nobody changed the
/// segment since it was read (412 otherwise).
#[utoipa::path(put, path = "/segments/{name}", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = super::schemas::SegmentSpecNamelessDoc, description = "A segment spec (`name` may be left out)"),
    responses((status = 200, description = "The stored segment, with its new ETag", body = SegmentSpecDoc),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition or rule", body = Problem, content_type = "application/problem+json")))]
async fn update_segment(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    replace_definition::<Segments>(&s, &c, &name, &headers, &body).await
}

/// Deletes a segment (refused while other segments or workflows use it).
#[utoipa::path(delete, path = "/segments/{name}", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_segment(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    delete_definition::<Segments>(&s, &c, &name, &headers).await
}

/// Evaluates a segment now: stores a new membership run and reports who entered and exited.
#[utoipa::path(post, path = "/segments/{name}/evaluate", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    responses((status = 200, description = "The run", body = super::schemas::EvaluateAnswer),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json")))]
async fn evaluate_segment(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let ws = s.workspace();
    let r = ws.evaluate(&name).await?;
    ws.audit(&c.name, "segment.evaluate", &r.segment, Some(&format!("run={}", r.run)))?;
    Ok(Json(json!({
        "segment": r.segment, "run": r.run, "count": r.count, "entered": r.entered.num_rows(),
        "exited": r.exited.num_rows(), "started_at": r.started_at.to_rfc3339(),
        "duration_ms": r.duration.as_secs_f64() * 1000.0, "snapshot": r.snapshot,
    })))
}

/// How many members a saved segment has now (computed, not stored).
#[utoipa::path(get, path = "/segments/{name}/count", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name")),
    responses((status = 200, description = "The count", body = super::schemas::SegmentCount),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json")))]
async fn count_segment(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let n = s.workspace().count(&name).await?;
    Ok(Json(json!({"segment": segkit::model::normalize_name(&name), "count": n})))
}

/// Counts the members of an unsaved segment spec (a rule builder's live preview); nothing is stored. `name` may
/// be left out.
#[utoipa::path(post, path = "/count", tag = "segments", security(("bearer" = [])),
    request_body(content = super::schemas::SegmentSpecNamelessDoc, description = "A segment spec: `{entity, rule, dialect}`"),
    responses((status = 200, description = "The count", body = super::schemas::RuleCount),
        (status = 422, description = "Invalid rule, with its path", body = Problem, content_type = "application/problem+json")))]
async fn count_rule(State(s): State<AppState>, _c: Caller, Text(body): Text) -> ApiResult<Json<Value>> {
    let def = segment_from_body(&body, Some("draft"))?;
    let n = s.workspace().count_definition(def).await?;
    Ok(Json(json!({"count": n})))
}

/// Query of `GET /segments/{name}/members`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    /// Rows per page (default 1000, at most 100000).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^[0-9]+\.[0-9]+$")]
    cursor: Option<String>,
    /// The run to read (default: the latest; a cursor keeps its run).
    run: Option<i64>,
    /// `json`, `csv` or `arrow`; overrides the `Accept` header.
    #[param(pattern = "^(json|csv|arrow)$")]
    format: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Arrow => "arrow",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => ARROW_STREAM,
        }
    }
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn format_of(headers: &HeaderMap, query: Option<&str>) -> ApiResult<Format> {
    if let Some(f) = query {
        return match f {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            other => Err(Problem::bad_request(format!("format `{other}`: expected json, csv or arrow"))),
        };
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    Ok(if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// The stored members of a segment's run, a page at a time, as JSON, CSV (`Accept: text/csv`) or an Arrow IPC
/// stream (`Accept: application/vnd.apache.arrow.stream`). The next page's cursor is in `next_cursor` (JSON)
/// and the `X-Next-Cursor` header (all formats); absent on the last page. A run never changes: each page has a
/// strong `ETag` (`If-None-Match` → 304), and a page of a named run (`cursor` or `run`) is `immutable`. When the
/// entity's key is `pii`, keys are `***` unless the caller may read pii (an admin, whose read is audited).
#[utoipa::path(get, path = "/segments/{name}/members", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"), MembersQuery,
        ("if-none-match" = Option<String>, Header, description = "An `ETag` of this page seen before: 304 if it still matches")),
    responses((status = 200, description = "A page of member keys: JSON (default), CSV (`Accept: text/csv` or \
            `format=csv`) or an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream` or `format=arrow`)",
            content((super::schemas::MembersPage = "application/json"), (super::schemas::MembersCsv = "text/csv"),
                (super::schemas::MembersArrow = "application/vnd.apache.arrow.stream")),
            headers(("x-run" = i64, description = "The run read"),
                ("x-next-cursor" = String, description = "The next page's cursor; absent on the last page"),
                ("etag" = String, description = "Strong tag of this page (run file, offset, limit, format, masking)"),
                ("cache-control" = String, description = "`private, max-age=31536000, immutable` for a named run, \
                    `private, no-cache` for the latest"))),
        (status = 304, description = "`If-None-Match` matched: the page is unchanged (no body)",
            headers(("etag" = String, description = "The page's tag"), ("x-run" = i64, description = "The run"))),
        (status = 400, description = "Bad limit, cursor or format", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such segment or run", body = Problem, content_type = "application/problem+json")))]
async fn segment_members(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Q(q): Q<MembersQuery>,
) -> ApiResult<Response> {
    let format = format_of(&headers, q.format.as_deref())?;
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_PAGE_ROWS {
        return Err(Problem::bad_request(format!("limit must be 1 to {MAX_PAGE_ROWS} (limit MAX_PAGE_ROWS)")));
    }
    let (run, offset) = match &q.cursor {
        Some(c) => c
            .split_once('.')
            .and_then(|(r, o)| Some((r.parse::<i64>().ok()?, o.parse::<usize>().ok()?)))
            .map(|(r, o)| (Some(r), o))
            .ok_or_else(|| Problem::bad_request(format!("cursor `{c}` is not one this API gave out")))?,
        None => (q.run, 0),
    };
    // One cached catalog statement resolves the run (a deleted segment or run is a 404 here, before any kept
    // page is looked at); the page itself is read and encoded only when it is not kept (see `pages`).
    let ws = s.workspace();
    let members = ws.members_run(&name, run)?;
    let has_pii = !members.pii_columns.is_empty();
    let masked = has_pii && !c.role.can_read_pii();
    let key = PageKey { file: members.record.membership_file.clone(), offset, limit, format: format.name(), masked };
    let tag = key.etag();
    // A page of a named run never changes; the latest run's page changes with the next evaluation.
    let cache_control = if run.is_some() { "private, max-age=31536000, immutable" } else { "private, no-cache" };
    let run = members.record.run;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(|t| t.trim()).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let page = match s.pages().get(&key) {
            Some(p) => p,
            None => {
                let page = ws.read_members_page(&members, offset, limit).await?;
                let page = if masked { page.mask_pii()? } else { page };
                let p = encode_page(&members.segment, offset, format, page)?;
                s.pages().put(key, p.clone());
                p
            }
        };
        if has_pii && !masked {
            ws.audit(&c.name, "pii.read", &members.segment, Some(&format!("members run={run} offset={offset}")))?;
        }
        let mut r = Response::new(axum::body::Body::from(page.body));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        if let Some(n) = page.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            r.headers_mut().insert("x-next-cursor", n);
        }
        r
    };
    let h = r.headers_mut();
    h.insert("x-run", HeaderValue::from(run));
    if let Ok(t) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, t);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    Ok(r)
}

/// A members page encoded as the response body, with the next page's cursor.
fn encode_page(segment: &str, offset: usize, format: Format, page: segkit::MembersPage) -> ApiResult<Page> {
    let segkit::MembersPage { run, schema, batches, more, .. } = page;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let next = more.then(|| format!("{run}.{}", offset + rows));
    let body = match format {
        Format::Json => {
            // The envelope, then the rows written straight after it into the same buffer.
            let mut body = Vec::with_capacity(64 + rows * 24);
            body.extend_from_slice(b"{\"segment\":");
            serde_json::to_writer(&mut body, segment).map_err(|e| Problem::from(segkit::Error::from(e)))?;
            body.extend_from_slice(format!(",\"run\":{run},\"next_cursor\":").as_bytes());
            serde_json::to_writer(&mut body, &next).map_err(|e| Problem::from(segkit::Error::from(e)))?;
            body.extend_from_slice(b",\"items\":");
            segkit::encode::write_json_rows(&mut body, &batches)?;
            body.push(b'}');
            body
        }
        Format::Csv => segkit::encode::to_csv(&schema, &batches)?,
        Format::Arrow => segkit::encode::to_ipc_stream(&schema, &batches)?,
    };
    Ok(Page { body: body.into(), next })
}

/// Query of `GET /segments/{name}/preview`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    /// Rows (default 20, at most 1000).
    #[param(maximum = 1000)]
    n: Option<usize>,
}

/// Up to `n` current members with every attribute. `pii` attributes are masked (`***`) unless the caller holds
/// the `pii` permission (admin); an unmasked read of `pii` values is written to the audit log.
#[utoipa::path(get, path = "/segments/{name}/preview", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"), PreviewQuery),
    responses((status = 200, description = "Rows, and whether pii was masked", body = super::schemas::Preview),
        (status = 404, description = "No such segment", body = Problem, content_type = "application/problem+json")))]
async fn segment_preview(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Q(q): Q<PreviewQuery>,
) -> ApiResult<Response> {
    let n = q.n.unwrap_or(20);
    if n > MAX_PREVIEW_ROWS {
        return Err(Problem::bad_request(format!("n must be at most {MAX_PREVIEW_ROWS} (limit MAX_PREVIEW_ROWS)")));
    }
    let ws = s.workspace();
    let def = ws.segment(&name)?;
    let has_pii = ws.entity(&def.entity)?.attributes.iter().any(|a| a.pii);
    let unmasked = has_pii && c.role.can_read_pii();
    let batch = ws.preview_with(&def.name, n, !unmasked).await?;
    if unmasked {
        ws.audit(&c.name, "pii.read", &def.name, Some(&format!("preview rows={}", batch.num_rows())))?;
    }
    let rows = segkit::encode::to_json_rows(std::slice::from_ref(&batch))?;
    let text = format!(r#"{{"segment":{},"pii_masked":{},"rows":{rows}}}"#, json!(def.name), has_pii && !unmasked);
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// Query of `GET /segments/{name}/explain`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExplainQuery {
    /// The entity's key, as text.
    key: String,
}

/// Why one entity is or is not a member: the rule annotated with each condition's value (pii masked).
#[utoipa::path(get, path = "/segments/{name}/explain", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"), ExplainQuery),
    responses((status = 200, description = "The explanation", body = super::schemas::ExplanationDoc),
        (status = 404, description = "No such segment or key", body = Problem, content_type = "application/problem+json")))]
async fn explain_segment(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    Q(q): Q<ExplainQuery>,
) -> ApiResult<Json<Value>> {
    let e = s.workspace().explain(&name, &q.key).await?;
    let mut v = serde_json::to_value(&e).map_err(|e| Problem::from(segkit::Error::from(e)))?;
    if let Value::Object(m) = &mut v {
        m.insert("text".into(), Value::String(e.to_string()));
    }
    Ok(Json(v))
}

const RUNS: Listing = Listing {
    sorts: &[
        ("run", "/run"),
        ("started_at", "/started_at"),
        ("member_count", "/member_count"),
        ("duration_ms", "/duration_ms"),
    ],
    filters: &[("run", "/run"), ("snapshot", "/snapshot"), ("member_count", "/member_count")],
};

/// The run history of a segment, a page at a time (`sort=-run` for newest first), filtered by run, entity
/// snapshot or member count.
#[utoipa::path(get, path = "/segments/{name}/runs", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"), ListQuery,
        ("run" = Option<i64>, Query, description = "Only this run"),
        ("snapshot" = Option<i64>, Query, description = "Only the runs that evaluated this entity snapshot"),
        ("member_count" = Option<i64>, Query, description = "Only the runs with this many members")),
    responses((status = 200, description = "A page of runs (sort: run, started_at, member_count, duration_ms)", body = super::schemas::SegmentRunPage)))]
async fn segment_runs(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    let p = q.check(&RUNS, &[])?;
    for f in ["run", "snapshot", "member_count"] {
        p.integer_filter(f, "an integer")?;
    }
    let runs = s.workspace().runs(&name)?;
    p.page(
        runs.iter()
            .map(|r| {
                json!({
                    "segment": r.segment, "run": r.run, "started_at": r.started_at, "duration_ms": r.duration_ms,
                    "member_count": r.member_count, "entered": r.entered, "exited": r.exited, "snapshot": r.snapshot,
                })
            })
            .collect(),
    )
}

const CHANGES: Listing = Listing {
    sorts: &[("run", "run"), ("started_at", "started_at")],
    filters: &[("run", "run"), ("change", "change")],
};

/// Who entered and exited a segment, run by run: one item per key and run (`run`, `started_at`, the key,
/// `change` = `entered` / `exited`), a page at a time.
#[utoipa::path(get, path = "/segments/{name}/changes", tag = "segments", security(("bearer" = [])),
    params(("name" = String, Path, description = "Segment name"), ListQuery,
        ("run" = Option<i64>, Query, description = "Only the changes of this run"),
        ("change" = Option<String>, Query, description = "Only `entered` or `exited`")),
    responses((status = 200, description = "A page of changes (sort: run, started_at)", body = super::schemas::RowPage)))]
async fn segment_changes(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    let p = q.check(&CHANGES, &[])?;
    let run = p.integer_filter("run", "a run number")?;
    let change = p
        .filter("change")
        .map(|c| {
            c.parse::<segkit::ChangeKind>()
                .map_err(|_| super::list::bad("change", format!("`{c}` is not `entered` or `exited`")))
        })
        .transpose()?;
    let query = segkit::ChangesQuery { run, change, by_started_at: p.sort.0 == "started_at", page: p.page_request()? };
    let page = s.workspace().changes_page(&name, &query).await?;
    p.respond_rows(&page.batch, page.total)
}
