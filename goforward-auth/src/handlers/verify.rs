//! `POST /verify` (OTP or token hash → session) and `GET /verify` (email
//! links: 303 to `redirect_to` with the session in the fragment).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, announce, audit, ok, parse, session_ok};
use crate::entity::{identity, user};
use crate::error::{AuthError, Result};
use crate::otp::{self, TokenType};
use crate::sessions::{self, ClientMeta};
use crate::state::{AuthState, groups};
use crate::users;

#[derive(Debug, Default, Deserialize)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    token: Option<String>,
    token_hash: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

const HALF_DONE: &str =
    "Confirmation link accepted. Please proceed to confirm link sent to the other email";

enum Outcome {
    Session(Value),
    /// A PKCE flow: the browser gets `?code=` to exchange.
    Code(String),
    EmailChangeHalfDone,
}

pub(crate) async fn post_verify(
    req: HttpRequest,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::VERIFY)?;
    let body: VerifyBody = parse(body.into_inner())?;
    let kind = body.kind.as_deref().unwrap_or_default();
    let sms_kind = matches!(kind, "sms" | "phone_change");
    // An SMS code is checked against the normalized number.
    let phone = match body.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(_) | None if sms_kind && !state.config.phone_enabled => {
            return Err(AuthError::PhoneProviderDisabled);
        }
        Some(p) if sms_kind => Some(crate::sms::normalize_phone(p).ok_or_else(|| {
            AuthError::Validation("Invalid phone number format (E.164 required)".into())
        })?),
        Some(_) => {
            return Err(AuthError::Validation(
                "A phone number goes with type sms or phone_change".into(),
            ));
        }
        None => None,
    };
    let address = phone.as_deref().or(body.email.as_deref());
    let meta = ClientMeta::of(&state, &req);
    match verify(
        &state,
        kind,
        body.token.as_deref(),
        body.token_hash.as_deref(),
        address,
        &meta,
        false,
    )
    .await?
    {
        Outcome::Session(session) => Ok(session_ok(&session)),
        Outcome::EmailChangeHalfDone | Outcome::Code(_) => {
            Ok(ok(&json!({ "msg": HALF_DONE, "code": 200 })))
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct VerifyQuery {
    token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    redirect_to: Option<String>,
}

pub(crate) async fn get_verify(
    req: HttpRequest,
    state: State,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse> {
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let kind = query.kind.as_deref().unwrap_or_default();
    let limited = state.limit(&req, groups::VERIFY);
    let meta = ClientMeta::of(&state, &req);
    let result = match limited {
        Ok(()) => {
            verify(
                &state,
                kind,
                None,
                query.token.as_deref(),
                None,
                &meta,
                true,
            )
            .await
        }
        Err(err) => Err(err),
    };
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    match result {
        Ok(Outcome::Session(session)) => {
            for key in [
                "access_token",
                "expires_at",
                "expires_in",
                "refresh_token",
                "token_type",
            ] {
                let value = match &session[key] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                fragment.append_pair(key, &value);
            }
            fragment.append_pair("type", kind);
        }
        Ok(Outcome::EmailChangeHalfDone) => {
            fragment.append_pair("message", HALF_DONE);
        }
        Ok(Outcome::Code(code)) => {
            let mut target = url::Url::parse(&redirect_to)
                .map_err(|e| AuthError::Internal(format!("redirect target: {e}")))?;
            target.set_fragment(None);
            target.query_pairs_mut().append_pair("code", &code);
            return Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target.to_string()))
                .finish());
        }
        Err(err) => {
            let status = actix_web::ResponseError::status_code(&err);
            if status.is_server_error() {
                return Err(err);
            }
            fragment
                .append_pair("error", "access_denied")
                .append_pair("error_code", err.code())
                .append_pair(
                    "error_description",
                    if matches!(err, AuthError::OtpExpired) {
                        "Email link is invalid or has expired"
                    } else {
                        "Verification failed"
                    },
                );
        }
    }
    let location = format!(
        "{}#{}",
        redirect_to.split('#').next().unwrap_or_default(),
        fragment.finish()
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

async fn verify(
    state: &AuthState,
    kind: &str,
    token: Option<&str>,
    token_hash: Option<&str>,
    email: Option<&str>,
    meta: &ClientMeta,
    link: bool,
) -> Result<Outcome> {
    let Some(types) = TokenType::for_verify_type(kind) else {
        return Err(AuthError::Validation(format!(
            "Verify requires a valid type, got {kind:?}"
        )));
    };
    if link && types.iter().any(|t| t.is_sms()) {
        // SMS codes have no link (GoTrue: "Unsupported verification type").
        return Err(AuthError::Validation(format!(
            "Unsupported verification type {kind:?} for a link"
        )));
    }
    let token_hash = token_hash.map(str::trim).filter(|t| !t.is_empty());
    let token = token.map(str::trim).filter(|t| !t.is_empty());
    let ott = match (
        token_hash,
        token,
        email.map(str::trim).filter(|e| !e.is_empty()),
    ) {
        (Some(hash), _, _) => otp::consume_hash(state, hash, types).await?,
        (None, Some(code), Some(email)) => {
            otp::consume_code(state, &users::normalize_email(email), code, types).await?
        }
        _ => {
            return Err(AuthError::Validation(
                "Verify requires either a token with an email, or a token_hash".into(),
            ));
        }
    };
    let Some(ty) = TokenType::parse(&ott.token_type) else {
        return Err(AuthError::OtpExpired);
    };
    let Some(user) = users::find_by_id(&state.db, &ott.user_id).await? else {
        return Err(AuthError::OtpExpired);
    };
    if user.banned_until.is_some_and(|until| until > Utc::now()) {
        return Err(AuthError::UserBanned);
    }
    let (user, method) = match ty {
        TokenType::EmailChangeNew | TokenType::EmailChangeCurrent => {
            let other = if ty == TokenType::EmailChangeNew {
                TokenType::EmailChangeCurrent
            } else {
                TokenType::EmailChangeNew
            };
            if otp::pending(state, &user.id, other).await? {
                return Ok(Outcome::EmailChangeHalfDone);
            }
            let Some(new_email) = user.email_change.clone() else {
                return Err(AuthError::OtpExpired);
            };
            if users::find_by_email(&state.db, &new_email)
                .await?
                .is_some_and(|u| u.id != user.id)
            {
                return Err(AuthError::EmailExists);
            }
            let updated = super::user::apply_email(state, user, &new_email).await?;
            // An email change ends every other session (checklist item 4).
            let ended = sessions::revoke_user_sessions(&state.db, &updated.id, None).await?;
            sessions::announce_revoked(state, &updated.id, Some(ended), "email_changed").await;
            audit(
                state,
                Some(&updated.id),
                "user_modified",
                meta.ip.as_deref(),
                json!({ "email_changed": true }),
            )
            .await;
            (updated, "email_change")
        }
        TokenType::Sms => (confirm_phone(state, user).await?, "otp"),
        TokenType::PhoneChange => {
            // The code was sent to the pending number; it applies only that one.
            let Some(new_phone) = user.phone_change.clone().filter(|p| *p == ott.relates_to) else {
                return Err(AuthError::OtpExpired);
            };
            if users::find_by_phone(&state.db, &new_phone)
                .await?
                .is_some_and(|u| u.id != user.id)
            {
                return Err(AuthError::PhoneExists);
            }
            let updated = super::user::apply_phone(state, user, &new_phone).await?;
            // A phone change ends every other session (checklist item 4).
            let ended = sessions::revoke_user_sessions(&state.db, &updated.id, None).await?;
            sessions::announce_revoked(state, &updated.id, Some(ended), "phone_changed").await;
            audit(
                state,
                Some(&updated.id),
                "user_modified",
                meta.ip.as_deref(),
                json!({ "phone_changed": true }),
            )
            .await;
            (updated, "otp")
        }
        _ => {
            let confirmed = confirm_email(state, user).await?;
            let method = match ty {
                TokenType::Recovery => "recovery",
                TokenType::MagicLink => "magiclink",
                TokenType::Invite => "invite",
                _ => "otp",
            };
            (confirmed, method)
        }
    };
    if link && let Some(code) = crate::pkce::issue_code(state, &user.id).await? {
        return Ok(Outcome::Code(code));
    }
    let session = sessions::issue(state, &user, method, meta).await?;
    audit(
        state,
        Some(&user.id),
        "login",
        meta.ip.as_deref(),
        json!({ "method": method }),
    )
    .await;
    announce(state, false, &user, "email").await;
    Ok(Outcome::Session(session))
}

/// Marks the user's phone (and phone identity) confirmed, once.
async fn confirm_phone(state: &AuthState, user: user::Model) -> Result<user::Model> {
    if user.phone_confirmed_at.is_some() {
        return Ok(user);
    }
    let now = Utc::now();
    if let Some(found) = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id.clone()))
        .filter(identity::Column::Provider.eq("phone"))
        .one(&state.db)
        .await?
    {
        let mut data = users::json_object(&found.identity_data);
        data.insert("phone_verified".into(), json!(true));
        let mut active: identity::ActiveModel = found.into();
        active.identity_data = Set(Value::Object(data).to_string());
        active.updated_at = Set(now);
        active.update(&state.db).await?;
    }
    let mut active: user::ActiveModel = user.into();
    active.phone_confirmed_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(&state.db).await?)
}

/// Marks the user's email (and email identity) confirmed, once.
async fn confirm_email(state: &AuthState, user: user::Model) -> Result<user::Model> {
    if user.email_confirmed_at.is_some() {
        return Ok(user);
    }
    let now = Utc::now();
    if let Some(found) = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id.clone()))
        .filter(identity::Column::Provider.eq("email"))
        .one(&state.db)
        .await?
    {
        let mut data = users::json_object(&found.identity_data);
        data.insert("email_verified".into(), json!(true));
        let mut active: identity::ActiveModel = found.into();
        active.identity_data = Set(Value::Object(data).to_string());
        active.updated_at = Set(now);
        active.update(&state.db).await?;
    }
    let mut active: user::ActiveModel = user.into();
    active.email_confirmed_at = Set(Some(now));
    active.updated_at = Set(now);
    Ok(active.update(&state.db).await?)
}
