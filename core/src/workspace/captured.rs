//! The entered entities' attributes a segment run's trigger captures (see `Workspace::commit_run`), spilled to
//! an unnamed temporary file while the entity table is scanned — before the run's transaction begins, so the
//! catalog's write lock is not held for the length of the scan — and read back in chunks inside it.
//!
//! The file is created with [`tempfile::tempfile`]: it has no name (on Linux, `O_TMPFILE`), nobody else can
//! open it, and it is gone when it is dropped or the process dies.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::error::{Error, Result};

/// Marks a record without attributes (the entity's JSON was too long to capture).
const NO_CONTEXT: u32 = u32::MAX;

/// The most bytes of attributes read back in one chunk (a chunk also ends at `max_rows` records).
const CHUNK_BYTES: usize = 8 << 20;

fn spill_error(e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(e.kind(), format!("the trigger's spill of captured attributes failed: {e}")))
}

/// Records of (position among the entered keys, the entity's attributes as JSON text or none), written in the
/// scan's order. The writer holds one buffer; [`CapturedContexts::into_reader`] turns it into chunks.
pub(super) struct CapturedContexts {
    out: BufWriter<File>,
    records: u64,
}

impl CapturedContexts {
    pub(super) fn new() -> Result<Self> {
        Ok(Self { out: BufWriter::with_capacity(1 << 20, tempfile::tempfile().map_err(spill_error)?), records: 0 })
    }

    /// Appends one entity's record.
    pub(super) fn push(&mut self, position: u32, context: Option<&str>) -> Result<()> {
        let len = match context {
            Some(c) if c.len() < NO_CONTEXT as usize => c.len() as u32,
            _ => NO_CONTEXT,
        };
        self.out.write_all(&position.to_le_bytes()).map_err(spill_error)?;
        self.out.write_all(&len.to_le_bytes()).map_err(spill_error)?;
        if len != NO_CONTEXT {
            self.out.write_all(context.unwrap_or_default().as_bytes()).map_err(spill_error)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Reads the records back from the first, in the order they were pushed.
    pub(super) fn into_reader(self) -> Result<CapturedReader> {
        let mut file = self.out.into_inner().map_err(|e| spill_error(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        Ok(CapturedReader { input: BufReader::with_capacity(1 << 20, file), left: self.records })
    }
}

/// The records of a [`CapturedContexts`], read back in chunks.
pub(super) struct CapturedReader {
    input: BufReader<File>,
    left: u64,
}

impl CapturedReader {
    /// The next records, at most `max_rows` of them and about [`CHUNK_BYTES`] of attributes; empty at the end.
    pub(super) fn next_chunk(&mut self, max_rows: usize) -> Result<Vec<(u32, Option<String>)>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while self.left > 0 && out.len() < max_rows.max(1) && bytes < CHUNK_BYTES {
            let mut head = [0u8; 8];
            self.input.read_exact(&mut head).map_err(spill_error)?;
            let position = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
            let context = if len == NO_CONTEXT {
                None
            } else {
                let mut text = vec![0u8; len as usize];
                self.input.read_exact(&mut text).map_err(spill_error)?;
                bytes += text.len();
                // Written from a `&str`: the bytes are UTF-8 unless the file was changed under us.
                Some(
                    String::from_utf8(text)
                        .map_err(|_| spill_error(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8")))?,
                )
            };
            out.push((position, context));
            self.left -= 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::CapturedContexts;

    #[test]
    fn records_come_back_in_order_in_chunks_with_and_without_attributes() {
        let mut spill = CapturedContexts::new().unwrap();
        let texts: Vec<String> = (0..10).map(|i| format!("{{\"n\": {i}, \"s\": \"é\\n{}\"}}", "x".repeat(i))).collect();
        for (i, t) in texts.iter().enumerate() {
            spill.push(i as u32 * 3, if i % 4 == 1 { None } else { Some(t) }).unwrap();
        }
        spill.push(7, Some("")).unwrap();
        let mut reader = spill.into_reader().unwrap();
        let mut got = vec![];
        loop {
            let chunk = reader.next_chunk(4).unwrap();
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 4);
            got.extend(chunk);
        }
        let mut expected: Vec<(u32, Option<String>)> =
            texts.iter().enumerate().map(|(i, t)| (i as u32 * 3, (i % 4 != 1).then(|| t.clone()))).collect();
        expected.push((7, Some(String::new())));
        assert_eq!(got, expected);
        assert!(reader.next_chunk(4).unwrap().is_empty());
    }
}
