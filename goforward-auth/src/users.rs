//! Loading users and rendering them as GoTrue's user object.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Map, Value, json};

use crate::entity::{identity, mfa_factor, user};
use crate::error::Result;

/// GoTrue's timestamp format (RFC 3339, microseconds, `Z`).
pub fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Lower-cases and trims an email address.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A pragmatic email syntax check (one `@`, non-empty local part, dotted domain, no spaces).
pub fn valid_email(email: &str) -> bool {
    if email.len() > 255 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && email.parse::<lettre::Address>().is_ok()
        }
        None => false,
    }
}

/// Parses a JSON-text column into an object (empty when invalid).
pub fn json_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The live (not soft-deleted) user with `id`.
///
/// # Errors
/// Database errors.
pub async fn find_by_id<C: ConnectionTrait>(db: &C, id: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id.to_owned())
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// The live user with `email` (already normalized).
///
/// # Errors
/// Database errors.
pub async fn find_by_email<C: ConnectionTrait>(db: &C, email: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// The live user with `phone` (E.164 digits, see [`crate::sms::normalize_phone`]).
///
/// # Errors
/// Database errors.
pub async fn find_by_phone<C: ConnectionTrait>(db: &C, phone: &str) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Phone.eq(phone))
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// The user's identities, oldest first.
///
/// # Errors
/// Database errors.
pub async fn identities<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<Vec<identity::Model>> {
    Ok(identity::Entity::find()
        .filter(identity::Column::UserId.eq(user_id))
        .order_by_asc(identity::Column::CreatedAt)
        .all(db)
        .await?)
}

/// GoTrue's user object for `user` (loads its identities).
///
/// # Errors
/// Database errors.
pub async fn user_json<C: ConnectionTrait>(db: &C, user: &user::Model) -> Result<Value> {
    let identities = identities(db, &user.id).await?;
    let factors = factors(db, &user.id).await?;
    Ok(render(user, &identities, &factors))
}

/// The user's MFA factors, oldest first.
///
/// # Errors
/// Database errors.
pub async fn factors<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<Vec<mfa_factor::Model>> {
    Ok(mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .order_by_asc(mfa_factor::Column::CreatedAt)
        .all(db)
        .await?)
}

/// GoTrue's factor object.
pub fn factor_json(factor: &mfa_factor::Model) -> Value {
    json!({
        "id": factor.id,
        "friendly_name": factor.friendly_name.clone().unwrap_or_default(),
        "factor_type": factor.factor_type,
        "status": factor.status,
        "created_at": ts(&factor.created_at),
        "updated_at": ts(&factor.updated_at),
        "last_challenged_at": factor.last_challenged_at.as_ref().map(ts),
        "phone": factor.phone.clone().unwrap_or_default(),
    })
}

/// Renders the user object from a user, its identities and factors
/// (`factors` is omitted when empty, as GoTrue does).
pub fn render(
    user: &user::Model,
    identities: &[identity::Model],
    factors: &[mfa_factor::Model],
) -> Value {
    let mut out = json!({
        "id": user.id,
        "aud": user.aud,
        "role": user.role,
        "email": user.email.clone().unwrap_or_default(),
        "phone": user.phone.clone().unwrap_or_default(),
        "app_metadata": json_object(&user.raw_app_meta_data),
        "user_metadata": json_object(&user.raw_user_meta_data),
        "identities": identities.iter().map(identity_json).collect::<Vec<_>>(),
        "created_at": ts(&user.created_at),
        "updated_at": ts(&user.updated_at),
        "is_anonymous": user.is_anonymous,
    });
    let confirmed_at = user.email_confirmed_at.or(user.phone_confirmed_at);
    let optional = [
        ("email_confirmed_at", user.email_confirmed_at),
        ("phone_confirmed_at", user.phone_confirmed_at),
        ("confirmed_at", confirmed_at),
        ("confirmation_sent_at", user.confirmation_sent_at),
        ("recovery_sent_at", user.recovery_sent_at),
        ("email_change_sent_at", user.email_change_sent_at),
        ("phone_change_sent_at", user.phone_change_sent_at),
        ("invited_at", user.invited_at),
        ("last_sign_in_at", user.last_sign_in_at),
        ("banned_until", user.banned_until),
        ("deleted_at", user.deleted_at),
    ];
    if let Some(map) = out.as_object_mut() {
        for (key, value) in optional {
            if let Some(t) = value {
                map.insert(key.to_owned(), json!(ts(&t)));
            }
        }
        if let Some(new_email) = &user.email_change {
            map.insert("new_email".to_owned(), json!(new_email));
        }
        if let Some(new_phone) = &user.phone_change {
            map.insert("new_phone".to_owned(), json!(new_phone));
        }
        if !factors.is_empty() {
            map.insert(
                "factors".to_owned(),
                Value::Array(factors.iter().map(factor_json).collect()),
            );
        }
    }
    out
}

fn identity_json(identity: &identity::Model) -> Value {
    let mut out = json!({
        "identity_id": identity.id,
        "id": identity.provider_id,
        "user_id": identity.user_id,
        "identity_data": json_object(&identity.identity_data),
        "provider": identity.provider,
        "created_at": ts(&identity.created_at),
        "updated_at": ts(&identity.updated_at),
        "email": identity.email.clone().unwrap_or_default(),
    });
    if let (Some(t), Some(map)) = (identity.last_sign_in_at, out.as_object_mut()) {
        map.insert("last_sign_in_at".to_owned(), json!(ts(&t)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        assert!(valid_email("first.last+tag@example.com"));
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@@b.co", "a@.b.co", "a@b.co.",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
