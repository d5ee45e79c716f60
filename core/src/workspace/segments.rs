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
        self.check_new_segment_name(&segment.name)?;
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
        // A static list defined under this name before is now a rule segment: forget its keys.
        let files = self.inner.catalog.prune_static_list(&segment.name, 0)?;
        self.delete_files(&files).await;
        Ok(segment)
    }

    /// Refuses a segment name that differs from an existing one only by case.
    pub(super) fn check_new_segment_name(&self, name: &str) -> Result<()> {
        if let Some(other) =
            self.inner.catalog.segments()?.into_iter().find(|o| o.name != name && name_fold(&o.name) == name_fold(name))
        {
            return Err(Error::definition(
                "segment",
                format!("segment names `{}` and `{name}` differ only by case; names must differ by more", other.name),
            ));
        }
        Ok(())
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
        self.delete_files(&files).await;
        Ok(())
    }

    /// Segments that reference `name` through `in_segment` / `not_in_segment`, directly or transitively, in an
    /// order where every segment comes after the segments it references.
    pub fn dependents(&self, name: &str) -> Result<Vec<String>> {
        self.segment(name)?;
        let defs = self.segments()?;
        // A static segment's rule references its own list: not a dependency.
        let graph: HashMap<String, Vec<String>> = defs
            .iter()
            .map(|d| (d.name.clone(), d.rule.segment_refs().into_iter().filter(|u| u != &d.name).collect()))
            .collect();
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
    fn is_static_list(&self, name: &str) -> Result<bool> {
        Ok(self.inner.catalog.static_list(name)?.is_some())
    }
    fn time_zone(&self) -> chrono_tz::Tz {
        Workspace::time_zone(self)
    }
}

#[cfg(test)]
mod unicode_name_tests {
    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};

    use crate::model::{Attribute, DataType, Entity};
    use crate::rules::{Dialect, Rule};
    use crate::segment::SegmentDefinition;
    use crate::{IngestOptions, Workspace};

    fn seg(name: &str, entity: &str, rule: serde_json::Value) -> SegmentDefinition {
        SegmentDefinition {
            name: name.into(),
            entity: entity.into(),
            rule: Rule::parse(&rule, Dialect::Auto).unwrap(),
            description: None,
            split: None,
            keep_runs: None,
        }
    }

    fn strings(cols: &[(&str, &[&str])]) -> RecordBatch {
        RecordBatch::try_from_iter(
            cols.iter().map(|(n, v)| (n.to_string(), Arc::new(StringArray::from(v.to_vec())) as ArrayRef)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn chinese_and_keyword_names_work_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).await.unwrap();
        ws.define_entity(
            Entity::profile("客户", "客户编号")
                .attribute(Attribute::new("客户编号", DataType::Int64))
                .attribute(Attribute::new("城市", DataType::String))
                .attribute(Attribute::new("年龄", DataType::Int64))
                .attribute(Attribute::new("order", DataType::Int64))
                .attribute(Attribute::new("select", DataType::String)),
        )
        .await
        .unwrap();
        let b = strings(&[
            ("客户编号", &["1", "2", "3", "x"]),
            ("城市", &["北京", "上海", "北京", "北京"]),
            ("年龄", &["30", "17", "45", "50"]),
            ("order", &["1", "2", "3", "4"]),
            ("select", &["a", "b", "c", "d"]),
        ]);
        let r = ws.ingest_batches("客户", vec![b], IngestOptions::default()).await.unwrap();
        assert_eq!(r.snapshot, Some(1));
        // Stored under an ASCII-safe path, readable by DataFusion with the Chinese column names intact.
        assert!(dir.path().join("data/u-e5aea2e688b7").is_dir());
        let q = ws.quarantine("客户").await.unwrap();
        assert_eq!(q.num_rows(), 1);
        let rules = [
            serde_json::json!({"and": [{"attribute": "城市", "op": "eq", "value": "北京"}, {"attribute": "年龄", "op": "ge", "value": 18}, {"attribute": "order", "op": "ge", "value": 1}, {"attribute": "select", "op": "ne", "value": "zz"}]}),
            serde_json::json!({"combinator": "and", "rules": [{"field": "城市", "operator": "=", "value": "北京"}, {"field": "年龄", "operator": ">=", "value": 18}]}),
            serde_json::json!({"and": [{"==": [{"var": "城市"}, "北京"]}, {">=": [{"var": "年龄"}, 18]}]}),
        ];
        for (i, rule) in rules.into_iter().enumerate() {
            let name = format!("成年北京客户_{i}");
            ws.define_segment(seg(&name, "客户", rule)).await.unwrap();
            let run = ws.evaluate(&name).await.unwrap();
            assert_eq!(ws.count(&name).await.unwrap(), 2, "{run:?}");
            let p = ws.preview(&name, 10).await.unwrap();
            let ids = p.column_by_name("客户编号").expect("preview has the key column");
            let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
            let mut got: Vec<i64> = (0..ids.len()).map(|j| ids.value(j)).collect();
            got.sort();
            assert_eq!(got, vec![1, 3]);
        }
        let seg_dir = format!("segments/{}", crate::store::path_segment("成年北京客户_0"));
        assert!(seg_dir.is_ascii() && dir.path().join(&seg_dir).is_dir(), "{seg_dir}");
        // The user's SQL quotes non-ASCII and keyword names.
        let out = ws
            .sql(r#"SELECT count(*) FROM "客户" WHERE "城市" = '北京' AND "order" >= 1 AND "select" <> 'q'"#)
            .await
            .unwrap();
        assert_eq!(out[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 2);
        // Lookups of a missing Chinese attribute get a did-you-mean.
        let e = ws
            .define_segment(seg("坏", "客户", serde_json::json!({"attribute": "城巿", "op": "eq", "value": "x"})))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("城市"), "{e}");
    }

    #[tokio::test]
    async fn names_are_nfc_and_case_collisions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).await.unwrap();
        // "café" typed decomposed (e + U+0301) is the composed name.
        ws.define_entity(Entity::profile("cafe\u{301}", "id").attribute(Attribute::new("id", DataType::Int64)))
            .await
            .unwrap();
        assert_eq!(ws.entity("caf\u{e9}").unwrap().name, "caf\u{e9}");
        let e = ws
            .define_entity(Entity::profile("CAFÉ", "id").attribute(Attribute::new("id", DataType::Int64)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("differ only by case"), "{e}");
        let e = ws
            .define_entity(
                Entity::profile("p", "Age")
                    .attribute(Attribute::new("Age", DataType::Int64))
                    .attribute(Attribute::new("age", DataType::Int64)),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`Age` and `age` differ only by case"), "{e}");
        for bad in ["客户 编号", "a-b", "😀", "1abc", "年龄!"] {
            let e = ws
                .define_entity(Entity::profile(bad, "id").attribute(Attribute::new("id", DataType::Int64)))
                .await
                .unwrap_err();
            assert!(e.to_string().contains("must be 1–128 Unicode letters, digits or `_`"), "{bad}: {e}");
        }
        let long: String = "客".repeat(128);
        ws.define_entity(Entity::profile(&long, "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
        let e = ws
            .define_entity(Entity::profile(format!("{long}客"), "id").attribute(Attribute::new("id", DataType::Int64)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("must be 1–128"), "{e}");
        assert_eq!(crate::store::path_segment("users"), "users");
    }
}
