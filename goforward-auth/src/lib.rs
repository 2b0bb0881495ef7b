//! GoForward auth: GoTrue-compatible authentication, mounted at `/auth/v1`,
//! so supabase-js's `auth` client works unmodified.
//!
//! - Email + password sign-up (with confirmation email or autoconfirm) and
//!   sign-in, anonymous sign-in, email OTP and magic links, password
//!   recovery, email change confirmed on both addresses.
//! - Sessions with short-lived HS256 access tokens (GoTrue's claims) and
//!   opaque refresh tokens stored hashed, rotated on every use, with
//!   GoTrue's reuse interval and family revocation.
//! - bcrypt off the async workers, 72-byte limit enforced (never
//!   truncated), per-IP rate limits, one-time tokens hashed, single-use,
//!   expiring and compared in constant time, `redirect_to` allow-list.
//! - TOTP MFA with recovery codes; RBAC roles and the administrator
//!   hierarchy ([`rbac`]) gating the admin API; service-account API keys
//!   ([`api_keys`]) accepted wherever a bearer is; first-administrator
//!   bootstrap ([`bootstrap`]).
//! - Mail through a [`Mailer`]: SMTP (lettre) when
//!   `[auth.smtp]` is set, else one `.eml` file per message under
//!   `<data_dir>/outbox`; templates overridable.
//!
//! ```no_run
//! use goforward_auth::Auth;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Auth::new().configure(|c| c.anonymous_users = true))
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

mod aal;
pub mod api_keys;
pub mod bootstrap;
pub mod config;
mod cookies;
pub mod crypto;
pub mod entity;
pub mod error;
mod handlers;
pub mod mailer;
pub mod mfa;
pub mod migration;
pub mod oauth;
pub mod otp;
pub mod password;
pub mod pkce;
pub mod provider;
pub mod rbac;
pub mod redirect;
mod rotation;
pub mod sessions;
pub mod sms;
pub mod state;
pub mod users;

use std::sync::{Arc, OnceLock};

use actix_web::web;
use goforward_core::{Context, Error, Plugin, Principal, http::Quota};
use sea_orm_migration::MigrationTrait;
use secrecy::ExposeSecret;

