//! The REST API `/api/v1`: resource-oriented JSON over HTTP on axum, its OpenAPI 3.1 document
//! (`/api/v1/openapi.json`, generated from the handlers by utoipa) and a Swagger UI served from the binary
//! (`/api/docs/`, no network needed).
//!
//! Handlers (one module per resource) are thin: they parse with core's request model ([`segkit::spec`]), call the [`Workspace`], encode with
//! [`segkit::encode`] and map errors in one place ([`crate::error`]). Around them: the body size limit
//! ([`MAX_REQUEST_BODY_BYTES`]), a per-client rate limit (429 with `Retry-After`) and `Idempotency-Key` replay on
//! POSTs ([`idempotency`]).

mod admin;
mod common;
mod entities;
pub mod idempotency;
mod ingest;
mod list;
mod pages;
mod schemas;
mod segments;
mod sources;
mod system;
mod workflows;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use segkit::limits::{MAX_REQUEST_BODY_BYTES, MAX_UPLOAD_BYTES, MAX_UPLOAD_BYTES_CEILING};
use segkit::{CancellationToken, Workspace};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::auth::TokenKeys;
use crate::error::Problem;

/// How the API server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long a session token from `POST /api/v1/auth/token` lives.
    pub token_ttl: Duration,
    /// The secret that signs session tokens (at least 32 bytes); `None`: a random one, so tokens end with the
    /// process.
    pub token_secret: Option<Vec<u8>>,
    /// Requests per minute one client address may make (`None`: no limit). Beyond it: 429 with `Retry-After`.
    pub rate_limit_per_minute: Option<u32>,
    /// The largest request body read, in bytes.
    pub body_limit: usize,
    /// The largest file one upload (`POST /entities/{name}/upload`) may send, in bytes (streamed to a temporary
    /// file; at most [`MAX_UPLOAD_BYTES_CEILING`]).
    pub upload_limit: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            token_ttl: Duration::from_secs(3600),
            token_secret: None,
            rate_limit_per_minute: Some(6000),
            body_limit: MAX_REQUEST_BODY_BYTES,
            upload_limit: MAX_UPLOAD_BYTES,
        }
    }
}

struct Inner {
    ws: Workspace,
    tokens: TokenKeys,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Requests checked by the rate limiter (to prune its table now and then).
    checks: std::sync::atomic::AtomicU64,
    idempotency: idempotency::Store,
    body_limit: usize,
    /// The largest upload.
    upload_limit: usize,
    /// Group commit of `POST /events`.
    appender: segkit::appender::Appender,
    /// Encoded members pages (byte-bounded LRU; see [`pages`]).
    pages: pages::PageCache,
    /// Serialises check-then-write on definitions (`If-Match`, create-if-absent), so two updates cannot both pass
    /// the check.
    writes: tokio::sync::Mutex<()>,
}

/// The state every handler shares: the workspace and the API's own bookkeeping.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// The workspace the API serves.
    pub fn workspace(&self) -> &Workspace {
        &self.0.ws
    }

    /// The session-token keys.
    pub fn tokens(&self) -> &TokenKeys {
        &self.0.tokens
    }

    /// Encoded members pages.
    fn pages(&self) -> &pages::PageCache {
        &self.0.pages
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "segkit REST API", description = "Entities, segments, sources, workflows and their runs over HTTP."),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and session tokens"),
        (name = "entities", description = "Entity definitions"),
        (name = "segments", description = "Segments: definitions, counts, members, previews, runs"),
        (name = "sources", description = "Named sources and their syncs"),
        (name = "workflows", description = "Workflows, triggers and deliveries"),
        (name = "admin", description = "API keys and the audit log (admin only)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`sk_…`) or a session token from POST /api/v1/auth/token"))
                    .build(),
            ),
        );
    }
}

/// Every operation may answer a problem+json error not listed with it (400 for a bad query parameter, 401, 403,
/// 404, 413, 429, …): a `default` response says so, so clients and checkers know the shape of every error.
/// (Applied to the routed document: the paths exist only once the routers are merged.)
fn add_problem_default(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = ResponseBuilder::new()
        .description("An error as RFC 9457 problem+json: `kind`, `detail` and, for bad input, the `path`")
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        for op in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            op.responses.responses.entry("default".into()).or_insert_with(|| problem.clone().into());
        }
    }
}

