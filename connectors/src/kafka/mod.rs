//! Kafka topics as sources (feature `kafka`): JSON messages read from assigned partitions or through a consumer
//! group, with the per-partition next offsets as the source cursor. See `docs/kafka.md`.
//!
//! - **Assigned partitions** (no `group_id`): the partitions listed in `partitions`, or every partition of the
//!   topic.
//! - **Consumer group** (`group_id`): the partitions the group coordinator assigns to this consumer. The
//!   catalog cursor stays the truth: at the start of each scan the cursor segkit committed with the previous
//!   snapshot is committed to the group, so the group's offsets only ever move to positions an ingest commit
//!   already contains, and reading starts exactly there.
//!
//! Every scan **drains**: it reads each partition up to its high watermark as of the start of the scan (at most
//! `max_messages` records in all, when set) and ends. [`sync_continuous`] runs one sync (one commit) per
//! micro-batch until cancelled.
//!
//! The value's top-level JSON fields named in `fields` become text columns (ingest parses them by attribute type
//! and quarantines values of the wrong type); the metadata columns [`KEY_COLUMN`], [`HEADERS_COLUMN`],
//! [`PARTITION_COLUMN`], [`OFFSET_COLUMN`] and [`TIMESTAMP_COLUMN`] are available for the mapping. A message
//! that is not a JSON object is delivered as a malformed row (`_raw` / `_error`) naming its partition and offset.

mod continuous;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::Value;

use segkit::source::{BatchStream, ScanRequest, Source, SourceCapabilities};
use segkit::sources::{parse_config, resolve_secret, SourceRegistry};
use segkit::{Error, Result};

pub use continuous::{sync_continuous, ContinuousOptions, ContinuousReport};

/// Column holding the message key as text (invalid UTF-8 replaced by U+FFFD), null without a key.
pub const KEY_COLUMN: &str = "_key";
/// Column holding the message headers as a JSON object text (`{"name": "value", …}`, a header without a value
/// as `null`; of repeated names the last wins), null without headers.
pub const HEADERS_COLUMN: &str = "_headers";
/// Column holding the partition number (Int32).
pub const PARTITION_COLUMN: &str = "_partition";
/// Column holding the message offset (Int64).
pub const OFFSET_COLUMN: &str = "_offset";
/// Column holding the message timestamp as RFC 3339 text in UTC with milliseconds, null when the broker gave none.
pub const TIMESTAMP_COLUMN: &str = "_timestamp";

/// How much of a malformed message's value is kept as evidence.
const EVIDENCE_BYTES: usize = 1024;
/// The most partitions a source reads (a bound on the cursor and on the assignment).
pub const MAX_PARTITIONS: usize = 10_000;

