//! Type checking: a parsed [`Rule`] against an [`Entity`] becomes a [`Checked`] rule with typed literals.

use serde_json::Value;

use super::ast::{AggFn, Aggregate, Behavior, BehaviorWindow, Condition, Op, Rule, Sequence};
use super::checked::*;
use super::literal::{list_items, lit_gt, literal, literals};
use super::window::window;
use crate::error::{Error, Result};
use crate::model::{DataType, Entity};

/// What type checking needs to know beyond the entity itself: other entities and segments.
///
/// Every lookup returns a [`Result`]: a failing catalog is an error of the check, never an empty answer that
/// would read as "not defined".
pub trait Resolver {
    /// All entities.
    fn entities(&self) -> Result<Vec<Entity>>;
    /// A segment's entity and rule, or `None` if no segment has that name.
    fn segment(&self, name: &str) -> Result<Option<(String, Rule)>>;
    /// Names of all segments (for suggestions).
    fn segment_names(&self) -> Result<Vec<String>>;
    /// Whether segment `name` is a static list of keys (a reference reads the list instead of recomputing a
    /// rule). Default: no segment is.
    fn is_static_list(&self, _name: &str) -> Result<bool> {
        Ok(false)
    }
    /// The time zone calendar windows count in (default UTC).
    fn time_zone(&self) -> chrono_tz::Tz {
        chrono_tz::Tz::UTC
    }
}

/// A resolver that knows no other entities or segments.
struct NoResolver;

impl Resolver for NoResolver {
    fn entities(&self) -> Result<Vec<Entity>> {
        Ok(vec![])
    }
    fn segment(&self, _: &str) -> Result<Option<(String, Rule)>> {
        Ok(None)
    }
    fn segment_names(&self) -> Result<Vec<String>> {
        Ok(vec![])
    }
}

/// Type-checks `rule` against `entity`.
///
/// Errors carry the path into the tree (`and[1].or[0]`) and, for unknown attributes, the closest name.
///
/// The result is simplified: a single-child `and`/`or` is its child and nested `and`s (or `or`s) are flattened,
/// so the same condition written in different dialects gives the same checked rule.
pub fn check(rule: &Rule, entity: &Entity) -> Result<Checked> {
    check_with(rule, entity, &NoResolver, &[])
}

/// Type-checks `rule` against `entity`, resolving event entities and referenced segments with `resolver`.
///
/// `defining` lists the segments being defined (the caller's own name): a reference back to one of them is a
/// cycle and an error.
pub fn check_with(rule: &Rule, entity: &Entity, resolver: &dyn Resolver, defining: &[String]) -> Result<Checked> {
    let mut cx = Cx { resolver, stack: defining.to_vec(), tz: resolver.time_zone(), next_id: 0 };
    Ok(simplify(cx.check_at(rule, entity, "")?))
}

struct Cx<'a> {
    resolver: &'a dyn Resolver,
    stack: Vec<String>,
    tz: chrono_tz::Tz,
    /// The next [`NodeId`](super::checked::NodeId) to hand out.
    next_id: u32,
}

fn simplify(c: Checked) -> Checked {
    match c {
        Checked::And(v) | Checked::Or(v) if v.len() == 1 => simplify(v.into_iter().next().expect("len 1")),
        // Flattening can leave one child (`and(and(), x)` → `and(x)`): collapse it too, so simplify is idempotent
        // and the canonical form re-checks to the same tree (found by core/tests/fuzz_rules.rs).
        Checked::And(v) => single(
            v.into_iter()
                .map(simplify)
                .flat_map(|x| match x {
                    Checked::And(inner) => inner,
                    other => vec![other],
                })
                .collect(),
            Checked::And,
        ),
        Checked::Or(v) => single(
            v.into_iter()
                .map(simplify)
                .flat_map(|x| match x {
                    Checked::Or(inner) => inner,
                    other => vec![other],
                })
                .collect(),
            Checked::Or,
        ),
        Checked::Not(x) => Checked::Not(Box::new(simplify(*x))),
        Checked::Behavior(mut b) => {
            b.filter = b.filter.map(simplify);
            Checked::Behavior(b)
        }
        other => other,
    }
}

fn single(mut v: Vec<Checked>, group: fn(Vec<Checked>) -> Checked) -> Checked {
    if v.len() == 1 {
        v.pop().expect("len 1")
    } else {
        group(v)
    }
}

