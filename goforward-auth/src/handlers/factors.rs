//! MFA (TOTP and phone): `POST /factors` (enroll), `POST
//! /factors/{id}/challenge` (a phone factor's challenge texts a code),
//! `POST /factors/{id}/verify` (→ aal2 session), `DELETE /factors/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use goforward_core::Principal;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, audit, current, ok, parse, session_ok};
use crate::entity::{mfa_challenge, mfa_factor, session, user};
use crate::error::{AuthError, Result};
use crate::mfa;
use crate::sessions;
use crate::state::{AuthState, groups};
use crate::users;

#[derive(Debug, Default, Deserialize)]
struct EnrollBody {
    factor_type: Option<String>,
    friendly_name: Option<String>,
    issuer: Option<String>,
    phone: Option<String>,
}

/// Wrong codes a phone factor's challenge takes; the next one voids it.
const MAX_PHONE_ATTEMPTS: i32 = 5;

/// The stored form of a phone challenge's code: hex SHA-256 of the
/// challenge id and the code (the code itself is never stored).
fn phone_code_hash(challenge_id: &str, code: &str) -> String {
    crate::crypto::sha256_hex(format!("{challenge_id}:{}", code.trim()).as_bytes())
}

async fn own_factor(state: &AuthState, user: &user::Model, id: &str) -> Result<mfa_factor::Model> {
    mfa_factor::Entity::find_by_id(id.to_owned())
        .one(&state.db)
        .await?
        .filter(|f| f.user_id == user.id)
        .ok_or(AuthError::MfaFactorNotFound)
}

fn require_session(session: Option<session::Model>) -> Result<session::Model> {
    session.ok_or(AuthError::SessionNotFound)
}

pub(crate) async fn enroll(
    principal: Principal,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let (user, session) = current(&state, &principal).await?;
    let session = require_session(session)?;
    let body: EnrollBody = parse(body.into_inner())?;
    let phone = match body.factor_type.as_deref() {
        Some("totp") => {
            if !state.config.mfa_totp_enabled {
                return Err(AuthError::MfaTotpEnrollDisabled);
            }
            None
        }
        Some("phone") => {
            if !state.config.mfa_phone_enabled {
                return Err(AuthError::MfaPhoneEnrollDisabled);
            }
            let Some(raw) = body
                .phone
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
            else {
                return Err(AuthError::Validation(
                    "Phone number required to enroll Phone factor".into(),
                ));
            };
            Some(crate::sms::normalize_phone(raw).ok_or_else(|| {
                AuthError::Validation("Invalid phone number format (E.164 required)".into())
            })?)
        }
        _ => {
            return Err(AuthError::Validation(
                "factor_type needs to be totp or phone".into(),
            ));
        }
    };
    let mut factors = users::factors(&state.db, &user.id).await?;
    // An unverified phone factor with the same number is replaced (as
    // GoTrue); a verified one stays and refuses the enrollment.
    let mut replaced = Vec::new();
    if let Some(phone) = &phone {
        let same: Vec<_> = factors
            .iter()
            .filter(|f| f.factor_type == "phone" && f.phone.as_deref() == Some(phone.as_str()))
            .cloned()
            .collect();
        if same.iter().any(|f| f.status == "verified") {
            return Err(AuthError::MfaVerifiedFactorExists);
        }
        factors.retain(|f| !same.iter().any(|s| s.id == f.id));
        replaced = same;
    }
    if factors.len() >= state.config.mfa_max_enrolled_factors {
        return Err(AuthError::TooManyEnrolledMfaFactors);
    }
    // Adding a factor to an account that already has a verified one needs aal2.
    if factors.iter().any(|f| f.status == "verified") && session.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    let friendly_name = body
        .friendly_name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if let Some(name) = &friendly_name {
        if name.chars().count() > 255 {
            return Err(AuthError::Validation(
                "friendly_name is longer than 255 characters".into(),
            ));
        }
        if factors
            .iter()
            .any(|f| f.friendly_name.as_deref() == Some(name.as_str()))
        {
            return Err(AuthError::MfaFactorNameConflict(name.clone()));
        }
    }
    for old in &replaced {
        mfa_factor::Entity::delete_by_id(old.id.clone())
            .exec(&state.db)
            .await?;
    }
    if let Some(phone) = phone {
        return enroll_phone(&state, &user, friendly_name, phone).await;
    }
    let issuer = body
        .issuer
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .or_else(|| Some(state.config.mfa_totp_issuer.clone()).filter(|i| !i.is_empty()))
        .unwrap_or_else(|| {
            state
                .redirects
                .site_url()
                .host_str()
                .unwrap_or("GoForward")
                .to_owned()
        });
    let id = uuid::Uuid::new_v4().to_string();
    let secret = mfa::new_secret();
    let sealed = state
        .secret_box
        .seal(&secret, &id)
        .ok_or_else(|| AuthError::Internal("could not encrypt the TOTP secret".into()))?;
    let now = Utc::now();
    let factor = mfa_factor::ActiveModel::from(mfa_factor::Model {
        id: id.clone(),
        user_id: user.id.clone(),
        friendly_name: friendly_name.clone(),
        factor_type: "totp".to_owned(),
        status: "unverified".to_owned(),
        secret: sealed,
        phone: None,
        last_used_step: None,
        last_challenged_at: None,
        created_at: now,
        updated_at: now,
    })
    .insert(&state.db)
    .await
    .map_err(|e| match super::signup::is_unique_violation(&e) {
        true => AuthError::MfaFactorNameConflict(friendly_name.clone().unwrap_or_default()),
        false => AuthError::Database(e),
    })?;
    let b32 = mfa::base32(&secret);
    let account = user
        .email
        .clone()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| user.id.clone());
    let uri = mfa::uri(&issuer, &account, &b32);
    let qr_code = mfa::qr_svg(&uri)
        .ok_or_else(|| AuthError::Internal("could not render the QR code".into()))?;
    Ok(ok(&json!({
        "id": factor.id,
        "type": "totp",
        "friendly_name": factor.friendly_name.unwrap_or_default(),
        "totp": { "qr_code": qr_code, "secret": b32, "uri": uri },
    })))
}

