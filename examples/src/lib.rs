//! The README quickstart, the whole loop: sync named sources, evaluate segments, a workflow on `entered` that
//! sends a signed webhook to a receiver on 127.0.0.1, the delivery ledger, then an update and exactly one
//! webhook per newly entered customer.
//!
//! `cargo run -p segkit-examples --example quickstart` calls [`quickstart`]; `tests/quickstart.rs` calls it too
//! and checks what the [`Receiver`] got. The Python and Node quickstarts are in `python/` and `node/`.

mod receiver;

use std::path::Path;
use std::sync::Arc;

use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::deps::arrow::util::pretty::pretty_format_batches;
use segkit::rules::Rule;
use segkit::sources::SourceDefinition;
use segkit::spec::from_value;
use segkit::workflow::{DeliveryFilter, LedgerRow};
use segkit::{Attribute, DataType, Entity, FixedClock, Link, SegmentDefinition, Workspace, WorkspaceOptions};
use serde_json::json;

pub use receiver::{Received, Receiver};

/// The sample data: `customers.csv`, `purchases.ndjson`, `customers_update.csv`.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// The environment variable holding the webhook secret; the workflow refers to it as `env:QUICKSTART_HOOK_SECRET`.
pub const SECRET_VAR: &str = "QUICKSTART_HOOK_SECRET";

/// What one evaluation round of the quickstart did, for tests.
#[derive(Debug, Clone)]
pub struct Round {
    /// The keys that entered `high_value` in this round's evaluation.
    pub entered: Vec<String>,
    /// The ledger rows this round's evaluation wrote, after the dispatch.
    pub ledger: Vec<LedgerRow>,
    /// The webhooks the receiver got during this round's dispatch, by entity key.
    pub received: Vec<Received>,
}

