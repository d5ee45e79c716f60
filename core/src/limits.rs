//! Bounds on everything a caller sends, and the checks that enforce them.
//!
//! Every rule passes [`check_rule_value`] (or [`parse_rule_text`] for JSON text) before any recursive code sees it,
//! so parse → check → compile → DataFusion planning → explain never recurses deeper than [`MAX_RULE_DEPTH`]. The
//! checks are iterative (an explicit stack), so a 100,000-deep rule is refused, not a stack overflow. Each error
//! message names its limit; `docs/limits.md` lists them all.

use serde_json::Value;

use crate::error::{Error, Result};

/// Deepest nesting of a rule's JSON, counted in objects and arrays on the way down (`{"not": {"attribute": …}}` is
/// 2 deep; a react-querybuilder group costs 2: its object and its `rules` array). Rule builders produce well under
/// 20. Measured in a debug build on 2 MiB threads (the tokio worker default; `core/tests/limits.rs`, probe with
/// `SEGKIT_PROBE_DEPTH`): parse, check, compile, DataFusion planning and execution and explain all pass at 60;
/// at 70 `explain` (its boxed-future recursion, ~30 KB a level in debug) overflows. 48 keeps a 25 % margin.
pub const MAX_RULE_DEPTH: usize = 48;

/// Most objects (conditions, groups, operations) in one rule.
pub const MAX_RULE_NODES: usize = 100_000;

/// Most attribute conditions [`Workspace::explain`](crate::Workspace::explain) shows (inlined segment references
/// included); a larger rule still counts and evaluates, and `explain` refuses it with this limit named.
pub const MAX_EXPLAIN_CONDITIONS: usize = 10_000;

/// Most array elements in one rule, all lists together (an `in` list of 1,000,000 values is fine).
pub const MAX_RULE_LIST_VALUES: usize = 10_000_000;

/// Longest string (a value, an attribute name or an object key) in a rule, in bytes.
pub const MAX_RULE_STRING_BYTES: usize = 64 * 1024;

/// Longest rule as JSON text, in bytes.
pub const MAX_RULE_TEXT_BYTES: usize = 256 * 1024 * 1024;

/// Longest pattern of the `matches` operator, in bytes.
pub const MAX_REGEX_PATTERN_BYTES: usize = 1024;

/// Largest compiled program of a `matches` pattern (`regex::RegexBuilder::size_limit` and `dfa_size_limit`).
pub const MAX_REGEX_PROGRAM_BYTES: usize = 1024 * 1024;

/// Most keys one static-list upload may hold ([`Workspace::define_static_segment`](crate::Workspace::define_static_segment),
/// `add_static_keys`, `remove_static_keys`): the keys are sorted in memory (8 bytes each for integer keys).
pub const MAX_STATIC_LIST_KEYS: usize = 50_000_000;

/// Longest text of one message-template part, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Most parts one message template may have.
pub const MAX_TEMPLATE_PARTS: usize = 16;

/// Fuel (roughly: template instructions) one render of one part may spend; a loop that runs longer fails.
pub const MAX_TEMPLATE_FUEL: u64 = 100_000;

/// Longest rendered output of one template part, in bytes.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// Most steps one workflow may have.
pub const MAX_WORKFLOW_STEPS: usize = 100;

/// Most keys one manual `trigger` may name.
pub const MAX_TRIGGER_KEYS: usize = 1_000_000;

/// Most branches of one workflow `split` step.
pub const MAX_SPLIT_BRANCHES: usize = 10;

/// Most frequency caps one workflow may declare.
pub const MAX_FREQUENCY_CAPS: usize = 16;

/// Longest frequency-cap window, in seconds (366 days).
pub const MAX_CAP_WINDOW_SECONDS: u64 = 366 * 86_400;

/// Highest `rate_per_second` a workflow step may ask for.
pub const MAX_RATE_PER_SECOND: f64 = 1_000_000.0;

/// Most passes one trigger makes through a workflow loop (a jump back through a wait step); the pass past it is
/// not started (the row that would jump back records why).
pub const MAX_LOOP_PASSES: u32 = 1000;

/// Most rows one `dry_run_workflow` returns.
pub const MAX_DRY_RUN_ROWS: usize = 10_000;

/// Largest [`WorkspaceOptions::delivery_window`](crate::WorkspaceOptions::delivery_window): deliveries a dispatch
/// processes at once.
pub const MAX_DELIVERY_WINDOW: usize = 65_536;

/// Most delivery outcomes one group commit of the dispatcher writes in one catalog transaction.
pub const MAX_GROUP_COMMIT_ROWS: usize = 512;

