//! HTTP handlers of `/auth/v1`, one file per group of GoTrue endpoints.

mod admin;
mod factors;
mod oauth;
mod otp;
mod recovery_codes;
mod settings;
mod signup;
mod token;
mod user;
mod verify;

use actix_web::{HttpResponse, web};
use goforward_core::{Principal, Role};
use serde::Deserialize;
use serde_json::Value;

use crate::entity::{audit_log, session, user as user_entity};
use crate::error::{API_VERSION, AuthError, Result};
use crate::state::AuthState;

pub(crate) use signup::create_user;

/// Shared state as handlers receive it.
pub(crate) type State = web::Data<AuthState>;

/// Registers every route on the `/auth/v1` scope.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(settings::settings))
        .route("/signup", web::post().to(signup::signup))
        .route("/token", web::post().to(token::token))
        .route("/user", web::get().to(user::get_user))
        .route("/user", web::put().to(user::update_user))
        .route("/logout", web::post().to(user::logout))
        .route("/reauthenticate", web::get().to(user::reauthenticate))
        .route("/verify", web::post().to(verify::post_verify))
        .route("/verify", web::get().to(verify::get_verify))
        .route("/authorize", web::get().to(oauth::authorize))
        .route("/callback", web::get().to(oauth::callback))
        .route("/callback", web::post().to(oauth::callback_form))
        .route("/otp", web::post().to(otp::otp))
        .route("/magiclink", web::post().to(otp::otp))
        .route("/recover", web::post().to(otp::recover))
        .route("/resend", web::post().to(otp::resend))
        .route("/factors", web::post().to(factors::enroll))
        // Before `/factors/{id}/…`, which would otherwise match.
        .route(
            "/factors/recovery_codes",
            web::post().to(recovery_codes::generate),
        )
        .route(
            "/factors/recovery_codes",
            web::get().to(recovery_codes::remaining),
        )
        .route(
            "/factors/recovery_codes/verify",
            web::post().to(recovery_codes::verify),
        )
        .route(
            "/factors/{id}/challenge",
            web::post().to(factors::challenge),
        )
        .route("/factors/{id}/verify", web::post().to(factors::verify))
        .route("/factors/{id}", web::delete().to(factors::unenroll))
        .route("/invite", web::post().to(admin::invite))
        .route("/admin/users", web::get().to(admin::list_users))
        .route("/admin/users", web::post().to(admin::create))
        .route("/admin/users/{id}", web::get().to(admin::get_user))
        .route("/admin/users/{id}", web::put().to(admin::update))
        .route("/admin/users/{id}", web::delete().to(admin::delete))
        .route(
            "/admin/users/{id}/factors",
            web::get().to(admin::list_factors),
        )
        .route(
            "/admin/users/{id}/factors/{factor_id}",
            web::delete().to(admin::delete_factor),
        )
        .route("/admin/generate_link", web::post().to(admin::generate_link))
        .route("/admin/audit", web::get().to(admin::list_audit))
        .route("/admin/roles", web::get().to(admin::list_roles))
        .route("/admin/roles", web::post().to(admin::create_role))
        .route("/admin/roles/{name}", web::put().to(admin::update_role))
        .route("/admin/roles/{name}", web::delete().to(admin::delete_role))
        .route("/admin/permissions", web::get().to(admin::list_permissions))
        .route(
            "/admin/users/{id}/sessions",
            web::get().to(admin::list_sessions),
        )
        .route(
            "/admin/users/{id}/sessions",
            web::delete().to(admin::revoke_sessions),
        )
        .route(
            "/admin/users/{id}/sessions/{session_id}",
            web::delete().to(admin::revoke_session),
        )
        .route("/admin/users/{id}/roles", web::get().to(admin::user_roles))
        .route(
            "/admin/users/{id}/roles",
            web::post().to(admin::assign_role),
        )
        .route(
            "/admin/users/{id}/roles/{name}",
            web::delete().to(admin::unassign_role),
        )
        .route(
            "/admin/users/{id}/admin_role",
            web::put().to(admin::set_admin_role),
        )
        .route("/admin/api-keys", web::get().to(admin::list_keys))
        .route("/admin/api-keys", web::post().to(admin::create_key))
        .route("/admin/api-keys/{id}", web::delete().to(admin::revoke_key));
}

