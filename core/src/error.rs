//! The one error type of segkit.
//!
//! Every fallible function returns [`Result<T>`](crate::Result). Errors about definitions and rules carry
//! the *path* of the offending item (`entity user.attribute age`, `rule and[1].or[0]`), so a person can
//! find it without reading code. Bindings map [`Error::kind`] to their own exception classes.

use std::fmt;

/// Boxed cause used by plugin errors (sources, actions) written outside segkit.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in segkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A definition (entity, attribute, link, segment, mapping) is invalid.
    #[error("invalid definition of {path}: {message}")]
    Definition {
        /// Where the problem is, e.g. `entity user.attribute age`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A change to an existing definition would break stored data or dependants.
    #[error("incompatible change to {path}: {message}")]
    IncompatibleChange {
        /// Where the problem is.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A named object does not exist.
    #[error("{kind} `{name}` not found{hint}")]
    NotFound {
        /// What kind of object (entity, segment, run, attribute).
        kind: &'static str,
        /// The name that was asked for.
        name: String,
        /// A suggestion such as ` (did you mean `age`?)`, or empty.
        hint: Hint,
    },
    /// A rule does not parse or does not type-check.
    #[error("rule error at {path}: {message}")]
    Rule {
        /// Path into the rule tree, e.g. `and[1].or[0].value`.
        path: String,
        /// What is wrong, with a suggestion where one exists.
        message: String,
    },
    /// Ingestion failed as a whole (as opposed to single rows, which are quarantined).
    #[error("ingest into `{entity}` failed: {message}")]
    Ingest {
        /// The target entity.
        entity: String,
        /// What went wrong.
        message: String,
    },
    /// A source (connector) failed.
    #[error("source `{source_name}` failed: {message}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        message: String,
        /// The underlying cause, if any.
        #[source]
        cause: Option<BoxError>,
    },
    /// Another writer committed first; retry the operation.
    #[error("concurrent modification of {what}: {message}")]
    Conflict {
        /// What was being modified.
        what: String,
        /// Details.
        message: String,
    },
    /// An operation was cancelled (a cancellation token fired, Ctrl-C, an aborted signal) before it committed;
    /// nothing it did is visible.
    #[error("{what} was cancelled; nothing was committed")]
    Cancelled {
        /// What was cancelled, e.g. `sync of source `orders``.
        what: String,
    },
    /// An argument is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The catalog database failed (a busy or locked catalog is [`Error::Conflict`] instead: retry it).
    ///
    /// The cause is opaque on purpose: the catalog's storage engine is not part of segkit's API.
    #[error("catalog error: {message}")]
    Catalog {
        /// What went wrong.
        message: String,
        /// The underlying cause, if any.
        #[source]
        cause: Option<BoxError>,
    },
    /// Arrow failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// DataFusion failed.
    #[error("query engine error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Parquet reading or writing failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The object store failed.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Local I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation failed.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias with segkit's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable category of an error, used by the bindings to pick an exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Definition`] and [`Error::IncompatibleChange`].
    Definition,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::Rule`].
    Rule,
    /// [`Error::Ingest`] and [`Error::Source`].
    Ingest,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::InvalidArgument`].
    InvalidArgument,
    /// Catalog, object store, Parquet and I/O failures.
    Storage,
    /// Arrow, DataFusion and JSON failures.
    Engine,
    /// [`Error::Cancelled`].
    Cancelled,
}

impl ErrorKind {
    /// Lower-case name, e.g. `"rule"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Definition => "definition",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Rule => "rule",
            ErrorKind::Ingest => "ingest",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Storage => "storage",
            ErrorKind::Engine => "engine",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Definition { .. } | Error::IncompatibleChange { .. } => ErrorKind::Definition,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Rule { .. } => ErrorKind::Rule,
            Error::Ingest { .. } | Error::Source { .. } => ErrorKind::Ingest,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::Catalog { .. } | Error::ObjectStore(_) | Error::Parquet(_) | Error::Io(_) => ErrorKind::Storage,
            Error::Arrow(_) | Error::DataFusion(_) | Error::Json(_) => ErrorKind::Engine,
        }
    }

    /// The message of this error followed by its causes, outermost first.
    pub fn chain(&self) -> Vec<String> {
        let mut out = vec![self.to_string()];
        let mut cur = std::error::Error::source(self);
        while let Some(e) = cur {
            let s = e.to_string();
            if out.last() != Some(&s) {
                out.push(s);
            }
            cur = e.source();
        }
        out
    }

    pub(crate) fn definition(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Definition { path: path.into(), message: message.into() }
    }

    pub(crate) fn rule(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Rule { path: path.into(), message: message.into() }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into(), hint: Hint::default() }
    }

    /// A [`Error::NotFound`] with a "did you mean" hint drawn from the names that do exist.
    pub(crate) fn not_found_among<'a>(
        kind: &'static str,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Error::NotFound { kind, name: name.to_string(), hint: hint(name, candidates) }
    }

    pub(crate) fn ingest(entity: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Ingest { entity: entity.into(), message: message.into() }
    }

    /// Wraps an arbitrary error as a failure of the named source (for connector authors).
    pub fn source_error(source_name: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        let cause = cause.into();
        Error::Source { source_name: source_name.into(), message: cause.to_string(), cause: Some(cause) }
    }
}

/// An optional "did you mean" suggestion attached to [`Error::NotFound`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hint(pub Option<String>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, " (did you mean `{s}`?)"),
            None => Ok(()),
        }
    }
}

/// A ` (did you mean `x`?)` suffix for messages (empty when nothing is close), rendered by [`Hint`]'s Display.
pub(crate) fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Hint {
    Hint(suggest(name, candidates))
}

/// The closest candidate to `name` among `candidates`, if one is close enough to be a likely typo.
pub(crate) fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    // Unicode case folding and NFC, so non-ASCII names (`Straße`, `城市`) get hints too.
    let lower = crate::model::name_fold(name);
    let edits_allowed = (lower.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            let c_lower = crate::model::name_fold(c);
            (strsim::jaro_winkler(&lower, &c_lower), strsim::levenshtein(&lower, &c_lower), c)
        })
        .filter(|(score, edits, _)| *score >= 0.8 || *edits <= edits_allowed)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, _, c)| c.to_string())
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}
