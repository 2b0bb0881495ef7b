//! `POST /otp` (and the older `/magiclink`), `POST /recover`, `POST /resend`:
//! endpoints that email a code and link. Unknown addresses get the same
//! answer as known ones where GoTrue does so (`/recover`, `/resend`), and
//! after the same work: the response path is one user lookup and one
//! send-interval read (asked about [`otp::NO_USER`] when the address is
//! unknown); token rows, new users, PKCE flows, emails and audit rows are
//! written by a spawned task ([`otp::spawn_background`]) whose errors are
//! logged.

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::Principal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{RedirectQuery, State, create_user, ok, parse};
use crate::error::{AuthError, Result};
use crate::otp::{self, TokenType};
use crate::state::groups;
use crate::users;

#[derive(Debug, Default, Deserialize)]
struct OtpBody {
    email: Option<String>,
    phone: Option<String>,
    data: Option<Value>,
    create_user: Option<bool>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn email_of(email: Option<&str>, phone: Option<&str>) -> Result<String> {
    if phone.is_some_and(|p| !p.trim().is_empty()) {
        return Err(AuthError::Validation(
            "Phone OTPs are not supported yet".into(),
        ));
    }
    let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
        return Err(AuthError::Validation("An email address is required".into()));
    };
    let email = users::normalize_email(email);
    if !users::valid_email(&email) {
        return Err(AuthError::EmailAddressInvalid);
    }
    Ok(email)
}

pub(crate) async fn otp(
    req: HttpRequest,
    _principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::OTP)?;
    let body: OtpBody = parse(body.into_inner())?;
    if let Some(phone) = body.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        let data = super::signup::metadata(body.data)?;
        return phone_otp(&req, &state, phone, body.create_user.unwrap_or(true), data).await;
    }
    let email = email_of(body.email.as_deref(), body.phone.as_deref())?;
    let data = super::signup::metadata(body.data)?;
    let pkce = crate::pkce::challenge(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let ip = state.client_ip(&req);
    match users::find_by_email(&state.db, &email).await? {
        None => {
            if !body.create_user.unwrap_or(true) {
                return Err(AuthError::OtpDisabled);
            }
            if state.config.disable_signup {
                return Err(AuthError::SignupDisabled);
            }
            otp::check_interval(&state, otp::NO_USER, TokenType::Confirmation).await?;
            let state = state.clone();
            otp::spawn_background("otp sign-up", async move {
                let created = create_user(&state, Some(&email), None, data, false).await?;
                super::audit(
                    &state,
                    Some(&created.id),
                    "user_signedup",
                    ip.as_deref(),
                    json!({ "provider": "email", "via": "otp" }),
                )
                .await;
                super::announce(&state, true, &created, "email").await;
                if let Some(challenge) = &pkce {
                    crate::pkce::start(&state, &created.id, challenge, "email/signup").await?;
                }
                otp::send(
                    &state,
                    &created,
                    TokenType::Confirmation,
                    &email,
                    &redirect_to,
                    None,
                )
                .await
            });
        }
        Some(user) => {
            let ty = if user.email_confirmed_at.is_some() {
                TokenType::MagicLink
            } else {
                TokenType::Confirmation
            };
            otp::check_interval(&state, &user.id, ty).await?;
            let state = state.clone();
            otp::spawn_background("magic link", async move {
                if let Some(challenge) = &pkce {
                    crate::pkce::start(&state, &user.id, challenge, "magiclink").await?;
                }
                otp::send(&state, &user, ty, &email, &redirect_to, None).await
            });
        }
    }
    Ok(ok(&json!({})))
}

