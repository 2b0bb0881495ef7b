//! PKCE (RFC 7636) for email links: a flow started with a `code_challenge`
//! ends, after the link is followed, with `redirect_to?code=<auth_code>`
//! and `POST /token?grant_type=pkce {auth_code, code_verifier}`.

use base64::Engine;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use sha2::{Digest, Sha256};

use crate::crypto::{ct_eq, random_token, sha256_hex};
use crate::entity::flow_state;
use crate::error::{AuthError, Result};
use crate::state::AuthState;

/// A validated `(code_challenge, method)` from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The challenge.
    pub challenge: String,
    /// `s256` or `plain`.
    pub method: String,
}

/// Reads the optional `code_challenge` / `code_challenge_method` pair.
///
/// # Errors
/// `validation_failed` when only one is given, the method is unknown or the
/// challenge is not 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn challenge(challenge: Option<&str>, method: Option<&str>) -> Result<Option<Challenge>> {
    let challenge = challenge.map(str::trim).filter(|c| !c.is_empty());
    let method = method
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    match (challenge, method) {
        (None, None) => Ok(None),
        (Some(c), Some(m)) => {
            if m != "s256" && m != "plain" {
                return Err(AuthError::Validation(format!(
                    "code challenge method not supported: {m}"
                )));
            }
            let ok_chars = c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !(43..=128).contains(&c.len()) || !ok_chars {
                return Err(AuthError::Validation(
                    "code challenge has to be between 43 and 128 characters of [A-Za-z0-9-._~]"
                        .into(),
                ));
            }
            Ok(Some(Challenge {
                challenge: c.to_owned(),
                method: m,
            }))
        }
        _ => Err(AuthError::Validation(
            "PKCE flow requires code_challenge_method and code_challenge".into(),
        )),
    }
}

/// Starts a flow for `user_id` (call before sending the email).
///
/// # Errors
/// Database errors.
pub async fn start(
    state: &AuthState,
    user_id: &str,
    challenge: &Challenge,
    authentication_method: &str,
) -> Result<()> {
    flow_state::ActiveModel::from(flow_state::Model {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        auth_code_hash: None,
        code_challenge: challenge.challenge.clone(),
        code_challenge_method: challenge.method.clone(),
        authentication_method: authentication_method.to_owned(),
        created_at: Utc::now(),
        auth_code_issued_at: None,
    })
    .insert(&state.db)
    .await?;
    Ok(())
}

/// When the user has a pending flow (started within the OTP lifetime),
/// issues its auth code and returns it.
///
/// # Errors
/// Database errors.
pub async fn issue_code(state: &AuthState, user_id: &str) -> Result<Option<String>> {
    let pending = flow_state::Entity::find()
        .filter(flow_state::Column::UserId.eq(user_id))
        .filter(flow_state::Column::AuthCodeHash.is_null())
        .order_by_desc(flow_state::Column::CreatedAt)
        .one(&state.db)
        .await?
        .filter(|f| f.created_at + Duration::seconds(state.config.otp_expiry_secs) > Utc::now());
    let Some(flow) = pending else {
        return Ok(None);
    };
    let code = uuid::Uuid::new_v4().to_string() + &random_token(8);
    let mut active: flow_state::ActiveModel = flow.into();
    active.auth_code_hash = Set(Some(sha256_hex(code.as_bytes())));
    active.auth_code_issued_at = Set(Some(Utc::now()));
    active.update(&state.db).await?;
    Ok(Some(code))
}

/// Redeems an auth code: checks the verifier against the challenge and
/// consumes the flow (single use). Returns `(user_id, authentication_method)`.
///
/// # Errors
/// `flow_state_not_found`, `flow_state_expired`, `bad_code_verifier`.
pub async fn redeem(
    state: &AuthState,
    auth_code: &str,
    verifier: &str,
) -> Result<(String, String)> {
    let hash = sha256_hex(auth_code.trim().as_bytes());
    let flow = flow_state::Entity::find()
        .filter(flow_state::Column::AuthCodeHash.eq(hash))
        .one(&state.db)
        .await?
        .ok_or(AuthError::FlowStateNotFound)?;
    let issued = flow.auth_code_issued_at.unwrap_or(flow.created_at);
    if issued + Duration::seconds(state.config.otp_expiry_secs) <= Utc::now() {
        flow_state::Entity::delete_by_id(flow.id.clone())
            .exec(&state.db)
            .await?;
        return Err(AuthError::FlowStateExpired);
    }
    let expected = match flow.code_challenge_method.as_str() {
        "s256" => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes())),
        _ => verifier.to_owned(),
    };
    if !ct_eq(&expected, &flow.code_challenge) {
        return Err(AuthError::BadCodeVerifier);
    }
    let taken = flow_state::Entity::delete_by_id(flow.id.clone())
        .exec(&state.db)
        .await?
        .rows_affected;
    if taken != 1 {
        return Err(AuthError::FlowStateNotFound);
    }
    Ok((flow.user_id, flow.authentication_method))
}