/// Runs the quickstart in the (emptied) workspace directory `dir`, printing what happens; returns the two
/// rounds (first evaluation, after the update).
pub async fn quickstart(dir: &Path) -> segkit::Result<Vec<Round>> {
    let _ = std::fs::remove_dir_all(dir); // start fresh so the output is reproducible
    let options = WorkspaceOptions::default()
        .source_factory(segkit_connectors::registry())
        .action_factory(segkit_actions::registry());
    let ws = Workspace::open_with(dir, options).await?;
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-30T12:00:00Z")?));

    // 1. Two entities: customers (a keyed profile) and their purchases (events linked to a customer).
    ws.define_entity(
        Entity::profile("customer", "customer_id")
            .attribute(Attribute::new("customer_id", DataType::Int64))
            .attribute(Attribute::new("email", DataType::String).pii())
            .attribute(Attribute::new("country", DataType::String).indexed())
            .attribute(Attribute::new("plan", DataType::String))
            .attribute(Attribute::new("ltv", DataType::Float64).describe("lifetime value, EUR"))
            .attribute(Attribute::new("signed_up", DataType::Date))
            .attribute(Attribute::new("last_seen", DataType::Timestamp))
            .attribute(Attribute::new("tags", "list<string>".parse()?)),
    )
    .await?;
    ws.define_entity(
        Entity::event("purchase", "at")
            .with_key("order_id")
            .attribute(Attribute::new("order_id", DataType::Int64))
            .attribute(Attribute::new("customer_id", DataType::Int64))
            .attribute(Attribute::new("at", DataType::Timestamp))
            .attribute(Attribute::new("amount", DataType::Float64))
            .attribute(Attribute::new("status", DataType::String))
            .link(Link::new("customer_id", "customer")),
    )
    .await?;

    // 2. Named sources over a CSV and an NDJSON file, synced; bad rows are quarantined, not dropped.
    let sources = [
        ("customers", "customer", json!({"type": "csv", "path": format!("{DATA}/customers.csv")})),
        ("purchases", "purchase", json!({"type": "ndjson", "path": format!("{DATA}/purchases.ndjson")})),
        ("customer_updates", "customer", json!({"type": "csv", "path": format!("{DATA}/customers_update.csv")})),
    ];
    for (name, entity, config) in sources {
        ws.define_source(SourceDefinition::new(name, entity, config)).await?;
    }
    for name in ["customers", "purchases"] {
        sync(&ws, name).await?;
    }

    // 3. Three segments, in the three rule dialects segkit reads.
    let segments = [
        (
            "vip_cn",
            json!({"and": [
                {"attribute": "country", "op": "eq", "value": "CN"},
                {"attribute": "tags", "op": "has_any", "value": ["vip"]}
            ]}),
        ),
        (
            "high_value",
            json!({"combinator": "or", "rules": [
                {"field": "ltv", "operator": ">", "value": "1000"},
                {"field": "plan", "operator": "=", "value": "enterprise"}
            ]}),
        ),
        (
            "active_this_week",
            json!({"and": [
                {">=": [{"var": "last_seen"}, "2026-06-23T12:00:00Z"]},
                {"!": {"==": [{"var": "plan"}, "free"]}}
            ]}),
        ),
    ];
    for (name, rule) in &segments {
        ws.define_segment(SegmentDefinition::new(*name, "customer", Rule::parse(rule, Default::default())?)).await?;
    }

    // 4. A receiver on 127.0.0.1, and a workflow that sends it a signed webhook when a customer enters
    //    high_value. The secret is an `env:` reference; the value is set here only to keep the example
    //    self-contained.
    if std::env::var_os(SECRET_VAR).is_none() {
        std::env::set_var(SECRET_VAR, "quickstart-demo-secret");
    }
    let secret = std::env::var(SECRET_VAR).map_err(|e| segkit::Error::InvalidArgument(format!("{SECRET_VAR}: {e}")))?;
    let receiver = Receiver::start(secret.into_bytes())?;
    ws.define_template(from_value(json!({"name": "welcome", "channel": "webhook", "entity": "customer",
        "parts": {"text": "Welcome to {{ segment }}, customer {{ key }} ({{ entity.plan }}, {{ entity.country }})"}}))?)
        .await?;
    ws.define_workflow(from_value(json!({"name": "welcome_high_value",
        "trigger": {"type": "entered", "segment": "high_value"},
        "steps": [{"name": "hook", "type": "action", "template": "welcome",
                   "action": {"type": "webhook", "url": format!("{}/hooks/welcome", receiver.url()),
                              "secret": format!("env:{SECRET_VAR}")}}]}))?)
        .await?;

    // 5. Evaluate, dispatch the deliveries the evaluation wrote to the ledger; then the update, and again.
    let mut rounds = Vec::new();
    let mut last_row = 0;
    for round in ["first evaluation", "after syncing customers_update.csv"] {
        if round.starts_with("after") {
            println!();
            sync(&ws, "customer_updates").await?;
        }
        println!("\n== {round} ==");
        let mut entered = Vec::new();
        for (name, _) in &segments {
            let run = ws.evaluate(name).await?;
            println!(
                "{name:<17} run {} | {} members {:?} | entered {:?} | exited {:?}",
                run.run,
                run.count,
                keys(&run.members),
                keys(&run.entered),
                keys(&run.exited)
            );
            if *name == "high_value" {
                entered = keys(&run.entered).iter().map(i64::to_string).collect();
            }
        }
        let seen = receiver.received().len();
        let report = ws.dispatch_due(1000, 4).await?;
        println!("dispatch_due: {} claimed, {} delivered, {} dead", report.claimed, report.delivered, report.dead);
        let mut ledger = ws.deliveries(&DeliveryFilter::default(), 1000)?;
        ledger.retain(|r| r.id > last_row);
        ledger.sort_by_key(|r| r.id);
        for row in &ledger {
            println!(
                "  ledger #{:<2} {}/{} customer {} {} ({}) key {}",
                row.id,
                row.workflow,
                row.step,
                row.entity_key,
                row.status.as_str(),
                row.receipt.as_deref().unwrap_or("-"),
                row.idempotency_key
            );
        }
        last_row = ledger.last().map_or(last_row, |r| r.id);
        let mut received = receiver.received()[seen..].to_vec();
        received.sort_by(|a, b| a.entity_key.cmp(&b.entity_key)); // they arrive concurrently
        for r in &received {
            println!(
                "  receiver: customer {} signature {} Idempotency-Key {} \"{}\"",
                r.entity_key,
                if r.signature_ok { "ok" } else { "BAD" },
                r.idempotency_key,
                r.text
            );
        }
        rounds.push(Round { entered, ledger, received });
    }

    println!("\nSELECT status, count(*) FROM segkit.deliveries GROUP BY status");
    let batches = ws.sql("SELECT status, count(*) AS n FROM segkit.deliveries GROUP BY status ORDER BY status").await?;
    println!("{}", pretty_format_batches(&batches)?);
    println!("vip_cn count = {}; preview of high_value (pii masked):", ws.count("vip_cn").await?);
    let preview = ws.preview("high_value", 3).await?;
    println!("{}", pretty_format_batches(&[preview.project(&[0, 1, 2, 4])?])?);
    Ok(rounds)
}

/// Syncs the named source `name` and prints its report.
async fn sync(ws: &Workspace, name: &str) -> segkit::Result<()> {
    let r = ws.sync(name).await?;
    println!(
        "synced {name}: {} rows written ({} inserted, {} updated), {} quarantined",
        r.rows_written, r.rows_inserted, r.rows_updated, r.rows_quarantined
    );
    for q in &r.quarantine_sample {
        println!("  row {}: {}", q.row, q.reason);
    }
    Ok(())
}

/// The `customer_id` column (the first) of a members / entered / exited batch.
fn keys(batch: &RecordBatch) -> Vec<i64> {
    batch.column(0).as_primitive::<Int64Type>().values().to_vec()
}
