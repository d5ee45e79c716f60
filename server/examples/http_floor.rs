//! The transport floor of `benches/api.sh`: an HTTP server on the same stack as `segkit serve` (the same axum and
//! hyper, a default multi-thread tokio runtime, `axum::serve` with connect info) that answers every request with
//! one fixed body and does nothing else (no authentication, no catalog, no middleware). Timed with exactly the
//! wrk command of the members page, it gives what the loopback round trip of wrk plus any server on this stack
//! costs, so the members page's figures split into transport, segkit's own overhead and the page's work.
//!
//! ```text
//! http_floor BIND BODY_FILE     # e.g. http_floor 127.0.0.1:18432 /tmp/page.json (a members page's bytes)
//! ```

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::Router;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bind, file] = args.as_slice() else {
        eprintln!("usage: http_floor BIND BODY_FILE");
        std::process::exit(2);
    };
    let body = match std::fs::read(file) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            eprintln!("http_floor: cannot read {file}: {e}");
            std::process::exit(1);
        }
    };
    // As `segkit serve` builds its runtime (server/src/cli.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let result = runtime.block_on(async move {
        let app = Router::new().fallback(move || {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        });
        let listener = tokio::net::TcpListener::bind(bind.as_str()).await?;
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
    });
    if let Err(e) = result {
        eprintln!("http_floor: {e}");
        std::process::exit(1);
    }
}
