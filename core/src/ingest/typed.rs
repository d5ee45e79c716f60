//! Typed reading at the source: a text source (CSV) may read the fields an ingest maps to attributes straight
//! into typed columns ([`ColumnReader`]), instead of building text columns the ingest would parse again.
//!
//! The ingest asks for it with [`ScanRequest::typed`](crate::source::ScanRequest::typed) only when no row of such a
//! batch can be quarantined for anything but being malformed (no key is checked for repeats as the rows arrive,
//! no transform, no constant, every attribute of a type a reader reads), and a source that honours it delivers
//! each batch either all as text or with every listed field read by a [`ColumnReader`] — the latter only when
//! every value of the batch was accepted ([`ColumnReader::push`] returned `true`). So a value the ingest would
//! reject (or a missing required one) always reaches it as text, and its quarantine record shows the text the
//! source had, exactly as without typed reading.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::DataType as ArrowType;

use super::coerce::{read_bool, read_date, read_float, read_int, read_timestamp, trim, MinuteCache};
use crate::model::DataType;

/// A source field the ingest would like read as an attribute's type (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedField {
    /// The source field's name.
    pub name: String,
    /// The attribute's type.
    pub data_type: DataType,
    /// Whether the attribute may not be null (a key or a non-nullable attribute): a missing value is then not
    /// accepted.
    pub required: bool,
}

impl TypedField {
    /// Whether a [`ColumnReader`] reads values of this type.
    pub fn readable(data_type: &DataType) -> bool {
        match data_type {
            DataType::String
            | DataType::Int32
            | DataType::Int64
            | DataType::Float64
            | DataType::Bool
            | DataType::Date
            | DataType::Timestamp => true,
            DataType::List(elem) => **elem == DataType::String,
            DataType::Json => false,
        }
    }
}

enum Builder {
    /// Text kept as it is (a string attribute).
    Text(StringBuilder),
    /// A list of strings, kept as its text (the ingest splits it).
    ListText(StringBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    /// Instants, with the minute of the last one read.
    Timestamp(TimestampMicrosecondBuilder, MinuteCache),
}

/// Reads one field's texts into a column of the type the ingest coerces them to, with the ingest's rules; see
/// the [module documentation](self).
pub struct ColumnReader {
    builder: Builder,
    required: bool,
    /// Rows and text bytes of the last column finished, to size the next one.
    rows: usize,
    bytes: usize,
}

impl std::fmt::Debug for ColumnReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnReader").field("data_type", &self.data_type()).finish_non_exhaustive()
    }
}

impl ColumnReader {
    /// A reader for `field` (`None` when its type is not [`TypedField::readable`]).
    pub fn new(field: &TypedField) -> Option<Self> {
        if !TypedField::readable(&field.data_type) {
            return None;
        }
        let mut r =
            ColumnReader { builder: Builder::Text(StringBuilder::new()), required: field.required, rows: 0, bytes: 0 };
        r.builder = r.fresh(&field.data_type);
        Some(r)
    }

