//! A minimal webhook receiver on 127.0.0.1 (std only, one request per connection) that checks the
//! `X-Segkit-Signature` HMAC the way a real receiver should and records each request's `Idempotency-Key`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segkit_actions::{webhook_signature, SIGNATURE_HEADER};

/// The largest request head (request line and headers) the receiver reads, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest request body the receiver reads, in bytes.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// One webhook the receiver got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The `Idempotency-Key` header (empty when missing).
    pub idempotency_key: String,
    /// The body's `entity_key`.
    pub entity_key: String,
    /// The body's rendered `content.text`.
    pub text: String,
    /// Whether `X-Segkit-Signature` was HMAC-SHA256(secret, `"<t>.<body>"`); the receiver answers 401 if not.
    pub signature_ok: bool,
}

/// A webhook receiver running in a thread on 127.0.0.1 (a free port); stopped when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts a receiver that verifies signatures made with `secret`.
    pub fn start(secret: Vec<u8>) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A malformed request only loses its own connection.
                    let _ = handle(stream, &secret, &log);
                }
            }
        });
        Ok(Receiver { addr, received, stop })
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop so the thread ends
    }
}

fn handle(stream: TcpStream, secret: &[u8], log: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?).take((MAX_HEAD_BYTES + MAX_BODY_BYTES) as u64);
    let (mut head_bytes, mut length, mut key, mut signature) = (0, 0usize, String::new(), String::new());
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_HEAD_BYTES {
            return Ok(()); // closed early or a head too large: drop the connection
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(usize::MAX),
                "idempotency-key" => key = value,
                n if n == SIGNATURE_HEADER.to_ascii_lowercase() => signature = value,
                _ => {}
            }
        }
    }
    if length > MAX_BODY_BYTES {
        return reply(stream, "413 Payload Too Large");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    let signature_ok = verify(secret, &signature, &body);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let field = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let entity_key = field(&json["entity_key"]);
    let text = field(&json["content"]["text"]);
    if let Ok(mut log) = log.lock() {
        log.push(Received { idempotency_key: key, entity_key, text, signature_ok });
    }
    reply(stream, if signature_ok { "200 OK" } else { "401 Unauthorized" })
}

/// Checks `t=<unix seconds>,v1=<hex>` against HMAC-SHA256(secret, `"<t>.<body>"`), in constant time. (A real
/// receiver also refuses a `t` too far from its own clock, against replays.)
fn verify(secret: &[u8], header: &str, body: &str) -> bool {
    let Some(t) = header.split(',').find_map(|p| p.strip_prefix("t=")).and_then(|t| t.parse::<i64>().ok()) else {
        return false;
    };
    let expected = webhook_signature(secret, t, body);
    expected.len() == header.len() && expected.bytes().zip(header.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn reply(mut stream: TcpStream, status: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_only_the_secrets_signature_of_this_body() {
        let good = webhook_signature(b"s3cret", 1_780_000_000, "{\"a\":1}");
        assert!(verify(b"s3cret", &good, "{\"a\":1}"));
        assert!(!verify(b"other", &good, "{\"a\":1}"));
        assert!(!verify(b"s3cret", &good, "{\"a\":2}"));
        assert!(!verify(b"s3cret", "", "{\"a\":1}"));
        assert!(!verify(b"s3cret", "t=x,v1=00", "{\"a\":1}"));
    }

    fn post(receiver: &Receiver, signature: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(receiver.addr).unwrap();
        write!(
            stream,
            "POST /hooks HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\n{SIGNATURE_HEADER}: {signature}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn the_receiver_answers_401_to_a_wrong_signature_and_records_both() {
        let receiver = Receiver::start(b"s3cret".to_vec()).unwrap();
        let body = r#"{"entity_key": "7", "content": {"text": "hi"}}"#;
        let reply = post(&receiver, &webhook_signature(b"guess", 1_780_000_000, body), body);
        assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");
        let reply = post(&receiver, &webhook_signature(b"s3cret", 1_780_000_000, body), body);
        assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
        let got = receiver.received();
        let want =
            |ok| Received { idempotency_key: "k1".into(), entity_key: "7".into(), text: "hi".into(), signature_ok: ok };
        assert_eq!(got, vec![want(false), want(true)]);
    }
}
