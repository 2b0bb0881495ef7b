//! [`AuthError`]: every way an auth request fails, with GoTrue's error
//! codes and statuses, rendered in GoTrue's wire shape.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use goforward_core::{Error, error::ErrorFormat};
use serde_json::json;

/// The API version auth-js sends and GoTrue echoes.
pub const API_VERSION: &str = "2024-01-01";

/// Result alias of the auth crate.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Everything that can go wrong in the auth plugin.
///
/// [`AuthError::code`] is GoTrue's machine code (what auth-js exposes as
/// `error.code`); the HTTP status follows GoTrue. Server faults render an
/// opaque body and are logged once.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email/phone or password, or an unknown account (same answer).
    #[error("Invalid login credentials")]
    InvalidCredentials,
    /// The account's email is not confirmed yet.
    #[error("Email not confirmed")]
    EmailNotConfirmed,
    /// The password breaks the policy; `reasons` are GoTrue's (`length`, `characters`).
    #[error("{message}")]
    WeakPassword {
        /// Human-readable explanation.
        message: String,
        /// Machine reasons (`length`, …).
        reasons: Vec<&'static str>,
    },
    /// Sign-up with an address that already has a confirmed account (autoconfirm on).
    #[error("User already registered")]
    UserAlreadyExists,
    /// Changing the email to an address another account uses.
    #[error("A user with this email address has already been registered")]
    EmailExists,
    /// Changing the phone to a number another account uses.
    #[error("A user with this phone number has already been registered")]
    PhoneExists,
    /// Sign-ups are disabled by configuration.
    #[error("Signups not allowed for this instance")]
    SignupDisabled,
    /// Phone sign-ins are disabled by configuration.
    #[error("Phone logins are disabled")]
    PhoneProviderDisabled,
    /// An SMS was sent to the number too recently.
    #[error("For security purposes, you can only request this after {retry_after_secs} seconds.")]
    OverSmsSendRateLimit {
        /// Seconds until another SMS may be requested.
        retry_after_secs: u64,
    },
    /// An SMS could not be delivered.
    #[error("Error sending SMS: {0}")]
    SmsSend(String),
    /// `/otp` for an unknown address with `create_user: false`.
    #[error("Signups not allowed for otp")]
    OtpDisabled,
    /// Anonymous sign-ins are disabled by configuration.
    #[error("Anonymous sign-ins are disabled")]
    AnonymousProviderDisabled,
    /// The account's phone is not confirmed yet.
    #[error("Phone not confirmed")]
    PhoneNotConfirmed,
    /// The account is banned.
    #[error("User is banned")]
    UserBanned,
    /// A banned user's (still valid) access token on a route that acts as the user.
    #[error("User is banned")]
    BannedUser,
    /// An addressed resource (role, API key…) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A resource with this name already exists.
    #[error("{0}")]
    Conflict(String),
    /// The refresh token is unknown.
    #[error("Invalid Refresh Token: Refresh Token Not Found")]
    RefreshTokenNotFound,
    /// The refresh token was already rotated (outside the reuse interval).
    #[error("Invalid Refresh Token: Already Used")]
    RefreshTokenAlreadyUsed,
    /// The session of the token no longer exists (signed out or revoked).
    #[error("Session from session_id claim in JWT does not exist")]
    SessionNotFound,
    /// The session passed its absolute lifetime.
    #[error("Session expired")]
    SessionExpired,
    /// No PKCE flow for this auth code.
    #[error("invalid flow state, no valid flow state found")]
    FlowStateNotFound,
    /// The PKCE auth code is too old.
    #[error("invalid flow state, flow state has expired")]
    FlowStateExpired,
    /// The code verifier does not match the challenge.
    #[error("code challenge does not match previously saved code verifier")]
    BadCodeVerifier,
    /// A cookie-authenticated state-changing request failed the CSRF check.
    #[error("Cross-site request refused: send the X-CSRF-Token header (the __Host-gf-csrf cookie)")]
    CsrfCheckFailed,
    /// The OAuth `state` is missing, unknown, used or expired.
    #[error("{0}")]
    BadOAuthState(String),
    /// The OAuth provider refused the code or answered something unusable.
    #[error("{0}")]
    BadOAuthCallback(String),
    /// The admin API addressed a user that does not exist.
    #[error("User not found")]
    AdminUserNotFound,
    /// The token's user no longer exists.
    #[error("User from sub claim in JWT does not exist")]
    UserNotFound,
    /// The endpoint needs a user's bearer token.
    #[error("This endpoint requires a valid Bearer token")]
    NoAuthorization,
    /// A field is missing or invalid.
    #[error("{0}")]
    Validation(String),
    /// The caller tried to change something only an admin may change.
    #[error("{0}")]
    NotAdmin(String),
    /// The email address is not valid.
    #[error("Unable to validate email address: invalid format")]
    EmailAddressInvalid,
    /// A password change needs a `/reauthenticate` nonce first.
    #[error("Password update requires reauthentication")]
    ReauthenticationNeeded,
    /// The reauthentication nonce is wrong, used or expired.
    #[error("Requires reauthentication")]
    ReauthenticationNotValid,
    /// The new password equals the current one.
    #[error("New password should be different from the old password.")]
    SamePassword,
    /// The body is not JSON of the expected shape.
    #[error("{0}")]
    BadJson(String),
    /// An OAuth-style request error (`{"error":"invalid_request", …}`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The `grant_type` is not supported.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// The OTP or link is invalid, used or expired.
    #[error("Token has expired or is invalid")]
    OtpExpired,
    /// An email of this kind was sent to the address too recently.
    #[error("For security purposes, you can only request this after {retry_after_secs} seconds.")]
    OverEmailSendRateLimit {
        /// Seconds until another email may be requested.
        retry_after_secs: u64,
    },
    /// Too many requests from this client.
    #[error("Request rate limit reached")]
    OverRequestRateLimit {
        /// Seconds until the next request is accepted.
        retry_after_secs: u64,
    },
    /// The TOTP code is wrong (or was already used).
    #[error("Invalid TOTP code entered")]
    MfaVerificationFailed,
    /// The MFA recovery code is wrong or was already used.
    #[error("Invalid recovery code")]
    InvalidRecoveryCode,
    /// The MFA challenge expired or was already answered.
    #[error("MFA challenge has expired, verify against another challenge or create a new factor.")]
    MfaChallengeExpired,
    /// No such factor (or challenge) for this user.
    #[error("Factor not found")]
    MfaFactorNotFound,
    /// The user has the maximum number of factors.
    #[error("Maximum number of enrolled factors reached, unenroll to continue")]
    TooManyEnrolledMfaFactors,
    /// Another factor of the user has this friendly name.
    #[error("A factor with the friendly name {0:?} for this user already exists")]
    MfaFactorNameConflict(String),
    /// TOTP enrollment is disabled by configuration.
    #[error("MFA enroll is disabled for TOTP")]
    MfaTotpEnrollDisabled,
    /// The session's assurance level is too low for this action.
    #[error("AAL2 required to perform this action")]
    InsufficientAal,
    /// `PUT /user` changing the email, phone or password from an aal1
    /// session of a user with a verified MFA factor (GoTrue: 401).
    #[error("AAL2 session is required to update email or password when MFA is enabled.")]
    InsufficientAalToUpdate,
    /// The phone factor's SMS code is wrong.
    #[error("Invalid MFA Phone code entered")]
    MfaPhoneVerificationFailed,
    /// Phone factor enrollment is disabled by configuration.
    #[error("MFA enroll is disabled for Phone")]
    MfaPhoneEnrollDisabled,
    /// Phone factor verification is disabled by configuration.
    #[error("MFA verification is disabled for Phone")]
    MfaPhoneVerifyDisabled,
    /// A verified phone factor with this number exists.
    #[error("A verified phone factor already exists, unenroll the existing factor to continue")]
    MfaVerifiedFactorExists,
    /// A phone factor's challenge is answered from another IP address.
    #[error("Challenge and verify IP addresses mismatch")]
    MfaIpAddressMismatch,
    /// A message could not be delivered.
    #[error("Error sending email: {0}")]
    EmailSend(String),
    /// A core error (token, body, rate limit, database…).
    #[error(transparent)]
    Core(#[from] Error),
    /// A database error (opaque to the client).
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// An invariant broke (opaque to the client).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// GoTrue's machine code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredentials | Self::UnsupportedGrantType => "invalid_credentials",
            Self::EmailNotConfirmed => "email_not_confirmed",
            Self::PhoneNotConfirmed => "phone_not_confirmed",
            Self::WeakPassword { .. } => "weak_password",
            Self::UserAlreadyExists => "user_already_exists",
            Self::EmailExists => "email_exists",
            Self::SignupDisabled => "signup_disabled",
            Self::AnonymousProviderDisabled => "anonymous_provider_disabled",
            Self::OtpDisabled => "otp_disabled",
            Self::PhoneProviderDisabled => "phone_provider_disabled",
            Self::OverSmsSendRateLimit { .. } => "over_sms_send_rate_limit",
            Self::UserBanned | Self::BannedUser => "user_banned",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::RefreshTokenNotFound => "refresh_token_not_found",
            Self::RefreshTokenAlreadyUsed => "refresh_token_already_used",
            Self::SessionNotFound => "session_not_found",
            Self::SessionExpired => "session_expired",
            Self::UserNotFound | Self::AdminUserNotFound => "user_not_found",
            Self::FlowStateNotFound => "flow_state_not_found",
            Self::FlowStateExpired => "flow_state_expired",
            Self::BadCodeVerifier => "bad_code_verifier",
            Self::BadOAuthState(_) => "bad_oauth_state",
            Self::CsrfCheckFailed => "csrf_check_failed",
            Self::BadOAuthCallback(_) => "bad_oauth_callback",
            Self::NotAdmin(_) => "not_admin",
            Self::NoAuthorization => "no_authorization",
            Self::Validation(_) | Self::InvalidRequest(_) => "validation_failed",
            Self::EmailAddressInvalid => "email_address_invalid",
            Self::SamePassword => "same_password",
            Self::ReauthenticationNeeded => "reauthentication_needed",
            Self::ReauthenticationNotValid => "reauthentication_not_valid",
            Self::BadJson(_) => "bad_json",
            Self::OtpExpired => "otp_expired",
            Self::OverEmailSendRateLimit { .. } => "over_email_send_rate_limit",
            Self::MfaVerificationFailed | Self::InvalidRecoveryCode => "mfa_verification_failed",
            Self::MfaChallengeExpired => "mfa_challenge_expired",
            Self::MfaFactorNotFound => "mfa_factor_not_found",
            Self::TooManyEnrolledMfaFactors => "too_many_enrolled_mfa_factors",
            Self::MfaFactorNameConflict(_) => "mfa_factor_name_conflict",
            Self::MfaTotpEnrollDisabled => "mfa_totp_enroll_not_enabled",
            Self::InsufficientAal | Self::InsufficientAalToUpdate => "insufficient_aal",
            Self::PhoneExists => "phone_exists",
            Self::MfaPhoneVerificationFailed => "mfa_verification_failed",
            Self::MfaPhoneEnrollDisabled => "mfa_phone_enroll_not_enabled",
            Self::MfaPhoneVerifyDisabled => "mfa_phone_verify_not_enabled",
            Self::MfaVerifiedFactorExists => "mfa_verified_factor_exists",
            Self::MfaIpAddressMismatch => "mfa_ip_address_mismatch",
            Self::OverRequestRateLimit { .. } => "over_request_rate_limit",
            Self::EmailSend(_) | Self::SmsSend(_) | Self::Database(_) | Self::Internal(_) => {
                "unexpected_failure"
            }
            Self::Core(err) => core_code(err),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::OverEmailSendRateLimit { retry_after_secs }
            | Self::OverSmsSendRateLimit { retry_after_secs }
            | Self::OverRequestRateLimit { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn public_message(&self) -> String {
        if self.status_code().is_server_error() {
            "Internal server error".to_owned()
        } else {
            self.to_string()
        }
    }
}

fn core_code(err: &Error) -> &'static str {
    match err {
        Error::Unauthorized(goforward_core::token::TokenError::NoApiKey) => "no_authorization",
        Error::Unauthorized(_) => "bad_jwt",
        Error::Forbidden(_) => "not_admin",
        Error::NotFound(_) => "not_found",
        Error::RateLimited { .. } => "over_request_rate_limit",
        Error::PayloadTooLarge { .. } => "request_too_large",
        Error::BadRequest { code, .. }
            if code.ends_with("invalid_json") || code.ends_with("invalid_body") =>
        {
            "bad_json"
        }
        Error::BadRequest { .. } => "validation_failed",
        _ => "unexpected_failure",
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidCredentials
            | Self::EmailNotConfirmed
            | Self::PhoneNotConfirmed
            | Self::UserBanned
            | Self::RefreshTokenNotFound
            | Self::RefreshTokenAlreadyUsed
            | Self::SessionExpired
            | Self::Validation(_)
            | Self::EmailAddressInvalid
            | Self::ReauthenticationNeeded
            | Self::ReauthenticationNotValid
            | Self::BadJson(_)
            | Self::InvalidRequest(_)
            | Self::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Self::NoAuthorization | Self::InsufficientAalToUpdate => StatusCode::UNAUTHORIZED,
            Self::SessionNotFound
            | Self::UserNotFound
            | Self::OtpExpired
            | Self::NotAdmin(_)
            | Self::BannedUser => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::WeakPassword { .. }
            | Self::UserAlreadyExists
            | Self::EmailExists
            | Self::PhoneExists
            | Self::SignupDisabled
            | Self::AnonymousProviderDisabled
            | Self::OtpDisabled
            | Self::PhoneProviderDisabled
            | Self::SamePassword => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MfaVerificationFailed
            | Self::InvalidRecoveryCode
            | Self::MfaChallengeExpired
            | Self::TooManyEnrolledMfaFactors
            | Self::MfaFactorNameConflict(_)
            | Self::MfaTotpEnrollDisabled
            | Self::MfaPhoneVerificationFailed
            | Self::MfaPhoneEnrollDisabled
            | Self::MfaPhoneVerifyDisabled
            | Self::MfaVerifiedFactorExists
            | Self::MfaIpAddressMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MfaFactorNotFound | Self::AdminUserNotFound | Self::FlowStateNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::FlowStateExpired => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadCodeVerifier | Self::BadOAuthState(_) | Self::BadOAuthCallback(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::InsufficientAal | Self::CsrfCheckFailed => StatusCode::FORBIDDEN,
            Self::OverEmailSendRateLimit { .. }
            | Self::OverSmsSendRateLimit { .. }
            | Self::OverRequestRateLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::EmailSend(_) | Self::SmsSend(_) | Self::Database(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Core(err) => err.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Core(err) = self {
            return render_core(err);
        }
        if self.status_code().is_server_error() {
            tracing::error!(code = self.code(), error = %self, "auth request failed");
        }
        let code = self.code();
        let mut res = start(self.status_code(), code, self.retry_after());
        if let Self::InvalidRequest(description) = self {
            return res.json(json!({
                "error": "invalid_request",
                "error_description": description,
                "code": code,
                "message": description,
            }));
        }
        let message = self.public_message();
        let mut body =
            json!({ "code": code, "error_code": code, "message": message, "msg": message });
        if let Self::WeakPassword { reasons, .. } = self {
            body["weak_password"] = json!({ "reasons": reasons });
        }
        res.json(body)
    }
}

fn start(
    status: StatusCode,
    code: &str,
    retry_after: Option<u64>,
) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.insert_header(("X-Supabase-Api-Version", API_VERSION))
        .insert_header(("x-sb-error-code", code.to_owned()));
    if let Some(secs) = retry_after {
        res.insert_header(("Retry-After", secs.to_string()));
    }
    res
}

fn render_core(err: &Error) -> HttpResponse {
    goforward_core::error::log_if_server_fault(err);
    let code = core_code(err);
    let retry_after = match err {
        Error::RateLimited { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let message = err.public_message();
    start(err.status_code(), code, retry_after)
        .json(json!({ "code": code, "error_code": code, "message": message, "msg": message }))
}

/// GoTrue's error shape for core errors raised in the auth scope (bad
/// token, bad JSON, rate limit): `{"code", "message"}` (plus the legacy
/// `error_code`/`msg`), with `X-Supabase-Api-Version` and `x-sb-error-code`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoTrueErrorFormat;

impl ErrorFormat for GoTrueErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        render_core(err)
    }
}
