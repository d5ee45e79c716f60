//! Segment definitions and the references between them.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::{check_name, Entity};
use crate::rules::{check_with, Resolver};
use crate::segment::SegmentDefinition;

use super::Workspace;

impl Workspace {
    /// Defines (or replaces) a segment after type-checking its rule against the entity.
    ///
    /// The rule is stored in canonical form (see [`Checked::to_rule`]); the stored definition is returned.
    pub async fn define_segment(&self, segment: SegmentDefinition) -> Result<SegmentDefinition> {
        check_name(&segment.name, "segment")?;
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
        match self.inner.catalog.segment(name)? {
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
                // Only a catalog written around the checker (which refuses cycles) can get here; name the cycle.
                let stuck = |d: &String| set.contains(d) && !done.contains(d);
                let mut path: Vec<String> = order.iter().find(|d| stuck(d)).into_iter().cloned().collect();
                while let Some(next) = path.last().and_then(|d| graph[d].iter().find(|u| stuck(u))) {
                    if let Some(i) = path.iter().position(|p| p == next) {
                        path.drain(..i);
                        path.push(next.clone());
                        break;
                    }
                    path.push(next.clone());
                }
                return Err(Error::definition(
                    format!("segment `{name}`"),
                    format!("segment references form a cycle: {}", path.join(" → ")),
                ));
            }
        }
        Ok(done)
    }
}

impl Resolver for Workspace {
    fn entities(&self) -> Result<Vec<Entity>> {
        self.inner.catalog.entities()
    }
    fn segment(&self, name: &str) -> Result<Option<(String, crate::rules::Rule)>> {
        Ok(self.inner.catalog.segment(name)?.map(|s| (s.entity, s.rule)))
    }
    fn segment_names(&self) -> Result<Vec<String>> {
        Ok(self.inner.catalog.segments()?.into_iter().map(|s| s.name).collect())
    }
    fn time_zone(&self) -> chrono_tz::Tz {
        Workspace::time_zone(self)
    }
}
