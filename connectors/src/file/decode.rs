//! Turning an object_store byte stream into a record batch stream with a push decoder.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use segkit::{BatchStream, Error, Result};

/// A push decoder: fed chunks of bytes in order, it emits complete batches.
pub(crate) trait Decode: Send + 'static {
    /// Consumes a chunk, pushing any batches it completes.
    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()>;
    /// Signals the end of input, pushing the last batch.
    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()>;
}

/// Drives `decoder` over `bytes` lazily: a chunk is read only when the consumer wants the next batch.
pub(crate) fn decode_stream<D: Decode>(
    source_name: String,
    bytes: BoxStream<'static, object_store::Result<Bytes>>,
    decoder: D,
) -> BatchStream {
    struct State<D> {
        name: String,
        bytes: BoxStream<'static, object_store::Result<Bytes>>,
        decoder: D,
        ready: VecDeque<RecordBatch>,
        done: bool,
    }
    let state = State { name: source_name, bytes, decoder, ready: VecDeque::new(), done: false };
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.ready.pop_front() {
                return Ok(Some((b, s)));
            }
            if s.done {
                return Ok(None);
            }
            match s.bytes.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| Error::source_error(s.name.clone(), e))?;
                    s.decoder.feed(&chunk, &mut s.ready)?;
                }
                None => {
                    s.decoder.finish(&mut s.ready)?;
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}
