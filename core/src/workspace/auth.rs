//! API keys and the audit log (see [`crate::auth`]).

use super::Workspace;
use crate::auth::{check_principal, hash_secret, new_secret, ApiKey, AuditEntry, AuditFilter, NewApiKey, Role};
use crate::error::{Error, Result};
use crate::limits::{MAX_API_KEYS, MAX_AUDIT_DETAIL_BYTES};

impl Workspace {
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
    pub fn authenticate_api_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        if secret.len() > 256 {
            return Ok(None);
        }
        self.inner.catalog.api_key_by_hash(&hash_secret(secret))
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
}
