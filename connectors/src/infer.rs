//! Type inference for a quick start: [`infer_entity`] reads a sample of any [`Source`] and *proposes* an
//! entity definition — attribute names and types, a key — plus the mapping from source fields to those names.
//! Nothing is defined: the proposal is data for the user to check, edit and pass to `define_entity` (and the
//! mapping to `ingest`).
//!
//! # Names
//!
//! A field name that is already a valid segkit name (Unicode letters, digits and `_`, not starting with a
//! digit, at most 128 characters — so `客户编号` stays `客户编号`) is kept as it is (in NFC). Any other name
//! gets a deterministic sanitised name: every run of characters that are not letters, digits or `_` becomes
//! one `_` (leading and trailing ones dropped), a name starting with a digit gets a leading `_`, an empty name
//! becomes `column_<n>`, long names are cut to 128 characters, and names equal up to case get `_2`, `_3`, …
//! suffixes in field order. The proposal's `mapping` lists each attribute whose name differs from its field.
//!
//! # Types
//!
//! Typed fields (Parquet, spreadsheets, Arrow) keep their type: integers → `int64` (`int32` for Int32),
//! floats → `float64`, booleans → `bool`, dates → `date`, timestamps → `timestamp`, lists → `list<T>`,
//! structs and maps → `json`. Text fields (CSV, JSON) are typed from their non-null sample values, the first
//! rule that fits all of them winning: `int64` (no leading zeros: `007` stays text), `float64`, `bool`
//! (`true`/`false`, `yes`/`no`, any case), `date` (`YYYY-MM-DD`), `timestamp` (RFC 3339 or
//! `YYYY-MM-DD HH:MM[:SS]`), `list<T>` (JSON arrays of scalars; `T` by the same rules), `json` (other JSON
//! arrays and objects), else `string`. A field that is null throughout the sample is `string`.
//!
//! # Key
//!
//! The key is the one asked for (by field or attribute name), or else the first field of a key type
//! (`int64`, `int32`, `string`) that is non-null and unique in the sample, preferring a name that looks like
//! an identifier (`id`, `…_id`, `…Id`, `key`, `编号`, `…号`, `代码`). Without such a field the first field of a
//! key type is proposed with a note saying so.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType as ArrowType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use segkit::model::{name_fold, normalize_name, MAX_NAME_CHARS};
use segkit::source::{MALFORMED_COLUMN, MALFORMED_REASON_COLUMN};
use segkit::{Attribute, DataType, Entity, Error, Result, ScanRequest, Source};

/// The most rows [`infer_entity`] samples.
pub const MAX_SAMPLE_ROWS: usize = 1_000_000;

/// What [`infer_entity`] samples and proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InferOptions {
    /// The key (a field or proposed attribute name); default: proposed from the sample.
    pub key: Option<String>,
    /// Rows sampled from the start of the source (default 10 000, at most [`MAX_SAMPLE_ROWS`]).
    pub sample_rows: usize,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { key: None, sample_rows: 10_000 }
    }
}

impl InferOptions {
    /// With this key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sampling this many rows.
    pub fn sample_rows(mut self, n: usize) -> Self {
        self.sample_rows = n;
        self
    }
}

/// What was seen of one source field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InferredField {
    /// The field's name in the source.
    pub source: String,
    /// The proposed attribute name.
    pub attribute: String,
    /// The proposed type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Null values in the sample.
    pub nulls: u64,
    /// Whether every sampled value was distinct and non-null (a key candidate).
    pub unique: bool,
}

/// A proposed entity: check it, edit it, then pass `entity` to `define_entity` and `mapping` to `ingest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InferredEntity {
    /// The proposed definition (a profile keyed by [`InferredEntity::key`]); it passes validation.
    pub entity: Entity,
    /// Attribute → source field, for every attribute whose name differs from its field.
    pub mapping: BTreeMap<String, String>,
    /// Per source field, in source order.
    pub fields: Vec<InferredField>,
    /// Rows sampled (malformed records are not counted).
    pub sampled_rows: u64,
    /// Things to check (e.g. no unique key in the sample).
    pub notes: Vec<String>,
}

