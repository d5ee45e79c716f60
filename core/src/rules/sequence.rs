//! Ordered sequences — "A, then B at most T later, with no C strictly between" — matched in one pass over each
//! entity's candidate events in time order.
//!
//! A self-join of the event table on the link (every A with every later B of the same entity) grows with the
//! square of an entity's activity, and a few very active entities have tens of thousands of events. Instead,
//! [`sequence_events`] selects the events that are an A, a B or a C (one pruned scan per step), and
//! [`matching_links`] orders them by entity and time and walks them once: at each B, only the *latest* A
//! strictly before it matters — if any earlier A pairs with this B, the latest one does too, because it is
//! closer in time and every C between it and B also lies between the earlier A and B.
//!
//! The ordering is a sort of compact `(entity, time, row)` records rather than DataFusion's general sort of the
//! rows: the order of the entities does not matter, only that each one's events are together and in time
//! order, so integer keys are used as they are and string keys are numbered through a hash map.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::Schema;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::row::{Row, RowConverter, SortField};
use chrono::{DateTime, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, Expr, LogicalPlan};
use std::collections::HashMap;

use super::checked::{CheckedSequence, TimeUnit, Window};
use super::compile::{column, compile_with, PlanSource};
use crate::error::{Error, Result};
use crate::model::UTC;

/// Column names of [`sequence_events`]' output after the link and the time.
const FIRST: &str = "__seq_first";
const THEN: &str = "__seq_then";
const WITHOUT: &str = "__seq_without";

/// The candidate events of a sequence: `link`, `time` and whether each is a `first`, a `then` or a `without`
/// event (never null; an event that is several steps may come once per step), for events with a link and a time
/// inside `within_last`, in no particular order. `only` restricts it to one entity's events (for `explain`).
pub fn sequence_events(
    q: &CheckedSequence,
    now: DateTime<Utc>,
    tables: &dyn PlanSource,
    only: Option<Expr>,
) -> Result<LogicalPlan> {
    let ev_key = q.event.key.clone().unwrap_or_default();
    let mut base = column(&q.link).is_not_null().and(column(&q.time).is_not_null());
    if let Some(w) = &q.within_last {
        let ts = |t: DateTime<Utc>| {
            Expr::Literal(ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some(UTC.into())), None)
        };
        base = base.and(Expr::Between(Between::new(
            Box::new(column(&q.time)),
            false,
            Box::new(ts(w.start(now))),
            Box::new(ts(now)),
        )));
    }
    if let Some(only) = only {
        base = base.and(column(&q.link).eq(only));
    }
    let steps: Vec<Expr> = [Some(&q.first), Some(&q.then), q.without.as_ref()]
        .into_iter()
        .map(|s| s.map(|s| compile_with(s, now, &ev_key, &q.event.name, tables)).transpose())
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .map(|s| s.unwrap_or_else(|| datafusion::logical_expr::lit(false)))
        .collect();
    let flags = [FIRST, THEN, WITHOUT];
    if !steps.iter().any(has_subquery) {
        // One scan: the raw predicates select the candidates (so row groups and pages prune on them), the same
        // predicates made two-valued flag them.
        let any = steps.iter().cloned().reduce(Expr::or).expect("three steps");
        let mut project = vec![column(&q.link), column(&q.time)];
        project.extend(steps.into_iter().zip(flags).map(|(e, name)| Expr::IsTrue(Box::new(e)).alias(name)));
        return Ok(tables.scan(&q.event.name)?.filter(base.and(any))?.project(project)?.build()?);
    }
    // A step with a subquery (a `linked` condition on another entity) cannot be a projected flag: DataFusion plans
    // subqueries in filters only. Then each step is its own filtered scan, flagged by constants, in a union; an
    // event that is several steps comes once per step and the matcher merges them.
    let mut plan: Option<datafusion::logical_expr::LogicalPlanBuilder> = None;
    for (i, rule) in steps.into_iter().enumerate() {
        if i == 2 && q.without.is_none() {
            break;
        }
        let flag = |k: usize| datafusion::logical_expr::lit(i == k);
        let mut project = vec![column(&q.link), column(&q.time)];
        project.extend(flags.iter().enumerate().map(|(k, name)| flag(k).alias(*name)));
        let part = tables.scan(&q.event.name)?.filter(base.clone().and(rule))?.project(project)?;
        plan = Some(match plan {
            None => part,
            Some(p) => p.union(part.build()?)?,
        });
    }
    Ok(plan.expect("first and then are always there").build()?)
}

