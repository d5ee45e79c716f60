//! Config-as-code: project files loaded from disk, planned and applied against a real workspace (SQLite catalog,
//! Parquet data), exported back; atomicity, destructive changes, pruning, errors with file and field path, the
//! shipped JSON Schema and the documented example.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use async_trait::async_trait;
use chrono::TimeZone;
use segkit::project::{json_schema, Action as PlanAction, ApplyOptions, ObjectKind, Plan};
use segkit::sources::SourceRegistry;
use segkit::spec::from_value;
use segkit::{Action, Delivery, FixedClock, IngestOptions, Outcome, Project, Workspace, WorkspaceOptions};
use serde_json::json;

#[derive(Debug)]
struct NullAction;

#[async_trait]
impl Action for NullAction {
    fn kind(&self) -> &str {
        "email"
    }
    async fn execute(&self, _d: &Delivery) -> Outcome {
        Outcome::Delivered { receipt: None }
    }
}

/// A source type whose config carries a secret reference: `{type: "vault_parts", dir, fields, api_key}`; it reads
/// the real `testing_parts` files and refuses an `api_key` that is not an `env:` reference.
fn registry() -> SourceRegistry {
    let mut r = SourceRegistry::new();
    segkit::testing::register_sources(&mut r);
    r.register("vault_parts", |config| {
        let key = config.get("api_key").and_then(|k| k.as_str()).unwrap_or_default();
        if !key.starts_with("env:") {
            return Err(segkit::Error::Definition { path: "source.api_key".into(), message: "need env:".into() });
        }
        let dir = config.get("dir").and_then(|d| d.as_str()).unwrap_or_default();
        let fields: Vec<&str> = config["fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        Ok(Arc::new(segkit::testing::PartsSource::new(dir, &fields, std::time::Duration::ZERO)) as _)
    });
    r
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::open_with(dir, WorkspaceOptions::default().source_factory(registry())).await.unwrap();
    ws.set_time_zone("Europe/Berlin").unwrap();
    ws.set_clock(Arc::new(FixedClock(chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap())));
    ws.register_action("email", Arc::new(NullAction)).unwrap();
    ws
}

fn users(ids: &[i64], countries: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("country", Arc::new(StringArray::from(countries.to_vec())) as ArrayRef),
    ])
    .unwrap()
}

/// The TOML block after `<!-- example-project -->` in docs/project.md.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/project.md")).unwrap();
    let rest = doc.split("<!-- example-project -->").nth(1).expect("docs/project.md marks its example");
    let rest = rest.split("```toml\n").nth(1).unwrap();
    rest.split("\n```").next().unwrap().to_string()
}

fn actions(plan: &Plan) -> Vec<(ObjectKind, String, PlanAction)> {
    plan.changes.iter().map(|c| (c.kind, c.name.clone(), c.action)).collect()
}

#[tokio::test]
async fn documented_example_applies_then_plans_unchanged_and_exports_to_a_noop() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    let project = Project::from_toml_str(&documented_example()).unwrap();
    let plan = ws.plan(&project).await.unwrap();
    assert!(plan.changes.iter().all(|c| c.action == PlanAction::Create), "{plan}");
    assert_eq!(plan.changes.len(), 8, "{plan}");
    // A plan changes nothing.
    assert!(ws.entities().unwrap().is_empty());
    let applied = ws.apply(&project, ApplyOptions::default()).await.unwrap();
    assert!(applied.applied && !applied.blocked);
    assert_eq!(actions(&applied), actions(&plan));
    let user = ws.entity("user").unwrap();
    let names: Vec<&str> = user.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["user_id", "email", "country", "tags", "timezone"], "attribute order is the file's");
    assert!(user.attributes[1].pii && user.attributes[2].indexed);
    assert!(ws.is_static_segment("beta_testers").unwrap());
    assert_eq!(ws.schedule_info("nightly_vip").unwrap().spec.timezone.as_deref(), Some("Europe/Berlin"));
    // The data works with what was applied.
    ws.ingest_batches("user", vec![users(&[1, 2], &["CN", "DE"])], IngestOptions::default()).await.unwrap();
    assert_eq!(ws.evaluate("vip").await.unwrap().count, 0);

    let again = ws.plan(&project).await.unwrap();
    assert!(again.is_noop(), "{again}");
    let export = ws.export().unwrap();
    let toml_text = export.to_toml().unwrap();
    let replan = ws.plan(&Project::from_toml_str(&toml_text).unwrap()).await.unwrap();
    assert!(replan.is_noop(), "{replan}\n{toml_text}");
    assert_eq!(replan.changes.len(), 8);
    let yaml_text = export.to_yaml().unwrap();
    assert!(ws.plan(&Project::from_yaml_str(&yaml_text).unwrap()).await.unwrap().is_noop(), "{yaml_text}");
    // Display for people, Serialize for machines.
    assert!(replan.to_string().ends_with("0 to create, 0 to update, 0 to delete, 8 unchanged"), "{replan}");
    let j = serde_json::to_value(&applied).unwrap();
    assert_eq!(j["changes"][0]["action"], "create");
    assert_eq!(j["changes"][0]["kind"], "entity");
}

