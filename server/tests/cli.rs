//! The `segkit` binary itself: exit codes, `--json` output, and `serve` on loopback until SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn segkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segkit")).args(args).env_remove("SEGKIT_WORKSPACE").output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[tokio::test]
async fn init_keys_sync_evaluate_with_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    let o = segkit(&["init", fresh.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(json_of(&o)["created"], true);
    let o = segkit(&["init", fresh.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("opened existing workspace"), "{o:?}");

    // A workspace with an entity and a source, made with the library (another process, one catalog).
    let ws = common::workspace(dir.path()).await;
    ws.define_segment(segkit::SegmentDefinition::new(
        "adults",
        "user",
        segkit::rules::Rule::parse_str(r#"{"attribute": "age", "op": "ge", "value": 30}"#).unwrap(),
    ))
    .await
    .unwrap();
    let w = dir.path().join("ws");
    let w = w.to_str().unwrap();

    let o = segkit(&["-w", w, "keys", "create", "--name", "ops", "--role", "admin", "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    let key = json_of(&o);
    let secret = key["secret"].as_str().unwrap();
    assert!(secret.starts_with("sk_") && secret.len() == 67);
    assert_eq!(ws.authenticate_api_key(secret).unwrap().unwrap().role, segkit::auth::Role::Admin);
    let o = segkit(&["-w", w, "keys", "list", "--json"]);
    let listed = json_of(&o);
    assert_eq!(listed[0]["name"], "ops");
    assert!(!String::from_utf8_lossy(&o.stdout).contains(secret), "the secret is shown once only");
    let o = segkit(&["-w", w, "users", "list", "--json"]);
    assert_eq!(json_of(&o)[0]["roles"][0], "admin");
    let o = segkit(&["-w", w, "keys", "create", "--name", "x", "--role", "owner"]);
    assert_eq!(code(&o), 5, "invalid input");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown role `owner`"));

    // The library synced the file once; the source is incremental: the CLI's sync reads the appended rows.
    let appended = common::append_users(dir.path(), 11..=13);
    let o = segkit(&["-w", w, "sync", "users_csv", "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(json_of(&o)["rows_read"], appended);
    let o = segkit(&["-w", w, "evaluate", "adults", "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    let run = json_of(&o);
    assert_eq!((run["run"].as_i64(), run["count"].as_i64(), run["entered"].as_i64()), (Some(1), Some(6), Some(6)));
    let o = segkit(&["-w", w, "evaluate", "adults"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("`adults` run 2: 6 members, 0 entered, 0 exited"), "{o:?}");

    // Exit codes scripts can rely on.
    let o = segkit(&["-w", w, "evaluate", "adultz", "--json"]);
    assert_eq!(code(&o), 3, "{o:?}");
    assert_eq!(json_of(&o)["error"]["kind"], "not_found");
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `adults`"), "{o:?}");
    assert_eq!(code(&segkit(&["-w", w, "sync", "nope"])), 3);
    assert_eq!(code(&segkit(&["-w", w, "keys", "revoke", "key_0"])), 3);
    let missing = dir.path().join("missing");
    let o = segkit(&["-w", missing.to_str().unwrap(), "evaluate", "adults"]);
    assert_eq!(code(&o), 3, "{o:?}");
    assert!(!missing.exists(), "no workspace is created by accident");
    assert_eq!(code(&segkit(&["evaluate"])), 2, "usage");
    assert_eq!(code(&segkit(&["--frobnicate"])), 2, "usage");
    let o = segkit(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit codes"));
    assert_eq!(code(&segkit(&["keys", "create", "--help"])), 0);
}

#[tokio::test]
async fn serve_answers_on_loopback_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ws = common::workspace(dir.path()).await;
    let key = ws.create_api_key("ops", segkit::auth::Role::Viewer, "test").unwrap().secret;
    let w = dir.path().join("ws");
    let mut child = Command::new(env!("CARGO_BIN_EXE_segkit"))
        .args(["-w", w.to_str().unwrap(), "serve", "--bind", "127.0.0.1:0", "--with-scheduler", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = serde_json::from_str::<Value>(&line).unwrap()["listening"].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "loopback: {addr}");
    let http = reqwest::Client::new();
    let r = http.get(format!("http://{addr}/api/v1/entities")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["items"][0]["name"], "user");
    let r = http.get(format!("http://{addr}/api/v1/entities")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown on SIGTERM");
}

#[tokio::test]
async fn run_starts_the_scheduler_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let _ws = common::workspace(dir.path()).await;
    let w = dir.path().join("ws");
    // Plain, and with every commit synced to disk (`--durable`, as `serve --durable`).
    for extra in [&[][..], &["--durable"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_segkit"))
            .args(["-w", w.to_str().unwrap(), "run", "--poll-interval", "0.05"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        stderr.read_line(&mut line).unwrap();
        assert!(line.starts_with("scheduler running on"), "{line}");
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        line.clear();
        stderr.read_line(&mut line).unwrap();
        assert!(line.starts_with("shutting down"), "{line}");
        assert_eq!(out.status.code(), Some(0), "graceful shutdown on SIGTERM ({extra:?})");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("scheduler stopped:") && text.contains("passes"), "{text}");
    }
    assert_eq!(code(&segkit(&["-w", w.to_str().unwrap(), "run", "--poll-interval=-1"])), 5, "invalid input");
    for window in ["0", "65537"] {
        let out = segkit(&["-w", w.to_str().unwrap(), "run", "--delivery-window", window]);
        assert_eq!(code(&out), 5, "--delivery-window {window}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("the delivery window is {window} deliveries")), "{err}");
    }
}

/// `plan` / `apply` / `export`: a project file applied in one go, planned again as unchanged, exported and
/// re-applied as a no-op; a destructive change refused with exit code 5 unless allowed.
#[test]
fn plan_apply_export_round_trip_and_destructive_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("ws");
    let w = w.to_str().unwrap();
    assert_eq!(code(&segkit(&["init", w])), 0);
    let project = dir.path().join("project.toml");
    let text = r#"
[entities.user]
key = "user_id"
attributes = { user_id = "int64", country = { type = "string", indexed = true }, age = "int32" }

[segments.adults]
entity = "user"
rule = { attribute = "age", op = "ge", value = 18 }
"#;
    std::fs::write(&project, text).unwrap();
    let p = project.to_str().unwrap();

    let o = segkit(&["-w", w, "plan", p, "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    let plan = json_of(&o);
    let actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(actions, vec![("user".into(), "create".into()), ("adults".into(), "create".into())], "{plan}");
    // Planning changed nothing: the segment does not exist yet.
    let o = segkit(&["-w", w, "evaluate", "adults"]);
    assert_eq!(code(&o), 3, "not found before apply: {o:?}");

    let o = segkit(&["-w", w, "apply", p, "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(json_of(&o)["applied"], true);
    assert_eq!(code(&segkit(&["-w", w, "evaluate", "adults"])), 0);
    let o = segkit(&["-w", w, "plan", p, "--json"]);
    assert!(json_of(&o)["changes"].as_array().unwrap().iter().all(|c| c["action"] == "unchanged"), "{o:?}");

    // Export, then apply the export: nothing to do.
    let exported = dir.path().join("exported.yaml");
    let o = segkit(&["-w", w, "export", "-o", exported.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{o:?}");
    let yaml = std::fs::read_to_string(&exported).unwrap();
    assert!(yaml.contains("adults") && yaml.contains("user_id"), "{yaml}");
    let o = segkit(&["-w", w, "apply", exported.to_str().unwrap(), "--json"]);
    assert!(json_of(&o)["changes"].as_array().unwrap().iter().all(|c| c["action"] == "unchanged"), "{o:?}");
    let o = segkit(&["-w", w, "export"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[entities.user]"), "{o:?}");

    // Data in the entity makes dropping an attribute destructive: refused (exit 5), then allowed.
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "user_id,country,age\n1,DE,30\n2,CN,12\n").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ws = segkit::Workspace::open(dir.path().join("ws")).await.unwrap();
        let batch = segkit::deps::arrow::array::RecordBatch::try_from_iter([
            (
                "user_id",
                std::sync::Arc::new(segkit::deps::arrow::array::Int64Array::from(vec![1, 2]))
                    as segkit::deps::arrow::array::ArrayRef,
            ),
            ("country", std::sync::Arc::new(segkit::deps::arrow::array::StringArray::from(vec!["DE", "CN"])) as _),
            ("age", std::sync::Arc::new(segkit::deps::arrow::array::Int32Array::from(vec![30, 12])) as _),
        ])
        .unwrap();
        ws.ingest_batches("user", vec![batch], segkit::IngestOptions::default()).await.unwrap();
    });
    std::fs::write(
        &project,
        text.replace(", age = \"int32\"", "").replace(
            "rule = { attribute = \"age\", op = \"ge\", value = 18 }",
            "rule = { attribute = \"country\", op = \"eq\", value = \"DE\" }",
        ),
    )
    .unwrap();
    let o = segkit(&["-w", w, "plan", p]);
    assert_eq!(code(&o), 5, "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-destructive"), "{o:?}");
    let o = segkit(&["-w", w, "apply", p]);
    assert_eq!(code(&o), 5, "{o:?}");
    let o = segkit(&["-w", w, "apply", p, "--allow-destructive", "--json"]);
    assert_eq!(code(&o), 0, "{o:?}");
    // A file that is not a project: a clear error naming it, exit 5.
    std::fs::write(&project, "[entities.user]\nkey = 3\n").unwrap();
    let o = segkit(&["-w", w, "plan", p]);
    assert_eq!(code(&o), 5, "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("project.toml"), "{o:?}");
}
