//! Entity definitions: list, get (with an `ETag`), define, evolve (`If-Match`), add an attribute, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use segkit::spec::{self, AttributeOptions, EntitySpec};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{check_if_match, etag, with_etag, ApiResult, Text, Q};
use super::list::{ListQuery, Listing, Page, RawList};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entities, create_entity))
        .routes(routes!(get_entity, update_entity, delete_entity))
        .routes(routes!(add_attribute))
}

const LISTING: Listing = Listing { sorts: &[("name", "/name")], filters: &[("kind", "/kind")] };

/// Entity definitions, a page at a time (sort: `name`; filter: `kind` = `profile` or `event`).
#[utoipa::path(get, path = "/entities", tag = "entities", security(("bearer" = [])),
    params(ListQuery, ("kind" = Option<String>, Query, description = "Only entities of this kind (`profile`, `event`)")),
    responses((status = 200, description = "A page of entity definitions", body = Page)))]
async fn list_entities(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&LISTING, &[])?;
    p.page(s.workspace().entities()?.iter().map(spec::entity::explicit_json).collect())
}

/// One entity definition, with its `ETag`.
#[utoipa::path(get, path = "/entities/{name}", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name")),
    responses((status = 200, description = "The entity", body = Object)))]
async fn get_entity(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    let v = spec::entity::explicit_json(&s.workspace().entity(&name)?);
    Ok(with_etag(v.clone(), &etag(&v)?, StatusCode::OK))
}

/// Defines an entity, or evolves an existing one compatibly (the body is an entity spec: `{name, kind, key,
/// attributes, links}`).
#[utoipa::path(post, path = "/entities", tag = "entities", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Object, description = "An entity spec"),
    responses((status = 201, description = "The stored entity, with its ETag", body = Object),
        (status = 422, description = "Invalid definition, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_entity(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    c.require_write()?;
    let entity = spec::from_json_text::<EntitySpec>(&body).and_then(EntitySpec::into_entity)?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let e = ws.define_entity(entity).await?;
    ws.audit(&c.name, "entity.define", &e.name, None)?;
    let v = spec::entity::explicit_json(&e);
    Ok(with_etag(v.clone(), &etag(&v)?, StatusCode::CREATED))
}

/// Evolves an entity compatibly (adding nullable attributes, changing flags); the body's `name` must be the
/// path's. With `If-Match: <ETag>` the change applies only if nobody changed the entity since it was read.
#[utoipa::path(put, path = "/entities/{name}", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = Object, description = "An entity spec"),
    responses((status = 200, description = "The stored entity, with its new ETag", body = Object),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or incompatible definition", body = Problem, content_type = "application/problem+json")))]
async fn update_entity(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    c.require_write()?;
    // Parsed from the text (a JSON value would sort the attributes, whose order is the storage order).
    let entity = spec::from_json_text::<EntitySpec>(&body)?;
    if segkit::model::normalize_name(&entity.name) != segkit::model::normalize_name(&name) {
        return Err(segkit::Error::Definition {
            path: "entity.name".into(),
            message: format!("the body names entity `{}`, the path `{name}`; they must agree", entity.name),
        }
        .into());
    }
    let entity = entity.into_entity()?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let current = spec::entity::explicit_json(&ws.entity(&name)?);
    check_if_match(&headers, &etag(&current)?, "entity")?;
    let e = ws.define_entity(entity).await?;
    ws.audit(&c.name, "entity.update", &e.name, None)?;
    let v = spec::entity::explicit_json(&e);
    Ok(with_etag(v.clone(), &etag(&v)?, StatusCode::OK))
}

/// Adds one attribute to an entity: `{name, type, nullable, filterable, pii, indexed, description}` (it must be
/// new, and nullable when the entity holds rows).
#[utoipa::path(post, path = "/entities/{name}/attributes", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Object, description = "An attribute: `{name, type, nullable, filterable, pii, indexed, description}`"),
    responses((status = 201, description = "The entity with the new attribute, with its ETag", body = Object),
        (status = 409, description = "The attribute exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid attribute", body = Problem, content_type = "application/problem+json")))]
async fn add_attribute(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Text(body): Text,
) -> ApiResult<Response> {
    c.require_write()?;
    let attr = spec::from_json_text::<AttributeOptions>(&body).and_then(AttributeOptions::into_named_attribute)?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let attr_name = attr.name.clone();
    let e = ws.add_attribute(&name, attr).await?;
    ws.audit(&c.name, "entity.add_attribute", &e.name, Some(&attr_name))?;
    let v = spec::entity::explicit_json(&e);
    Ok(with_etag(v.clone(), &etag(&v)?, StatusCode::CREATED))
}

/// Query of `DELETE /entities/{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteEntityQuery {
    /// Delete its segments and sources too (workflows, templates and linking entities still refuse).
    force: Option<bool>,
}

/// Deletes an entity with its data. Refused (409, naming them) while segments, sources, workflows, templates or
/// linking entities depend on it; `force=true` deletes its segments and sources first.
#[utoipa::path(delete, path = "/entities/{name}", tag = "entities", security(("bearer" = [])),
    params(("name" = String, Path, description = "Entity name"), DeleteEntityQuery,
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 200, description = "What was deleted with it: `{entity, segments, sources}`", body = Object),
        (status = 409, description = "Something depends on it", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_entity(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Q(q): Q<DeleteEntityQuery>,
) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let ws = s.workspace();
    let _guard = s.0.writes.lock().await;
    let e = ws.entity(&name)?;
    check_if_match(&headers, &etag(&spec::entity::explicit_json(&e))?, "entity")?;
    let force = q.force.unwrap_or(false);
    let gone = ws.delete_entity(&e.name, force).await?;
    let detail = format!("force={force} segments={} sources={}", gone.segments.len(), gone.sources.len());
    ws.audit(&c.name, "entity.delete", &e.name, Some(&detail))?;
    Ok(Json(json!({"entity": e.name, "segments": gone.segments, "sources": gone.sources})))
}