/// The OpenAPI 3.1 document of the API (what `/api/v1/openapi.json` serves): the operations from the handlers
/// (utoipa) with the request and response schemas generated from core's request model ([`schemas`]).
pub fn openapi() -> serde_json::Value {
    let (_, api) = api_router().split_for_parts();
    finish_document(api)
}

/// The JSON Schema of a project file as shipped (`docs/project.schema.json`): core's
/// [`json_schema`](segkit::project::json_schema) with the source `config` and workflow step `action` typed by
/// the connectors and actions compiled into this binary (a `oneOf` by `type`, custom types allowed).
pub fn project_schema() -> serde_json::Value {
    let mut v = segkit::project::json_schema();
    if let Some(defs) = v.get_mut("$defs").and_then(serde_json::Value::as_object_mut) {
        schemas::type_plugin_configs(defs);
    }
    v
}

fn finish_document(mut api: utoipa::openapi::OpenApi) -> serde_json::Value {
    add_problem_default(&mut api);
    let mut doc = schemas::document(&api);
    allow_empty_list_parameters(&mut doc);
    doc
}

/// A list takes an empty `cursor`, `offset` or `sort` as none (what a form sends for an empty field; see
/// `list.rs`): the document says so with `allowEmptyValue` (utoipa has no attribute for it).
fn allow_empty_list_parameters(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for op in paths.values_mut().filter_map(serde_json::Value::as_object_mut).flat_map(|item| item.values_mut()) {
        let Some(params) = op.get_mut("parameters").and_then(serde_json::Value::as_array_mut) else { continue };
        let is_list = params.iter().any(|p| p["in"] == "query" && p["name"] == "limit");
        for p in params.iter_mut().filter(|p| is_list && p["in"] == "query") {
            if matches!(p["name"].as_str(), Some("cursor" | "offset" | "sort")) {
                p["allowEmptyValue"] = serde_json::Value::Bool(true);
            }
        }
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(system::routes())
        .merge(entities::routes())
        .merge(segments::routes())
        .merge(sources::routes())
        .merge(workflows::routes())
        .merge(admin::routes())
        .merge(ingest::routes());
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1)
}

/// The whole HTTP application over `ws`: the API, its document, the docs page and the middleware.
pub fn app(ws: Workspace, options: &ServerOptions) -> segkit::Result<Router> {
    let tokens = match &options.token_secret {
        Some(s) => TokenKeys::new(s, options.token_ttl)?,
        None => TokenKeys::random(options.token_ttl)?,
    };
    let limiter = match options.rate_limit_per_minute {
        None => None,
        Some(n) => {
            let n = NonZeroU32::new(n).ok_or_else(|| {
                segkit::Error::InvalidArgument("the rate limit must be at least 1 request per minute".into())
            })?;
            Some(RateLimiter::keyed(Quota::per_minute(n)))
        }
    };
    if options.upload_limit == 0 || options.upload_limit > MAX_UPLOAD_BYTES_CEILING {
        return Err(segkit::Error::InvalidArgument(format!(
            "the upload limit must be 1 to {MAX_UPLOAD_BYTES_CEILING} bytes (MAX_UPLOAD_BYTES_CEILING)"
        )));
    }
    let state = AppState(Arc::new(Inner {
        appender: ingest::appender(&ws),
        ws,
        tokens,
        limiter,
        checks: std::sync::atomic::AtomicU64::new(0),
        idempotency: idempotency::Store::default(),
        body_limit: options.body_limit,
        upload_limit: options.upload_limit,
        writes: tokio::sync::Mutex::new(()),
        pages: pages::PageCache::default(),
    }));
    let (router, api) = api_router().split_for_parts();
    // Serialised once; every request gets a cheap copy of the bytes.
    let api = axum::body::Bytes::from(serde_json::to_vec(&finish_document(api)).map_err(segkit::Error::from)?);
    let router = router
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], api) }),
        )
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .fallback(not_found)
        .with_state(state);
    Ok(router.merge(SwaggerUi::new("/api/docs").config(Config::from("/api/v1/openapi.json"))))
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

/// 429 with `Retry-After` once a client address has used its quota.
async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.0.limiter {
        let who = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        // Forget clients whose quota is full again now and then, so the table stays as small as the active set.
        if state.0.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Err(not_until) = limiter.check_key(&who) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut p = Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this address; retry in {secs} s"),
            );
            p.retry_after = Some(secs.max(1));
            return p.into_response();
        }
    }
    next.run(req).await
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets requests in flight finish.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
