//! Authentication of REST API callers: an API key (`Authorization: Bearer sk_…`) or a session token (an HS256
//! JWT from `POST /api/v1/auth/token`), and the [`Caller`] extractor that every protected handler takes.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use segkit::auth::{ApiKey, Role};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::error::Problem;

/// Who is calling: the key (directly or through a token) and its role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key's id.
    pub key_id: String,
    /// The key holder's name (the `actor` of audit rows).
    pub name: String,
    /// The key's role.
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller may change things.
    pub fn require_write(&self) -> Result<(), Problem> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("role `{}` may not change anything (needs editor or admin)", self.role)))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.role.can_admin() {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("role `{}` may not do this (needs admin)", self.role)))
        }
    }
}

impl From<ApiKey> for Caller {
    fn from(k: ApiKey) -> Self {
        Caller { key_id: k.id, name: k.name, role: k.role }
    }
}

/// The claims of a session token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The API key's id.
    sub: String,
    /// The key holder's name.
    name: String,
    /// The role when the token was issued (the key's current role is checked again on use).
    role: Role,
    /// Issued at (seconds since the epoch).
    iat: u64,
    /// Expires at (seconds since the epoch).
    exp: u64,
}

/// The HS256 keys that sign and check session tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// How long a token lives.
    pub ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a shared secret (at least 32 bytes).
    pub fn new(secret: &[u8], ttl: Duration) -> segkit::Result<Self> {
        if secret.len() < 32 {
            return Err(segkit::Error::InvalidArgument(format!(
                "the token signing secret is {} bytes; it must be at least 32",
                secret.len()
            )));
        }
        let bad = |e: jsonwebtoken::errors::Error| segkit::Error::InvalidArgument(format!("token secret: {e}"));
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret).map_err(bad)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad)?,
            ttl,
        })
    }

    /// Keys from 32 random bytes: tokens die with the process.
    pub fn random(ttl: Duration) -> segkit::Result<Self> {
        Self::new(&segkit::auth::random_bytes()?, ttl)
    }

    /// A token for `key`, valid for [`ttl`](Self::ttl) from `now` (seconds since the epoch).
    pub fn issue(&self, key: &ApiKey, now: u64) -> Result<String, Problem> {
        let claims = Claims {
            sub: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Problem::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "token", e.to_string()))
    }

    fn check(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok().map(|d| d.claims)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("missing `Authorization: Bearer <api key or token>` header"))?;
        let value = value.to_str().map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| Problem::unauthorized("the Authorization header must be `Bearer <api key or token>`"))?
            .trim();
        let ws = state.workspace();
        let key = if token.starts_with("sk_") {
            ws.authenticate_api_key(token).map_err(Problem::from)?
        } else {
            let claims = state.tokens().check(token).ok_or_else(|| {
                Problem::unauthorized("the token is invalid or expired: get a new one from POST /api/v1/auth/token")
            })?;
            // The key must still be active: revoking a key ends its tokens too.
            ws.active_api_key(&claims.sub).map_err(Problem::from)?
        };
        key.map(Caller::from).ok_or_else(|| Problem::unauthorized("unknown or revoked API key"))
    }
}
