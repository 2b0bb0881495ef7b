//! One-time tokens: email OTPs and links (hashed at rest, single-use,
//! expiring, one pending token per user and purpose) and their delivery.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use crate::crypto::{ct_eq, otp, otp_hash};
use crate::entity::{one_time_token, user};
use crate::error::{AuthError, Result};
use crate::mailer::{Email, EmailKind, TemplateContext};
use crate::state::AuthState;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Confirm the email of a new account.
    Confirmation,
    /// Reset the password.
    Recovery,
    /// Sign in by link or code.
    MagicLink,
    /// Confirm the new address of an email change.
    EmailChangeNew,
    /// Confirm an email change from the current address.
    EmailChangeCurrent,
    /// Accept an invitation.
    Invite,
    /// Confirm a password change (`/reauthenticate`).
    Reauthentication,
    /// Sign in (and confirm the phone) with an SMS code.
    Sms,
    /// Confirm the new number of a phone change (SMS code).
    PhoneChange,
}

impl TokenType {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Recovery => "recovery",
            Self::MagicLink => "magiclink",
            Self::EmailChangeNew => "email_change_new",
            Self::EmailChangeCurrent => "email_change_current",
            Self::Invite => "invite",
            Self::Reauthentication => "reauthentication",
            Self::Sms => "sms",
            Self::PhoneChange => "phone_change",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "confirmation" => Self::Confirmation,
            "recovery" => Self::Recovery,
            "magiclink" => Self::MagicLink,
            "email_change_new" => Self::EmailChangeNew,
            "email_change_current" => Self::EmailChangeCurrent,
            "invite" => Self::Invite,
            "reauthentication" => Self::Reauthentication,
            "sms" => Self::Sms,
            "phone_change" => Self::PhoneChange,
            _ => return None,
        })
    }

    /// Whether the code goes by SMS (to a phone number) rather than email.
    pub fn is_sms(self) -> bool {
        matches!(self, Self::Sms | Self::PhoneChange)
    }

    /// The `type` of the verification link (GoTrue's verification types).
    pub fn verify_type(self) -> &'static str {
        match self {
            Self::Confirmation => "signup",
            Self::Recovery => "recovery",
            Self::MagicLink => "magiclink",
            Self::EmailChangeNew | Self::EmailChangeCurrent => "email_change",
            Self::Invite => "invite",
            Self::Reauthentication => "reauthentication",
            Self::Sms => "sms",
            Self::PhoneChange => "phone_change",
        }
    }

    /// The token types a `/verify` `type` accepts (`email` accepts
    /// confirmation, magic link and recovery tokens, as GoTrue).
    pub fn for_verify_type(kind: &str) -> Option<&'static [TokenType]> {
        Some(match kind {
            "signup" => &[Self::Confirmation],
            "recovery" => &[Self::Recovery],
            "magiclink" => &[Self::MagicLink, Self::Confirmation],
            "invite" => &[Self::Invite],
            "email" => &[Self::Confirmation, Self::MagicLink, Self::Recovery],
            "email_change" => &[Self::EmailChangeNew, Self::EmailChangeCurrent],
            "sms" => &[Self::Sms],
            "phone_change" => &[Self::PhoneChange],
            _ => return None,
        })
    }

    fn email_kind(self) -> EmailKind {
        match self {
            Self::Confirmation => EmailKind::Confirmation,
            Self::Recovery => EmailKind::Recovery,
            Self::MagicLink => EmailKind::MagicLink,
            Self::EmailChangeNew | Self::EmailChangeCurrent => EmailKind::EmailChange,
            Self::Invite => EmailKind::Invite,
            Self::Reauthentication => EmailKind::Reauthentication,
            // SMS codes never go by email (see `send_sms`).
            Self::Sms | Self::PhoneChange => EmailKind::MagicLink,
        }
    }
}