/// Inserts an unverified phone factor; GoTrue's answer `{id, type:
/// "phone", friendly_name, phone}`.
async fn enroll_phone(
    state: &AuthState,
    user: &user::Model,
    friendly_name: Option<String>,
    phone: String,
) -> Result<HttpResponse> {
    let now = Utc::now();
    let factor = mfa_factor::ActiveModel::from(mfa_factor::Model {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        friendly_name: friendly_name.clone(),
        factor_type: "phone".to_owned(),
        status: "unverified".to_owned(),
        secret: String::new(),
        phone: Some(phone.clone()),
        last_used_step: None,
        last_challenged_at: None,
        created_at: now,
        updated_at: now,
    })
    .insert(&state.db)
    .await
    .map_err(|e| match super::signup::is_unique_violation(&e) {
        true => AuthError::MfaFactorNameConflict(friendly_name.clone().unwrap_or_default()),
        false => AuthError::Database(e),
    })?;
    Ok(ok(&json!({
        "id": factor.id,
        "type": "phone",
        "friendly_name": factor.friendly_name.unwrap_or_default(),
        "phone": phone,
    })))
}

#[derive(Debug, Default, Deserialize)]
struct ChallengeBody {
    channel: Option<String>,
}

pub(crate) async fn challenge(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    state.limit(&req, groups::MFA)?;
    let (user, _) = current(&state, &principal).await?;
    let factor = own_factor(&state, &user, &path).await?;
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let otp_code = if factor.factor_type == "phone" {
        let body: ChallengeBody = if body.iter().all(u8::is_ascii_whitespace) {
            ChallengeBody::default()
        } else {
            let value: Value = serde_json::from_slice(&body).map_err(|e| {
                AuthError::BadJson(format!("Could not parse request body as JSON: {e}"))
            })?;
            parse(value)?
        };
        Some(challenge_phone(&state, &factor, &id, body.channel.as_deref(), now).await?)
    } else {
        None
    };
    let challenge = mfa_challenge::ActiveModel::from(mfa_challenge::Model {
        id,
        factor_id: factor.id.clone(),
        ip: state.client_ip(&req),
        created_at: now,
        verified_at: None,
        otp_code,
        attempts: 0,
    })
    .insert(&state.db)
    .await?;
    let factor_type = factor.factor_type.clone();
    let mut active: mfa_factor::ActiveModel = factor.into();
    active.last_challenged_at = Set(Some(now));
    active.update(&state.db).await?;
    let expires_at = now + Duration::seconds(state.config.mfa_challenge_expiry_secs);
    Ok(ok(
        &json!({ "id": challenge.id, "type": factor_type, "expires_at": expires_at.timestamp() }),
    ))
}

