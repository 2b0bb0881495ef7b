//! PKCE (RFC 7636) for email links and OAuth sign-ins: a flow started with
//! a `code_challenge` ends, after the link is followed (or the provider's
//! callback), with `redirect_to?code=<auth_code>` and
//! `POST /token?grant_type=pkce {auth_code, code_verifier}`.
//!
//! An OAuth flow also carries the provider's access and refresh tokens
//! until the code exchange (as GoTrue does), sealed with AES-256-GCM under
//! a key derived from the server secret and bound to the flow id; the
//! exchange hands them out once ([`Redeemed::add_provider_tokens`]) and
//! deletes them with the flow.

use base64::Engine;
use chrono::{Duration, Utc};
use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
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

/// The sealed provider-token columns of `auth_flow_state` (not in the
/// entity: only this module reads or writes them).
const PROVIDER_ACCESS: &str = "provider_access_token";
const PROVIDER_REFRESH: &str = "provider_refresh_token";

fn seal_context(flow_id: &str, which: &str) -> String {
    format!("goforward-auth/flow-state/{which}/{flow_id}")
}

/// Starts and at once issues the code of an OAuth PKCE flow (the provider
/// already authenticated the user), keeping the provider's tokens sealed
/// with it. Returns the auth code for `redirect_to?code=`.
///
/// # Errors
/// Database errors; an internal error when sealing fails.
pub async fn issue_for_oauth(
    state: &AuthState,
    user_id: &str,
    challenge: &Challenge,
    tokens: &crate::oauth::ProviderTokens,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let code = uuid::Uuid::new_v4().to_string() + &random_token(8);
    let now = Utc::now();
    // Forget OAuth flows whose code can no longer be redeemed, and the
    // provider tokens they kept.
    flow_state::Entity::delete_many()
        .filter(flow_state::Column::AuthenticationMethod.eq("oauth"))
        .filter(
            flow_state::Column::AuthCodeIssuedAt
                .lt(now - Duration::seconds(state.config.otp_expiry_secs)),
        )
        .exec(&state.db)
        .await?;
    let seal = |plain: &str, which: &str| {
        state
            .secret_box
            .seal(plain.as_bytes(), &seal_context(&id, which))
            .ok_or_else(|| AuthError::Internal("sealing a provider token failed".into()))
    };
    let access = seal(&tokens.access_token, PROVIDER_ACCESS)?;
    let refresh = tokens
        .refresh_token
        .as_deref()
        .map(|t| seal(t, PROVIDER_REFRESH))
        .transpose()?;
    flow_state::ActiveModel::from(flow_state::Model {
        id: id.clone(),
        user_id: user_id.to_owned(),
        auth_code_hash: Some(sha256_hex(code.as_bytes())),
        code_challenge: challenge.challenge.clone(),
        code_challenge_method: challenge.method.clone(),
        authentication_method: "oauth".to_owned(),
        created_at: now,
        auth_code_issued_at: Some(now),
    })
    .insert(&state.db)
    .await?;
    flow_state::Entity::update_many()
        .col_expr(Alias::new(PROVIDER_ACCESS), Expr::value(access))
        .col_expr(Alias::new(PROVIDER_REFRESH), Expr::value(refresh))
        .filter(flow_state::Column::Id.eq(id))
        .exec(&state.db)
        .await?;
    Ok(code)
}

/// A redeemed flow.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The user the flow signs in.
    pub user_id: String,
    /// The session's AMR method (`oauth`, `magiclink`, `recovery`, …).
    pub method: String,
    /// The provider's tokens of an OAuth flow.
    pub provider_tokens: Option<crate::oauth::ProviderTokens>,
}

impl Redeemed {
    /// Adds `provider_token` / `provider_refresh_token` (OAuth flows) to the
    /// session JSON the exchange answers, as GoTrue does.
    pub fn add_provider_tokens(&self, session: &mut Value) {
        if let (Some(tokens), Value::Object(fields)) = (&self.provider_tokens, session) {
            fields.insert("provider_token".into(), json!(tokens.access_token));
            if let Some(refresh) = &tokens.refresh_token {
                fields.insert("provider_refresh_token".into(), json!(refresh));
            }
        }
    }
}

/// Redeems an auth code: checks the verifier against the challenge and
/// consumes the flow (single use). Returns the user, the authentication
/// method and the provider tokens an OAuth flow kept.
///
/// # Errors
/// `flow_state_not_found`, `flow_state_expired`, `bad_code_verifier`.
pub async fn redeem_flow(state: &AuthState, auth_code: &str, verifier: &str) -> Result<Redeemed> {
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
    let sealed: Option<(Option<String>, Option<String>)> = flow_state::Entity::find()
        .select_only()
        .column_as(Expr::col(Alias::new(PROVIDER_ACCESS)), "access")
        .column_as(Expr::col(Alias::new(PROVIDER_REFRESH)), "refresh")
        .filter(flow_state::Column::Id.eq(flow.id.clone()))
        .into_tuple()
        .one(&state.db)
        .await?;
    let taken = flow_state::Entity::delete_by_id(flow.id.clone())
        .exec(&state.db)
        .await?
        .rows_affected;
    if taken != 1 {
        return Err(AuthError::FlowStateNotFound);
    }
    let open = |sealed: Option<String>, which: &str| {
        sealed.and_then(|s| {
            state
                .secret_box
                .open(&s, &seal_context(&flow.id, which))
                .and_then(|plain| String::from_utf8(plain).ok())
        })
    };
    let provider_tokens = sealed.and_then(|(access, refresh)| {
        open(access, PROVIDER_ACCESS).map(|access_token| crate::oauth::ProviderTokens {
            access_token,
            refresh_token: open(refresh, PROVIDER_REFRESH),
        })
    });
    Ok(Redeemed {
        user_id: flow.user_id,
        method: flow.authentication_method,
        provider_tokens,
    })
}