#[derive(Debug, Default, Deserialize)]
struct RecoverBody {
    email: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

pub(crate) async fn recover(
    req: HttpRequest,
    _principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::OTP)?;
    let body: RecoverBody = parse(body.into_inner())?;
    let email = email_of(body.email.as_deref(), None)?;
    let pkce = crate::pkce::challenge(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let Some(user) = users::find_by_email(&state.db, &email).await? else {
        otp::check_interval(&state, otp::NO_USER, TokenType::Recovery).await?;
        return Ok(ok(&json!({})));
    };
    otp::check_interval(&state, &user.id, TokenType::Recovery).await?;
    let ip = state.client_ip(&req);
    let state = state.clone();
    otp::spawn_background("recovery", async move {
        if let Some(challenge) = &pkce {
            crate::pkce::start(&state, &user.id, challenge, "recovery").await?;
        }
        otp::send(
            &state,
            &user,
            TokenType::Recovery,
            &email,
            &redirect_to,
            None,
        )
        .await?;
        super::audit(
            &state,
            Some(&user.id),
            "user_recovery_requested",
            ip.as_deref(),
            json!({}),
        )
        .await;
        Ok(())
    });
    Ok(ok(&json!({})))
}

#[derive(Debug, Default, Deserialize)]
struct ResendBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

pub(crate) async fn resend(
    req: HttpRequest,
    _principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::OTP)?;
    let body: ResendBody = parse(body.into_inner())?;
    let kind = body.kind.as_deref().unwrap_or_default();
    if !matches!(kind, "signup" | "email_change" | "phone_change") {
        return Err(AuthError::Validation(format!(
            "Missing one of these types: signup, email_change, phone_change (got {kind:?})"
        )));
    }
    if kind == "phone_change" {
        return resend_phone_change(state, body.email.as_deref(), body.phone.as_deref()).await;
    }
    let email = email_of(body.email.as_deref(), body.phone.as_deref())?;
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let found = users::find_by_email(&state.db, &email).await?;
    if kind == "signup" {
        let Some(user) = found.filter(|u| u.email_confirmed_at.is_none()) else {
            otp::check_interval(&state, otp::NO_USER, TokenType::Confirmation).await?;
            return Ok(ok(&json!({})));
        };
        otp::check_interval(&state, &user.id, TokenType::Confirmation).await?;
        let state = state.clone();
        otp::spawn_background("confirmation resend", async move {
            otp::send(
                &state,
                &user,
                TokenType::Confirmation,
                &email,
                &redirect_to,
                None,
            )
            .await
        });
    } else {
        let Some((user, new_email)) =
            found.and_then(|u| u.email_change.clone().map(|new| (u, new)))
        else {
            otp::check_interval(&state, otp::NO_USER, TokenType::EmailChangeNew).await?;
            return Ok(ok(&json!({})));
        };
        otp::check_interval(&state, &user.id, TokenType::EmailChangeNew).await?;
        let state = state.clone();
        otp::spawn_background("email change resend", async move {
            otp::send(
                &state,
                &user,
                TokenType::EmailChangeNew,
                &new_email,
                &redirect_to,
                Some(&new_email),
            )
            .await?;
            if !user.is_anonymous {
                otp::send(
                    &state,
                    &user,
                    TokenType::EmailChangeCurrent,
                    &email,
                    &redirect_to,
                    Some(&new_email),
                )
                .await?;
            }
            Ok(())
        });
    }
    Ok(ok(&json!({})))
}

/// `/resend` type `phone_change`: finds the account by its email or its
/// current number and texts a new code to the pending number, off the
/// response path; answers `{}` whether or not there is such an account
/// with a pending change (after the same lookup and send-interval read).
async fn resend_phone_change(
    state: State,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<HttpResponse> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    let phone = phone.map(str::trim).filter(|p| !p.is_empty());
    let found = match (email, phone) {
        (Some(_), Some(_)) => {
            return Err(AuthError::Validation(
                "Only an email address or phone number should be provided.".into(),
            ));
        }
        (None, Some(phone)) => {
            if !state.config.phone_enabled {
                return Err(AuthError::PhoneProviderDisabled);
            }
            let phone = crate::sms::normalize_phone(phone).ok_or_else(|| {
                AuthError::Validation("Invalid phone number format (E.164 required)".into())
            })?;
            users::find_by_phone(&state.db, &phone).await?
        }
        (Some(email), None) => {
            let email = email_of(Some(email), None)?;
            users::find_by_email(&state.db, &email).await?
        }
        (None, None) => {
            return Err(AuthError::Validation(
                "Missing email address or phone number".into(),
            ));
        }
    };
    let Some((user, new_phone)) = found.and_then(|u| u.phone_change.clone().map(|p| (u, p))) else {
        otp::check_interval(&state, otp::NO_USER, TokenType::PhoneChange).await?;
        return Ok(ok(&json!({})));
    };
    otp::check_interval(&state, &user.id, TokenType::PhoneChange).await?;
    otp::spawn_background("phone change resend", async move {
        otp::send_sms_of(&state, &user, TokenType::PhoneChange, &new_phone).await?;
        Ok(())
    });
    Ok(ok(&json!({})))
}

