//! Action implementations for segkit workflows.
//!
//! An [`Action`] performs one [`Delivery`] and classifies the [`Outcome`]. Families are behind cargo
//! features:
//!
//! - `jsonl` (default): [`JsonlFileAction`] appends each delivery as one JSON line to a local file — an
//!   audit log, a hand-off to another process, or a test double for real channels.

pub use segkit::action::{Action, Delivery, Outcome};

#[cfg(feature = "jsonl")]
mod jsonl;

#[cfg(feature = "jsonl")]
pub use jsonl::JsonlFileAction;
