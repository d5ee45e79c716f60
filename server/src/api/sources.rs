//! Named sources (define, get with an `ETag`, update with `If-Match`, delete), their syncs and the rows those
//! quarantined.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use segkit::deps::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use segkit::deps::arrow::compute;
use segkit::limits::MAX_LISTED_ITEMS;
use segkit::spec::{self, SourceSpec};
use segkit::{SourceDefinition, SyncRecord};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_if_match, etag, json_body, named_body, with_etag, ApiResult, Text};
use super::list::{ListQuery, Listing, Page, RawList};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, update_source, delete_source))
        .routes(routes!(sync_source))
        .routes(routes!(source_syncs))
        .routes(routes!(source_quarantine))
        .routes(routes!(list_syncs))
        .routes(routes!(sync_quarantine))
}

const LISTING: Listing = Listing {
    sorts: &[("name", "/name"), ("updated_at", "/updated_at"), ("entity", "/entity")],
    filters: &[("entity", "/entity")],
};

const SYNCS: Listing = Listing {
    sorts: &[
        ("created_at", "/created_at"),
        ("rows_read", "/rows_read"),
        ("rows_written", "/rows_written"),
        ("rows_quarantined", "/rows_quarantined"),
        ("duration_ms", "/duration_ms"),
    ],
    filters: &[("entity", "/entity"), ("source", "/named_source"), ("mode", "/mode")],
};

const QUARANTINE: Listing =
    Listing { sorts: &[("row", "row"), ("ingest_id", "ingest_id")], filters: &[("ingest_id", "ingest_id")] };

/// A source from a body (its `name` from the path when left out).
fn source_from(v: Value) -> ApiResult<SourceDefinition> {
    Ok(spec::from_value::<SourceSpec>(v)?.into_definition())
}

/// Named sources with their sync state, a page at a time (configs hold `env:` references, never secrets).
#[utoipa::path(get, path = "/sources", tag = "sources", security(("bearer" = [])),
    params(ListQuery, ("entity" = Option<String>, Query, description = "Only sources feeding this entity")),
    responses((status = 200, description = "A page of sources (sort: name, updated_at, entity)", body = Page)))]
async fn list_sources(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&LISTING, &[])?;
    p.page(s.workspace().sources()?.iter().map(|x| json!(x)).collect())
}

/// Defines a named source (409 when one of that name exists: change it with PUT). The body is
/// `{name, entity, config, mapping, mode}`; secrets in `config` must be `env:NAME` references.
#[utoipa::path(post, path = "/sources", tag = "sources", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Object, description = "A source: `{name, entity, config, mapping, mode}`"),
    responses((status = 201, description = "The stored source, with its ETag", body = Object),
        (status = 409, description = "A source of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_source(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    c.require_write()?;
    let def = source_from(json_body(&body)?)?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    if ws.source(&def.name).is_ok() {
        return Err(segkit::Error::Conflict {
            what: format!("source `{}`", def.name),
            message: "it exists already; change it with PUT /api/v1/sources/{name}".into(),
        }
        .into());
    }
    let d = ws.define_source(def).await?;
    ws.audit(&c.name, "source.create", &d.name, None)?;
    Ok(with_etag(json!(d), &etag(&d)?, StatusCode::CREATED))
}

/// One named source with its sync state (`cursor`, `snapshot`, `updated_at`); the `ETag` covers the definition.
#[utoipa::path(get, path = "/sources/{name}", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name")),
    responses((status = 200, description = "The source", body = Object)))]
async fn get_source(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    let info = s.workspace().source(&name)?;
    Ok(with_etag(json!(info), &etag(&info.definition)?, StatusCode::OK))
}