/// The JSON config of a `kafka` source.
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KafkaConfig {
    #[allow(dead_code)]
    r#type: String,
    /// `host:port[,host:port…]`.
    brokers: String,
    topic: String,
    /// Partitions to read (assigned mode); absent: all of the topic's.
    #[serde(default)]
    partitions: Option<Vec<i32>>,
    /// Consumer-group mode.
    #[serde(default)]
    group_id: Option<String>,
    /// Top-level fields of the JSON value delivered as columns.
    fields: Vec<String>,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    /// At most this many records per scan (micro-batches); absent: up to the high watermarks.
    #[serde(default)]
    max_messages: Option<u64>,
    /// Bound on every broker operation and on the wait for the next message while behind the high watermark.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// Bound on joining the consumer group.
    #[serde(default = "default_group_timeout_ms")]
    group_join_timeout_ms: u64,
    #[serde(default)]
    security_protocol: Option<String>,
    #[serde(default)]
    sasl_mechanism: Option<String>,
    #[serde(default)]
    sasl_username: Option<String>,
    /// Must be an `env:NAME` reference.
    #[serde(default)]
    sasl_password: Option<String>,
    /// Extra librdkafka properties (no secrets; see [`refused_property`]).
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

fn default_batch_size() -> usize {
    1000
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_group_timeout_ms() -> u64 {
    60_000
}

/// librdkafka properties a config may not set in `properties`: secrets (give `sasl_password` as `env:NAME`)
/// and the settings this connector owns.
fn refused_property(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    if k.contains("password") || k.contains("secret") || k.contains("sasl.jaas") || k.ends_with(".key.pem") {
        return Some("is a secret; only `sasl_password` (as an env:NAME reference) is accepted");
    }
    let owned = [
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "enable.partition.eof",
    ];
    owned.contains(&k.as_str()).then_some("is set by the connector")
}

/// A Kafka topic read as JSON messages (see the [module documentation](self)).
pub struct KafkaSource {
    config: KafkaConfig,
    /// The resolved SASL password (never printed).
    password: Option<String>,
    schema: SchemaRef,
    /// The cursor after the last record yielded by the latest scan.
    cursor: Arc<Mutex<Option<Value>>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.config.topic)
            .field("partitions", &self.config.partitions)
            .field("group_id", &self.config.group_id)
            .field("fields", &self.config.fields)
            .field("sasl_username", &self.config.sasl_username)
            .field("sasl_password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Registers type `kafka` on `registry`.
pub fn register(registry: &mut SourceRegistry) {
    registry.register("kafka", |c| Ok(Arc::new(KafkaSource::from_config(c)?) as _));
}

impl KafkaSource {
    /// Builds a source from its JSON config (`{"type": "kafka", "brokers": …, "topic": …, "fields": […], …}`;
    /// see `docs/kafka.md`). Errors name the field.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: KafkaConfig = parse_config(config)?;
        let bad = |f: &str, m: &str| Err(Error::Definition { path: format!("source.{f}"), message: m.to_string() });
        if c.brokers.trim().is_empty() {
            return bad("brokers", "give at least one host:port");
        }
        if c.topic.is_empty() || c.topic.len() > 249 {
            return bad("topic", "a topic name has 1 to 249 characters");
        }
        if let Some(p) = &c.partitions {
            if p.is_empty() || p.len() > MAX_PARTITIONS || p.iter().any(|p| *p < 0) {
                return bad("partitions", "give 1 to 10000 partition numbers ≥ 0, or leave it out for all");
            }
            if c.group_id.is_some() {
                return bad(
                    "partitions",
                    "a consumer group is assigned its partitions; give either partitions or group_id",
                );
            }
        }
        if matches!(&c.group_id, Some(g) if g.is_empty()) {
            return bad("group_id", "must not be empty");
        }
        if c.fields.is_empty() {
            return bad("fields", "name the value fields to read (the metadata columns come on top)");
        }
        let reserved = [
            KEY_COLUMN,
            HEADERS_COLUMN,
            PARTITION_COLUMN,
            OFFSET_COLUMN,
            TIMESTAMP_COLUMN,
            segkit::source::MALFORMED_COLUMN,
            segkit::source::MALFORMED_REASON_COLUMN,
        ];
        let mut seen = std::collections::HashSet::new();
        for f in &c.fields {
            if reserved.contains(&f.as_str()) {
                return bad("fields", &format!("`{f}` is a metadata column name; rename it with the mapping"));
            }
            if !seen.insert(f.as_str()) {
                return bad("fields", &format!("`{f}` is given twice"));
            }
        }
        if c.batch_size == 0 || c.batch_size > 1_000_000 {
            return bad("batch_size", "must be 1 to 1000000");
        }
        if c.max_messages == Some(0) {
            return bad("max_messages", "must be at least 1 (leave it out to drain)");
        }
        if !(100..=600_000).contains(&c.timeout_ms) {
            return bad("timeout_ms", "must be 100 to 600000");
        }
        if !(1000..=600_000).contains(&c.group_join_timeout_ms) {
            return bad("group_join_timeout_ms", "must be 1000 to 600000");
        }
        for k in c.properties.keys() {
            if let Some(why) = refused_property(k) {
                return bad(&format!("properties.{k}"), &format!("`{k}` {why}"));
            }
        }
        let password = match &c.sasl_password {
            None => None,
            Some(p) if !p.starts_with("env:") => {
                return bad("sasl_password", "give the password as an env:NAME reference, never inline");
            }
            Some(p) => Some(resolve_secret("sasl_password", p)?),
        };
        let mut fields: Vec<Field> = c.fields.iter().map(|f| Field::new(f, DataType::Utf8, true)).collect();
        fields.extend([
            Field::new(KEY_COLUMN, DataType::Utf8, true),
            Field::new(HEADERS_COLUMN, DataType::Utf8, true),
            Field::new(PARTITION_COLUMN, DataType::Int32, false),
            Field::new(OFFSET_COLUMN, DataType::Int64, false),
            Field::new(TIMESTAMP_COLUMN, DataType::Utf8, true),
            Field::new(segkit::source::MALFORMED_COLUMN, DataType::Utf8, true),
            Field::new(segkit::source::MALFORMED_REASON_COLUMN, DataType::Utf8, true),
        ]);
        Ok(KafkaSource {
            config: c,
            password,
            schema: Arc::new(Schema::new(fields)),
            cursor: Arc::new(Mutex::new(None)),
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source { source_name: self.name(), message: message.into(), cause: None }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// The librdkafka client config (the password set from the resolved secret; never printed).
    fn client_config(&self) -> ClientConfig {
        let c = &self.config;
        let mut cc = ClientConfig::new();
        for (k, v) in &c.properties {
            cc.set(k, v);
        }
        let group = c.group_id.clone().unwrap_or_else(|| format!("segkit-assigned-{}", c.topic));
        cc.set("bootstrap.servers", &c.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("socket.timeout.ms", c.timeout_ms.max(10).to_string())
            .set("socket.connection.setup.timeout.ms", c.timeout_ms.max(1000).to_string());
        if !c.properties.contains_key("queued.max.messages.kbytes") {
            // Bounded prefetch: at most 16 MB of messages queued per partition ahead of the reader.
            cc.set("queued.max.messages.kbytes", "16384");
        }
        if let Some(p) = &c.security_protocol {
            cc.set("security.protocol", p);
        }
        if let Some(m) = &c.sasl_mechanism {
            cc.set("sasl.mechanism", m);
        }
        if let Some(u) = &c.sasl_username {
            cc.set("sasl.username", u);
        }
        if let Some(p) = &self.password {
            cc.set("sasl.password", p);
        }
        cc
    }

    fn consumer(&self) -> Result<Arc<StreamConsumer>> {
        self.client_config()
            .create::<StreamConsumer>()
            .map(Arc::new)
            .map_err(|e| self.err(format!("cannot create the Kafka consumer: {}", redact(&e.to_string()))))
    }

    /// The config's group id (consumer-group mode).
    pub fn group_id(&self) -> Option<&str> {
        self.config.group_id.as_deref()
    }

    /// Commits the offsets of `cursor` (as reported by [`Source::cursor`] and stored in the catalog) to the
    /// consumer group; a no-op in assigned mode or without a cursor. Called by every scan in group mode for
    /// the cursor it resumes from, and by [`sync_continuous`] after each committed sync.
    pub async fn commit_group_offsets(&self, cursor: Option<&Value>) -> Result<()> {
        if self.config.group_id.is_none() {
            return Ok(());
        }
        let offsets = self.cursor_offsets(cursor)?;
        if offsets.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer()?;
        self.commit_offsets(&consumer, &offsets).await
    }

    async fn commit_offsets(&self, consumer: &Arc<StreamConsumer>, offsets: &HashMap<i32, i64>) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&self.config.topic, *p, Offset::Offset(*o))
                .map_err(|e| self.err(format!("bad offset {o} for partition {p}: {e}")))?;
        }
        let c = consumer.clone();
        let timeout = self.timeout();
        tokio::task::spawn_blocking(move || {
            // A synchronous commit waits for the coordinator; bound it by the source timeout.
            let deadline = Instant::now() + timeout;
            loop {
                match c.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() < deadline && is_retriable(&e) => {
                        std::thread::sleep(Duration::from_millis(200))
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(|e| self.err(format!("the commit task failed: {e}")))?
        .map_err(|e| {
            self.err(format!(
                "cannot commit the offsets of the catalog cursor to consumer group `{}`: {}",
                self.config.group_id.as_deref().unwrap_or(""),
                redact(&e.to_string())
            ))
        })
    }

    /// `{"topic": …, "offsets": {"<partition>": next_offset}}` → partition → next offset. A cursor of another
    /// topic is refused (the definition changed under the cursor).
    fn cursor_offsets(&self, cursor: Option<&Value>) -> Result<HashMap<i32, i64>> {
        let Some(cursor) = cursor else { return Ok(HashMap::new()) };
        let bad =
            || self.err(format!("the stored cursor is not a Kafka cursor of topic `{}`: {cursor}", self.config.topic));
        if cursor.get("topic").and_then(Value::as_str) != Some(self.config.topic.as_str()) {
            return Err(bad());
        }
        let offsets = cursor.get("offsets").and_then(Value::as_object).ok_or_else(bad)?;
        if offsets.len() > MAX_PARTITIONS {
            return Err(bad());
        }
        offsets
            .iter()
            .map(|(p, o)| match (p.parse::<i32>(), o.as_i64()) {
                (Ok(p), Some(o)) if p >= 0 && o >= 0 => Ok((p, o)),
                _ => Err(bad()),
            })
            .collect()
    }

    fn make_cursor(&self, offsets: &HashMap<i32, i64>) -> Value {
        let sorted: BTreeMap<i32, i64> = offsets.iter().map(|(p, o)| (*p, *o)).collect();
        let offsets: serde_json::Map<String, Value> =
            sorted.into_iter().map(|(p, o)| (p.to_string(), Value::from(o))).collect();
        serde_json::json!({"topic": self.config.topic, "offsets": offsets})
    }

    /// The topic's partitions (from the broker's metadata), or an error naming the source.
    async fn topic_partitions(&self, consumer: &Arc<StreamConsumer>) -> Result<Vec<i32>> {
        let c = consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.timeout();
        let md = tokio::task::spawn_blocking(move || {
            c.fetch_metadata(Some(&topic), timeout).map(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| (t.error(), t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>()))
            })
        })
        .await
        .map_err(|e| self.err(format!("the metadata task failed: {e}")))?
        .map_err(|e| {
            self.err(format!(
                "cannot reach the Kafka brokers {} within {} ms: {}",
                self.config.brokers,
                self.config.timeout_ms,
                redact(&e.to_string())
            ))
        })?;
        match md {
            Some((None, ps)) if !ps.is_empty() => Ok(ps),
            Some((Some(e), _)) => Err(self.err(format!("topic `{}`: {e:?}", self.config.topic))),
            _ => Err(self.err(format!("topic `{}` does not exist", self.config.topic))),
        }
    }

    /// (low, high) watermarks of each partition.
    async fn watermarks(&self, consumer: &Arc<StreamConsumer>, partitions: &[i32]) -> Result<HashMap<i32, (i64, i64)>> {
        let c = consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.timeout();
        let partitions = partitions.to_vec();
        tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|p| c.fetch_watermarks(&topic, *p, timeout).map(|w| (*p, w)).map_err(|e| (*p, e)))
                .collect::<std::result::Result<HashMap<_, _>, _>>()
        })
        .await
        .map_err(|e| self.err(format!("the watermark task failed: {e}")))?
        .map_err(|(p, e)| {
            self.err(format!(
                "cannot read the offsets of partition {p} from the Kafka brokers {} within {} ms: {}",
                self.config.brokers,
                self.config.timeout_ms,
                redact(&e.to_string())
            ))
        })
    }

    /// Joins the group and waits (bounded) for an assignment. Messages received meanwhile are dropped: the scan
    /// seeks every partition it reads to its catalog position afterwards (a seek discards what was prefetched).
    async fn join_group(&self, consumer: &Arc<StreamConsumer>) -> Result<Vec<i32>> {
        consumer.subscribe(&[&self.config.topic]).map_err(|e| {
            self.err(format!("cannot subscribe to `{}`: {}", self.config.topic, redact(&e.to_string())))
        })?;
        let deadline = Instant::now() + Duration::from_millis(self.config.group_join_timeout_ms);
        loop {
            let assigned = consumer.assignment().map(|tpl| {
                tpl.elements_for_topic(&self.config.topic).iter().map(|e| e.partition()).collect::<Vec<_>>()
            });
            if let Ok(a) = assigned {
                if !a.is_empty() {
                    return Ok(a);
                }
            }
            if Instant::now() >= deadline {
                return Err(self.err(format!(
                    "consumer group `{}` assigned no partition of `{}` within {} ms (brokers {})",
                    self.config.group_id.as_deref().unwrap_or(""),
                    self.config.topic,
                    self.config.group_join_timeout_ms,
                    self.config.brokers
                )));
            }
            if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
                match m {
                    Ok(_) => {}
                    Err(e) if is_retriable(&e) => {}
                    Err(e) => return Err(self.err(format!("consumer group join failed: {}", redact(&e.to_string())))),
                }
            }
        }
    }
}

/// Whether a client error may go away on its own (a coordinator loading, a transport hiccup).
fn is_retriable(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::CoordinatorLoadInProgress
                | C::CoordinatorNotAvailable
                | C::NotCoordinator
                | C::RequestTimedOut
                | C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::RebalanceInProgress
        )
    )
}