fn join(path: &str, part: impl std::fmt::Display) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

impl Cx<'_> {
    fn fresh(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn check_at(&mut self, rule: &Rule, entity: &Entity, path: &str) -> Result<Checked> {
        let here = if path.is_empty() { "<root>" } else { path };
        Ok(match rule {
            Rule::And(v) => Checked::And(
                v.iter()
                    .enumerate()
                    .map(|(i, r)| self.check_at(r, entity, &join(path, format!("and[{i}]"))))
                    .collect::<Result<_>>()?,
            ),
            Rule::Or(v) => Checked::Or(
                v.iter()
                    .enumerate()
                    .map(|(i, r)| self.check_at(r, entity, &join(path, format!("or[{i}]"))))
                    .collect::<Result<_>>()?,
            ),
            Rule::Not(r) => Checked::Not(Box::new(self.check_at(r, entity, &join(path, "not"))?)),
            Rule::Condition(c) => {
                let mut p = check_condition(c, entity, here, self.tz)?;
                p.id = self.fresh();
                Checked::Pred(p)
            }
            Rule::Performed(b) => {
                let key = if b.negated { "not_performed" } else { "performed" };
                Checked::Behavior(Box::new(self.check_behavior(b, entity, &join(path, key))?))
            }
            Rule::Sequence(q) => {
                let word = if q.negated { "not_sequence" } else { "sequence" };
                Checked::Sequence(Box::new(self.check_sequence(q, entity, &join(path, word))?))
            }
            Rule::Linked(l) => {
                let p = join(path, "linked");
                let Some(link) = entity.links.iter().find(|x| x.attribute == l.via) else {
                    let names: Vec<&str> = entity.links.iter().map(|x| x.attribute.as_str()).collect();
                    let hint = crate::error::hint(&l.via, names.iter().copied());
                    return Err(Error::rule(
                        join(&p, "via"),
                        format!("`{}` is not a link of entity `{}`{hint}", l.via, entity.name),
                    ));
                };
                let entities = self.resolver.entities()?;
                let target = entities
                    .iter()
                    .find(|e| e.name == link.entity)
                    .ok_or_else(|| {
                        Error::rule(join(&p, "via"), format!("linked entity `{}` is not defined", link.entity))
                    })?
                    .clone();
                let target_attribute = link.target.clone().or_else(|| target.key.clone()).unwrap_or_default();
                let rule = simplify(self.check_at(&l.rule, &target, &join(&p, "where"))?);
                let id = self.fresh();
                Checked::Linked(Box::new(CheckedLinked { id, via: l.via.clone(), target, target_attribute, rule }))
            }
            Rule::InSegment(r) => {
                let key = if r.negated { "not_in_segment" } else { "in_segment" };
                let p = join(path, key);
                let Some((seg_entity, seg_rule)) = self.resolver.segment(&r.segment)? else {
                    let names = self.resolver.segment_names()?;
                    let hint = crate::error::hint(&r.segment, names.iter().map(String::as_str));
                    return Err(Error::rule(p, format!("segment `{}` is not defined{hint}", r.segment)));
                };
                if seg_entity != entity.name {
                    return Err(Error::rule(
                        p,
                        format!("segment `{}` selects `{seg_entity}`, not `{}`", r.segment, entity.name),
                    ));
                }
                if let Some(i) = self.stack.iter().position(|s| s == &r.segment) {
                    let mut cycle = self.stack[i..].to_vec();
                    cycle.push(r.segment.clone());
                    return Err(Error::rule(p, format!("segment references form a cycle: {}", cycle.join(" → "))));
                }
                if self.resolver.is_static_list(&r.segment)? {
                    // A static list has no rule to recompute: the reference reads its stored keys.
                    return Ok(Checked::InSegment(Box::new(CheckedSegmentRef {
                        id: self.fresh(),
                        segment: r.segment.clone(),
                        negated: r.negated,
                        stored: r.stored,
                        static_list: true,
                        rule: Checked::And(vec![]),
                    })));
                }
                self.stack.push(r.segment.clone());
                let inner = self.check_at(&seg_rule, entity, "").map_err(|e| match e {
                    Error::Rule { path: ip, message } => {
                        Error::rule(&p, format!("in segment `{}` at {ip}: {message}", r.segment))
                    }
                    other => other,
                });
                self.stack.pop();
                Checked::InSegment(Box::new(CheckedSegmentRef {
                    id: self.fresh(),
                    segment: r.segment.clone(),
                    negated: r.negated,
                    stored: r.stored,
                    static_list: false,
                    rule: simplify(inner?),
                }))
            }
        })
    }

    fn check_sequence(&mut self, q: &Sequence, profile: &Entity, path: &str) -> Result<CheckedSequence> {
        // Reuse the behavioural checks for the entity, link and time.
        let probe = Behavior { event: q.event.clone(), filter: None, window: None, having: vec![], negated: false };
        let b = self.check_behavior(&probe, profile, path)?;
        if b.event.attr(&b.time).map(|a| a.data_type.clone()).ok() != Some(DataType::Timestamp) {
            return Err(Error::rule(
                join(path, "event"),
                format!("a sequence needs a timestamp event time on `{}`", b.event.name),
            ));
        }
        let step = |cx: &mut Self, r: &Rule, k: &str| -> Result<Checked> {
            Ok(simplify(cx.check_at(r, &b.event, &join(path, k))?))
        };
        let first = step(self, &q.first, "first")?;
        let then = step(self, &q.then, "then")?;
        let without = match &q.without {
            Some(r) => Some(step(self, r, "without")?),
            None => None,
        };
        let within = q.within.as_ref().map(|v| window(v, &join(path, "within"), self.tz)).transpose()?;
        let within_last = q.within_last.as_ref().map(|v| window(v, &join(path, "within_last"), self.tz)).transpose()?;
        Ok(CheckedSequence {
            id: self.fresh(),
            event: b.event,
            link: b.link,
            time: b.time,
            first,
            then,
            within,
            without,
            within_last,
            negated: q.negated,
        })
    }

    fn check_behavior(&mut self, b: &Behavior, profile: &Entity, path: &str) -> Result<CheckedBehavior> {
        let entities = self.resolver.entities()?;
        let Some(event) = entities.iter().find(|e| e.name == b.event) else {
            let hint = crate::error::hint(&b.event, entities.iter().map(|e| e.name.as_str()));
            return Err(Error::rule(join(path, "event"), format!("entity `{}` is not defined{hint}", b.event)));
        };
        let Some(key) = profile.key.clone() else {
            return Err(Error::rule(path, format!("entity `{}` has no key to link events to", profile.name)));
        };
        let Some(link) =
            event.links.iter().find(|l| l.entity == profile.name && l.target.as_ref().is_none_or(|t| t == &key))
        else {
            return Err(Error::rule(
                join(path, "event"),
                format!("entity `{}` has no link to `{}.{key}`", event.name, profile.name),
            ));
        };
        // A related profile entity (orders of a user, say) has no time: it can be counted, but not windowed.
        let (time, time_type) = match event.timestamp.clone() {
            Some(t) => {
                let tt = event.attr(&t)?.data_type.clone();
                (t, tt)
            }
            None if b.window.is_some() => {
                return Err(Error::rule(
                    join(path, "event"),
                    format!("entity `{}` has no timestamp attribute, so it takes no time window", event.name),
                ))
            }
            None => (String::new(), DataType::Timestamp),
        };
        let filter = match &b.filter {
            Some(f) => Some(simplify(self.check_at(f, event, &join(path, "where"))?)),
            None => None,
        };
        let window = match &b.window {
            None => None,
            Some(BehaviorWindow::Last(v)) => Some(CheckedWindow::Last(window(v, &join(path, "within_last"), self.tz)?)),
            Some(BehaviorWindow::Between(a, z)) => {
                let p = join(path, "between");
                let (lo, hi) = (literal(a, &time_type, &p)?, literal(z, &time_type, &p)?);
                if lit_gt(&lo, &hi) {
                    return Err(Error::rule(p, "the start is after the end"));
                }
                Some(CheckedWindow::Between(lo, hi))
            }
            Some(BehaviorWindow::Since(a)) => {
                let p = join(path, "since");
                let attr = profile.attr(a).map_err(|e| Error::rule(&p, e.to_string()))?;
                if attr.data_type != time_type {
                    return Err(Error::rule(
                        p,
                        format!("`{}` is {} but the event time `{time}` is {time_type}", attr.name, attr.data_type),
                    ));
                }
                Some(CheckedWindow::Since(attr.name.clone()))
            }
        };
        let defaults = [Aggregate { func: AggFn::Count, attribute: None, op: Op::Ge, value: Value::from(1) }];
        let having_src: &[Aggregate] = if b.having.is_empty() { &defaults } else { &b.having };
        let mut having = vec![];
        for (i, a) in having_src.iter().enumerate() {
            let p = join(path, format!("having[{i}]"));
            let input = match (&a.func, &a.attribute) {
                (AggFn::Count, None) => None,
                (AggFn::Count, Some(_)) => {
                    return Err(Error::rule(p, "count takes no attribute (use count_distinct)"));
                }
                (f, None) => return Err(Error::rule(p, format!("{} needs an attribute", f.name()))),
                (f, Some(attr)) => {
                    let at = event.attr(attr).map_err(|e| Error::rule(join(&p, f.name()), e.to_string()))?;
                    let ok = match f {
                        AggFn::Sum | AggFn::Avg => at.data_type.is_numeric(),
                        AggFn::Min | AggFn::Max => at.data_type.is_ordered(),
                        _ => !matches!(at.data_type, DataType::List(_) | DataType::Json),
                    };
                    if !ok {
                        return Err(Error::rule(
                            join(&p, f.name()),
                            format!("{} does not apply to `{}` of type {}", f.name(), at.name, at.data_type),
                        ));
                    }
                    Some(at.clone())
                }
            };
            let out_type = match (a.func, &input) {
                (AggFn::Count | AggFn::CountDistinct, _) => DataType::Int64,
                (AggFn::Avg, _) => DataType::Float64,
                (AggFn::Sum, Some(at)) if at.data_type == DataType::Float64 => DataType::Float64,
                (AggFn::Sum, _) => DataType::Int64,
                (_, Some(at)) => at.data_type.clone(),
                (_, None) => DataType::Int64,
            };
            if !matches!(
                a.op,
                Op::Eq
                    | Op::Ne
                    | Op::Lt
                    | Op::Le
                    | Op::Gt
                    | Op::Ge
                    | Op::Between
                    | Op::NotBetween
                    | Op::In
                    | Op::NotIn
                    | Op::IsNull
                    | Op::NotNull
                    | Op::Before
                    | Op::After
                    | Op::WithinLast
                    | Op::NotWithinLast
            ) {
                return Err(Error::rule(
                    join(&p, a.op.name()),
                    format!("operator `{}` does not apply to aggregates", a.op),
                ));
            }
            let alias = format!("__agg{i}");
            let synthetic = Entity {
                name: format!("{}({})", a.func.name(), a.attribute.as_deref().unwrap_or("*")),
                attributes: vec![crate::model::Attribute::new(alias.clone(), out_type)],
                ..Entity::profile("aggregate", alias.clone())
            };
            let cond = Condition { attribute: alias.clone(), op: a.op, value: a.value.clone() };
            let mut pred = check_condition(&cond, &synthetic, &p, self.tz).map_err(|e| match e {
                Error::Rule { path, message } => {
                    Error::rule(path.replace(".attribute", ""), message.replace(&alias, a.func.name()))
                }
                other => other,
            })?;
            pred.id = self.fresh();
            having.push(CheckedAggregate { func: a.func, attribute: a.attribute.clone(), alias, pred });
        }
        Ok(CheckedBehavior {
            id: self.fresh(),
            event: event.clone(),
            link: link.attribute.clone(),
            time,
            filter,
            window,
            having,
            negated: b.negated,
        })
    }
}