/// Replaces a source's definition (`name` may be left out). The same entity and config keep the sync cursor;
/// any other change starts the next sync from the beginning. With `If-Match: <ETag>` it applies only if nobody
/// changed the source since it was read.
#[utoipa::path(put, path = "/sources/{name}", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = Object, description = "A source: `{entity, config, mapping, mode}`"),
    responses((status = 200, description = "The stored source, with its new ETag", body = Object),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition", body = Problem, content_type = "application/problem+json")))]
async fn update_source(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    c.require_write()?;
    let def = source_from(named_body(&body, &name, "source")?)?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let current = ws.source(&name)?;
    check_if_match(&headers, &etag(&current.definition)?, "source")?;
    let d = ws.define_source(def).await?;
    ws.audit(&c.name, "source.update", &d.name, None)?;
    Ok(with_etag(json!(d), &etag(&d)?, StatusCode::OK))
}

/// Deletes a named source and its cursor; the data it ingested stays in its entity.
#[utoipa::path(delete, path = "/sources/{name}", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_source(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    c.require_write()?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let current = ws.source(&name)?;
    check_if_match(&headers, &etag(&current.definition)?, "source")?;
    ws.delete_source(&current.definition.name).await?;
    ws.audit(&c.name, "source.delete", &current.definition.name, None)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A sync report as JSON, its quarantined sample rows (raw input: maybe personal data) left out unless the
/// caller may read pii.
fn report_json(v: Value, c: &Caller) -> Value {
    let mut v = v;
    if !c.role.can_read_pii() {
        if let Value::Object(m) = &mut v {
            if m.contains_key("quarantine_sample") {
                m.insert("quarantine_sample".into(), json!([]));
            }
        }
    }
    v
}

/// Syncs a named source now (from its cursor when incremental) and returns the ingest report.
#[utoipa::path(post, path = "/sources/{name}/sync", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    responses((status = 200, description = "The ingest report", body = Object),
        (status = 502, description = "The source failed", body = Problem, content_type = "application/problem+json")))]
async fn sync_source(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let ws = s.workspace();
    let report = ws.sync(&name).await?;
    ws.audit(&c.name, "source.sync", &name, Some(&format!("rows_written={}", report.rows_written)))?;
    Ok(Json(report_json(json!(report), &c)))
}

fn syncs_json(records: Vec<SyncRecord>, c: &Caller) -> Vec<Value> {
    records.into_iter().map(|r| report_json(json!(r), c)).collect()
}

/// Every sync and ingest (the `segkit.syncs` table), a page at a time: the report, the named source (`null` for
/// a direct ingest) and `created_at`. Quarantine samples are left out unless the caller may read pii.
#[utoipa::path(get, path = "/syncs", tag = "sources", security(("bearer" = [])),
    params(ListQuery,
        ("entity" = Option<String>, Query, description = "Only syncs into this entity"),
        ("source" = Option<String>, Query, description = "Only syncs of this named source"),
        ("mode" = Option<String>, Query, description = "Only this ingest mode")),
    responses((status = 200, description = "A page of syncs (sort: created_at, rows_read, rows_written, rows_quarantined, duration_ms)", body = Page)))]
async fn list_syncs(State(s): State<AppState>, c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&SYNCS, &[])?;
    p.page(syncs_json(s.workspace().syncs(MAX_LISTED_ITEMS)?, &c))
}

/// The syncs of one named source, a page at a time.
#[utoipa::path(get, path = "/sources/{name}/syncs", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"), ListQuery,
        ("mode" = Option<String>, Query, description = "Only this ingest mode")),
    responses((status = 200, description = "A page of syncs", body = Page)))]
async fn source_syncs(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    const ONE: Listing = Listing { sorts: SYNCS.sorts, filters: &[("mode", "/mode")] };
    let p = q.check(&ONE, &[])?;
    let ws = s.workspace();
    let src = ws.source(&name)?.definition.name;
    let records = ws.syncs(MAX_LISTED_ITEMS)?.into_iter().filter(|r| r.named_source.as_deref() == Some(&src)).collect();
    p.page(syncs_json(records, &c))
}

