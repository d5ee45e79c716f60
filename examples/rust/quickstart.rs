//! The README quickstart: two entities, three segments, an update, and who entered and left.
//!
//! ```text
//! cargo run -p segkit-examples --example quickstart [-- WORKSPACE_DIR]
//! ```

use std::sync::Arc;

use segkit::deps::arrow::array::{Array, AsArray};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::deps::arrow::util::pretty::pretty_format_batches;
use segkit::rules::Rule;
use segkit::{
    Action, Attribute, DataType, Delivery, Entity, FixedClock, IngestOptions, Link, SegmentDefinition, Workspace,
};
use segkit_actions::JsonlFileAction;
use serde_json::json;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

fn keys(batch: &segkit::deps::arrow::array::RecordBatch) -> Vec<i64> {
    batch.column(0).as_primitive::<Int64Type>().values().to_vec()
}

#[tokio::main]
async fn main() -> segkit::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "quickstart-workspace".into());
    let _ = std::fs::remove_dir_all(&dir); // start fresh so the output is reproducible
    let ws = Workspace::open(&dir).await?;
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

    // 2. Ingest a CSV and an NDJSON file; bad rows are quarantined, not dropped.
    for (entity, file) in [("customer", "customers.csv"), ("purchase", "purchases.ndjson")] {
        let source = segkit_connectors::open(&format!("{DATA}/{file}"))?;
        let r = ws.ingest(entity, source.as_ref(), IngestOptions::default()).await?;
        println!("ingested {file}: {} rows written, {} quarantined", r.rows_written, r.rows_quarantined);
        for q in &r.quarantine_sample {
            println!("  row {}: {}", q.row, q.reason);
        }
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

    let action = JsonlFileAction::new(format!("{dir}/deliveries.jsonl"));
    for round in ["first evaluation", "after customers_update.csv"] {
        if round.starts_with("after") {
            let source = segkit_connectors::open(&format!("{DATA}/customers_update.csv"))?;
            let r = ws.ingest("customer", source.as_ref(), IngestOptions::default()).await?;
            println!("\ningested customers_update.csv: {} inserted, {} updated", r.rows_inserted, r.rows_updated);
        }
        println!("\n== {round} ==");
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
            // Act on who entered: one delivery each, with an idempotency key.
            for key in keys(&run.entered) {
                let mut delivery =
                    Delivery::new(format!("{name}:{}:{key}", run.run), name.to_string(), "customer", key.to_string());
                delivery.content.insert("text".into(), format!("Welcome to {name}!"));
                action.execute(&delivery).await;
            }
        }
    }

    println!("\npreview of high_value (pii masked):");
    let preview = ws.preview("high_value", 3).await?;
    let preview = preview.project(&[0, 1, 2, 4])?;
    println!("{}", pretty_format_batches(&[preview])?);
    println!("vip_cn count = {}", ws.count("vip_cn").await?);
    let deliveries = std::fs::read_to_string(format!("{dir}/deliveries.jsonl"))?;
    println!("{} deliveries written to {dir}/deliveries.jsonl", deliveries.lines().count());
    let q = ws.quarantine("customer").await?;
    println!("{} customer rows in quarantine (see Workspace::quarantine)", q.num_rows());
    let _ = q.column(0).len();
    Ok(())
}
