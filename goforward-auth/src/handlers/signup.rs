//! `POST /signup`: email + password sign-up, and anonymous sign-in (no
//! email and no phone).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, EntityTrait, Set, TransactionTrait};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{RedirectQuery, State, announce, audit, ok, parse, session_ok};
use crate::entity::{identity, user};
use crate::error::{AuthError, Result};
use crate::otp::{self, TokenType};
use crate::password;
use crate::sessions::{self, ClientMeta};
use crate::state::{AuthState, groups};
use crate::users;

#[derive(Debug, Default, Deserialize)]
struct SignupBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    data: Option<Value>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `data` must be an object (or absent / null).
pub(crate) fn metadata(data: Option<Value>) -> Result<Map<String, Value>> {
    match data {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(AuthError::BadJson(
            "Could not parse request body as JSON: data must be an object".into(),
        )),
    }
}

/// Inserts a user (and its identity unless anonymous) in one transaction.
pub(crate) async fn create_user(
    state: &AuthState,
    email: Option<&str>,
    password_hash: Option<String>,
    data: Map<String, Value>,
    confirmed: bool,
) -> Result<user::Model> {
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let anonymous = email.is_none();
    let provider = if anonymous { "anonymous" } else { "email" };
    let app_metadata = json!({ "provider": provider, "providers": [provider] });
    let model = user::Model {
        id: id.clone(),
        aud: state.config.jwt_aud.clone(),
        role: "authenticated".to_owned(),
        email: email.map(str::to_owned),
        phone: None,
        encrypted_password: password_hash,
        email_confirmed_at: (confirmed && !anonymous).then_some(now),
        phone_confirmed_at: None,
        invited_at: None,
        confirmation_sent_at: None,
        recovery_sent_at: None,
        email_change: None,
        email_change_sent_at: None,
        phone_change: None,
        phone_change_sent_at: None,
        last_sign_in_at: None,
        raw_app_meta_data: app_metadata.to_string(),
        raw_user_meta_data: Value::Object(data).to_string(),
        is_anonymous: anonymous,
        banned_until: None,
        failed_sign_ins: 0,
        failed_sign_ins_since: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let txn = state.db.begin().await?;
    let created = user::ActiveModel::from(model).insert(&txn).await?;
    if let Some(email) = email {
        identity::ActiveModel::from(identity::Model {
            id: uuid::Uuid::new_v4().to_string(),
            provider_id: id.clone(),
            user_id: id.clone(),
            identity_data: json!({
                "sub": id,
                "email": email,
                "email_verified": confirmed,
                "phone_verified": false,
            })
            .to_string(),
            provider: "email".to_owned(),
            email: Some(email.to_owned()),
            last_sign_in_at: None,
            created_at: now,
            updated_at: now,
        })
        .insert(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(created)
}

pub(crate) async fn signup(
    req: HttpRequest,
    _principal: goforward_core::Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::SIGN_IN)?;
    let body: SignupBody = parse(body.into_inner())?;
    let data = metadata(body.data)?;
    let pkce = crate::pkce::challenge(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    let meta = ClientMeta::of(&state, &req);
    let email = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let phone = body
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());

    if email.is_none() && phone.is_none() {
        return anonymous(&state, data, &meta).await;
    }
    if state.config.disable_signup {
        return Err(AuthError::SignupDisabled);
    }
    let Some(email) = email else {
        let phone = phone.unwrap_or_default();
        return phone_signup(&state, phone, body.password.as_deref(), data, &meta).await;
    };
    let email = users::normalize_email(email);
    if !users::valid_email(&email) {
        return Err(AuthError::EmailAddressInvalid);
    }
    let Some(password) = body.password.as_deref() else {
        return Err(AuthError::Validation(
            "Signup requires a valid password".into(),
        ));
    };
    password::check_policy(password, state.config.password_min_length)?;
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let hash = password::hash(password, state.config.bcrypt_cost).await?;

    if let Some(existing) = users::find_by_email(&state.db, &email).await? {
        if existing.email_confirmed_at.is_some() {
            if state.config.mailer_autoconfirm {
                return Err(AuthError::UserAlreadyExists);
            }
            // No enumeration: answer like a fresh sign-up, with a user that
            // has no identities (auth-js's "already registered" hint), and send nothing.
            return Ok(ok(&obfuscated(&existing, &data)));
        }
        // Unconfirmed: take the new password and metadata, confirm again.
        otp::check_interval(&state, &existing.id, TokenType::Confirmation).await?;
        let mut active: user::ActiveModel = existing.into();
        active.encrypted_password = Set(Some(hash));
        active.raw_user_meta_data = Set(Value::Object(data).to_string());
        active.updated_at = Set(Utc::now());
        let updated = active.update(&state.db).await?;
        if let Some(challenge) = &pkce {
            crate::pkce::start(&state, &updated.id, challenge, "email/signup").await?;
        }
        otp::send(
            &state,
            &updated,
            TokenType::Confirmation,
            &email,
            &redirect_to,
            None,
        )
        .await?;
        let fresh = users::find_by_id(&state.db, &updated.id)
            .await?
            .unwrap_or(updated);
        return Ok(ok(&users::user_json(&state.db, &fresh).await?));
    }

    let autoconfirm = state.config.mailer_autoconfirm;
    let created =
        match create_user(&state, Some(&email), Some(hash), data.clone(), autoconfirm).await {
            Ok(user) => user,
            Err(AuthError::Database(err)) if is_unique_violation(&err) => {
                // Lost a race with a concurrent sign-up of the same address.
                return Err(AuthError::UserAlreadyExists);
            }
            Err(err) => return Err(err),
        };
    audit(
        &state,
        Some(&created.id),
        "user_signedup",
        meta.ip.as_deref(),
        json!({ "provider": "email" }),
    )
    .await;
    announce(&state, true, &created, "email").await;
    if autoconfirm {
        let session = sessions::issue(&state, &created, "password", &meta).await?;
        announce(&state, false, &created, "email").await;
        return Ok(session_ok(&session));
    }
    if let Some(challenge) = &pkce {
        crate::pkce::start(&state, &created.id, challenge, "email/signup").await?;
    }
    if let Err(err) = otp::send(
        &state,
        &created,
        TokenType::Confirmation,
        &email,
        &redirect_to,
        None,
    )
    .await
    {
        // The account cannot be confirmed without its email: undo the sign-up.
        if let Err(cleanup) = user::Entity::delete_by_id(created.id.clone())
            .exec(&state.db)
            .await
        {
            tracing::warn!(error = %cleanup, "could not remove the unconfirmable user");
        }
        return Err(err);
    }
    let fresh = users::find_by_id(&state.db, &created.id)
        .await?
        .unwrap_or(created);
    Ok(ok(&users::user_json(&state.db, &fresh).await?))
}

async fn anonymous(
    state: &AuthState,
    data: Map<String, Value>,
    meta: &ClientMeta,
) -> Result<HttpResponse> {
    if !state.config.anonymous_users {
        return Err(AuthError::AnonymousProviderDisabled);
    }
    if state.config.disable_signup {
        return Err(AuthError::SignupDisabled);
    }
    let created = create_user(state, None, None, data, false).await?;
    audit(
        state,
        Some(&created.id),
        "user_signedup",
        meta.ip.as_deref(),
        json!({ "provider": "anonymous" }),
    )
    .await;
    announce(state, true, &created, "anonymous").await;
    let session = sessions::issue(state, &created, "anonymous", meta).await?;
    Ok(session_ok(&session))
}

/// What a sign-up with an already-confirmed address answers: a plausible
/// user with a random id and no identities.
fn obfuscated(existing: &user::Model, data: &Map<String, Value>) -> Value {
    let now = users::ts(&Utc::now());
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "aud": existing.aud,
        "role": existing.role,
        "email": existing.email.clone().unwrap_or_default(),
        "phone": "",
        "confirmation_sent_at": now,
        "app_metadata": { "provider": "email", "providers": ["email"] },
        "user_metadata": data,
        "identities": [],
        "created_at": now,
        "updated_at": now,
        "is_anonymous": false,
    })
}

