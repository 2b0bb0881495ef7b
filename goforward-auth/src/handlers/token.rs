//! `POST /token?grant_type=password|refresh_token`.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, announce, audit, parse, session_ok};
use crate::error::{AuthError, Result};
use crate::password;
use crate::sessions::{self, ClientMeta};
use crate::state::{AuthState, groups};
use crate::users;

#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    grant_type: Option<String>,
    provider: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PasswordGrant {
    email: Option<String>,
    phone: Option<String>,
    username: Option<String>,
    password: Option<String>,
    provider: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PkceGrant {
    auth_code: Option<String>,
    code_verifier: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefreshGrant {
    refresh_token: Option<String>,
}

pub(crate) async fn token(
    req: HttpRequest,
    _principal: goforward_core::Principal,
    state: State,
    query: web::Query<TokenQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    match query.grant_type.as_deref() {
        Some("password") => {
            state.limit(&req, groups::SIGN_IN)?;
            let grant: PasswordGrant = parse(body.into_inner())?;
            password_grant(&state, &req, query.provider.clone(), grant).await
        }
        Some("refresh_token") => {
            state.limit(&req, groups::REFRESH)?;
            let grant: RefreshGrant = parse(body.into_inner())?;
            let from_cookie = req
                .extensions()
                .get::<crate::cookies::CookieRefresh>()
                .map(|c| c.0.clone());
            let token = grant
                .refresh_token
                .filter(|t| !t.trim().is_empty())
                .or(from_cookie)
                .ok_or_else(|| AuthError::InvalidRequest("refresh_token required".into()))?;
            if token.len() > 256 {
                return Err(AuthError::RefreshTokenNotFound);
            }
            let session =
                crate::rotation::refresh(state.clone().into_inner(), token.trim()).await?;
            Ok(session_ok(&session))
        }
        Some("pkce") => {
            state.limit(&req, groups::VERIFY)?;
            let grant: PkceGrant = parse(body.into_inner())?;
            pkce_grant(&state, &req, grant).await
        }
        _ => Err(AuthError::UnsupportedGrantType),
    }
}

async fn password_grant(
    state: &AuthState,
    req: &HttpRequest,
    named_provider: Option<String>,
    grant: PasswordGrant,
) -> Result<HttpResponse> {
    let password = grant.password.unwrap_or_default();
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let email = nonempty(grant.email);
    let identifier = email.clone().or_else(|| nonempty(grant.username));
    if let Some(name) = nonempty(named_provider.or(grant.provider)) {
        let Some(found) = state.providers.iter().find(|(n, _)| *n == name) else {
            return Err(AuthError::Validation(format!(
                "Unsupported provider: {name}"
            )));
        };
        let Some(identifier) = identifier else {
            return Err(AuthError::Validation(
                "An email or username is required".into(),
            ));
        };
        let providers = [found.clone()];
        return provider_sign_in(state, req, &providers, identifier, password)
            .await?
            .ok_or(AuthError::InvalidCredentials);
    }
    let local = match &email {
        Some(email) => local_sign_in(state, req, Login::Email(email), &password).await?,
        None if grant.phone.as_deref().is_some_and(|p| !p.trim().is_empty()) => {
            let phone = grant.phone.as_deref().unwrap_or_default();
            local_sign_in(state, req, Login::Phone(phone), &password).await?
        }
        None if identifier.is_some() && !state.providers.is_empty() => None,
        None => {
            return Err(AuthError::Validation(
                "Only an email address or phone number should be provided on login.".into(),
            ));
        }
    };
    if let Some(response) = local {
        return Ok(response);
    }
    if let Some(identifier) = identifier.filter(|_| !state.providers.is_empty())
        && let Some(response) =
            provider_sign_in(state, req, &state.providers, identifier, password).await?
    {
        return Ok(response);
    }
    Err(AuthError::InvalidCredentials)
}

/// Email + local password; `Ok(None)` when they do not match.
/// How a local account is addressed.
enum Login<'a> {
    Email(&'a str),
    Phone(&'a str),
}

async fn local_sign_in(
    state: &AuthState,
    req: &HttpRequest,
    login: Login<'_>,
    password: &str,
) -> Result<Option<HttpResponse>> {
    let (user, provider) = match login {
        Login::Email(email) => (
            users::find_by_email(&state.db, &users::normalize_email(email)).await?,
            "email",
        ),
        Login::Phone(phone) => match crate::sms::normalize_phone(phone) {
            Some(phone) if state.config.phone_enabled => {
                (users::find_by_phone(&state.db, &phone).await?, "phone")
            }
            _ => (None, "phone"),
        },
    };
    if let Some(u) = &user
        && let Some(retry_after_secs) = locked_out(state, u)
    {
        return Err(AuthError::OverRequestRateLimit { retry_after_secs });
    }
    // The unknown-user path costs one bcrypt verification too (no timing oracle).
    let stored = match user.as_ref().and_then(|u| u.encrypted_password.clone()) {
        Some(hash) => hash,
        None => state.dummy_hash().await?,
    };
    let matches = password::verify(password, &stored).await;
    let user = match user {
        Some(user) if matches && user.encrypted_password.is_some() => user,
        Some(user) => {
            record_failure(state, &user).await?;
            audit(
                state,
                Some(&user.id),
                "login_failed",
                state.client_ip(req).as_deref(),
                json!({}),
            )
            .await;
            return Ok(None);
        }
        None => {
            // The same work as a wrong password (one UPDATE, one audit row),
            // so timing does not tell whether the account exists.
            record_unknown_failure(state).await?;
            audit(
                state,
                None,
                "login_failed",
                state.client_ip(req).as_deref(),
                json!({}),
            )
            .await;
            return Ok(None);
        }
    };
    if provider == "email" && user.email_confirmed_at.is_none() && !state.config.mailer_autoconfirm
    {
        return Err(AuthError::EmailNotConfirmed);
    }
    if provider == "phone" && user.phone_confirmed_at.is_none() && !state.config.phone_autoconfirm {
        return Err(AuthError::PhoneNotConfirmed);
    }
    if user.banned_until.is_some_and(|until| until > Utc::now()) {
        return Err(AuthError::UserBanned);
    }
    let user = upgrade_hash(state, user, password).await?;
    let user = if user.failed_sign_ins > 0 {
        let mut active: crate::entity::user::ActiveModel = user.into();
        active.failed_sign_ins = Set(0);
        active.failed_sign_ins_since = Set(None);
        active.update(&state.db).await?
    } else {
        user
    };
    let meta = ClientMeta::of(state, req);
    let session = sessions::issue(state, &user, "password", &meta).await?;
    audit(
        state,
        Some(&user.id),
        "login",
        meta.ip.as_deref(),
        json!({ "provider": provider }),
    )
    .await;
    announce(state, false, &user, provider).await;
    Ok(Some(session_ok(&session)))
}

/// Asks `providers` in order; the first that knows the credentials signs the user in.
async fn provider_sign_in(
    state: &AuthState,
    req: &HttpRequest,
    providers: &[(
        String,
        std::sync::Arc<dyn crate::provider::CustomAuthProvider>,
    )],
    identifier: String,
    password: String,
) -> Result<Option<HttpResponse>> {
    if identifier.len() > 1024 || password.len() > 1024 {
        return Ok(None);
    }
    let credentials = crate::provider::Credentials {
        identifier,
        password,
    };
    for (name, provider) in providers {
        let found = provider
            .authenticate(&credentials)
            .await
            .map_err(|e| AuthError::Internal(format!("provider {name}: {e}")))?;
        let Some(found) = found else { continue };
        let (user, created) = crate::provider::user_for(state, name, found).await?;
        if user.banned_until.is_some_and(|until| until > Utc::now()) {
            return Err(AuthError::UserBanned);
        }
        let meta = ClientMeta::of(state, req);
        if created {
            audit(
                state,
                Some(&user.id),
                "user_signedup",
                meta.ip.as_deref(),
                json!({ "provider": name }),
            )
            .await;
            announce(state, true, &user, name).await;
        }
        let session = sessions::issue(state, &user, "password", &meta).await?;
        audit(
            state,
            Some(&user.id),
            "login",
            meta.ip.as_deref(),
            json!({ "provider": name }),
        )
        .await;
        announce(state, false, &user, name).await;
        return Ok(Some(session_ok(&session)));
    }
    Ok(None)
}

/// Re-hashes a password stored with a lower bcrypt cost than configured.
async fn upgrade_hash(
    state: &AuthState,
    user: crate::entity::user::Model,
    password: &str,
) -> Result<crate::entity::user::Model> {
    let current = user
        .encrypted_password
        .as_deref()
        .and_then(password::cost_of)
        .unwrap_or(state.config.bcrypt_cost);
    if current >= state.config.bcrypt_cost {
        return Ok(user);
    }
    let hash = password::hash(password, state.config.bcrypt_cost).await?;
    let mut active: crate::entity::user::ActiveModel = user.into();
    active.encrypted_password = Set(Some(hash));
    Ok(active.update(&state.db).await?)
}

/// Seconds until `user` may try again, when the account is locked out.
fn locked_out(state: &AuthState, user: &crate::entity::user::Model) -> Option<u64> {
    let max = state.config.lockout_max_failed_sign_ins;
    let since = user.failed_sign_ins_since?;
    let end = since + chrono::Duration::seconds(state.config.lockout_window_secs);
    let now = Utc::now();
    (max > 0 && user.failed_sign_ins >= max as i32 && end > now)
        .then(|| (end - now).num_seconds().max(1) as u64)
}

/// Counts a failed password sign-in in the account's lockout window
/// (atomically, so concurrent failures all count).
async fn record_failure(state: &AuthState, user: &crate::entity::user::Model) -> Result<()> {
    use crate::entity::user;
    use sea_orm::{
        ColumnTrait, EntityTrait, QueryFilter,
        sea_query::{Expr, ExprTrait},
    };
    let now = Utc::now();
    let window_over = user.failed_sign_ins_since.is_none_or(|since| {
        since + chrono::Duration::seconds(state.config.lockout_window_secs) <= now
    });
    let update = user::Entity::update_many().filter(user::Column::Id.eq(user.id.clone()));
    let update = if window_over {
        update
            .col_expr(user::Column::FailedSignIns, Expr::value(1))
            .col_expr(user::Column::FailedSignInsSince, Expr::value(now))
    } else {
        update.col_expr(
            user::Column::FailedSignIns,
            Expr::col(user::Column::FailedSignIns).add(1),
        )
    };
    update.exec(&state.db).await?;
    Ok(())
}

async fn pkce_grant(
    state: &AuthState,
    req: &HttpRequest,
    grant: PkceGrant,
) -> Result<HttpResponse> {
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (Some(code), Some(verifier)) = (nonempty(grant.auth_code), nonempty(grant.code_verifier))
    else {
        return Err(AuthError::Validation(
            "invalid request: both auth code and code verifier should be non-empty".into(),
        ));
    };
    let redeemed = crate::pkce::redeem_flow(state, &code, &verifier).await?;
    let (user_id, method) = (redeemed.user_id.clone(), redeemed.method.clone());
    let user = users::find_by_id(&state.db, &user_id)
        .await?
        .ok_or(AuthError::FlowStateNotFound)?;
    if user.banned_until.is_some_and(|until| until > Utc::now()) {
        return Err(AuthError::UserBanned);
    }
    let meta = ClientMeta::of(state, req);
    let mut session = sessions::issue(state, &user, &method, &meta).await?;
    redeemed.add_provider_tokens(&mut session);
    audit(
        state,
        Some(&user.id),
        "login",
        meta.ip.as_deref(),
        json!({ "method": method, "flow": "pkce" }),
    )
    .await;
    announce(state, false, &user, "email").await;
    Ok(session_ok(&session))
}

/// The unknown-account twin of [`record_failure`]: the same UPDATE, matching no row.
async fn record_unknown_failure(state: &AuthState) -> Result<()> {
    use crate::entity::user;
    use sea_orm::{
        ColumnTrait, EntityTrait, QueryFilter,
        sea_query::{Expr, ExprTrait},
    };
    user::Entity::update_many()
        .filter(user::Column::Id.eq(uuid::Uuid::nil().to_string()))
        .col_expr(
            user::Column::FailedSignIns,
            Expr::col(user::Column::FailedSignIns).add(1),
        )
        .exec(&state.db)
        .await?;
    Ok(())
}
