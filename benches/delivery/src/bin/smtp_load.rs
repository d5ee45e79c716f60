//! Plain SMTP load for the delivery benchmark: `--concurrency` tasks send mails for `--seconds` to one SMTP
//! server with lettre — the client library of segkit's `smtp` action, configured the same way (no TLS, one
//! connection per mail) — but without segkit (no catalog, no ledger, no templates). Prints one JSON line with
//! the mails accepted per second. The counterpart of `wrk` for the SMTP runs of `benches/dispatch.sh`.
//!
//!     segkit-smtp-load --smtp 127.0.0.1:PORT [--concurrency 64] [--seconds 10]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    let addr = arg("--smtp").expect("--smtp HOST:PORT");
    let concurrency: usize = arg("--concurrency").map(|v| v.parse().expect("--concurrency")).unwrap_or(64);
    let seconds: u64 = arg("--seconds").map(|v| v.parse().expect("--seconds")).unwrap_or(10);
    let (host, port) = addr.rsplit_once(':').expect("--smtp HOST:PORT");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse().expect("port"))
        .timeout(Some(Duration::from_secs(30)))
        .build();
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let (transport, sent, failed) = (transport.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < end {
                    i += 1;
                    let mail = Message::builder()
                        .from("bench@example.org".parse().expect("from"))
                        .to(format!("u{t}-{i}@example.org").parse().expect("to"))
                        .message_id(Some(format!("<load-{t}-{i}@segkit>")))
                        .subject(format!("Welcome, User {i}"))
                        .body(format!("Hello User {i}, user {i}."))
                        .expect("mail");
                    match transport.send(mail).await {
                        Ok(_) => sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let took = t0.elapsed().as_secs_f64();
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({"tool": "segkit-smtp-load (lettre)", "concurrency": concurrency, "seconds": took,
            "sent": sent, "failed": failed.load(Ordering::Relaxed), "mails_per_s": sent as f64 / took})
    );
}
