//! Entity definitions.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_entities, create_entity)).routes(routes!(get_entity))
}

use super::common::{created, ApiResult, Text};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;
use segkit::spec::{self, EntitySpec};

/// Every entity definition.
#[utoipa::path(get, path = "/entities", tag = "entities", security(("bearer" = [])),
    responses((status = 200, description = "Entity definitions", body = [Object]),
        (status = 401, description = "No valid credentials", body = Problem, content_type = "application/problem+json")))]
async fn list_entities(State(s): State<AppState>, _c: Caller) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(s.workspace().entities()?.iter().map(spec::entity::explicit_json).collect()))
}

/// One entity definition.
#[utoipa::path(get, path = "/entities/{name}", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name")),
    responses((status = 200, description = "The entity", body = Object),
        (status = 404, description = "No such entity", body = Problem, content_type = "application/problem+json")))]
async fn get_entity(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(spec::entity::explicit_json(&s.workspace().entity(&name)?)))
}

/// Defines an entity, or evolves an existing one compatibly (the body is an entity spec: `{name, kind, key,
/// attributes, links}`).
#[utoipa::path(post, path = "/entities", tag = "entities", security(("bearer" = [])),
    request_body(content = Object, description = "An entity spec"),
    responses((status = 201, description = "The stored entity", body = Object),
        (status = 403, description = "The role may not change anything", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definition, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_entity(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    c.require_write()?;
    let entity = spec::from_json_text::<EntitySpec>(&body).and_then(EntitySpec::into_entity)?;
    let ws = s.workspace();
    let e = ws.define_entity(entity).await?;
    ws.audit(&c.name, "entity.define", &e.name, None)?;
    Ok(created(spec::entity::explicit_json(&e)))
}
