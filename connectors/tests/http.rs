//! The HTTP API connector against real HTTP/1.1 servers on 127.0.0.1 (a small tokio server per test): every
//! pagination style, auth, retries on 503 / 429 + Retry-After, the rate limit, hostile bodies, conformance and
//! incremental named-source syncs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use futures::TryStreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use segkit::{ErrorKind, ScanRequest, Source, SourceDefinition, Workspace, WorkspaceOptions};

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A response: status, extra headers, body.
struct Resp(u16, Vec<(String, String)>, String);

fn ok(body: Value) -> Resp {
    Resp(200, vec![], body.to_string())
}

type Handler = Arc<dyn Fn(&Req, usize) -> Resp + Send + Sync>;

/// A real HTTP/1.1 server on an ephemeral loopback port; `handler` gets each request and its 0-based number.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Req, usize) -> Resp + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let l = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (handler, log) = (handler.clone(), l.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap().split(' ');
                    let method = first.next().unwrap().to_string();
                    let target = url::Url::parse(&format!("http://x{}", first.next().unwrap())).unwrap();
                    let headers: BTreeMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                        .collect();
                    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let req = Req {
                        method,
                        path: target.path().to_string(),
                        query: target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                        headers,
                        body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                    };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(req.clone());
                        log.len() - 1
                    };
                    let Resp(status, extra, body) = handler(&req, n);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in extra {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { base, log }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn q(r: &Req, k: &str) -> Option<u64> {
    r.query.get(k).and_then(|v| v.parse().ok())
}

fn users(ids: std::ops::Range<u64>) -> Vec<Value> {
    ids.map(|i| json!({"id": i, "name": format!("u{i}"), "updated": i * 10})).collect()
}

fn source(config: Value) -> Arc<dyn Source> {
    segkit_connectors::registry().build_source(&config)
}

trait Build {
    fn build_source(&self, config: &Value) -> Arc<dyn Source>;
}
impl Build for segkit::sources::SourceRegistry {
    fn build_source(&self, config: &Value) -> Arc<dyn Source> {
        segkit::sources::SourceFactory::build(self, config).unwrap()
    }
}

async fn scan_all(s: &dyn Source, cursor: Option<Value>) -> segkit::Result<Vec<RecordBatch>> {
    s.scan(&ScanRequest::all().with_cursor(cursor)).await?.try_collect().await
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| b.column_by_name(name).unwrap().as_string::<i32>().iter().map(|v| v.map(str::to_string)))
        .collect()
}

fn ids(batches: &[RecordBatch]) -> Vec<u64> {
    column(batches, "id").into_iter().map(|v| v.unwrap().parse().unwrap()).collect()
}

