//! Building all-text (Utf8) record batches, shared by the CSV, NDJSON and JSON-records readers.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use segkit::Result;

use super::{ERROR_COLUMN, RAW_COLUMN};

/// Rows per batch by default.
pub(crate) const DEFAULT_BATCH_SIZE: usize = 65_536;

/// An all-Utf8, all-nullable schema over `names`, with [`RAW_COLUMN`] and [`ERROR_COLUMN`] appended (a
/// field of either name in the data is replaced by them).
pub(crate) fn text_schema(names: impl IntoIterator<Item = String>) -> SchemaRef {
    let mut names: Vec<String> = names.into_iter().filter(|n| n != RAW_COLUMN && n != ERROR_COLUMN).collect();
    names.push(RAW_COLUMN.to_string());
    names.push(ERROR_COLUMN.to_string());
    Arc::new(Schema::new(names.into_iter().map(|n| Field::new(n, DataType::Utf8, true)).collect::<Vec<_>>()))
}

/// The text a JSON value is delivered as: strings as-is, numbers and booleans as their JSON text, arrays and
/// objects as compact JSON, null as null.
pub(crate) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Accumulates rows of text into batches of a fixed all-Utf8 schema.
pub(crate) struct TextBatchBuilder {
    schema: SchemaRef,
    index: HashMap<String, usize>,
    raw: usize,
    error: usize,
    builders: Vec<StringBuilder>,
    row: Vec<Option<String>>,
    rows: usize,
}

impl TextBatchBuilder {
    /// A builder for `schema` (every field Utf8; must contain [`RAW_COLUMN`]).
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let index: HashMap<String, usize> =
            schema.fields().iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect();
        let raw = *index.get(RAW_COLUMN).expect("text schemas carry the raw column");
        let error = *index.get(ERROR_COLUMN).expect("text schemas carry the error column");
        let n = schema.fields().len();
        TextBatchBuilder {
            schema,
            index,
            raw,
            error,
            builders: (0..n).map(|_| StringBuilder::new()).collect(),
            row: vec![None; n],
            rows: 0,
        }
    }

    /// Rows buffered since the last [`finish`](Self::finish).
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Appends one row given as values by column position (`None` = null); missing trailing values (and the
    /// raw and error columns, which come last) are null.
    pub(crate) fn push_positional<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) {
        let mut it = values.into_iter();
        for b in &mut self.builders {
            b.append_option(it.next().flatten());
        }
        self.rows += 1;
    }

    /// Appends one JSON object; keys not in the schema are ignored, missing keys are null.
    pub(crate) fn push_object<'a>(&mut self, fields: impl IntoIterator<Item = (&'a str, &'a Value)>) {
        for slot in &mut self.row {
            *slot = None;
        }
        for (k, v) in fields {
            if let Some(&i) = self.index.get(k) {
                if i != self.raw && i != self.error {
                    self.row[i] = value_text(v);
                }
            }
        }
        for (b, v) in self.builders.iter_mut().zip(&mut self.row) {
            b.append_option(v.take());
        }
        self.rows += 1;
    }

    /// Appends a malformed record: its raw text in [`RAW_COLUMN`], why and where in [`ERROR_COLUMN`], every
    /// other field null.
    pub(crate) fn push_raw(&mut self, raw: &str, reason: &str) {
        for (i, b) in self.builders.iter_mut().enumerate() {
            if i == self.raw {
                b.append_value(raw);
            } else if i == self.error {
                b.append_value(reason);
            } else {
                b.append_null();
            }
        }
        self.rows += 1;
    }

    /// Takes the buffered rows as a batch (`None` if there are none).
    pub(crate) fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let rows = std::mem::take(&mut self.rows);
        // The next batch is about as large: its builders start at this one's sizes instead of growing (and
        // copying) from empty.
        let cols: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| {
                let a = b.finish();
                let bytes = a.values().len();
                *b = StringBuilder::with_capacity(rows, bytes + bytes / 8);
                Arc::new(a) as ArrayRef
            })
            .collect();
        Ok(Some(RecordBatch::try_new(self.schema.clone(), cols)?))
    }
}

/// A JSON object's top-level fields in document order (serde_json's `Map` sorts keys without
/// `preserve_order`, which would lose the file's column order).
pub(crate) struct OrderedObject(pub(crate) Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<OrderedObject, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(OrderedObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Only the top-level keys of a JSON object, in document order (values are skipped, not built).
pub(crate) struct ObjectKeys(pub(crate) Vec<String>);

impl<'de> serde::Deserialize<'de> for ObjectKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObjectKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<ObjectKeys, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    out.push(k);
                }
                Ok(ObjectKeys(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Collects field names in first-seen order without duplicates.
#[derive(Default)]
pub(crate) struct KeyUnion {
    seen: std::collections::HashSet<String>,
    names: Vec<String>,
}

impl KeyUnion {
    /// Adds a name if new.
    pub(crate) fn add(&mut self, name: &str) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_string());
            self.names.push(name.to_string());
        }
    }
    /// The names in first-seen order.
    pub(crate) fn into_names(self) -> Vec<String> {
        self.names
    }
}
