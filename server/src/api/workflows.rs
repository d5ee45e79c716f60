//! Templates, workflows (define, get, update, delete, dry-run, trigger, run history), schedules, and the delivery
//! ledger (deliveries, dead letters, replay).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use segkit::limits::MAX_LISTED_ITEMS;
use segkit::spec::{self, ScheduleSpec, TemplateSpec, WorkflowSpec};
use segkit::workflow::{DeliveryFilter, Status};
use segkit::Workspace;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{
    create_definition, delete_definition, get_definition, json_body, named_body, replace_definition, small_body,
    ApiResult, DefinitionResource, Stored, Text,
};
use super::list::{keyset_page, ListParams, ListQuery, Listing, RawList};
use super::schemas::{
    DeliveryPage, DryRun, Rendered, Replayed, ScheduleInfoDoc, SchedulePage, ScheduleSpecDoc, ScheduleSpecNamelessDoc,
    TemplatePage, TemplateSpecDoc, TemplateSpecNamelessDoc, Triggered, WorkflowPage, WorkflowRunPage, WorkflowSpecDoc,
    WorkflowSpecNamelessDoc,
};
use super::AppState;
use crate::auth::Caller;
use crate::error::Problem;

/// The routes of this resource.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(render_template))
        .routes(routes!(list_workflows, create_workflow))
        .routes(routes!(get_workflow, update_workflow, delete_workflow))
        .routes(routes!(dry_run_workflow))
        .routes(routes!(trigger_workflow))
        .routes(routes!(workflow_runs))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
        .routes(routes!(list_deliveries))
        .routes(routes!(dead_letters))
        .routes(routes!(replay_deliveries))
}

/// Parses a body with core's request model (the name from the path when left out).
fn parse<T: spec::Spec>(body: &str, name: Option<&str>, what: &str) -> ApiResult<T> {
    let v = match name {
        Some(n) => named_body(body, n, what)?,
        None => json_body(body)?,
    };
    Ok(spec::from_value::<T>(v)?)
}

/// Message templates.
struct Templates;

impl DefinitionResource for Templates {
    const KIND: &'static str = "template";
    const COLLECTION: &'static str = "templates";
    type Input = TemplateSpec;
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<TemplateSpec> {
        parse(body, path_name, "template")
    }
    fn input_name(input: &TemplateSpec) -> &str {
        &input.name
    }
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored> {
        let t = ws.template(name)?;
        Stored::of(&t.name, &t)
    }
    async fn define(ws: &Workspace, input: TemplateSpec) -> ApiResult<Stored> {
        let t = ws.define_template(input).await?;
        Stored::of(&t.name, &t)
    }
    async fn delete(ws: &Workspace, name: &str) -> segkit::Result<()> {
        ws.delete_template(name)
    }
}

/// Workflows.
struct Workflows;

impl DefinitionResource for Workflows {
    const KIND: &'static str = "workflow";
    const COLLECTION: &'static str = "workflows";
    type Input = WorkflowSpec;
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<WorkflowSpec> {
        parse(body, path_name, "workflow")
    }
    fn input_name(input: &WorkflowSpec) -> &str {
        &input.name
    }
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored> {
        let w = ws.workflow(name)?;
        Stored::of(&w.name, &w)
    }
    async fn define(ws: &Workspace, input: WorkflowSpec) -> ApiResult<Stored> {
        let w = ws.define_workflow(input).await?;
        Stored::of(&w.name, &w)
    }
    async fn delete(ws: &Workspace, name: &str) -> segkit::Result<()> {
        ws.delete_workflow(name)
    }
}

/// Cron schedules: answered with their state, versioned (`ETag`) by their definition alone.
struct Schedules;

impl DefinitionResource for Schedules {
    const KIND: &'static str = "schedule";
    const COLLECTION: &'static str = "schedules";
    type Input = ScheduleSpec;
    fn parse(body: &str, path_name: Option<&str>) -> ApiResult<ScheduleSpec> {
        parse(body, path_name, "schedule")
    }
    fn input_name(input: &ScheduleSpec) -> &str {
        &input.name
    }
    fn read(ws: &Workspace, name: &str) -> ApiResult<Stored> {
        let info = ws.schedule_info(name)?;
        Stored::new(&info.spec.name, json!(info), &info.spec)
    }
    async fn define(ws: &Workspace, input: ScheduleSpec) -> ApiResult<Stored> {
        let info = ws.schedule(input).await?;
        Stored::new(&info.spec.name, json!(info), &info.spec)
    }
    async fn delete(ws: &Workspace, name: &str) -> segkit::Result<()> {
        ws.delete_schedule(name)
    }
}

