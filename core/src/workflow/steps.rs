//! Step logic that needs no workspace: the step graph (order, jumps, validation), local times of day in a time
//! zone across DST changes, and the deterministic random split.
//!
//! Steps run in list order; a `branch` or `split` step jumps to a named step, from which the list order goes on;
//! `exit` (or the end of the list) ends the workflow for the entity. Every step an entity reaches is one ledger
//! row whose idempotency key is (workflow, trigger version, step, entity). Jumps may loop back, but every cycle
//! must go through a `wait` step (a loop without one would send as fast as the dispatcher runs), and one trigger
//! makes at most [`MAX_LOOP_PASSES`](crate::limits::MAX_LOOP_PASSES) passes: a jump to a step at or before the
//! current one in list order starts a new pass, whose rows carry the trigger version `<trigger>#<pass>`
//! ([`with_pass`]) so their idempotency keys differ from the previous pass's.
//!
//! ```
//! use chrono::{NaiveTime, TimeZone, Utc};
//! use segkit::workflow::steps::next_local_time;
//! let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
//! // 02:30 does not exist in Berlin on 2026-03-29 (02:00 → 03:00): the next valid instant is 03:00 CEST.
//! let now = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
//! let t = next_local_time(now, NaiveTime::from_hms_opt(2, 30, 0).unwrap(), tz);
//! assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
//! ```

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::limits::MAX_SPLIT_BRANCHES;
use crate::spec::workflow::{SplitBranchSpec, StepSpec, WorkflowSpec};

/// Parses a local time of day `HH:MM` (00:00 to 23:59); `path` names the field in the error.
///
/// ```
/// use segkit::workflow::steps::parse_time_of_day;
/// assert_eq!(parse_time_of_day("09:05", "p").unwrap().to_string(), "09:05:00");
/// let e = parse_time_of_day("25:00", "workflow w.steps[1].until").unwrap_err();
/// assert!(e.to_string().contains("workflow w.steps[1].until"), "{e}");
/// ```
pub fn parse_time_of_day(text: &str, path: &str) -> Result<NaiveTime> {
    let bad = || Error::definition(path, format!("{text:?} is not a time of day; use HH:MM from 00:00 to 23:59"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).filter(|_| h < 24 && m < 60).ok_or_else(bad)
}

/// The UTC instant of local wall time `local` in `tz`: an ambiguous time (a DST fall-back repeats an hour)
/// takes its first occurrence; a time that does not exist (skipped by a spring-forward) moves to the next valid
/// instant, the moment the clocks jump.
pub fn resolve_local(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let mut t = local;
    // Gaps are whole minutes and at most a day long (Samoa skipped 2011-12-30); bounded either way.
    for _ in 0..=(26 * 60) {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return x.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => t += Duration::minutes(1),
        }
    }
    // Unreachable for real zones; fall back to reading the wall time as UTC.
    Utc.from_utc_datetime(&local)
}

/// The first instant at or after `now` whose local time of day in `tz` is `at` (see [`resolve_local`] for DST).
pub fn next_local_time(now: DateTime<Utc>, at: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let mut day = today;
    for _ in 0..3 {
        let t = resolve_local(day.and_time(at), tz);
        if t >= now {
            return t;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    now
}

/// The time zone of an entity: the IANA name in attribute `attribute` of `attributes`, or `default` when no
/// attribute is named, the value is missing, or it is not a known zone. The second value says why the default
/// was taken when an attribute was named (for the ledger row's `detail`; the value itself is not repeated).
///
/// `default` is the step's or policy's fixed `timezone`, else the workspace zone ([`fallback_zone`]).
pub fn zone_for(
    attributes: Option<&serde_json::Map<String, serde_json::Value>>,
    attribute: Option<&str>,
    default: Tz,
) -> (Tz, Option<String>) {
    let Some(attr) = attribute else { return (default, None) };
    match attributes.and_then(|a| a.get(attr)) {
        Some(serde_json::Value::String(s)) => match s.parse::<Tz>() {
            Ok(tz) => (tz, None),
            Err(_) => (default, Some(format!("`{attr}` is not an IANA time zone; used the fallback zone"))),
        },
        Some(serde_json::Value::Null) | None => (default, Some(format!("`{attr}` is empty; used the fallback zone"))),
        Some(_) => (default, Some(format!("`{attr}` is not text; used the fallback zone"))),
    }
}

/// Parses an IANA time zone name of a spec field at `path`.
pub fn parse_zone(name: &str, path: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        let hint = crate::error::hint(name, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()));
        Error::definition(path, format!("unknown time zone {name:?}{hint}; use an IANA name such as Europe/Berlin"))
    })
}

/// The zone used without a valid attribute value: the fixed `timezone` if it parses, else `workspace`.
pub fn fallback_zone(timezone: Option<&str>, workspace: Tz) -> Tz {
    timezone.and_then(|z| z.parse().ok()).unwrap_or(workspace)
}