/// Quarantined rows of `entity` from the ingests `ids` (all when `None`), the raw `record` masked (`***`)
/// unless the caller may read pii (an unmasked read is audited).
async fn quarantine_page(
    s: &AppState,
    c: &Caller,
    entity: &str,
    ids: Option<HashSet<String>>,
    target: &str,
    q: RawList,
) -> ApiResult<Response> {
    let p = q.check(&QUARANTINE, &[])?;
    let ws = s.workspace();
    let mut batch = ws.quarantine(entity).await?;
    let arrow_err = |e: segkit::deps::arrow::error::ArrowError| Problem::from(segkit::Error::from(e));
    if let (Some(ids), Some(col)) = (ids, batch.column_by_name("ingest_id").cloned()) {
        let text = compute::cast(&col, &segkit::deps::arrow::datatypes::DataType::Utf8).map_err(arrow_err)?;
        let text = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        let keep: BooleanArray =
            (0..text.len()).map(|i| Some(text.is_valid(i) && ids.contains(text.value(i)))).collect();
        batch = compute::filter_record_batch(&batch, &keep).map_err(arrow_err)?;
    }
    let unmasked = c.role.can_read_pii();
    if !unmasked {
        batch = mask_column(&batch, "record")?;
    } else if batch.num_rows() > 0 {
        ws.audit(&c.name, "pii.read", target, Some(&format!("quarantine rows={}", batch.num_rows())))?;
    }
    let mut r = p.page_batch(&batch)?;
    r.headers_mut()
        .insert("x-pii-masked", axum::http::HeaderValue::from_static(if unmasked { "false" } else { "true" }));
    Ok(r)
}

fn mask_column(batch: &RecordBatch, name: &str) -> ApiResult<RecordBatch> {
    let Some((i, _)) = batch.schema().column_with_name(name) else { return Ok(batch.clone()) };
    let col = batch.column(i);
    let masked: StringArray = (0..col.len()).map(|j| col.is_valid(j).then_some("***")).collect();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[i] = Arc::new(masked);
    RecordBatch::try_new(batch.schema(), cols).map_err(|e| Problem::from(segkit::Error::from(e)))
}

/// The rows a named source's syncs quarantined (`ingest_id`, `row`, `reason`, `record`), a page at a time;
/// `record` (the raw input) is masked unless the caller may read pii.
#[utoipa::path(get, path = "/sources/{name}/quarantine", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"), ListQuery,
        ("ingest_id" = Option<String>, Query, description = "Only rows of this sync")),
    responses((status = 200, description = "A page of quarantined rows (sort: row, ingest_id); header X-Pii-Masked", body = Page)))]
async fn source_quarantine(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    let ws = s.workspace();
    let src = ws.source(&name)?.definition;
    let ids = ws
        .syncs(MAX_LISTED_ITEMS)?
        .into_iter()
        .filter(|r| r.named_source.as_deref() == Some(&src.name))
        .map(|r| r.report.id)
        .collect();
    quarantine_page(&s, &c, &src.entity, Some(ids), &src.name, q).await
}

/// The rows one sync or ingest quarantined, a page at a time; `record` is masked unless the caller may read pii.
#[utoipa::path(get, path = "/syncs/{id}/quarantine", tag = "sources", security(("bearer" = [])),
    params(("id" = String, Path, description = "Sync (ingest) id"), ListQuery),
    responses((status = 200, description = "A page of quarantined rows (sort: row, ingest_id); header X-Pii-Masked", body = Page)))]
async fn sync_quarantine(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    let ws = s.workspace();
    let sync = ws.syncs(MAX_LISTED_ITEMS)?.into_iter().find(|r| r.report.id == id).ok_or_else(|| {
        Problem::from(segkit::Error::NotFound { kind: "sync", name: id.clone(), hint: Default::default() })
    })?;
    let ids = HashSet::from([id.clone()]);
    quarantine_page(&s, &c, &sync.report.entity, Some(ids), &format!("sync {id}"), q).await
}
