//! The typed `[auth]` configuration section.

use serde::{Deserialize, Serialize};

use goforward_core::Error;

/// The `[auth]` section (`GOFORWARD_AUTH__…` in the environment).
///
/// Every field has a development-safe default; unknown keys are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Where email links send the browser; empty = core's `site_url`.
    pub site_url: String,
    /// Public base URL of this server, used in email links
    /// (`<external_url>/auth/v1/verify?...`); empty = `http://<server.addr>`.
    pub external_url: String,
    /// Extra allowed `redirect_to` targets: exact URLs or `*`/`**` globs
    /// matched against the URL without query and fragment
    /// (e.g. `http://localhost:3000/**`). `site_url`'s origin is always allowed.
    pub uri_allow_list: Vec<String>,
    /// Access token lifetime in seconds (GoTrue `JWT_EXP`, default 3600).
    pub jwt_expiry_secs: i64,
    /// `aud` claim of access tokens (default `authenticated`).
    pub jwt_aud: String,
    /// `iss` claim of access tokens; empty = `<site_url>/auth/v1`.
    pub jwt_issuer: String,
    /// Seconds during which a rotated refresh token still returns the same
    /// child (concurrent refreshes); reuse after that revokes the session (default 10).
    pub refresh_token_reuse_interval_secs: i64,
    /// Absolute session lifetime in seconds; 0 = unlimited.
    pub session_timebox_secs: i64,
    /// A session not refreshed for this many seconds ends; 0 = never.
    pub session_inactivity_timeout_secs: i64,
    /// `PUT /user` with a new password needs a `nonce` from
    /// `GET /reauthenticate` (GoTrue's secure password change; default false).
    pub password_change_requires_reauthentication: bool,
    /// Minimum password length in characters (default 8).
    pub password_min_length: usize,
    /// bcrypt cost (default 12; at least 4, use 10 or more in production).
    pub bcrypt_cost: u32,
    /// Sign users in at sign-up without confirming their email (default false).
    pub mailer_autoconfirm: bool,
    /// Allow `signInAnonymously` (default false).
    pub anonymous_users: bool,
    /// Allow phone sign-in with SMS codes (`/otp` and `/verify` type `sms`; default false).
    pub phone_enabled: bool,
    /// Sign phone users in at sign-up without an SMS code (default false).
    pub phone_autoconfirm: bool,
    /// SMS provider (Twilio-compatible); without it, SMS go to `<data_dir>/sms_outbox`.
    pub sms_provider: Option<SmsProviderConfig>,
    /// Text of the SMS (minijinja; variable `code`).
    pub sms_template: String,
    /// Refuse new sign-ups (default false).
    pub disable_signup: bool,
    /// Lifetime of email OTPs and links in seconds (30 to 600, default 600).
    pub otp_expiry_secs: i64,
    /// Number of digits of email OTPs (6 to 10, default 6).
    pub otp_length: usize,
    /// Minimum seconds between two emails of one kind to one address (default 60).
    pub email_min_interval_secs: i64,
    /// Failed password sign-ins per account within `lockout_window_secs`
    /// after which sign-ins are refused until the window ends (default 100; 0 = off).
    pub lockout_max_failed_sign_ins: u32,
    /// Length of the lockout window in seconds (default 3600).
    pub lockout_window_secs: i64,
    /// Allow TOTP factors (`/factors`; default true, as GoTrue).
    pub mfa_totp_enabled: bool,
    /// Maximum factors per user, verified or not (default 10).
    pub mfa_max_enrolled_factors: usize,
    /// Lifetime of an MFA challenge in seconds (default 300).
    pub mfa_challenge_expiry_secs: i64,
    /// Issuer shown in authenticator apps; empty = the site URL's host.
    pub mfa_totp_issuer: String,
    /// Recovery codes per generated set (4 to 20, default 10).
    pub mfa_recovery_codes: usize,
    /// Allow phone factors (`/factors` with `factor_type: "phone"`, codes
    /// by SMS through the [`SmsSender`](crate::SmsSender); default false, as GoTrue).
    pub mfa_phone_enabled: bool,
    /// Minimum seconds between two challenges (SMS) of one phone factor (default 5).
    pub mfa_phone_max_frequency_secs: i64,
    /// SMTP delivery; without it, mail goes to `<data_dir>/outbox` as `.eml` files.
    pub smtp: Option<SmtpConfig>,
    /// The `From` address of auth emails.
    pub mailer_from: String,
    /// Per-IP rate limits of the auth endpoints.
    pub rate_limits: AuthRateLimits,
    /// An administrator created at start when no account has its email
    /// (first run); an existing account is never changed.
    pub bootstrap_admin: Option<BootstrapAdminConfig>,
    /// OAuth2 / OIDC sign-in providers by name (`[auth.external.google]`,
    /// `[auth.external.github]`, or any name with `kind = "oidc"`).
    pub external: std::collections::BTreeMap<String, OAuthProviderConfig>,
    /// Allow provider endpoints on loopback and private addresses (tests and
    /// local identity providers only; default false).
    pub external_allow_private_endpoints: bool,
    /// Cookie mode: sessions also as `__Host-` HttpOnly cookies, accepted on
    /// the auth routes with CSRF protection (default false; bearer mode is
    /// unaffected either way).
    pub cookie_mode: bool,
    /// `Max-Age` of the refresh cookie when `session_timebox_secs` is 0
    /// (default 30 days).
    pub cookie_refresh_max_age_secs: i64,
}

