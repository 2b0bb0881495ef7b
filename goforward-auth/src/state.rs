//! [`AuthState`]: everything the handlers share, built once in `start`.

use std::sync::Arc;

use actix_web::HttpRequest;
use goforward_core::{bus::SharedBus, http::RateLimits, token::TokenSigner};
use sea_orm::DatabaseConnection;

use crate::config::AuthConfig;
use crate::crypto::RefreshKey;
use crate::error::{AuthError, Result};
use crate::mailer::{Mailer, Templates};
use crate::redirect::RedirectPolicy;

/// Rate-limit groups of the auth endpoints (per client IP).
pub mod groups {
    /// Password sign-in and sign-up.
    pub const SIGN_IN: &str = "auth_sign_in";
    /// Refresh-token grant.
    pub const REFRESH: &str = "auth_refresh";
    /// `/verify`.
    pub const VERIFY: &str = "auth_verify";
    /// `/otp`, `/magiclink`, `/recover`, `/resend`.
    pub const OTP: &str = "auth_otp";
    /// MFA challenge and verify.
    pub const MFA: &str = "auth_mfa";
}

/// Shared auth state (one per app; workers clone the `Arc`).
pub struct AuthState {
    /// Database.
    pub db: DatabaseConnection,
    /// Validated `[auth]` config with `site_url` resolved.
    pub config: AuthConfig,
    /// Issues access tokens.
    pub signer: TokenSigner,
    /// Derives refresh-token children.
    pub refresh_key: RefreshKey,
    /// Encrypts MFA secrets at rest.
    pub secret_box: crate::mfa::SecretBox,
    /// Delivers emails.
    pub mailer: Arc<dyn Mailer>,
    /// Delivers SMS codes.
    pub sms: Arc<dyn crate::sms::SmsSender>,
    /// Email templates.
    pub templates: Templates,
    /// Allowed redirect targets.
    pub redirects: RedirectPolicy,
    /// Public base URL of the API (for links in emails), without trailing slash.
    pub external_url: String,
    /// `iss` of access tokens.
    pub issuer: String,
    /// Rate-limit registry.
    pub rate_limits: Arc<RateLimits>,
    /// Event bus.
    pub bus: SharedBus,
    /// A bcrypt hash verified against on the unknown-user path (see [`AuthState::dummy_hash`]).
    pub dummy_hash: Arc<tokio::sync::OnceCell<String>>,
    /// Core's authenticator (revoking an API key forgets looked-up keys).
    pub authenticator: Arc<goforward_core::token::Authenticator>,
    /// Custom providers, in registration order.
    pub providers: Vec<(String, Arc<dyn crate::provider::CustomAuthProvider>)>,
    /// Enabled OAuth2 / OIDC providers by name.
    pub oauth: Arc<std::collections::BTreeMap<String, crate::oauth::ProviderSpec>>,
    /// HTTP client towards OAuth providers (no redirects, timeouts).
    pub oauth_http: reqwest::Client,
    /// On SQLite, the sign-in and refresh write transactions queue here
    /// instead of in SQLite's busy handler (which sleeps up to 100 ms
    /// between retries while another connection holds the write lock);
    /// `None` on PostgreSQL.
    pub sqlite_writes: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// Waits for this process's turn to write on SQLite (see
    /// [`AuthState::sqlite_writes`]); a no-op on PostgreSQL. Hold the guard
    /// for the whole write transaction.
    pub async fn sqlite_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_writes {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    /// Takes one request of `group` for the client's IP.
    ///
    /// # Errors
    /// [`AuthError::OverRequestRateLimit`] when the quota is spent.
    pub fn limit(&self, req: &HttpRequest, group: &str) -> Result<()> {
        self.rate_limits
            .check(group, || {
                self.rate_limits
                    .client_ip(req)
                    .map(|ip| ip.to_string())
                    .unwrap_or_default()
            })
            .map_err(|retry_after_secs| AuthError::OverRequestRateLimit { retry_after_secs })
    }

    /// A bcrypt hash (of a random password, at the configured cost) that
    /// the unknown-account path verifies against, so it costs as much as a
    /// wrong password.
    ///
    /// # Errors
    /// [`AuthError::Internal`] if hashing fails.
    pub async fn dummy_hash(&self) -> Result<String> {
        let cost = self.config.bcrypt_cost;
        self.dummy_hash
            .get_or_try_init(|| dummy_hash(cost))
            .await
            .cloned()
    }

    /// The client IP as text, for sessions and the audit log.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<String> {
        self.rate_limits.client_ip(req).map(|ip| ip.to_string())
    }
}

/// Hashes a random password at `cost`.
///
/// # Errors
/// [`AuthError::Internal`] if hashing fails.
pub async fn dummy_hash(cost: u32) -> Result<String> {
    crate::password::hash(&crate::crypto::random_token(24), cost).await
}