/// An optional JSON body of a small request type; an empty body is its default. Bad fields are 422 with a path.
fn optional_body<T: for<'de> Deserialize<'de> + Default>(body: &str, what: &str) -> ApiResult<T> {
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    small_body(body, what)
}

// ------------------------------------------------------------------------------------------------ templates

const TEMPLATES: Listing = Listing {
    sorts: &[("name", "/name"), ("channel", "/channel")],
    filters: &[("channel", "/channel"), ("entity", "/entity")],
};

/// Message templates, a page at a time.
#[utoipa::path(get, path = "/templates", tag = "workflows", security(("bearer" = [])),
    params(ListQuery,
        ("channel" = Option<String>, Query, description = "Only templates of this channel"),
        ("entity" = Option<String>, Query, description = "Only templates about this entity")),
    responses((status = 200, description = "A page of templates (sort: name, channel)", body = TemplatePage)))]
async fn list_templates(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&TEMPLATES, &[])?;
    p.page(s.workspace().templates()?.iter().map(|t| json!(t)).collect())
}

/// Defines a message template: `{name, channel, entity, parts}` (409 when one of that name exists).
#[utoipa::path(post, path = "/templates", tag = "workflows", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = TemplateSpecDoc, description = "A template: `{name, channel, entity, parts}`"),
    responses((status = 201, description = "The stored template, with its ETag", body = TemplateSpecDoc),
        (status = 409, description = "A template of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid template, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_template(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    create_definition::<Templates>(&s, &c, &body).await
}

/// One template, with its `ETag`.
#[utoipa::path(get, path = "/templates/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Template name")),
    responses((status = 200, description = "The template", body = TemplateSpecDoc)))]
async fn get_template(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    get_definition::<Templates>(&s, &name)
}

/// Replaces a template (`name` may be left out); `If-Match` as for segments.
#[utoipa::path(put, path = "/templates/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Template name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = TemplateSpecNamelessDoc, description = "A template: `{channel, entity, parts}` (`name` may be left out)"),
    responses((status = 200, description = "The stored template, with its new ETag", body = TemplateSpecDoc),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid template", body = Problem, content_type = "application/problem+json")))]
async fn update_template(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    replace_definition::<Templates>(&s, &c, &name, &headers, &body).await
}

/// Deletes a template (workflows naming it fail to dispatch until it is defined again).
#[utoipa::path(delete, path = "/templates/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Template name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_template(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    delete_definition::<Templates>(&s, &c, &name, &headers).await
}

/// The body of `POST /templates/{name}/render`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RenderRequest {
    /// The key of the entity to render it for.
    key: String,
}

/// Renders a template for one entity (the template must name its `entity`). Values of `pii` attributes are
/// `***` unless the caller may read pii (an unmasked render is audited).
#[utoipa::path(post, path = "/templates/{name}/render", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Template name")),
    request_body = RenderRequest,
    responses((status = 200, description = "`{template, key, pii_masked, parts}`", body = Rendered)))]
async fn render_template(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let req: RenderRequest = small_body(&body, "render")?;
    let ws = s.workspace();
    let t = ws.template(&name)?;
    let has_pii = match &t.entity {
        Some(e) => ws.entity(e)?.attributes.iter().any(|a| a.pii),
        None => false,
    };
    let unmasked = has_pii && c.role.can_read_pii();
    let parts = ws.render_masked(&t.name, &req.key, !unmasked).await?;
    if unmasked {
        ws.audit(&c.name, "pii.read", &t.name, Some("template render"))?;
    }
    Ok(Json(json!({"template": t.name, "key": req.key, "pii_masked": has_pii && !unmasked, "parts": parts})))
}

// ------------------------------------------------------------------------------------------------ workflows

const WORKFLOWS: Listing = Listing {
    sorts: &[("name", "/name")],
    filters: &[("trigger", "/trigger/type"), ("segment", "/trigger/segment"), ("entity", "/trigger/entity")],
};

/// Workflow definitions, a page at a time.
#[utoipa::path(get, path = "/workflows", tag = "workflows", security(("bearer" = [])),
    params(ListQuery,
        ("trigger" = Option<String>, Query, description = "Only this trigger type (`entered`, `exited`, `schedule`, `manual`)"),
        ("segment" = Option<String>, Query, description = "Only workflows triggered by this segment"),
        ("entity" = Option<String>, Query, description = "Only manual workflows of this entity")),
    responses((status = 200, description = "A page of workflows (sort: name)", body = WorkflowPage)))]