/// `/otp` with a phone: texts a code (creating the user unless
/// `create_user` is false); answers `{"message_id"}`.
async fn phone_otp(
    req: &HttpRequest,
    state: &crate::state::AuthState,
    phone: &str,
    create: bool,
    data: serde_json::Map<String, Value>,
) -> Result<HttpResponse> {
    if !state.config.phone_enabled {
        return Err(AuthError::PhoneProviderDisabled);
    }
    let phone = crate::sms::normalize_phone(phone).ok_or_else(|| {
        AuthError::Validation("Invalid phone number format (E.164 required)".into())
    })?;
    let user = match users::find_by_phone(&state.db, &phone).await? {
        Some(user) => {
            otp::check_interval(state, &user.id, TokenType::Sms).await?;
            user
        }
        None if !create => return Err(AuthError::OtpDisabled),
        None if state.config.disable_signup => return Err(AuthError::SignupDisabled),
        None => {
            let created = create_phone_user(state, &phone, None, data, false).await?;
            super::audit(
                state,
                Some(&created.id),
                "user_signedup",
                state.client_ip(req).as_deref(),
                json!({ "provider": "phone", "via": "otp" }),
            )
            .await;
            super::announce(state, true, &created, "phone").await;
            created
        }
    };
    let message_id = otp::send_sms(state, &user, &phone).await?;
    Ok(ok(&json!({ "message_id": message_id })))
}

/// Inserts a phone user (confirmed or not) and its `phone` identity.
pub(crate) async fn create_phone_user(
    state: &crate::state::AuthState,
    phone: &str,
    password_hash: Option<String>,
    data: serde_json::Map<String, Value>,
    confirmed: bool,
) -> Result<crate::entity::user::Model> {
    use crate::entity::{identity, user};
    use sea_orm::{ActiveModelTrait, TransactionTrait};
    let now = chrono::Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let txn = state.db.begin().await?;
    let created = user::ActiveModel::from(user::Model {
        id: id.clone(),
        aud: state.config.jwt_aud.clone(),
        role: "authenticated".to_owned(),
        email: None,
        phone: Some(phone.to_owned()),
        encrypted_password: password_hash,
        email_confirmed_at: None,
        phone_confirmed_at: confirmed.then_some(now),
        invited_at: None,
        confirmation_sent_at: None,
        recovery_sent_at: None,
        email_change: None,
        email_change_sent_at: None,
        phone_change: None,
        phone_change_sent_at: None,
        last_sign_in_at: None,
        raw_app_meta_data: json!({ "provider": "phone", "providers": ["phone"] }).to_string(),
        raw_user_meta_data: Value::Object(data).to_string(),
        is_anonymous: false,
        banned_until: None,
        failed_sign_ins: 0,
        failed_sign_ins_since: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    })
    .insert(&txn)
    .await?;
    identity::ActiveModel::from(identity::Model {
        id: uuid::Uuid::new_v4().to_string(),
        provider_id: id.clone(),
        user_id: id.clone(),
        identity_data:
            json!({ "sub": id, "phone": phone, "email_verified": false, "phone_verified": confirmed })
                .to_string(),
        provider: "phone".to_owned(),
        email: None,
        last_sign_in_at: None,
        created_at: now,
        updated_at: now,
    })
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(created)
}
