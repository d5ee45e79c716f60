//! Helpers every family shares: secrets from `env:` references and common outcomes.

use std::fmt;

use segkit::{Error, Result};

use crate::Outcome;

/// A secret resolved from an `env:NAME` reference; Debug shows only the reference.
#[derive(Clone)]
pub struct Secret {
    reference: String,
    value: String,
}

impl Secret {
    /// Resolves `value`, which must be an `env:NAME` reference; `field` names the config field in errors.
    pub fn resolve(field: &str, value: &str) -> Result<Secret> {
        if !value.starts_with("env:") {
            return Err(crate::common::definition(
                format!("action.{field}"),
                format!(
                    "`{field}` is a secret and must be a reference such as \"env:MY_{}\", not inline",
                    field.to_ascii_uppercase()
                ),
            ));
        }
        let resolved = segkit::action::resolve_secret(field, value)?;
        if resolved.is_empty() {
            return Err(crate::common::definition(format!("action.{field}"), format!("{value} is empty")));
        }
        Ok(Secret { reference: value.to_string(), value: resolved })
    }

    /// The secret's value (never print it).
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} = ***)", self.reference)
    }
}

/// A `Permanent` outcome for a part the delivery lacks.
pub fn missing_part(kind: &str, part: &str) -> Outcome {
    Outcome::Permanent { reason: format!("{kind}: the delivery has no `{part}` part (check the step's template)") }
}

/// An [`Error::Definition`] at `path` (e.g. `action.timeout_ms`).
pub fn definition(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Definition { path: path.into(), message: message.into() }
}