async fn list_workflows(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&WORKFLOWS, &[])?;
    p.page(s.workspace().workflows()?.iter().map(|w| json!(w)).collect())
}

/// Defines a workflow: `{name, trigger, steps, policies}` (409 when one of that name exists).
#[utoipa::path(post, path = "/workflows", tag = "workflows", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = WorkflowSpecDoc, description = "A workflow: `{name, trigger, steps, policies}`"),
    responses((status = 201, description = "The stored workflow, with its ETag", body = WorkflowSpecDoc),
        (status = 409, description = "A workflow of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid workflow, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_workflow(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    create_definition::<Workflows>(&s, &c, &body).await
}

/// One workflow, with its `ETag`.
#[utoipa::path(get, path = "/workflows/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name")),
    responses((status = 200, description = "The workflow", body = WorkflowSpecDoc)))]
async fn get_workflow(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    get_definition::<Workflows>(&s, &name)
}

/// Replaces a workflow (`name` may be left out); `If-Match` as for segments.
#[utoipa::path(put, path = "/workflows/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = WorkflowSpecNamelessDoc, description = "A workflow: `{trigger, steps, policies}` (`name` may be left out)"),
    responses((status = 200, description = "The stored workflow, with its new ETag", body = WorkflowSpecDoc),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid workflow", body = Problem, content_type = "application/problem+json")))]
async fn update_workflow(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    replace_definition::<Workflows>(&s, &c, &name, &headers, &body).await
}

/// Deletes a workflow; its ledger rows stay (pending ones are dead-lettered when claimed).
#[utoipa::path(delete, path = "/workflows/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_workflow(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    delete_definition::<Workflows>(&s, &c, &name, &headers).await
}

/// The body of `POST /workflows/{name}/dry-run`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct DryRunRequest {
    /// Entity keys to dry-run (default: current members of an `entered` / `schedule` workflow's segment, or the
    /// entities of a manual one).
    keys: Option<Vec<String>>,
    /// At most this many entities (default 100, at most 10000).
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// Who would receive what if the workflow were triggered now, without sending anything or writing the ledger.
/// Rendered content shows `pii` values as `***` unless the caller may read pii.
#[utoipa::path(post, path = "/workflows/{name}/dry-run", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name")),
    request_body(content = Option<DryRunRequest>, description = "Optional"),
    responses((status = 200, description = "`{workflow, pii_masked, rows}`: per entity the step, channel, status and content", body = DryRun)))]
async fn dry_run_workflow(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    let req: DryRunRequest = optional_body(&body, "dry-run")?;
    let limit = req.limit.unwrap_or(100);
    if limit == 0 || limit > segkit::limits::MAX_DRY_RUN_ROWS {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            format!("limit must be 1 to {} (limit MAX_DRY_RUN_ROWS)", segkit::limits::MAX_DRY_RUN_ROWS),
        );
        p.path = Some("dry-run.limit".into());
        return Err(p);
    }
    let ws = s.workspace();
    let w = ws.workflow(&name)?;
    let unmasked = c.role.can_read_pii();
    let rows = ws.dry_run_workflow_with(&w.name, req.keys, limit, !unmasked).await?;
    if unmasked && rows.iter().any(|r| !r.content.is_empty()) {
        ws.audit(&c.name, "pii.read", &w.name, Some(&format!("dry run rows={}", rows.len())))?;
    }
    Ok(Json(json!({"workflow": w.name, "pii_masked": !unmasked, "rows": rows})))
}

/// The body of `POST /workflows/{name}/trigger`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    /// Entity keys to start it for (default: every current member of its segment).
    keys: Option<Vec<String>>,
}

/// Starts a workflow by hand for some keys, or for every current member of its segment.
#[utoipa::path(post, path = "/workflows/{name}/trigger", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = Option<TriggerRequest>, description = "Optional; an empty body starts it for every member"),
    responses((status = 200, description = "How many deliveries were queued", body = Triggered)))]
async fn trigger_workflow(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    Text(body): Text,
) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let req: TriggerRequest = optional_body(&body, "trigger")?;
    let ws = s.workspace();
    let n = ws.trigger(&name, req.keys).await?;
    ws.audit(&c.name, "workflow.trigger", &name, Some(&format!("queued={n}")))?;
    Ok(Json(json!({"workflow": name, "queued": n})))
}

