//! `GET /user`, `PUT /user`, `POST /logout`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use goforward_core::{Principal, Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{RedirectQuery, State, audit, current, ok, parse};
use crate::entity::{identity, mfa_factor, session, user};
use crate::error::{API_VERSION, AuthError, Result};
use crate::otp::{self, TokenType};
use crate::password;
use crate::sessions::{self, ClientMeta};
use crate::state::AuthState;
use crate::users;

/// `GET /user`: one statement on the happy path (see [`joined_profile`]);
/// any other case goes the way of [`current`], so the errors and their
/// order are the same as on every other route.
pub(crate) async fn get_user(principal: Principal, state: State) -> Result<HttpResponse> {
    if let Some((user, identities, factors)) = joined_profile(&state.db, &principal).await? {
        return Ok(ok(&users::render(&user, &identities, &factors)));
    }
    let (user, _) = current(&state, &principal).await?;
    Ok(ok(&users::user_json(&state.db, &user).await?))
}

/// The token's session, its user, the user's identities and MFA factors
/// (each oldest first) in one statement: the session joined to its user,
/// left-joined to the identities and to the factors, a row per identity ×
/// factor pair (a user has a handful of each). Every statement is a round
/// trip to a database thread and back, and under CPU load each of those
/// wake-ups can wait a scheduler tick, so the read the client SDKs repeat
/// most makes one instead of three.
///
/// `None` unless the token is a user's with a session, the session is that
/// user's and not past its end, and the user is live and not banned; the
/// caller then takes [`current`]'s path, which names the error.
async fn joined_profile(
    db: &sea_orm::DatabaseConnection,
    principal: &Principal,
) -> Result<Option<(user::Model, Vec<identity::Model>, Vec<mfa_factor::Model>)>> {
    let (Some(user_id), Some(session_id)) = (
        principal.user_id.as_deref(),
        principal.session_id.as_deref(),
    ) else {
        return Ok(None);
    };
    if principal.role == Role::Anon || principal.role == Role::ServiceRole {
        return Ok(None);
    }
    let rows = session::Entity::find_by_id(session_id.to_owned())
        .find_also_related(user::Entity)
        .and_also_related(identity::Entity)
        .find_also(user::Entity, mfa_factor::Entity)
        .all(db)
        .await?;
    let now = Utc::now();
    let mut rows = rows.into_iter();
    let Some((session, Some(user), identity, factor)) = rows.next() else {
        return Ok(None);
    };
    let live = session.user_id == user_id
        && session.not_after.is_none_or(|end| end > now)
        && user.deleted_at.is_none()
        && user.banned_until.is_none_or(|until| until <= now);
    if !live {
        return Ok(None);
    }
    let mut identities: Vec<identity::Model> = identity.into_iter().collect();
    let mut factors: Vec<mfa_factor::Model> = factor.into_iter().collect();
    for (_, _, identity, factor) in rows {
        if let Some(identity) = identity
            && !identities.iter().any(|known| known.id == identity.id)
        {
            identities.push(identity);
        }
        if let Some(factor) = factor
            && !factors.iter().any(|known| known.id == factor.id)
        {
            factors.push(factor);
        }
    }
    identities.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    factors.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(Some((user, identities, factors)))
}

/// Fields only the server (or an admin) may set; sending one is refused.
const SERVER_ONLY: [&str; 14] = [
    "app_metadata",
    "role",
    "aud",
    "id",
    "email_confirmed_at",
    "phone_confirmed_at",
    "confirmed_at",
    "is_anonymous",
    "banned_until",
    "created_at",
    "updated_at",
    "deleted_at",
    "is_super_admin",
    "identities",
];

#[derive(Debug, Default, Deserialize)]
struct UpdateBody {
    email: Option<String>,
    password: Option<String>,
    phone: Option<String>,
    data: Option<Value>,
    nonce: Option<String>,
}