pub use aal::Aal2;
pub use config::AuthConfig;
pub use error::{API_VERSION, AuthError, GoTrueErrorFormat};
pub use mailer::{Email, EmailKind, FileOutbox, MailError, Mailer, SmtpMailer};
pub use provider::{Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
pub use sms::{FileSmsOutbox, SmsError, SmsSender, TwilioSms};

use crate::crypto::RefreshKey;
use crate::mailer::Templates;
use crate::redirect::RedirectPolicy;
use crate::state::{AuthState, groups};

/// Largest request body the auth endpoints accept (checklist item 30).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

type Configure = Arc<dyn Fn(&mut AuthConfig) + Send + Sync>;

/// The auth plugin.
#[derive(Clone, Default)]
pub struct Auth {
    configure: Vec<Configure>,
    mailer: Option<Arc<dyn Mailer>>,
    templates: Templates,
    template_error: Option<String>,
    providers: Vec<(String, Arc<dyn provider::CustomAuthProvider>)>,
    sms: Option<Arc<dyn sms::SmsSender>>,
    state: Arc<OnceLock<web::Data<AuthState>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// An auth plugin configured from the `[auth]` section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adjusts the configuration after the `[auth]` section is read (code
    /// wins over files and environment), e.g. `|c| c.anonymous_users = true`.
    pub fn configure(mut self, f: impl Fn(&mut AuthConfig) + Send + Sync + 'static) -> Self {
        self.configure.push(Arc::new(f));
        self
    }

    /// Delivers email through `mailer` instead of SMTP / the file outbox.
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Sends SMS codes through `sender` instead of the file outbox
    /// (`<data_dir>/sms_outbox`).
    pub fn sms_sender(mut self, sender: impl sms::SmsSender) -> Self {
        self.sms = Some(Arc::new(sender));
        self
    }

    /// Overrides the subject and body templates (minijinja) of one kind of
    /// email. Variables: `site_url`, `confirmation_url`, `token`,
    /// `token_hash`, `email`, `new_email`, `redirect_to`. A template that
    /// does not parse makes `build()` fail.
    pub fn template(mut self, kind: EmailKind, subject: &str, body: &str) -> Self {
        if let Err(err) = self.templates.set(kind, subject, body) {
            self.template_error = Some(format!("template `{}`: {err}", kind.as_str()));
        }
        self
    }

    /// Registers a [`CustomAuthProvider`] under
    /// `name` (`[a-z][a-z0-9_]*`, not `email`/`phone`/`anonymous`; an invalid
    /// or duplicate name makes `build()` fail). Password sign-ins try the
    /// local password, then each provider in registration order.
    pub fn provider(mut self, name: &str, provider: impl provider::CustomAuthProvider) -> Self {
        self.providers.push((name.to_owned(), Arc::new(provider)));
        self
    }

    /// The resolved configuration (after `build()`).
    pub fn state(&self) -> Option<&AuthState> {
        self.state.get().map(|d| d.get_ref())
    }

    fn plugin_error(message: impl Into<String>) -> Error {
        Error::Plugin {
            plugin: "auth".into(),
            message: message.into(),
        }
    }

    async fn build_state(&self, ctx: &Context) -> Result<AuthState, Error> {
        if let Some(message) = &self.template_error {
            return Err(Self::plugin_error(message.clone()));
        }
        for (i, (name, _)) in self.providers.iter().enumerate() {
            if !provider::valid_name(name) || self.providers[..i].iter().any(|(n, _)| n == name) {
                return Err(Self::plugin_error(format!(
                    "invalid or duplicate provider name {name:?}: expected [a-z][a-z0-9_]*, unique, not email/phone/anonymous"
                )));
            }
        }
        let mut config: AuthConfig = ctx.config().section("auth")?;
        for f in &self.configure {
            f(&mut config);
        }
        config.validate()?;
        let core = ctx.config();
        if config.site_url.is_empty() {
            config.site_url = core.site_url.clone();
        }
        let site_url = url::Url::parse(&config.site_url)
            .map_err(|e| Error::config("auth.site_url", config.site_url.clone(), e.to_string()))?;
        let external_url = if config.external_url.is_empty() {
            format!("http://{}", core.server.addr)
        } else {
            config.external_url.trim_end_matches('/').to_owned()
        };
        let issuer = if !config.jwt_issuer.is_empty() {
            config.jwt_issuer.clone()
        } else if let Some(first) = core.jwt.issuer.first() {
            first.clone()
        } else {
            format!("{external_url}/auth/v1")
        };
        if !core.jwt.audience.is_empty() && !core.jwt.audience.contains(&config.jwt_aud) {
            return Err(Error::config(
                "auth.jwt_aud",
                config.jwt_aud.clone(),
                "must be one of jwt.audience, or access tokens would be refused",
            ));
        }
        let secret = core
            .jwt
            .secret
            .as_ref()
            .ok_or_else(|| Self::plugin_error("the JWT secret is not resolved"))?;
        let refresh_key = RefreshKey::from_secret(secret.expose_secret().as_bytes())
            .map_err(|_| Self::plugin_error("the JWT secret is empty"))?;
        let secret_box = mfa::SecretBox::from_secret(secret.expose_secret().as_bytes())
            .map_err(|_| Self::plugin_error("the JWT secret is empty"))?;
        let mailer: Arc<dyn Mailer> = match (&self.mailer, &config.smtp) {
            (Some(mailer), _) => mailer.clone(),
            (None, Some(smtp)) => Arc::new(
                SmtpMailer::new(smtp)
                    .map_err(|e| Error::config("auth.smtp", smtp.host.clone(), e.to_string()))?,
            ),
            (None, None) => Arc::new(FileOutbox::new(core.data_dir.join("outbox"))),
        };
        let sms: Arc<dyn sms::SmsSender> = match (&self.sms, &config.sms_provider) {
            (Some(sender), _) => sender.clone(),
            (None, Some(provider)) => Arc::new(sms::TwilioSms::new(provider).map_err(|e| {
                Error::config(
                    "auth.sms_provider",
                    provider.base_url.clone(),
                    e.to_string(),
                )
            })?),
            (None, None) => Arc::new(sms::FileSmsOutbox::new(core.data_dir.join("sms_outbox"))),
        };
        // Hashed in the background so start-up does not wait for bcrypt.
        let dummy_hash = Arc::new(tokio::sync::OnceCell::new());
        let cost = config.bcrypt_cost;
        let cell = dummy_hash.clone();
        tokio::spawn(async move {
            let _ = cell.get_or_try_init(|| state::dummy_hash(cost)).await;
        });
        let limits = &config.rate_limits;
        let window = std::time::Duration::from_secs(limits.window_secs);
        for (group, n) in [
            (groups::SIGN_IN, limits.sign_in_sign_ups),
            (groups::REFRESH, limits.token_refresh),
            (groups::VERIFY, limits.verify),
            (groups::OTP, limits.otp),
            (groups::MFA, limits.mfa),
        ] {
            ctx.rate_limits().declare(
                group,
                std::num::NonZeroU32::new(n).map(|n| Quota::per_window(n, window)),
            );
        }
        let oauth = Arc::new(oauth::providers(&config));
        Ok(AuthState {
            oauth,
            oauth_http: oauth::http_client(config.external_allow_private_endpoints),
            db: ctx.db().clone(),
            redirects: RedirectPolicy::new(site_url, config.uri_allow_list.clone()),
            config,
            signer: ctx.signer().clone(),
            refresh_key,
            secret_box,
            mailer,
            sms,
            templates: self.templates.clone(),
            external_url,
            issuer,
            rate_limits: ctx.rate_limits().clone(),
            bus: ctx.bus().clone(),
            dummy_hash,
            authenticator: ctx.authenticator().clone(),
            providers: self.providers.clone(),
            sqlite_writes: (ctx.db().get_database_backend() == sea_orm::DatabaseBackend::Sqlite)
                .then(|| Arc::new(tokio::sync::Mutex::new(()))),
        })
    }
}

#[async_trait::async_trait]
impl Plugin for Auth {
    fn name(&self) -> &str {
        "auth"
    }

    fn check_config(&self, config: &goforward_core::Config) -> goforward_core::Result<()> {
        let mut auth: AuthConfig = config.section("auth")?;
        for f in &self.configure {
            f(&mut auth);
        }
        auth.validate()
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    async fn start(&self, ctx: &Context) -> Result<(), Error> {
        let state = web::Data::new(self.build_state(ctx).await?);
        self.state
            .set(state.clone())
            .map_err(|_| Self::plugin_error("started twice"))?;
        ctx.authenticator()
            .add_api_key_resolver(Arc::new(api_keys::ApiKeyStore::new(ctx.db().clone())));
        // Revoked sessions are refused everywhere until their tokens expire.
        ctx.authenticator()
            .retain_revocations_for(state.config.jwt_expiry_secs);
        // Hosts and the CLI (`goforward admin create`) reach the state here.
        ctx.services().insert(state.clone().into_inner());
        if let Some(admin) = &state.config.bootstrap_admin {
            bootstrap::first_run(&state, admin)
                .await
                .map_err(|e| Self::plugin_error(format!("auth.bootstrap_admin: {e}")))?;
        }
        Ok(())
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        let Some(state) = self.state.get() else {
            tracing::error!("auth plugin routes requested before start(): /auth/v1 is not mounted");
            return;
        };
        let limit = ctx.config().server.json_limit.min(MAX_BODY_BYTES);
        cfg.service(
            ctx.api_scope("/auth/v1", "auth", GoTrueErrorFormat)
                // Auth answers ended sessions in GoTrue's words itself.
                .app_data(goforward_core::token::SessionsCheckedByRoutes)
                .app_data(goforward_core::http::errors::json_config(
                    limit,
                    Arc::new(GoTrueErrorFormat),
                ))
                .app_data(state.clone())
                .configure(handlers::routes)
                .default_service(web::to(not_found_rendered))
                .wrap(actix_web::middleware::from_fn(cookies::middleware)),
        );
    }
}

async fn not_found_rendered(
    req: actix_web::HttpRequest,
    principal: Result<Principal, actix_web::Error>,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    principal?;
    Err(goforward_core::error::ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Endpoint not found".into()),
    ))
}