const RUNS: Listing = Listing {
    sorts: &[("started_at", "/started_at"), ("trigger", "/trigger"), ("entities", "/entities")],
    filters: &[("trigger", "/trigger")],
};

/// The run history of a workflow: one item per start (a segment run, a manual trigger, a schedule's due
/// instant) with its ledger rows counted by status, a page at a time.
#[utoipa::path(get, path = "/workflows/{name}/runs", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Workflow name"), ListQuery,
        ("trigger" = Option<String>, Query, description = "Only this trigger version")),
    responses((status = 200, description = "A page of runs (sort: started_at, trigger, entities)", body = WorkflowRunPage)))]
async fn workflow_runs(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    q: RawList,
) -> ApiResult<Response> {
    let p = q.check(&RUNS, &[])?;
    p.page(s.workspace().workflow_runs(&name, MAX_LISTED_ITEMS)?.iter().map(|r| json!(r)).collect())
}

// ------------------------------------------------------------------------------------------------ schedules

const SCHEDULES: Listing = Listing {
    sorts: &[("name", "/spec/name"), ("next_due", "/next_due"), ("last_run_at", "/last_run_at")],
    filters: &[("job", "/spec/job/type")],
};

/// Cron schedules with their state (next due, last run, last error), a page at a time.
#[utoipa::path(get, path = "/schedules", tag = "workflows", security(("bearer" = [])),
    params(ListQuery, ("job" = Option<String>, Query, description = "Only this job type (`sync`, `evaluate`, `workflow`, `dispatch`)")),
    responses((status = 200, description = "A page of schedules (sort: name, next_due, last_run_at)", body = SchedulePage)))]
async fn list_schedules(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&SCHEDULES, &[])?;
    p.page(s.workspace().schedules()?.iter().map(|x| json!(x)).collect())
}

/// Defines a cron schedule: `{name, cron, timezone, job}` (409 when one of that name exists: change it with PUT).
#[utoipa::path(post, path = "/schedules", tag = "workflows", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body(content = ScheduleSpecDoc, description = "A schedule: `{name, cron, timezone, job: {type, …}}`"),
    responses((status = 201, description = "The stored schedule with its state, and its ETag", body = ScheduleInfoDoc),
        (status = 409, description = "A schedule of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid schedule, with the path of the bad field", body = Problem, content_type = "application/problem+json")))]
async fn create_schedule(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Response> {
    create_definition::<Schedules>(&s, &c, &body).await
}

/// One schedule with its state, and its `ETag` (over the definition only: runs of the scheduler do not change
/// it).
#[utoipa::path(get, path = "/schedules/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule", body = ScheduleInfoDoc)))]
async fn get_schedule(State(s): State<AppState>, _c: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    get_definition::<Schedules>(&s, &name)
}

/// Replaces a schedule (`name` may be left out); `If-Match` as for segments. It keeps its run history and is
/// next due at the new pattern's first match after now.
#[utoipa::path(put, path = "/schedules/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before editing")),
    request_body(content = ScheduleSpecNamelessDoc, description = "A schedule: `{cron, timezone, job}` (`name` may be left out)"),
    responses((status = 200, description = "The stored schedule with its state, and its new ETag", body = ScheduleInfoDoc),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid schedule", body = Problem, content_type = "application/problem+json")))]
async fn update_schedule(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Text(body): Text,
) -> ApiResult<Response> {
    replace_definition::<Schedules>(&s, &c, &name, &headers, &body).await
}

/// Deletes a schedule.
#[utoipa::path(delete, path = "/schedules/{name}", tag = "workflows", security(("bearer" = [])),
    params(("name" = String, Path, description = "Schedule name"),
        ("If-Match" = Option<String>, Header, description = "The ETag read before deleting")),
    responses((status = 204, description = "Deleted"),
        (status = 412, description = "Changed since read", body = Problem, content_type = "application/problem+json")))]
async fn delete_schedule(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    delete_definition::<Schedules>(&s, &c, &name, &headers).await
}

// ------------------------------------------------------------------------------------------------ deliveries

const DELIVERIES: Listing = Listing {
    sorts: &[("id", "/id")],
    filters: &[("workflow", "/workflow"), ("status", "/status"), ("entity_key", "/entity_key")],
};

