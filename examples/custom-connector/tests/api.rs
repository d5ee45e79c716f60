//! The paged JSON connector against a real HTTP server on loopback (std's TcpListener): the conformance suite
//! (including incremental reads), a named source synced incrementally, and errors.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use segkit::deps::arrow::array::AsArray;
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::sources::SourceRegistry;
use segkit::{Attribute, DataType, Entity, ErrorKind, Source, SourceDefinition, Workspace, WorkspaceOptions};
use segkit_example_paged_json::PagedJsonSource;
use serde_json::{json, Value};

/// A tiny paginated API: `GET /orders?after=&limit=` over `orders`, requiring `Authorization: Bearer <token>`;
/// every request's query is logged.
struct Api {
    url: String,
    orders: Arc<Mutex<Vec<Value>>>,
    log: Arc<Mutex<Vec<String>>>,
}

fn serve(token: &'static str) -> Api {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    let orders: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (o, l) = (orders.clone(), log.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut authorized = false;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if h.to_ascii_lowercase().starts_with("authorization:")
                    && h.trim_end().ends_with(&format!("Bearer {token}"))
                {
                    authorized = true;
                }
            }
            let query = target.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
            l.lock().unwrap().push(query.clone());
            let param = |k: &str| {
                query.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).and_then(|v| v.parse::<i64>().ok())
            };
            let (status, body) = if !authorized {
                ("401 Unauthorized", json!({"error": "bad token"}))
            } else {
                let after = param("after").unwrap_or(i64::MIN);
                let limit = param("limit").unwrap_or(10) as usize;
                let all = o.lock().unwrap();
                let rest: Vec<&Value> = all.iter().filter(|r| r["id"].as_i64().unwrap() > after).collect();
                let page: Vec<Value> = rest.iter().take(limit).map(|v| (*v).clone()).collect();
                let next = if rest.len() > limit { page.last().map(|r| r["id"].clone()) } else { None };
                ("200 OK", json!({"items": page, "next": next}))
            };
            let body = body.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Api { url, orders, log }
}

fn add_orders(api: &Api, ids: std::ops::Range<i64>) {
    let mut o = api.orders.lock().unwrap();
    for i in ids {
        o.push(json!({"id": i, "customer": format!("c{}", i % 3), "amount": i as f64 * 1.5}));
    }
}

fn config(api: &Api, token_var: &str) -> Value {
    json!({
        "type": "paged_json",
        "url": api.url,
        "page_size": 2,
        "fields": {"id": "int64", "customer": "string", "amount": "float64"},
        "token": format!("env:{token_var}"),
    })
}

#[tokio::test]
async fn the_connector_passes_the_conformance_suite_including_incremental_reads() {
    std::env::set_var("PAGED_JSON_TOKEN_A", "tok-a");
    let api = serve("tok-a");
    add_orders(&api, 1..6);
    let source = PagedJsonSource::from_config(&config(&api, "PAGED_JSON_TOKEN_A")).unwrap();
    segkit::testing::source_conformance_incremental(&source, || async {
        add_orders(&api, 6..9);
        Ok(())
    })
    .await
    .unwrap();
    assert!(!format!("{source:?}").contains("tok-a"), "Debug hides the token");
}

#[tokio::test]
async fn a_named_source_syncs_only_new_records() {
    std::env::set_var("PAGED_JSON_TOKEN_B", "tok-b");
    let api = serve("tok-b");
    add_orders(&api, 1..6);
    let tmp = tempfile::tempdir().unwrap();
    let mut registry = SourceRegistry::new();
    PagedJsonSource::register(&mut registry);
    let ws = Workspace::open_with(tmp.path(), WorkspaceOptions::default().source_factory(registry)).await.unwrap();
    ws.define_entity(
        Entity::profile("order", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("customer", DataType::String))
            .attribute(Attribute::new("amount", DataType::Float64)),
    )
    .await
    .unwrap();
    ws.define_source(SourceDefinition::new("orders_api", "order", config(&api, "PAGED_JSON_TOKEN_B"))).await.unwrap();
    let r = ws.sync("orders_api").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (5, 5));
    assert_eq!(ws.source("orders_api").unwrap().cursor, Some(json!({"after": 5})));

    api.log.lock().unwrap().clear();
    add_orders(&api, 6..9);
    let r = ws.sync("orders_api").await.unwrap();
    assert_eq!((r.rows_read, r.rows_inserted), (3, 3), "only the new records are read");
    assert_eq!(api.log.lock().unwrap()[0], "limit=2&after=5", "the sync resumed after the committed cursor");
    let b = ws.sql("SELECT id FROM \"order\" ORDER BY id").await.unwrap();
    let ids: Vec<i64> = b.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, (1..9).collect::<Vec<_>>());
    let stored = ws.source("orders_api").unwrap();
    assert_eq!(stored.definition.config["token"], "env:PAGED_JSON_TOKEN_B", "the reference is stored, not the token");
    assert_eq!(stored.cursor, Some(json!({"after": 8})));
}

#[tokio::test]
async fn bad_configs_and_refused_requests_are_clear_errors() {
    std::env::set_var("PAGED_JSON_TOKEN_C", "wrong");
    let api = serve("tok-c");
    add_orders(&api, 1..3);
    let source = PagedJsonSource::from_config(&config(&api, "PAGED_JSON_TOKEN_C")).unwrap();
    let e = segkit::testing::collect_scan(&source, &segkit::ScanRequest::all()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert!(e.to_string().starts_with(&format!("source `{}` failed: GET", source.name())), "{e}");
    assert!(e.to_string().contains("HTTP 401") && !e.to_string().contains("wrong"), "{e}");

    let mut c = config(&api, "PAGED_JSON_TOKEN_C");
    c["page_size"] = json!("two");
    let e = PagedJsonSource::from_config(&c).unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source.page_size: invalid type: string \"two\""), "{e}");
    let mut c = config(&api, "PAGED_JSON_TOKEN_C");
    c["fields"]["amount"] = json!("money");
    let e = PagedJsonSource::from_config(&c).unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source.fields.amount:"), "{e}");
    let mut c = config(&api, "PAGED_JSON_TOKEN_C");
    c["tokn"] = json!("x");
    let e = PagedJsonSource::from_config(&c).unwrap_err();
    assert!(e.to_string().contains("unknown field `tokn`"), "{e}");
}