/// Checks a phone factor's challenge (enabled, channel, frequency), texts a
/// fresh code to the factor's number and returns the code's stored hash.
/// Nothing is stored when the SMS cannot be sent.
async fn challenge_phone(
    state: &AuthState,
    factor: &mfa_factor::Model,
    challenge_id: &str,
    channel: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> Result<String> {
    if !state.config.mfa_phone_enabled {
        return Err(AuthError::MfaPhoneVerifyDisabled);
    }
    match channel.map(str::trim).filter(|c| !c.is_empty()) {
        None | Some("sms") => {}
        Some(other) => {
            return Err(AuthError::Validation(format!(
                "Invalid channel {other:?}, the supported value is 'sms'"
            )));
        }
    }
    if let Some(last) = factor.last_challenged_at {
        let wait = state.config.mfa_phone_max_frequency_secs - (now - last).num_seconds();
        if wait > 0 {
            return Err(AuthError::OverSmsSendRateLimit {
                retry_after_secs: wait.unsigned_abs(),
            });
        }
    }
    let Some(phone) = factor.phone.as_deref() else {
        return Err(AuthError::Internal("phone factor without a number".into()));
    };
    let code = crate::crypto::otp(state.config.otp_length);
    crate::otp::text_code(state, phone, &code).await?;
    Ok(phone_code_hash(challenge_id, &code))
}

#[derive(Debug, Default, Deserialize)]
struct VerifyBody {
    challenge_id: Option<String>,
    code: Option<String>,
}

pub(crate) async fn verify(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::MFA)?;
    let (user, session) = current(&state, &principal).await?;
    let session = require_session(session)?;
    let body: VerifyBody = parse(body.into_inner())?;
    let factor = own_factor(&state, &user, &path).await?;
    let challenge_id = body
        .challenge_id
        .ok_or_else(|| AuthError::Validation("challenge_id is required".into()))?;
    let code = body.code.unwrap_or_default();
    let challenge = mfa_challenge::Entity::find_by_id(challenge_id)
        .one(&state.db)
        .await?
        .filter(|c| c.factor_id == factor.id)
        .ok_or(AuthError::MfaFactorNotFound)?;
    let now = Utc::now();
    if challenge.verified_at.is_some()
        || challenge.created_at + Duration::seconds(state.config.mfa_challenge_expiry_secs) <= now
    {
        return Err(AuthError::MfaChallengeExpired);
    }
    if factor.factor_type == "phone" {
        return verify_phone(&req, &state, &user, session, factor, challenge, &code, now).await;
    }
    let secret = state
        .secret_box
        .open(&factor.secret, &factor.id)
        .ok_or_else(|| AuthError::Internal("could not decrypt the TOTP secret".into()))?;
    let Some(step) = mfa::verify(&secret, &code, now.timestamp()) else {
        audit(
            &state,
            Some(&user.id),
            "mfa_verification_failed",
            state.client_ip(&req).as_deref(),
            json!({ "factor_id": factor.id }),
        )
        .await;
        return Err(AuthError::MfaVerificationFailed);
    };
    // Each time step is accepted once per factor (no replay), and each
    // challenge once: both are conditional updates.
    let step_taken = mfa_factor::Entity::update_many()
        .col_expr(mfa_factor::Column::LastUsedStep, Expr::value(step))
        .col_expr(mfa_factor::Column::Status, Expr::value("verified"))
        .col_expr(mfa_factor::Column::UpdatedAt, Expr::value(now))
        .filter(mfa_factor::Column::Id.eq(factor.id.clone()))
        .filter(
            sea_orm::Condition::any()
                .add(mfa_factor::Column::LastUsedStep.is_null())
                .add(mfa_factor::Column::LastUsedStep.lt(step)),
        )
        .exec(&state.db)
        .await?
        .rows_affected
        == 1;
    if !step_taken {
        return Err(AuthError::MfaVerificationFailed);
    }
    let challenge_taken = mfa_challenge::Entity::update_many()
        .col_expr(mfa_challenge::Column::VerifiedAt, Expr::value(now))
        .filter(mfa_challenge::Column::Id.eq(challenge.id.clone()))
        .filter(mfa_challenge::Column::VerifiedAt.is_null())
        .exec(&state.db)
        .await?
        .rows_affected
        == 1;
    if !challenge_taken {
        return Err(AuthError::MfaChallengeExpired);
    }
    finish_verification(&req, &state, &user, session, &factor, "totp").await
}

