//! Segment definitions and the references between them.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::{check_name, name_fold, normalize_name, Entity};
use crate::rules::{check_with, Resolver};
use crate::segment::SegmentDefinition;

use super::Workspace;

impl Workspace {
    /// Defines (or replaces) a segment after type-checking its rule against the entity.
    ///
    /// The rule is stored in canonical form (see [`Checked::to_rule`]); the stored definition is returned.
    pub async fn define_segment(&self, mut segment: SegmentDefinition) -> Result<SegmentDefinition> {
        segment.name = normalize_name(&segment.name);
        segment.entity = normalize_name(&segment.entity);
        check_name(&segment.name, "segment")?;
        if let Some(other) = self
            .inner
            .catalog
            .segments()?
            .into_iter()
            .find(|o| o.name != segment.name && name_fold(&o.name) == name_fold(&segment.name))
        {
            return Err(Error::definition(
                "segment",
                format!(
                    "segment names `{}` and `{}` differ only by case; names must differ by more",
                    other.name, segment.name
                ),
            ));
        }
        let entity = self
            .entity(&segment.entity)
            .map_err(|e| Error::definition(format!("segment {}.entity", segment.name), e.to_string()))?;
        if entity.key.is_none() {
            return Err(Error::definition(
                format!("segment {}.entity", segment.name),
                format!("entity `{}` has no key; segments select keyed entities", entity.name),
            ));
        }
        let checked = check_with(&segment.rule, &entity, self, std::slice::from_ref(&segment.name))?;
        if let Some(split) = &segment.split {
            split.validate(&format!("segment {}.split", segment.name))?;
        }
        let segment = SegmentDefinition { rule: checked.to_rule(), ..segment };
        self.inner.catalog.put_segment(&segment)?;
        Ok(segment)
    }

    /// A segment definition.
    pub fn segment(&self, name: &str) -> Result<SegmentDefinition> {
        match self.inner.catalog.segment(&normalize_name(name))? {
            Some(s) => Ok(s),
            None => {
                let known = self.inner.catalog.segments()?;
                Err(Error::not_found_among("segment", name, known.iter().map(|x| x.name.as_str())))
            }
        }
    }

    /// All segments.
    pub fn segments(&self) -> Result<Vec<SegmentDefinition>> {
        self.inner.catalog.segments()
    }

    /// Deletes a segment and its membership history.
    pub async fn delete_segment(&self, name: &str) -> Result<()> {
        let files = self.inner.catalog.delete_segment(name)?;
        self.inner.store.delete(&files).await;
        Ok(())
    }

    /// Segments that reference `name` through `in_segment` / `not_in_segment`, directly or transitively, in an
    /// order where every segment comes after the segments it references.
    pub fn dependents(&self, name: &str) -> Result<Vec<String>> {
        self.segment(name)?;
        let defs = self.segments()?;
        let refs = |r: &crate::rules::Rule| {
            let mut out = vec![];
            fn walk(r: &crate::rules::Rule, out: &mut Vec<String>) {
                use crate::rules::Rule;
                match r {
                    Rule::And(v) | Rule::Or(v) => v.iter().for_each(|x| walk(x, out)),
                    Rule::Not(x) => walk(x, out),
                    Rule::InSegment(s) => out.push(s.segment.clone()),
                    Rule::Performed(b) => {
                        if let Some(f) = &b.filter {
                            walk(f, out)
                        }
                    }
                    Rule::Linked(l) => walk(&l.rule, out),
                    Rule::Sequence(_) => {}
                    Rule::Condition(_) => {}
                }
            }
            walk(r, &mut out);
            out
        };
        let graph: HashMap<String, Vec<String>> = defs.iter().map(|d| (d.name.clone(), refs(&d.rule))).collect();
        // Depth-first post-order over "is referenced by" gives a reverse topological order.
        let mut order = vec![];
        let mut seen = std::collections::HashSet::new();
        fn visit(
            n: &str,
            graph: &HashMap<String, Vec<String>>,
            seen: &mut std::collections::HashSet<String>,
            order: &mut Vec<String>,
        ) {
            for (d, uses) in graph {
                if uses.iter().any(|u| u == n) && seen.insert(d.clone()) {
                    visit(d, graph, seen, order);
                    order.push(d.clone());
                }
            }
        }
        visit(name, &graph, &mut seen, &mut order);
        order.reverse();
        // A segment must come after every segment it references: sort the collected set topologically.
        let set: std::collections::HashSet<&String> = order.iter().collect();
        let mut done: Vec<String> = vec![];
        while done.len() < order.len() {
            let before = done.len();
            for d in &order {
                if done.contains(d) {
                    continue;
                }
                if graph[d].iter().all(|u| !set.contains(u) || done.contains(u)) {
                    done.push(d.clone());
                }
            }
            if done.len() == before {
                return Err(Error::Conflict { what: format!("segment `{name}`"), message: "reference cycle".into() });
            }
        }
        Ok(done)
    }
}

impl Resolver for Workspace {
    fn entities(&self) -> Vec<Entity> {
        self.inner.catalog.entities().unwrap_or_default()
    }
    fn segment(&self, name: &str) -> Option<(String, crate::rules::Rule)> {
        self.inner.catalog.segment(name).ok().flatten().map(|s| (s.entity, s.rule))
    }
    fn segment_names(&self) -> Vec<String> {
        self.inner.catalog.segments().unwrap_or_default().into_iter().map(|s| s.name).collect()
    }
    fn time_zone(&self) -> chrono_tz::Tz {
        Workspace::time_zone(self)
    }
}
