//! Segments: a named rule over one entity, evaluated into membership versions.

use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rules::Rule;
use crate::source::BatchStream;

/// A segment: a rule over an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDefinition {
    /// Name: letters, digits and `_`.
    pub name: String,
    /// The entity whose members it selects.
    pub entity: String,
    /// The rule (stored in segkit's dialect, whatever dialect it arrived in).
    pub rule: Rule,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A deterministic split of the members into a holdout and variants (stored as the `variant` column of
    /// each membership version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<crate::split::Split>,
    /// How many runs (membership versions) to keep; older ones are deleted after each evaluation. `None` keeps
    /// every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<u32>,
}

impl SegmentDefinition {
    /// Keeps only the last `n` runs (builder style).
    pub fn keep_runs(mut self, n: u32) -> Self {
        self.keep_runs = Some(n);
        self
    }

    /// Adds a split (builder style).
    pub fn with_split(mut self, split: crate::split::Split) -> Self {
        self.split = Some(split);
        self
    }

    /// A segment named `name` of `entity` members matching `rule`.
    pub fn new(name: impl Into<String>, entity: impl Into<String>, rule: Rule) -> Self {
        SegmentDefinition {
            name: name.into(),
            entity: entity.into(),
            rule,
            description: None,
            split: None,
            keep_runs: None,
        }
    }
}

/// The result of one evaluation: members (sorted keys) and who entered and exited since the previous run.
#[derive(Debug, Clone)]
pub struct SegmentRun {
    /// Segment name.
    pub segment: String,
    /// Run number (1 for the first evaluation).
    pub run: i64,
    /// Number of members.
    pub count: u64,
    /// Member keys, ascending, one column named after the entity key.
    pub members: RecordBatch,
    /// Keys that are members now and were not in the previous run.
    pub entered: RecordBatch,
    /// Keys that were members in the previous run and are not now.
    pub exited: RecordBatch,
    /// When the evaluation started (workspace clock).
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// The entity snapshot evaluated.
    pub snapshot: i64,
}

impl SegmentRun {
    /// The members as a stream of batches of at most `batch_rows` keys.
    pub fn members_stream(&self, batch_rows: usize) -> BatchStream {
        let b = self.members.clone();
        let step = batch_rows.max(1);
        let n = b.num_rows();
        futures::stream::iter((0..n).step_by(step).map(move |o| Ok(b.slice(o, step.min(n - o))))).boxed()
    }
}

/// What evaluating an edited segment would do, without saving anything ([`Workspace::dry_run`](crate::Workspace::dry_run)).
#[derive(Debug, Clone)]
pub struct DryRun {
    /// Number of members the definition selects now.
    pub count: u64,
    /// Those members (sorted keys, plus `variant` with a split).
    pub members: RecordBatch,
    /// Keys that would enter compared with the latest stored run.
    pub would_enter: RecordBatch,
    /// Keys that would exit.
    pub would_exit: RecordBatch,
    /// The run compared with (`None`: the segment has never been evaluated).
    pub against_run: Option<i64>,
}

/// Splits two ascending key columns into (entered = in `now` only, exited = in `before` only).
pub(crate) fn diff_sorted(before: &RecordBatch, now: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
    let (a, b) = (before.column(0), now.column(0));
    let (only_before, only_now) = match b.data_type() {
        ArrowType::Int64 => merge(a.as_primitive::<Int64Type>().values(), b.as_primitive::<Int64Type>().values()),
        ArrowType::Int32 => merge(a.as_primitive::<Int32Type>().values(), b.as_primitive::<Int32Type>().values()),
        _ => {
            let (x, y) = (a.as_string::<i32>(), b.as_string::<i32>());
            let xs: Vec<&str> = x.iter().map(|v| v.unwrap_or_default()).collect();
            let ys: Vec<&str> = y.iter().map(|v| v.unwrap_or_default()).collect();
            merge(&xs, &ys)
        }
    };
    let pick = |batch: &RecordBatch, idx: Vec<u32>| -> Result<RecordBatch> {
        Ok(take_record_batch(batch, &arrow::array::UInt32Array::from(idx))?)
    };
    Ok((pick(now, only_now)?, pick(before, only_before)?))
}

fn merge<T: Ord>(a: &[T], b: &[T]) -> (Vec<u32>, Vec<u32>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (vec![], vec![]);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                only_a.push(i as u32);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_b.push(j as u32);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    only_a.extend((i..a.len()).map(|x| x as u32));
    only_b.extend((j..b.len()).map(|x| x as u32));
    (only_a, only_b)
}

/// Sorts a one-column key batch ascending (a no-op when it already is).
pub(crate) fn sort_keys(batch: RecordBatch) -> Result<RecordBatch> {
    if batch.num_rows() < 2 {
        return Ok(batch);
    }
    let col: &ArrayRef = batch.column(0);
    // Keys are never null: integer keys sort as plain vectors (no index indirection).
    let sorted: ArrayRef = match col.data_type() {
        ArrowType::Int64 => {
            let v = col.as_primitive::<Int64Type>().values();
            if v.is_sorted() {
                return Ok(batch);
            }
            let mut v = v.to_vec();
            v.sort_unstable();
            std::sync::Arc::new(arrow::array::Int64Array::from(v))
        }
        ArrowType::Int32 => {
            let v = col.as_primitive::<Int32Type>().values();
            if v.is_sorted() {
                return Ok(batch);
            }
            let mut v = v.to_vec();
            v.sort_unstable();
            std::sync::Arc::new(arrow::array::Int32Array::from(v))
        }
        _ => {
            let idx = arrow::compute::sort_to_indices(col, None, None)?;
            return Ok(take_record_batch(&batch, &idx)?);
        }
    };
    Ok(RecordBatch::try_new(batch.schema(), vec![sorted])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn diff_finds_entered_and_exited() {
        let mk = |v: Vec<i64>| {
            RecordBatch::try_from_iter([("k", Arc::new(arrow::array::Int64Array::from(v)) as ArrayRef)]).unwrap()
        };
        let (entered, exited) = diff_sorted(&mk(vec![1, 2, 4, 7]), &mk(vec![2, 3, 4, 8, 9])).unwrap();
        assert_eq!(entered.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![3, 8, 9]);
        assert_eq!(exited.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![1, 7]);
        let mk = |v: Vec<&str>| {
            RecordBatch::try_from_iter([("k", Arc::new(arrow::array::StringArray::from(v)) as ArrayRef)]).unwrap()
        };
        let (entered, exited) = diff_sorted(&mk(vec!["a", "c"]), &mk(vec!["b", "c"])).unwrap();
        assert_eq!(entered.column(0).as_string::<i32>().value(0), "b");
        assert_eq!(exited.column(0).as_string::<i32>().value(0), "a");
        let _ = Array::len(entered.column(0));
    }
}
