//! The dispatcher — one pass over the due ledger rows, each step kind and each policy (see
//! [`crate::workflow::steps`] and [`crate::workflow::policy`]) — and dry runs.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use datafusion::common::TableReference;
use datafusion::logical_expr::Expr;
use datafusion::prelude::ident;
use futures::StreamExt;

use crate::action::{Action, Delivery, Outcome};
use crate::catalog::{CapWindow, Finish};
use crate::error::{Error, Result};
use crate::limits::{MAX_DRY_RUN_ROWS, MAX_LOOP_PASSES};
use crate::model::normalize_name;
use crate::rules::{check_with, column, literal, scalar, Dialect, Rule};
use crate::workflow::dispatch::{backoff, DispatchReport, DEFAULT_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS};
use crate::workflow::ledger::{DryRunRow, DryRunStatus, LedgerRow, NewDelivery, Reentry, Status};
use crate::workflow::policy::{quiet_until, QuietHours};
use crate::workflow::steps::{
    due_at, fallback_zone, index_of, next_in_order, next_local_time, parse_time_of_day, pass_of, split_bucket,
    split_choice, with_pass, zone_for,
};
use crate::workflow::template::render_parts;
use crate::workflow::{FrequencyCapSpec, StepSpec, TriggerSpec, WorkflowSpec};

use super::schedules::record_delivery;
use super::workflows::{keys_of, ms, reentry};
use super::Workspace;
use crate::sources::CancellationToken;

type Attributes = serde_json::Map<String, serde_json::Value>;

/// The detail suffix of a jump that would start a loop pass past the limit.
const LOOP_STOP: &str = "; not taken: this trigger made MAX_LOOP_PASSES passes through the loop";

/// What processing one claimed row did.
enum Processed {
    /// Finished with this status.
    Finished(Status),
    /// Failed, scheduled again.
    Retried,
    /// Held by quiet hours.
    Held,
    /// Over a rate limit, pending again.
    RateLimited,
    /// A wait `until` resolved its instant.
    Waiting,
}

impl Processed {
    /// The `status` label of [`crate::monitoring::DELIVERIES`].
    fn label(&self) -> &'static str {
        match self {
            Processed::Finished(s) => s.as_str(),
            Processed::Retried => "retried",
            Processed::Held => "held",
            Processed::RateLimited => "rate_limited",
            Processed::Waiting => "waiting",
        }
    }
}

/// The channel of an action step: its `channel`, else the registered action's name, else the config's `type`.
pub(super) fn channel_of(action: &serde_json::Value, channel: &Option<String>) -> String {
    match channel {
        Some(c) => normalize_name(c),
        None => match action {
            serde_json::Value::String(s) => normalize_name(s),
            v => v.get("type").and_then(|t| t.as_str()).unwrap_or("action").to_string(),
        },
    }
}

fn local_text(t: DateTime<Utc>, tz: Tz) -> String {
    format!("{} ({})", t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"), tz.name())
}

fn utc_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The caps of `caps` on `channel`, with their windows at `now`.
fn cap_windows<'a>(caps: &'a [FrequencyCapSpec], channel: &str, now: i64) -> Vec<(&'a FrequencyCapSpec, CapWindow)> {
    caps.iter()
        .filter(|c| c.channel == channel)
        .map(|c| {
            let since = now.saturating_sub((c.seconds.min(i64::MAX as u64 / 1000) * 1000) as i64);
            (c, CapWindow { max: c.max, since })
        })
        .collect()
}

fn cap_text(c: &FrequencyCapSpec) -> String {
    format!("frequency cap reached: {} on `{}` per {} s", c.max, c.channel, c.seconds)
}

/// The token buckets a delivery of step `i` takes from: the step's `rate_per_second`, and the action's own rate
/// (per registered action name, or per step for an action config).
fn rate_limits(spec: &WorkflowSpec, i: usize, action: &dyn Action) -> Vec<(String, f64)> {
    let mut out = vec![];
    let StepSpec::Action { name, action: a, rate_per_second, .. } = &spec.steps[i] else { return out };
    if let Some(r) = rate_per_second {
        out.push((format!("step:{}.{name}", spec.name), *r));
    }
    if let Some(r) = action.max_rate_per_second().filter(|r| r.is_finite() && *r > 0.0) {
        let key = match a {
            serde_json::Value::String(s) => format!("action:{}", normalize_name(s)),
            _ => format!("action:{}.{name}", spec.name),
        };
        out.push((key, r));
    }
    out
}