fn check_condition(c: &Condition, entity: &Entity, path: &str, tz: chrono_tz::Tz) -> Result<Pred> {
    let Some(attr) = entity.get(&c.attribute) else {
        let hint = crate::error::hint(&c.attribute, entity.attributes.iter().map(|a| a.name.as_str()));
        return Err(Error::rule(
            join(path, "attribute"),
            format!("entity `{}` has no attribute `{}`{hint}", entity.name, c.attribute),
        ));
    };
    if !attr.filterable {
        return Err(Error::rule(join(path, "attribute"), format!("attribute `{}` is not filterable", attr.name)));
    }
    let t = &attr.data_type;
    let vpath = join(path, "value");
    let invalid =
        || Error::rule(join(path, "op"), format!("operator `{}` does not apply to `{}` of type {t}", c.op, attr.name));
    if !c.op.is_unary() && c.value.is_null() {
        return Err(Error::rule(
            vpath,
            format!("operator `{}` needs a value (to test for missing values use is_null / not_null)", c.op),
        ));
    }
    let scalar_ok = !matches!(t, DataType::List(_) | DataType::Json);
    let test = match c.op {
        Op::Eq | Op::Ne => {
            if !scalar_ok {
                return Err(invalid());
            }
            let cmp = if c.op == Op::Eq { Cmp::Eq } else { Cmp::Ne };
            Test::Compare(cmp, literal(&c.value, t, &vpath)?)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Before | Op::After => {
            let ok = match c.op {
                Op::Before | Op::After => t.is_temporal(),
                _ => t.is_ordered(),
            };
            if !ok {
                return Err(invalid());
            }
            let cmp = match c.op {
                Op::Lt | Op::Before => Cmp::Lt,
                Op::Le => Cmp::Le,
                Op::Gt | Op::After => Cmp::Gt,
                _ => Cmp::Ge,
            };
            Test::Compare(cmp, literal(&c.value, t, &vpath)?)
        }
        Op::Between | Op::NotBetween => {
            if !t.is_ordered() {
                return Err(invalid());
            }
            let items = list_items(&c.value, &vpath)?;
            if items.len() != 2 {
                return Err(Error::rule(
                    vpath,
                    format!("`{}` needs two bounds [low, high], found {}", c.op, items.len()),
                ));
            }
            let lo = literal(&items[0], t, &vpath)?;
            let hi = literal(&items[1], t, &vpath)?;
            if lit_gt(&lo, &hi) {
                return Err(Error::rule(vpath, "the low bound is greater than the high bound"));
            }
            Test::Between { lo, hi, negated: c.op == Op::NotBetween }
        }
        Op::In | Op::NotIn => {
            if !scalar_ok {
                return Err(invalid());
            }
            Test::InList { values: literals(&c.value, t, &vpath)?, negated: c.op == Op::NotIn }
        }
        Op::Contains | Op::NotContains if matches!(t, DataType::List(_)) => {
            let elem = t.element().expect("list");
            let v = literal(&c.value, elem, &vpath)?;
            let mode = if c.op == Op::Contains { ListMode::Any } else { ListMode::None };
            Test::List { mode, values: vec![v] }
        }
        Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith => {
            if !matches!(t, DataType::String | DataType::Json) {
                return Err(invalid());
            }
            let needle = match &c.value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(Error::rule(vpath, format!("expected text, found {other}"))),
            };
            let kind = match c.op {
                Op::StartsWith => PatternKind::StartsWith,
                Op::EndsWith => PatternKind::EndsWith,
                _ => PatternKind::Contains,
            };
            Test::Pattern { kind, needle, negated: c.op == Op::NotContains }
        }
        Op::Matches => {
            if !matches!(t, DataType::String | DataType::Json) {
                return Err(invalid());
            }
            let Value::String(pattern) = &c.value else {
                return Err(Error::rule(vpath, "expected a regular expression string"));
            };
            // DataFusion compiles the same pattern later with its own (larger) limits: these bounds protect it.
            use crate::limits::{MAX_REGEX_PATTERN_BYTES, MAX_REGEX_PROGRAM_BYTES};
            if pattern.len() > MAX_REGEX_PATTERN_BYTES {
                return Err(Error::rule(
                    vpath,
                    format!(
                        "the regular expression is {} bytes, longer than {MAX_REGEX_PATTERN_BYTES} \
                         (limit MAX_REGEX_PATTERN_BYTES = {MAX_REGEX_PATTERN_BYTES})",
                        pattern.len()
                    ),
                ));
            }
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_PROGRAM_BYTES)
                .dfa_size_limit(MAX_REGEX_PROGRAM_BYTES)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(_) => Error::rule(
                        &vpath,
                        format!(
                            "the regular expression compiles to more than {MAX_REGEX_PROGRAM_BYTES} bytes \
                             (limit MAX_REGEX_PROGRAM_BYTES = {MAX_REGEX_PROGRAM_BYTES})"
                        ),
                    ),
                    e => Error::rule(&vpath, format!("invalid regular expression: {e}")),
                })?;
            Test::Matches(pattern.clone())
        }
        Op::IsNull | Op::NotNull => {
            if !(c.value.is_null() || c.value == Value::String(String::new()) || c.value == Value::Bool(true)) {
                return Err(Error::rule(vpath, format!("`{}` takes no value", c.op)));
            }
            Test::IsNull { negated: c.op == Op::NotNull }
        }
        Op::HasAny | Op::HasAll | Op::HasNone => {
            let Some(elem) = t.element() else {
                return Err(invalid());
            };
            let mode = match c.op {
                Op::HasAny => ListMode::Any,
                Op::HasAll => ListMode::All,
                _ => ListMode::None,
            };
            Test::List { mode, values: literals(&c.value, elem, &vpath)? }
        }
        Op::WithinLast | Op::NotWithinLast => {
            if !t.is_temporal() {
                return Err(invalid());
            }
            Test::WithinLast { window: window(&c.value, &vpath, tz)?, negated: c.op == Op::NotWithinLast }
        }
    };
    Ok(Pred { id: 0, attribute: attr.name.clone(), data_type: t.clone(), test })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;
    use crate::rules::parse_timestamp;
    use crate::rules::Dialect;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn user() -> Entity {
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("age", DataType::Int32))
            .attribute(Attribute::new("country", DataType::String))
            .attribute(Attribute::new("tags", "list<string>".parse().unwrap()))
            .attribute(Attribute::new("signup_at", DataType::Timestamp))
            .attribute(Attribute::new("secret", DataType::String).not_filterable())
    }

    fn chk(v: Value) -> Result<Checked> {
        check(&Rule::parse(&v, Dialect::Auto)?, &user())
    }

    #[test]
    fn ui_strings_are_coerced() {
        let a = chk(json!({"combinator": "and", "rules": [{"field": "age", "operator": "between", "value": "25,40"}, {"field": "country", "operator": "in", "value": "CN, US"}]})).unwrap();
        let b = chk(json!({"and": [{"attribute": "age", "op": "between", "value": [25, 40]}, {"attribute": "country", "op": "in", "value": ["CN", "US"]}]})).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_path_and_suggest() {
        let e = chk(json!({"and": [{"attribute": "age", "op": "gt", "value": 1}, {"or": [{"attribute": "contry", "op": "eq", "value": "CN"}]}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule error at and[1].or[0].attribute: entity `user` has no attribute `contry` (did you mean `country`?)"
        );
        let e = chk(json!({"attribute": "age", "op": "gt", "value": "old"})).unwrap_err();
        assert_eq!(e.to_string(), "rule error at <root>.value: \"old\" is not a valid int32");
        let e = chk(json!({"attribute": "age", "op": "gt", "value": 3_000_000_000i64})).unwrap_err();
        assert!(e.to_string().contains("out of range for int32"), "{e}");
        let e = chk(json!({"attribute": "tags", "op": "gt", "value": 1})).unwrap_err();
        assert!(e.to_string().contains("does not apply to `tags` of type list<string>"), "{e}");
        let e = chk(json!({"attribute": "country", "op": "matches", "value": "(unclosed"})).unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"), "{e}");
        let e = chk(json!({"attribute": "secret", "op": "eq", "value": "x"})).unwrap_err();
        assert!(e.to_string().contains("not filterable"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "between", "value": [40, 25]})).unwrap_err();
        assert!(e.to_string().contains("greater than the high bound"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "in", "value": []})).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "eq", "value": null})).unwrap_err();
        assert!(e.to_string().contains("is_null"), "{e}");
        let e = chk(json!({"attribute": "signup_at", "op": "within_last", "value": "3 fortnights"})).unwrap_err();
        assert!(e.to_string().contains("unknown time unit"), "{e}");
        let e = chk(json!({"attribute": "signup_at", "op": "after", "value": "yesterday"})).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }

    #[test]
    fn windows_parse() {
        let c = chk(json!({"attribute": "signup_at", "op": "within_last", "value": "2 weeks"})).unwrap();
        assert!(matches!(
            c,
            Checked::Pred(Pred {
                test: Test::WithinLast { window: Window { amount: 2, unit: TimeUnit::Weeks, .. }, negated: false },
                ..
            })
        ));
        let c = chk(json!({"attribute": "signup_at", "op": "within_last", "value": {"amount": 3, "unit": "months"}}))
            .unwrap();
        let Checked::Pred(Pred { test: Test::WithinLast { window, .. }, .. }) = c else { panic!() };
        let now = DateTime::parse_from_rfc3339("2026-05-31T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(window.start(now).to_rfc3339(), "2026-02-28T12:00:00+00:00");
    }

    #[test]
    fn timestamps_parse_in_many_forms() {
        let want = parse_timestamp("2026-06-30T00:00:00Z").unwrap();
        for s in ["2026-06-30 00:00:00", "2026-06-30T02:00:00+02:00", "2026-06-30", "2026-06-30 00:00:00.000000Z"] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp("30/06/2026"), None);
    }
}