/// A 200 JSON session response; in cookie mode the middleware also sets
/// the session cookies from it.
pub(crate) fn session_ok(session: &Value) -> HttpResponse {
    let mut res = ok(session);
    if let Some(issued) = crate::cookies::IssuedSession::of(session) {
        res.extensions_mut().insert(issued);
    }
    res
}

/// A 200 JSON response with GoTrue's version header.
pub(crate) fn ok(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .json(body)
}

/// `?redirect_to=` as auth-js sends it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RedirectQuery {
    pub redirect_to: Option<String>,
}

/// Parses a request body into `T` (GoTrue answers `bad_json` when it does not fit).
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T> {
    serde_json::from_value(body)
        .map_err(|e| AuthError::BadJson(format!("Could not parse request body as JSON: {e}")))
}

/// The signed-in user (and session) of a bearer token.
///
/// # Errors
/// `no_authorization` without a user token, `user_not_found` when the user
/// is gone, `user_banned` (403) when the user is banned, `session_not_found`
/// when the token's session was revoked.
pub(crate) async fn current(
    state: &AuthState,
    principal: &Principal,
) -> Result<(user_entity::Model, Option<session::Model>)> {
    load_current(&state.db, principal, true).await
}

/// As [`current`] without the ban check (signing out stays possible).
///
/// # Errors
/// As [`current`], except `user_banned`.
pub(crate) async fn current_allow_banned(
    state: &AuthState,
    principal: &Principal,
) -> Result<(user_entity::Model, Option<session::Model>)> {
    load_current(&state.db, principal, false).await
}

async fn load_current(
    db: &sea_orm::DatabaseConnection,
    principal: &Principal,
    refuse_banned: bool,
) -> Result<(user_entity::Model, Option<session::Model>)> {
    let Some(user_id) = principal.user_id.as_deref() else {
        return Err(AuthError::NoAuthorization);
    };
    if principal.role == Role::Anon || principal.role == Role::ServiceRole {
        return Err(AuthError::NoAuthorization);
    }
    // A user token names its session: one joined read finds both.
    let joined = match principal.session_id.as_deref() {
        Some(id) => session::Entity::find_by_id(id.to_owned())
            .find_also_related(user_entity::Entity)
            .one(db)
            .await?
            .filter(|(s, _)| s.user_id == user_id),
        None => None,
    };
    let (user, session) = match joined {
        Some((session, Some(user))) if user.deleted_at.is_none() => (user, Some(session)),
        // No such session (or not this user's), or its user is gone: the
        // user's own row decides which error it is.
        _ => (
            crate::users::find_by_id(db, user_id)
                .await?
                .ok_or(AuthError::UserNotFound)?,
            None,
        ),
    };
    let now = chrono::Utc::now();
    if refuse_banned && user.banned_until.is_some_and(|until| until > now) {
        return Err(AuthError::BannedUser);
    }
    if principal.session_id.is_some()
        && session
            .as_ref()
            .is_none_or(|s| s.not_after.is_some_and(|end| end <= now))
    {
        return Err(AuthError::SessionNotFound);
    }
    Ok((user, session))
}

use sea_orm::{ActiveModelTrait, EntityTrait};

/// Records a security event (best effort: a failure is logged, not raised).
pub(crate) async fn audit(
    state: &AuthState,
    actor: Option<&str>,
    action: &str,
    ip: Option<&str>,
    payload: Value,
) {
    let entry = audit_log::Model {
        id: uuid::Uuid::new_v4().to_string(),
        actor_id: actor.map(str::to_owned),
        action: action.to_owned(),
        ip: ip.map(str::to_owned),
        payload: payload.to_string(),
        created_at: chrono::Utc::now(),
    };
    if let Err(err) = audit_log::ActiveModel::from(entry).insert(&state.db).await {
        tracing::warn!(action, error = %err, "could not write the auth audit log");
    }
}

/// Publishes a user event after commit (best effort).
pub(crate) async fn announce(
    state: &AuthState,
    signed_up: bool,
    user: &user_entity::Model,
    provider: &str,
) {
    use goforward_core::bus::{Event, UserEvent};
    let event = UserEvent {
        user_id: user.id.clone(),
        email: user.email.clone(),
        phone: user.phone.clone(),
        provider: provider.to_owned(),
    };
    let event = if signed_up {
        Event::UserSignedUp(event)
    } else {
        Event::UserSignedIn(event)
    };
    if let Err(err) = state.bus.publish(event).await {
        tracing::warn!(error = %err, "could not publish the auth event");
    }
}