fn has_subquery(e: &Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    e.exists(|e| Ok(matches!(e, Expr::InSubquery(_) | Expr::Exists(_) | Expr::ScalarSubquery(_)))).unwrap_or(true)
}

/// One entity's earliest match: the times (µs since the epoch) of the `first` and `then` events that make it.
pub type Witness = (i64, i64);

/// The links of the entities with a match (in no particular order, without repeats), each with its earliest
/// witness, from the output of [`sequence_events`] (`schema` and its batches), using up to `threads` threads.
pub fn matching_links(
    schema: &Schema,
    batches: &[RecordBatch],
    within: Option<&Window>,
    threads: usize,
) -> Result<(ArrayRef, Vec<Witness>)> {
    let bad = || Error::InvalidArgument("sequence events: expected link, time, first, then, without".into());
    let fields = schema.fields();
    if fields.len() != 5 || !matches!(fields[1].data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
        return Err(bad());
    }
    let mut views = vec![];
    for b in batches {
        if b.num_columns() != 5 || b.column(0).data_type() != fields[0].data_type() {
            return Err(bad());
        }
        let time = b.column(1).as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(bad)?;
        let flag = |i: usize| b.column(i).as_boolean_opt().ok_or_else(bad);
        if b.column(0).null_count() > 0 || time.null_count() > 0 {
            return Err(Error::InvalidArgument("sequence events: null link or time".into()));
        }
        views.push((time.values().as_ref(), flag(2)?, flag(3)?, flag(4)?));
    }
    let groups = Groups::new(batches)?;
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    if n > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!("sequence events: {n} candidates, at most 2^32 are supported")));
    }

    let (mut candidates, starts) = spread_by_entity(&groups, &views, n);
    let (rows, witnesses) = match_buckets(&mut candidates, &starts, &Limit::new(within), threads);
    Ok((links_at(batches, &rows, fields[0].data_type())?, witnesses))
}

/// The flags of one batch of candidates: times, then `first`, `then` and `without`.
type View<'a> =
    (&'a [i64], &'a arrow::array::BooleanArray, &'a arrow::array::BooleanArray, &'a arrow::array::BooleanArray);