/// The bucket (0 to 99) of `entity_key` in split step `step` of `workflow`: the first bytes of SHA-256 over the
/// three, so re-runs and replays of one (workflow, entity) go the same way and two splits of one workflow do not
/// correlate.
pub fn split_bucket(workflow: &str, step: &str, entity_key: &str) -> u32 {
    let mut h = Sha256::new();
    for part in [workflow, step, entity_key] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let b = h.finalize();
    (u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) % 100) as u32
}

/// The branch a bucket falls in: the first whose cumulative weight exceeds it (weights sum to 100).
pub fn split_choice(branches: &[SplitBranchSpec], bucket: u32) -> usize {
    let mut acc = 0;
    for (i, b) in branches.iter().enumerate() {
        acc += b.weight;
        if bucket < acc {
            return i;
        }
    }
    branches.len().saturating_sub(1)
}

/// The due time (ms since the epoch) of a row for `step` created at `now`: a wait of `seconds` is due when it is
/// over; every other step (also a wait `until`, which resolves its instant when it is first claimed) is due now.
pub fn due_at(step: &StepSpec, now: i64) -> i64 {
    match step {
        StepSpec::Wait { seconds: Some(s), .. } => now.saturating_add(((*s).min(i64::MAX as u64 / 1000) as i64) * 1000),
        _ => now,
    }
}

/// The trigger version of a row in pass `pass` of a loop: `trigger` itself for the first pass, `trigger#pass`
/// after.
///
/// ```
/// use segkit::workflow::steps::{pass_of, with_pass};
/// assert_eq!(with_pass("manual:3", 1), "manual:3");
/// assert_eq!(with_pass("manual:3", 2), "manual:3#2");
/// assert_eq!(pass_of("manual:3#2"), ("manual:3", 2));
/// assert_eq!(pass_of("run:cn:1"), ("run:cn:1", 1));
/// ```
pub fn with_pass(trigger: &str, pass: u32) -> String {
    if pass <= 1 {
        trigger.to_string()
    } else {
        format!("{trigger}#{pass}")
    }
}

/// The trigger version without its pass, and the pass (1 without a `#<pass>` suffix).
pub fn pass_of(trigger: &str) -> (&str, u32) {
    match trigger.rsplit_once('#').and_then(|(base, p)| Some((base, p.parse::<u32>().ok()?))) {
        Some((base, p)) if p >= 2 => (base, p),
        _ => (trigger, 1),
    }
}

/// The index of step `name`.
pub fn index_of(spec: &WorkflowSpec, name: &str) -> Option<usize> {
    spec.steps.iter().position(|s| s.name() == name)
}

/// Where the entity goes after step `i` finishes without jumping: the next step in list order (none after the
/// last step or an exit).
pub fn next_in_order(spec: &WorkflowSpec, i: usize) -> Option<usize> {
    match spec.steps.get(i) {
        Some(StepSpec::Exit { .. }) | None => None,
        Some(_) if i + 1 < spec.steps.len() => Some(i + 1),
        Some(_) => None,
    }
}

/// The steps `i` may lead to, with the field that names each (for error paths).
fn successors(spec: &WorkflowSpec, i: usize) -> Vec<(String, &str)> {
    match &spec.steps[i] {
        StepSpec::Branch { then, otherwise, .. } => vec![("then".into(), then), ("else".into(), otherwise)],
        StepSpec::Split { branches, .. } => {
            branches.iter().enumerate().map(|(j, b)| (format!("branches[{j}].step"), b.step.as_str())).collect()
        }
        _ => next_in_order(spec, i).map(|j| vec![("next".to_string(), spec.steps[j].name())]).unwrap_or_default(),
    }
}