/// Most bytes of the entity attributes a trigger captures for one ledger row (as JSON text); an entity whose
/// attributes are longer is read at send time instead.
pub const MAX_CAPTURED_CONTEXT_BYTES: usize = 16 * 1024;

/// Most entered entities whose attributes one segment run captures for its workflows' first action steps (the
/// trigger holds them until its transaction commits); a run with more entered reads them at send time instead.
pub const MAX_CAPTURED_ROWS: usize = 1_000_000;

/// Most entity keys one attribute lookup of a dispatch pass filters on (a pass that claimed more entities of one
/// type makes one query per this many).
pub const MAX_LOOKUP_KEYS: usize = 4096;

/// Most action configs a workspace keeps built (with their HTTP clients and connection pools) for the
/// dispatcher; past it the cache starts over.
pub const MAX_CACHED_ACTIONS: usize = 256;

/// Most template parts a custom action (Python, Node) may declare it reads.
pub const MAX_ACTION_PARTS: usize = 16;

/// Longest name of a part a custom action declares, in bytes.
pub const MAX_ACTION_PART_NAME_BYTES: usize = 64;

/// Longest reason or receipt a custom action's outcome may carry, in bytes (longer text is cut).
pub const MAX_OUTCOME_TEXT_BYTES: usize = 4096;
/// Longest cron pattern of a schedule, in bytes.
pub const MAX_CRON_BYTES: usize = 256;

/// Most schedules one workspace may hold ([`Workspace::schedule`](crate::Workspace::schedule)).
pub const MAX_SCHEDULES: usize = 10_000;

/// Largest project file ([`crate::project`]), in bytes.
pub const MAX_PROJECT_FILE_BYTES: usize = 8 * 1024 * 1024;

/// Most files in a project directory.
pub const MAX_PROJECT_FILES: usize = 1000;

/// Most objects (entities, sources, segments, templates, workflows, schedules together) in one project.
pub const MAX_PROJECT_OBJECTS: usize = 10_000;

/// Most missed due times of one schedule that [`Workspace::run_due`](crate::Workspace::run_due) steps over to find
/// the latest one (beyond it, the cron crate's backward search finds it).
pub const MAX_SCHEDULE_CATCH_UP: usize = 1000;

/// Most rows one scan of a `segkit.*` system table reads (see [`crate::monitoring`]).
pub const MAX_SYSTEM_TABLE_ROWS: usize = 10_000_000;

/// Largest spreadsheet file (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) a file source reads: its bytes are held in
/// memory while it is read.
pub const MAX_SPREADSHEET_BYTES: u64 = 512 << 20;

/// Most cells the spreadsheet reader may hold: for `.xlsx` / `.xlsm` / `.xlsb`, the used area (rows × columns) of
/// the sheet read, checked while its cells stream in; for `.xls` / `.ods`, which calamine parses whole, the used
/// areas of all sheets together (and, for `.xls`, the areas their `DIMENSIONS` records declare), checked by a
/// walk over the file's records before it is parsed. A cell takes 32 bytes, so this bounds the grid to ~1 GiB.
pub const MAX_SPREADSHEET_CELLS: usize = 32 << 20;

/// Most sheets a `.xls` / `.ods` workbook may have.
pub const MAX_SPREADSHEET_SHEETS: usize = 4096;

/// Largest uncompressed `content.xml` of an `.ods` workbook, in bytes (bounds the time of the pre-parse walk).
pub const MAX_SPREADSHEET_XML_BYTES: u64 = 4 << 30;

/// The error for a rule nested deeper than [`MAX_RULE_DEPTH`].
pub fn depth_error() -> Error {
    Error::rule(
        "<root>",
        format!("the rule is nested more than {MAX_RULE_DEPTH} levels deep (limit MAX_RULE_DEPTH = {MAX_RULE_DEPTH})"),
    )
}

/// The error for data that is not a rule — ingested rows, a field of a spec, a connector config — nested deeper
/// than [`MAX_RULE_DEPTH`] where a binding converts it; `what` names it (`"ingested rows"`).
pub fn value_depth_error(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "nesting in the {what} goes deeper than {MAX_RULE_DEPTH} levels (limit MAX_RULE_DEPTH = {MAX_RULE_DEPTH})"
    ))
}

