//! Static-list segments for Node: `keys` as a JS array (numbers, BigInts or strings; `null` stays a null, which
//! core refuses with the row number) or an Arrow IPC Buffer. Conversion only: core checks types, nulls, limits.

use std::sync::Arc;

use crate::Result;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use napi::bindgen_prelude::{Buffer, Either, Either3};
use napi_derive::napi;
use serde_json::Value;

use crate::{camel_keys, from_ipc, invalid, to_ipc, JsKey, NativeWorkspace, OrJs};

/// The keys argument: an Arrow IPC stream/file, or an array of keys.
type Keys = Either<Buffer, Vec<Option<JsKey>>>;

fn keys_source(keys: Keys) -> Result<segkit::RecordBatchSource> {
    match keys {
        Either::A(data) => {
            let (schema, batches) = from_ipc(&data)?;
            if batches.is_empty() {
                Ok(segkit::RecordBatchSource::empty("keys", schema))
            } else {
                segkit::RecordBatchSource::new("keys", batches).js()
            }
        }
        Either::B(items) => {
            let strings = items.iter().any(|k| matches!(k, Some(Either3::C(_))));
            let column: ArrayRef = if strings {
                let v = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| match k {
                        None => Ok(None),
                        Some(Either3::C(s)) => Ok(Some(s)),
                        Some(_) => {
                            Err(invalid(format!("keys[{i}] is a number; keys must be all numbers or all strings")))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(StringArray::from(v))
            } else {
                let v = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| match k {
                        None => Ok(None),
                        Some(Either3::A(f)) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => {
                            Ok(Some(f as i64))
                        }
                        Some(Either3::A(f)) => Err(invalid(format!(
                            "keys[{i}] = {f} is not a safe integer; pass a BigInt for keys beyond 2^53"
                        ))),
                        Some(Either3::B(b)) => match b.get_i64() {
                            (v, true) => Ok(Some(v)),
                            _ => Err(invalid(format!("keys[{i}] does not fit a 64-bit integer key"))),
                        },
                        Some(Either3::C(_)) => unreachable!("strings handled above"),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Arc::new(Int64Array::from(v))
            };
            let schema = Arc::new(Schema::new(vec![Field::new("key", column.data_type().clone(), true)]));
            let batch = RecordBatch::try_new(schema, vec![column]).js()?;
            segkit::RecordBatchSource::new("keys", vec![batch]).js()
        }
    }
}

#[napi]
impl NativeWorkspace {
    /// Defines (or replaces) a static-list segment of `entity`.
    #[napi(ts_args_type = "name: string, entity: string, keys: Buffer | Array<number | bigint | string | null>")]
    pub async fn define_static_segment(&self, name: String, entity: String, keys: Keys) -> Result<Value> {
        let source = keys_source(keys)?;
        let r = self.inner.define_static_segment(&name, &entity, &source).await.js()?;
        Ok(camel_keys(serde_json::to_value(r).js()?))
    }

    /// Adds keys to a static-list segment.
    #[napi(ts_args_type = "name: string, keys: Buffer | Array<number | bigint | string | null>")]
    pub async fn add_static_keys(&self, name: String, keys: Keys) -> Result<Value> {
        let source = keys_source(keys)?;
        let r = self.inner.add_static_keys(&name, &source).await.js()?;
        Ok(camel_keys(serde_json::to_value(r).js()?))
    }

    /// Removes keys from a static-list segment.
    #[napi(ts_args_type = "name: string, keys: Buffer | Array<number | bigint | string | null>")]
    pub async fn remove_static_keys(&self, name: String, keys: Keys) -> Result<Value> {
        let source = keys_source(keys)?;
        let r = self.inner.remove_static_keys(&name, &source).await.js()?;
        Ok(camel_keys(serde_json::to_value(r).js()?))
    }

    /// The current keys of a static-list segment as an Arrow IPC stream.
    #[napi]
    pub async fn static_keys(&self, name: String) -> Result<Buffer> {
        let b = self.inner.static_keys(&name).await.js()?;
        to_ipc(&b.schema(), &[b])
    }

    /// The committed versions of a static-list segment's keys, oldest first.
    #[napi]
    pub fn static_list_versions(&self, name: String) -> Result<Vec<Value>> {
        let v = self.inner.static_list_versions(&name).js()?;
        v.into_iter().map(|x| Ok(camel_keys(serde_json::to_value(x).js()?))).collect()
    }
}