#[tokio::test]
async fn page_number_pagination_stops_at_a_short_page_and_sends_the_bearer_token() {
    std::env::set_var("SEGKIT_TEST_HTTP_TOKEN", "tok-123");
    let s = Server::start(|r, _| {
        if r.headers.get("authorization").map(String::as_str) != Some("Bearer tok-123") {
            return Resp(401, vec![], "{}".into());
        }
        let (page, per) = (q(r, "page").unwrap(), q(r, "per_page").unwrap());
        let all = users(1..6);
        let start = ((page - 1) * per) as usize;
        ok(json!({"data": {"items": all.iter().skip(start).take(per as usize).collect::<Vec<_>>()}}))
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/users", s.base), "records": "/data/items",
        "auth": {"type": "bearer", "token": "env:SEGKIT_TEST_HTTP_TOKEN"},
        "pagination": {"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 2}}));
    let batches = scan_all(src.as_ref(), None).await.unwrap();
    assert_eq!(ids(&batches), vec![1, 2, 3, 4, 5]);
    assert_eq!(column(&batches, "name")[4].as_deref(), Some("u5"));
    let pages: Vec<u64> = s.requests().iter().filter_map(|r| q(r, "page")).collect();
    // schema discovery reads page 1 once; the scan reads 1, 2, 3 and stops at the short page 3.
    assert_eq!(pages, vec![1, 1, 2, 3]);
    let debug = format!("{src:?}");
    assert!(!debug.contains("tok-123") && debug.contains("redacted"), "{debug}");
    assert_eq!(src.name(), format!("http:{}/users", s.base));
}

#[tokio::test]
async fn offset_limit_pagination_stops_at_an_empty_page() {
    let s = Server::start(|r, _| {
        let (o, l) = (q(r, "offset").unwrap() as usize, q(r, "limit").unwrap() as usize);
        ok(Value::Array(users(0..6).into_iter().skip(o).take(l).collect()))
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id", "name"],
        "pagination": {"type": "offset", "offset_param": "offset", "limit_param": "limit", "limit": 3}}));
    let batches = scan_all(src.as_ref(), None).await.unwrap();
    assert_eq!(ids(&batches), vec![0, 1, 2, 3, 4, 5]);
    let offsets: Vec<u64> = s.requests().iter().filter_map(|r| q(r, "offset")).collect();
    assert_eq!(offsets, vec![0, 3, 6], "6 is empty: the end");
    assert_eq!(batches[0].schema().fields().len(), 4, "id, name, _raw, _error");
}

#[tokio::test]
async fn cursor_token_pagination_follows_the_token_in_the_body() {
    let s = Server::start(|r, _| {
        let at: usize = r.query.get("cursor").map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
        let next = if at + 2 < 5 { json!(format!("c{}", at + 2)) } else { Value::Null };
        ok(json!({"items": users(0..5)[at..(at + 2).min(5)], "meta": {"next": next}}))
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "records": "/items",
        "fields": ["id"], "pagination": {"type": "cursor", "token_pointer": "/meta/next", "param": "cursor"}}));
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![0, 1, 2, 3, 4]);
    let tokens: Vec<Option<String>> = s.requests().iter().map(|r| r.query.get("cursor").cloned()).collect();
    assert_eq!(tokens, vec![None, Some("c2".into()), Some("c4".into())]);
}

#[tokio::test]
async fn link_header_pagination_follows_rel_next() {
    let s = Server::start(|r, _| {
        let p = q(r, "p").unwrap_or(1);
        let link = match p {
            1 => vec![("link".into(), "</u?p=2>; rel=\"next\", </u?p=3>; rel=\"last\"".into())],
            2 => vec![("link".into(), "</u?p=1>; rel=\"prev\", </u?p=3>; rel=\"next\"".into())],
            _ => vec![("link".into(), "</u?p=1>; rel=\"first\"".into())],
        };
        Resp(200, link, Value::Array(users(p * 10..p * 10 + 2)).to_string())
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"],
        "pagination": {"type": "link"}}));
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![10, 11, 20, 21, 30, 31]);
    assert_eq!(s.requests().len(), 3);
}

#[tokio::test]
async fn transient_503_and_429_with_retry_after_are_retried() {
    let s = Server::start(|_, n| match n {
        0 => Resp(503, vec![], "busy".into()),
        1 => Resp(429, vec![("retry-after".into(), "1".into())], "slow down".into()),
        _ => ok(Value::Array(users(0..2))),
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"], "backoff_ms": 10}));
    let t = Instant::now();
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![0, 1]);
    assert!(t.elapsed() >= Duration::from_millis(990), "Retry-After: 1 honoured, waited {:?}", t.elapsed());
    assert_eq!(s.requests().len(), 3);

    // A Retry-After HTTP date works the same way.
    let s = Server::start(|_, n| match n {
        0 => Resp(
            429,
            vec![(
                "retry-after".into(),
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2)),
            )],
            "{}".into(),
        ),
        _ => ok(json!([{"id": 1}])),
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"], "backoff_ms": 10}));
    let t = Instant::now();
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![1]);
    assert!(t.elapsed() >= Duration::from_millis(900), "waited {:?}", t.elapsed());
}