#[cfg(test)]
mod resolver_errors {
    use super::*;
    use crate::model::{Attribute, DataType};

    /// A resolver whose catalog is broken: every lookup fails.
    struct Broken;

    impl Resolver for Broken {
        fn entities(&self) -> Result<Vec<Entity>> {
            Err(Error::InvalidArgument("catalog is down (entities)".into()))
        }
        fn segment(&self, _: &str) -> Result<Option<(String, Rule)>> {
            Err(Error::InvalidArgument("catalog is down (segment)".into()))
        }
        fn segment_names(&self) -> Result<Vec<String>> {
            Err(Error::InvalidArgument("catalog is down (segment names)".into()))
        }
    }

    /// A resolver that knows a segment exists but cannot list names for a suggestion.
    struct NoNames;

    impl Resolver for NoNames {
        fn entities(&self) -> Result<Vec<Entity>> {
            Ok(vec![])
        }
        fn segment(&self, _: &str) -> Result<Option<(String, Rule)>> {
            Ok(None)
        }
        fn segment_names(&self) -> Result<Vec<String>> {
            Err(Error::InvalidArgument("catalog is down (segment names)".into()))
        }
    }

    fn people() -> Entity {
        Entity::profile("people", "id").attribute(Attribute::new("id", DataType::Int64))
    }