/// Client error texts may quote the config; make sure no `sasl.password=…` survives.
fn redact(s: &str) -> String {
    match s.find("sasl.password") {
        Some(i) => format!("{}sasl.password=<redacted>", &s[..i]),
        None => s.to_string(),
    }
}

/// A message copied out of the client's buffer.
struct Received {
    partition: i32,
    offset: i64,
    key: Option<String>,
    headers: Option<String>,
    timestamp: Option<String>,
    payload: Option<Vec<u8>>,
}

impl Received {
    fn from<M: Message>(m: &M) -> Self {
        let headers = m.headers().map(|h| {
            let mut obj = serde_json::Map::new();
            for i in 0..h.count() {
                if let Some(h) = h.try_get(i) {
                    let v =
                        h.value.map(|v| Value::String(String::from_utf8_lossy(v).into_owned())).unwrap_or(Value::Null);
                    obj.insert(h.key.to_string(), v);
                }
            }
            Value::Object(obj).to_string()
        });
        let timestamp = m
            .timestamp()
            .to_millis()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        Received {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            timestamp,
            payload: m.payload().map(<[u8]>::to_vec),
        }
    }
}

/// Builds one batch of the source's schema.
struct BatchBuilder {
    fields: Vec<String>,
    values: Vec<StringBuilder>,
    key: StringBuilder,
    headers: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: StringBuilder,
    raw: StringBuilder,
    error: StringBuilder,
    rows: usize,
}