fn status_of(p: &ListParams) -> ApiResult<Option<Status>> {
    match p.filter("status") {
        None => Ok(None),
        Some(t) => Status::parse(t).map(Some).ok_or_else(|| {
            let mut pr = Problem::bad_request(format!(
                "query parameter `status`: unknown delivery status `{t}` (pending, running, delivered, done, \
                 suppressed, capped, dead)"
            ));
            pr.path = Some("query.status".into());
            pr
        }),
    }
}

/// One keyset page of the ledger.
fn ledger_page(s: &AppState, p: &ListParams, status: Option<Status>) -> ApiResult<Response> {
    let after = p.after_id()?;
    let desc = p.descending();
    let filter = DeliveryFilter {
        workflow: p.filter("workflow").map(str::to_string),
        status,
        entity_key: p.filter("entity_key").map(str::to_string),
        after_id: if desc { None } else { after },
        before_id: if desc { after } else { None },
        newest_first: desc,
        ..Default::default()
    };
    let rows = s.workspace().deliveries(&filter, p.limit + 1)?;
    Ok(keyset_page(p, rows.iter().map(|r| json!(r)).collect()))
}

/// Ledger rows of workflow deliveries, a page at a time by id (`sort=-id` for newest first; `cursor` is the last
/// id of the previous page).
#[utoipa::path(get, path = "/deliveries", tag = "workflows", security(("bearer" = [])),
    params(ListQuery,
        ("workflow" = Option<String>, Query, description = "Only this workflow"),
        ("status" = Option<String>, Query, description = "Only this status (`pending`, `running`, `delivered`, `done`, `suppressed`, `capped`, `dead`)"),
        ("entity_key" = Option<String>, Query, description = "Only this entity key")),
    responses((status = 200, description = "A page of deliveries (sort: id)", body = DeliveryPage)))]
async fn list_deliveries(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    let p = q.check(&DELIVERIES, &[])?;
    let status = status_of(&p)?;
    ledger_page(&s, &p, status)
}

/// Dead letters: deliveries that failed for good (status `dead`), a page at a time by id. Replay them with
/// `POST /deliveries/replay`.
#[utoipa::path(get, path = "/dead-letters", tag = "workflows", security(("bearer" = [])),
    params(ListQuery,
        ("workflow" = Option<String>, Query, description = "Only this workflow"),
        ("entity_key" = Option<String>, Query, description = "Only this entity key")),
    responses((status = 200, description = "A page of dead deliveries (sort: id)", body = DeliveryPage)))]
async fn dead_letters(State(s): State<AppState>, _c: Caller, q: RawList) -> ApiResult<Response> {
    const DEAD: Listing =
        Listing { sorts: DELIVERIES.sorts, filters: &[("workflow", "/workflow"), ("entity_key", "/entity_key")] };
    let p = q.check(&DEAD, &[])?;
    ledger_page(&s, &p, Some(Status::Dead))
}

/// The body of `POST /deliveries/replay`: which dead letters to send again.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// These delivery ids (only the dead ones among them are replayed).
    ids: Option<Vec<i64>>,
    /// Every dead delivery of this workflow.
    workflow: Option<String>,
}

/// Sends dead letters again: the dead rows among `ids` and/or of `workflow` become pending, due now, with a
/// fresh attempt count and the same idempotency key. Name at least one of them.
#[utoipa::path(post, path = "/deliveries/replay", tag = "workflows", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response to this key")),
    request_body = ReplayRequest,
    responses((status = 200, description = "`{replayed}`: how many rows were made pending", body = Replayed),
        (status = 422, description = "Neither ids nor workflow, or too many ids", body = Problem, content_type = "application/problem+json")))]
async fn replay_deliveries(State(s): State<AppState>, c: Caller, Text(body): Text) -> ApiResult<Json<Value>> {
    c.require_write()?;
    let req: ReplayRequest = optional_body(&body, "replay")?;
    if req.ids.is_none() && req.workflow.is_none() {
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            "name the dead letters to replay: `ids`, `workflow` or both",
        );
        p.path = Some("replay".into());
        return Err(p);
    }
    let ws = s.workspace();
    if let Some(w) = &req.workflow {
        ws.workflow(w)?;
    }
    let detail =
        format!("ids={} workflow={}", req.ids.as_ref().map_or(0, Vec::len), req.workflow.as_deref().unwrap_or("*"));
    let filter = DeliveryFilter { workflow: req.workflow, ids: req.ids, ..Default::default() };
    let n = ws.replay(&filter)?;
    ws.audit(&c.name, "deliveries.replay", "deliveries", Some(&format!("{detail} replayed={n}")))?;
    Ok(Json(json!({"replayed": n})))
}