    fn parse(v: serde_json::Value) -> Rule {
        Rule::parse(&v, crate::rules::Dialect::Auto).unwrap()
    }

    #[test]
    fn catalog_failures_propagate_instead_of_reading_as_not_defined() {
        let seg = parse(serde_json::json!({"in_segment": "x"}));
        let e = check_with(&seg, &people(), &Broken, &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument: catalog is down (segment)");
        let e = check_with(&seg, &people(), &NoNames, &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument: catalog is down (segment names)");
        let performed = parse(serde_json::json!({"performed": {"event": "clicks"}}));
        let e = check_with(&performed, &people(), &Broken, &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid argument: catalog is down (entities)");
        // With a working resolver the same rules are ordinary rule errors.
        let e = check_with(&seg, &people(), &NoResolver, &[]).unwrap_err();
        assert!(matches!(e, Error::Rule { .. }) && e.to_string().contains("segment `x` is not defined"), "{e}");
    }
}

#[cfg(test)]
mod node_ids {
    use super::*;
    use crate::model::{Attribute, DataType};

    #[test]
    fn ids_are_assigned_in_order_and_unique() {
        let e = Entity::profile("people", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("age", DataType::Int64));
        let rule = Rule::parse(
            &serde_json::json!({"or": [
                {"attribute": "age", "op": "gt", "value": 1},
                {"not": {"attribute": "age", "op": "lt", "value": 9}},
                {"attribute": "id", "op": "eq", "value": 3}
            ]}),
            crate::rules::Dialect::Auto,
        )
        .unwrap();
        let c = check(&rule, &e).unwrap();
        let mut ids = vec![];
        fn preds(c: &Checked, out: &mut Vec<u32>) {
            match c {
                Checked::Pred(p) => out.push(p.id),
                Checked::Not(x) => preds(x, out),
                Checked::And(v) | Checked::Or(v) => v.iter().for_each(|x| preds(x, out)),
                _ => {}
            }
        }
        preds(&c, &mut ids);
        assert_eq!(ids, vec![0, 1, 2]);
        assert_eq!(check(&rule, &e).unwrap(), c, "checking twice gives the same ids");
    }
}