static BACKGROUND_IN_FLIGHT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// How many emails (with their token writes) are being sent off the
/// response path right now, in this process (see [`spawn_background`]).
/// Tests wait for 0 before reading the outbox.
pub fn background_sends() -> usize {
    BACKGROUND_IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst)
}

struct InFlight;

impl Drop for InFlight {
    fn drop(&mut self) {
        BACKGROUND_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs `work` (token rows, emails, audit rows for a *known* address) on a
/// spawned task, so `/recover`, `/otp`, `/magiclink` and `/resend` answer
/// after the same work for known and unknown addresses (no enumeration by
/// time). Errors are logged, never answered.
pub fn spawn_background<F>(what: &'static str, work: F)
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    BACKGROUND_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let guard = InFlight;
    tokio::spawn(async move {
        let _guard = guard;
        if let Err(err) = work.await {
            tracing::error!(what, error = %err, "sending an email in the background failed");
        }
    });
}

/// The id [`check_interval`] is asked about for an unknown address: no user
/// has it, so the query costs what it costs for a known one and finds nothing.
pub const NO_USER: &str = "00000000-0000-0000-0000-000000000000";

/// Refuses a new email of `ty` to `user` sooner than `email_min_interval_secs`
/// after the previous one.
///
/// # Errors
/// [`AuthError::OverEmailSendRateLimit`].
pub async fn check_interval(state: &AuthState, user_id: &str, ty: TokenType) -> Result<()> {
    let interval = state.config.email_min_interval_secs;
    if interval == 0 {
        return Ok(());
    }
    let previous = one_time_token::Entity::find()
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::TokenType.eq(ty.as_str()))
        .one(&state.db)
        .await?;
    if let Some(previous) = previous {
        let elapsed = (Utc::now() - previous.created_at).num_seconds();
        if elapsed < interval {
            let retry_after_secs = (interval - elapsed).max(1) as u64;
            return Err(if ty.is_sms() {
                AuthError::OverSmsSendRateLimit { retry_after_secs }
            } else {
                AuthError::OverEmailSendRateLimit { retry_after_secs }
            });
        }
    }
    Ok(())
}

/// A freshly issued one-time token: the code, its hash (the link's
/// `token_hash`) and the verification link.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The numeric code.
    pub code: String,
    /// Hex SHA-256 of the address and the code.
    pub hash: String,
    /// `<external_url>/auth/v1/verify?token=…&type=…&redirect_to=…`.
    pub link: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued(<redacted>)")
    }
}

/// Issues a token of `ty` for `user` sent to `to` (replacing any pending one
/// of the same type) and records the send time on the user, without
/// sending anything (admin `generate_link`; [`send`] emails it).
///
/// # Errors
/// Database errors.
pub async fn issue(
    state: &AuthState,
    user: &user::Model,
    ty: TokenType,
    to: &str,
    redirect_to: &str,
) -> Result<Issued> {
    let code = otp(state.config.otp_length);
    let hash = otp_hash(to, &code);
    let now = Utc::now();
    one_time_token::Entity::delete_many()
        .filter(one_time_token::Column::UserId.eq(user.id.clone()))
        .filter(one_time_token::Column::TokenType.eq(ty.as_str()))
        .exec(&state.db)
        .await?;
    one_time_token::ActiveModel::from(one_time_token::Model {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        token_type: ty.as_str().to_owned(),
        token_hash: hash.clone(),
        relates_to: to.to_lowercase(),
        attempts: 0,
        created_at: now,
        expires_at: now + Duration::seconds(state.config.otp_expiry_secs),
    })
    .insert(&state.db)
    .await?;
    let mut active: user::ActiveModel = user.clone().into();
    match ty {
        TokenType::Confirmation => active.confirmation_sent_at = Set(Some(now)),
        TokenType::Recovery | TokenType::MagicLink => active.recovery_sent_at = Set(Some(now)),
        TokenType::EmailChangeNew | TokenType::EmailChangeCurrent => {
            active.email_change_sent_at = Set(Some(now))
        }
        TokenType::Invite => active.invited_at = Set(Some(now)),
        TokenType::PhoneChange => active.phone_change_sent_at = Set(Some(now)),
        TokenType::Reauthentication | TokenType::Sms => {}
    }
    active.update(&state.db).await?;
    let link = link(state, &hash, ty.verify_type(), redirect_to);
    Ok(Issued { code, hash, link })
}

