//! The README quickstart: sync sources, evaluate segments, a workflow sends a signed webhook to a receiver on
//! 127.0.0.1 for each customer entering `high_value`, an update, and again. The code is in `examples/src/lib.rs`.
//!
//! ```text
//! cargo run -p segkit-examples --example quickstart [-- WORKSPACE_DIR]
//! ```

#[tokio::main]
async fn main() -> segkit::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "quickstart-workspace".into());
    segkit_examples::quickstart(std::path::Path::new(&dir)).await?;
    Ok(())
}