/// One OAuth2 / OIDC provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProviderConfig {
    /// `google`, `github`, `apple` or `oidc`; default: the provider's name
    /// when it is `google`, `github` or `apple`, else `oidc`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Client id at the provider (Apple: the Services ID).
    pub client_id: String,
    /// Client secret at the provider. Apple: a ready-made client-secret JWT,
    /// or leave empty and give `team_id`, `key_id` and `private_key`.
    #[serde(default = "empty_secret", skip_serializing)]
    pub client_secret: secrecy::SecretString,
    /// Apple: the team id (the `iss` of the generated client-secret JWT).
    #[serde(default)]
    pub team_id: Option<String>,
    /// Apple: the id of the Sign in with Apple key (the JWT's `kid`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Apple: the key's PKCS#8 PEM (the `.p8` file's text); the client
    /// secret is then an ES256 JWT signed with it, minted per code exchange.
    #[serde(default, skip_serializing)]
    pub private_key: Option<secrecy::SecretString>,
    /// The JWKS the ID tokens are checked against (built in for Apple;
    /// otherwise from OIDC discovery).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Authorization endpoint (built in for Google and GitHub).
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint (built in for Google and GitHub).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Userinfo endpoint (built in for Google and GitHub): its `sub` (GitHub:
    /// `id`), `email` and `email_verified` make the identity.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// OIDC issuer: turns on discovery (`<issuer>/.well-known/openid-configuration`,
    /// for endpoints not set here) and ID-token validation (signature against
    /// the issuer's JWKS, `iss`, `aud`, `exp`, `nonce`); recorded in identity data.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Scopes; default `openid email profile` (GitHub: `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the provider is offered (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

fn empty_secret() -> secrecy::SecretString {
    secrecy::SecretString::from(String::new())
}

/// `[auth.bootstrap_admin]`: the first administrator. Give the password
/// through the environment (`GOFORWARD_AUTH__BOOTSTRAP_ADMIN__PASSWORD`),
/// not a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapAdminConfig {
    /// Email address of the account.
    pub email: String,
    /// Its password (checked against the password policy).
    #[serde(skip_serializing)]
    pub password: secrecy::SecretString,
    /// Its level: `moderator`, `admin`, `super_admin` or `system_admin` (default).
    #[serde(default = "default_bootstrap_role")]
    pub admin_role: String,
}

fn default_bootstrap_role() -> String {
    "system_admin".to_owned()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            site_url: String::new(),
            external_url: String::new(),
            uri_allow_list: Vec::new(),
            jwt_expiry_secs: 3600,
            jwt_aud: "authenticated".to_owned(),
            jwt_issuer: String::new(),
            refresh_token_reuse_interval_secs: 10,
            session_timebox_secs: 0,
            session_inactivity_timeout_secs: 0,
            password_change_requires_reauthentication: false,
            password_min_length: 8,
            bcrypt_cost: 12,
            mailer_autoconfirm: false,
            anonymous_users: false,
            phone_enabled: false,
            phone_autoconfirm: false,
            sms_provider: None,
            sms_template: "Your code is {{ code }}".to_owned(),
            disable_signup: false,
            otp_expiry_secs: 600,
            otp_length: 6,
            email_min_interval_secs: 60,
            lockout_max_failed_sign_ins: 100,
            lockout_window_secs: 3600,
            mfa_totp_enabled: true,
            mfa_max_enrolled_factors: 10,
            mfa_challenge_expiry_secs: 300,
            mfa_totp_issuer: String::new(),
            mfa_recovery_codes: 10,
            mfa_phone_enabled: false,
            mfa_phone_max_frequency_secs: 5,
            smtp: None,
            mailer_from: "GoForward <noreply@localhost>".to_owned(),
            rate_limits: AuthRateLimits::default(),
            bootstrap_admin: None,
            external: std::collections::BTreeMap::new(),
            external_allow_private_endpoints: false,
            cookie_mode: false,
            cookie_refresh_max_age_secs: 30 * 24 * 3600,
        }
    }
}

