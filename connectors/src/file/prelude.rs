//! The byte layers under the text readers: gzip decompression and decoding to UTF-8, both streaming with
//! bounded buffers.
//!
//! Input is handed over in slices of at most [`SLICE`] bytes, so one gzip'd slice can grow to at most ~4 MiB
//! (deflate's ratio is bounded by ~1032:1) before the reader above consumes it: a "zip bomb" costs time, never
//! memory.
//!
//! Text that cannot be decoded in the declared encoding is not replaced silently: every undecodable sequence
//! becomes the byte `0xFF`, which is never valid UTF-8, so the record reader above sees invalid UTF-8 in
//! that record and delivers it as a malformed row whose reason names the encoding.

use std::io::Write;

use encoding_rs::{DecoderResult, Encoding, UTF_16LE, UTF_8};

/// The most bytes pushed through a layer at once.
pub(crate) const SLICE: usize = 4096;

/// The byte marking an undecodable sequence in the decoded text.
pub(crate) const UNDECODABLE: u8 = 0xFF;

/// A problem with the bytes themselves (corrupt or truncated gzip data): the reader above keeps what it has
/// read, reports this as a malformed record and stops.
#[derive(Debug)]
pub(crate) struct Corrupt(pub(crate) String);

/// The text encoding of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TextEncoding(&'static Encoding);

impl Default for TextEncoding {
    fn default() -> Self {
        TextEncoding(UTF_8)
    }
}

impl TextEncoding {
    /// Looks up a WHATWG label (`utf-8`, `gbk`, `gb18030`, `big5`, `utf-16le`, `utf-16be`, `shift_jis`, …;
    /// `utf-16` means UTF-16LE unless a BOM says otherwise).
    pub(crate) fn for_label(label: &str) -> Option<Self> {
        let l = label.trim().to_ascii_lowercase();
        if l == "utf-16" || l == "utf16" {
            return Some(TextEncoding(UTF_16LE));
        }
        if l == "utf8" {
            return Some(TextEncoding(UTF_8));
        }
        Encoding::for_label(l.as_bytes()).map(TextEncoding)
    }

    /// The encoding itself (used by the log connector).
    #[cfg(feature = "log")]
    pub(crate) fn encoding(&self) -> &'static Encoding {
        self.0
    }

    /// Whether ASCII bytes (`\n` in particular) always stand for themselves, so a file can be cut after a line
    /// end and decoded from there (true for UTF-8, GBK, GB18030, Big5, Shift_JIS, …; false for UTF-16).
    pub(crate) fn is_ascii_compatible(&self) -> bool {
        self.0.is_ascii_compatible()
    }

    /// The encoding's canonical name (`UTF-8`, `GBK`, `gb18030`, `Big5`, `UTF-16LE`, …).
    pub(crate) fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// Gzip (optional) then decode (to UTF-8), fed raw bytes, handing UTF-8 text (with [`UNDECODABLE`] markers) to
/// a sink.
pub(crate) struct Prelude {
    gzip: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    encoding: &'static Encoding,
    /// `None` until the first bytes decide (BOM sniffing); then `Some(None)` for UTF-8 passed through as is,
    /// `Some(Some(decoder))` for transcoding.
    decoder: Option<Option<encoding_rs::Decoder>>,
    head: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of decoded text handed on so far.
    pub(crate) text_bytes: u64,
}

impl Prelude {
    /// A prelude decompressing gzip if `gzip`, decoding `encoding` (a BOM wins over it, as in browsers).
    pub(crate) fn new(gzip: bool, encoding: TextEncoding) -> Self {
        Prelude {
            gzip: gzip.then(|| flate2::write::MultiGzDecoder::new(Vec::new())),
            encoding: encoding.0,
            decoder: None,
            head: Vec::new(),
            out: Vec::new(),
            text_bytes: 0,
        }
    }

    /// A prelude for the rest of a plain file read from after a line end: no gzip, and no BOM is looked for.
    pub(crate) fn continuing(encoding: TextEncoding) -> Self {
        let mut p = Prelude::new(false, encoding);
        p.decoder = Some(if encoding.0 == UTF_8 { None } else { Some(encoding.0.new_decoder_without_bom_handling()) });
        p
    }

    /// Pushes `input`; `sink` gets decoded UTF-8 text in pieces of bounded size.
    pub(crate) fn feed<E>(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Outcome<E>> {
        for slice in input.chunks(SLICE) {
            let plain = match &mut self.gzip {
                Some(gz) => {
                    gz.write_all(slice).map_err(|e| Outcome::Corrupt(Corrupt(gzip_error(&e))))?;
                    std::mem::take(gz.get_mut())
                }
                None => {
                    self.decode(slice, false, sink)?;
                    continue;
                }
            };
            self.decode(&plain, false, sink)?;
            if let Some(gz) = &mut self.gzip {
                let mut plain = plain;
                plain.clear();
                *gz.get_mut() = plain;
            }
        }
        Ok(())
    }

    /// Ends the input: checks the gzip trailer and flushes the decoder.
    pub(crate) fn finish<E>(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), Outcome<E>> {
        if let Some(gz) = &mut self.gzip {
            let r = gz.try_finish();
            let plain = std::mem::take(gz.get_mut());
            self.decode(&plain, false, sink)?;
            r.map_err(|e| Outcome::Corrupt(Corrupt(gzip_error(&e))))?;
        }
        self.decode(&[], true, sink)
    }

    fn decode<E>(
        &mut self,
        input: &[u8],
        last: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Outcome<E>> {
        if self.decoder.is_none() {
            // Wait for 3 bytes (or the end) to sniff a BOM.
            self.head.extend_from_slice(input);
            if self.head.len() < 3 && !last {
                return Ok(());
            }
            let head = std::mem::take(&mut self.head);
            let (enc, bom) = match Encoding::for_bom(&head) {
                Some((e, n)) => (e, n),
                None => (self.encoding, 0),
            };
            self.decoder = Some(if enc == UTF_8 { None } else { Some(enc.new_decoder_without_bom_handling()) });
            let rest = head[bom..].to_vec();
            return self.decode_known(&rest, last, sink);
        }
        self.decode_known(input, last, sink)
    }

    fn decode_known<E>(
        &mut self,
        input: &[u8],
        last: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Outcome<E>> {
        let Some(Some(decoder)) = &mut self.decoder else {
            // UTF-8: passed through; the record reader validates it field by field.
            for piece in input.chunks(SLICE) {
                self.text_bytes += piece.len() as u64;
                sink(piece).map_err(Outcome::Sink)?;
            }
            return Ok(());
        };
        let mut src = input;
        loop {
            self.out.clear();
            self.out.resize(SLICE * 3 + 16, 0);
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(src, &mut self.out, last);
            src = &src[read..];
            self.out.truncate(written);
            if let DecoderResult::Malformed(_, _) = result {
                self.out.push(UNDECODABLE);
            }
            if !self.out.is_empty() {
                self.text_bytes += self.out.len() as u64;
                sink(&self.out).map_err(Outcome::Sink)?;
            }
            match result {
                DecoderResult::InputEmpty => return Ok(()),
                DecoderResult::OutputFull | DecoderResult::Malformed(_, _) => continue,
            }
        }
    }
}

/// Why [`Prelude::feed`] stopped: corrupt input or the sink's own error.
pub(crate) enum Outcome<E> {
    Corrupt(Corrupt),
    Sink(E),
}

fn gzip_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("truncated gzip data ({e})"),
        _ => format!("corrupt gzip data ({e})"),
    }
}
