//! Named sources (define, get with an `ETag`, update with `If-Match`, delete), their syncs and the rows those
//! quarantined.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use segkit::deps::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use segkit::limits::MAX_LISTED_ITEMS;
use segkit::spec::{self, SourceSpec};
use segkit::{QuarantineQuery, QuarantineSort, SourceDefinition, SyncRecord, Workspace};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    create_definition, delete_definition, get_definition, json_body, named_body, replace_definition, ApiResult,
    DefinitionResource, Stored, Text,
};
use super::list::{ListQuery, Listing, RawList};
use super::schemas::{
    IngestReportDoc, RowPage, SourceDefinitionDoc, SourceDefinitionNamelessDoc, SourceInfoDoc, SourcePage, SyncPage,
};
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

/// Named sources: answered with their sync state; the `ETag` covers the definition.
struct Sources;

impl DefinitionResource for Sources {
    const KIND: &'static str = "source";
    const COLLECTION: &'static str = "sources";
    type Input = SourceDefinition;
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<SourceDefinition> {
        let v = match path_name {
            Some(n) => named_body(body, n, "source")?,
            None => json_body(body)?,
        };
        Ok(spec::from_value::<SourceSpec>(v)?.into_definition())
    }
    fn input_name(input: &SourceDefinition) -> &str {
        &input.name
    }
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored> {
        let info = ws.source(name)?;
        Stored::new(&info.definition.name, json!(info), &info.definition)
    }
    async fn define(ws: &Workspace, input: SourceDefinition) -> ApiResult<Stored> {
        let d = ws.define_source(input).await?;
        Stored::new(&d.name, json!(d), &d)
    }
    async fn delete(ws: &Workspace, name: &str) -> segkit::Result<()> {
        ws.delete_source(name).await
    }
}

/// Named sources with their sync state, a page at a time (configs hold `env:` references, never secrets).
#[utoipa::path(get, path = "/sources", tag = "sources", security(("bearer" = [])),
    params(ListQuery, ("entity" = Option<String>, Query, description = "Only sources feeding this entity")),
    responses((status = 200, description = "A page of sources (sort: name, updated_at, entity)", body = SourcePage)))]
async fn list_sources(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&LISTING, &[])?;
    p.page(s.workspace().sources()?.iter().map(|x| json!(x)).collect())
}

/// Defines a named source (409 when one of that name exists: change it with PUT). The body is
/// `{name, entity, config, mapping, mode}`; secrets in `config` must be `env:NAME` references.
#[utoipa::path(post, path = "/sources", tag = "sources", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = SourceDefinitionDoc, description = "A source: `{name, entity, config, mapping, mode}`"),
    responses((status = 201, description = "The stored source, with its ETag", body = SourceDefinitionDoc),
        (status = 409, description = "A source of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_source(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    create_definition::<Sources>(&s, &c, &body).await
}

/// One named source with its sync state (`cursor`, `snapshot`, `updated_at`); the `ETag` covers the definition.
#[utoipa::path(get, path = "/sources/{name}", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name")),
    responses((status = 200, description = "The source", body = SourceInfoDoc)))]
async fn get_source(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    get_definition::<Sources>(&s, &name)
}

/// Replaces a source's definition (`name` may be left out). The same entity and config keep the sync cursor;
/// any other change starts the next sync from the beginning. With `If-Match: <ETag>` it applies only if nobody
/// changed the source since it was read.
#[utoipa::path(put, path = "/sources/{name}", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = SourceDefinitionNamelessDoc, description = "A source: `{entity, config, mapping, mode}` (`name` may be left out)"),
    responses((status = 200, description = "The stored source, with its new ETag", body = SourceDefinitionDoc),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition", body = Problem, content_type = "application/problem+json")))]
async fn update_source(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    replace_definition::<Sources>(&s, &c, &name, &headers, &body).await
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
    delete_definition::<Sources>(&s, &c, &name, &headers).await
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
    responses((status = 200, description = "The ingest report", body = IngestReportDoc),
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
    responses((status = 200, description = "A page of syncs (sort: created_at, rows_read, rows_written, rows_quarantined, duration_ms)", body = SyncPage)))]
async fn list_syncs(State(s): State<AppState>, c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&SYNCS, &[])?;
    p.page(syncs_json(s.workspace().syncs(MAX_LISTED_ITEMS)?, &c))
}

/// The syncs of one named source, a page at a time.
#[utoipa::path(get, path = "/sources/{name}/syncs", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"), ListQuery,
        ("mode" = Option<String>, Query, description = "Only this ingest mode")),
    responses((status = 200, description = "A page of syncs", body = SyncPage)))]
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
    let ids = match (ids, p.filter("ingest_id")) {
        (Some(ids), Some(one)) => Some(ids.into_iter().filter(|i| i == one).collect()),
        (None, Some(one)) => Some(HashSet::from([one.to_string()])),
        (ids, None) => ids,
    };
    let sort = if p.sort.0 == "ingest_id" { QuarantineSort::IngestId } else { QuarantineSort::Row };
    let page = ws.quarantine_page(entity, &QuarantineQuery { ingest_ids: ids, sort, page: p.page_request()? }).await?;
    let mut batch = page.batch;
    let unmasked = c.role.can_read_pii();
    if !unmasked {
        batch = mask_column(&batch, "record")?;
    } else if batch.num_rows() > 0 {
        ws.audit(&c.name, "pii.read", target, Some(&format!("quarantine rows={}", batch.num_rows())))?;
    }
    let mut r = p.respond_rows(&batch, page.total)?;
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
    responses((status = 200, description = "A page of quarantined rows (sort: row, ingest_id); header X-Pii-Masked", body = RowPage)))]
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
    responses((status = 200, description = "A page of quarantined rows (sort: row, ingest_id); header X-Pii-Masked", body = RowPage)))]
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