    fn fresh(&self, data_type: &DataType) -> Builder {
        let (rows, bytes) = (self.rows, self.bytes + self.bytes / 8);
        match data_type {
            DataType::String => Builder::Text(StringBuilder::with_capacity(rows, bytes)),
            DataType::List(_) => Builder::ListText(StringBuilder::with_capacity(rows, bytes)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            DataType::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            DataType::Timestamp | DataType::Json => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows), MinuteCache::default())
            }
        }
    }

    fn model_type(&self) -> DataType {
        match &self.builder {
            Builder::Text(_) => DataType::String,
            Builder::ListText(_) => DataType::List(Box::new(DataType::String)),
            Builder::Int32(_) => DataType::Int32,
            Builder::Int64(_) => DataType::Int64,
            Builder::Float64(_) => DataType::Float64,
            Builder::Bool(_) => DataType::Bool,
            Builder::Date(_) => DataType::Date,
            Builder::Timestamp(..) => DataType::Timestamp,
        }
    }

    /// The type of the columns this reader makes: the attribute's, or text for a list (which the ingest splits).
    pub fn data_type(&self) -> ArrowType {
        match &self.builder {
            Builder::Text(_) | Builder::ListText(_) => ArrowType::Utf8,
            _ => self.model_type().to_arrow(),
        }
    }

    /// Appends a value (`None`: null, e.g. a null marker of the source). Returns `false` when the ingest would not
    /// take the text as it is — it does not read as the type, or a required value is missing (null, blank, NaN),
    /// or a list is written as a JSON array — and then appends nothing: the caller must deliver these rows as
    /// text instead (see the [module documentation](self)).
    #[inline]
    pub fn push(&mut self, text: Option<&str>) -> bool {
        let required = self.required;
        let Some(text) = text else {
            if required {
                return false;
            }
            self.push_null();
            return true;
        };
        /// Appends a read value; `false` for an unreadable one, or a missing one when required.
        macro_rules! put {
            ($b:expr, $read:expr) => {
                match $read {
                    Ok(Some(v)) => {
                        $b.append_value(v);
                        true
                    }
                    Ok(None) if !required => {
                        $b.append_null();
                        true
                    }
                    _ => false,
                }
            };
        }
        match &mut self.builder {
            Builder::Text(b) => {
                b.append_value(text);
                true
            }
            Builder::ListText(b) => {
                let t = trim(text);
                if t.starts_with('[') || (required && t.is_empty()) {
                    return false;
                }
                b.append_value(text);
                true
            }
            Builder::Int64(b) => put!(b, read_int(text)),
            Builder::Int32(b) => match read_int(text) {
                Ok(Some(n)) => match i32::try_from(n) {
                    Ok(n) => {
                        b.append_value(n);
                        true
                    }
                    Err(_) => false,
                },
                Ok(None) if !required => {
                    b.append_null();
                    true
                }
                _ => false,
            },
            // NaN is stored as null by the ingest: missing, for a required attribute.
            Builder::Float64(b) => put!(b, read_float(text).map(|f| f.filter(|f| !(required && f.is_nan())))),
            Builder::Bool(b) => put!(b, read_bool(text)),
            Builder::Date(b) => put!(b, read_date(text)),
            Builder::Timestamp(b, minute) => put!(b, read_timestamp(text, minute)),
        }
    }

    /// Appends a null without a check: for a row the ingest quarantines whatever its values (a malformed
    /// record, whose fields are all null).
    pub fn push_null(&mut self) {
        match &mut self.builder {
            Builder::Text(b) | Builder::ListText(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b, _) => b.append_null(),
        }
    }

    /// Takes the values appended so far as a column of [`data_type`](Self::data_type); the next column's
    /// buffers start at this one's size.
    pub fn finish(&mut self) -> ArrayRef {
        let model = self.model_type();
        let (array, rows, bytes): (ArrayRef, usize, usize) = match &mut self.builder {
            Builder::Text(b) | Builder::ListText(b) => {
                let a = b.finish();
                let (rows, bytes) = (a.len(), a.values().len());
                (Arc::new(a), rows, bytes)
            }
            Builder::Int32(b) => {
                let a = b.finish();
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
            Builder::Int64(b) => {
                let a = b.finish();
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
            Builder::Float64(b) => {
                let a = b.finish();
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
            Builder::Bool(b) => {
                let a = b.finish();
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
            Builder::Date(b) => {
                let a = b.finish();
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
            Builder::Timestamp(b, _) => {
                let a = b.finish().with_timezone(crate::model::UTC);
                let rows = a.len();
                (Arc::new(a), rows, 0)
            }
        };
        self.rows = rows;
        self.bytes = bytes;
        self.builder = self.fresh(&model);
        array
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, StringArray};
    use proptest::prelude::*;

    use super::{ColumnReader, TypedField};
    use crate::ingest::coerce;
    use crate::model::{Attribute, DataType};

    fn types() -> Vec<DataType> {
        vec![
            DataType::String,
            DataType::Int32,
            DataType::Int64,
            DataType::Float64,
            DataType::Bool,
            DataType::Date,
            DataType::Timestamp,
            DataType::List(Box::new(DataType::String)),
        ]
    }

    /// What the ingest makes of `texts` read as text: the coerced column, or `None` when some row would be
    /// quarantined (a coercion error, or a null in a required attribute).
    fn as_the_ingest_would(texts: &[Option<String>], data_type: &DataType, required: bool) -> Option<ArrayRef> {
        let text: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
        let attr = Attribute::new("a", data_type.clone());
        let (out, errors) = coerce(&text, &attr, "|").unwrap();
        (errors.is_empty() && !(required && out.null_count() > 0)).then_some(out)
    }

    /// Read typed, then coerced by the ingest (which passes typed columns through, splits list text and nulls
    /// NaN): `None` when a push was refused.
    fn read_typed(texts: &[Option<String>], data_type: &DataType, required: bool) -> Option<ArrayRef> {
        let field = TypedField { name: "a".into(), data_type: data_type.clone(), required };
        let mut r = ColumnReader::new(&field).unwrap();
        for t in texts {
            if !r.push(t.as_deref()) {
                return None;
            }
        }
        let col = r.finish();
        assert_eq!(col.data_type(), &r.data_type());
        let (out, errors) = coerce(&col, &Attribute::new("a", data_type.clone()), "|").unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        Some(out)
    }

    /// Texts of every kind a typed reader meets: numbers in many forms, booleans, dates, instants, blanks,
    /// NaN, lists, JSON arrays, garbage.
    fn text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            Just(Some("  ".to_string())),
            Just(Some("NaN".to_string())),
            Just(Some("[1, 2]".to_string())),
            Just(Some(" [\"a\"]".to_string())),
            Just(Some("2147483648".to_string())),
            Just(Some("-2147483648".to_string())),
            Just(Some("1e3".to_string())),
            Just(Some("1.5".to_string())),
            Just(Some("9223372036854775807".to_string())),
            Just(Some("2024-02-29".to_string())),
            Just(Some("2023-02-29".to_string())),
            Just(Some("2020-08-10 13:33:58.011017Z".to_string())),
            Just(Some("2020-08-10T13:33:58+02:00".to_string())),
            Just(Some(" YES ".to_string())),
            Just(Some("f".to_string())),
            Just(Some("a|b| c".to_string())),
            any::<i64>().prop_map(|n| Some(n.to_string())),
            any::<f64>().prop_map(|f| Some(f.to_string())),
            "[ -~]{0,12}".prop_map(Some),
            "\\PC{0,8}".prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        /// For any texts, any readable type, required or not: the typed reader accepts a column exactly when the
        /// ingest would take it without quarantining a row, and then gives the ingest the same column.
        #[test]
        fn typed_reading_is_the_ingest_coercion(texts in proptest::collection::vec(text(), 0..12),
                                                t in 0usize..8, required in any::<bool>()) {
            let data_type = &types()[t];
            let want = as_the_ingest_would(&texts, data_type, required);
            let got = read_typed(&texts, data_type, required);
            // A list written as a JSON array is always refused (read as text, the ingest parses it).
            let json_list = matches!(data_type, DataType::List(_))
                && texts.iter().flatten().any(|t| t.trim().starts_with('['));
            if json_list {
                prop_assert!(got.is_none());
            } else {
                prop_assert_eq!(got.is_some(), want.is_some(), "{:?} as {} (required {})", texts, data_type, required);
                if let (Some(got), Some(want)) = (got, want) {
                    prop_assert_eq!(got.to_data(), want.to_data());
                }
            }
        }
    }

    /// A reader is reusable after `finish`, and refuses only what it must.
    #[test]
    fn readers_refuse_what_the_ingest_rejects() {
        let field = |data_type, required| TypedField { name: "a".into(), data_type, required };
        let mut ints = ColumnReader::new(&field(DataType::Int32, true)).unwrap();
        assert!(ints.push(Some(" 42 ")) && ints.push(Some("1e2")));
        assert!(!ints.push(Some("2147483648")) && !ints.push(None) && !ints.push(Some(" ")) && !ints.push(Some("x")));
        let col = ints.finish();
        assert_eq!(col.as_ref(), &arrow::array::Int32Array::from(vec![42, 100]) as &dyn Array);
        assert!(ints.push(Some("7")));
        assert_eq!(ints.finish().len(), 1);
        let mut floats = ColumnReader::new(&field(DataType::Float64, false)).unwrap();
        assert!(floats.push(Some("NaN")) && floats.push(Some("")) && floats.push(None));
        assert_eq!(floats.finish().null_count(), 2);
        let mut required = ColumnReader::new(&field(DataType::Float64, true)).unwrap();
        assert!(!required.push(Some("NaN")));
        assert!(ColumnReader::new(&field(DataType::Json, false)).is_none());
        assert!(ColumnReader::new(&field(DataType::List(Box::new(DataType::Int64)), false)).is_none());
    }
}
