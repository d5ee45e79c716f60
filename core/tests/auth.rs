//! API keys, the audit log (`segkit.audit`), the count of an unsaved segment and unmasked previews.

mod common;

use common::*;
use segkit::auth::Role;
use segkit::deps::arrow::array::AsArray;
use segkit::{ErrorKind, SegmentDefinition};

#[tokio::test]
async fn keys_are_hashed_authenticate_and_revoke_with_audit_rows() {
    let (dir, ws) = people_workspace().await;
    let k = ws.create_api_key("alice@example.com", Role::Editor, "cli").unwrap();
    assert!(k.secret.starts_with("sk_") && k.key.id.starts_with("key_"));
    assert_eq!(k.key.created_at, "2026-06-30T00:00:00+00:00", "the workspace clock");
    // The catalog holds the hash, never the secret.
    let raw = std::fs::read(dir.path().join("segkit.db")).unwrap();
    assert!(!raw.windows(k.secret.len()).any(|w| w == k.secret.as_bytes()));
    assert_eq!(ws.authenticate_api_key(&k.secret).unwrap().unwrap().name, "alice@example.com");
    assert_eq!(ws.authenticate_api_key("sk_wrong").unwrap(), None);
    assert_eq!(ws.authenticate_api_key(&"x".repeat(10_000)).unwrap(), None);

    let revoked = ws.revoke_api_key(&k.key.id, "bob").unwrap();
    assert_eq!(revoked.revoked_at.as_deref(), Some("2026-06-30T00:00:00+00:00"));
    assert_eq!(ws.authenticate_api_key(&k.secret).unwrap(), None);
    assert_eq!(ws.revoke_api_key("key_none", "bob").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(ws.api_keys().unwrap().len(), 1);

    let e = ws.create_api_key("", Role::Viewer, "cli").unwrap_err();
    assert!(e.to_string().contains("key name: must not be empty"), "{e}");
    let e = ws.create_api_key(&"n".repeat(300), Role::Viewer, "cli").unwrap_err();
    assert!(e.to_string().contains("MAX_PRINCIPAL_NAME_BYTES"), "{e}");

    ws.audit("bob", "segment.update", "cn", Some(&"d".repeat(10_000))).unwrap();
    let log = ws.audit_log(10).unwrap();
    let rows: Vec<(&str, &str, &str)> =
        log.iter().map(|a| (a.actor.as_str(), a.action.as_str(), a.target.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("cli", "key.create", k.key.id.as_str()),
            ("bob", "key.revoke", k.key.id.as_str()),
            ("bob", "segment.update", "cn")
        ]
    );
    assert_eq!(log[2].detail.as_ref().unwrap().len(), segkit::limits::MAX_AUDIT_DETAIL_BYTES);
    assert_eq!(ws.audit_log(1).unwrap()[0].action, "segment.update", "the newest rows");

    let b = ws.sql("SELECT actor, action FROM segkit.audit ORDER BY id").await.unwrap();
    let actions: Vec<String> =
        b.iter().flat_map(|b| b.column(1).as_string::<i32>().iter().map(|v| v.unwrap().to_string())).collect();
    assert_eq!(actions, ["key.create", "key.revoke", "segment.update"]);
}

#[tokio::test]
async fn count_of_an_unsaved_segment_and_unmasked_preview() {
    let (_dir, ws) = people_workspace().await;
    let rule = |v: serde_json::Value| segkit::rules::Rule::parse(&v, Default::default()).unwrap();
    let def = SegmentDefinition::new(
        "draft",
        "people",
        rule(serde_json::json!({"attribute": "country", "op": "eq", "value": "CN"})),
    );
    let n = ws.count_definition(def.clone()).await.unwrap();
    assert_eq!(n, ws.dry_run(def.clone()).await.unwrap().count);
    assert!(ws.segments().unwrap().is_empty(), "nothing stored");
    let bad = SegmentDefinition::new(
        "draft",
        "people",
        rule(serde_json::json!({"attribute": "contry", "op": "eq", "value": "CN"})),
    );
    let e = ws.count_definition(bad).await.unwrap_err();
    assert!(e.to_string().contains("did you mean `country`"), "{e}");
    let e = ws.count_definition(SegmentDefinition::new("draft", "peeple", def.rule.clone())).await.unwrap_err();
    assert!(e.to_string().contains("segment draft.entity"), "{e}");

    ws.define_segment(def).await.unwrap();
    let masked = ws.preview("draft", 3).await.unwrap();
    let open = ws.preview_with("draft", 3, false).await.unwrap();
    let name = |b: &segkit::deps::arrow::array::RecordBatch| {
        b.column_by_name("name").unwrap().as_string::<i32>().value(0).to_string()
    };
    assert_eq!(name(&masked), "***");
    assert_ne!(name(&open), "***");
}
