//! API keys, roles and the audit log: the access model of the operator surface (the `segkit` binary's REST API).
//!
//! An API key is 32 random bytes, shown once when it is created ([`NewApiKey::secret`], `sk_` and 64 hex
//! digits) and stored only as its SHA-256 hash: a key is high-entropy, so a fast hash is enough to make the
//! stored value useless to a reader of the catalog (passwords, which are guessable, would need argon2). Each key
//! has a [`Role`]; the role decides what its holder may do ([`Role::can_write`], [`Role::can_read_pii`],
//! [`Role::can_admin`]).
//!
//! The audit log ([`Workspace::audit`](crate::Workspace::audit)) records every change and every read of `pii`
//! values unmasked: who (the key's name), what (an action and its target), when (the workspace clock). It is
//! the `segkit.audit` system table (see [`crate::monitoring`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::limits::MAX_PRINCIPAL_NAME_BYTES;

/// What a key's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads (with `pii` masked).
    Viewer,
    /// Reads (with `pii` masked) and changes definitions, runs syncs, evaluations and workflows.
    Editor,
    /// Everything: also keys, and `pii` values unmasked.
    Admin,
}

impl Role {
    /// Every role, least privileged first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    /// The lower-case name (`admin`, `editor`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// May change definitions and start work (syncs, evaluations, triggers).
    pub fn can_write(self) -> bool {
        self >= Role::Editor
    }

    /// May see `pii` attributes unmasked (the `pii` permission; only admins hold it).
    pub fn can_read_pii(self) -> bool {
        self == Role::Admin
    }

    /// May manage API keys.
    pub fn can_admin(self) -> bool {
        self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            Error::InvalidArgument(format!("unknown role `{s}` (expected one of admin, editor, viewer)"))
        })
    }
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public id of the key (`key_` and 16 hex digits), used to revoke it and in tokens.
    pub id: String,
    /// Who holds it (a person or a service); the `actor` of its audit rows.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (RFC 3339, workspace clock).
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// A key just created: the stored key and its secret, which is not stored and cannot be shown again.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The secret to hand to its holder (`sk_` and 64 hex digits).
    pub secret: String,
}

/// Which audit rows [`Workspace::audit_entries`](crate::Workspace::audit_entries) selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action (`segment.update`, `pii.read`, …).
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only ids greater than this (a page after the last id seen).
    pub after_id: Option<i64>,
    /// Only ids less than this (a page before the last id seen, newest first).
    pub before_id: Option<i64>,
    /// Newest (highest id) first instead of oldest first.
    pub newest_first: bool,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, increasing.
    pub id: i64,
    /// When (RFC 3339, workspace clock).
    pub at: String,
    /// Who: the name of the key used, or `cli` for the command line.
    pub actor: String,
    /// What was done, e.g. `segment.update`, `key.create`, `pii.read`.
    pub action: String,
    /// What it was done to, e.g. the segment's name.
    pub target: String,
    /// More detail, if any (never a secret or a `pii` value).
    pub detail: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a key's secret: SHA-256, hex.
pub(crate) fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// 32 bytes from the operating system's random number generator (for keys and signing secrets).
pub fn random_bytes() -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    getrandom::fill(&mut out)
        .map_err(|e| Error::InvalidArgument(format!("the operating system's random number generator failed: {e}")))?;
    Ok(out)
}

/// A new random secret and a new random key id.
pub(crate) fn new_secret() -> Result<(String, String)> {
    let secret = random_bytes()?;
    let id = random_bytes()?;
    Ok((format!("sk_{}", hex(&secret)), format!("key_{}", hex(&id[..8]))))
}

/// Checks the name of a key's holder: 1 to [`MAX_PRINCIPAL_NAME_BYTES`] bytes, no control characters.
pub(crate) fn check_principal(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::InvalidArgument("key name: must not be empty".into()));
    }
    if name.len() > MAX_PRINCIPAL_NAME_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key name: {} bytes, longer than {MAX_PRINCIPAL_NAME_BYTES} (limit MAX_PRINCIPAL_NAME_BYTES)",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument("key name: must not contain control characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order_permissions() {
        assert_eq!("editor".parse::<Role>().unwrap(), Role::Editor);
        let e = "owner".parse::<Role>().unwrap_err();
        assert!(e.to_string().contains("unknown role `owner`"), "{e}");
        assert!(!Role::Viewer.can_write() && Role::Editor.can_write() && Role::Admin.can_write());
        assert!(!Role::Editor.can_read_pii() && Role::Admin.can_read_pii());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, ida) = new_secret().unwrap();
        let (b, _) = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(ida.len(), 4 + 16);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert!(check_principal("ci\u{7}").is_err());
        assert!(check_principal(" ").is_err());
        assert!(check_principal("alice@example.com").is_ok());
    }
}