/// SMTP settings (lettre).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port (465 implicit TLS, 587 STARTTLS, 25/1025 plain).
    pub port: u16,
    /// `tls` (implicit), `starttls` or `none` (local relays and tests only).
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    /// Login user, if the server requires one.
    #[serde(default)]
    pub user: Option<String>,
    /// Login password.
    #[serde(default, skip_serializing)]
    pub password: Option<secrecy::SecretString>,
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// A Twilio-compatible SMS provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsProviderConfig {
    /// API base URL (default `https://api.twilio.com`).
    #[serde(default = "default_twilio")]
    pub base_url: String,
    /// Account SID (basic-auth user).
    pub account_sid: String,
    /// Auth token (basic-auth password).
    #[serde(skip_serializing)]
    pub auth_token: secrecy::SecretString,
    /// Sender number, e.g. `+15555550100` (or set `messaging_service_sid`).
    #[serde(default)]
    pub from: Option<String>,
    /// Messaging service SID (instead of `from`).
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
}

fn default_twilio() -> String {
    "https://api.twilio.com".to_owned()
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// No encryption: only for a relay on the same host.
    None,
}

/// Requests per IP per window for each auth endpoint group (0 = unlimited).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthRateLimits {
    /// Window length in seconds (default 300, GoTrue's five minutes).
    pub window_secs: u64,
    /// Password sign-ins and sign-ups per window (default 30).
    pub sign_in_sign_ups: u32,
    /// Refresh-token grants per window (default 150).
    pub token_refresh: u32,
    /// `/verify` calls per window (default 30).
    pub verify: u32,
    /// `/otp`, `/magiclink`, `/recover` and `/resend` calls per window (default 30).
    pub otp: u32,
    /// MFA challenge and verify calls per window (default 75, GoTrue's 15 a minute).
    pub mfa: u32,
}

impl Default for AuthRateLimits {
    fn default() -> Self {
        Self {
            window_secs: 300,
            sign_in_sign_ups: 30,
            token_refresh: 150,
            verify: 30,
            otp: 30,
            mfa: 75,
        }
    }
}