#[tokio::test]
async fn persistent_failures_give_up_with_an_error_naming_source_and_url_without_the_key() {
    std::env::set_var("SEGKIT_TEST_HTTP_KEY", "sekrit-key");
    let s = Server::start(|_, _| Resp(500, vec![], "oops".into())).await;
    let src = source(json!({"type": "http", "url": format!("{}/u?x=1", s.base), "fields": ["id"],
        "max_attempts": 3, "backoff_ms": 5,
        "auth": {"type": "api_key", "name": "key", "in": "query", "api_key": "env:SEGKIT_TEST_HTTP_KEY"}}));
    let e = scan_all(src.as_ref(), None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let m = e.to_string();
    assert!(m.contains(&format!("http:{}/u", s.base)), "{m}");
    assert!(m.contains("x=1&key=***") && m.contains("HTTP 500") && m.contains("after 3 attempts"), "{m}");
    assert!(!m.contains("sekrit"), "{m}");
    assert_eq!(s.requests().len(), 3);
    assert_eq!(s.requests()[0].query.get("key").map(String::as_str), Some("sekrit-key"));
    assert!(!format!("{src:?}").contains("sekrit"));

    // Nothing listens: a connection error, retried, then a clear error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let src = source(json!({"type": "http", "url": format!("http://127.0.0.1:{port}/u"), "fields": ["id"],
        "max_attempts": 2, "backoff_ms": 5}));
    let m = scan_all(src.as_ref(), None).await.unwrap_err().to_string();
    assert!(m.contains("request failed") && m.contains("after 2 attempts"), "{m}");

    // 401 is not retried.
    let s = Server::start(|_, _| Resp(401, vec![], "{}".into())).await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"]}));
    let m = scan_all(src.as_ref(), None).await.unwrap_err().to_string();
    assert!(m.contains("HTTP 401") && m.contains("auth"), "{m}");
    assert_eq!(s.requests().len(), 1);
}

#[tokio::test]
async fn basic_auth_api_key_header_headers_and_post_bodies_are_sent() {
    std::env::set_var("SEGKIT_TEST_HTTP_PW", "pw");
    std::env::set_var("SEGKIT_TEST_HTTP_HKEY", "hk");
    fn seen(r: &Req, _: usize) -> Resp {
        ok(json!({"rows": [{"id": 1, "method": r.method, "auth": r.headers.get("authorization"),
            "key": r.headers.get("x-api-key"), "tenant": r.headers.get("x-tenant"), "body": r.body}]}))
    }
    let s = Server::start(seen).await;
    let src = source(json!({"type": "http", "url": format!("{}/q", s.base), "records": "/rows",
        "method": "POST", "body": {"filter": {"status": "paid"}}, "headers": {"X-Tenant": "acme"},
        "auth": {"type": "basic", "username": "ann", "password": "env:SEGKIT_TEST_HTTP_PW"}}));
    let b = scan_all(src.as_ref(), None).await.unwrap();
    assert_eq!(column(&b, "method")[0].as_deref(), Some("POST"));
    assert_eq!(column(&b, "auth")[0].as_deref(), Some("Basic YW5uOnB3")); // base64("ann:pw")
    assert_eq!(column(&b, "tenant")[0].as_deref(), Some("acme"));
    assert_eq!(column(&b, "body")[0].as_deref(), Some(r#"{"filter":{"status":"paid"}}"#));
    let src = source(json!({"type": "http", "url": format!("{}/q", s.base), "records": "/rows",
        "auth": {"type": "api_key", "name": "X-API-Key", "api_key": "env:SEGKIT_TEST_HTTP_HKEY"}}));
    let b = scan_all(src.as_ref(), None).await.unwrap();
    assert_eq!((column(&b, "key")[0].as_deref(), column(&b, "method")[0].as_deref()), (Some("hk"), Some("GET")));
    assert_eq!(column(&b, "auth")[0], None);
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let s = Server::start(|r, _| {
        let p = q(r, "page").unwrap();
        ok(if p <= 4 { json!([{"id": p}]) } else { json!([]) })
    })
    .await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"],
        "requests_per_second": 10, "pagination": {"type": "page"}}));
    let t = Instant::now();
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![1, 2, 3, 4]);
    // 5 requests at 10/s: at least 4 intervals of 100 ms between the first and the last.
    assert!(t.elapsed() >= Duration::from_millis(390), "{:?}", t.elapsed());
    assert_eq!(s.requests().len(), 5);
}

#[tokio::test]
async fn max_pages_bounds_an_endless_api() {
    let s = Server::start(|_, n| ok(json!({"items": [{"id": n}], "next": format!("t{n}")}))).await;
    let src = source(json!({"type": "http", "url": format!("{}/u", s.base), "fields": ["id"], "records": "/items",
        "max_pages": 4, "pagination": {"type": "cursor", "token_pointer": "/next", "param": "after"}}));
    assert_eq!(ids(&scan_all(src.as_ref(), None).await.unwrap()), vec![0, 1, 2, 3]);
    assert_eq!(s.requests().len(), 4);
}

