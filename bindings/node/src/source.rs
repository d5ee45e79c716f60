//! Sources written in JavaScript: index.js turns an object with `schema()` and `scan()` into three functions
//! (the schema as Arrow IPC, open a scan, the next page of a scan as Arrow IPC or null) that this adapter calls
//! through thread-safe functions, awaiting the promises they return.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use napi::bindgen_prelude::{Buffer, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use segkit::source::to_declared;
use segkit::{BatchStream, ScanRequest, Source};

/// A page's batches: Arrow IPC, or the JSON text of an array of objects decoded against the declared schema.
fn page_batches(bytes: &[u8], schema: &SchemaRef) -> napi::Result<(SchemaRef, Vec<arrow::array::RecordBatch>)> {
    if bytes.first() != Some(&b'[') {
        return crate::from_ipc(bytes);
    }
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| napi::Error::from_reason(e.to_string()))?;
    let batch = segkit::source::decode_json_rows(&rows, schema).map_err(napi::Error::from_reason)?;
    Ok((schema.clone(), vec![batch]))
}

/// `() => Promise<Buffer>`: the source's schema as Arrow IPC.
pub type SchemaFn = ThreadsafeFunction<(), Promise<Buffer>, (), Status, false>;
/// `() => Promise<number>`: starts a scan, returning its id.
pub type OpenFn = ThreadsafeFunction<(), Promise<u32>, (), Status, false>;
/// `(scanId) => Promise<Buffer | null>`: the next page of a scan as Arrow IPC, or null at the end.
pub type NextFn = ThreadsafeFunction<u32, Promise<Option<Buffer>>, u32, Status, false>;

/// A segkit [`Source`] implemented in JavaScript.
pub struct JsSource {
    name: String,
    schema_fn: Arc<SchemaFn>,
    open_fn: Arc<OpenFn>,
    next_fn: Arc<NextFn>,
}

impl fmt::Debug for JsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsSource").field("name", &self.name).finish()
    }
}

impl JsSource {
    pub fn new(name: String, schema_fn: SchemaFn, open_fn: OpenFn, next_fn: NextFn) -> Self {
        JsSource { name, schema_fn: Arc::new(schema_fn), open_fn: Arc::new(open_fn), next_fn: Arc::new(next_fn) }
    }
}

fn failed(source: &str, what: &str, e: napi::Error) -> segkit::Error {
    segkit::Error::Source { source_name: source.to_string(), message: format!("{what}: {}", e.reason), cause: None }
}

#[async_trait]
impl Source for JsSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> segkit::Result<SchemaRef> {
        let promise = self.schema_fn.call_async(()).await.map_err(|e| failed(&self.name, "schema()", e))?;
        let ipc = promise.await.map_err(|e| failed(&self.name, "schema()", e))?;
        let (schema, _) = crate::from_ipc(&ipc).map_err(|e| failed(&self.name, "schema()", e))?;
        Ok(schema)
    }

    async fn scan(&self, _request: &ScanRequest) -> segkit::Result<BatchStream> {
        let schema = self.schema().await?;
        let promise = self.open_fn.call_async(()).await.map_err(|e| failed(&self.name, "scan()", e))?;
        let id = promise.await.map_err(|e| failed(&self.name, "scan()", e))?;
        let next_fn = self.next_fn.clone();
        Ok(segkit::source::paged(self.name.clone(), move || {
            let (next, schema) = (next_fn.clone(), schema.clone());
            async move {
                let page = next.call_async(id).await.map_err(|e| e.reason)?.await.map_err(|e| e.reason)?;
                let Some(bytes) = page else { return Ok(None) };
                let (_, batches) = page_batches(&bytes, &schema).map_err(|e| e.reason)?;
                batches.iter().map(|b| to_declared(b, &schema)).collect::<Result<Vec<_>, _>>().map(Some)
            }
        }))
    }
}
