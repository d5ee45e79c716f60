//! A real server on 127.0.0.1 over a real workspace (SQLite catalog, Parquet data) for the HTTP tests.

#![allow(dead_code)]

use segkit::auth::Role;
use segkit::{CancellationToken, SourceDefinition, Workspace};
use segkit_server::api::{self, ServerOptions};
use serde_json::{json, Value};

/// A running server and the keys of its three roles.
pub struct Server {
    pub base: String,
    pub ws: Workspace,
    pub admin: String,
    pub editor: String,
    pub viewer: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// 10 users: ids 1..=10, country CN for odd ids and US for even ones, age 15 + 3 * id, a pii email.
pub fn users_csv() -> String {
    let mut s = String::from("user_id,country,age,email\n");
    for id in 1..=10 {
        s.push_str(&format!("{id},{},{},u{id}@example.com\n", if id % 2 == 1 { "CN" } else { "US" }, 15 + 3 * id));
    }
    s
}

/// Appends users `ids` (aged 16, so not `adults`) to the source file: file sources are incremental, so the
/// next sync reads exactly these rows.
pub fn append_users(dir: &std::path::Path, ids: std::ops::RangeInclusive<i64>) -> u64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("users.csv")).unwrap();
    let n = ids.clone().count() as u64;
    for id in ids {
        writeln!(f, "{id},DE,16,u{id}@example.com").unwrap();
    }
    n
}

pub const USER_ENTITY: &str = r#"{"name": "user", "key": "user_id", "attributes": {"user_id": "int64",
    "country": "string", "age": "int64", "email": {"type": "string", "pii": true}}}"#;

/// A workspace with entity `user`, source `users_csv` synced once.
pub async fn workspace(dir: &std::path::Path) -> Workspace {
    let ws = segkit_server::open_workspace(&dir.join("ws")).await.unwrap();
    let e = segkit::spec::from_json_text::<segkit::spec::EntitySpec>(USER_ENTITY).unwrap().into_entity().unwrap();
    ws.define_entity(e).await.unwrap();
    let csv = dir.join("users.csv");
    std::fs::write(&csv, users_csv()).unwrap();
    ws.define_source(SourceDefinition::new("users_csv", "user", json!({"type": "csv", "path": csv}))).await.unwrap();
    ws.sync("users_csv").await.unwrap();
    ws
}

pub async fn start() -> Server {
    start_with(ServerOptions { rate_limit_per_minute: None, ..ServerOptions::default() }).await
}

pub async fn start_with(options: ServerOptions) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    let admin = ws.create_api_key("ada", Role::Admin, "test").unwrap().secret;
    let editor = ws.create_api_key("ed", Role::Editor, "test").unwrap().secret;
    let viewer = ws.create_api_key("vi", Role::Viewer, "test").unwrap().secret;
    let app = api::app(ws.clone(), &options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(api::serve(listener, app, shutdown.clone()));
    Server { base, ws, admin, editor, viewer, http: reqwest::Client::new(), shutdown, dir }
}

/// A response: status, headers and body.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
    /// Asserts a problem+json answer with this status and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type").as_deref(), Some("application/problem+json"), "{}", self.text());
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
        p
    }
}

impl Server {
    /// Stops this server and starts a new one on a workspace opened afresh over the same directory (a new
    /// process as far as the API's memory goes: only the catalog and the files carry over).
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        let ws = segkit_server::open_workspace(&self.dir.path().join("ws")).await.unwrap();
        let options = ServerOptions { rate_limit_per_minute: None, ..ServerOptions::default() };
        let app = api::app(ws.clone(), &options).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        self.shutdown = CancellationToken::new();
        tokio::spawn(api::serve(listener, app, self.shutdown.clone()));
        self.ws = ws;
        self.http = reqwest::Client::new();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends a request with `key` (if any) as the bearer and `body` (if any) as JSON text.
    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Reply {
        self.call_with(method, path, key, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.unwrap().to_vec();
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call("GET", path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: &str) -> Reply {
        self.call("POST", path, Some(key), Some(body)).await
    }

    /// Defines segment `adults` (age >= 30: ids 5..=10) as the editor and evaluates it.
    pub async fn adults(&self) {
        let r = self
            .post(
                "/segments",
                &self.editor,
                r#"{"name": "adults", "entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 30}}"#,
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = self.post("/segments/adults/evaluate", &self.editor, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