impl InferredEntity {
    /// The proposal as JSON: `{"entity": {...}, "mapping": {...}, "fields": [...], "sampled_rows": n,
    /// "notes": [...]}`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a proposal serializes")
    }
}

/// Whether `name` is a valid segkit name as it is (see [`segkit::Entity::validate`]).
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().next().is_some_and(|c| (c.is_alphabetic() || c == '_') && !c.is_numeric())
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The sanitised attribute name of field `i` (see the [module documentation](self)).
pub fn sanitize_name(name: &str, i: usize) -> String {
    let name = normalize_name(name.trim());
    if is_valid_name(&name) {
        return name;
    }
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if name.starts_with('_') && !out.is_empty() {
        out.insert(0, '_');
    }
    if out.is_empty() {
        out = format!("column_{}", i + 1);
    }
    if out.chars().next().is_some_and(|c| c.is_numeric()) {
        out.insert(0, '_');
    }
    out.chars().take(MAX_NAME_CHARS).collect()
}

fn unique_names(fields: &[String]) -> Vec<String> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = vec![];
    for (i, f) in fields.iter().enumerate() {
        let base = sanitize_name(f, i);
        let mut name = base.clone();
        let mut n = 2;
        while seen.contains(&name_fold(&name)) {
            let suffix = format!("_{n}");
            let room = MAX_NAME_CHARS - suffix.chars().count();
            name = base.chars().take(room).collect::<String>() + &suffix;
            n += 1;
        }
        seen.insert(name_fold(&name));
        out.push(name);
    }
    out
}

/// What a text value can be, as a bit set of candidate types.
const INT: u8 = 1;
const FLOAT: u8 = 2;
const BOOL: u8 = 4;
const DATE: u8 = 8;
const TS: u8 = 16;
const ALL_SCALARS: u8 = INT | FLOAT | BOOL | DATE | TS;

fn scalar_fits(s: &str) -> u8 {
    let s = s.trim();
    let mut m = 0;
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let leading_zero = digits.len() > 1 && digits.starts_with('0');
    if !leading_zero && s.parse::<i64>().is_ok() {
        m |= INT | FLOAT;
    }
    if !leading_zero
        && s.parse::<f64>().is_ok_and(f64::is_finite)
        && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        m |= FLOAT;
    }
    if matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no") {
        m |= BOOL;
    }
    if segkit::rules::parse_date(s).is_some() && s.len() == 10 {
        m |= DATE | TS;
    } else if s.len() >= 16 && segkit::rules::parse_timestamp(s).is_some() {
        m |= TS;
    }
    m
}

fn pick(m: u8) -> DataType {
    if m & INT != 0 {
        DataType::Int64
    } else if m & FLOAT != 0 {
        DataType::Float64
    } else if m & BOOL != 0 {
        DataType::Bool
    } else if m & DATE != 0 {
        DataType::Date
    } else if m & TS != 0 {
        DataType::Timestamp
    } else {
        DataType::String
    }
}

/// Accumulates what the text values of one field can be.
#[derive(Clone)]
struct TextGuess {
    scalars: u8,
    /// Every value so far is a JSON array of scalars; `elems` says what the elements fit.
    list: bool,
    elems: u8,
    /// Every value so far is a JSON array or object.
    json: bool,
    seen: bool,
}

impl Default for TextGuess {
    fn default() -> Self {
        TextGuess { scalars: ALL_SCALARS, list: true, elems: ALL_SCALARS, json: true, seen: false }
    }
}

