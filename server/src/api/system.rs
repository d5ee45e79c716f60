//! Health, the caller's identity and session tokens.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(whoami)).routes(routes!(token))
}

use super::common::{ApiResult, Text};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

/// Liveness: the server answers and its workspace's catalog can be read.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The server is up", body = super::schemas::Health)))]
async fn health(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let entities = s.workspace().entities()?.len();
    Ok(Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "entities": entities})))
}

/// Who is calling: the API key (or the key behind a session token) and its role. It reads nothing beyond
/// authentication, so it is also the cheapest authenticated request (`benches/api.sh` times it as the server's
/// own floor: transport, middleware, router and the key check).
#[utoipa::path(get, path = "/whoami", tag = "system", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = super::schemas::WhoAmI),
        (status = 401, description = "Missing, unknown or revoked key", body = Problem, content_type = "application/problem+json")))]
async fn whoami(c: Caller) -> Json<Value> {
    Json(json!({"key_id": c.key_id, "name": c.name, "role": c.role}))
}

/// The body of `POST /auth/token`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// An API key (`sk_…`).
    api_key: String,
}

/// Exchanges an API key for a session token (an HS256 JWT) to send as `Authorization: Bearer <token>`.
#[utoipa::path(post, path = "/auth/token", tag = "system", request_body = TokenRequest,
    responses(
        (status = 200, description = "A session token", body = super::schemas::SessionToken),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown or revoked key", body = Problem, content_type = "application/problem+json")))]
async fn token(State(s): State<AppState>, Text(body): Text) -> ApiResult<Json<Value>> {
    let req: TokenRequest = serde_json::from_str(&body)
        .map_err(|e| Problem::bad_request(format!("the request body must be {{\"api_key\": \"sk_…\"}}: {e}")))?;
    let key = s
        .workspace()
        .authenticate_api_key(&req.api_key)?
        .ok_or_else(|| Problem::unauthorized("unknown or revoked API key"))?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let token = s.tokens().issue(&key, now)?;
    Ok(Json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": s.tokens().ttl.as_secs(),
        "role": key.role, "name": key.name,
    })))
}