impl BatchBuilder {
    fn new(fields: &[String]) -> Self {
        BatchBuilder {
            fields: fields.to_vec(),
            values: fields.iter().map(|_| StringBuilder::new()).collect(),
            key: StringBuilder::new(),
            headers: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: StringBuilder::new(),
            raw: StringBuilder::new(),
            error: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, topic: &str, m: Received) {
        let parsed: std::result::Result<serde_json::Map<String, Value>, String> = match &m.payload {
            None => Err("the message has no value (a tombstone)".into()),
            Some(p) => match serde_json::from_slice::<Value>(p) {
                Ok(Value::Object(o)) => Ok(o),
                Ok(other) => Err(format!("the value is JSON but not an object ({})", kind(&other))),
                Err(e) => Err(format!("the value is not JSON: {e}")),
            },
        };
        match parsed {
            Ok(obj) => {
                for (f, b) in self.fields.iter().zip(&mut self.values) {
                    match obj.get(f) {
                        None | Some(Value::Null) => b.append_null(),
                        Some(Value::String(s)) => b.append_value(s),
                        Some(v) => b.append_value(v.to_string()),
                    }
                }
                self.raw.append_null();
                self.error.append_null();
            }
            Err(reason) => {
                self.values.iter_mut().for_each(StringBuilder::append_null);
                let p = m.payload.as_deref().unwrap_or_default();
                let mut end = p.len().min(EVIDENCE_BYTES);
                let text = loop {
                    match std::str::from_utf8(&p[..end]) {
                        Ok(s) => break s.to_string(),
                        Err(e) if e.valid_up_to() > 0 && e.error_len().is_none() => end = e.valid_up_to(),
                        Err(_) => break String::from_utf8_lossy(&p[..end]).into_owned(),
                    }
                };
                self.raw.append_value(text);
                self.error.append_value(format!(
                    "kafka topic {topic} partition {} offset {}: {reason}",
                    m.partition, m.offset
                ));
            }
        }
        self.key.append_option(m.key);
        self.headers.append_option(m.headers);
        self.partition.append_value(m.partition);
        self.offset.append_value(m.offset);
        self.timestamp.append_option(m.timestamp);
        self.rows += 1;
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = self.values.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
        cols.push(Arc::new(self.key.finish()));
        cols.push(Arc::new(self.headers.finish()));
        cols.push(Arc::new(self.partition.finish()));
        cols.push(Arc::new(self.offset.finish()));
        cols.push(Arc::new(self.timestamp.finish()));
        cols.push(Arc::new(self.raw.finish()));
        cols.push(Arc::new(self.error.finish()));
        self.rows = 0;
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
/// Turns the next offset of each partition into the source cursor.
type CursorOf = Arc<dyn Fn(&HashMap<i32, i64>) -> Value + Send + Sync>;

/// The state of one draining scan.
struct Drain {
    name: String,
    topic: String,
    schema: SchemaRef,
    consumer: Arc<StreamConsumer>,
    /// Next offset to yield, per partition being read.
    next: HashMap<i32, i64>,
    /// High watermark at the start, per partition still being read.
    end: HashMap<i32, i64>,
    /// The cursor so far (previous cursor merged with what was yielded).
    offsets: HashMap<i32, i64>,
    builder: BatchBuilder,
    batch_size: usize,
    remaining: Option<u64>,
    timeout: Duration,
    shared: Arc<Mutex<Option<Value>>>,
    cursor_of: CursorOf,
    done: bool,
    /// Partitions still to read, ascending: one partition is read at a time, so a scan yields its records in a
    /// deterministic order (partition, then offset) whatever the brokers interleave.
    order: std::collections::VecDeque<i32>,
    /// The partition being read.
    current: Option<i32>,
    /// Consumer-group mode (partitions paused and resumed) rather than assigned mode (assigned one by one).
    group: bool,
}

impl Drain {
    fn err(&self, message: String) -> Error {
        Error::Source { source_name: self.name.clone(), message, cause: None }
    }

    fn finished(&self) -> bool {
        self.end.is_empty() || self.remaining == Some(0)
    }

    /// Moves on to the next partition to read once the current one is done: assigns it at its next offset
    /// (assigned mode), or seeks and resumes it (group mode; the finished one is paused again).
    async fn start_next(&mut self) -> Result<()> {
        if let Some(p) = self.current {
            if self.end.contains_key(&p) {
                return Ok(());
            }
            if self.group {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, p);
                self.consumer.pause(&tpl).map_err(|e| self.err(format!("cannot pause partition {p}: {e}")))?;
            }
            self.current = None;
        }
        let Some(p) = self.order.pop_front() else { return Ok(()) };
        let Some(next) = self.next.get(&p).copied() else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, p, Offset::Offset(next))
            .map_err(|e| self.err(format!("partition {p}: {e}")))?;
        if self.group {
            let c = self.consumer.clone();
            let timeout = self.timeout;
            let resume = tpl.clone();
            tokio::task::spawn_blocking(move || c.resume(&resume).and_then(|()| c.seek_partitions(tpl, timeout)))
                .await
                .map_err(|e| self.err(format!("the seek task failed: {e}")))?
                .map_err(|e| {
                    self.err(format!("cannot seek partition {p} to the catalog cursor: {}", redact(&e.to_string())))
                })?;
        } else {
            self.consumer
                .assign(&tpl)
                .map_err(|e| self.err(format!("cannot assign partition {p}: {}", redact(&e.to_string()))))?;
        }
        self.current = Some(p);
        Ok(())
    }

    /// Takes one received message: yields it into the batch when it is the next one of a partition below its
    /// end, skips it otherwise.
    fn take(&mut self, m: Received) {
        let (Some(next), Some(end)) = (self.next.get(&m.partition).copied(), self.end.get(&m.partition).copied())
        else {
            return;
        };
        if Some(m.partition) != self.current || m.offset < next || m.offset >= end || self.remaining == Some(0) {
            return;
        }
        let p = m.partition;
        let o = m.offset;
        self.builder.push(&self.topic, m);
        self.next.insert(p, o + 1);
        self.offsets.insert(p, o + 1);
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        if o + 1 >= end {
            self.end.remove(&p);
        }
    }

    /// Partitions whose consumer position passed the end without a message to yield (transaction markers,
    /// compacted gaps) are done.
    fn check_positions(&mut self) {
        if let Ok(tpl) = self.consumer.position() {
            for e in tpl.elements_for_topic(&self.topic) {
                if let (Offset::Offset(pos), Some(end)) = (e.offset(), self.end.get(&e.partition()).copied()) {
                    if Some(e.partition()) == self.current
                        && pos >= end
                        && self.next.get(&e.partition()).is_some_and(|n| *n <= pos)
                    {
                        self.end.remove(&e.partition());
                        self.next.insert(e.partition(), end);
                        self.offsets.insert(e.partition(), end);
                    }
                }
            }
        }
    }

    /// The next batch, `None` at the end.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.done {
            return Ok(None);
        }
        let mut last_progress = Instant::now();
        while self.builder.rows < self.batch_size && !self.finished() {
            self.start_next().await?;
            match tokio::time::timeout(Duration::from_millis(250), self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    let m = Received::from(&m);
                    if Some(m.partition) == self.current {
                        last_progress = Instant::now();
                    }
                    self.take(m);
                }
                Ok(Err(e)) if is_retriable(&e) => {}
                Ok(Err(e)) => {
                    return Err(self.err(format!("reading `{}` failed: {}", self.topic, redact(&e.to_string()))))
                }
                Err(_) => {
                    self.check_positions();
                    if !self.finished() && last_progress.elapsed() >= self.timeout {
                        let behind: BTreeMap<i32, i64> = self
                            .end
                            .iter()
                            .map(|(p, end)| (*p, end - self.next.get(p).copied().unwrap_or(*end)))
                            .collect();
                        return Err(self.err(format!(
                            "no message from topic `{}` within {} ms while partitions are behind their high \
                             watermark (partition: messages left {behind:?})",
                            self.topic,
                            self.timeout.as_millis()
                        )));
                    }
                }
            }
        }
        let batch = if self.builder.rows > 0 { Some(self.builder.finish(&self.schema)?) } else { None };
        // The cursor moves with what is handed out, never with what was fetched.
        *self.shared.lock().expect("cursor lock") = Some((self.cursor_of)(&self.offsets));
        if batch.is_none() {
            self.done = true;
        }
        Ok(batch)
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn name(&self) -> String {
        format!("kafka:{}@{}", self.config.topic, self.config.brokers)
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        *self.cursor.lock().expect("cursor lock") = None;
        let mut offsets = self.cursor_offsets(request.cursor.as_ref())?;
        let consumer = self.consumer()?;
        let partitions = self.topic_partitions(&consumer).await?;
        let read = if self.config.group_id.is_some() {
            // The catalog cursor is the truth: commit it to the group (it is committed in the catalog, so every
            // record before it is in a committed snapshot), then join and read from there.
            if !offsets.is_empty() {
                self.commit_offsets(&consumer, &offsets).await?;
            }
            self.join_group(&consumer).await?
        } else {
            let read = match &self.config.partitions {
                None => partitions.clone(),
                Some(wanted) => {
                    if let Some(p) = wanted.iter().find(|p| !partitions.contains(p)) {
                        return Err(self.err(format!(
                            "topic `{}` has no partition {p} (it has {})",
                            self.config.topic,
                            partitions.len()
                        )));
                    }
                    wanted.clone()
                }
            };
            read
        };
        let marks = self.watermarks(&consumer, &read).await?;
        let mut next = HashMap::new();
        let mut end = HashMap::new();
        for p in &read {
            let (low, high) = marks[p];
            // Records deleted by retention cannot be read: start at the earliest one still there.
            let start = offsets.get(p).copied().unwrap_or(low).max(low);
            if start < high {
                next.insert(*p, start);
                end.insert(*p, high);
            }
            if offsets.get(p).is_some_and(|o| *o < low) {
                offsets.insert(*p, low);
            }
        }
        let group = self.config.group_id.is_some();
        if group {
            // Partitions are read one at a time (see `Drain::start_next`): pause them all first.
            let all = consumer.assignment().map_err(|e| self.err(format!("no assignment: {e}")))?;
            consumer.pause(&all).map_err(|e| self.err(format!("cannot pause partitions: {e}")))?;
        }
        let mut order: Vec<i32> = end.keys().copied().collect();
        order.sort_unstable();
        let this = self.make_cursor(&HashMap::new());
        let topic = self.config.topic.clone();
        let cursor_of: CursorOf = Arc::new(move |o| {
            let mut v = this.clone();
            let sorted: BTreeMap<i32, i64> = o.iter().map(|(p, o)| (*p, *o)).collect();
            v["offsets"] = Value::Object(sorted.into_iter().map(|(p, o)| (p.to_string(), Value::from(o))).collect());
            v
        });
        let drain = Drain {
            name: self.name(),
            topic,
            schema: self.schema.clone(),
            consumer,
            next,
            end,
            offsets,
            builder: BatchBuilder::new(&self.config.fields),
            batch_size: self.config.batch_size,
            remaining: self.config.max_messages,
            timeout: self.timeout(),
            shared: self.cursor.clone(),
            cursor_of,
            done: false,
            order: order.into(),
            current: None,
            group,
        };
        Ok(futures::stream::unfold(drain, |mut d| async move {
            match d.next_batch().await {
                Ok(Some(b)) => Some((Ok(b), d)),
                Ok(None) => None,
                Err(e) => {
                    d.done = true;
                    Some((Err(e), d))
                }
            }
        })
        .boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none().with_incremental()
    }

    async fn cursor(&self) -> Result<Option<Value>> {
        Ok(self.cursor.lock().expect("cursor lock").clone())
    }
}

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<KafkaConfig>(types)
}
