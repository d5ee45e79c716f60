//! The floor of webhook delivery (issue 9, `benches/dispatch.sh` with `PARTS=floor`): what N signed webhook
//! POSTs to `segkit-bench-receiver` cost without the segkit engine — the HTTP clients alone, then the fastest
//! with the least durable ledger work the issue implies. One `--mode` per process (so each gets its own CPU and
//! peak RSS figures); prints one JSON line: deliveries/s, CPU µs (user + system of this process) per delivery.
//!
//!     segkit-delivery-floor --receiver 127.0.0.1:PORT --mode MODE [--entities 100000] [--concurrency 64]
//!         [--batch 1000] [--client hyper|action|reqwest] [--group-commit [--window W]] [--dir /tmp/segkit-floor]
//!
//! Every request is a `POST /hook` with a workflow-like JSON body (`{"user": ID, "name": "User ID"}`), an
//! `Idempotency-Key` (32 hex digits, one per entity) and the webhook action's HMAC-SHA256 signature header
//! computed per request. `--concurrency` requests are in flight at once. Modes:
//!
//! - `action`: the webhook action itself (`segkit_actions::WebhookAction`, its plain-http client: a pool of
//!   kept-alive connections, requests written as bytes), one `Delivery` per request as the dispatcher makes it;
//! - `reqwest`: a reqwest client with the settings the HTTP actions build theirs with (`actions/src/http.rs`);
//! - `hyper`: hyper's HTTP/1.1 client connections, one per concurrent request, one request in flight each;
//! - `ledger`: `--client`'s requests (default hyper) plus a durable ledger in SQLite (WAL, `synchronous =
//!   FULL`) opened with rusqlite directly: one transaction inserts the N rows (unique idempotency key, the due
//!   index and the frequency-cap index of the catalog's ledger), then batches of `--batch` pending rows are read
//!   by the due index and sent, and each batch's outcomes (status, attempts, sent_at, receipt, updated_at) are
//!   recorded in one durable transaction per batch;
//! - `ledger-claim`: `ledger` with the batch claimed before it is sent: one durable transaction of one
//!   `UPDATE … RETURNING` that moves the batch from `pending` to `running` with a lease (what lets concurrent
//!   dispatchers and a restarted one tell claimed rows from due ones).
//!
//! `--group-commit` (ledger modes): outcomes are committed as the dispatcher does, not per batch: one
//! transaction of everything sent while the previous one committed, and at most `2 × concurrency` deliveries
//! sent with their outcome not yet durable (what a killed process may send again) — a delivery's slot is given
//! back when its outcome is committed. `--window W` sets that bound instead (to price it).
//!
//! The ledger's statements run on one thread of their own; the read (or claim) of the next batch runs while the
//! current one is sent, and a batch's outcome transaction runs while the next one is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::Mac;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rusqlite::{params, Connection};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};

/// The signing secret of every mode (the action reads it from this environment variable).
const SECRET_VAR: &str = "SEGKIT_FLOOR_SECRET";
const SECRET: &str = "floor-bench-secret";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// This process's peak RSS so far, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Makes the receiver forget the requests it recorded (`GET /reset`), so its record does not grow across runs.
fn reset_receiver(addr: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return };
    let _ = s.write_all(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n");
    // The reply is `reset` after a short head: read until it is in.
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"reset") {
            break;
        }
    }
}

/// The idempotency key of entity `id`: 32 hex digits, as long as the ledger's.
fn key_of(id: i64) -> String {
    let a = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{a:016x}{:016x}", a.rotate_left(29) ^ 0x5851_f42d_4c95_7f2d)
}

