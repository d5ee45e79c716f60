//! A lean HTTP/1.1 client for plain `http://` webhooks: a pool of kept-alive connections to one host, each
//! request written as ready-made bytes and each reply read just far enough to know its status, its
//! `Retry-After` and (bounded) body — in the caller's task, with no connection task, no per-request channel
//! hand-off and no header map built for a 2xx reply.
//!
//! A request sent on a pooled connection that turns out to be closed before any byte of a reply arrives (the
//! receiver dropped an idle connection) is sent again once on a new connection: deliveries are at-least-once
//! with their idempotency key, so a receiver may see it twice only if it closed the connection after reading
//! the request without answering.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::MAX_REPLY_BYTES;

/// Most bytes of a reply's head (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines in a reply's head.
const MAX_HEADERS: usize = 100;
/// Most bytes of a reply read in all; a reply longer than this is cut and its connection closed.
const MAX_READ_BYTES: usize = 1024 * 1024;
/// Most idle connections kept per pool.
const MAX_IDLE: usize = 1024;

/// The parts of a reply a delivery's outcome depends on.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header's value, if any.
    pub retry_after: Option<String>,
    /// At most [`MAX_REPLY_BYTES`] of the body.
    pub body: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection could not be made.
    Connect(io::Error),
    /// No complete reply within the time allowed.
    Timeout,
    /// The connection failed while the request was written or the reply read.
    Io(io::Error),
    /// The reply is not HTTP/1.x.
    Protocol(String),
}

/// A kept-alive connection and the bytes read from it beyond the last reply (none while idle).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Kept-alive connections to one `host:port`.
#[derive(Debug)]
pub(crate) struct Pool {
    host: String,
    port: u16,
    connect_timeout: Duration,
    idle: Mutex<Vec<TcpStream>>,
}

/// What a failed round trip on one connection means.
enum Trip {
    /// The connection was closed (or reset) before any byte of a reply: the request may be sent again on a new
    /// connection.
    Stale(io::Error),
    /// Failed for good.
    Failed(Failure),
}

impl Pool {
    /// A pool for `host` (a name or an IP address, without brackets) and `port`.
    pub(crate) fn new(host: String, port: u16, connect_timeout: Duration) -> Self {
        Pool { host, port, connect_timeout, idle: Mutex::new(Vec::new()) }
    }

    /// An idle connection that has nothing to read: one the receiver closed, or sent bytes on while it was
    /// idle (an unsolicited `408`, say), is dropped instead of being taken for the next request, whose reply it
    /// would otherwise be mistaken for.
    fn take(&self) -> Option<TcpStream> {
        loop {
            let stream = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(stream),
                _ => continue, // closed, unsolicited bytes or an error: drop it
            }
        }
    }

    fn give_back(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(stream);
        }
    }

    async fn connect(&self) -> Result<TcpStream, Failure> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect((self.host.as_str(), self.port))).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(Failure::Connect(e)),
                Err(_) => return Err(Failure::Timeout),
            };
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        Ok(stream)
    }

    /// Sends `request` (a whole HTTP/1.1 request: head and body) and reads the reply, on a pooled connection
    /// when one is idle. The caller bounds the time (dropping this future drops the connection in use).
    pub(crate) async fn exchange(&self, request: &[u8]) -> Result<Reply, Failure> {
        if let Some(stream) = self.take() {
            match self.trip(stream, request).await {
                Ok(reply) => return Ok(reply),
                Err(Trip::Failed(f)) => return Err(f),
                Err(Trip::Stale(_)) => {} // closed while idle: once more on a new connection
            }
        }
        let stream = self.connect().await?;
        match self.trip(stream, request).await {
            Ok(reply) => Ok(reply),
            Err(Trip::Failed(f)) => Err(f),
            Err(Trip::Stale(e)) => Err(Failure::Io(e)),
        }
    }

    /// One request and reply on `stream`; the connection goes back to the pool when the reply allows it.
    async fn trip(&self, stream: TcpStream, request: &[u8]) -> Result<Reply, Trip> {
        let mut conn = Conn { stream, buf: Vec::new() };
        if let Err(e) = conn.stream.write_all(request).await {
            return Err(Trip::Stale(e));
        }
        let (reply, reusable) = conn.read_reply().await?;
        if reusable && conn.buf.is_empty() {
            self.give_back(conn.stream);
        }
        Ok(reply)
    }
}