#[tokio::test]
async fn hostile_bodies_are_clear_errors_or_quarantined_rows() {
    let s = Server::start(|r, _| match r.path.as_str() {
        "/html" => Resp(200, vec![], "<html>oops</html>".into()),
        "/big" => ok(Value::Array(users(0..2000))),
        "/object" => ok(json!({"data": {"id": 1}})),
        "/missing" => ok(json!({"other": []})),
        "/null" => ok(json!({"data": null})),
        _ => ok(json!({"data": [{"id": 1, "name": "ok"}, 7, "x", [1], {"id": "two", "name": {"a": 1}}]})),
    })
    .await;
    let cfg = |path: &str, extra: Value| {
        let mut c = json!({"type": "http", "url": format!("{}{path}", s.base), "fields": ["id", "name"]});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        source(c)
    };
    let m = scan_all(cfg("/html", json!({})).as_ref(), None).await.unwrap_err();
    assert_eq!(m.kind(), ErrorKind::Ingest);
    assert!(m.to_string().contains("/html: the response body is not JSON"), "{m}");
    let m = scan_all(cfg("/big", json!({"max_response_bytes": 10_000})).as_ref(), None).await.unwrap_err();
    assert!(m.to_string().contains("larger than max_response_bytes (10000 bytes)"), "{m}");
    let m = scan_all(cfg("/object", json!({"records": "/data"})).as_ref(), None).await.unwrap_err();
    assert!(m.to_string().contains("the record selector `/data` points at an object, not an array"), "{m}");
    let m = scan_all(cfg("/missing", json!({"records": "/data"})).as_ref(), None).await.unwrap_err();
    assert!(m.to_string().contains("`/data` matches nothing"), "{m}");
    assert!(scan_all(cfg("/null", json!({"records": "/data"})).as_ref(), None).await.unwrap().is_empty());

    let b = scan_all(cfg("/mixed", json!({"records": "/data"})).as_ref(), None).await.unwrap();
    assert_eq!(column(&b, "id"), vec![Some("1".into()), None, None, None, Some("two".into())]);
    assert_eq!(column(&b, "_raw"), vec![None, Some("7".into()), Some("\"x\"".into()), Some("[1]".into()), None]);
    let err = column(&b, "_error");
    assert!(err[1].as_deref().unwrap().ends_with("/mixed (page 1) record 2: not a JSON object"), "{err:?}");

    // Through ingest: the non-objects and the wrongly typed id are quarantined, the good row is kept.
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("user", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("name", segkit::DataType::String)),
    )
    .await
    .unwrap();
    let src = cfg("/mixed", json!({"records": "/data"}));
    let r = ws.ingest("user", src.as_ref(), Default::default()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 4));
}

#[tokio::test]
async fn bad_configs_are_definition_errors_naming_the_field() {
    let bad = |c: Value, path: &str, msg: &str| {
        let e = segkit_connectors::http::HttpSource::from_config(&c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Definition, "{e}");
        let m = e.to_string();
        assert!(m.contains(path) && m.contains(msg), "{path}: {m}");
        assert!(!m.contains("hunter2"), "{m}");
    };
    let u = "http://127.0.0.1:1/x";
    bad(json!({"type": "http"}), "source", "missing field `url`");
    bad(json!({"type": "http", "url": "ftp://h/x"}), "source.url", "not http or https");
    bad(
        json!({"type": "http", "url": u, "auth": {"type": "bearer", "token": "hunter2"}}),
        "source.auth.token",
        "secret",
    );
    bad(
        json!({"type": "http", "url": u, "auth": {"type": "bearer", "token": "env:SEGKIT_NOPE_UNSET"}}),
        "source.auth.token",
        "SEGKIT_NOPE_UNSET",
    );
    bad(json!({"type": "http", "url": u, "auth": {"type": "oauth"}}), "source.auth", "unknown variant");
    bad(
        json!({"type": "http", "url": u, "pagination": {"type": "offset", "limit": 0}}),
        "source.pagination.limit",
        "at least 1",
    );
    bad(
        json!({"type": "http", "url": u, "pagination": {"type": "cursor", "token_pointer": "next", "param": "c"}}),
        "source.pagination.token_pointer",
        "JSON pointer",
    );
    bad(json!({"type": "http", "url": u, "records": "data"}), "source.records", "JSON pointer");
    bad(json!({"type": "http", "url": u, "body": {}}), "source.body", "POST");
    bad(json!({"type": "http", "url": u, "requests_per_second": 0}), "source.requests_per_second", "positive");
    bad(
        json!({"type": "http", "url": u, "fields": ["id"], "incremental": {"field": "ts", "param": "since"}}),
        "source.incremental.field",
        "not one of",
    );
    bad(json!({"type": "http", "url": u, "max_pages": "many"}), "source.max_pages", "invalid type");
    bad(json!({"type": "http", "url": u, "bogus": 1}), "source", "unknown field `bogus`");
}