pub(crate) async fn update_user(
    req: HttpRequest,
    principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let (user, session) = current(&state, &principal).await?;
    let body = body.into_inner();
    let Value::Object(fields) = &body else {
        return Err(AuthError::BadJson(
            "Could not parse request body as JSON: expected an object".into(),
        ));
    };
    if let Some(field) = SERVER_ONLY
        .iter()
        .find(|f| fields.get(**f).is_some_and(|v| !v.is_null()))
    {
        return Err(AuthError::NotAdmin(format!(
            "Updating {field} requires admin privileges"
        )));
    }
    let update: UpdateBody = parse(body)?;
    let data = super::signup::metadata(update.data)?;
    let new_phone = match update
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => {
            if !state.config.phone_enabled {
                return Err(AuthError::PhoneProviderDisabled);
            }
            let phone = crate::sms::normalize_phone(raw).ok_or_else(|| {
                AuthError::Validation("Invalid phone number format (E.164 required)".into())
            })?;
            (user.phone.as_deref() != Some(phone.as_str())).then_some(phone)
        }
        None => None,
    };
    let new_email = match update
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(email) => {
            let email = users::normalize_email(email);
            if !users::valid_email(&email) {
                return Err(AuthError::EmailAddressInvalid);
            }
            (user.email.as_deref() != Some(email.as_str())).then_some(email)
        }
        None => None,
    };
    // GoTrue: once the user has a verified factor, the email, the phone and
    // the password change only from an aal2 session.
    let password_change = update.password.as_deref().is_some_and(|p| !p.is_empty());
    if (password_change || new_email.is_some() || new_phone.is_some())
        && !session_is_aal2(&principal, session.as_ref())
        && has_verified_factor(&state, &user.id).await?
    {
        return Err(AuthError::InsufficientAalToUpdate);
    }
    // Validate everything before changing anything.
    let new_hash = match update.password.as_deref() {
        Some(pw) => {
            password::check_policy(pw, state.config.password_min_length)?;
            if let Some(old) = &user.encrypted_password
                && password::verify(pw, old).await
            {
                return Err(AuthError::SamePassword);
            }
            Some(password::hash(pw, state.config.bcrypt_cost).await?)
        }
        None => None,
    };
    if let Some(email) = &new_email
        && users::find_by_email(&state.db, email)
            .await?
            .is_some_and(|u| u.id != user.id)
    {
        return Err(AuthError::EmailExists);
    }
    if new_email.is_some() && !state.config.mailer_autoconfirm {
        otp::check_interval(&state, &user.id, TokenType::EmailChangeNew).await?;
    }
    if let Some(phone) = &new_phone
        && users::find_by_phone(&state.db, phone)
            .await?
            .is_some_and(|u| u.id != user.id)
    {
        return Err(AuthError::PhoneExists);
    }
    if new_phone.is_some() && !state.config.phone_autoconfirm {
        otp::check_interval(&state, &user.id, TokenType::PhoneChange).await?;
    }
    if new_hash.is_some() && state.config.password_change_requires_reauthentication {
        // The last check before any change: it consumes the nonce.
        let (Some(nonce), Some(email)) = (
            update
                .nonce
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty()),
            user.email.as_deref(),
        ) else {
            return Err(AuthError::ReauthenticationNeeded);
        };
        otp::consume_code(&state, email, nonce, &[TokenType::Reauthentication])
            .await
            .map_err(|e| match e {
                AuthError::OtpExpired => AuthError::ReauthenticationNotValid,
                other => other,
            })?;
    }

    let meta = ClientMeta::of(&state, &req);
    let mut active: user::ActiveModel = user.clone().into();
    if !data.is_empty() {
        let mut merged = users::json_object(&user.raw_user_meta_data);
        for (k, v) in data {
            if v.is_null() {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        active.raw_user_meta_data = Set(Value::Object(merged).to_string());
    }
    if let Some(hash) = &new_hash {
        active.encrypted_password = Set(Some(hash.clone()));
    }
    let autoconfirm_email = new_email.is_some() && state.config.mailer_autoconfirm;
    if autoconfirm_email && let Some(email) = &new_email {
        active.email = Set(Some(email.clone()));
        active.email_confirmed_at = Set(Some(Utc::now()));
        active.email_change = Set(None);
    }
    active.updated_at = Set(Utc::now());
    let mut updated = active.update(&state.db).await?;
    if autoconfirm_email && let Some(email) = &new_email {
        updated = apply_email(&state, updated, email).await?;
        // An email change ends the other sessions (checklist item 4).
        let ended = sessions::revoke_user_sessions(
            &state.db,
            &user.id,
            session.as_ref().map(|s| s.id.as_str()),
        )
        .await?;
        sessions::announce_revoked(&state, &user.id, Some(ended), "email_changed").await;
    }

    if new_hash.is_some() {
        // A credential change ends every other session (checklist item 4).
        let ended = sessions::revoke_user_sessions(
            &state.db,
            &user.id,
            session.as_ref().map(|s| s.id.as_str()),
        )
        .await?;
        sessions::announce_revoked(&state, &user.id, Some(ended), "password_changed").await;
        audit(
            &state,
            Some(&user.id),
            "user_updated_password",
            meta.ip.as_deref(),
            json!({}),
        )
        .await;
    }
    if let Some(email) = new_email.filter(|_| !autoconfirm_email) {
        let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
        let mut pending: user::ActiveModel = updated.clone().into();
        pending.email_change = Set(Some(email.clone()));
        updated = pending.update(&state.db).await?;
        otp::send(
            &state,
            &updated,
            TokenType::EmailChangeNew,
            &email,
            &redirect_to,
            Some(&email),
        )
        .await?;
        if let Some(old) = updated.email.clone().filter(|_| !updated.is_anonymous) {
            otp::send(
                &state,
                &updated,
                TokenType::EmailChangeCurrent,
                &old,
                &redirect_to,
                Some(&email),
            )
            .await?;
        }
        audit(
            &state,
            Some(&user.id),
            "user_modified",
            meta.ip.as_deref(),
            json!({ "email_change": true }),
        )
        .await;
        updated = users::find_by_id(&state.db, &user.id)
            .await?
            .unwrap_or(updated);
    }
    if let Some(phone) = new_phone {
        updated = change_phone(
            &state,
            updated,
            &phone,
            session.as_ref().map(|s| s.id.as_str()),
        )
        .await?;
        audit(
            &state,
            Some(&user.id),
            "user_modified",
            meta.ip.as_deref(),
            json!({ "phone_change": true }),
        )
        .await;
    }
    Ok(ok(&users::user_json(&state.db, &updated).await?))
}

/// Whether the caller's session is at aal2 (the session row when there is
/// one, else the token's claim).
fn session_is_aal2(principal: &Principal, session: Option<&crate::entity::session::Model>) -> bool {
    match session {
        Some(found) => found.aal == "aal2",
        None => principal.aal.as_deref() == Some("aal2"),
    }
}

/// Whether the user has at least one verified MFA factor.
async fn has_verified_factor(state: &AuthState, user_id: &str) -> Result<bool> {
    use crate::entity::mfa_factor;
    Ok(mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.eq(user_id))
        .filter(mfa_factor::Column::Status.eq("verified"))
        .one(&state.db)
        .await?
        .is_some())
}