/// How a reply's body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Conn {
    /// The position of the next CRLF at or after `pos`, reading more as needed (an error past
    /// `MAX_READ_BYTES` or at the end of the stream).
    async fn line_end(&mut self, pos: usize) -> io::Result<usize> {
        loop {
            if let Some(i) = find_crlf(&self.buf[pos..]) {
                return Ok(pos + i);
            }
            if self.buf.len() >= MAX_READ_BYTES || !self.fill().await? {
                return Err(eof());
            }
        }
    }

    /// Reads more bytes into `buf`; `Ok(false)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        // Into the buffer's spare capacity (not zeroed first: a reply is read into it once per request), at
        // most 8 KiB a read.
        self.buf.reserve(8192);
        let n = (&mut self.stream).take(8192).read_buf(&mut self.buf).await?;
        Ok(n > 0)
    }

    /// Reads one reply (skipping interim 1xx replies): the reply and whether the connection may be reused.
    async fn read_reply(&mut self) -> Result<(Reply, bool), Trip> {
        let mut received = false;
        loop {
            let (status, framing, keep_alive, retry_after, head_len) = loop {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => break head_of(&parsed, n)?,
                    Ok(httparse::Status::Partial) if self.buf.len() >= MAX_HEAD_BYTES => {
                        return Err(Trip::Failed(Failure::Protocol(format!(
                            "the reply's head is longer than {MAX_HEAD_BYTES} bytes"
                        ))))
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(Trip::Failed(Failure::Protocol(format!("invalid HTTP reply: {e}")))),
                }
                match self.fill().await {
                    Ok(true) => received = true,
                    Ok(false) if !received => {
                        return Err(Trip::Stale(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection was closed before a reply",
                        )))
                    }
                    Ok(false) => {
                        return Err(Trip::Failed(Failure::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the connection was closed in the middle of the reply",
                        ))))
                    }
                    Err(e) if !received => return Err(Trip::Stale(e)),
                    Err(e) => return Err(Trip::Failed(Failure::Io(e))),
                }
            };
            self.buf.drain(..head_len);
            if (100..200).contains(&status) && status != 101 {
                continue; // an interim reply (100 Continue, 103 Early Hints): the real one follows
            }
            let framing = if status == 204 || status == 304 { Framing::Empty } else { framing };
            return match self.read_body(framing).await {
                Ok((body, complete)) => Ok((Reply { status, retry_after, body }, keep_alive && complete)),
                // The status is known; a body cut short only matters for a 2xx reply.
                Err(e) if (200..300).contains(&status) => Err(Trip::Failed(Failure::Io(e))),
                Err(_) => Ok((Reply { status, retry_after, body: Vec::new() }, false)),
            };
        }
    }

    /// Reads the body: at most [`MAX_REPLY_BYTES`] kept, and whether it was read to its end (so the connection
    /// can carry the next request).
    async fn read_body(&mut self, framing: Framing) -> io::Result<(Vec<u8>, bool)> {
        match framing {
            Framing::Empty => Ok((Vec::new(), true)),
            Framing::Length(n) => {
                let wanted = n.min(MAX_READ_BYTES);
                while self.buf.len() < wanted {
                    if !self.fill().await? {
                        return Err(eof());
                    }
                }
                let body = self.buf[..wanted.min(MAX_REPLY_BYTES)].to_vec();
                self.buf.drain(..wanted);
                Ok((body, n == wanted))
            }
            Framing::UntilClose => {
                while self.buf.len() < MAX_READ_BYTES {
                    if !self.fill().await? {
                        break;
                    }
                }
                self.buf.truncate(MAX_REPLY_BYTES);
                Ok((std::mem::take(&mut self.buf), false))
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                let mut pos = 0usize;
                loop {
                    // The chunk-size line.
                    let line_end = self.line_end(pos).await?;
                    let size_text = std::str::from_utf8(&self.buf[pos..line_end]).unwrap_or("");
                    let size_text = size_text.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size_text, 16)
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "invalid chunk size"))?;
                    pos = line_end + 2;
                    if size == 0 {
                        // Trailers until an empty line.
                        loop {
                            let end = self.line_end(pos).await?;
                            let empty = end == pos;
                            pos = end + 2;
                            if empty {
                                self.buf.drain(..pos);
                                return Ok((body, true));
                            }
                        }
                    }
                    if size > MAX_READ_BYTES || pos + size + 2 > MAX_READ_BYTES {
                        body.truncate(MAX_REPLY_BYTES);
                        return Ok((body, false));
                    }
                    while self.buf.len() < pos + size + 2 {
                        if !self.fill().await? {
                            return Err(eof());
                        }
                    }
                    let room = MAX_REPLY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&self.buf[pos..pos + size.min(room)]);
                    pos += size + 2;
                }
            }
        }
    }
}

/// The error for a reply cut short by the connection closing.
fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the connection was closed in the middle of the reply")
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// The status, framing, keep-alive, `Retry-After` and head length of a parsed reply head.
fn head_of(
    r: &httparse::Response<'_, '_>,
    head_len: usize,
) -> Result<(u16, Framing, bool, Option<String>, usize), Trip> {
    let status = r.code.unwrap_or(0);
    let mut keep_alive = r.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    let mut retry_after = None;
    for h in r.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
            match (n, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(Trip::Failed(Failure::Protocol("invalid content-length in the reply".into()))),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && r.version == Some(0) {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
    }
    let framing = if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::UntilClose
    };
    Ok((status, framing, keep_alive, retry_after, head_len))
}