impl TextGuess {
    fn add(&mut self, s: &str) {
        self.seen = true;
        self.scalars &= scalar_fits(s);
        let t = s.trim();
        if (self.list || self.json) && (t.starts_with('[') || t.starts_with('{')) {
            match serde_json::from_str::<Value>(t) {
                Ok(Value::Array(items)) => {
                    if self.list {
                        for it in &items {
                            match it {
                                Value::Null => {}
                                Value::String(x) => self.elems &= scalar_fits(x) & !(INT | FLOAT | BOOL),
                                Value::Number(n) => self.elems &= scalar_fits(&n.to_string()),
                                Value::Bool(_) => self.elems &= BOOL,
                                _ => self.list = false,
                            }
                        }
                    }
                }
                Ok(Value::Object(_)) => self.list = false,
                _ => {
                    self.list = false;
                    self.json = false;
                }
            }
        } else {
            self.list = false;
            self.json = false;
        }
    }

    fn finish(&self) -> DataType {
        if !self.seen {
            return DataType::String;
        }
        if self.scalars != 0 {
            return pick(self.scalars);
        }
        if self.list {
            let e = pick(self.elems);
            return DataType::List(Box::new(e));
        }
        if self.json {
            return DataType::Json;
        }
        DataType::String
    }
}

fn typed(t: &ArrowType) -> Option<DataType> {
    Some(match t {
        ArrowType::Int32 | ArrowType::Int16 | ArrowType::Int8 | ArrowType::UInt8 | ArrowType::UInt16 => DataType::Int32,
        ArrowType::Int64 | ArrowType::UInt32 | ArrowType::UInt64 => DataType::Int64,
        ArrowType::Float16 | ArrowType::Float32 | ArrowType::Float64 | ArrowType::Decimal128(_, _) => DataType::Float64,
        ArrowType::Boolean => DataType::Bool,
        ArrowType::Date32 | ArrowType::Date64 => DataType::Date,
        ArrowType::Timestamp(_, _) => DataType::Timestamp,
        ArrowType::List(f) | ArrowType::LargeList(f) => match typed(f.data_type()) {
            Some(DataType::List(_)) | Some(DataType::Json) => DataType::Json,
            Some(e) => DataType::List(Box::new(e)),
            None => DataType::List(Box::new(DataType::String)),
        },
        ArrowType::Struct(_) | ArrowType::Map(_, _) => DataType::Json,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => return None,
        _ => DataType::String,
    })
}

struct Stats {
    guess: TextGuess,
    nulls: u64,
    distinct: HashSet<String>,
    /// Still unique and non-null; also stops collecting `distinct` once false.
    unique: bool,
}

fn looks_like_id(name: &str) -> bool {
    let l = name.to_lowercase();
    l == "id"
        || l.ends_with("_id")
        || name.ends_with("Id")
        || name.ends_with("ID")
        || l == "key"
        || name.contains("编号")
        || name.ends_with('号')
        || name.contains("代码")
}