impl Workspace {
    /// One dispatch pass at the workspace clock's now: claims up to `limit` due rows (with a lease of
    /// [`Workspace::lease`]), executes them at most `concurrency` at a time, records each outcome and writes the
    /// next step's row in the same transaction. Quiet hours, rate limits and waits `until` put rows back to
    /// pending with a later due time (not an attempt); frequency caps skip them (`capped`).
    pub async fn dispatch_due(&self, limit: usize, concurrency: usize) -> Result<DispatchReport> {
        Ok(self.dispatch_pass(ms(self.now()), limit, concurrency, None).await?.0)
    }

    /// One dispatch pass at `now` (ms) (see [`dispatch_due`](Self::dispatch_due); with `shutdown`, see
    /// [`run_claimed`](Self::run_claimed)). Returns the report and how many claims were released.
    pub(super) async fn dispatch_pass(
        &self,
        now_ms: i64,
        limit: usize,
        concurrency: usize,
        shutdown: Option<(&CancellationToken, std::time::Duration)>,
    ) -> Result<(DispatchReport, u64)> {
        let now = utc_of(now_ms);
        let rows = self.inner.catalog.claim_deliveries(now_ms, self.inner.lease.as_millis() as i64, limit.max(1))?;
        let mut report = DispatchReport { claimed: rows.len() as u64, ..Default::default() };
        if rows.is_empty() {
            self.record_queue_depth()?;
            return Ok((report, 0));
        }
        // Channels some workflow caps: every delivery on them reserves its send, so the caps see it in flight.
        let capped: HashSet<String> = self
            .workflows()?
            .into_iter()
            .flat_map(|w| w.policies.frequency_caps.into_iter().map(|c| c.channel))
            .collect();
        let capped = &capped;
        let channels = self.step_channels()?;
        let (results, released) = self
            .run_claimed(rows, concurrency, shutdown, |row| {
                let channel = channels.get(&(row.workflow.clone(), row.step.clone())).cloned().unwrap_or_default();
                let workflow = row.workflow.clone();
                let started = std::time::Instant::now();
                let work = self.process(row, now, capped);
                async move {
                    let r = work.await;
                    if let Ok(p) = &r {
                        record_delivery(p.label(), &workflow, &channel, started.elapsed());
                    }
                    r
                }
            })
            .await?;
        self.record_queue_depth()?;
        for r in results {
            match r? {
                Processed::Finished(Status::Delivered) => report.delivered += 1,
                Processed::Finished(Status::Done) => report.done += 1,
                Processed::Finished(Status::Dead) => report.dead += 1,
                Processed::Finished(Status::Suppressed) => report.suppressed += 1,
                Processed::Finished(Status::Capped) => report.capped += 1,
                Processed::Finished(_) => {}
                Processed::Retried => report.retried += 1,
                Processed::Held => report.held += 1,
                Processed::RateLimited => report.rate_limited += 1,
                Processed::Waiting => report.waiting += 1,
            }
        }
        Ok((report, released))
    }

