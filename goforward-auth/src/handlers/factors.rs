//! MFA (TOTP): `POST /factors` (enroll), `POST /factors/{id}/challenge`,
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
    match body.factor_type.as_deref() {
        Some("totp") => {}
        Some("phone") => {
            return Err(AuthError::Validation(
                "Phone factors are not supported yet".into(),
            ));
        }
        _ => return Err(AuthError::Validation("factor_type must be totp".into())),
    }
    if !state.config.mfa_totp_enabled {
        return Err(AuthError::MfaTotpEnrollDisabled);
    }
    let factors = users::factors(&state.db, &user.id).await?;
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

pub(crate) async fn challenge(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::MFA)?;
    let (user, _) = current(&state, &principal).await?;
    let factor = own_factor(&state, &user, &path).await?;
    let now = Utc::now();
    let challenge = mfa_challenge::ActiveModel::from(mfa_challenge::Model {
        id: uuid::Uuid::new_v4().to_string(),
        factor_id: factor.id.clone(),
        ip: state.client_ip(&req),
        created_at: now,
        verified_at: None,
    })
    .insert(&state.db)
    .await?;
    let mut active: mfa_factor::ActiveModel = factor.into();
    active.last_challenged_at = Set(Some(now));
    active.update(&state.db).await?;
    let expires_at = now + Duration::seconds(state.config.mfa_challenge_expiry_secs);
    Ok(ok(
        &json!({ "id": challenge.id, "type": "totp", "expires_at": expires_at.timestamp() }),
    ))
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
    let first_verification = factor.status != "verified";
    let ip = state.client_ip(&req);
    if first_verification {
        // A new verified factor ends the user's other sessions (checklist item 4).
        let ended = sessions::revoke_user_sessions(&state.db, &user.id, Some(&session.id)).await?;
        sessions::announce_revoked(&state, &user.id, Some(ended), "mfa_factor_changed").await;
        audit(
            &state,
            Some(&user.id),
            "mfa_factor_verified",
            ip.as_deref(),
            json!({ "factor_id": factor.id }),
        )
        .await;
    }
    let session = sessions::upgrade_aal2(&state, &user, &session, &factor.id, "totp").await?;
    audit(
        &state,
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
