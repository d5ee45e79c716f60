//! The `segkit` binary's library: the command line ([`cli`]), the REST API ([`api`]), its authentication
//! ([`auth`]) and the one mapping of core's errors to exit codes and HTTP statuses ([`error`]).
//!
//! It has no logic of its own: definitions are parsed with core's request model ([`segkit::spec`]), results
//! encoded with [`segkit::encode`], and everything else is a call on a [`segkit::Workspace`].

#![warn(missing_docs)]
// `Problem` (the RFC 9457 body every failed request answers with) is the error type of handlers; it is made
// once per failed request and returned straight to axum, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod error;
pub mod tls;

/// Opens the workspace at `dir` with every built-in connector and action family (what `segkit` itself uses).
pub async fn open_workspace(dir: &std::path::Path) -> segkit::Result<segkit::Workspace> {
    open_workspace_with(dir, segkit::WorkspaceOptions::default()).await
}

/// [`open_workspace`] with `options` (e.g. [`segkit::WorkspaceOptions::durable_commits`]: every catalog commit,
/// and every Parquet file it references, synced to disk before it returns); the built-in connector and action
/// families replace any factories `options` name.
pub async fn open_workspace_with(
    dir: &std::path::Path,
    options: segkit::WorkspaceOptions,
) -> segkit::Result<segkit::Workspace> {
    let options = options.source_factory(segkit_connectors::registry()).action_factory(segkit_actions::registry());
    segkit::Workspace::open_with(dir, options).await
}
