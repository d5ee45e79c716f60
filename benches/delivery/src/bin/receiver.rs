//! A minimal HTTP/1.1 receiver for the delivery benchmark (`benches/dispatch.sh`): answers every request `200 ok`
//! on kept-alive connections and records, per `POST`, the `Idempotency-Key` header and the arrival time. The
//! same server is what `wrk` measures, so the two rates compare one receiver.
//!
//!     segkit-bench-receiver 127.0.0.1:0     # prints `listening on ADDR`, serves until killed
//!
//! `GET /stats` answers `{"posts": N, "distinct": D, "arrivals": [[key, unix_us], …]}`; `GET /reset` forgets.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Arrivals = Arc<Mutex<Vec<(String, u64)>>>;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve(mut conn: TcpStream, arrivals: Arrivals) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // One request: headers up to the blank line, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 1 << 20 {
                return Ok(()); // not HTTP we serve
            }
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request = lines.next().unwrap_or_default().to_string();
        let (mut length, mut key) = (0usize, None);
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        while buf.len() < head_end + length {
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + length);
        let body = if request.starts_with("GET /stats") {
            let a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
            let distinct = a.iter().map(|(k, _)| k.as_str()).collect::<HashSet<_>>().len();
            serde_json::json!({"posts": a.len(), "distinct": distinct, "arrivals": *a}).to_string()
        } else if request.starts_with("GET /reset") {
            arrivals.lock().unwrap_or_else(|p| p.into_inner()).clear();
            "reset".to_string()
        } else {
            if request.starts_with("POST") {
                let t = now_us();
                arrivals.lock().unwrap_or_else(|p| p.into_inner()).push((key.unwrap_or_default(), t));
            }
            "ok".to_string()
        };
        let response =
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        conn.write_all(response.as_bytes()).await?;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let arrivals: Arrivals = Arc::default();
    loop {
        let (conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        let a = arrivals.clone();
        tokio::spawn(async move {
            let _ = serve(conn, a).await;
        });
    }
}