/// Checks the step graph of a workflow whose step names are normalized and distinct: split weights, that every
/// jump names a step, and that every cycle goes through a wait step (see the module docs) — so the steps run
/// without waiting in between are a path of at most [`MAX_WORKFLOW_STEPS`](crate::limits::MAX_WORKFLOW_STEPS).
/// `here` builds the error path prefix (`workflow w.` + field).
pub fn validate_graph(spec: &WorkflowSpec, here: &dyn Fn(&str) -> String) -> Result<()> {
    for (i, step) in spec.steps.iter().enumerate() {
        if let StepSpec::Split { branches, .. } = step {
            let path = here(&format!("steps[{i}].branches"));
            if branches.len() < 2 || branches.len() > MAX_SPLIT_BRANCHES {
                return Err(Error::definition(
                    path,
                    format!(
                        "a split has 2 to {MAX_SPLIT_BRANCHES} branches (limit MAX_SPLIT_BRANCHES), not {}",
                        branches.len()
                    ),
                ));
            }
            let mut sum = 0u64;
            for (j, b) in branches.iter().enumerate() {
                if b.weight == 0 || b.weight > 100 {
                    return Err(Error::definition(
                        format!("{path}[{j}].weight"),
                        format!("a weight is a percentage from 1 to 100, not {}", b.weight),
                    ));
                }
                sum += b.weight as u64;
            }
            if sum != 100 {
                return Err(Error::definition(path, format!("the weights sum to {sum}; they must sum to 100")));
            }
        }
        for (field, target) in successors(spec, i) {
            if index_of(spec, target).is_none() {
                let hint = crate::error::hint(target, spec.steps.iter().map(StepSpec::name));
                return Err(Error::definition(
                    here(&format!("steps[{i}].{field}")),
                    format!("no step named `{target}`{hint}"),
                ));
            }
        }
    }
    // Depth-first search with colours over the steps that are not waits (iterative: at most MAX_WORKFLOW_STEPS
    // nodes); a grey successor closes a cycle without a wait.
    let n = spec.steps.len();
    let is_wait = |i: usize| matches!(spec.steps[i], StepSpec::Wait { .. });
    let mut colour = vec![0u8; n]; // 0 white, 1 grey (on the path), 2 black (done)
    for root in 0..n {
        if colour[root] != 0 || is_wait(root) {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = 1;
        while let Some(&mut (node, ref mut k)) = stack.last_mut() {
            let succ = successors(spec, node);
            if let Some((_, target)) = succ.get(*k) {
                *k += 1;
                let t = index_of(spec, target).unwrap_or(node);
                if is_wait(t) {
                    continue;
                }
                match colour[t] {
                    0 => {
                        colour[t] = 1;
                        stack.push((t, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(s, _)| *s == t).unwrap_or(0);
                        let mut names: Vec<&str> = stack[from..].iter().map(|(s, _)| spec.steps[*s].name()).collect();
                        names.push(spec.steps[t].name());
                        return Err(Error::definition(
                            here("steps"),
                            format!(
                                "steps {} form a cycle without a wait step; a loop must wait (it would send \
                                 as fast as the dispatcher runs)",
                                names.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" → ")
                            ),
                        ));
                    }
                    _ => {}
                }
            } else {
                colour[node] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn local_times_across_dst() {
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        // Before spring-forward: CET (+1); after: CEST (+2).
        assert_eq!(next_local_time(utc("2026-03-28T09:00:00Z"), nine, berlin()), utc("2026-03-29T07:00:00Z"));
        assert_eq!(next_local_time(utc("2026-03-28T07:59:00Z"), nine, berlin()), utc("2026-03-28T08:00:00Z"));
        // Exactly now counts.
        assert_eq!(next_local_time(utc("2026-03-28T08:00:00Z"), nine, berlin()), utc("2026-03-28T08:00:00Z"));
        // 02:30 on fall-back day (2026-10-25) happens twice: the first (CEST, 00:30 UTC).
        let t = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(next_local_time(utc("2026-10-24T23:00:00Z"), t, berlin()), utc("2026-10-25T00:30:00Z"));
        assert_eq!(parse_time_of_day("23:59", "p").unwrap(), NaiveTime::from_hms_opt(23, 59, 0).unwrap());
        for bad in ["25:00", "9:00", "09:60", "0900", "09:00:00", "", "+9:00", "ab:cd"] {
            assert!(parse_time_of_day(bad, "p").is_err(), "{bad}");
        }
    }

    #[test]
    fn split_buckets_follow_weights() {
        let branches =
            vec![SplitBranchSpec { weight: 30, step: "a".into() }, SplitBranchSpec { weight: 70, step: "b".into() }];
        assert_eq!(split_choice(&branches, 0), 0);
        assert_eq!(split_choice(&branches, 29), 0);
        assert_eq!(split_choice(&branches, 30), 1);
        assert_eq!(split_choice(&branches, 99), 1);
        let mut counts = [0u32; 2];
        for k in 0..10_000 {
            counts[split_choice(&branches, split_bucket("w", "s", &k.to_string()))] += 1;
        }
        // 3,000 expected; six standard deviations (~46 each) either side.
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
        assert_eq!(split_bucket("w", "s", "1"), split_bucket("w", "s", "1"));
    }

    #[test]
    fn zones_fall_back_to_the_default_with_a_note() {
        let mut m = serde_json::Map::new();
        m.insert("tz".into(), "Asia/Shanghai".into());
        m.insert("bad".into(), "Mars/Olympus".into());
        assert_eq!(zone_for(Some(&m), Some("tz"), Tz::UTC), ("Asia/Shanghai".parse().unwrap(), None));
        let (tz, note) = zone_for(Some(&m), Some("bad"), Tz::UTC);
        assert_eq!(tz, Tz::UTC);
        assert!(note.unwrap().contains("not an IANA time zone"));
        assert_eq!(zone_for(Some(&m), None, berlin()), (berlin(), None));
        assert!(zone_for(Some(&m), Some("missing"), Tz::UTC).1.unwrap().contains("empty"));
    }
}
