//! Named sources and their syncs.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_sources)).routes(routes!(sync_source))
}

use super::common::ApiResult;
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

/// Every named source with its sync state (configs hold `env:` references, never secrets).
#[utoipa::path(get, path = "/sources", tag = "sources", security(("bearer" = [])),
    responses((status = 200, description = "Sources", body = [Object]),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json")))]
async fn list_sources(State(s): State<AppState>, _c: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.workspace().sources()?)))
}

/// Syncs a named source now (from its cursor when incremental) and returns the ingest report.
#[utoipa::path(post, path = "/sources/{name}/sync", tag = "sources", security(("bearer" = [])),
    params(("name" = String, Path, description = "Source name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    responses((status = 200, description = "The ingest report", body = Object),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such source", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The source failed", body = Problem, content_type = "application/problem+json")))]
async fn sync_source(State(s): State<AppState>, c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let ws = s.workspace();
    let report = ws.sync(&name).await?;
    ws.audit(&c.name, "source.sync", &name, Some(&format!("rows_written={}", report.rows_written)))?;
    let mut v = json!(report);
    if !c.role.can_read_pii() {
        // Quarantined rows are raw input: they may hold personal data.
        if let Value::Object(m) = &mut v {
            m.insert("quarantine_sample".into(), json!([]));
        }
    }
    Ok(Json(v))
}
