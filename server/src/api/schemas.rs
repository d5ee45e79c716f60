//! The typed schemas of the OpenAPI document.
//!
//! Definition bodies (entity, attribute, source, segment, template, workflow, schedule, and the stored forms the
//! API answers with) are described by the JSON Schemas that core's request model derives with `schemars` — the
//! same schemas as the project file's (`core/src/project/schema.rs`), not a second, hand-written copy. OpenAPI
//! 3.1 is JSON Schema 2020-12, so they go into `components.schemas` as they are; handlers name them through the
//! marker types declared here (`body = EntitySpecDoc`), and [`document`] puts the generated schemas in place.
//!
//! Pages of a list (`{items, sort, total, next_cursor, next}`) get one schema per item type ([`page_schemas!`]).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};

/// What a marker type's `PartialSchema::schema` answers until [`document`] replaces it with the generated schema.
fn placeholder() -> RefOr<Schema> {
    ObjectBuilder::new().description(Some("generated from core's request model")).into()
}

/// A marker type for `utoipa` (`body = X`): named `$name` in `components.schemas`, where [`document`] puts the
/// generated schema in place of the placeholder.
macro_rules! marker {
    ($(#[$m:meta])* $doc:ident, $name:expr) => {
        $(#[$m])*
        pub(super) struct $doc;
        impl utoipa::PartialSchema for $doc {
            fn schema() -> RefOr<Schema> {
                placeholder()
            }
        }
        impl utoipa::ToSchema for $doc {
            fn name() -> Cow<'static, str> {
                $name
            }
        }
    };
}

/// Declares marker types for `utoipa` (`body = X`) whose schemas are core types' `schemars` schemas, and
/// [`core_definitions`] that generates them (with everything they refer to) for `components.schemas`.
macro_rules! core_schemas {
    ($($(#[$m:meta])* $doc:ident => $ty:ty;)*) => {
        $(marker!($(#[$m])* $doc, <$ty as schemars::JsonSchema>::schema_name());)*

        /// The schemas of core's types named by the marker types, and every schema they refer to, by name
        /// (references point into `#/components/schemas/`).
        pub(super) fn core_definitions() -> Map<String, Value> {
            let mut generator = SchemaSettings::draft2020_12()
                .with(|s| {
                    s.definitions_path = "/components/schemas".into();
                    s.meta_schema = None;
                })
                .into_generator();
            let mut top = Map::new();
            $(
                // A struct comes back as a `$ref` with its schema among the definitions; anything else inline.
                let sub = generator.subschema_for::<$ty>();
                let name = <$ty as schemars::JsonSchema>::schema_name().into_owned();
                if sub.get("$ref").is_none() {
                    top.insert(name, sub.to_value());
                }
            )*
            let mut defs = generator.take_definitions(true);
            defs.extend(top);
            type_plugin_configs(&mut defs);
            add_name_optional(&mut defs);
            defs
        }
    };
}

core_schemas! {
    /// An entity spec (`segkit::spec::EntitySpec`): request and stored form of an entity.
    EntitySpecDoc => segkit::spec::EntitySpec;
    /// One attribute's options (`segkit::spec::AttributeOptions`).
    AttributeDoc => segkit::spec::AttributeOptions;
    /// A named source's definition (`segkit::SourceDefinition`).
    SourceDefinitionDoc => segkit::SourceDefinition;
    /// A stored source with its sync state (`segkit::SourceInfo`).
    SourceInfoDoc => segkit::SourceInfo;
    /// A segment spec (`segkit::spec::SegmentSpec`); stored segments answer in this form too.
    SegmentSpecDoc => segkit::spec::SegmentSpec;
    /// A message template (`segkit::spec::TemplateSpec`).
    TemplateSpecDoc => segkit::spec::TemplateSpec;
    /// A workflow (`segkit::spec::WorkflowSpec`).
    WorkflowSpecDoc => segkit::spec::WorkflowSpec;
    /// A schedule (`segkit::spec::ScheduleSpec`).
    ScheduleSpecDoc => segkit::spec::ScheduleSpec;
    /// A stored schedule with its state (`segkit::workflow::ScheduleInfo`).
    ScheduleInfoDoc => segkit::workflow::ScheduleInfo;
    /// What an ingest or sync did (`segkit::IngestReport`).
    IngestReportDoc => segkit::IngestReport;
    /// One recorded sync or ingest (`segkit::SyncRecord`).
    SyncRecordDoc => segkit::SyncRecord;
    /// A row of the delivery ledger (`segkit::workflow::LedgerRow`).
    LedgerRowDoc => segkit::workflow::LedgerRow;
    /// One row of a workflow dry run (`segkit::workflow::DryRunRow`).
    DryRunRowDoc => segkit::workflow::DryRunRow;
    /// One start of a workflow and how its rows stand (`segkit::workflow::WorkflowRun`).
    WorkflowRunDoc => segkit::workflow::WorkflowRun;
    /// Why one entity is or is not a member (`segkit::Explanation`).
    ExplanationDoc => segkit::Explanation;
    /// A stored API key, never its secret (`segkit::auth::ApiKey`).
    ApiKeyDoc => segkit::auth::ApiKey;
    /// A role: `viewer`, `editor` or `admin` (`segkit::auth::Role`).
    RoleDoc => segkit::auth::Role;
    /// One row of the audit log (`segkit::auth::AuditEntry`).
    AuditEntryDoc => segkit::auth::AuditEntry;
    /// The receipt of a batch of events, once committed (`segkit::appender::AppendReceipt`).
    AppendReceiptDoc => segkit::appender::AppendReceipt;
}

/// Types what core's request model leaves as any JSON because core does not know the plugins: a source's
/// `config` (`SourceDefinition`) becomes the connectors' [`config_schema`](segkit_connectors::config_schema) and
/// a workflow step's `action` (`StepSpec`) a registered action's name or the actions'
/// [`config_schema`](segkit_actions::config_schema) — each a `oneOf` discriminated by `type`, with an open
/// alternative for custom types. `defs` are schemas by name (`$defs` of the project file's schema, or
/// `components.schemas`); the plugin schemas are self-contained, so they fit either.
pub(super) fn type_plugin_configs(defs: &mut Map<String, Value>) {
    let with_description = |mut schema: Value, old: &Value| {
        if let (Some(d), Some(m)) = (old.get("description"), schema.as_object_mut()) {
            m.insert("description".into(), d.clone());
        }
        schema
    };
    if let Some(config) = defs.get_mut("SourceDefinition").and_then(|d| d.pointer_mut("/properties/config")) {
        *config = with_description(segkit_connectors::config_schema(), config);
    }
    let Some(Value::Array(steps)) = defs.get_mut("StepSpec").and_then(|d| d.get_mut("oneOf")) else { return };
    for step in steps.iter_mut().filter(|s| s.pointer("/properties/type/const") == Some(&Value::from("action"))) {
        let Some(action) = step.pointer_mut("/properties/action") else { continue };
        let mut choices = vec![serde_json::json!({
            "type": "string",
            "minLength": 1,
            "description": "The name of an action registered with the workspace",
        })];
        if let Some(Value::Array(configs)) = segkit_actions::config_schema().get_mut("oneOf") {
            choices.append(configs);
        }
        *action = with_description(serde_json::json!({ "oneOf": choices }), action);
    }
}

/// Declares marker types for a definition body whose `name` may be left out (PUT, where the path names it, and
/// the unsaved rule of `POST /count`): core's schema of `$base` without `name` among the required properties.
macro_rules! name_optional {
    ($($(#[$m:meta])* $doc:ident => $base:ty, $name:literal;)*) => {
        $(marker!($(#[$m])* $doc, Cow::Borrowed($name));)*

        /// Adds the name-optional variants to `defs` (which holds their bases).
        fn add_name_optional(defs: &mut Map<String, Value>) {
            $(
                let base = <$base as schemars::JsonSchema>::schema_name();
                if let Some(mut v) = defs.get(base.as_ref()).cloned() {
                    if let Some(req) = v.get_mut("required").and_then(Value::as_array_mut) {
                        req.retain(|r| r != "name");
                    }
                    defs.insert($name.into(), v);
                }
            )*
        }
    };
}

name_optional! {
    /// A segment spec whose `name` may be left out.
    SegmentSpecNamelessDoc => segkit::spec::SegmentSpec, "SegmentSpecNameOptional";
    /// A source definition whose `name` may be left out.
    SourceDefinitionNamelessDoc => segkit::SourceDefinition, "SourceDefinitionNameOptional";
    /// A template whose `name` may be left out.
    TemplateSpecNamelessDoc => segkit::spec::TemplateSpec, "TemplateSpecNameOptional";
    /// A workflow whose `name` may be left out.
    WorkflowSpecNamelessDoc => segkit::spec::WorkflowSpec, "WorkflowSpecNameOptional";
    /// A schedule whose `name` may be left out.
    ScheduleSpecNamelessDoc => segkit::spec::ScheduleSpec, "ScheduleSpecNameOptional";
}

/// A row of entity data or of a system table: its columns are the entity's attributes (or the table's), known
/// only at run time, so any JSON object.
pub(super) struct Row;

impl utoipa::PartialSchema for Row {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("A row: one property per column (attribute), known at run time"))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Row {}

/// A page of members as CSV: a header row with the key (and `variant` of a split segment), one row per member.
pub(super) struct MembersCsv;

impl utoipa::PartialSchema for MembersCsv {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some("CSV (RFC 4180) with a header row: the key, and `variant` for a split segment"))
            .into()
    }
}

impl utoipa::ToSchema for MembersCsv {}

/// A page of members as an Arrow IPC stream (binary): the members' schema, then record batches.
pub(super) struct MembersArrow;

impl utoipa::PartialSchema for MembersArrow {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .content_media_type("application/vnd.apache.arrow.stream")
            .description(Some("An Arrow IPC stream: the members' schema, then record batches"))
            .into()
    }
}

impl utoipa::ToSchema for MembersArrow {}

/// `{"type": [t, "null"]}`.
fn nullable(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([t, Type::Null]))
}

/// The schema of a page of `item`s (see `list.rs`: `total` is left out on lists paged by id; `next_cursor` and
/// `next` are null on the last page).
pub(super) fn page_schema(item: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(item).description(Some("The items of this page")))
        .required("items")
        .property(
            "sort",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The sort applied (`name`, `-created_at`)")),
        )
        .required("sort")
        .property(
            "total",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .description(Some("How many items match (absent on lists paged by id)")),
        )
        .property(
            "next_cursor",
            nullable(Type::String).description(Some("The cursor of the next page (null on the last page)")),
        )
        .property("next", nullable(Type::String).description(Some("The next page's URL (null on the last page)")))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// Declares page types: `Page => Item` is a `{items: [Item], …}` page schema named `Page`.
macro_rules! page_schemas {
    ($($(#[$m:meta])* $page:ident => $item:ty;)*) => {
        $(
            $(#[$m])*
            pub(super) struct $page;
            impl utoipa::PartialSchema for $page {
                fn schema() -> RefOr<Schema> {
                    page_schema(Ref::from_schema_name(<$item as utoipa::ToSchema>::name()).into())
                }
            }
            impl utoipa::ToSchema for $page {
                fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                    schemas.push((
                        <$item as utoipa::ToSchema>::name().into_owned(),
                        <$item as utoipa::PartialSchema>::schema(),
                    ));
                    <$item as utoipa::ToSchema>::schemas(schemas);
                }
            }
        )*
    };
}

page_schemas! {
    /// A page of entity specs.
    EntityPage => EntitySpecDoc;
    /// A page of stored sources.
    SourcePage => SourceInfoDoc;
    /// A page of segment specs.
    SegmentPage => SegmentSpecDoc;
    /// A page of templates.
    TemplatePage => TemplateSpecDoc;
    /// A page of workflows.
    WorkflowPage => WorkflowSpecDoc;
    /// A page of stored schedules.
    SchedulePage => ScheduleInfoDoc;
    /// A page of syncs.
    SyncPage => SyncRecordDoc;
    /// A page of delivery ledger rows.
    DeliveryPage => LedgerRowDoc;
    /// A page of workflow runs.
    WorkflowRunPage => WorkflowRunDoc;
    /// A page of rows (columns known at run time: quarantined rows, membership changes).
    RowPage => Row;
    /// A page of segment runs.
    SegmentRunPage => SegmentRun;
    /// A page of API keys.
    ApiKeyPage => ApiKeyDoc;
    /// A page of audit rows.
    AuditPage => AuditEntryDoc;
}

// The answers the API builds itself (small JSON objects around core's values). Documentation only: the handlers
// build them with `json!`, and Schemathesis checks every answer against these schemas.

/// The answer of `GET /health`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Health {
    /// `ok`.
    status: String,
    /// The server's version.
    version: String,
    /// How many entities the workspace defines.
    entities: u64,
}

/// The caller (`GET /whoami`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct WhoAmI {
    /// The API key's id.
    key_id: String,
    /// The key holder's name.
    name: String,
    /// The key's role.
    #[schema(value_type = RoleDoc)]
    role: String,
}

/// A session token (`POST /auth/token`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SessionToken {
    /// The token (an HS256 JWT) to send as `Authorization: Bearer <token>`.
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds until it expires.
    expires_in: u64,
    /// The key's role.
    #[schema(value_type = RoleDoc)]
    role: String,
    /// The key's name.
    name: String,
}

/// A key just created: the stored key and its secret (shown this once).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct NewKey {
    /// Public id (`key_…`).
    id: String,
    /// Who holds it.
    name: String,
    /// What it may do.
    #[schema(value_type = RoleDoc)]
    role: String,
    /// When it was created (RFC 3339).
    created_at: String,
    /// When it was revoked (null).
    revoked_at: Option<String>,
    /// The secret (`sk_…`), not stored: shown only in this answer.
    secret: String,
}

/// The answer of `POST /segments/{name}/evaluate`: the new run.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct EvaluateAnswer {
    /// The segment.
    segment: String,
    /// The run number.
    run: i64,
    /// Members.
    count: u64,
    /// Keys that entered.
    entered: u64,
    /// Keys that exited.
    exited: u64,
    /// When it started (RFC 3339).
    started_at: String,
    /// How long it took.
    duration_ms: f64,
    /// The entity snapshot evaluated.
    snapshot: Option<i64>,
}

/// One run of a segment (`GET /segments/{name}/runs`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SegmentRun {
    /// The segment.
    segment: String,
    /// The run number, from 1.
    run: i64,
    /// When it started (RFC 3339).
    started_at: String,
    /// How long it took.
    duration_ms: f64,
    /// Members.
    member_count: u64,
    /// Keys that entered.
    entered: u64,
    /// Keys that exited.
    exited: u64,
    /// The entity snapshot evaluated.
    snapshot: i64,
}

/// How many members a saved segment has now.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SegmentCount {
    /// The segment.
    segment: String,
    /// Members.
    count: u64,
}

/// How many members an unsaved rule matches.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct RuleCount {
    /// Members.
    count: u64,
}

/// A page of a segment's members as JSON.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct MembersPage {
    /// The segment.
    segment: String,
    /// The run read.
    run: i64,
    /// The cursor of the next page (null on the last page).
    next_cursor: Option<String>,
    /// Members: the key (and the variant of a split segment).
    items: Vec<Row>,
}

