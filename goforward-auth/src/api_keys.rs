//! Service-account API keys: `gf_sa_<public id>_<secret>`.
//!
//! The public id (16 hex characters) finds the row; the secret (256 random
//! bits) is stored only as its SHA-256 and compared in constant time. The
//! plugin registers an [`ApiKeyStore`] with core's authenticator in
//! `start`, so a key is accepted wherever an `apikey` or a bearer token is,
//! and acts as the key's role (`service_role` or a custom role) with the
//! claims `api_key_id`, `api_key_name` and `scopes` (no `sub`: a key is never
//! a user and never holds an administrator level).
//!
//! Core remembers a looked-up key for [`OPAQUE_KEY_TTL`](goforward_core::token::OPAQUE_KEY_TTL);
//! revoking a key forgets every remembered key on this node.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use goforward_core::{Principal, token::ApiKeyResolver};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde_json::{Map, Value, json};

use crate::crypto::{ct_eq, sha256_hex};
use crate::entity::api_key;

/// The prefix of every service-account key.
pub const PREFIX: &str = "gf_sa_";

/// Length of the public id in hex characters.
pub const PUBLIC_ID_LEN: usize = 16;

/// `last_used_at` is written at most this often per key.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// A new key: the row's public id, the secret's hash, and the full key
/// (shown to the creator once).
#[derive(Debug)]
pub struct NewKey {
    /// Public id (16 hex characters).
    pub public_id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// `gf_sa_<public id>_<secret>`.
    pub key: String,
}

/// Generates a fresh key from the OS CSPRNG.
pub fn generate() -> NewKey {
    let bytes: [u8; PUBLIC_ID_LEN / 2] = rand::random();
    let public_id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = crate::crypto::random_token(32);
    NewKey {
        secret_hash: sha256_hex(secret.as_bytes()),
        key: format!("{PREFIX}{public_id}_{secret}"),
        public_id,
    }
}

/// Splits a key into its public id and secret; `None` when malformed.
pub fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (public_id, secret) = rest.split_once('_')?;
    let hex = public_id.len() == PUBLIC_ID_LEN
        && public_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && !secret.is_empty() && secret.len() <= 128).then_some((public_id, secret))
}

/// The scopes of a key row (an empty list when the column is not a JSON array).
pub fn scopes(key: &api_key::Model) -> Vec<String> {
    serde_json::from_str(&key.scopes).unwrap_or_default()
}

/// The principal a key row acts as.
///
/// # Errors
/// When the stored role is not a valid `role` claim (never for rows this crate writes).
pub fn principal(key: &api_key::Model) -> goforward_core::Result<Principal> {
    let mut claims = Map::new();
    claims.insert("role".into(), json!(key.role));
    claims.insert("api_key_id".into(), json!(key.id));
    claims.insert("api_key_name".into(), json!(key.name));
    claims.insert("scopes".into(), json!(scopes(key)));
    Principal::from_claims(claims).map_err(goforward_core::Error::Unauthorized)
}

/// The key store core asks for `gf_sa_…` keys.
#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    db: DatabaseConnection,
}

impl ApiKeyStore {
    /// A store over the auth tables of `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Whether the key's creator (if a user) still exists, is not banned
    /// and still holds the key's role: a key never outlives its creator's power.
    async fn creator_still_entitled(&self, key: &api_key::Model) -> goforward_core::Result<bool> {
        let Some(creator) = key.created_by.as_deref() else {
            return Ok(true);
        };
        let Some(user) = crate::users::find_by_id(&self.db, creator)
            .await
            .map_err(|e| goforward_core::Error::Internal(e.to_string()))?
        else {
            return Ok(false);
        };
        if user.banned_until.is_some_and(|until| until > Utc::now()) {
            return Ok(false);
        }
        let names = crate::rbac::role_names(&self.db, creator)
            .await
            .map_err(|e| goforward_core::Error::Internal(e.to_string()))?;
        Ok(names.contains(&key.role))
    }
}

#[async_trait]
impl ApiKeyResolver for ApiKeyStore {
    fn recognizes(&self, key: &str) -> bool {
        key.starts_with(PREFIX)
    }

    async fn resolve(&self, key: &str) -> goforward_core::Result<Option<Principal>> {
        let Some((public_id, secret)) = split(key) else {
            return Ok(None);
        };
        let row = api_key::Entity::find()
            .filter(api_key::Column::PublicId.eq(public_id))
            .one(&self.db)
            .await
            .map_err(goforward_core::Error::from)?;
        let Some(row) = row else {
            // Same work as a wrong secret.
            let _ = ct_eq(&sha256_hex(secret.as_bytes()), &"0".repeat(64));
            return Ok(None);
        };
        if !ct_eq(&sha256_hex(secret.as_bytes()), &row.secret_hash) {
            return Ok(None);
        }
        let now = Utc::now();
        if row.revoked_at.is_some() || row.expires_at.is_some_and(|end| end <= now) {
            return Ok(None);
        }
        if !self.creator_still_entitled(&row).await? {
            return Ok(None);
        }
        let stale = now - chrono::Duration::seconds(TOUCH_INTERVAL.as_secs() as i64);
        if row.last_used_at.is_none_or(|t| t < stale) {
            let touched = api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
                .filter(api_key::Column::Id.eq(row.id.clone()))
                .filter(
                    Condition::any()
                        .add(api_key::Column::LastUsedAt.is_null())
                        .add(api_key::Column::LastUsedAt.lt(stale)),
                )
                .exec(&self.db)
                .await;
            if let Err(err) = touched {
                tracing::warn!(error = %err, "could not record an API key's last use");
            }
        }
        principal(&row).map(Some)
    }
}

/// The JSON of a key row (never the secret).
pub fn key_json(key: &api_key::Model) -> Value {
    use crate::users::ts;
    json!({
        "id": key.id,
        "public_id": key.public_id,
        "name": key.name,
        "role": key.role,
        "scopes": scopes(key),
        "created_by": key.created_by,
        "created_at": ts(&key.created_at),
        "expires_at": key.expires_at.as_ref().map(ts),
        "last_used_at": key.last_used_at.as_ref().map(ts),
        "revoked_at": key.revoked_at.as_ref().map(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_split_back() {
        let new = generate();
        let (id, secret) = split(&new.key).unwrap_or_default();
        assert_eq!(id, new.public_id);
        assert_eq!(sha256_hex(secret.as_bytes()), new.secret_hash);
        assert_ne!(generate().key, new.key);
    }

    #[test]
    fn malformed_keys_do_not_split() {
        for bad in [
            "gf_sa_",
            "gf_sa_0123456789abcdef",
            "gf_sa_0123456789abcdef_",
            "gf_sa_0123456789ABCDEF_x",
            "gf_sa_0123_x",
            "sb_secret_x",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }
}