/// An API with ids 1..=n whose records carry `updated`; `since` returns the records updated after it, in order.
async fn since_api(data: Arc<Mutex<Vec<Value>>>) -> Server {
    Server::start(move |r, _| {
        let since = q(r, "since").unwrap_or(0);
        let (page, per) = (q(r, "page").unwrap_or(1) as usize, 2usize);
        let rows: Vec<Value> =
            data.lock().unwrap().iter().filter(|v| v["updated"].as_u64().unwrap() > since).cloned().collect();
        ok(json!({"items": rows.iter().skip((page - 1) * per).take(per).collect::<Vec<_>>()}))
    })
    .await
}

#[tokio::test]
async fn conformance_and_incremental_named_source_syncs() {
    let data = Arc::new(Mutex::new(users(1..6)));
    let s = since_api(data.clone()).await;
    let config = json!({"type": "http", "url": format!("{}/users", s.base), "records": "/items",
        "pagination": {"type": "page", "param": "page", "size_param": "n", "size": 2},
        "incremental": {"field": "updated", "param": "since"}});
    let src = source(config.clone());
    segkit::testing::source_conformance(src.as_ref()).await.unwrap();
    assert_eq!(src.cursor().await.unwrap(), Some(json!({"since": 50})));
    let after = scan_all(src.as_ref(), Some(json!({"since": 30}))).await.unwrap();
    assert_eq!(ids(&after), vec![4, 5]);

    let dir = tempfile::tempdir().unwrap();
    let opts = WorkspaceOptions::default().source_factory(segkit_connectors::registry());
    let ws = Workspace::open_with(dir.path().join("ws"), opts).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("user", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("name", segkit::DataType::String))
            .attribute(segkit::Attribute::new("updated", segkit::DataType::Int64)),
    )
    .await
    .unwrap();
    ws.define_source(SourceDefinition::new("users_api", "user", config)).await.unwrap();
    let r = ws.sync("users_api").await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (5, 0));
    assert_eq!(ws.source("users_api").unwrap().cursor, Some(json!({"since": 50})));
    {
        let mut d = data.lock().unwrap();
        d[1] = json!({"id": 2, "name": "bobby", "updated": 60});
        d.push(json!({"id": 6, "name": "u6", "updated": 70}));
    }
    let before = s.requests().len();
    let r = ws.sync("users_api").await.unwrap();
    assert_eq!((r.rows_inserted, r.rows_updated), (1, 1));
    // The source is built anew: schema discovery reads page 1 (no cursor there), then the scan sends `since`.
    let scan = &s.requests()[before + 1..];
    assert!(!scan.is_empty() && !s.requests()[before].query.contains_key("since"));
    assert!(scan.iter().all(|r| r.query.get("since").map(String::as_str) == Some("50")), "{scan:?}");
    assert_eq!(ws.source("users_api").unwrap().cursor, Some(json!({"since": 70})));
    let rows: Vec<RecordBatch> = ws.sql("SELECT name FROM user WHERE id = 2").await.unwrap();
    assert_eq!(rows[0].column(0).as_string::<i32>().value(0), "bobby");
    let r = ws.sync("users_api").await.unwrap();
    assert_eq!(r.rows_written, 0, "nothing after 70");
    assert_eq!(ws.source("users_api").unwrap().cursor, Some(json!({"since": 70})));
}
