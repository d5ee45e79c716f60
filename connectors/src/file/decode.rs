//! Turning an object_store byte stream into a record batch stream with a push decoder.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use segkit::{BatchStream, Error, Result};

use super::prelude::{Outcome, Prelude};

/// A push decoder of records: fed UTF-8 text (possibly with undecodable-byte markers) in order, it emits
/// complete batches.
pub(crate) trait Decode: Send + 'static {
    /// Consumes a piece of text, pushing any batches it completes.
    fn feed(&mut self, text: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()>;
    /// Signals the end of input, pushing the last batch.
    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()>;
    /// The input broke off (corrupt or truncated compressed data): delivers what was read, then one malformed
    /// row with `reason` (and the partial record, if any), then the last batch.
    fn corrupt(&mut self, reason: &str, out: &mut VecDeque<RecordBatch>) -> Result<()>;
}

/// Raw bytes → [`Prelude`] (gzip, encoding) → a record [`Decode`]r.
pub(crate) struct TextPipeline<D> {
    prelude: Prelude,
    decoder: D,
    stopped: bool,
}

impl<D: Decode> TextPipeline<D> {
    pub(crate) fn new(prelude: Prelude, decoder: D) -> Self {
        TextPipeline { prelude, decoder, stopped: false }
    }

    fn feed(&mut self, chunk: &[u8], out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        let TextPipeline { prelude, decoder, .. } = self;
        match prelude.feed(chunk, &mut |text| decoder.feed(text, out)) {
            Ok(()) => Ok(()),
            Err(Outcome::Sink(e)) => Err(e),
            Err(Outcome::Corrupt(c)) => {
                self.stopped = true;
                self.decoder.corrupt(&c.0, out)
            }
        }
    }

    fn finish(&mut self, out: &mut VecDeque<RecordBatch>) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let TextPipeline { prelude, decoder, .. } = self;
        match prelude.finish(&mut |text| decoder.feed(text, out)) {
            Ok(()) => self.decoder.finish(out),
            Err(Outcome::Sink(e)) => Err(e),
            Err(Outcome::Corrupt(c)) => self.decoder.corrupt(&c.0, out),
        }
    }
}

/// Drives `pipeline` over `bytes` lazily: a chunk is read only when the consumer wants the next batch.
pub(crate) fn decode_stream<D: Decode>(
    source_name: String,
    bytes: BoxStream<'static, object_store::Result<Bytes>>,
    pipeline: TextPipeline<D>,
) -> BatchStream {
    struct State<D> {
        name: String,
        bytes: BoxStream<'static, object_store::Result<Bytes>>,
        pipeline: TextPipeline<D>,
        ready: VecDeque<RecordBatch>,
        done: bool,
    }
    let state = State { name: source_name, bytes, pipeline, ready: VecDeque::new(), done: false };
    futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.ready.pop_front() {
                return Ok(Some((b, s)));
            }
            if s.done {
                return Ok(None);
            }
            if s.pipeline.stopped {
                s.done = true;
                continue;
            }
            match s.bytes.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| Error::source_error(s.name.clone(), e))?;
                    s.pipeline.feed(&chunk, &mut s.ready)?;
                }
                None => {
                    s.pipeline.finish(&mut s.ready)?;
                    s.done = true;
                }
            }
        }
    })
    .boxed()
}