impl AuthConfig {
    /// Checks every value; errors name the key (`auth.<field>`).
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid value.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |key: &str, value: String, problem: &str| {
            Err(Error::config(format!("auth.{key}"), value, problem))
        };
        if !(4..=31).contains(&self.bcrypt_cost) {
            return fail(
                "bcrypt_cost",
                self.bcrypt_cost.to_string(),
                "must be between 4 and 31 (use at least 10 in production)",
            );
        }
        if self.jwt_expiry_secs < 30 || self.jwt_expiry_secs > 7 * 24 * 3600 {
            return fail(
                "jwt_expiry_secs",
                self.jwt_expiry_secs.to_string(),
                "must be between 30 seconds and 7 days",
            );
        }
        if self.refresh_token_reuse_interval_secs < 0 || self.refresh_token_reuse_interval_secs > 60
        {
            return fail(
                "refresh_token_reuse_interval_secs",
                self.refresh_token_reuse_interval_secs.to_string(),
                "must be between 0 and 60 seconds",
            );
        }
        if self.session_timebox_secs < 0 {
            return fail(
                "session_timebox_secs",
                self.session_timebox_secs.to_string(),
                "must not be negative (0 = unlimited)",
            );
        }
        if self.session_inactivity_timeout_secs < 0 {
            return fail(
                "session_inactivity_timeout_secs",
                self.session_inactivity_timeout_secs.to_string(),
                "must not be negative (0 = never)",
            );
        }
        if !(6..=72).contains(&self.password_min_length) {
            return fail(
                "password_min_length",
                self.password_min_length.to_string(),
                "must be between 6 and 72",
            );
        }
        if self.otp_expiry_secs < 30 || self.otp_expiry_secs > 600 {
            return fail(
                "otp_expiry_secs",
                self.otp_expiry_secs.to_string(),
                "must be between 30 and 600 seconds",
            );
        }
        if !(6..=10).contains(&self.otp_length) {
            return fail(
                "otp_length",
                self.otp_length.to_string(),
                "must be between 6 and 10",
            );
        }
        if minijinja::Environment::new()
            .template_from_str(&self.sms_template)
            .is_err()
        {
            return fail(
                "sms_template",
                self.sms_template.clone(),
                "is not a valid minijinja template",
            );
        }
        if self.email_min_interval_secs < 0 {
            return fail(
                "email_min_interval_secs",
                self.email_min_interval_secs.to_string(),
                "must not be negative",
            );
        }
        if !self.site_url.is_empty() && url::Url::parse(&self.site_url).is_err() {
            return fail(
                "site_url",
                self.site_url.clone(),
                "expected an absolute URL, e.g. http://localhost:3000",
            );
        }
        if !self.external_url.is_empty() && url::Url::parse(&self.external_url).is_err() {
            return fail(
                "external_url",
                self.external_url.clone(),
                "expected an absolute URL, e.g. https://api.example.com",
            );
        }
        if self
            .mailer_from
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return fail(
                "mailer_from",
                self.mailer_from.clone(),
                "expected a mailbox, e.g. `App <noreply@example.com>`",
            );
        }
        if self.mfa_challenge_expiry_secs < 30 || self.mfa_challenge_expiry_secs > 300 {
            return fail(
                "mfa_challenge_expiry_secs",
                self.mfa_challenge_expiry_secs.to_string(),
                "must be between 30 and 300 seconds",
            );
        }
        if self.lockout_window_secs < 1 {
            return fail(
                "lockout_window_secs",
                self.lockout_window_secs.to_string(),
                "must be at least 1",
            );
        }
        if !(4..=20).contains(&self.mfa_recovery_codes) {
            return fail(
                "mfa_recovery_codes",
                self.mfa_recovery_codes.to_string(),
                "must be between 4 and 20",
            );
        }
        if !(0..=3600).contains(&self.mfa_phone_max_frequency_secs) {
            return fail(
                "mfa_phone_max_frequency_secs",
                self.mfa_phone_max_frequency_secs.to_string(),
                "must be between 0 and 3600 seconds",
            );
        }
        if self.mfa_max_enrolled_factors == 0 {
            return fail("mfa_max_enrolled_factors", "0".into(), "must be at least 1");
        }
        if self.rate_limits.window_secs == 0 {
            return fail("rate_limits.window_secs", "0".into(), "must be at least 1");
        }
        if let Some(sms) = &self.sms_provider {
            let url = url::Url::parse(&sms.base_url);
            if !url.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return fail(
                    "sms_provider.base_url",
                    sms.base_url.clone(),
                    "expected an http(s) URL",
                );
            }
            if sms.account_sid.trim().is_empty() {
                return fail(
                    "sms_provider.account_sid",
                    String::new(),
                    "must not be empty",
                );
            }
            if sms.from.is_none() && sms.messaging_service_sid.is_none() {
                return fail(
                    "sms_provider",
                    "<section>".into(),
                    "set `from` or `messaging_service_sid`",
                );
            }
        }
        if let Some(smtp) = &self.smtp
            && smtp.host.trim().is_empty()
        {
            return fail("smtp.host", String::new(), "must not be empty");
        }
        if self.cookie_refresh_max_age_secs < 60 {
            return fail(
                "cookie_refresh_max_age_secs",
                self.cookie_refresh_max_age_secs.to_string(),
                "must be at least 60 seconds",
            );
        }
        for (name, provider) in &self.external {
            if let Err((key, value, problem)) = crate::oauth::ProviderSpec::resolve(
                name,
                provider,
                self.external_allow_private_endpoints,
            ) {
                let key = if key.is_empty() {
                    format!("external.{name}")
                } else {
                    format!("external.{name}.{key}")
                };
                return fail(&key, value, &problem);
            }
        }
        if let Some(admin) = &self.bootstrap_admin {
            if !crate::users::valid_email(&crate::users::normalize_email(&admin.email)) {
                return fail(
                    "bootstrap_admin.email",
                    admin.email.clone(),
                    "expected an email address",
                );
            }
            if goforward_core::token::AdminRole::parse(&admin.admin_role).is_none() {
                return fail(
                    "bootstrap_admin.admin_role",
                    admin.admin_role.clone(),
                    "expected moderator, admin, super_admin or system_admin",
                );
            }
            use secrecy::ExposeSecret;
            if admin.password.expose_secret().is_empty() {
                return fail(
                    "bootstrap_admin.password",
                    String::new(),
                    "must not be empty (set GOFORWARD_AUTH__BOOTSTRAP_ADMIN__PASSWORD)",
                );
            }
        }
        Ok(())
    }
}
