//! Reading a project: TOML or YAML text, one file or a directory of files merged by kind.
//!
//! Each kind is a table of name → definition; the definition is deserialized into its spec type with the table
//! key given as its `name` (a `name` field, if written, must equal the key). Errors carry the file and the field
//! path from the root of the file (`project/segments.toml: segments.vip.rule.and[2].op: …`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::model::{ObjectKind, Project, StaticSegmentSpec};
use crate::error::{Error, Result};
use crate::limits::{MAX_PROJECT_FILES, MAX_PROJECT_FILE_BYTES, MAX_PROJECT_OBJECTS};
use crate::model::{name_fold, normalize_name};
use crate::sources::{check_no_inline_secrets, SourceDefinition};
use crate::spec::{EntitySpec, ScheduleSpec, SegmentSpec, TemplateSpec, WorkflowSpec};

/// The text format of a project file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Yaml,
}

impl Project {
    /// Reads a project from a file (`.toml`, `.yaml` or `.yml`) or from a directory: every such file directly in
    /// it, in name order, merged by kind. Errors name the file.
    pub fn from_path(path: &Path) -> Result<Project> {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::InvalidArgument(format!("project {}: {e}", path.display())))?;
        if !meta.is_dir() {
            let format = format_of(path).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "project {}: not a .toml, .yaml or .yml file (or a directory of them)",
                    path.display()
                ))
            })?;
            let mut p = Project::default();
            load_file(&mut p, path, format)?;
            return Ok(p);
        }
        let mut files = vec![];
        for entry in
            std::fs::read_dir(path).map_err(|e| Error::InvalidArgument(format!("project {}: {e}", path.display())))?
        {
            let entry = entry.map_err(|e| Error::InvalidArgument(format!("project {}: {e}", path.display())))?;
            let p = entry.path();
            if let Some(f) = format_of(&p) {
                if p.is_file() {
                    files.push((p, f));
                    if files.len() > MAX_PROJECT_FILES {
                        return Err(Error::InvalidArgument(format!(
                            "project {}: more than {MAX_PROJECT_FILES} project files (limit MAX_PROJECT_FILES)",
                            path.display()
                        )));
                    }
                }
            }
        }
        if files.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "project {}: the directory holds no .toml, .yaml or .yml file",
                path.display()
            )));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut p = Project::default();
        for (file, format) in files {
            load_file(&mut p, &file, format)?;
        }
        Ok(p)
    }

    /// A project from what a caller of a binding or a command line hands over: a path to an existing file or
    /// directory ([`from_path`](Self::from_path)), else TOML or YAML text ([`from_str_any`](Self::from_str_any)).
    pub fn from_path_or_text(arg: &str) -> Result<Project> {
        if !arg.contains('\n') && Path::new(arg).exists() {
            Project::from_path(Path::new(arg))
        } else {
            Project::from_str_any(arg)
        }
    }

    /// The project as text in `format`: `toml` or `yaml`.
    pub fn to_text(&self, format: &str) -> Result<String> {
        match format.to_ascii_lowercase().as_str() {
            "toml" => self.to_toml(),
            "yaml" | "yml" => self.to_yaml(),
            other => Err(Error::InvalidArgument(format!("unknown project format `{other}` (toml or yaml)"))),
        }
    }

    /// Parses a project from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Project> {
        parse(text, Format::Toml, None)
    }

    /// Parses a project from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Project> {
        parse(text, Format::Yaml, None)
    }

    /// Parses a project from text that is TOML or YAML: TOML when it parses as TOML, else YAML (for callers
    /// handed "a path or a string"). A text that is neither reports the TOML error.
    pub fn from_str_any(text: &str) -> Result<Project> {
        match parse(text, Format::Toml, None) {
            Ok(p) => Ok(p),
            Err(toml_error) if toml::Deserializer::parse(text).is_err() => parse(text, Format::Yaml, None).map_err(
                |yaml_error| {
                    if looks_like_yaml(text) {
                        yaml_error
                    } else {
                        toml_error
                    }
                },
            ),
            Err(e) => Err(e),
        }
    }
}

fn looks_like_yaml(text: &str) -> bool {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).is_some_and(|l| {
        !l.starts_with('[') && !l.contains('=') && (l.ends_with(':') || l.contains(": ") || l.starts_with("---"))
    })
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "toml" => Some(Format::Toml),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

