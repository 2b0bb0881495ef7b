//! Bootstrapping the first administrator: `goforward admin create` (the
//! CLI calls [`ensure_admin`]) and `[auth.bootstrap_admin]` (created at
//! start when no account has that email; an existing account is left alone).

use chrono::Utc;
use goforward_core::token::AdminRole;
use sea_orm::{ActiveModelTrait, Set};
use secrecy::ExposeSecret;
use serde_json::{Map, json};

use crate::config::BootstrapAdminConfig;
use crate::entity::user;
use crate::error::{AuthError, Result};
use crate::state::AuthState;
use crate::{password, rbac, sessions, users};

/// What [`ensure_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new confirmed account was created.
    Created,
    /// The existing account got the password, a confirmed email, no ban and the level.
    Updated,
    /// The account exists and was left alone (first-run mode).
    Unchanged,
}

impl Outcome {
    /// `created`, `updated` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Creates (or, with `update_existing`, resets) a confirmed account for
/// `email` with `password` and the administrator level `level`. Resetting
/// sets the password, confirms the email, lifts a ban and lockout, and ends
/// the account's sessions.
///
/// # Errors
/// `email_address_invalid`, `weak_password`, or database errors.
pub async fn ensure_admin(
    state: &AuthState,
    email: &str,
    password_text: &str,
    level: AdminRole,
    update_existing: bool,
) -> Result<(user::Model, Outcome)> {
    let email = users::normalize_email(email);
    if !users::valid_email(&email) {
        return Err(AuthError::EmailAddressInvalid);
    }
    password::check_policy(password_text, state.config.password_min_length)?;
    let existing = users::find_by_email(&state.db, &email).await?;
    let (account, outcome) = match existing {
        Some(found) if !update_existing => return Ok((found, Outcome::Unchanged)),
        Some(found) => {
            let hash = password::hash(password_text, state.config.bcrypt_cost).await?;
            let now = Utc::now();
            let mut active: user::ActiveModel = found.clone().into();
            active.encrypted_password = Set(Some(hash));
            if found.email_confirmed_at.is_none() {
                active.email_confirmed_at = Set(Some(now));
            }
            active.banned_until = Set(None);
            active.failed_sign_ins = Set(0);
            active.failed_sign_ins_since = Set(None);
            active.updated_at = Set(now);
            let updated = active.update(&state.db).await?;
            let ended = sessions::revoke_user_sessions(&state.db, &updated.id, None).await?;
            sessions::announce_revoked(state, &updated.id, Some(ended), "password_changed").await;
            (updated, Outcome::Updated)
        }
        None => {
            let hash = password::hash(password_text, state.config.bcrypt_cost).await?;
            let created =
                crate::handlers::create_user(state, Some(&email), Some(hash), Map::new(), true)
                    .await?;
            (created, Outcome::Created)
        }
    };
    let account = rbac::set_admin_level(&state.db, account, Some(level)).await?;
    crate::handlers::audit(
        state,
        None,
        "admin_bootstrapped",
        None,
        json!({ "user_id": account.id, "admin_role": level.as_str(), "outcome": outcome.as_str() }),
    )
    .await;
    Ok((account, outcome))
}

/// Applies `[auth.bootstrap_admin]`: creates the account when no account
/// has that email (never changes an existing one).
///
/// # Errors
/// As [`ensure_admin`]; an unknown level is a validation error.
pub async fn first_run(state: &AuthState, config: &BootstrapAdminConfig) -> Result<Outcome> {
    let level = AdminRole::parse(&config.admin_role).ok_or_else(|| {
        AuthError::Validation(format!("unknown admin_role {:?}", config.admin_role))
    })?;
    let (_, outcome) = ensure_admin(
        state,
        &config.email,
        config.password.expose_secret(),
        level,
        false,
    )
    .await?;
    if outcome == Outcome::Created {
        tracing::info!(email = %config.email, admin_role = level.as_str(), "created the bootstrap administrator");
    }
    Ok(outcome)
}