/// Reads up to `options.sample_rows` rows of `source` and proposes an entity named `name`: see the
/// [module documentation](self).
///
/// ```no_run
/// # async fn demo() -> segkit::Result<()> {
/// let source = segkit_connectors::open("customers.csv")?;
/// let proposal = segkit_connectors::infer_entity(source.as_ref(), "customer", &Default::default()).await?;
/// println!("{}", serde_json::to_string_pretty(&proposal.to_json()).unwrap());
/// # Ok(()) }
/// ```
pub async fn infer_entity(source: &dyn Source, name: &str, options: &InferOptions) -> Result<InferredEntity> {
    if options.sample_rows == 0 || options.sample_rows > MAX_SAMPLE_ROWS {
        return Err(Error::InvalidArgument(format!("sample_rows must be from 1 to {MAX_SAMPLE_ROWS}")));
    }
    let schema = source.schema().await?;
    let data: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| {
            let n = schema.field(i).name();
            n != MALFORMED_COLUMN && n != MALFORMED_REASON_COLUMN
        })
        .collect();
    if data.is_empty() {
        return Err(Error::Source {
            source_name: source.name(),
            message: "the source has no fields to propose attributes from".into(),
            cause: None,
        });
    }
    let raw = schema.index_of(MALFORMED_COLUMN).ok();
    let mut stats: Vec<Stats> = data
        .iter()
        .map(|_| Stats { guess: TextGuess::default(), nulls: 0, distinct: HashSet::new(), unique: true })
        .collect();
    let mut sampled = 0u64;
    let mut stream = source.scan(&ScanRequest::all()).await?;
    while let Some(batch) = stream.next().await {
        let batch: RecordBatch = batch?;
        let want = options.sample_rows - sampled as usize;
        let batch = if batch.num_rows() > want { batch.slice(0, want) } else { batch };
        let good: Vec<usize> =
            (0..batch.num_rows()).filter(|&r| raw.is_none_or(|c| batch.column(c).is_null(r))).collect();
        sampled += good.len() as u64;
        for (s, &i) in stats.iter_mut().zip(&data) {
            let col = batch.column(i);
            let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?;
            let text = col.as_string_opt::<i32>();
            for &r in &good {
                if col.is_null(r) {
                    s.nulls += 1;
                    s.unique = false;
                    continue;
                }
                if let Some(t) = text {
                    s.guess.add(t.value(r));
                }
                if s.unique && !s.distinct.insert(fmt.value(r).to_string()) {
                    s.unique = false;
                    s.distinct = HashSet::new();
                }
            }
        }
        if sampled as usize >= options.sample_rows {
            break;
        }
    }
    drop(stream);
    let sources: Vec<String> = data.iter().map(|&i| schema.field(i).name().clone()).collect();
    let names = unique_names(&sources);
    let mut fields = vec![];
    for ((src, attr), (s, &i)) in sources.iter().zip(&names).zip(stats.iter().zip(&data)) {
        let t = typed(schema.field(i).data_type()).unwrap_or_else(|| s.guess.finish());
        fields.push(InferredField {
            source: src.clone(),
            attribute: attr.clone(),
            data_type: t,
            nulls: s.nulls,
            unique: s.unique && sampled > 0,
        });
    }
    let mut notes = vec![];
    let key = match &options.key {
        Some(k) => {
            let k = normalize_name(k);
            let f = fields.iter().find(|f| f.source == k || f.attribute == k).ok_or_else(|| {
                let names: Vec<&str> = fields.iter().map(|f| f.source.as_str()).collect();
                Error::InvalidArgument(format!(
                    "the source has no field `{k}` to be the key (fields: {})",
                    names.join(", ")
                ))
            })?;
            if !f.data_type.is_key_type() {
                notes.push(format!(
                    "key `{}` looks like {} in the sample; it is proposed as string (keys are string, int32 or int64)",
                    f.attribute, f.data_type
                ));
            }
            if !f.unique {
                notes.push(format!("key `{}` is not unique and non-null in the sample", f.attribute));
            }
            f.attribute.clone()
        }
        None => {
            let candidates: Vec<&InferredField> =
                fields.iter().filter(|f| f.unique && f.data_type.is_key_type()).collect();
            match candidates.iter().find(|f| looks_like_id(&f.source)).or(candidates.first()) {
                Some(f) => f.attribute.clone(),
                None => {
                    let f = fields.iter().find(|f| f.data_type.is_key_type()).unwrap_or(&fields[0]);
                    notes.push(format!(
                        "no field is unique and non-null in the {sampled} sampled rows; `{}` is proposed as the key: \
                         check it, or pass `key`",
                        f.attribute
                    ));
                    f.attribute.clone()
                }
            }
        }
    };
    for f in &mut fields {
        if f.attribute == key && !f.data_type.is_key_type() {
            f.data_type = DataType::String;
        }
    }
    let mut entity = Entity::profile(normalize_name(name), key);
    for f in &fields {
        entity = entity.attribute(Attribute::new(f.attribute.clone(), f.data_type.clone()));
    }
    entity.validate()?;
    let mapping =
        fields.iter().filter(|f| f.attribute != f.source).map(|f| (f.attribute.clone(), f.source.clone())).collect();
    Ok(InferredEntity { entity, mapping, fields, sampled_rows: sampled, notes })
}