fn load_file(into: &mut Project, path: &Path, format: Format) -> Result<()> {
    let file = path.display().to_string();
    let size = std::fs::metadata(path).map_err(|e| Error::InvalidArgument(format!("{file}: {e}")))?.len();
    if size > MAX_PROJECT_FILE_BYTES as u64 {
        return Err(too_large(Some(&file), size as usize));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::InvalidArgument(format!("{file}: {e}")))?;
    let part = parse(&text, format, Some(&file))?;
    merge(into, part)
}

fn too_large(file: Option<&str>, size: usize) -> Error {
    Error::InvalidArgument(format!(
        "{}the project file is {size} bytes, larger than {MAX_PROJECT_FILE_BYTES} (limit MAX_PROJECT_FILE_BYTES)",
        file.map(|f| format!("{f}: ")).unwrap_or_default()
    ))
}

/// `file: path` (or the path alone).
pub(super) fn located(file: Option<&str>, path: &str) -> String {
    match file {
        Some(f) => format!("{f}: {path}"),
        None => path.to_string(),
    }
}

/// One file's content.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    entities: Named<EntitySpec>,
    #[serde(default)]
    sources: Named<SourceDefinition>,
    #[serde(default)]
    static_segments: Named<StaticSegmentSpec>,
    #[serde(default)]
    segments: Named<SegmentSpec>,
    #[serde(default)]
    templates: Named<TemplateSpec>,
    #[serde(default)]
    workflows: Named<WorkflowSpec>,
    #[serde(default)]
    schedules: Named<ScheduleSpec>,
}

fn parse(text: &str, format: Format, file: Option<&str>) -> Result<Project> {
    if text.len() > MAX_PROJECT_FILE_BYTES {
        return Err(too_large(file, text.len()));
    }
    let doc: Document = match format {
        Format::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| Error::definition(located(file, "project"), toml_message(text, e.message(), e.span())))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                Error::definition(located(file, &root_path(&path)), toml_message(text, inner.message(), inner.span()))
            })?
        }
        Format::Yaml => {
            if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
                Document::default()
            } else {
                let de = serde_yaml_ng::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let path = e.path().to_string();
                    Error::definition(located(file, &root_path(&path)), yaml_message(&e.into_inner().to_string()))
                })?
            }
        }
    };
    let mut p = Project::default();
    let mut origins = vec![];
    macro_rules! take {
        ($field:ident, $kind:expr) => {
            for (_, spec) in doc.$field.0 {
                origins.push(($kind, spec.name.clone()));
                p.$field.push(spec);
            }
        };
    }
    take!(entities, ObjectKind::Entity);
    take!(sources, ObjectKind::Source);
    take!(static_segments, ObjectKind::StaticSegment);
    take!(segments, ObjectKind::Segment);
    take!(templates, ObjectKind::Template);
    take!(workflows, ObjectKind::Workflow);
    take!(schedules, ObjectKind::Schedule);
    if p.len() > MAX_PROJECT_OBJECTS {
        return Err(too_many(file));
    }
    if let Some(f) = file {
        for key in origins {
            p.origins.insert(key, f.to_string());
        }
    }
    check(&p, file)?;
    Ok(p)
}

fn too_many(file: Option<&str>) -> Error {
    Error::InvalidArgument(format!(
        "{}the project holds more than {MAX_PROJECT_OBJECTS} objects (limit MAX_PROJECT_OBJECTS)",
        file.map(|f| format!("{f}: ")).unwrap_or_default()
    ))
}

/// A serde error's message without a leading `a.b.c: ` path (YAML errors carry their own) and location.
fn bare(message: &str) -> String {
    let m = match message.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && !p.contains(' ') => rest,
        _ => message,
    };
    match m.rfind(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m.to_string(),
    }
}

/// A YAML error's message without its own leading path (the path is given separately), keeping its location.
fn yaml_message(message: &str) -> String {
    match message.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && !p.contains(' ') => rest.to_string(),
        _ => message.to_string(),
    }
}

fn root_path(path: &str) -> String {
    if path.is_empty() || path == "." {
        "project".into()
    } else {
        path.to_string()
    }
}

