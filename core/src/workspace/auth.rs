//! API keys and the audit log (see [`crate::auth`]).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::Workspace;
use crate::auth::{check_principal, hash_secret, new_secret, ApiKey, AuditEntry, AuditFilter, NewApiKey, Role};
use crate::catalog::IdempotencyRecord;
use crate::error::{Error, Result};
use crate::limits::{MAX_API_KEYS, MAX_AUDIT_DETAIL_BYTES, MAX_IDEMPOTENCY_ENTRIES};

/// Keys verified since `api_keys` last changed: by the SHA-256 of the presented secret (the secret itself is
/// never kept) and by id. Only successes are kept, at most [`MAX_API_KEYS`] of them (the most keys that can be
/// active), so an unknown secret always goes to the catalog and cannot grow the cache.
#[derive(Default)]
pub(super) struct AuthCache {
    /// `meta.auth_generation` when the entries were verified.
    generation: i64,
    by_secret: HashMap<[u8; 32], ApiKey>,
    by_id: HashMap<String, ApiKey>,
}

impl AuthCache {
    /// Forgets everything when the catalog's generation moved on.
    fn sync(&mut self, generation: i64) {
        if self.generation != generation {
            self.by_secret.clear();
            self.by_id.clear();
            self.generation = generation;
        }
    }
}

impl Workspace {
    fn auth_cache(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        self.inner.auth_cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The active (not revoked) key with id `id`, or `None`; verified keys are remembered in memory until any
    /// key changes (in this process or another: the catalog's `auth_generation` counter).
    pub fn active_api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let generation = self.inner.catalog.auth_generation()?;
        {
            let mut c = self.auth_cache();
            c.sync(generation);
            if let Some(k) = c.by_id.get(id) {
                return Ok(Some(k.clone()));
            }
        }
        let key = self.inner.catalog.api_key(id)?.filter(|k| k.revoked_at.is_none());
        if let Some(k) = &key {
            let mut c = self.auth_cache();
            // Kept only when no key changed since the generation was read (else the next call reads again).
            if c.generation == generation {
                if c.by_id.len() >= MAX_API_KEYS {
                    c.by_id.clear();
                }
                c.by_id.insert(k.id.clone(), k.clone());
            }
        }
        Ok(key)
    }

    /// Creates an API key for `name` with `role`; `actor` (who asked) goes into the audit log. The secret is in
    /// the result only: the catalog keeps its SHA-256 hash. At most [`MAX_API_KEYS`] keys are active at once.
    pub fn create_api_key(&self, name: &str, role: Role, actor: &str) -> Result<NewApiKey> {
        check_principal(name)?;
        let (secret, id) = new_secret()?;
        let key = ApiKey { id, name: name.to_string(), role, created_at: self.now().to_rfc3339(), revoked_at: None };
        let detail = format!("name={name} role={role}");
        self.inner.catalog.insert_api_key(
            &key,
            &hash_secret(&secret),
            MAX_API_KEYS,
            (&key.created_at, actor, "key.create", &key.id, Some(&detail)),
        )?;
        Ok(NewApiKey { key, secret })
    }

    /// Every API key (revoked ones too), oldest first; never their secrets.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.inner.catalog.api_keys()
    }

    /// An API key by id.
    pub fn api_key(&self, id: &str) -> Result<ApiKey> {
        self.inner.catalog.api_key(id)?.ok_or_else(|| Error::not_found("api key", id))
    }

    /// Revokes an API key (from now on it authenticates nothing) and returns it; revoking a revoked key changes
    /// nothing. `actor` goes into the audit log.
    pub fn revoke_api_key(&self, id: &str, actor: &str) -> Result<ApiKey> {
        let at = self.now().to_rfc3339();
        if !self.inner.catalog.revoke_api_key(id, &at, (&at, actor, "key.revoke", id, None))? {
            return Err(Error::not_found("api key", id));
        }
        self.api_key(id)
    }

    /// The active key whose secret is `secret`, or `None` (unknown or revoked: the caller cannot tell which).
    ///
    /// A verified key is remembered in memory by the SHA-256 of its secret until any key changes (created or
    /// revoked, by this process or another: the catalog's `auth_generation` counter is read on every call), so a
    /// repeated call costs one read of that counter instead of the lookup; an unknown secret is never remembered.
    pub fn authenticate_api_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        if secret.len() > 256 {
            return Ok(None);
        }
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let generation = self.inner.catalog.auth_generation()?;
        {
            let mut c = self.auth_cache();
            c.sync(generation);
            if let Some(k) = c.by_secret.get(&digest) {
                return Ok(Some(k.clone()));
            }
        }
        let key = self.inner.catalog.api_key_by_hash(&hash_secret(secret))?;
        if let Some(k) = &key {
            let mut c = self.auth_cache();
            if c.generation == generation {
                if c.by_secret.len() >= MAX_API_KEYS {
                    c.by_secret.clear();
                }
                c.by_secret.insert(digest, k.clone());
            }
        }
        Ok(key)
    }

    /// Appends a row to the audit log at the clock's now: `actor` did `action` to `target`. `detail` is cut at
    /// [`MAX_AUDIT_DETAIL_BYTES`]; it must never hold a secret or a `pii` value.
    pub fn audit(&self, actor: &str, action: &str, target: &str, detail: Option<&str>) -> Result<()> {
        let at = self.now().to_rfc3339();
        let detail = detail.map(|d| {
            let mut end = d.len().min(MAX_AUDIT_DETAIL_BYTES);
            while !d.is_char_boundary(end) {
                end -= 1;
            }
            &d[..end]
        });
        self.inner.catalog.append_audit((&at, actor, action, target, detail))
    }

    /// The newest `limit` rows of the audit log, oldest first (also the `segkit.audit` system table).
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.inner.catalog.audit_log(limit, true)
    }

    /// Audit rows matching `filter` (actor, action, target, an id range), oldest or newest first, at most `limit`.
    pub fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>> {
        self.inner.catalog.audit_entries(filter, limit)
    }

    /// The response kept for an idempotency `scope` (see [`keep_idempotency_record`](Self::keep_idempotency_record))
    /// if it was kept less than `ttl` ago (workspace clock).
    pub fn idempotency_record(&self, scope: &str, ttl: std::time::Duration) -> Result<Option<IdempotencyRecord>> {
        self.inner.catalog.idempotency_record(scope, self.idempotency_cutoff(ttl))
    }

    /// Keeps the response to the first request with an idempotency `scope` (the REST API's `Idempotency-Key`
    /// scoped by credentials and path) in the catalog, so a retry gets it again also after a restart; a record
    /// kept already for `scope` and younger than `ttl` stays. Records older than `ttl`, and the oldest beyond
    /// [`MAX_IDEMPOTENCY_ENTRIES`], are forgotten in the same transaction. `record.created_at` is set to now.
    pub fn keep_idempotency_record(
        &self,
        scope: &str,
        mut record: IdempotencyRecord,
        ttl: std::time::Duration,
    ) -> Result<()> {
        record.created_at = self.now().timestamp();
        self.inner.catalog.put_idempotency_record(scope, &record, self.idempotency_cutoff(ttl), MAX_IDEMPOTENCY_ENTRIES)
    }

    fn idempotency_cutoff(&self, ttl: std::time::Duration) -> i64 {
        self.now().timestamp().saturating_sub(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
    }
}