/// Issues a token of `ty` for `user` (see [`issue`]) and emails the code and
/// link to `to`. Call [`check_interval`] first.
///
/// # Errors
/// Database errors, template errors, or [`AuthError::EmailSend`].
pub async fn send(
    state: &AuthState,
    user: &user::Model,
    ty: TokenType,
    to: &str,
    redirect_to: &str,
    new_email: Option<&str>,
) -> Result<()> {
    let issued = issue(state, user, ty, to, redirect_to).await?;
    let ctx = TemplateContext {
        site_url: state.redirects.site_url().to_string(),
        confirmation_url: issued.link,
        token: issued.code,
        token_hash: issued.hash,
        email: user.email.clone().unwrap_or_else(|| to.to_owned()),
        new_email: new_email.unwrap_or_default().to_owned(),
        redirect_to: redirect_to.to_owned(),
    };
    let (subject, text) = state
        .templates
        .render(ty.email_kind(), &ctx)
        .map_err(|e| AuthError::Internal(format!("email template: {e}")))?;
    state
        .mailer
        .send(&Email {
            from: state.config.mailer_from.clone(),
            to: to.to_owned(),
            subject,
            text,
            kind: ty.email_kind(),
        })
        .await
        .map_err(|e| AuthError::EmailSend(e.to_string()))
}

/// Issues an SMS code for `user` (replacing a pending one) and texts it to
/// `phone`; returns the provider's message id. Call [`check_interval`] first.
///
/// # Errors
/// Database or template errors, or [`AuthError::SmsSend`].
pub async fn send_sms(state: &AuthState, user: &user::Model, phone: &str) -> Result<String> {
    send_sms_of(state, user, TokenType::Sms, phone).await
}

/// As [`send_sms`], for a token of `ty` (an SMS type: [`TokenType::Sms`] or
/// [`TokenType::PhoneChange`], whose code goes to the new number).
///
/// # Errors
/// As [`send_sms`].
pub async fn send_sms_of(
    state: &AuthState,
    user: &user::Model,
    ty: TokenType,
    phone: &str,
) -> Result<String> {
    let site = state.redirects.site_url().to_string();
    let issued = issue(state, user, ty, phone, &site).await?;
    text_code(state, phone, &issued.code).await
}

/// Renders `sms_template` with `code` and texts it to `phone`; returns the
/// provider's message id.
///
/// # Errors
/// Template errors or [`AuthError::SmsSend`].
pub async fn text_code(state: &AuthState, phone: &str, code: &str) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template("sms", &state.config.sms_template)
        .map_err(|e| AuthError::Internal(format!("sms template: {e}")))?;
    let body = env
        .get_template("sms")
        .and_then(|t| t.render(minijinja::context! { code => code }))
        .map_err(|e| AuthError::Internal(format!("sms template: {e}")))?;
    state
        .sms
        .send(phone, &body)
        .await
        .map_err(|e| AuthError::SmsSend(e.to_string()))
}

fn link(state: &AuthState, hash: &str, verify_type: &str, redirect_to: &str) -> String {
    let mut url = format!("{}/auth/v1/verify", state.external_url);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", hash)
        .append_pair("type", verify_type)
        .append_pair("redirect_to", redirect_to)
        .finish();
    url.push('?');
    url.push_str(&query);
    url
}