/// A TOML error's message with its line number (the full `Display` is a multi-line snippet).
fn toml_message(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let message = message.trim_end();
    match span {
        Some(s) if s.start <= text.len() => {
            let line = text.as_bytes()[..s.start].iter().filter(|&&b| b == b'\n').count() + 1;
            format!("{message} (line {line})")
        }
        _ => message.to_string(),
    }
}

/// Checks each object on its own, before any workspace sees it: entity definitions are valid, segment rules
/// parse within the rule limits, source configs hold no inline secret. Errors carry the file and field path.
fn check(p: &Project, file: Option<&str>) -> Result<()> {
    let file_of = |kind: ObjectKind, name: &str| p.origin(kind, name).map(str::to_string).or(file.map(str::to_string));
    for e in &p.entities {
        let f = file_of(ObjectKind::Entity, &e.name);
        e.clone()
            .into_entity()
            .and_then(|x| x.normalized())
            .map_err(|err| in_file(err, f.as_deref(), &format!("entities.{}", e.name)))?;
    }
    for s in &p.segments {
        let f = file_of(ObjectKind::Segment, &s.name);
        if let Err(err) = s.clone().into_definition() {
            let here = format!("segments.{}.rule", s.name);
            return Err(match err {
                Error::Rule { path, message } => {
                    let sub = match path.as_str() {
                        "" | "<root>" => here,
                        p if p.starts_with('[') => format!("{here}{p}"),
                        p => format!("{here}.{p}"),
                    };
                    Error::definition(located(f.as_deref(), &sub), message)
                }
                other => in_file(other, f.as_deref(), &format!("segments.{}", s.name)),
            });
        }
    }
    for s in &p.sources {
        let f = file_of(ObjectKind::Source, &s.name);
        check_no_inline_secrets(&s.config).map_err(|err| match err {
            Error::Definition { path, message } => {
                let rest = path.strip_prefix("source").unwrap_or(&path);
                Error::definition(located(f.as_deref(), &format!("sources.{}.config{rest}", s.name)), message)
            }
            other => other,
        })?;
    }
    Ok(())
}

/// `err` with the file in front of its path (a definition error without a path gets `fallback`).
pub(super) fn in_file(err: Error, file: Option<&str>, fallback: &str) -> Error {
    let Some(f) = file else { return err };
    match err {
        Error::Definition { path, message } => Error::Definition { path: format!("{f}: {path}"), message },
        Error::Rule { path, message } => Error::Rule { path: format!("{f}: {fallback}: {path}"), message },
        Error::IncompatibleChange { path, message } => {
            Error::IncompatibleChange { path: format!("{f}: {path}"), message }
        }
        other => other,
    }
}

/// Adds `part` to `into`; a name defined twice (names compared as the workspace does: NFC, ignoring case) is an
/// error naming both files.
fn merge(into: &mut Project, part: Project) -> Result<()> {
    let mut seen: HashMap<(ObjectKind, String), (String, String)> = HashMap::new();
    for kind in ObjectKind::ALL {
        for n in into.names(kind) {
            let file = into.origin(kind, &n).unwrap_or("<string>").to_string();
            seen.insert((kind, name_fold(&normalize_name(&n))), (n, file));
        }
    }
    for kind in ObjectKind::ALL {
        for n in part.names(kind) {
            let file = part.origin(kind, &n).unwrap_or("<string>").to_string();
            if let Some((other, other_file)) = seen.get(&(kind, name_fold(&normalize_name(&n)))) {
                return Err(Error::definition(
                    format!("{file}: {}.{n}", kind.table()),
                    format!("{kind} `{n}` is also defined as `{other}` in {other_file}"),
                ));
            }
        }
    }
    let Project { entities, sources, static_segments, segments, templates, workflows, schedules, origins } = part;
    into.entities.extend(entities);
    into.sources.extend(sources);
    into.static_segments.extend(static_segments);
    into.segments.extend(segments);
    into.templates.extend(templates);
    into.workflows.extend(workflows);
    into.schedules.extend(schedules);
    into.origins.extend(origins);
    if into.len() > MAX_PROJECT_OBJECTS {
        return Err(too_many(None));
    }
    Ok(())
}

