//! API keys and the audit log (admin only).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys, create_key)).routes(routes!(revoke_key)).routes(routes!(audit_log))
}

use super::common::{created, small_body, ApiResult, Text};
use super::list::{keyset_page, ListQuery, Listing, Page, RawList};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;
use segkit::auth::{AuditFilter, Role};

const KEYS: Listing = Listing {
    sorts: &[("created_at", "/created_at"), ("name", "/name"), ("role", "/role")],
    filters: &[("role", "/role"), ("name", "/name")],
};

/// API keys (never their secrets), a page at a time.
#[utoipa::path(get, path = "/keys", tag = "admin", security(("bearer" = [])),
    params(ListQuery,
        ("role" = Option<String>, Query, description = "Only keys of this role"),
        ("name" = Option<String>, Query, description = "Only keys of this holder")),
    responses((status = 200, description = "A page of keys (sort: created_at, name, role)", body = Page),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn list_keys(State(s): State<AppState>, c: Caller, q: RawList) -> ApiResult<Response> {
    c.require_admin()?;
    let p = q.check(&KEYS, &[])?;
    p.page(s.workspace().api_keys()?.iter().map(|k| json!(k)).collect())
}

/// The body of `POST /keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    /// Who will hold it.
    name: String,
    /// `admin`, `editor` or `viewer`.
    #[schema(pattern = "^(admin|editor|viewer)$")]
    role: String,
}

/// Creates an API key; its secret is in this response only.
#[utoipa::path(post, path = "/keys", tag = "admin", security(("bearer" = [])), request_body = KeyRequest,
    responses((status = 201, description = "The key and its secret", body = Object),
        (status = 400, description = "Bad name or role", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn create_key(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    c.require_admin()?;
    let req: KeyRequest = small_body(&body, "key")?;
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

const AUDIT: Listing =
    Listing { sorts: &[("id", "/id")], filters: &[("actor", "/actor"), ("action", "/action"), ("target", "/target")] };

/// The audit log (every change and every unmasked pii read), a page at a time by id (`sort=-id` for newest
/// first; `cursor` is the last id of the previous page). Also the `segkit.audit` system table.
#[utoipa::path(get, path = "/audit", tag = "admin", security(("bearer" = [])),
    params(ListQuery,
        ("actor" = Option<String>, Query, description = "Only this actor (a key holder's name)"),
        ("action" = Option<String>, Query, description = "Only this action (`segment.update`, `pii.read`, …)"),
        ("target" = Option<String>, Query, description = "Only this target")),
    responses((status = 200, description = "A page of audit rows (sort: id)", body = Page),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json")))]
async fn audit_log(State(s): State<AppState>, c: Caller, q: RawList) -> ApiResult<Response> {
    c.require_admin()?;
    let p = q.check(&AUDIT, &[])?;
    let after = p.after_id()?;
    let desc = p.descending();
    let filter = AuditFilter {
        actor: p.filter("actor").map(str::to_string),
        action: p.filter("action").map(str::to_string),
        target: p.filter("target").map(str::to_string),
        after_id: if desc { None } else { after },
        before_id: if desc { after } else { None },
        newest_first: desc,
    };
    let rows = s.workspace().audit_entries(&filter, p.limit + 1)?;
    Ok(keyset_page(&p, rows.iter().map(|r| json!(r)).collect()))
}
