//! Workflows, triggers and deliveries.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows))
        .routes(routes!(trigger_workflow))
        .routes(routes!(list_deliveries))
}

use super::common::{ApiResult, Text, Q};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;
use segkit::workflow::{DeliveryFilter, Status};

/// Every workflow definition.
#[utoipa::path(get, path = "/workflows", tag = "workflows", security(("bearer" = [])),
    responses((status = 200, description = "Workflows", body = [Object]),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json")))]
async fn list_workflows(State(s): State<AppState>, _c: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.workspace().workflows()?)))
}

/// The body of `POST /workflows/{name}/trigger`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    /// Entity keys to start it for (default: every current member of its segment).
    keys: Option<Vec<String>>,
}

/// Starts a workflow by hand for some keys, or for every current member of its segment.
#[utoipa::path(post, path = "/workflows/{name}/trigger", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = TriggerRequest, description = "Optional; an empty body starts it for every member"),
    responses((status = 200, description = "How many deliveries were queued", body = Object),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such workflow", body = Problem, content_type = "application/problem+json")))]
async fn trigger_workflow(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let req: TriggerRequest = if body.trim().is_empty() {
        TriggerRequest { keys: None }
    } else {
        serde_json::from_str(&body).map_err(|e| Problem::bad_request(format!("trigger body: {e}")))?
    };
    let ws = s.workspace();
    let n = ws.trigger(&name, req.keys).await?;
    ws.audit(&c.name, "workflow.trigger", &name, Some(&format!("queued={n}")))?;
    Ok(Json(json!({"workflow": name, "queued": n})))
}

/// Query of `GET /deliveries`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// Only this workflow.
    workflow: Option<String>,
    /// Only this status (`pending`, `running`, `delivered`, `done`, `suppressed`, `capped`, `dead`, …).
    status: Option<String>,
    /// At most this many rows (default 100, at most 10000).
    limit: Option<usize>,
}

/// Ledger rows of workflow deliveries, oldest first.
#[utoipa::path(get, path = "/deliveries", tag = "workflows", security(("bearer" = [])),
    params(DeliveriesQuery),
    responses((status = 200, description = "Deliveries", body = [Object]),
        (status = 400, description = "Bad status or limit", body = Problem, content_type = "application/problem+json")))]
async fn list_deliveries(State(s): State<AppState>, _c: Caller, Q(q): Q<DeliveriesQuery>) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(Problem::bad_request("limit must be 1 to 10000"));
    }
    let status = match &q.status {
        None => None,
        Some(t) => {
            Some(Status::parse(t).ok_or_else(|| Problem::bad_request(format!("unknown delivery status `{t}`")))?)
        }
    };
    let filter = DeliveryFilter { workflow: q.workflow, status, ids: None };
    Ok(Json(json!(s.workspace().deliveries(&filter, limit)?)))
}