/// Starts a phone change: with `phone_autoconfirm` the number is applied at
/// once (ending the other sessions), otherwise it is kept in `phone_change`
/// and an SMS code (`/verify` type `phone_change`) goes to the new number.
/// Should the SMS fail, the pending change and its code are undone.
async fn change_phone(
    state: &AuthState,
    user: user::Model,
    phone: &str,
    keep_session: Option<&str>,
) -> Result<user::Model> {
    if state.config.phone_autoconfirm {
        let updated = apply_phone(state, user, phone).await?;
        let ended = sessions::revoke_user_sessions(&state.db, &updated.id, keep_session).await?;
        sessions::announce_revoked(state, &updated.id, Some(ended), "phone_changed").await;
        return Ok(updated);
    }
    let previous = user.phone_change.clone();
    let mut pending: user::ActiveModel = user.into();
    pending.phone_change = Set(Some(phone.to_owned()));
    pending.updated_at = Set(Utc::now());
    let pending = pending.update(&state.db).await?;
    if let Err(err) = otp::send_sms_of(state, &pending, TokenType::PhoneChange, phone).await {
        otp::discard(state, &pending.id, TokenType::PhoneChange).await?;
        let mut undo: user::ActiveModel = pending.into();
        undo.phone_change = Set(previous);
        undo.update(&state.db).await?;
        return Err(err);
    }
    Ok(users::find_by_id(&state.db, &pending.id)
        .await?
        .unwrap_or(pending))
}

/// Makes `phone` the user's confirmed number: updates the phone identity
/// (creating it if the user had none; an anonymous user thereby becomes
/// permanent) and clears the pending change.
pub(crate) async fn apply_phone(
    state: &AuthState,
    user: user::Model,
    phone: &str,
) -> Result<user::Model> {
    let now = Utc::now();
    let existing = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id.clone()))
        .filter(identity::Column::Provider.eq("phone"))
        .one(&state.db)
        .await?;
    match existing {
        Some(found) => {
            let mut data = users::json_object(&found.identity_data);
            data.insert("phone".into(), json!(phone));
            data.insert("phone_verified".into(), json!(true));
            let mut active: identity::ActiveModel = found.into();
            active.identity_data = Set(Value::Object(data).to_string());
            active.updated_at = Set(now);
            active.update(&state.db).await?;
        }
        None => {
            identity::ActiveModel::from(identity::Model {
                id: uuid::Uuid::new_v4().to_string(),
                provider_id: user.id.clone(),
                user_id: user.id.clone(),
                identity_data: json!({
                    "sub": user.id,
                    "phone": phone,
                    "email_verified": false,
                    "phone_verified": true,
                })
                .to_string(),
                provider: "phone".to_owned(),
                email: None,
                last_sign_in_at: None,
                created_at: now,
                updated_at: now,
            })
            .insert(&state.db)
            .await?;
        }
    }
    let mut app: Map<String, Value> = users::json_object(&user.raw_app_meta_data);
    let mut providers: Vec<Value> = app
        .get("providers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !providers.iter().any(|p| p == "phone") {
        providers.push(json!("phone"));
    }
    if user.is_anonymous || !app.contains_key("provider") {
        app.insert("provider".into(), json!("phone"));
    }
    if user.is_anonymous {
        providers.retain(|p| p != "anonymous");
    }
    app.insert("providers".into(), Value::Array(providers));
    let mut active: user::ActiveModel = user.into();
    active.phone = Set(Some(phone.to_owned()));
    active.phone_confirmed_at = Set(Some(now));
    active.phone_change = Set(None);
    active.raw_app_meta_data = Set(Value::Object(app).to_string());
    active.is_anonymous = Set(false);
    active.updated_at = Set(now);
    Ok(active.update(&state.db).await?)
}