/// The webhook action's signature header value (`t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>`).
fn signature(timestamp: i64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One delivery to send: its ledger id (the entity id without a ledger), entity id and idempotency key.
struct Row {
    id: i64,
    user: i64,
    key: String,
}

/// The workflow-like body of `row`.
fn body_of(row: &Row) -> String {
    format!(r#"{{"user": {}, "name": "User {}"}}"#, row.user, row.user)
}

/// How requests are sent.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ClientKind {
    Action,
    Reqwest,
    Hyper,
}

/// One worker's client: the shared action or reqwest client, or its own hyper connection.
enum Client {
    Action(Arc<dyn segkit_actions::Action>),
    Reqwest(reqwest::Client, Arc<str>),
    Hyper(hyper::client::conn::http1::SendRequest<Full<Bytes>>, Arc<str>),
}

impl Client {
    /// Sends `row`; the reply's status (0 for a transport failure).
    async fn send(&mut self, row: &Row) -> u16 {
        match self {
            Client::Action(action) => {
                let body = body_of(row);
                let mut delivery =
                    segkit_actions::Delivery::new(row.key.as_str(), "welcome", "user", row.user.to_string());
                delivery.step = "hook".into();
                delivery.channel = "webhook".into();
                delivery.content.insert("body".into(), body);
                match action.execute(&delivery).await {
                    segkit_actions::Outcome::Delivered { .. } => 200,
                    _ => 0,
                }
            }
            Client::Reqwest(client, url) => {
                let body = body_of(row);
                let sig = signature(unix_now(), &body);
                let reply = client
                    .post(&**url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("Idempotency-Key", row.key.as_str())
                    .header("X-Segkit-Signature", sig)
                    .body(body)
                    .send()
                    .await;
                match reply {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                }
            }
            Client::Hyper(sender, host) => {
                let body = body_of(row);
                let sig = signature(unix_now(), &body);
                let request = hyper::Request::post("/hook")
                    .header(hyper::header::HOST, &**host)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header("idempotency-key", row.key.as_str())
                    .header("x-segkit-signature", sig)
                    .body(Full::new(Bytes::from(body)))
                    .expect("a valid request");
                if sender.ready().await.is_err() {
                    return 0;
                }
                match sender.send_request(request).await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.into_body().collect().await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                }
            }
        }
    }
}

/// The clients of `concurrency` workers.
async fn clients(kind: ClientKind, receiver: &str, concurrency: usize) -> Vec<Client> {
    let url: Arc<str> = format!("http://{receiver}/hook").into();
    match kind {
        ClientKind::Action => {
            std::env::set_var(SECRET_VAR, SECRET);
            let config = json!({"type": "webhook", "url": &*url, "secret": format!("env:{SECRET_VAR}")});
            let action: Arc<dyn segkit_actions::Action> =
                Arc::new(segkit_actions::WebhookAction::from_config(&config).expect("a webhook action"));
            (0..concurrency).map(|_| Client::Action(action.clone())).collect()
        }
        ClientKind::Reqwest => {
            // The settings of `actions/src/http.rs` `client()`.
            let timeout = Duration::from_secs(10);
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("segkit/floor")
                .build()
                .expect("a reqwest client");
            (0..concurrency).map(|_| Client::Reqwest(client.clone(), url.clone())).collect()
        }
        ClientKind::Hyper => {
            let mut out = Vec::with_capacity(concurrency);
            for _ in 0..concurrency {
                let stream = tokio::net::TcpStream::connect(receiver).await.expect("the receiver");
                stream.set_nodelay(true).expect("nodelay");
                let (sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("an HTTP/1.1 handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                out.push(Client::Hyper(sender, receiver.into()));
            }
            out
        }
    }
}

/// What a batch's outcome transaction writes for one row: its id and the reply's status.
type Outcome = (i64, u16);

/// A request to the ledger thread.
enum LedgerOp {
    /// The next batch of due rows after id (read, or claimed with a lease).
    Next { after: i64, limit: usize, reply: oneshot::Sender<Vec<Row>> },
    /// Record the outcomes of sent rows in one durable transaction.
    Record { outcomes: Vec<Outcome>, done: oneshot::Sender<()> },
}

/// The ledger: the catalog's `deliveries` columns the dispatcher writes, with the indexes the issue's ledger needs.
///
/// - `idempotency_key UNIQUE`: one row per (workflow, trigger version, step, entity), enforced by the database.
/// - `deliveries_due (status, due_at) WHERE status IN pending/running/dead`: the dispatcher's due scan (and the
///   claim's), the queue-depth gauge and the dead-letter listing for replay; a finished row leaves it.
/// - `deliveries_by_channel (entity_key, channel, sent_at)`: frequency caps count each entity's sends per
///   channel across workflows in a window, at the moment of sending — without it every capped send scans.
///
/// The catalog's fourth, `deliveries_by_entity (workflow, entity_key, created_at)`, serves re-entry checks at
/// trigger time (not at delivery); it is left out: the floor prices the delivery path.
const SCHEMA: &str = r#"
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    step TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    channel TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    lease_until INTEGER,
    receipt TEXT,
    sent_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(status, due_at)
    WHERE status = 'pending' OR status = 'running' OR status = 'dead';
CREATE INDEX deliveries_by_channel ON deliveries(entity_key, channel, sent_at);
"#;

/// Opens the ledger at `dir` and inserts `n` pending rows in one durable transaction.
fn create_ledger(dir: &std::path::Path, n: i64) -> rusqlite::Result<Connection> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("the ledger directory");
    let mut conn = Connection::open(dir.join("ledger.db"))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.execute_batch(SCHEMA)?;
    let now = unix_ms();
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO deliveries (idempotency_key, workflow, step, entity_key, channel, status, due_at, created_at,
             updated_at) VALUES (?1, 'welcome', 'hook', ?2, 'webhook', 'pending', ?3, ?3, ?3)",
        )?;
        for user in 1..=n {
            insert.execute(params![key_of(user), user.to_string(), now])?;
        }
    }
    tx.commit()?;
    Ok(conn)
}

