//! `has_any` / `has_all` against a large literal list, as a scalar function holding a hash set of the values.
//!
//! DataFusion's `array_has_any(col, make_array(v1, …, vN))` builds the N-value array for every batch and compares
//! each row's elements with it, which with N = 1 M values is O(rows · N) and plans slowly (N literal
//! expressions). [`list_match`] builds one hash map from value to index once, when the rule is compiled, and then
//! looks each list element of each row up in it: O(elements + N). `has_none` is `not has_any`, so it keeps the
//! three-valued semantics of the short form: a null list is unknown, null elements never match.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type, TimeUnit as ArrowUnit};
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::checked::{ListMode, Literal};

/// The distinct values of the list, each with its index (so `has_all` can count distinct hits per row).
#[derive(Debug)]
enum Keys {
    Str(HashMap<String, u32>),
    /// Integers, dates (days) and timestamps (microseconds).
    Int(HashMap<i64, u32>),
    /// Floats by bit pattern (NaN never reaches the store: it is ingested as null).
    Float(HashMap<u64, u32>),
    /// `[false, true]`.
    Bool([Option<u32>; 2]),
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::Str(m) => m.len(),
            Keys::Int(m) => m.len(),
            Keys::Float(m) => m.len(),
            Keys::Bool(b) => b.iter().flatten().count(),
        }
    }
}