/// Consumes the token matching `email` + `code` among `types`.
///
/// # Errors
/// [`AuthError::OtpExpired`] when nothing matches, the token expired, or a
/// concurrent request consumed it first.
pub async fn consume_code(
    state: &AuthState,
    email: &str,
    code: &str,
    types: &[TokenType],
) -> Result<one_time_token::Model> {
    let expected = otp_hash(email, code.trim());
    let candidates = one_time_token::Entity::find()
        .filter(one_time_token::Column::RelatesTo.eq(email.to_lowercase()))
        .filter(one_time_token::Column::TokenType.is_in(types.iter().map(|t| t.as_str())))
        .all(&state.db)
        .await?;
    let mut found = None;
    let mut others = Vec::new();
    for candidate in candidates {
        // Every candidate is compared, in constant time, before deciding.
        if ct_eq(&candidate.token_hash, &expected) && found.is_none() {
            found = Some(candidate);
        } else {
            others.push(candidate);
        }
    }
    if found.is_none() {
        count_failure(state, others).await?;
    }
    take(state, found).await
}

/// Wrong codes allowed per pending token; the next one voids it.
pub const MAX_ATTEMPTS: i32 = 5;

/// Records a wrong code against every pending token of the address and
/// purpose; a token that reaches [`MAX_ATTEMPTS`] is deleted.
async fn count_failure(state: &AuthState, tokens: Vec<one_time_token::Model>) -> Result<()> {
    for token in tokens {
        if token.attempts + 1 >= MAX_ATTEMPTS {
            one_time_token::Entity::delete_by_id(token.id.clone())
                .exec(&state.db)
                .await?;
        } else {
            one_time_token::Entity::update_many()
                .col_expr(
                    one_time_token::Column::Attempts,
                    sea_orm::sea_query::ExprTrait::add(
                        sea_orm::sea_query::Expr::col(one_time_token::Column::Attempts),
                        1,
                    ),
                )
                .filter(one_time_token::Column::Id.eq(token.id.clone()))
                .exec(&state.db)
                .await?;
        }
    }
    Ok(())
}

/// Consumes the token whose link hash is `token_hash`, among `types`.
///
/// # Errors
/// As [`consume_code`].
pub async fn consume_hash(
    state: &AuthState,
    token_hash: &str,
    types: &[TokenType],
) -> Result<one_time_token::Model> {
    let token_hash = token_hash.trim().to_lowercase();
    if token_hash.len() != 64 {
        return Err(AuthError::OtpExpired);
    }
    let found = one_time_token::Entity::find()
        .filter(one_time_token::Column::TokenHash.eq(token_hash.clone()))
        .filter(one_time_token::Column::TokenType.is_in(types.iter().map(|t| t.as_str())))
        .one(&state.db)
        .await?
        .filter(|t| ct_eq(&t.token_hash, &token_hash));
    take(state, found).await
}

async fn take(
    state: &AuthState,
    found: Option<one_time_token::Model>,
) -> Result<one_time_token::Model> {
    let Some(token) = found else {
        return Err(AuthError::OtpExpired);
    };
    let deleted = one_time_token::Entity::delete_by_id(token.id.clone())
        .exec(&state.db)
        .await?
        .rows_affected;
    if deleted != 1 || token.expires_at <= Utc::now() {
        return Err(AuthError::OtpExpired);
    }
    Ok(token)
}

/// Deletes `user_id`'s pending token of `ty` (an undone change).
///
/// # Errors
/// Database errors.
pub async fn discard(state: &AuthState, user_id: &str, ty: TokenType) -> Result<()> {
    one_time_token::Entity::delete_many()
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::TokenType.eq(ty.as_str()))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Whether `user_id` still has a pending token of `ty`.
///
/// # Errors
/// Database errors.
pub async fn pending(state: &AuthState, user_id: &str, ty: TokenType) -> Result<bool> {
    Ok(one_time_token::Entity::find()
        .filter(one_time_token::Column::UserId.eq(user_id))
        .filter(one_time_token::Column::TokenType.eq(ty.as_str()))
        .one(&state.db)
        .await?
        .is_some_and(|t| t.expires_at > Utc::now()))
}