/// A phone factor's code: the challenge must come from this IP address; a
/// wrong code counts against the challenge (void after five); the right
/// one is taken once (conditional update), then the session goes to aal2
/// with the AMR method `mfa/phone`, as GoTrue.
#[allow(clippy::too_many_arguments)]
async fn verify_phone(
    req: &HttpRequest,
    state: &AuthState,
    user: &user::Model,
    session: session::Model,
    factor: mfa_factor::Model,
    challenge: mfa_challenge::Model,
    code: &str,
    now: chrono::DateTime<Utc>,
) -> Result<HttpResponse> {
    if !state.config.mfa_phone_enabled {
        return Err(AuthError::MfaPhoneVerifyDisabled);
    }
    if challenge.ip != state.client_ip(req) {
        return Err(AuthError::MfaIpAddressMismatch);
    }
    let Some(stored) = challenge.otp_code.as_deref() else {
        return Err(AuthError::MfaChallengeExpired);
    };
    if !crate::crypto::ct_eq(stored, &phone_code_hash(&challenge.id, code)) {
        let mut wrong = mfa_challenge::Entity::update_many()
            .col_expr(
                mfa_challenge::Column::Attempts,
                sea_orm::sea_query::ExprTrait::add(Expr::col(mfa_challenge::Column::Attempts), 1),
            )
            .filter(mfa_challenge::Column::Id.eq(challenge.id.clone()))
            .filter(mfa_challenge::Column::VerifiedAt.is_null());
        if challenge.attempts + 1 >= MAX_PHONE_ATTEMPTS {
            // Voided: answered by nobody, accepted never.
            wrong = wrong.col_expr(mfa_challenge::Column::VerifiedAt, Expr::value(now));
        }
        wrong.exec(&state.db).await?;
        audit(
            state,
            Some(&user.id),
            "mfa_verification_failed",
            state.client_ip(req).as_deref(),
            json!({ "factor_id": factor.id }),
        )
        .await;
        return Err(AuthError::MfaPhoneVerificationFailed);
    }
    let challenge_taken = mfa_challenge::Entity::update_many()
        .col_expr(mfa_challenge::Column::VerifiedAt, Expr::value(now))
        .filter(mfa_challenge::Column::Id.eq(challenge.id.clone()))
        .filter(mfa_challenge::Column::VerifiedAt.is_null())
        .exec(&state.db)
        .await?
        .rows_affected
        == 1;
    if !challenge_taken {
        return Err(AuthError::MfaChallengeExpired);
    }
    if factor.status != "verified" {
        mfa_factor::Entity::update_many()
            .col_expr(mfa_factor::Column::Status, Expr::value("verified"))
            .col_expr(mfa_factor::Column::UpdatedAt, Expr::value(now))
            .filter(mfa_factor::Column::Id.eq(factor.id.clone()))
            .exec(&state.db)
            .await?;
    }
    finish_verification(req, state, user, session, &factor, "mfa/phone").await
}

/// After a factor's code was accepted: a first verification ends the other
/// sessions; the session goes to aal2 with `method` at the head of its AMR.
async fn finish_verification(
    req: &HttpRequest,
    state: &AuthState,
    user: &user::Model,
    session: session::Model,
    factor: &mfa_factor::Model,
    method: &str,
) -> Result<HttpResponse> {
    let first_verification = factor.status != "verified";
    let ip = state.client_ip(req);
    if first_verification {
        // A new verified factor ends the user's other sessions (checklist item 4).
        let ended = sessions::revoke_user_sessions(&state.db, &user.id, Some(&session.id)).await?;
        sessions::announce_revoked(state, &user.id, Some(ended), "mfa_factor_changed").await;
        audit(
            state,
            Some(&user.id),
            "mfa_factor_verified",
            ip.as_deref(),
            json!({ "factor_id": factor.id }),
        )
        .await;
    }
    let session = sessions::upgrade_aal2(state, user, &session, &factor.id, method).await?;
    audit(
        state,
        Some(&user.id),
        "mfa_verified",
        ip.as_deref(),
        json!({ "factor_id": factor.id }),
    )
    .await;
    Ok(session_ok(&session))
}

pub(crate) async fn unenroll(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let (user, session) = current(&state, &principal).await?;
    let session = require_session(session)?;
    let factor = own_factor(&state, &user, &path).await?;
    if factor.status == "verified" && session.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    mfa_factor::Entity::delete_by_id(factor.id.clone())
        .exec(&state.db)
        .await?;
    if factor.status == "verified" {
        // Removing a factor ends the other sessions and, when no verified
        // factor is left, brings this one back to aal1.
        let ended = sessions::revoke_user_sessions(&state.db, &user.id, Some(&session.id)).await?;
        sessions::announce_revoked(&state, &user.id, Some(ended), "mfa_factor_changed").await;
        let left = users::factors(&state.db, &user.id).await?;
        if !left.iter().any(|f| f.status == "verified")
            || session.factor_id.as_deref() == Some(factor.id.as_str())
        {
            let mut active: session::ActiveModel = session.into();
            active.aal = Set("aal1".to_owned());
            active.factor_id = Set(None);
            active.update(&state.db).await?;
        }
    }
    audit(
        &state,
        Some(&user.id),
        "mfa_factor_deleted",
        state.client_ip(&req).as_deref(),
        json!({ "factor_id": factor.id }),
    )
    .await;
    Ok(ok(&json!({ "id": factor.id })))
}