/// True for a unique-constraint violation (SQLite and PostgreSQL).
pub(crate) fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// `POST /signup` with `phone` + `password`: an SMS code confirms the
/// number (or, with `phone_autoconfirm`, a session right away).
async fn phone_signup(
    state: &AuthState,
    phone: &str,
    password: Option<&str>,
    data: Map<String, Value>,
    meta: &ClientMeta,
) -> Result<HttpResponse> {
    if !state.config.phone_enabled {
        return Err(AuthError::PhoneProviderDisabled);
    }
    let phone = crate::sms::normalize_phone(phone).ok_or_else(|| {
        AuthError::Validation("Invalid phone number format (E.164 required)".into())
    })?;
    let Some(password) = password else {
        return Err(AuthError::Validation(
            "Signup requires a valid password".into(),
        ));
    };
    password::check_policy(password, state.config.password_min_length)?;
    let hash = password::hash(password, state.config.bcrypt_cost).await?;
    let autoconfirm = state.config.phone_autoconfirm;
    if let Some(existing) = users::find_by_phone(&state.db, &phone).await? {
        if existing.phone_confirmed_at.is_some() {
            if autoconfirm {
                return Err(AuthError::UserAlreadyExists);
            }
            return Ok(ok(&obfuscated(&existing, &data)));
        }
        otp::check_interval(state, &existing.id, TokenType::Sms).await?;
        let mut active: user::ActiveModel = existing.into();
        active.encrypted_password = Set(Some(hash));
        active.raw_user_meta_data = Set(Value::Object(data).to_string());
        active.updated_at = Set(Utc::now());
        let updated = active.update(&state.db).await?;
        otp::send_sms(state, &updated, &phone).await?;
        return Ok(ok(&users::user_json(&state.db, &updated).await?));
    }
    let created = super::otp::create_phone_user(state, &phone, Some(hash), data, autoconfirm)
        .await
        .map_err(|e| match e {
            AuthError::Database(db) if is_unique_violation(&db) => AuthError::UserAlreadyExists,
            other => other,
        })?;
    audit(
        state,
        Some(&created.id),
        "user_signedup",
        meta.ip.as_deref(),
        json!({ "provider": "phone" }),
    )
    .await;
    announce(state, true, &created, "phone").await;
    if autoconfirm {
        let session = sessions::issue(state, &created, "password", meta).await?;
        announce(state, false, &created, "phone").await;
        return Ok(session_ok(&session));
    }
    otp::send_sms(state, &created, &phone).await?;
    let fresh = users::find_by_id(&state.db, &created.id)
        .await?
        .unwrap_or(created);
    Ok(ok(&users::user_json(&state.db, &fresh).await?))
}
