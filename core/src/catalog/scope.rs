//! Transaction scopes: many catalog calls, made by ordinary workspace methods, committed as one SQLite transaction.
//!
//! [`Catalog::begin_scope`] opens a second connection to the catalog file and starts `BEGIN IMMEDIATE` on it. A
//! future run with [`TxScope::run`] sees that connection (through a task-local) in every [`Catalog::with`] of this
//! catalog, so `define_entity`, `define_segment`… read what the scope wrote before and write into the open
//! transaction. Code that opens its own transaction inside the scope gets a savepoint instead ([`Tx::begin`]).
//! Other tasks and processes keep using the catalog's own connection: they read the last commit (WAL snapshot
//! isolation) and their writes wait for the scope to end. Store files that a scoped call would delete are held
//! until the scope commits ([`Catalog::defer_delete`]) so a rollback never loses data the catalog still names.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::Catalog;
use crate::error::Result;

tokio::task_local! {
    static SCOPE: Arc<TxScope>;
}

/// An open catalog transaction that scoped catalog calls write into (see the module docs).
pub(crate) struct TxScope {
    /// The address of the catalog the scope belongs to (a process may have several workspaces).
    catalog: usize,
    pub(super) conn: Mutex<Connection>,
    /// Store files to delete once the transaction has committed.
    deferred: Mutex<Vec<String>>,
}

impl std::fmt::Debug for TxScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxScope").finish_non_exhaustive()
    }
}

/// The scope of `catalog` the current task runs in, if any.
pub(super) fn current(catalog: &Catalog) -> Option<Arc<TxScope>> {
    let id = catalog as *const Catalog as usize;
    SCOPE.try_with(|s| (s.catalog == id).then(|| s.clone())).ok().flatten()
}

impl TxScope {
    pub(super) fn begin(catalog: &Arc<Catalog>, path: &Path, busy: Duration) -> Result<Arc<TxScope>> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Arc::new(TxScope {
            catalog: Arc::as_ptr(catalog) as usize,
            conn: Mutex::new(conn),
            deferred: Mutex::new(Vec::new()),
        }))
    }

    /// Runs `f` with every catalog call of this scope's catalog going into the scope's transaction.
    pub(crate) async fn run<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        SCOPE.scope(self.clone(), f).await
    }

    fn exec(&self, sql: &str) -> Result<()> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).execute_batch(sql)?;
        Ok(())
    }

    /// Marks a point to come back to ([`rollback_to`](Self::rollback_to)).
    pub(crate) fn savepoint(&self) -> Result<()> {
        self.exec("SAVEPOINT segkit_scope_item")
    }

    /// Undoes everything since the last [`savepoint`](Self::savepoint), keeping what came before.
    pub(crate) fn rollback_to(&self) -> Result<()> {
        self.exec("ROLLBACK TO segkit_scope_item; RELEASE segkit_scope_item")
    }

    /// Keeps everything since the last [`savepoint`](Self::savepoint).
    pub(crate) fn release(&self) -> Result<()> {
        self.exec("RELEASE segkit_scope_item")
    }

    /// Commits the transaction; returns the store files whose deletion was held until now.
    pub(crate) fn commit(&self) -> Result<Vec<String>> {
        self.exec("COMMIT")?;
        Ok(std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Rolls the transaction back (also what dropping an uncommitted scope does); the held deletions are dropped.
    pub(crate) fn rollback(&self) -> Result<()> {
        self.deferred.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.exec("ROLLBACK")
    }
}

impl Catalog {
    /// When the current task runs in a scope of this catalog, holds `files` for deletion after its commit and
    /// returns true; otherwise returns false (the caller deletes them now).
    pub(crate) fn defer_delete(&self, files: &[String]) -> bool {
        match current(self) {
            Some(s) => {
                s.deferred.lock().unwrap_or_else(|p| p.into_inner()).extend(files.iter().cloned());
                true
            }
            None => false,
        }
    }
}

/// A transaction, or a savepoint when the connection is already in one (a scoped call).
pub(super) enum Tx<'a> {
    Top(rusqlite::Transaction<'a>),
    Nested(rusqlite::Savepoint<'a>),
}

impl<'a> Tx<'a> {
    /// Begins a transaction (`IMMEDIATE` when `immediate`), or a savepoint inside the open one.
    pub(super) fn begin(c: &'a mut Connection, immediate: bool) -> rusqlite::Result<Tx<'a>> {
        if c.is_autocommit() {
            let b = if immediate { TransactionBehavior::Immediate } else { TransactionBehavior::Deferred };
            Ok(Tx::Top(c.transaction_with_behavior(b)?))
        } else {
            Ok(Tx::Nested(c.savepoint()?))
        }
    }

    /// Commits (releases the savepoint).
    pub(super) fn commit(self) -> rusqlite::Result<()> {
        match self {
            Tx::Top(t) => t.commit(),
            Tx::Nested(s) => s.commit(),
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Tx::Top(t) => t,
            Tx::Nested(s) => s,
        }
    }
}