/// Floats compare by bit pattern, as `array_has_any` and the reference interpreter (`total_cmp`) do: -0.0 is
/// not 0.0.
fn float_bits(f: f64) -> u64 {
    f.to_bits()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The scalar function: `list_match(list) -> bool`, null when the list is null.
#[derive(Debug)]
struct ListMatch {
    /// Identity for `Eq`/`Hash` (two functions are equal only if they are the same compiled node).
    id: u64,
    name: String,
    all: bool,
    keys: Keys,
    signature: Signature,
}

impl PartialEq for ListMatch {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for ListMatch {}
impl Hash for ListMatch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

/// `has_any` (`mode` Any), `has_all` (All) or `has_none` (None = `not has_any`) of `column` against `values`,
/// evaluated with one hash set of the values. The literals are those of one checked list attribute.
pub(crate) fn list_match(column: Expr, mode: ListMode, values: &[Literal]) -> Expr {
    let mut keys = match values.first() {
        Some(Literal::String(_)) => Keys::Str(HashMap::with_capacity(values.len())),
        Some(Literal::Float(_)) => Keys::Float(HashMap::with_capacity(values.len())),
        Some(Literal::Bool(_)) => Keys::Bool([None, None]),
        _ => Keys::Int(HashMap::with_capacity(values.len())),
    };
    for v in values {
        let next = keys.len() as u32;
        match (&mut keys, v) {
            (Keys::Str(m), Literal::String(s)) => {
                m.entry(s.clone()).or_insert(next);
            }
            (Keys::Int(m), Literal::Int(i) | Literal::Timestamp(i)) => {
                m.entry(*i).or_insert(next);
            }
            (Keys::Int(m), Literal::Date(d)) => {
                m.entry(i64::from(*d)).or_insert(next);
            }
            (Keys::Float(m), Literal::Float(f)) => {
                m.entry(float_bits(*f)).or_insert(next);
            }
            (Keys::Float(m), Literal::Int(i)) => {
                m.entry(float_bits(*i as f64)).or_insert(next);
            }
            (Keys::Bool(b), Literal::Bool(x)) => {
                b[usize::from(*x)].get_or_insert(next);
            }
            // The checker types every literal of a list like its element; a mixed list cannot get here.
            _ => {}
        }
    }
    let word = match mode {
        ListMode::All => "has_all",
        _ => "has_any",
    };
    let udf = ListMatch {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        name: format!("{word}_of_{}_values", keys.len()),
        all: mode == ListMode::All,
        keys,
        signature: Signature::any(1, Volatility::Immutable),
    };
    let call = ScalarUDF::new_from_impl(udf).call(vec![column]);
    match mode {
        ListMode::None => Expr::Not(Box::new(call)),
        _ => call,
    }
}

impl ListMatch {
    /// For each element of `values` (a list's child array), its index in the set, if it is in it.
    fn lookup(&self, values: &ArrayRef) -> DfResult<Vec<Option<u32>>> {
        let n = values.len();
        let valid = |i: usize| values.is_valid(i);
        Ok(match &self.keys {
            Keys::Str(m) => match values.data_type() {
                ArrowType::Utf8 => {
                    let a = values.as_string::<i32>();
                    (0..n).map(|i| if valid(i) { m.get(a.value(i)).copied() } else { None }).collect()
                }
                ArrowType::LargeUtf8 => {
                    let a = values.as_string::<i64>();
                    (0..n).map(|i| if valid(i) { m.get(a.value(i)).copied() } else { None }).collect()
                }
                ArrowType::Utf8View => {
                    let a = values.as_string_view();
                    (0..n).map(|i| if valid(i) { m.get(a.value(i)).copied() } else { None }).collect()
                }
                other => return exec_err!("{}: list of {other} against string values", self.name),
            },
            Keys::Int(m) => {
                let ints = match values.data_type() {
                    ArrowType::Timestamp(_, tz) => arrow::compute::cast(
                        &arrow::compute::cast(values, &ArrowType::Timestamp(ArrowUnit::Microsecond, tz.clone()))?,
                        &ArrowType::Int64,
                    )?,
                    ArrowType::Int8
                    | ArrowType::Int16
                    | ArrowType::Int32
                    | ArrowType::Int64
                    | ArrowType::UInt8
                    | ArrowType::UInt16
                    | ArrowType::UInt32
                    | ArrowType::Date32 => arrow::compute::cast(values, &ArrowType::Int64)?,
                    other => return exec_err!("{}: list of {other} against integer values", self.name),
                };
                let a = ints.as_primitive::<Int64Type>();
                (0..n).map(|i| if a.is_valid(i) { m.get(&a.value(i)).copied() } else { None }).collect()
            }
            Keys::Float(m) => {
                let f = match values.data_type() {
                    ArrowType::Float64 => values.clone(),
                    ArrowType::Float32 | ArrowType::Float16 | ArrowType::Int32 | ArrowType::Int64 => {
                        arrow::compute::cast(values, &ArrowType::Float64)?
                    }
                    other => return exec_err!("{}: list of {other} against float values", self.name),
                };
                let a = f.as_primitive::<Float64Type>();
                (0..n).map(|i| if a.is_valid(i) { m.get(&float_bits(a.value(i))).copied() } else { None }).collect()
            }
            Keys::Bool(b) => {
                let Some(a) = values.as_boolean_opt() else {
                    return exec_err!("{}: list of {} against boolean values", self.name, values.data_type());
                };
                (0..n).map(|i| if a.is_valid(i) { b[usize::from(a.value(i))] } else { None }).collect()
            }
        })
    }

    /// One output value per row from the list offsets.
    fn rows<O: Copy + Into<i64>>(
        &self,
        offsets: &[O],
        nulls: Option<&arrow::buffer::NullBuffer>,
        hits: &[Option<u32>],
    ) -> BooleanArray {
        let rows = offsets.len().saturating_sub(1);
        let mut out = BooleanBuilder::with_capacity(rows);
        let wanted = self.keys.len();
        let mut seen: Vec<u32> = vec![];
        for r in 0..rows {
            if nulls.is_some_and(|n| n.is_null(r)) {
                out.append_null();
                continue;
            }
            let (lo, hi) = (offsets[r].into() as usize, offsets[r + 1].into() as usize);
            let row = &hits[lo..hi];
            if self.all {
                seen.clear();
                seen.extend(row.iter().flatten());
                seen.sort_unstable();
                seen.dedup();
                out.append_value(seen.len() == wanted);
            } else {
                out.append_value(row.iter().any(Option::is_some));
            }
        }
        out.finish()
    }
}

impl ScalarUDFImpl for ListMatch {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[ArrowType]) -> DfResult<ArrowType> {
        Ok(ArrowType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name);
        };
        let array = arg.to_array(args.number_rows)?;
        let out = if let Some(l) = array.as_list_opt::<i32>() {
            let hits = self.lookup(l.values())?;
            self.rows(l.value_offsets(), l.nulls(), &hits)
        } else if let Some(l) = array.as_list_opt::<i64>() {
            let hits = self.lookup(l.values())?;
            self.rows(l.value_offsets(), l.nulls(), &hits)
        } else if array.data_type() == &ArrowType::Null {
            BooleanArray::new_null(array.len())
        } else {
            return exec_err!("{} needs a list, got {}", self.name, array.data_type());
        };
        let out: ArrayRef = Arc::new(out);
        Ok(match arg {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(out),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, BooleanArray, Float64Builder, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    };
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;
    use serde_json::json;

    use crate::model::{Attribute, DataType, Entity};
    use crate::rules::{check, compile, reference, Dialect, Rule, LARGE_LIST};

    fn entity() -> Entity {
        Entity::profile("t", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
            .attribute(Attribute::new("nums", DataType::List(Box::new(DataType::Int64))))
            .attribute(Attribute::new("fs", DataType::List(Box::new(DataType::Float64))))
    }

    /// Rows with empty lists, null lists, null elements and duplicate elements.
    fn data() -> RecordBatch {
        let tags: &[Option<Vec<Option<&str>>>] = &[
            Some(vec![Some("a"), Some("vip")]),
            Some(vec![]),
            None,
            Some(vec![None, Some("b")]),
            Some(vec![Some("vip"), Some("vip")]),
            Some(vec![Some("a"), Some("b"), Some("vip")]),
            Some(vec![None]),
        ];
        let nums: &[Option<Vec<Option<i64>>>] = &[
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(7), None]),
            Some(vec![Some(2), Some(2), Some(1)]),
            Some(vec![Some(-5)]),
            Some(vec![None, Some(1)]),
        ];
        let fs: &[Option<Vec<Option<f64>>>] = &[
            Some(vec![Some(0.5)]),
            Some(vec![Some(-0.0)]),
            None,
            Some(vec![Some(2.25), None]),
            Some(vec![]),
            Some(vec![Some(0.5), Some(2.25)]),
            Some(vec![None]),
        ];
        let mut t = ListBuilder::new(StringBuilder::new());
        for r in tags {
            match r {
                None => t.append_null(),
                Some(v) => {
                    for x in v {
                        t.values().append_option(*x);
                    }
                    t.append(true);
                }
            }
        }
        let mut n = ListBuilder::new(Int64Builder::new());
        for r in nums {
            match r {
                None => n.append_null(),
                Some(v) => {
                    for x in v {
                        n.values().append_option(*x);
                    }
                    n.append(true);
                }
            }
        }
        let mut f = ListBuilder::new(Float64Builder::new());
        for r in fs {
            match r {
                None => f.append_null(),
                Some(v) => {
                    for x in v {
                        f.values().append_option(*x);
                    }
                    f.append(true);
                }
            }
        }
        let ids = Int64Array::from_iter_values(0..tags.len() as i64);
        RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as Arc<dyn Array>),
            ("tags", Arc::new(t.finish())),
            ("nums", Arc::new(n.finish())),
            ("fs", Arc::new(f.finish())),
        ])
        .unwrap()
    }

    /// The rule's three-valued result per row, as DataFusion computes it from the compiled expression.
    async fn engine(rule: &crate::rules::Checked, batch: &RecordBatch) -> Vec<Option<bool>> {
        let now = chrono::Utc::now();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let df = ctx.table("t").await.unwrap().select(vec![compile(rule, now).alias("r")]).unwrap();
        let out = df.collect().await.unwrap();
        out.iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<BooleanArray>().unwrap().clone();
                (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i))).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every list operator with lists below and above [`LARGE_LIST`] (padded with values no row holds), alone
    /// and under `not`, gives the reference interpreter's true / false / unknown on every row.
    #[tokio::test]
    async fn large_list_operators_match_the_reference_interpreter() {
        let batch = data();
        let now = chrono::Utc::now();
        let pad = LARGE_LIST + 500;
        let strings = |v: &[&str], big: bool| {
            let mut out: Vec<serde_json::Value> = v.iter().map(|s| json!(s)).collect();
            if big {
                out.extend((0..pad).map(|i| json!(format!("pad{i}"))));
            }
            out
        };
        let ints = |v: &[i64], big: bool| {
            let mut out: Vec<serde_json::Value> = v.iter().map(|s| json!(s)).collect();
            if big {
                out.extend((1000..1000 + pad as i64).map(|i| json!(i)));
            }
            out
        };
        let floats = |v: &[f64], big: bool| {
            let mut out: Vec<serde_json::Value> = v.iter().map(|s| json!(s)).collect();
            if big {
                out.extend((0..pad).map(|i| json!(1000.5 + i as f64)));
            }
            out
        };
        let mut checked_large = 0;
        for big in [false, true] {
            for op in ["has_any", "has_all", "has_none"] {
                let cases = [
                    json!({"attribute": "tags", "op": op, "value": strings(&["vip"], big)}),
                    json!({"attribute": "tags", "op": op, "value": strings(&["vip", "a", "vip"], big)}),
                    json!({"attribute": "tags", "op": op, "value": strings(&["b", "zzz"], big)}),
                    json!({"attribute": "nums", "op": op, "value": ints(&[1, 2], big)}),
                    json!({"attribute": "nums", "op": op, "value": ints(&[7], big)}),
                    json!({"attribute": "fs", "op": op, "value": floats(&[0.0, 2.25], big)}),
                ];
                for case in cases {
                    for rule in [case.clone(), json!({"not": case.clone()})] {
                        let checked = check(&Rule::parse(&rule, Dialect::Segkit).unwrap(), &entity()).unwrap();
                        let want = reference::eval(&checked, &batch, now);
                        let got = engine(&checked, &batch).await;
                        let shown = rule.to_string();
                        assert_eq!(got, want, "{}", &shown[..shown.len().min(120)]);
                        if big {
                            checked_large += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked_large, 36);
    }

    /// The hash-set form is what large lists compile to (not `array_has_any` over a literal array).
    #[test]
    fn large_lists_compile_to_one_hash_set() {
        let values: Vec<String> = (0..LARGE_LIST + 1).map(|i| format!("v{i}")).collect();
        let rule = json!({"attribute": "tags", "op": "has_any", "value": values});
        let checked = check(&Rule::parse(&rule, Dialect::Segkit).unwrap(), &entity()).unwrap();
        let shown = compile(&checked, chrono::Utc::now()).to_string();
        assert_eq!(shown, format!("has_any_of_{}_values(tags)", LARGE_LIST + 1));
        let small = json!({"attribute": "tags", "op": "has_any", "value": ["a", "b"]});
        let checked = check(&Rule::parse(&small, Dialect::Segkit).unwrap(), &entity()).unwrap();
        assert!(compile(&checked, chrono::Utc::now()).to_string().contains("array_has_any"));
    }
}