/// A spec type that a project keys by name.
pub(super) trait NamedSpec {
    /// The fields it accepts, when its own deserializer does not refuse unknown ones.
    const FIELDS: Option<&'static [&'static str]> = None;
}
impl NamedSpec for EntitySpec {}
impl NamedSpec for SourceDefinition {
    const FIELDS: Option<&'static [&'static str]> = Some(&["entity", "config", "mapping", "mode"]);
}
impl NamedSpec for StaticSegmentSpec {}
impl NamedSpec for SegmentSpec {}
impl NamedSpec for TemplateSpec {}
impl NamedSpec for WorkflowSpec {}
impl NamedSpec for ScheduleSpec {}

/// A table of name → `T`, each `T` deserialized with the key as its `name`, in the table's order.
pub(super) struct Named<T>(pub Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de> + NamedSpec> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + NamedSpec> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of name → definition")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Named<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let value = map.next_value_seed(WithName::<T> { name: name.clone(), _t: PhantomData })?;
                    out.push((name, value));
                    if out.len() > MAX_PROJECT_OBJECTS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_PROJECT_OBJECTS} objects (limit MAX_PROJECT_OBJECTS)"
                        )));
                    }
                }
                Ok(Named(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// Deserializes a `T` from a table, adding `name`.
struct WithName<T> {
    name: String,
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de> + NamedSpec> DeserializeSeed<'de> for WithName<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<T, D::Error> {
        T::deserialize(Injecting { inner: d, name: self.name, fields: T::FIELDS })
    }
}

/// A deserializer of a table that yields a `name` entry first.
struct Injecting<D> {
    inner: D,
    name: String,
    fields: Option<&'static [&'static str]>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Injecting<D> {
    type Error = D::Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, D::Error> {
        self.inner.deserialize_map(Wrap { v, name: self.name, fields: self.fields })
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, D::Error> {
        self.deserialize_any(v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, D::Error> {
        self.deserialize_any(v)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct enum identifier ignored_any
    }
}

struct Wrap<V> {
    v: V,
    name: String,
    fields: Option<&'static [&'static str]>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table (the definition of `")?;
        f.write_str(&self.name)?;
        f.write_str("`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<V::Value, A::Error> {
        self.v.visit_map(WithNameMap { inner: map, name: self.name, fields: self.fields, state: NameState::Pending })
    }
}

#[derive(PartialEq)]
enum NameState {
    Pending,
    KeyGiven,
    Done,
}

struct WithNameMap<A> {
    inner: A,
    name: String,
    fields: Option<&'static [&'static str]>,
    state: NameState,
}

impl<'de, A: MapAccess<'de>> WithNameMap<A> {
    /// `e` (about the key just read) raised from inside that key's value, so a path-tracking deserializer puts
    /// the key in the error's path (`entities.user.colour: unknown field`, not `entities.user: …`).
    fn at_key(&mut self, e: A::Error) -> A::Error {
        struct Fail(String);
        impl<'de> DeserializeSeed<'de> for Fail {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, _d: D) -> std::result::Result<(), D::Error> {
                Err(de::Error::custom(self.0))
            }
        }
        match self.inner.next_value_seed(Fail(bare(&e.to_string()))) {
            Err(inner) => inner,
            Ok(()) => e,
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithNameMap<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, A::Error> {
        if self.state == NameState::Pending {
            self.state = NameState::KeyGiven;
            return seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer("name")).map(Some);
        }
        loop {
            let Some(key) = self.inner.next_key::<String>()? else { return Ok(None) };
            if key == "name" {
                let given: String = self.inner.next_value()?;
                if normalize_name(&given) != normalize_name(&self.name) {
                    return Err(de::Error::custom(format!(
                        "`name` is `{given}` but the table key is `{}`; drop `name` (the key is the name)",
                        self.name
                    )));
                }
                continue;
            }
            if let Some(fields) = self.fields {
                if !fields.contains(&key.as_str()) {
                    let e: A::Error = de::Error::unknown_field(&key, fields);
                    return Err(self.at_key(e));
                }
            }
            return match seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer(key)) {
                Ok(k) => Ok(Some(k)),
                Err(e) => Err(self.at_key(e)),
            };
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> std::result::Result<S::Value, A::Error> {
        if self.state == NameState::KeyGiven {
            self.state = NameState::Done;
            return seed.deserialize(IntoDeserializer::<A::Error>::into_deserializer(self.name.clone()));
        }
        self.inner.next_value_seed(seed)
    }
}
