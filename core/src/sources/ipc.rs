//! [`ArrowIpcSource`]: a local Arrow IPC file, in the streaming format (`application/vnd.apache.arrow.stream`)
//! or the file format (`.arrow`, Feather v2), read a batch at a time.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::{FileReader, StreamReader};
use async_trait::async_trait;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::source::{BatchStream, ScanRequest, Source};

/// An Arrow IPC file on the local disk (either format; told apart by the file format's `ARROW1` magic), streamed
/// a batch at a time from a blocking thread.
#[derive(Debug, Clone)]
pub struct ArrowIpcSource {
    path: PathBuf,
    name: String,
}

impl ArrowIpcSource {
    /// A source over the file at `path`; `name` is its name in messages and ingest reports.
    pub fn new(path: impl AsRef<Path>, name: impl Into<String>) -> Self {
        ArrowIpcSource { path: path.as_ref().to_path_buf(), name: name.into() }
    }

    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::Source {
            source_name: self.name.clone(),
            message: format!("not a readable Arrow IPC stream or file: {message}"),
            cause: None,
        }
    }

    fn open(
        &self,
    ) -> Result<Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send>> {
        let mut f = File::open(&self.path).map_err(|e| self.fail(e))?;
        let mut magic = [0u8; 6];
        let is_file = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
        f.seek(SeekFrom::Start(0)).map_err(|e| self.fail(e))?;
        Ok(if is_file {
            Box::new(FileReader::try_new(BufReader::new(f), None).map_err(|e| self.fail(e))?)
        } else {
            Box::new(StreamReader::try_new(BufReader::new(f), None).map_err(|e| self.fail(e))?)
        })
    }
}

#[async_trait]
impl Source for ArrowIpcSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        let me = self.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let f = File::open(&me.path).map_err(|e| me.fail(e))?;
            let mut f = BufReader::new(f);
            let mut magic = [0u8; 6];
            let is_file = f.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
            f.seek(SeekFrom::Start(0)).map_err(|e| me.fail(e))?;
            let schema = if is_file {
                FileReader::try_new(f, None).map_err(|e| me.fail(e))?.schema()
            } else {
                StreamReader::try_new(f, None).map_err(|e| me.fail(e))?.schema()
            };
            Ok::<_, Error>(schema)
        });
        reader.await.map_err(|e| self.fail(e))?
    }

    async fn scan(&self, _request: &ScanRequest) -> Result<BatchStream> {
        let (tx, rx) = futures::channel::mpsc::channel::<Result<RecordBatch>>(2);
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut tx = tx;
            let send = |tx: &mut futures::channel::mpsc::Sender<Result<RecordBatch>>, item: Result<RecordBatch>| {
                futures::executor::block_on(futures::SinkExt::send(tx, item)).is_ok()
            };
            match me.open() {
                Err(e) => {
                    send(&mut tx, Err(e));
                }
                Ok(reader) => {
                    for b in reader {
                        let item = b.map_err(|e| me.fail(e));
                        let stop = item.is_err();
                        if !send(&mut tx, item) || stop {
                            break;
                        }
                    }
                }
            }
        });
        Ok(rx.boxed())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};
    use futures::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn both_formats_read_and_garbage_is_a_source_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef)]).unwrap();
        let stream = dir.path().join("s.arrows");
        std::fs::write(&stream, crate::encode::to_ipc_stream(&b.schema(), std::slice::from_ref(&b)).unwrap()).unwrap();
        let file = dir.path().join("f.arrow");
        let mut w = arrow::ipc::writer::FileWriter::try_new(File::create(&file).unwrap(), &b.schema()).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        for p in [&stream, &file] {
            let s = ArrowIpcSource::new(p, "upload");
            assert_eq!(s.schema().await.unwrap(), b.schema());
            let got: Vec<RecordBatch> = s.scan(&ScanRequest::all()).await.unwrap().try_collect().await.unwrap();
            assert_eq!(got, vec![b.clone()]);
        }
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"user_id,age\n1,2\n").unwrap();
        let e = ArrowIpcSource::new(&junk, "upload").schema().await.unwrap_err();
        assert!(e.to_string().contains("not a readable Arrow IPC stream or file"), "{e}");
    }
}
