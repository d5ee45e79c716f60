//! Message templates rendered with minijinja in a sandbox: no file loader, no includes, strict undefined
//! variables, a fuel budget per render ([`MAX_TEMPLATE_FUEL`]), bounded text ([`MAX_TEMPLATE_BYTES`]) and
//! output ([`MAX_RENDERED_BYTES`]), and HTML auto-escaping for the `html` part.
//!
//! The context of a render has `entity` (the entity's attributes by name), `key` (the entity key as text),
//! `workflow` and `step` (names, empty in previews) and `segment` (the triggering segment, if any).
//!
//! ```
//! use segkit::workflow::template::{check_parts, render_parts};
//! let parts = [("html".to_string(), "<p>Hi {{ entity.name }}</p>".to_string())].into_iter().collect();
//! check_parts("t", &parts, Some(&["name"])).unwrap();
//! let ctx = serde_json::json!({"entity": {"name": "<b>Ann</b>"}, "key": "1"});
//! assert_eq!(render_parts(&parts, &ctx).unwrap()["html"], "<p>Hi &lt;b&gt;Ann&lt;&#x2f;b&gt;</p>");
//! let e = check_parts("t", &parts, Some(&["email"])).unwrap_err();
//! assert!(e.to_string().contains("unknown attribute `name`"), "{e}");
//! ```

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use crate::error::{Error, Result};
use crate::limits::{MAX_RENDERED_BYTES, MAX_TEMPLATE_BYTES, MAX_TEMPLATE_FUEL, MAX_TEMPLATE_PARTS};

/// The top-level names a template may use.
pub const CONTEXT_NAMES: &[&str] = &["entity", "key", "workflow", "step", "segment"];

fn environment<'a>() -> Environment<'a> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(MAX_TEMPLATE_FUEL));
    env.set_recursion_limit(32);
    env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
    env
}

/// Checks a template's parts at definition: their number and sizes, their syntax, and — when the entity's
/// attribute names are known (`attributes`) — that every `entity.<name>` they read is an attribute and every
/// top-level variable is one of [`CONTEXT_NAMES`]. `name` is the template's name for error paths.
pub fn check_parts(name: &str, parts: &BTreeMap<String, String>, attributes: Option<&[&str]>) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::definition(format!("template {name}.parts"), "a template needs at least one part"));
    }
    if parts.len() > MAX_TEMPLATE_PARTS {
        return Err(Error::definition(
            format!("template {name}.parts"),
            format!("{} parts, more than {MAX_TEMPLATE_PARTS} (limit MAX_TEMPLATE_PARTS)", parts.len()),
        ));
    }
    let env = environment();
    for (part, text) in parts {
        let path = format!("template {name}.parts.{part}");
        if part.is_empty() || part.len() > 64 || !part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::definition(path, "part names are 1 to 64 ASCII letters, digits or `_`"));
        }
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(Error::definition(
                path,
                format!("{} bytes, longer than {MAX_TEMPLATE_BYTES} (limit MAX_TEMPLATE_BYTES)", text.len()),
            ));
        }
        let t =
            env.template_from_named_str(part.as_str(), text).map_err(|e| Error::definition(&path, e.to_string()))?;
        for var in t.undeclared_variables(true) {
            let (top, rest) = match var.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (var.as_str(), None),
            };
            if env.globals().any(|(g, _)| g == top) {
                continue; // a built-in function such as `range`
            }
            if !CONTEXT_NAMES.contains(&top) {
                return Err(Error::definition(
                    path,
                    format!("unknown variable `{top}` (a template sees {})", CONTEXT_NAMES.join(", ")),
                ));
            }
            if let (Some(attrs), "entity", Some(attr)) = (attributes, top, rest) {
                let attr = attr.split('.').next().unwrap_or(attr);
                if !attrs.contains(&attr) {
                    let hint = crate::error::hint(attr, attrs.iter().copied());
                    return Err(Error::definition(path, format!("unknown attribute `{attr}`{hint}")));
                }
            }
        }
    }
    Ok(())
}

/// Renders every part with `context`. A render error (an undefined variable, fuel exhausted, output too long)
/// is [`Error::InvalidArgument`] naming the part; for a delivery it is a permanent failure.
pub fn render_parts(parts: &BTreeMap<String, String>, context: &serde_json::Value) -> Result<BTreeMap<String, String>> {
    Compiled::new(parts)?.render(context)
}

/// A template's parts parsed once, to render for many entities (a dispatch pass compiles each template it uses
/// once, not once per delivery). Renders exactly as [`render_parts`] does.
///
/// ```
/// use segkit::workflow::template::Compiled;
/// let parts = [("text".to_string(), "Hi {{ entity.name }}".to_string())].into_iter().collect();
/// let t = Compiled::new(&parts).unwrap();
/// assert_eq!(t.render(serde_json::json!({"entity": {"name": "Ann"}})).unwrap()["text"], "Hi Ann");
/// assert!(t.render(serde_json::json!({"entity": {}})).is_err());
/// ```
pub struct Compiled {
    env: Environment<'static>,
    parts: Vec<String>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("parts", &self.parts).finish()
    }
}

impl Compiled {
    /// Parses every part (in the sandboxed environment of [`check_parts`]); a syntax error is
    /// [`Error::InvalidArgument`] naming the part.
    pub fn new(parts: &BTreeMap<String, String>) -> Result<Compiled> {
        let mut env = environment();
        for (part, text) in parts {
            env.add_template_owned(part.clone(), text.clone())
                .map_err(|e| Error::InvalidArgument(format!("template part `{part}`: {e}")))?;
        }
        Ok(Compiled { env, parts: parts.keys().cloned().collect() })
    }

    /// Renders every part with `context` (anything serializable: a borrowed struct saves copying the
    /// entity's attributes into a JSON value first).
    pub fn render<S: serde::Serialize>(&self, context: S) -> Result<BTreeMap<String, String>> {
        let ctx = minijinja::Value::from_serialize(&context);
        let mut out = BTreeMap::new();
        for part in &self.parts {
            let t = self
                .env
                .get_template(part)
                .map_err(|e| Error::InvalidArgument(format!("template part `{part}`: {e}")))?;
            let s = t.render(&ctx).map_err(|e| Error::InvalidArgument(format!("template part `{part}`: {e}")))?;
            if s.len() > MAX_RENDERED_BYTES {
                return Err(Error::InvalidArgument(format!(
                    "template part `{part}` rendered {} bytes, more than {MAX_RENDERED_BYTES} (limit MAX_RENDERED_BYTES)",
                    s.len()
                )));
            }
            out.insert(part.clone(), s);
        }
        Ok(out)
    }
}