/// Makes `email` the user's confirmed address: updates the email identity
/// (creating it for an anonymous user, who thereby becomes permanent).
pub(crate) async fn apply_email(
    state: &AuthState,
    user: user::Model,
    email: &str,
) -> Result<user::Model> {
    let now = Utc::now();
    let existing = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id.clone()))
        .filter(identity::Column::Provider.eq("email"))
        .one(&state.db)
        .await?;
    let data =
        json!({ "sub": user.id, "email": email, "email_verified": true, "phone_verified": false })
            .to_string();
    match existing {
        Some(found) => {
            let mut active: identity::ActiveModel = found.into();
            active.email = Set(Some(email.to_owned()));
            active.identity_data = Set(data);
            active.updated_at = Set(now);
            active.update(&state.db).await?;
        }
        None => {
            identity::ActiveModel::from(identity::Model {
                id: uuid::Uuid::new_v4().to_string(),
                provider_id: user.id.clone(),
                user_id: user.id.clone(),
                identity_data: data,
                provider: "email".to_owned(),
                email: Some(email.to_owned()),
                last_sign_in_at: None,
                created_at: now,
                updated_at: now,
            })
            .insert(&state.db)
            .await?;
        }
    }
    let mut active: user::ActiveModel = user.clone().into();
    active.email = Set(Some(email.to_owned()));
    active.email_confirmed_at = Set(Some(user.email_confirmed_at.unwrap_or(now)));
    active.email_change = Set(None);
    active.updated_at = Set(now);
    if user.is_anonymous {
        let mut app: Map<String, Value> = users::json_object(&user.raw_app_meta_data);
        app.insert("provider".into(), json!("email"));
        app.insert("providers".into(), json!(["email"]));
        active.raw_app_meta_data = Set(Value::Object(app).to_string());
        active.is_anonymous = Set(false);
    }
    Ok(active.update(&state.db).await?)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogoutQuery {
    scope: Option<String>,
}

pub(crate) async fn logout(
    req: HttpRequest,
    principal: Principal,
    state: State,
    query: web::Query<LogoutQuery>,
) -> Result<HttpResponse> {
    let (user, session) = super::current_allow_banned(&state, &principal).await?;
    let session_id = session.as_ref().map(|s| s.id.as_str());
    let ended = match (query.scope.as_deref().unwrap_or("global"), session_id) {
        ("global", _) | ("local", None) => {
            sessions::revoke_user_sessions(&state.db, &user.id, None).await?
        }
        ("local", Some(id)) => {
            if sessions::revoke_session(&state.db, id).await? {
                vec![id.to_owned()]
            } else {
                Vec::new()
            }
        }
        ("others", keep) => sessions::revoke_user_sessions(&state.db, &user.id, keep).await?,
        (other, _) => {
            return Err(AuthError::Validation(format!(
                "Unsupported logout scope {other:?}: expected global, local or others"
            )));
        }
    };
    sessions::announce_revoked(&state, &user.id, Some(ended), "signed_out").await;
    let ip = state.client_ip(&req);
    audit(
        &state,
        Some(&user.id),
        "logout",
        ip.as_deref(),
        json!({ "scope": query.scope }),
    )
    .await;
    let mut res = HttpResponse::NoContent()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .finish();
    res.extensions_mut().insert(crate::cookies::EndedSession);
    Ok(res)
}

/// `GET /reauthenticate`: emails a code (the `nonce` of a later password change).
pub(crate) async fn reauthenticate(
    req: HttpRequest,
    principal: Principal,
    state: State,
) -> Result<HttpResponse> {
    state.limit(&req, crate::state::groups::OTP)?;
    let (user, _) = current(&state, &principal).await?;
    let Some(email) = user.email.clone().filter(|e| !e.is_empty()) else {
        return Err(AuthError::Validation(
            "Reauthentication requires the user to have an email".into(),
        ));
    };
    otp::check_interval(&state, &user.id, TokenType::Reauthentication).await?;
    let site = state.redirects.site_url().to_string();
    otp::send(
        &state,
        &user,
        TokenType::Reauthentication,
        &email,
        &site,
        None,
    )
    .await?;
    Ok(ok(&json!({})))
}
