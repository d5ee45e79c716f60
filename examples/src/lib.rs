//! Examples live in `rust/`, `python/` and `node/`; run `cargo run -p segkit-examples --example quickstart`.
