//! [`CustomAuthProvider`]: sign in with foreign credentials (LDAP, a legacy
//! password table, a partner token) and get a normal GoForward user and
//! session.
//!
//! Register providers with [`Auth::provider`](crate::Auth::provider). A
//! password sign-in (`POST /token?grant_type=password`) tries the local
//! password first and then each provider in registration order; with
//! `?provider=<name>` (or `"provider"` in the body) only that provider is
//! asked. The body may carry `email` or `username`. On first sign-in the
//! identity `(provider, subject)` becomes a user; a local account with the
//! same email is linked only when the provider vouches for the email **and**
//! the local email is confirmed.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::{Map, Value, json};

use crate::entity::{identity, user};
use crate::error::{AuthError, Result};
use crate::state::AuthState;
use crate::users;

/// What the user typed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The `email` or `username` of the request, trimmed.
    pub identifier: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identifier", &self.identifier)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Who the provider says the user is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderIdentity {
    /// Stable id of the user at the provider (e.g. an LDAP DN or a legacy row id).
    pub subject: String,
    /// The user's email, if the provider knows it.
    pub email: Option<String>,
    /// Whether the provider vouches for the email (needed to link an existing account).
    pub email_verified: bool,
    /// Initial `user_metadata` of a new user (and `identity_data`).
    pub user_metadata: Map<String, Value>,
    /// Merged into `app_metadata` at every sign-in (e.g. groups → roles).
    pub app_metadata: Map<String, Value>,
}

/// A provider failed (directory unreachable…): the client gets an opaque 500.
#[derive(Debug, thiserror::Error)]
#[error("custom auth provider failed: {0}")]
pub struct ProviderError(pub String);

/// Turns foreign credentials into an identity.
///
/// ```
/// use goforward_auth::provider::{Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
///
/// struct Legacy;
///
/// #[async_trait::async_trait]
/// impl CustomAuthProvider for Legacy {
///     async fn authenticate(&self, c: &Credentials) -> Result<Option<ProviderIdentity>, ProviderError> {
///         Ok((c.identifier == "root" && c.password == "hunter22").then(|| ProviderIdentity {
///             subject: "legacy-1".into(),
///             ..Default::default()
///         }))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait CustomAuthProvider: Send + Sync + 'static {
    /// `Ok(Some(identity))` for valid credentials, `Ok(None)` for invalid
    /// ones (the client gets `invalid_credentials`), `Err` when the provider
    /// could not decide.
    ///
    /// # Errors
    /// [`ProviderError`] when the provider is unavailable.
    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> std::result::Result<Option<ProviderIdentity>, ProviderError>;
}

/// Checks a provider name: `[a-z][a-z0-9_]{0,31}`, not a built-in provider.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(name, "email" | "phone" | "anonymous")
}

/// Whether `(provider, subject)` is already linked to a user.
///
/// # Errors
/// Database errors.
pub async fn identity_exists(state: &AuthState, provider: &str, subject: &str) -> Result<bool> {
    Ok(identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider))
        .filter(identity::Column::ProviderId.eq(subject.trim()))
        .one(&state.db)
        .await?
        .is_some())
}