/// The ledger thread: runs `ops` in order on `conn`.
fn ledger_thread(
    mut conn: Connection,
    claim: bool,
    mut ops: mpsc::UnboundedReceiver<LedgerOp>,
) -> rusqlite::Result<()> {
    let lease_ms = 60_000;
    while let Some(op) = ops.blocking_recv() {
        match op {
            LedgerOp::Next { after, limit, reply } => {
                let now = unix_ms();
                let map = |r: &rusqlite::Row<'_>| {
                    let entity_key: String = r.get(2)?;
                    Ok(Row { id: r.get(0)?, user: entity_key.parse().unwrap_or(0), key: r.get(1)? })
                };
                let rows = if claim {
                    let tx = conn.transaction()?;
                    let rows = tx
                        .prepare_cached(
                            "UPDATE deliveries SET status = 'running', attempts = attempts + 1, lease_until = ?1,
                             updated_at = ?2
                             WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND due_at <= ?2
                                          ORDER BY due_at LIMIT ?3)
                             RETURNING id, idempotency_key, entity_key",
                        )?
                        .query_map(params![now + lease_ms, now, limit as i64], map)?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    tx.commit()?;
                    rows
                } else {
                    // Without a claim, the rows being sent are still pending: page past them by id.
                    conn.prepare_cached(
                        "SELECT id, idempotency_key, entity_key FROM deliveries
                         WHERE status = 'pending' AND due_at <= ?1 AND id > ?2 ORDER BY due_at, id LIMIT ?3",
                    )?
                    .query_map(params![now, after, limit as i64], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                };
                let _ = reply.send(rows);
            }
            LedgerOp::Record { outcomes, done } => {
                let now = unix_ms();
                let tx = conn.transaction()?;
                {
                    let mut delivered = tx.prepare_cached(
                        "UPDATE deliveries SET status = 'delivered', attempts = ?2, sent_at = ?3, receipt = ?4,
                         lease_until = NULL, updated_at = ?3 WHERE id = ?1",
                    )?;
                    let mut failed = tx.prepare_cached(
                        "UPDATE deliveries SET status = 'pending', attempts = ?2, due_at = ?3, lease_until = NULL,
                         updated_at = ?3 WHERE id = ?1",
                    )?;
                    for (id, status) in &outcomes {
                        if (200..300).contains(status) {
                            delivered.execute(params![id, 1, now, format!("HTTP {status}")])?;
                        } else {
                            failed.execute(params![id, 1, now + 1000])?;
                        }
                    }
                }
                tx.commit()?;
                let _ = done.send(());
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let receiver = arg("--receiver").expect("--receiver HOST:PORT");
    let mode = arg("--mode").unwrap_or_else(|| "hyper".into());
    let n: i64 = arg("--entities").map(|v| v.parse().expect("--entities N")).unwrap_or(100_000);
    let concurrency: usize = arg("--concurrency").map(|v| v.parse().expect("--concurrency C")).unwrap_or(64).max(1);
    let batch: usize = arg("--batch").map(|v| v.parse().expect("--batch B")).unwrap_or(1000).max(1);
    let dir = std::path::PathBuf::from(arg("--dir").unwrap_or_else(|| "/tmp/segkit-floor".into()));
    let parse_client = |c: &str| match c {
        "action" => ClientKind::Action,
        "reqwest" => ClientKind::Reqwest,
        "hyper" => ClientKind::Hyper,
        other => panic!("unknown client `{other}` (action, reqwest, hyper)"),
    };
    let group_commit = std::env::args().any(|a| a == "--group-commit");
    let (kind, ledger, claim) = match mode.as_str() {
        "action" | "reqwest" | "hyper" => (parse_client(&mode), false, false),
        "ledger" | "ledger-claim" => {
            (parse_client(&arg("--client").unwrap_or_else(|| "hyper".into())), true, mode == "ledger-claim")
        }
        other => panic!("unknown mode `{other}` (action, reqwest, hyper, ledger, ledger-claim)"),
    };

    reset_receiver(&receiver);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    // The ledger's N rows, in one transaction (the trigger's part).
    let conn = if ledger { Some(create_ledger(&dir, n).expect("the ledger")) } else { None };
    let insert_s = t0.elapsed().as_secs_f64();
    let insert_cpu_s = cpu_seconds() - cpu0;

    let cpu1 = cpu_seconds();
    let t1 = Instant::now();
    let mut workers = clients(kind, &receiver, concurrency).await;
    let (row_tx, row_rx) = mpsc::channel::<Row>(concurrency * 2);
    let row_rx = Arc::new(Mutex::new(row_rx));
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(Outcome, Option<OwnedSemaphorePermit>)>();
    // With `--group-commit`: a slot per delivery sent and not yet recorded.
    let window_len: usize = arg("--window").map(|v| v.parse().expect("--window W")).unwrap_or(concurrency * 2).max(1);
    let window = (ledger && group_commit).then(|| Arc::new(Semaphore::new(window_len)));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut handles = vec![];
    for mut client in workers.drain(..) {
        let (rows, out, ok, failed) = (row_rx.clone(), out_tx.clone(), ok.clone(), failed.clone());
        let window = window.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let permit = match &window {
                    Some(w) => Some(w.clone().acquire_owned().await.expect("the window")),
                    None => None,
                };
                let row = { rows.lock().await.recv().await };
                let Some(row) = row else { break };
                let status = client.send(&row).await;
                if (200..300).contains(&status) { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                if ledger {
                    let _ = out.send(((row.id, status), permit));
                }
            }
        }));
    }
    drop(out_tx);

    // The feeder: rows from the ledger (the next batch read or claimed while the current one is sent), or made.
    let (ops_tx, ops_rx) = mpsc::unbounded_channel::<LedgerOp>();
    let db = conn.map(|c| std::thread::spawn(move || ledger_thread(c, claim, ops_rx)));
    let feeder = {
        let ops = ops_tx.clone();
        tokio::spawn(async move {
            if !ledger {
                for user in 1..=n {
                    if row_tx.send(Row { id: user, user, key: key_of(user) }).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let next = |after: i64| {
                let (reply, rx) = oneshot::channel();
                ops.send(LedgerOp::Next { after, limit: batch, reply }).expect("the ledger thread");
                rx
            };
            let mut pending = next(0);
            loop {
                let rows = pending.await.expect("the ledger thread");
                let Some(last) = rows.last().map(|r| r.id) else { break };
                let full = rows.len() == batch;
                // Ask for the next batch now: the ledger thread reads (claims) it while this one is sent.
                pending = if full { next(last) } else { oneshot::channel().1 };
                for row in rows {
                    if row_tx.send(row).await.is_err() {
                        return;
                    }
                }
                if !full {
                    break;
                }
            }
        })
    };
    // The recorder: a batch's outcomes in one durable transaction, while the next batch is sent.
    let recorder = {
        let ops = ops_tx;
        tokio::spawn(async move {
            let mut commits = vec![];
            if group_commit {
                // Everything sent while the previous group committed, in one transaction; slots back after it.
                let mut count = 0;
                while let Some(first) = out_rx.recv().await {
                    let mut group = vec![first];
                    while let Ok(o) = out_rx.try_recv() {
                        group.push(o);
                    }
                    let (outcomes, permits): (Vec<Outcome>, Vec<_>) = group.into_iter().unzip();
                    let (done, rx) = oneshot::channel();
                    ops.send(LedgerOp::Record { outcomes, done }).expect("the ledger thread");
                    rx.await.expect("a recorded group");
                    drop(permits);
                    count += 1;
                }
                return count;
            }
            let mut group = Vec::with_capacity(batch);
            while let Some((o, _)) = out_rx.recv().await {
                group.push(o);
                if group.len() == batch {
                    let (done, rx) = oneshot::channel();
                    let outcomes = std::mem::replace(&mut group, Vec::with_capacity(batch));
                    ops.send(LedgerOp::Record { outcomes, done }).expect("the ledger thread");
                    commits.push(rx);
                }
            }
            if !group.is_empty() {
                let (done, rx) = oneshot::channel();
                ops.send(LedgerOp::Record { outcomes: group, done }).expect("the ledger thread");
                commits.push(rx);
            }
            let count = commits.len();
            for c in commits {
                c.await.expect("a recorded batch");
            }
            count
        })
    };
    feeder.await.expect("the feeder");
    for h in handles {
        h.await.expect("a worker");
    }
    let transactions = recorder.await.expect("the recorder");
    if let Some(db) = db {
        db.join().expect("the ledger thread").expect("the ledger's statements");
    }
    let send_s = t1.elapsed().as_secs_f64();
    let send_cpu_s = cpu_seconds() - cpu1;
    let total_s = t0.elapsed().as_secs_f64();
    let total_cpu_s = cpu_seconds() - cpu0;
    let delivered = ok.load(Ordering::Relaxed);
    let mut by_status = serde_json::Map::new();
    if ledger {
        let c = Connection::open(dir.join("ledger.db")).expect("the ledger");
        let mut q = c.prepare("SELECT status, count(*) FROM deliveries GROUP BY status").expect("a count");
        for r in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).expect("counts") {
            let (s, k) = r.expect("a count");
            by_status.insert(s, json!(k));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let out = json!({
        "floor": mode,
        "client": format!("{kind:?}").to_lowercase(),
        "entities": n,
        "concurrency": concurrency,
        "batch": batch,
        "group_commit": group_commit,
        "window": if ledger && group_commit { json!(window_len) } else { json!(null) },
        "delivered": delivered,
        "failed": failed.load(Ordering::Relaxed),
        "ledger_by_status": by_status,
        "outcome_transactions": transactions,
        // The ledger's N inserts in one transaction (the trigger's part of the work).
        "insert_s": insert_s,
        "insert_cpu_us_per_row": insert_cpu_s * 1e6 / n.max(1) as f64,
        // The sends (and, with a ledger, the reads/claims and outcome transactions), from the first connection on.
        "send_per_s": delivered as f64 / send_s,
        "send_cpu_us_per_delivery": send_cpu_s * 1e6 / delivered.max(1) as f64,
        "send_cores_busy": send_cpu_s / send_s,
        // Insert and sends together (comparable with segkit-dispatch-bench's deliveries_per_s).
        "deliveries_per_s": delivered as f64 / total_s,
        "cpu_us_per_delivery": total_cpu_s * 1e6 / delivered.max(1) as f64,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{out}");
}