/// Up to `n` members with every attribute.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Preview {
    /// The segment.
    segment: String,
    /// Whether `pii` values are masked (`***`).
    pii_masked: bool,
    /// The rows.
    rows: Vec<Row>,
}

/// A template rendered for one entity.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Rendered {
    /// The template.
    template: String,
    /// The entity's key.
    key: String,
    /// Whether `pii` values are masked (`***`).
    pii_masked: bool,
    /// The rendered parts by name (`subject`, `text`, …).
    parts: std::collections::BTreeMap<String, String>,
}

/// Who would receive what if a workflow were triggered now.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct DryRun {
    /// The workflow.
    workflow: String,
    /// Whether `pii` values in the content are masked (`***`).
    pii_masked: bool,
    /// Per entity: the step, channel, status and content.
    rows: Vec<DryRunRowDoc>,
}

/// How many deliveries a trigger queued.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Triggered {
    /// The workflow.
    workflow: String,
    /// Ledger rows queued.
    queued: u64,
}

/// How many dead letters were made pending again.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Replayed {
    /// Rows made pending.
    replayed: u64,
}

/// The document `doc` (as utoipa built it) with the generated schemas in `components.schemas`: every marker
/// type's placeholder replaced by core's schema.
pub(super) fn document(doc: &utoipa::openapi::OpenApi) -> Value {
    let mut v = serde_json::to_value(doc).unwrap_or(Value::Null);
    let Some(root) = v.as_object_mut() else { return v };
    let components = root.entry("components").or_insert_with(|| Value::Object(Map::new()));
    if let Some(c) = components.as_object_mut() {
        let schemas = c.entry("schemas").or_insert_with(|| Value::Object(Map::new()));
        if let Some(s) = schemas.as_object_mut() {
            s.extend(core_definitions());
        }
    }
    v
}

/// The JSON body of `POST /events`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct EventBatch {
    /// The event entity to append to.
    entity: String,
    /// The events: one object per event, its properties the entity's attributes.
    events: Vec<Row>,
}