/// Maps a provider identity to a user (found by identity, linked by
/// verified email, or created).
///
/// # Errors
/// `email_exists` when an unlinked account has the email and linking is not
/// allowed; `user_banned`; database errors.
pub async fn user_for(
    state: &AuthState,
    provider: &str,
    found: ProviderIdentity,
) -> Result<(user::Model, bool)> {
    let subject = found.subject.trim().to_owned();
    if subject.is_empty() || subject.len() > 255 {
        return Err(AuthError::Internal(format!(
            "provider {provider} returned an invalid subject"
        )));
    }
    let email = found
        .email
        .as_deref()
        .map(users::normalize_email)
        .filter(|e| users::valid_email(e));
    let now = Utc::now();
    let identity_data = {
        let mut data = found.user_metadata.clone();
        data.insert("sub".into(), json!(subject));
        if let Some(email) = &email {
            data.insert("email".into(), json!(email));
        }
        data.insert("email_verified".into(), json!(found.email_verified));
        Value::Object(data).to_string()
    };

    let existing = identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider))
        .filter(identity::Column::ProviderId.eq(subject.clone()))
        .one(&state.db)
        .await?;
    if let Some(linked) = existing {
        let user = users::find_by_id(&state.db, &linked.user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let mut active: identity::ActiveModel = linked.into();
        active.identity_data = Set(identity_data);
        active.last_sign_in_at = Set(Some(now));
        active.updated_at = Set(now);
        active.update(&state.db).await?;
        return Ok((
            merge_app_metadata(state, user, provider, &found.app_metadata).await?,
            false,
        ));
    }

    let txn = state.db.begin().await?;
    let (user, created) = match &email {
        Some(email) => match users::find_by_email(&txn, email).await? {
            Some(local) if found.email_verified && local.email_confirmed_at.is_some() => {
                (local, false)
            }
            Some(_) => return Err(AuthError::EmailExists),
            None => (
                insert_user(&txn, state, provider, Some(email), &found).await?,
                true,
            ),
        },
        None => (
            insert_user(&txn, state, provider, None, &found).await?,
            true,
        ),
    };
    identity::ActiveModel::from(identity::Model {
        id: uuid::Uuid::new_v4().to_string(),
        provider_id: subject,
        user_id: user.id.clone(),
        identity_data,
        provider: provider.to_owned(),
        email: email.clone(),
        last_sign_in_at: Some(now),
        created_at: now,
        updated_at: now,
    })
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok((
        merge_app_metadata(state, user, provider, &found.app_metadata).await?,
        created,
    ))
}

async fn insert_user<C: sea_orm::ConnectionTrait>(
    db: &C,
    state: &AuthState,
    provider: &str,
    email: Option<&str>,
    found: &ProviderIdentity,
) -> Result<user::Model> {
    let now = Utc::now();
    let app = json!({ "provider": provider, "providers": [provider] });
    Ok(user::ActiveModel::from(user::Model {
        id: uuid::Uuid::new_v4().to_string(),
        aud: state.config.jwt_aud.clone(),
        role: "authenticated".to_owned(),
        email: email.map(str::to_owned),
        phone: None,
        encrypted_password: None,
        email_confirmed_at: (email.is_some() && found.email_verified).then_some(now),
        phone_confirmed_at: None,
        invited_at: None,
        confirmation_sent_at: None,
        recovery_sent_at: None,
        email_change: None,
        email_change_sent_at: None,
        phone_change: None,
        phone_change_sent_at: None,
        last_sign_in_at: None,
        raw_app_meta_data: app.to_string(),
        raw_user_meta_data: Value::Object(found.user_metadata.clone()).to_string(),
        is_anonymous: false,
        banned_until: None,
        failed_sign_ins: 0,
        failed_sign_ins_since: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    })
    .insert(db)
    .await?)
}

/// Adds `provider` to `providers` and merges the provider's app metadata.
async fn merge_app_metadata(
    state: &AuthState,
    user: user::Model,
    provider: &str,
    extra: &Map<String, Value>,
) -> Result<user::Model> {
    let mut app = users::json_object(&user.raw_app_meta_data);
    let mut providers: Vec<Value> = app
        .get("providers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !providers.iter().any(|p| p == provider) {
        providers.push(json!(provider));
    }
    app.insert("providers".into(), Value::Array(providers));
    app.entry("provider").or_insert_with(|| json!(provider));
    for (k, v) in extra {
        if k != "provider" && k != "providers" {
            app.insert(k.clone(), v.clone());
        }
    }
    let text = Value::Object(app).to_string();
    if text == user.raw_app_meta_data {
        return Ok(user);
    }
    let mut active: user::ActiveModel = user.into();
    active.raw_app_meta_data = Set(text);
    Ok(active.update(&state.db).await?)
}
