//! API keys and the audit log (admin only).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key)).routes(routes!(audit_log))
}

use super::common::{created, ApiResult, Text, Q};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;
use segkit::auth::Role;

/// Every API key (never their secrets).
#[utoipa::path(get, path = "/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Keys", body = [Object]),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn list_keys(State(s): State<AppState>, c: Caller) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    Ok(Json(json!(s.workspace().api_keys()?)))
}

/// The body of `POST /keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    /// Who will hold it.
    name: String,
    /// `admin`, `editor` or `viewer`.
    role: String,
}

/// Creates an API key; its secret is in this response only.
#[utoipa::path(post, path = "/keys", tag = "admin", security(("bearer" = [])), request_body = KeyRequest,
    responses((status = 201, description = "The key and its secret", body = Object),
        (status = 400, description = "Bad name or role", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn create_key(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    c.require_admin()?;
    let req: KeyRequest = serde_json::from_str(&body).map_err(|e| Problem::bad_request(format!("key request: {e}")))?;
    let role: Role = req.role.parse()?;
    let k = s.workspace().create_api_key(&req.name, role, &c.name)?;
    let mut v = json!(k.key);
    if let Value::Object(m) = &mut v {
        m.insert("secret".into(), Value::String(k.secret));
    }
    Ok(created(v))
}

/// Revokes an API key: it and the session tokens made from it stop working.
#[utoipa::path(delete, path = "/keys/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "The revoked key", body = Object),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json")))]
async fn revoke_key(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    Ok(Json(json!(s.workspace().revoke_api_key(&id, &c.name)?)))
}

/// Query of `GET /audit`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// The newest this many rows (default 100, at most 10000).
    limit: Option<usize>,
}

/// The newest rows of the audit log (every change and every unmasked pii read), oldest first.
#[utoipa::path(get, path = "/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "Audit rows", body = [Object]),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn audit_log(State(s): State<AppState>, c: Caller, Q(q): Q<AuditQuery>) -> ApiResult<Json<Value>> {
    c.require_admin()?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(Problem::bad_request("limit must be 1 to 10000"));
    }
    Ok(Json(json!(s.workspace().audit_log(limit)?)))
}