    async fn process(&self, row: LedgerRow, now_dt: DateTime<Utc>, capped: &HashSet<String>) -> Result<Processed> {
        let now = ms(now_dt);
        let dead = |reason: String| -> Result<Processed> {
            tracing::warn!(reason = %reason, "dead-lettered");
            self.inner.catalog.finish_delivery(row.id, row.attempts, Status::Dead, None, Some(&reason), None, now)?;
            Ok(Processed::Finished(Status::Dead))
        };
        let spec = match self.inner.catalog.workflow(&row.workflow)? {
            Some(j) => serde_json::from_str::<WorkflowSpec>(&j)?,
            None => return dead(format!("workflow `{}` was deleted", row.workflow)),
        };
        let Some(i) = index_of(&spec, &row.step) else {
            return dead(format!("workflow `{}` has no step `{}` any more", row.workflow, row.step));
        };
        // A jump to a step at or before this one starts a new pass of a loop (see `workflow::steps`).
        let (base, pass) = pass_of(&row.trigger);
        let row_for = |j: usize| {
            let pass = if j <= i { pass.saturating_add(1) } else { pass };
            (pass <= MAX_LOOP_PASSES).then(|| NewDelivery {
                workflow: row.workflow.clone(),
                trigger: with_pass(base, pass),
                step: spec.steps[j].name().to_string(),
                entity: row.entity.clone(),
                entity_key: row.entity_key.clone(),
                due_at: due_at(&spec.steps[j], now),
            })
        };
        let seq = next_in_order(&spec, i).and_then(row_for);
        let finish = |f: Finish<'_>, next: Option<&NewDelivery>| -> Result<Processed> {
            self.inner.catalog.finish_delivery_with(row.id, row.attempts, &f, next, now)?;
            Ok(Processed::Finished(f.status))
        };
        let done = Finish::status(Status::Done);
        match &spec.steps[i] {
            StepSpec::Exit { .. } => finish(done, None),
            StepSpec::Wait { until: None, .. } => finish(done, seq.as_ref()),
            StepSpec::Wait { until: Some(_), .. } if row.resolved_at.is_some() => finish(done, seq.as_ref()),
            StepSpec::Wait { until: Some(until), timezone_attribute, timezone, .. } => {
                let at = match parse_time_of_day(until, "until") {
                    Ok(t) => t,
                    Err(e) => return dead(e.to_string()),
                };
                let attrs = match timezone_attribute {
                    Some(_) => self.entity_attributes(&row.entity, &row.entity_key).await?,
                    None => None,
                };
                let fallback = fallback_zone(timezone.as_deref(), self.time_zone());
                let (tz, note) = zone_for(attrs.as_ref(), timezone_attribute.as_deref(), fallback);
                let target = next_local_time(now_dt, at, tz);
                let detail =
                    format!("until {}{}", local_text(target, tz), note.map(|n| format!("; {n}")).unwrap_or_default());
                if ms(target) <= now {
                    return finish(Finish { detail: Some(&detail), ..done }, seq.as_ref());
                }
                self.inner.catalog.hold_delivery(
                    row.id,
                    row.attempts,
                    ms(target),
                    Some(&detail),
                    Some(ms(target)),
                    now,
                )?;
                Ok(Processed::Waiting)
            }
            StepSpec::Branch { rule, then, otherwise, .. } => {
                let m = match self.rule_matches(&row.entity, rule, &row.entity_key).await {
                    Ok(m) => m,
                    Err(e) => return dead(format!("branch rule: {e}")),
                };
                let (field, target) = if m { ("then", then) } else { ("else", otherwise) };
                let Some(j) = index_of(&spec, target) else {
                    return dead(format!("workflow `{}` has no step `{target}` any more", row.workflow));
                };
                let next = row_for(j);
                let detail = format!("{field} → {target}{}", if next.is_none() { LOOP_STOP } else { "" });
                finish(Finish { detail: Some(&detail), ..done }, next.as_ref())
            }
            StepSpec::Split { branches, .. } => {
                let bucket = split_bucket(&row.workflow, &row.step, &row.entity_key);
                let Some(target) = branches.get(split_choice(branches, bucket)).map(|b| &b.step) else {
                    return dead(format!("split step `{}` has no branches", row.step));
                };
                let Some(j) = index_of(&spec, target) else {
                    return dead(format!("workflow `{}` has no step `{target}` any more", row.workflow));
                };
                let next = row_for(j);
                let detail =
                    format!("bucket {bucket} of 100 → {target}{}", if next.is_none() { LOOP_STOP } else { "" });
                finish(Finish { detail: Some(&detail), ..done }, next.as_ref())
            }
            StepSpec::Action { .. } => self.run_action(&row, &spec, i, seq.as_ref(), now_dt, capped).await,
        }
    }

    /// Runs action step `i` of `spec` for a claimed row: suppression, quiet hours, frequency caps, rate limits,
    /// rendering, the action, and the outcome; `seq` is the next step's row, `capped` the channels some
    /// workflow caps.
    async fn run_action(
        &self,
        row: &LedgerRow,
        spec: &WorkflowSpec,
        i: usize,
        seq: Option<&NewDelivery>,
        now_dt: DateTime<Utc>,
        capped: &HashSet<String>,
    ) -> Result<Processed> {
        let now = ms(now_dt);
        let StepSpec::Action { action, channel, template, .. } = &spec.steps[i] else {
            return Err(Error::InvalidArgument(format!("step `{}` is not an action step", row.step)));
        };
        let dead = |reason: String| -> Result<Processed> {
            tracing::warn!(reason = %reason, "dead-lettered");
            self.inner.catalog.finish_delivery(row.id, row.attempts, Status::Dead, None, Some(&reason), None, now)?;
            Ok(Processed::Finished(Status::Dead))
        };
        let finish = |f: Finish<'_>, next: Option<&NewDelivery>| -> Result<Processed> {
            self.inner.catalog.finish_delivery_with(row.id, row.attempts, &f, next, now)?;
            Ok(Processed::Finished(f.status))
        };
        let channel = channel_of(action, channel);
        if self.inner.catalog.is_suppressed(&channel, &row.entity_key)? {
            let f = Finish { channel: Some(&channel), ..Finish::status(Status::Suppressed) };
            return finish(f, seq);
        }
        let action_impl = match self.action_for(action, "step.action") {
            Ok(a) => a,
            Err(e) => return dead(e.to_string()),
        };
        let Some(attributes) = self.entity_attributes(&row.entity, &row.entity_key).await? else {
            return dead(format!("`{}` has no entity with this key any more", row.entity));
        };
        if let Some(until) = self.quiet_hours_hold(spec, &attributes, now_dt)? {
            let (t, detail) = until;
            tracing::debug!(until = %t, "held by quiet hours");
            self.inner.catalog.hold_delivery(row.id, row.attempts, ms(t), Some(&detail), None, now)?;
            return Ok(Processed::Held);
        }
        let caps = cap_windows(&spec.policies.frequency_caps, &channel, now);
        if !caps.is_empty() || capped.contains(&channel) {
            let windows: Vec<CapWindow> = caps.iter().map(|(_, w)| *w).collect();
            let hit = self.inner.catalog.reserve_send(
                row.id,
                row.attempts,
                &row.entity,
                &row.entity_key,
                &channel,
                &windows,
                now,
            )?;
            if let Some(k) = hit {
                let detail = cap_text(caps[k].0);
                tracing::debug!(channel = %channel, "capped: {detail}");
                let f = Finish { detail: Some(&detail), channel: Some(&channel), ..Finish::status(Status::Capped) };
                return finish(f, seq);
            }
        }
        if let Err(wait_ms) = self.inner.rate_limits.try_take(&rate_limits(spec, i, action_impl.as_ref()), now) {
            tracing::debug!(wait_ms, "over a rate limit, pending again");
            self.inner.catalog.hold_delivery(row.id, row.attempts, now.saturating_add(wait_ms), None, None, now)?;
            return Ok(Processed::RateLimited);
        }
        let content = match template {
            Some(t) => match self.render_for(spec, t, &row.step, &row.entity_key, &attributes) {
                Ok(c) => c,
                Err(e) => return dead(e.to_string()),
            },
            None => BTreeMap::new(),
        };
        let delivery = Delivery {
            idempotency_key: row.idempotency_key.clone(),
            origin: row.workflow.clone(),
            step: row.step.clone(),
            channel: channel.clone(),
            entity: row.entity.clone(),
            entity_key: row.entity_key.clone(),
            attributes,
            content,
            attempt: row.attempts,
        };
        let outcome = match tokio::time::timeout(self.inner.lease / 2, action_impl.execute(&delivery)).await {
            Ok(o) => o,
            Err(_) => Outcome::Retryable {
                reason: format!("no outcome within {} ms", (self.inner.lease / 2).as_millis()),
                retry_after: None,
            },
        };
        match outcome {
            Outcome::Delivered { receipt } => {
                let f = Finish {
                    receipt: receipt.as_deref(),
                    channel: Some(&channel),
                    sent: true,
                    ..Finish::status(Status::Delivered)
                };
                finish(f, seq)
            }
            Outcome::Permanent { reason } => dead(format!("permanent failure: {reason}")),
            Outcome::Retryable { reason, retry_after } => {
                let max = spec.policies.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
                if row.attempts >= max {
                    return dead(format!("failed {max} attempts; last: {reason}"));
                }
                let base = spec.policies.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS);
                let delay = backoff(base, row.attempts, &row.idempotency_key, retry_after);
                let due = now.saturating_add(delay.as_millis() as i64);
                self.inner.catalog.retry_delivery(row.id, row.attempts, due, &reason, now)?;
                Ok(Processed::Retried)
            }
        }
    }

    /// When the workflow's quiet hours hold a delivery to an entity with `attributes` at `now`: until when, and
    /// the detail for the ledger.
    fn quiet_hours_hold(
        &self,
        spec: &WorkflowSpec,
        attributes: &Attributes,
        now: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, String)>> {
        let Some(q) = &spec.policies.quiet_hours else { return Ok(None) };
        let hours = QuietHours::parse(q, &format!("workflow {}.policies.quiet_hours", spec.name))?;
        let fallback = fallback_zone(q.timezone.as_deref(), self.time_zone());
        let (tz, note) = zone_for(Some(attributes), q.timezone_attribute.as_deref(), fallback);
        Ok(quiet_until(now, hours.start, hours.end, tz).map(|t| {
            let detail = format!(
                "held by quiet hours {}–{} until {}{}",
                q.start,
                q.end,
                local_text(t, tz),
                note.map(|n| format!("; {n}")).unwrap_or_default()
            );
            (t, detail)
        }))
    }

    /// Renders template `template` for a step of `spec` and one entity.
    fn render_for(
        &self,
        spec: &WorkflowSpec,
        template: &str,
        step: &str,
        key: &str,
        attributes: &Attributes,
    ) -> Result<BTreeMap<String, String>> {
        let t = self.template(template)?;
        let segment = match &spec.trigger {
            TriggerSpec::Entered { segment } | TriggerSpec::Exited { segment } | TriggerSpec::Schedule { segment } => {
                segment.clone()
            }
            TriggerSpec::Manual { .. } => String::new(),
        };
        let ctx = serde_json::json!({"entity": attributes, "key": key, "workflow": spec.name, "step": step,
            "segment": segment});
        render_parts(&t.parts, &ctx)
    }

    /// Whether the entity `entity` with key `key` (as text) matches `rule` (a stored, canonical rule) now: the
    /// rule compiled by the rule compiler, filtered to the one key (a typed literal, never SQL text).
    async fn rule_matches(&self, entity: &str, rule: &serde_json::Value, key: &str) -> Result<bool> {
        let e = self.entity(entity)?;
        let key_attr =
            e.key.clone().ok_or_else(|| Error::InvalidArgument(format!("`{entity}` has no key to branch on")))?;
        let parsed = Rule::parse(rule, Dialect::Segkit)?;
        let checked = check_with(&parsed, &e, self, &[])?;
        let key_type = e.attr(&key_attr)?.data_type.clone();
        let value = literal(&serde_json::Value::String(key.to_string()), &key_type, "key")?;
        let df = self
            .filtered(&e, &checked)
            .await?
            .filter(column(&key_attr).eq(Expr::Literal(scalar(&value, &key_type), None)))?
            .limit(0, Some(1))?;
        Ok(df.count().await? > 0)
    }

    /// Who would receive what if workflow `name` were triggered now, without sending anything or writing the
    /// ledger: for each entity (the given `keys`; by default the current members of an `entered` workflow's
    /// segment, or the entities of a manual one; an `exited` workflow needs keys), at most `limit` (and
    /// [`MAX_DRY_RUN_ROWS`]), the first action step its path reaches through waits, branches and splits, that
    /// step's channel and rendered template, or why it would not be sent (re-entry, suppressed, capped, quiet
    /// hours, an exit, a failure).
    pub async fn dry_run_workflow(
        &self,
        name: &str,
        keys: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<DryRunRow>> {
        let spec = self.workflow(name)?;
        let entity = self.trigger_entity(&spec.trigger)?;
        let limit = limit.min(MAX_DRY_RUN_ROWS);
        let mut keys = match keys {
            Some(k) if k.len() > MAX_DRY_RUN_ROWS => {
                return Err(Error::InvalidArgument(format!(
                    "{} keys, more than {MAX_DRY_RUN_ROWS} per dry run (limit MAX_DRY_RUN_ROWS)",
                    k.len()
                )))
            }
            Some(k) => k,
            None => match &spec.trigger {
                // A scheduled run starts every current member, like an entered segment's members.
                TriggerSpec::Entered { segment } | TriggerSpec::Schedule { segment } => {
                    let mut stream = self.members(segment, None).await?;
                    let mut out = vec![];
                    while let Some(b) = stream.next().await {
                        out.extend(keys_of(std::slice::from_ref(&b?))?);
                        if out.len() >= limit {
                            break;
                        }
                    }
                    out
                }
                TriggerSpec::Exited { .. } => {
                    return Err(Error::InvalidArgument(format!(
                        "workflow `{}` runs for entities leaving a segment: name the keys to dry-run",
                        spec.name
                    )))
                }
                TriggerSpec::Manual { .. } => {
                    let e = self.entity(&entity)?;
                    let key = e.key.clone().ok_or_else(|| {
                        Error::InvalidArgument(format!("`{entity}` has no key: name the keys to dry-run"))
                    })?;
                    let df = self.inner.ctx.table(TableReference::bare(e.name.as_str())).await?;
                    keys_of(&df.select(vec![ident(key)])?.limit(0, Some(limit))?.collect().await?)?
                }
            },
        };
        keys.truncate(limit);
        let now = self.now();
        let re = reentry(&spec, ms(now));
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            rows.push(self.dry_run_one(&spec, &entity, key, re.as_ref(), now).await?);
        }
        Ok(rows)
    }

    async fn dry_run_one(
        &self,
        spec: &WorkflowSpec,
        entity: &str,
        key: String,
        re: Option<&Reentry>,
        now: DateTime<Utc>,
    ) -> Result<DryRunRow> {
        let row = |key: String, status: DryRunStatus, detail: String| DryRunRow {
            entity_key: key,
            step: None,
            channel: None,
            status,
            content: BTreeMap::new(),
            detail: Some(detail),
        };
        if let Some(r) = re {
            if self.inner.catalog.started_since(&spec.name, &key, r)? {
                let why = if r.since == i64::MIN {
                    "re-entry policy `never`: it went through this workflow before".to_string()
                } else {
                    format!("re-entry policy: it started this workflow after {}", utc_of(r.since).to_rfc3339())
                };
                return Ok(row(key, DryRunStatus::Reentry, why));
            }
        }
        let Some(attributes) = self.entity_attributes(entity, &key).await? else {
            return Ok(row(key, DryRunStatus::Failed, format!("`{entity}` has no entity with this key")));
        };
        // Walk to the first action step (the graph is acyclic: at most one visit per step).
        let mut path = vec![];
        let mut at = Some(0usize);
        let mut found = None;
        for _ in 0..spec.steps.len() {
            let Some(i) = at else { break };
            match &spec.steps[i] {
                StepSpec::Action { .. } => {
                    found = Some(i);
                    break;
                }
                StepSpec::Exit { name } => {
                    path.push(format!("exit `{name}`"));
                    break;
                }
                StepSpec::Wait { name, .. } => {
                    path.push(format!("wait `{name}`"));
                    at = next_in_order(spec, i);
                }
                StepSpec::Branch { name, rule, then, otherwise, .. } => {
                    let m = self.rule_matches(entity, rule, &key).await?;
                    let target = if m { then } else { otherwise };
                    path.push(format!("branch `{name}`: {} → `{target}`", if m { "then" } else { "else" }));
                    at = index_of(spec, target);
                }
                StepSpec::Split { name, branches } => {
                    let bucket = split_bucket(&spec.name, name, &key);
                    let target = branches.get(split_choice(branches, bucket)).map(|b| b.step.as_str()).unwrap_or("");
                    path.push(format!("split `{name}`: bucket {bucket} → `{target}`"));
                    at = index_of(spec, target);
                }
            }
        }
        let with_path = |why: String| if path.is_empty() { why } else { format!("{why} (path: {})", path.join("; ")) };
        let Some(StepSpec::Action { name: step, action, channel, template, .. }) = found.map(|i| &spec.steps[i]) else {
            return Ok(row(key, DryRunStatus::Exit, with_path("ends before any action step".into())));
        };
        let channel = channel_of(action, channel);
        let mut out = row(key, DryRunStatus::Send, String::new());
        out.step = Some(step.clone());
        out.channel = Some(channel.clone());
        if self.inner.catalog.is_suppressed(&channel, &out.entity_key)? {
            out.status = DryRunStatus::Suppressed;
            out.detail = Some(with_path(format!("on the `{channel}` suppression list")));
            return Ok(out);
        }
        for (cap, w) in cap_windows(&spec.policies.frequency_caps, &channel, ms(now)) {
            if self.inner.catalog.sent_count(entity, &out.entity_key, &channel, w.since)? >= cap.max as u64 {
                out.status = DryRunStatus::Capped;
                out.detail = Some(with_path(cap_text(cap)));
                return Ok(out);
            }
        }
        if let Some(t) = template {
            match self.render_for(spec, t, step, &out.entity_key, &attributes) {
                Ok(c) => out.content = c,
                Err(e) => {
                    out.status = DryRunStatus::Failed;
                    out.detail = Some(with_path(e.to_string()));
                    return Ok(out);
                }
            }
        }
        out.detail = match self.quiet_hours_hold(spec, &attributes, now)? {
            Some((_, detail)) => {
                out.status = DryRunStatus::Held;
                Some(with_path(detail))
            }
            None if path.is_empty() => None,
            None => Some(format!("path: {}", path.join("; "))),
        };
        Ok(out)
    }
}