/// Checks, without recursing, that data which is not a rule (ingested rows…) nests at most [`MAX_RULE_DEPTH`]
/// levels of objects and arrays; the error is [`value_depth_error`].
pub fn check_value_depth(v: &Value, what: &str) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        if depth > MAX_RULE_DEPTH {
            return Err(value_depth_error(what));
        }
        stack.extend(children.filter(|c| c.is_array() || c.is_object()).map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// The message for a spec (entity, ingest options…) nested deeper than serde_json's recursion limit (128), which
/// is far beyond [`MAX_RULE_DEPTH`] and what any valid spec needs.
pub fn nesting_message(what: &str) -> String {
    format!("the {what} is nested too deeply (more than 128 levels of objects and arrays; a rule inside may nest at most MAX_RULE_DEPTH = {MAX_RULE_DEPTH})")
}

/// Checks a rule's JSON against the depth, node, list and string limits, without recursing.
pub fn check_rule_value(v: &Value) -> Result<()> {
    let mut nodes = 0usize;
    let mut values = 0usize;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::String(s) => check_string(s)?,
            Value::Array(a) => {
                if depth > MAX_RULE_DEPTH {
                    return Err(depth_error());
                }
                values += a.len();
                if values > MAX_RULE_LIST_VALUES {
                    return Err(Error::rule(
                        "<root>",
                        format!(
                            "the rule has more than {MAX_RULE_LIST_VALUES} list values \
                             (limit MAX_RULE_LIST_VALUES = {MAX_RULE_LIST_VALUES})"
                        ),
                    ));
                }
                stack.extend(a.iter().map(|x| (x, depth + 1)));
            }
            Value::Object(m) => {
                if depth > MAX_RULE_DEPTH {
                    return Err(depth_error());
                }
                nodes += 1;
                if nodes > MAX_RULE_NODES {
                    return Err(Error::rule(
                        "<root>",
                        format!(
                            "the rule has more than {MAX_RULE_NODES} conditions and groups \
                             (limit MAX_RULE_NODES = {MAX_RULE_NODES})"
                        ),
                    ));
                }
                for (k, x) in m {
                    check_string(k)?;
                    stack.push((x, depth + 1));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    Ok(())
}

fn check_string(s: &str) -> Result<()> {
    if s.len() > MAX_RULE_STRING_BYTES {
        let head: String = s.chars().take(20).collect();
        return Err(Error::rule(
            "<root>",
            format!(
                "a string in the rule (`{head}…`) is {} bytes, longer than {MAX_RULE_STRING_BYTES} \
                 (limit MAX_RULE_STRING_BYTES = {MAX_RULE_STRING_BYTES})",
                s.len()
            ),
        ));
    }
    Ok(())
}

/// Parses a rule's JSON text within the limits: its length ([`MAX_RULE_TEXT_BYTES`]), serde_json's own nesting
/// limit (reported as [`MAX_RULE_DEPTH`]) and then [`check_rule_value`].
pub fn parse_rule_text(text: &str) -> Result<Value> {
    if text.len() > MAX_RULE_TEXT_BYTES {
        return Err(Error::rule(
            "<root>",
            format!(
                "the rule text is {} bytes, longer than {MAX_RULE_TEXT_BYTES} (limit MAX_RULE_TEXT_BYTES = \
                 {MAX_RULE_TEXT_BYTES})",
                text.len()
            ),
        ));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            depth_error()
        } else {
            Error::rule("<root>", format!("not valid JSON: {e}"))
        }
    })?;
    check_rule_value(&v)?;
    Ok(v)
}

/// Most active (not revoked) API keys in one workspace.
pub const MAX_API_KEYS: usize = 10_000;

/// Longest name of an API key's holder, in bytes.
pub const MAX_PRINCIPAL_NAME_BYTES: usize = 256;

/// Longest `detail` of an audit log row, in bytes (longer ones are cut).
pub const MAX_AUDIT_DETAIL_BYTES: usize = 4096;

/// Largest request body the REST API reads, in bytes (a segment spec with a large `in` list fits; bulk data
/// goes through sources).
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Most rows one page of `GET /segments/{name}/members` returns (`limit` above it is refused).
pub const MAX_PAGE_ROWS: usize = 100_000;

/// Most bytes of encoded members pages the REST API server keeps in memory (a run's membership file never
/// changes, so an encoded page of it stays valid; least recently used pages are dropped beyond this).
pub const MEMBER_PAGE_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The largest encoded members page the server keeps (larger pages are encoded for every request).
pub const MEMBER_PAGE_CACHE_MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Most items one page of a REST API list returns (`limit` above it is refused).
pub const MAX_LIST_PAGE_ITEMS: usize = 1000;

/// The furthest row (`offset + limit`) one page of a log kept in Parquet — a segment's changes
/// ([`Workspace::changes_page`](crate::Workspace::changes_page)), an entity's quarantined rows
/// ([`Workspace::quarantine_page`](crate::Workspace::quarantine_page)) — may reach: a sorted page holds at most
/// this many rows while it is read, however long the log.
pub const MAX_LOG_PAGE_END: usize = MAX_LISTED_ITEMS + MAX_LIST_PAGE_ITEMS;

/// Most syncs and workflow runs a REST API list reads to filter, sort and page them in memory, and the largest
/// `offset` a list takes; lists over the delivery ledger and the audit log page in the catalog instead.
pub const MAX_LISTED_ITEMS: usize = 100_000;

/// Most rows `GET /segments/{name}/preview` returns.
pub const MAX_PREVIEW_ROWS: usize = 1000;

/// Most `Idempotency-Key` responses the REST API keeps in the catalog at once (the oldest are forgotten first).
pub const MAX_IDEMPOTENCY_ENTRIES: usize = 10_000;

/// Longest `Idempotency-Key` header, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Largest file one REST API upload (`POST /api/v1/entities/{name}/upload`) may send, in bytes, by default
/// (`segkit serve --upload-limit` sets another, up to [`MAX_UPLOAD_BYTES_CEILING`]). The body streams to a
/// temporary file, so this bounds disk, not memory (except with an `Idempotency-Key`, whose replay keeps it).
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024 * 1024;

/// The highest upload limit a server may be configured with, in bytes.
pub const MAX_UPLOAD_BYTES_CEILING: usize = 64 * 1024 * 1024 * 1024;

/// Most events one `POST /api/v1/events` request (or one [`crate::appender::Appender::append`]) carries; more
/// is refused (413), send several batches.
pub const MAX_EVENT_BATCH: usize = 10_000;

/// Most rows the [`crate::appender::Appender`] commits in one group (one Parquet file, one catalog commit).
pub const MAX_APPEND_GROUP_ROWS: usize = 256 * 1024;

/// Appends waiting for the appender's writer at most; a caller beyond it waits for a free place (back
/// pressure), so queued rows stay bounded at `MAX_APPEND_QUEUE` × `MAX_EVENT_BATCH`.
pub const MAX_APPEND_QUEUE: usize = 256;

/// An event file with fewer rows than this counts as small for [`crate::Workspace::compact`].
pub const COMPACT_SMALL_FILE_ROWS: u64 = 128 * 1024;

/// Consecutive small event files from which [`crate::Workspace::compact`] merges them (fewer are left alone).
pub const COMPACT_MIN_FILES: usize = 8;

/// Most rows one compaction reads into memory and rewrites as one file.
pub const COMPACT_MAX_ROWS: u64 = 512 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested_not(depth: usize) -> Value {
        let mut v = json!({"attribute": "age", "op": "gt", "value": 30});
        for _ in 1..depth {
            v = json!({ "not": v });
        }
        v
    }

    #[test]
    fn depth_at_limit_passes_and_beyond_fails() {
        check_rule_value(&nested_not(MAX_RULE_DEPTH)).unwrap();
        let e = check_rule_value(&nested_not(MAX_RULE_DEPTH + 1)).unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{e}");
    }

    #[test]
    fn data_depth_is_bounded_with_its_own_wording() {
        let mut v = json!(1);
        for _ in 0..MAX_RULE_DEPTH {
            v = json!([v]);
        }
        check_value_depth(&v, "ingested rows").unwrap();
        let e = check_value_depth(&json!({ "a": v }), "ingested rows").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            format!(
                "invalid argument: nesting in the ingested rows goes deeper than {MAX_RULE_DEPTH} levels \
                 (limit MAX_RULE_DEPTH = {MAX_RULE_DEPTH})"
            )
        );
    }

    #[test]
    fn text_beyond_serde_limit_names_our_limit() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_rule_text(&text).unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{e}");
        let e = parse_rule_text("{\"and\": [").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn nodes_lists_and_strings_are_bounded() {
        let many = Value::Array((0..=MAX_RULE_NODES).map(|_| json!({})).collect());
        let e = check_rule_value(&json!({ "and": many })).unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_NODES"), "{e}");
        let e =
            check_rule_value(&json!({"attribute": "a", "op": "eq", "value": "x".repeat(MAX_RULE_STRING_BYTES + 1)}))
                .unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_STRING_BYTES"), "{e}");
        check_rule_value(&json!({"attribute": "a", "op": "eq", "value": "x".repeat(MAX_RULE_STRING_BYTES)})).unwrap();
        let list = Value::Array(vec![Value::Null; MAX_RULE_LIST_VALUES + 1]);
        let e = check_rule_value(&json!({"attribute": "a", "op": "in", "value": list})).unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_LIST_VALUES"), "{e}");
    }
}
