//! MFA recovery codes: `POST /factors/recovery_codes` (generate a new set,
//! from an aal2 session; the old set stops working), `GET
//! /factors/recovery_codes` (how many are left), `POST
//! /factors/recovery_codes/verify` (`{code}` → an aal2 session, once per code).
//!
//! Codes are `xxxxx-xxxxx` from a 31-character alphabet without look-alikes
//! (about 49 bits each), stored as SHA-256 of `<user id>:<code>`, single use
//! (conditional update), compared in constant time, rate limited like MFA
//! verification.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use goforward_core::Principal;
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
    sea_query::Expr,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, audit, current, ok, parse, session_ok};
use crate::crypto::{ct_eq, sha256_hex};
use crate::entity::mfa_recovery_code;
use crate::error::{AuthError, Result};
use crate::sessions;
use crate::state::groups;
use crate::users;

const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A fresh code, `xxxxx-xxxxx`.
fn new_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    code
}

/// Lower-cases and drops separators and spaces (users retype codes).
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn hash(user_id: &str, code: &str) -> String {
    sha256_hex(format!("{user_id}:{}", normalize(code)).as_bytes())
}

/// `POST /factors/recovery_codes`: needs an aal2 session (a verified factor);
/// answers `{recovery_codes: [...]}` — shown once.
pub(crate) async fn generate(
    req: HttpRequest,
    principal: Principal,
    state: State,
) -> Result<HttpResponse> {
    let (user, session) = current(&state, &principal).await?;
    let session = session.ok_or(AuthError::SessionNotFound)?;
    if session.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    let now = Utc::now();
    let codes: Vec<String> = (0..state.config.mfa_recovery_codes)
        .map(|_| new_code())
        .collect();
    let txn = state.db.begin().await?;
    mfa_recovery_code::Entity::delete_many()
        .filter(mfa_recovery_code::Column::UserId.eq(user.id.clone()))
        .exec(&txn)
        .await?;
    for code in &codes {
        mfa_recovery_code::ActiveModel::from(mfa_recovery_code::Model {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            code_hash: hash(&user.id, code),
            created_at: now,
            used_at: None,
        })
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    audit(
        &state,
        Some(&user.id),
        "mfa_recovery_codes_generated",
        state.client_ip(&req).as_deref(),
        json!({ "count": codes.len() }),
    )
    .await;
    Ok(ok(&json!({ "recovery_codes": codes })))
}

/// `GET /factors/recovery_codes`: `{remaining}` unused codes.
pub(crate) async fn remaining(principal: Principal, state: State) -> Result<HttpResponse> {
    let (user, _) = current(&state, &principal).await?;
    let left = mfa_recovery_code::Entity::find()
        .filter(mfa_recovery_code::Column::UserId.eq(user.id.clone()))
        .filter(mfa_recovery_code::Column::UsedAt.is_null())
        .count(&state.db)
        .await?;
    Ok(ok(&json!({ "remaining": left })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    code: Option<String>,
}

/// `POST /factors/recovery_codes/verify`: `{code}`; raises the session to
/// aal2 (AMR method `recovery_code`) and spends the code.
pub(crate) async fn verify(
    req: HttpRequest,
    principal: Principal,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::MFA)?;
    let (user, session) = current(&state, &principal).await?;
    let session = session.ok_or(AuthError::SessionNotFound)?;
    let body: VerifyBody = parse(body.into_inner())?;
    let code = body.code.unwrap_or_default();
    if code.len() > 64 {
        return Err(AuthError::InvalidRecoveryCode);
    }
    // Codes stand in for a verified factor; without one there is no aal2.
    let Some(factor) = users::factors(&state.db, &user.id)
        .await?
        .into_iter()
        .find(|f| f.status == "verified")
    else {
        return Err(AuthError::MfaFactorNotFound);
    };
    let wanted = hash(&user.id, &code);
    let found = mfa_recovery_code::Entity::find()
        .filter(mfa_recovery_code::Column::UserId.eq(user.id.clone()))
        .filter(mfa_recovery_code::Column::CodeHash.eq(wanted.clone()))
        .filter(mfa_recovery_code::Column::UsedAt.is_null())
        .one(&state.db)
        .await?
        .filter(|row| ct_eq(&row.code_hash, &wanted));
    let spent = match &found {
        Some(row) => {
            mfa_recovery_code::Entity::update_many()
                .col_expr(mfa_recovery_code::Column::UsedAt, Expr::value(Utc::now()))
                .filter(mfa_recovery_code::Column::Id.eq(row.id.clone()))
                .filter(mfa_recovery_code::Column::UsedAt.is_null())
                .exec(&state.db)
                .await?
                .rows_affected
                == 1
        }
        None => false,
    };
    let ip = state.client_ip(&req);
    if !spent {
        audit(
            &state,
            Some(&user.id),
            "mfa_recovery_code_failed",
            ip.as_deref(),
            json!({}),
        )
        .await;
        return Err(AuthError::InvalidRecoveryCode);
    }
    let session =
        sessions::upgrade_aal2(&state, &user, &session, &factor.id, "recovery_code").await?;
    audit(
        &state,
        Some(&user.id),
        "mfa_recovery_code_used",
        ip.as_deref(),
        json!({}),
    )
    .await;
    Ok(session_ok(&session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_shape_and_normalize() {
        let code = new_code();
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[5], b'-');
        assert_ne!(new_code(), code);
        assert_eq!(
            hash("u", &code),
            hash("u", &code.to_uppercase().replace('-', " "))
        );
        assert_ne!(hash("u", &code), hash("v", &code));
    }
}