/// Spreads the candidates over buckets by a hash of their entity (a counting sort): an entity's events all land
/// in one bucket, and a bucket is small enough to sort in the cache. Returns the candidates bucket by bucket and
/// where each bucket starts (plus the end).
fn spread_by_entity(groups: &Groups<'_>, views: &[View<'_>], n: usize) -> (Vec<Candidate>, Vec<usize>) {
    let bits = (n / 4096).max(1).ilog2().min(16);
    let bucket = |g: u64| if bits == 0 { 0 } else { (g.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize };
    let mut starts = vec![0usize; (1 << bits) + 1];
    for (b, view) in views.iter().enumerate() {
        for i in 0..view.0.len() {
            starts[bucket(groups.get(b, i)) + 1] += 1;
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut out = vec![Candidate::default(); n];
    let mut row = 0u32;
    for (b, (time, first, then, without)) in views.iter().enumerate() {
        let kinds = first.values().iter().zip(then.values().iter()).zip(without.values().iter());
        for (i, (t, ((f, th), c))) in time.iter().zip(kinds).enumerate() {
            let group = groups.get(b, i);
            let slot = &mut next[bucket(group)];
            out[*slot] = Candidate { group, time: *t, row, kind: f as u8 | (th as u8) << 1 | (c as u8) << 2 };
            *slot += 1;
            row += 1;
        }
    }
    (out, starts)
}

/// Sorts each bucket by (entity, time) and scans each entity once, on up to `threads` threads that each take a
/// contiguous run of buckets with about the same number of candidates. Returns the row of one candidate of each
/// matching entity, and its witness.
fn match_buckets(
    candidates: &mut [Candidate],
    starts: &[usize],
    limit: &Limit<'_>,
    threads: usize,
) -> (Vec<u32>, Vec<Witness>) {
    let n = candidates.len();
    let threads = threads.clamp(1, 64);
    let mut cuts = vec![0usize];
    for w in 1..threads {
        let b = starts.partition_point(|s| *s < n * w / threads).min(starts.len() - 1);
        cuts.push(starts[b].max(*cuts.last().expect("non-empty")));
    }
    cuts.push(n);
    let mut parts: Vec<(usize, &mut [Candidate])> = vec![];
    let mut rest = candidates;
    for w in cuts.windows(2) {
        let (part, tail) = rest.split_at_mut(w[1] - w[0]);
        parts.push((w[0], part));
        rest = tail;
    }
    let found: Vec<(Vec<u32>, Vec<Witness>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .into_iter()
            .map(|(offset, part)| {
                scope.spawn(move || {
                    let (mut rows, mut witnesses) = (vec![], vec![]);
                    let first = starts.partition_point(|s| *s < offset);
                    let mut bounds: Vec<usize> =
                        starts[first..].iter().map(|s| s - offset).take_while(|s| *s < part.len()).collect();
                    bounds.push(part.len());
                    for b in bounds.windows(2) {
                        let events = &mut part[b[0]..b[1]];
                        events.sort_unstable_by_key(|c| (c.group, c.time));
                        for entity in events.chunk_by(|x, y| x.group == y.group) {
                            if let Some(w) = scan_entity(entity, limit) {
                                rows.push(entity[0].row);
                                witnesses.push(w);
                            }
                        }
                    }
                    (rows, witnesses)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("sequence matching thread panicked")).collect()
    });
    found.into_iter().fold((vec![], vec![]), |(mut r, mut w), (r2, w2)| {
        r.extend(r2);
        w.extend(w2);
        (r, w)
    })
}

/// The link values at global candidate `rows` (counted across `batches`).
fn links_at(batches: &[RecordBatch], rows: &[u32], link_type: &arrow::datatypes::DataType) -> Result<ArrayRef> {
    if batches.is_empty() {
        return Ok(arrow::array::new_empty_array(link_type));
    }
    let mut offsets = Vec::with_capacity(batches.len());
    let mut at = 0u32;
    for b in batches {
        offsets.push(at);
        at += b.num_rows() as u32;
    }
    let picks: Vec<(usize, usize)> = rows
        .iter()
        .map(|r| {
            let b = offsets.partition_point(|o| *o <= *r) - 1;
            (b, (r - offsets[b]) as usize)
        })
        .collect();
    let links: Vec<&dyn Array> = batches.iter().map(|b| b.column(0).as_ref()).collect();
    Ok(interleave(&links, &picks)?)
}

/// A candidate event: its entity (as a number), time, row and kind (bit 0 `first`, 1 `then`, 2 `without`).
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    group: u64,
    time: i64,
    row: u32,
    kind: u8,
}

/// A number per distinct link value: integer keys themselves, other keys numbered through a hash map.
enum Groups<'a> {
    Int64(Vec<&'a [i64]>),
    Int32(Vec<&'a [i32]>),
    Dense(Vec<Vec<u64>>),
}

impl<'a> Groups<'a> {
    fn new(batches: &'a [RecordBatch]) -> Result<Self> {
        use arrow::datatypes::{DataType as A, Int32Type, Int64Type};
        let Some(first) = batches.first() else { return Ok(Groups::Dense(vec![])) };
        Ok(match first.column(0).data_type() {
            A::Int64 => Groups::Int64(
                batches.iter().map(|b| b.column(0).as_primitive::<Int64Type>().values().as_ref()).collect(),
            ),
            A::Int32 => Groups::Int32(
                batches.iter().map(|b| b.column(0).as_primitive::<Int32Type>().values().as_ref()).collect(),
            ),
            other => {
                let converter = RowConverter::new(vec![SortField::new(other.clone())])?;
                let rows = batches
                    .iter()
                    .map(|b| converter.convert_columns(&[b.column(0).clone()]))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let mut ids: HashMap<Row<'_>, u64> = HashMap::new();
                let dense = rows
                    .iter()
                    .map(|rows| {
                        rows.iter()
                            .map(|r| {
                                let next = ids.len() as u64;
                                *ids.entry(r).or_insert(next)
                            })
                            .collect()
                    })
                    .collect();
                Groups::Dense(dense)
            }
        })
    }

    fn get(&self, batch: usize, row: usize) -> u64 {
        match self {
            Groups::Int64(v) => v[batch][row] as u64,
            Groups::Int32(v) => v[batch][row] as u64,
            Groups::Dense(v) => v[batch][row],
        }
    }
}

/// How late a `then` event may come after a `first` one.
struct Limit<'a> {
    window: Option<&'a Window>,
    /// The window in µs when it has a fixed length (minutes and hours anywhere; days and weeks in UTC).
    fixed: Option<i64>,
}

impl<'a> Limit<'a> {
    fn new(window: Option<&'a Window>) -> Self {
        let fixed = window.and_then(|w| match w.unit {
            TimeUnit::Minutes => Some(w.amount * 60_000_000),
            TimeUnit::Hours => Some(w.amount * 3_600_000_000),
            TimeUnit::Days if w.tz == chrono_tz::UTC => Some(w.amount * 86_400_000_000),
            TimeUnit::Weeks if w.tz == chrono_tz::UTC => Some(w.amount * 7 * 86_400_000_000),
            _ => None,
        });
        Limit { window, fixed }
    }

    /// The latest time a `then` event may have after a `first` event at `t` (calendar units in the window's zone).
    fn after(&self, t: i64) -> i64 {
        match (self.window, self.fixed) {
            (None, _) => i64::MAX,
            (Some(_), Some(d)) => t.saturating_add(d),
            (Some(w), None) => match DateTime::from_timestamp_micros(t) {
                Some(at) => w.after(at).timestamp_micros(),
                None => i64::MAX,
            },
        }
    }
}

/// The earliest match among one entity's events (sorted by time): at each `then` event, the latest `first` event
/// strictly before it, if it is close enough and no `without` event lies strictly between them. Events at the
/// same instant are taken together: none of them is before another.
fn scan_entity(events: &[Candidate], limit: &Limit<'_>) -> Option<Witness> {
    let (mut last_first, mut last_without): (Option<i64>, Option<i64>) = (None, None);
    let mut i = 0;
    while i < events.len() {
        let t = events[i].time;
        let mut kind = 0;
        while i < events.len() && events[i].time == t {
            kind |= events[i].kind;
            i += 1;
        }
        if kind & 2 != 0 {
            if let Some(ta) = last_first {
                if last_without.is_none_or(|tc| tc <= ta) && t <= limit.after(ta) {
                    return Some((ta, t));
                }
            }
        }
        if kind & 1 != 0 {
            last_first = Some(t);
        }
        if kind & 4 != 0 {
            last_without = Some(t);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit as ArrowUnit};
    use std::sync::Arc;

    /// Events as (link, time in minutes, kind) with kind made of the letters `a`, `b`, `c`.
    fn events(rows: &[(i64, i64, &str)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("user", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(ArrowUnit::Microsecond, Some(UTC.into())), false),
            Field::new(FIRST, DataType::Boolean, false),
            Field::new(THEN, DataType::Boolean, false),
            Field::new(WITHOUT, DataType::Boolean, false),
        ]);
        let flag = |c: char| Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.2.contains(c))))) as ArrayRef;
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1 * 60_000_000))
                        .with_timezone(UTC),
                ),
                flag('a'),
                flag('b'),
                flag('c'),
            ],
        )
        .unwrap()
    }

    fn matched(rows: &[(i64, i64, &str)], within_minutes: Option<i64>) -> Vec<i64> {
        let w = within_minutes.map(|m| Window { amount: m, unit: TimeUnit::Minutes, tz: chrono_tz::UTC });
        let (links, _) = {
            let b = events(rows);
            matching_links(
                &b.schema(),
                &[b.slice(0, b.num_rows() / 2), b.slice(b.num_rows() / 2, b.num_rows() - b.num_rows() / 2)],
                w.as_ref(),
                2,
            )
        }
        .unwrap();
        let mut v = links.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
        v.sort();
        v
    }

    #[test]
    fn strict_order_window_and_exclusion() {
        // 1: a then b. 2: b before a only. 3: a and b at the same instant. 4: a, c, b (excluded).
        // 5: a, c, a, b (the later a has no c after it). 6: a then b too late. 7: c at the same instant as a.
        let rows = [
            (1, 0, "a"),
            (1, 5, "b"),
            (2, 0, "b"),
            (2, 5, "a"),
            (3, 7, "a"),
            (3, 7, "b"),
            (4, 0, "a"),
            (4, 1, "c"),
            (4, 2, "b"),
            (5, 0, "a"),
            (5, 1, "c"),
            (5, 2, "a"),
            (5, 3, "b"),
            (6, 0, "a"),
            (6, 11, "b"),
            (7, 0, "ac"),
            (7, 4, "b"),
        ];
        assert_eq!(matched(&rows, Some(10)), vec![1, 5, 7]);
        assert_eq!(matched(&rows, None), vec![1, 5, 6, 7]);
        // Exactly at the limit is inside.
        assert_eq!(matched(&[(1, 0, "a"), (1, 10, "b")], Some(10)), vec![1]);
        // An event that is both a first and a then step pairs with an earlier one, not with itself.
        assert_eq!(matched(&[(1, 0, "ab")], None), Vec::<i64>::new());
        assert_eq!(matched(&[(1, 0, "ab"), (1, 1, "ab")], None), vec![1]);
    }

    #[test]
    fn witness_is_the_earliest_match_and_the_latest_first_before_it() {
        let rows = [(1, 0, "a"), (1, 3, "a"), (1, 4, "b"), (1, 9, "b")];
        let (_, w) = {
            let b = events(&rows);
            matching_links(&b.schema(), &[b], None, 3)
        }
        .unwrap();
        assert_eq!(w, vec![(3 * 60_000_000, 4 * 60_000_000)]);
    }

    /// The naive definition: some first event, then a then event strictly later and at most `within` after, with
    /// no without event strictly between.
    fn naive(rows: &[(i64, i64, &str)], within: Option<i64>) -> Vec<i64> {
        let mut out: Vec<i64> = rows
            .iter()
            .filter(|a| a.2.contains('a'))
            .filter(|a| {
                rows.iter().any(|b| {
                    b.0 == a.0
                        && b.2.contains('b')
                        && b.1 > a.1
                        && within.is_none_or(|w| b.1 <= a.1 + w)
                        && !rows.iter().any(|c| c.0 == a.0 && c.2.contains('c') && c.1 > a.1 && c.1 < b.1)
                })
            })
            .map(|a| a.0)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn many_entities_over_buckets_and_threads_agree_with_the_naive_definition() {
        // A small linear congruential generator: deterministic, no extra dependency.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let kinds = ["a", "b", "c", "ab", "x"];
        let rows: Vec<(i64, i64, &str)> =
            (0..40_000).map(|_| (next(3_000) as i64 - 1_500, next(200) as i64, kinds[next(5) as usize])).collect();
        assert!(rows.len() / 4096 >= 8, "enough candidates for several buckets");
        let b = events(&rows);
        for within in [None, Some(3)] {
            let want = naive(&rows, within);
            assert!(!want.is_empty() && want.len() < 3_000, "a discriminating case: {}", want.len());
            for threads in [1, 2, 3, 8] {
                let w = within.map(|m| Window { amount: m, unit: TimeUnit::Minutes, tz: chrono_tz::UTC });
                // In uneven batches, as a query returns them.
                let chunks: Vec<RecordBatch> =
                    (0..b.num_rows()).step_by(7_001).map(|o| b.slice(o, 7_001.min(b.num_rows() - o))).collect();
                let (links, witnesses) = matching_links(&b.schema(), &chunks, w.as_ref(), threads).unwrap();
                let mut got = links.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec();
                assert_eq!(got.len(), witnesses.len());
                got.sort();
                assert_eq!(got, want, "threads {threads}, within {within:?}");
            }
        }
    }

    #[test]
    fn string_links_are_grouped_by_value() {
        let rows = [(1, 0, "a"), (2, 1, "b"), (1, 2, "b")];
        let b = events(&rows);
        let names = arrow::array::StringArray::from(vec!["x", "y", "x"]);
        let mut cols = b.columns().to_vec();
        cols[0] = Arc::new(names);
        let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[0] = Field::new("user", DataType::Utf8, false);
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let (links, _) = matching_links(&b.schema(), &[b.slice(0, 2), b.slice(2, 1)], None, 2).unwrap();
        assert_eq!(links.as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("x")]);
    }

    #[test]
    fn no_candidates_give_no_links_of_the_link_type() {
        let b = events(&[]);
        let (links, w) = matching_links(&b.schema(), &[], None, 2).unwrap();
        assert_eq!((links.len(), links.data_type(), w.len()), (0, &DataType::Int64, 0));
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let b = events(&[(1, 0, "a")]).project(&[0, 1, 2]).unwrap();
        let e = matching_links(&b.schema(), std::slice::from_ref(&b), None, 1).unwrap_err();
        assert!(e.to_string().contains("expected link, time, first, then, without"), "{e}");
    }
}