#[tokio::test]
async fn export_of_a_full_workspace_applies_as_a_noop_and_rebuilds_it_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let ws = workspace(&dir.path().join("a")).await;
    ws.define_entity(
        from_value::<segkit::spec::EntitySpec>(json!({
            "name": "user", "key": "user_id", "description": "people",
            "attributes": [
                {"name": "user_id", "type": "int64"},
                {"name": "email", "type": "string", "pii": true, "description": "contact"},
                {"name": "country", "type": "string", "indexed": true},
                {"name": "note", "type": "string", "filterable": false},
                {"name": "plan", "type": "string", "nullable": false},
                {"name": "timezone", "type": "string"},
                {"name": "seen_at", "type": "timestamp"}
            ]
        }))
        .unwrap()
        .into_entity()
        .unwrap(),
    )
    .await
    .unwrap();
    ws.define_entity(
        from_value::<segkit::spec::EntitySpec>(json!({
            "name": "purchase", "kind": "event", "timestamp": "at",
            "attributes": [{"name": "buyer", "type": "int64"}, {"name": "at", "type": "timestamp"},
                           {"name": "amount", "type": "double"}],
            "links": [{"attribute": "buyer", "entity": "user", "target": "user_id"}]
        }))
        .unwrap()
        .into_entity()
        .unwrap(),
    )
    .await
    .unwrap();
    let source = json!({"name": "crm", "entity": "user", "mode": "upsert",
        "config": {"type": "vault_parts", "dir": parts.to_str().unwrap(), "fields": ["id", "cc"], "api_key": "env:CRM_KEY"},
        "mapping": {"user_id": "id", "country": {"source": "cc", "transforms": ["trim", "upper"]}, "plan": {"constant": "free"}}});
    ws.define_source(serde_json::from_value(source).unwrap()).await.unwrap();
    ws.define_segment(
        from_value::<segkit::spec::SegmentSpec>(json!({"name": "cn", "entity": "user",
            "rule": {"combinator": "and", "rules": [{"field": "country", "operator": "=", "value": "CN"}]},
            "split": {"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}]},
            "keep_runs": 3, "description": "China"}))
        .unwrap()
        .into_definition()
        .unwrap(),
    )
    .await
    .unwrap();
    ws.define_segment(
        from_value::<segkit::spec::SegmentSpec>(json!({"name": "cn_buyers", "entity": "user",
            "rule": {"and": [{"in_segment": "cn"}, {"performed": {"event": "purchase", "having": [{"count": {"ge": 1}}]}}]}}))
        .unwrap()
        .into_definition()
        .unwrap(),
    )
    .await
    .unwrap();
    ws.ingest_batches("user", vec![users(&[1, 2, 3], &["CN", "US", "CN"])], IngestOptions::default())
        .await
        .unwrap_err(); // `plan` is required (non-nullable) and missing: refused, nothing written
    let keys = RecordBatch::try_from_iter([("user_id", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef)]).unwrap();
    ws.define_static_segment_batches("testers", "user", vec![keys]).await.unwrap();
    ws.define_template(
        from_value(json!({"name": "hello", "channel": "email", "entity": "user",
        "parts": {"subject": "Hi", "html": "<b>{{ entity.country }}</b>"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    ws.define_workflow(
        from_value(json!({"name": "onboard", "trigger": {"type": "entered", "segment": "cn"},
        "steps": [
            {"type": "wait", "name": "morning", "until": "09:00", "timezone_attribute": "timezone"},
            {"type": "branch", "name": "is_cn", "rule": {"field": "country", "operator": "=", "value": "CN"},
             "then": "mail", "else": "done"},
            {"type": "action", "name": "mail", "action": "email", "template": "hello", "rate_per_second": 5.0},
            {"type": "exit", "name": "done"}],
        "policies": {"reentry": {"type": "cooldown", "seconds": 86400}, "max_attempts": 3,
                     "frequency_caps": [{"channel": "email", "max": 2, "seconds": 3600}]}}))
        .unwrap(),
    )
    .await
    .unwrap();
    ws.define_workflow(
        from_value(json!({"name": "weekly", "trigger": {"type": "schedule", "segment": "cn"},
        "steps": [{"type": "action", "name": "mail", "action": "email"}]}))
        .unwrap(),
    )
    .await
    .unwrap();
    ws.schedule(
        from_value(json!({"name": "sync_crm", "cron": "0 */15 * * * *", "job": {"type": "sync", "source": "crm"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    ws.schedule(
        from_value(json!({"name": "weekly_mail", "cron": "0 9 * * 1", "timezone": "America/New_York",
        "job": {"type": "workflow", "workflow": "weekly"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let next_due = ws.schedule_info("sync_crm").unwrap();

    let export = ws.export().unwrap();
    let text = export.to_toml().unwrap();
    assert!(text.contains("api_key = \"env:CRM_KEY\""), "{text}");
    assert!(!text.contains("[static_segments.testers.keys") && text.contains("[static_segments.testers]"), "{text}");
    let path = dir.path().join("exported.toml");
    std::fs::write(&path, &text).unwrap();
    let project = Project::from_path(&path).unwrap();
    assert_eq!(project, Project::from_path(&path).unwrap());
    let plan = ws.apply(&project, ApplyOptions::default()).await.unwrap();
    assert!(plan.is_noop(), "{plan}\n{text}");
    assert_eq!(plan.changes.len(), 11, "{plan}");
    // Nothing was rewritten: the schedule keeps its state, the static list its keys.
    assert_eq!(ws.schedule_info("sync_crm").unwrap(), next_due);
    assert_eq!(ws.static_keys("testers").await.unwrap().num_rows(), 2);
    assert_eq!(ws.static_list_versions("testers").unwrap().len(), 1);

    // The export rebuilds the definitions in an empty workspace (the static list empty: its keys are data).
    let other = workspace(&dir.path().join("b")).await;
    let created = other.apply(&project, ApplyOptions::default()).await.unwrap();
    assert_eq!(created.count(PlanAction::Create), 11, "{created}");
    assert_eq!(other.static_keys("testers").await.unwrap().num_rows(), 0);
    let text_b = other.export().unwrap().to_toml().unwrap();
    assert_eq!(text_b, text);
    assert_eq!(other.entity("purchase").unwrap(), ws.entity("purchase").unwrap());
}

#[tokio::test]
async fn a_bad_object_anywhere_leaves_the_catalog_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(&dir.path().join("ws")).await;
    let base = r#"
[entities.user]
key = "user_id"
attributes = { user_id = "int64", country = "string" }
"#;
    ws.apply(&Project::from_toml_str(base).unwrap(), ApplyOptions::default()).await.unwrap();
    ws.ingest_batches("user", vec![users(&[1, 2], &["CN", "US"])], IngestOptions::default()).await.unwrap();
    let before = ws.export().unwrap().to_toml().unwrap();
    let project_dir = dir.path().join("project");
    std::fs::create_dir_all(&project_dir).unwrap();
    std::fs::write(
        project_dir.join("entities.toml"),
        r#"
[entities.user]
key = "user_id"
attributes = { user_id = "int64", country = "string", age = "int32" }

[entities.order]
key = "order_id"
attributes = { order_id = "int64" }
"#,
    )
    .unwrap();
    std::fs::write(
        project_dir.join("segments.yaml"),
        r#"
segments:
  a_cn:
    entity: user
    rule: {attribute: country, op: eq, value: CN}
  b_bad:
    entity: user
    rule: {attribute: agee, op: ge, value: 18}
  c_adults:
    entity: user
    rule: {attribute: age, op: ge, value: 18}
"#,
    )
    .unwrap();
    let project = Project::from_path(&project_dir).unwrap();
    for e in [ws.plan(&project).await.unwrap_err(), ws.apply(&project, ApplyOptions::default()).await.unwrap_err()] {
        let msg = e.to_string();
        assert!(msg.contains("segments.yaml: ") && msg.contains("agee") && msg.contains("age"), "{msg}");
    }
    // Neither the attribute, nor the new entity, nor the first segment was kept.
    assert_eq!(ws.export().unwrap().to_toml().unwrap(), before);
    assert!(ws.entity("order").is_err() && ws.segment("a_cn").is_err());
    assert_eq!(ws.snapshot("user").unwrap().row_count, 2);
    // The query session matches the catalog again: no table for the rolled-back entity, the old schema for user.
    assert!(ws.sql("SELECT * FROM \"order\"").await.is_err());
    assert!(ws.sql("SELECT age FROM \"user\"").await.is_err());
    assert_eq!(ws.sql("SELECT count(*) FROM \"user\"").await.unwrap()[0].num_rows(), 1);
    // Fixed, it applies whole.
    std::fs::write(
        project_dir.join("segments.yaml"),
        "segments:\n  a_cn: {entity: user, rule: {attribute: country, op: eq, value: CN}}\n",
    )
    .unwrap();
    let plan = ws.apply(&Project::from_path(&project_dir).unwrap(), ApplyOptions::default()).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            (ObjectKind::Entity, "user".to_string(), PlanAction::Update),
            (ObjectKind::Entity, "order".to_string(), PlanAction::Create),
            (ObjectKind::Segment, "a_cn".to_string(), PlanAction::Create),
        ]
    );
    assert_eq!(plan.changes[0].detail, "adds attribute age");
    assert_eq!(ws.evaluate("a_cn").await.unwrap().count, 1);
}

#[tokio::test]
async fn destructive_entity_changes_need_allow_destructive() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    let v1 = r#"
[entities.user]
key = "user_id"
attributes = { user_id = "int64", country = "string" }
[entities.empty]
key = "id"
attributes = { id = "int64", x = "string" }
"#;
    ws.apply(&Project::from_toml_str(v1).unwrap(), ApplyOptions::default()).await.unwrap();
    ws.ingest_batches("user", vec![users(&[1, 2, 3], &["CN", "US", "DE"])], IngestOptions::default()).await.unwrap();
    // Drop `country` from user (holds data) and `x` from empty (no data).
    let v2 = Project::from_toml_str(
        r#"
[entities.user]
key = "user_id"
attributes = { user_id = "int64" }
[entities.empty]
key = "id"
attributes = { id = "int64" }
"#,
    )
    .unwrap();
    let plan = ws.plan(&v2).await.unwrap();
    assert!(plan.blocked, "{plan}");
    let d: Vec<_> = plan.destructive().map(|c| c.name.as_str()).collect();
    assert_eq!(d, ["user"], "{plan}");
    assert!(plan.changes[0].detail.contains("dropping its 3 rows"), "{plan}");
    assert!(plan.to_string().contains("~ entity user !destructive"), "{plan}");
    let e = ws.apply(&v2, ApplyOptions::default()).await.unwrap_err();
    assert!(matches!(e, segkit::Error::IncompatibleChange { .. }), "{e:?}");
    assert!(e.to_string().contains("allow_destructive") && e.to_string().contains("entity user"), "{e}");
    // Refused whole: the non-destructive change to `empty` was not applied either; the data is intact.
    assert_eq!(ws.entity("empty").unwrap().attributes.len(), 2);
    assert_eq!(ws.entity("user").unwrap().attributes.len(), 2);
    assert_eq!(ws.snapshot("user").unwrap().row_count, 3);
    assert_eq!(ws.sql("SELECT country FROM \"user\"").await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 3);

    let options = ApplyOptions { allow_destructive: true, prune: false };
    let plan = ws.apply(&v2, options).await.unwrap();
    assert!(plan.applied && !plan.blocked, "{plan}");
    assert_eq!(ws.entity("user").unwrap().attributes.len(), 1);
    assert_eq!(ws.entity("empty").unwrap().attributes.len(), 1);
    assert_eq!(ws.snapshot("user").unwrap().row_count, 0);
    assert!(ws.sql("SELECT country FROM \"user\"").await.is_err());
    assert!(ws.plan(&v2).await.unwrap().is_noop());

    // Deleting an entity that holds data (prune) is destructive too.
    ws.ingest_batches(
        "user",
        vec![RecordBatch::try_from_iter([("user_id", Arc::new(Int64Array::from(vec![5])) as ArrayRef)]).unwrap()],
        IngestOptions::default(),
    )
    .await
    .unwrap();
    let only_empty =
        Project::from_toml_str("[entities.empty]\nkey = \"id\"\nattributes = { id = \"int64\" }\n").unwrap();
    let prune = ApplyOptions { allow_destructive: false, prune: true };
    let e = ws.apply(&only_empty, prune).await.unwrap_err();
    assert!(matches!(e, segkit::Error::IncompatibleChange { .. }), "{e:?}");
    assert!(ws.entity("user").is_ok());
    let plan = ws.apply(&only_empty, ApplyOptions { allow_destructive: true, prune: true }).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            (ObjectKind::Entity, "user".to_string(), PlanAction::Delete),
            (ObjectKind::Entity, "empty".to_string(), PlanAction::Unchanged),
        ]
    );
    assert!(ws.entity("user").is_err());
    assert!(ws.sql("SELECT * FROM \"user\"").await.is_err());
}

#[tokio::test]
async fn objects_the_project_omits_are_kept_unless_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    let full = Project::from_toml_str(&documented_example()).unwrap();
    ws.apply(&full, ApplyOptions::default()).await.unwrap();
    let small = Project::from_toml_str(
        r#"
[entities.user]
key = "user_id"
description = "Customers"
[entities.user.attributes]
user_id = "int64"
email = { type = "string", pii = true }
country = { type = "string", indexed = true }
tags = "list<string>"
timezone = "string"
"#,
    )
    .unwrap();
    let plan = ws.apply(&small, ApplyOptions::default()).await.unwrap();
    assert_eq!(actions(&plan), [(ObjectKind::Entity, "user".to_string(), PlanAction::Unchanged)]);
    assert_eq!(ws.segments().unwrap().len(), 3);
    let plan = ws.apply(&small, ApplyOptions { allow_destructive: false, prune: true }).await.unwrap();
    let deleted: Vec<_> =
        plan.changes.iter().filter(|c| c.action == PlanAction::Delete).map(|c| (c.kind, c.name.as_str())).collect();
    assert_eq!(
        deleted,
        [
            (ObjectKind::Schedule, "nightly_vip"),
            (ObjectKind::Workflow, "welcome_vip"),
            (ObjectKind::Template, "welcome"),
            (ObjectKind::StaticSegment, "beta_testers"),
            (ObjectKind::Segment, "big_spenders"),
            (ObjectKind::Segment, "vip"),
            (ObjectKind::Entity, "purchase"),
        ],
        "{plan}"
    );
    assert!(ws.segments().unwrap().is_empty() && ws.workflows().unwrap().is_empty());
    assert!(ws.schedules().unwrap().is_empty() && ws.templates().unwrap().is_empty());
    assert_eq!(ws.entities().unwrap().len(), 1);
}

#[tokio::test]
async fn errors_name_the_file_and_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("project");
    std::fs::create_dir_all(&p).unwrap();
    let file = |name: &str, text: &str| std::fs::write(p.join(name), text).unwrap();
    let err = || Project::from_path(&p).unwrap_err().to_string();
    let f = |name: &str| p.join(name).display().to_string();

    file(
        "entities.toml",
        "[entities.user]\nkey = \"id\"\nattributes = { id = \"int64\", age = { type = \"int65\" } }\n",
    );
    assert!(
        err().contains(&format!("{}: entities.user.attributes.age.type: unknown type `int65`", f("entities.toml"))),
        "{}",
        err()
    );
    file("entities.toml", "[entities.user]\nkey = \"id\"\ncolour = 1\nattributes = { id = \"int64\" }\n");
    assert!(
        err().contains(&format!("{}: entities.user.colour: unknown field `colour`", f("entities.toml"))),
        "{}",
        err()
    );
    file("entities.toml", "[entities.user]\nname = \"other\"\nkey = \"id\"\nattributes = { id = \"int64\" }\n");
    assert!(err().contains("`name` is `other` but the table key is `user`"), "{}", err());
    file("entities.toml", "[entities.user]\nkey = \"id\"\nattributes = { id = \"int64\", age = \"int32\" }\n");
    Project::from_path(&p).unwrap();

    file(
        "segments.toml",
        "[segments.vip]\nentity = \"user\"\nrule = { and = [{ attribute = \"age\", op = \"ge\", value = 1 }, { attribute = \"age\", op = \"bigger\", value = 1 }] }\n",
    );
    let e = err();
    assert!(e.starts_with(&format!("invalid definition of {}: segments.vip.rule", f("segments.toml"))), "{e}");
    assert!(e.contains("and[1]") && e.contains("bigger"), "{e}");
    file("segments.toml", "[segments.vip]\nentity = \"user\"\nrule = { attribute = \"age\", op = \"ge\", value = 18 }\nsplit = { holdout = \"x\" }\n");
    assert!(err().contains(&format!("{}: segments.vip.split.holdout", f("segments.toml"))), "{}", err());
    file(
        "segments.toml",
        "[segments.vip]\nentity = \"user\"\nrule = { attribute = \"age\", op = \"ge\", value = 18 }\n",
    );

    file("more.yaml", "segments:\n  VIP:\n    entity: user\n    rule: {attribute: age, op: lt, value: 3}\n");
    let e = err();
    assert!(
        e.contains(&f("more.yaml")) && e.contains(&f("segments.toml")) && e.contains("`VIP`") && e.contains("`vip`"),
        "{e}"
    );
    file("more.yaml", "workflows:\n  w:\n    trigger: {type: entred, segment: vip}\n    steps: []\n");
    assert!(
        err().contains(&format!("{}: workflows.w.trigger", f("more.yaml"))) && err().contains("entred"),
        "{}",
        err()
    );
    file("more.yaml", "sources:\n  crm:\n    entity: user\n    config: {type: postgres, url: \"postgres://db/x\", password: hunter2}\n");
    let e = err();
    assert!(e.contains(&format!("{}: sources.crm.config.password", f("more.yaml"))) && e.contains("env:"), "{e}");
    assert!(!e.contains("hunter2"), "the secret is not echoed: {e}");
    file("more.yaml", "sources:\n  crm:\n    entity: user\n    confg: {type: postgres}\n");
    assert!(err().contains(&format!("{}: sources.crm.confg: unknown field `confg`", f("more.yaml"))), "{}", err());
    file("more.yaml", "segmets: {}\n");
    assert!(err().contains("unknown field `segmets`"), "{}", err());
    file("more.yaml", "segments: [1, 2\n");
    assert!(err().contains(&f("more.yaml")), "{}", err());
    std::fs::remove_file(p.join("more.yaml")).unwrap();

    // Errors the workspace finds carry the file too.
    let ws = workspace(&dir.path().join("ws")).await;
    file(
        "segments.toml",
        "[segments.vip]\nentity = \"usr\"\nrule = { attribute = \"age\", op = \"ge\", value = 18 }\n",
    );
    let e = ws.plan(&Project::from_path(&p).unwrap()).await.unwrap_err().to_string();
    assert!(e.contains(&format!("{}: segment vip.entity", f("segments.toml"))) && e.contains("user"), "{e}");
}

#[test]
fn input_is_bounded() {
    let big = format!("# {}\n", "x".repeat(segkit::limits::MAX_PROJECT_FILE_BYTES));
    let e = Project::from_toml_str(&big).unwrap_err();
    assert!(e.to_string().contains("MAX_PROJECT_FILE_BYTES"), "{e}");
    let mut many = String::new();
    for i in 0..=segkit::limits::MAX_PROJECT_OBJECTS {
        many.push_str(&format!("[templates.t{i}]\nchannel = \"email\"\nparts = {{ text = \"x\" }}\n"));
    }
    let e = Project::from_toml_str(&many).unwrap_err();
    assert!(e.to_string().contains("MAX_PROJECT_OBJECTS"), "{e}");
    let deep = format!("segments:\n  s:\n    entity: u\n    rule: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Project::from_yaml_str(&deep).is_err());
}

/// Core's part of the project file's schema (the shipped `docs/project.schema.json` adds the connectors' and
/// actions' config schemas and is checked by the server's tests, `server/tests/openapi.rs`).
#[test]
fn the_project_json_schema_has_every_kind() {
    let schema = json_schema();
    for kind in ["entities", "sources", "static_segments", "segments", "templates", "workflows", "schedules"] {
        assert!(schema["properties"][kind].is_object(), "{kind}");
    }
    let required = &schema["$defs"]["SegmentSpec"]["required"];
    assert!(required.as_array().unwrap().iter().all(|r| r != "name") && required.to_string().contains("rule"));
}
