//! `GET /authorize` and `GET /callback`: OAuth2 / OIDC sign-in (see
//! [`crate::oauth`]). Neither needs an `apikey`: the browser navigates here.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{State, announce, audit};
use crate::error::{AuthError, Result};
use crate::sessions::{self, ClientMeta};
use crate::state::groups;

#[derive(Debug, Deserialize)]
pub(crate) struct AuthorizeQuery {
    provider: Option<String>,
    redirect_to: Option<String>,
    scopes: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `GET /authorize?provider=…[&redirect_to=…][&code_challenge=…&code_challenge_method=s256]`:
/// 302 to the provider.
pub(crate) async fn authorize(
    req: HttpRequest,
    state: State,
    query: web::Query<AuthorizeQuery>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::SIGN_IN)?;
    let provider = query
        .provider
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AuthError::Validation("Unsupported provider: missing provider".into()))?;
    let challenge = crate::pkce::challenge(
        query.code_challenge.as_deref(),
        query.code_challenge_method.as_deref(),
    )?;
    let url = crate::oauth::authorize(
        &state,
        provider,
        query.redirect_to.as_deref(),
        challenge,
        query.scopes.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.to_string()))
        .finish())
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /callback?code=…&state=…`: exchanges the code, signs the user in and
/// sends the browser to `redirect_to` with the session in the fragment, or
/// with `?code=` when the client started a PKCE flow.
///
/// Once the `state` names a flow, every failure — the provider's own
/// `error=…`, a refused code exchange, an invalid ID token, sign-ups
/// disabled, a ban — redirects to the flow's `redirect_to` (the site URL by
/// default) as GoTrue does: `error`, `error_code` and `error_description`
/// added to its query and repeated in the fragment (with `sb`). A missing
/// or unknown `state` has no trustworthy target and answers JSON.
pub(crate) async fn callback(
    req: HttpRequest,
    state: State,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::VERIFY)?;
    let flow = crate::oauth::take_flow(&state, query.state.as_deref()).await?;
    let failure = if let Some(error) = &query.error {
        // Relayed as GoTrue relays an OAuthError: the provider's words, no
        // error_code.
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        let description: String = query
            .error_description
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        tracing::info!(provider = %flow.provider, %error, "OAuth provider refused the sign-in");
        RedirectError {
            error: if error.is_empty() {
                "server_error".into()
            } else {
                error
            },
            error_code: None,
            description,
        }
    } else {
        match complete(&req, &state, &query, &flow).await {
            Ok(res) => return Ok(res),
            Err(err) => RedirectError::of(&err, &flow.provider),
        }
    };
    Ok(failure.redirect(&state, &flow.redirect_to))
}

/// An error carried back to the app in the redirect URL.
struct RedirectError {
    error: String,
    error_code: Option<String>,
    description: String,
}

impl RedirectError {
    /// GoTrue's `getErrorQueryString` for one of our errors.
    fn of(err: &AuthError, provider: &str) -> Self {
        use actix_web::ResponseError;
        let status = err.status_code();
        let error = match err {
            AuthError::SignupDisabled | AuthError::UserBanned => "access_denied",
            _ => match status.as_u16() {
                400 => "invalid_request",
                401 => "unauthorized_client",
                403 => "access_denied",
                503 => "temporarily_unavailable",
                _ => "server_error",
            },
        };
        let description = if status.is_server_error() {
            tracing::error!(%provider, error = %err, "OAuth callback failed");
            "Internal server error".to_owned()
        } else {
            tracing::info!(%provider, error = %err, "OAuth callback refused");
            err.to_string()
        };
        Self {
            error: error.to_owned(),
            error_code: Some(err.code().to_owned()),
            description,
        }
    }

    /// 302 to `target` (the flow's checked `redirect_to`, else the site URL)
    /// with the error in the query and the fragment.
    fn redirect(&self, state: &crate::state::AuthState, target: &str) -> HttpResponse {
        let mut url =
            url::Url::parse(target).unwrap_or_else(|_| state.redirects.site_url().clone());
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "error" | "error_code" | "error_description"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut fragment = url::form_urlencoded::Serializer::new(String::new());
        {
            let mut query = url.query_pairs_mut();
            query.clear().extend_pairs(kept);
            query.append_pair("error", &self.error);
            fragment.append_pair("error", &self.error);
            if let Some(code) = &self.error_code {
                query.append_pair("error_code", code);
                fragment.append_pair("error_code", code);
            }
            if !self.description.is_empty() {
                query.append_pair("error_description", &self.description);
                fragment.append_pair("error_description", &self.description);
            }
        }
        fragment.append_pair("sb", "");
        url.set_fragment(Some(&fragment.finish()));
        HttpResponse::Found()
            .insert_header((header::LOCATION, url.to_string()))
            .finish()
    }
}

/// The callback after the flow was taken: code exchange, identity, user,
/// session, redirect.
async fn complete(
    req: &HttpRequest,
    state: &crate::state::AuthState,
    query: &CallbackQuery,
    flow: &crate::entity::oauth_state::Model,
) -> Result<HttpResponse> {
    let Some(code) = query
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.len() <= 2048)
    else {
        return Err(AuthError::BadOAuthCallback(
            "OAuth callback with missing authorization code".into(),
        ));
    };
    let identity = crate::oauth::identity(state, flow, code).await?;
    if state.config.disable_signup
        && !crate::provider::identity_exists(state, &flow.provider, &identity.subject).await?
    {
        // Only linking to an existing account remains possible.
        let linkable = match identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
        {
            Some(email) => {
                crate::users::find_by_email(&state.db, &crate::users::normalize_email(email))
                    .await?
                    .is_some_and(|u| u.email_confirmed_at.is_some())
            }
            None => false,
        };
        if !linkable {
            return Err(AuthError::SignupDisabled);
        }
    }
    let (user, created) = crate::provider::user_for(state, &flow.provider, identity).await?;
    if user
        .banned_until
        .is_some_and(|until| until > chrono::Utc::now())
    {
        return Err(AuthError::UserBanned);
    }
    let meta = ClientMeta::of(state, req);
    let mut target = url::Url::parse(&flow.redirect_to)
        .map_err(|e| AuthError::Internal(format!("redirect target: {e}")))?;
    target.set_fragment(None);
    let mut issued = None;
    if let (Some(challenge), Some(method)) = (&flow.code_challenge, &flow.code_challenge_method) {
        let challenge = crate::pkce::Challenge {
            challenge: challenge.clone(),
            method: method.clone(),
        };
        crate::pkce::start(state, &user.id, &challenge, "oauth").await?;
        let code = crate::pkce::issue_code(state, &user.id)
            .await?
            .ok_or_else(|| AuthError::Internal("PKCE flow vanished".into()))?;
        target.query_pairs_mut().append_pair("code", &code);
    } else {
        let session = sessions::issue(state, &user, "oauth", &meta).await?;
        issued = crate::cookies::IssuedSession::of(&session);
        let mut fragment = url::form_urlencoded::Serializer::new(String::new());
        for key in [
            "access_token",
            "expires_at",
            "expires_in",
            "refresh_token",
            "token_type",
        ] {
            let value = match &session[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fragment.append_pair(key, &value);
        }
        target.set_fragment(Some(&fragment.finish()));
        announce(state, created, &user, &flow.provider).await;
    }
    audit(
        state,
        Some(&user.id),
        if created { "user_signedup" } else { "login" },
        meta.ip.as_deref(),
        json!({ "provider": flow.provider }),
    )
    .await;
    let mut res = HttpResponse::Found()
        .insert_header((header::LOCATION, target.to_string()))
        .finish();
    if let Some(issued) = issued {
        // Cookie mode: the session also as cookies.
        res.extensions_mut().insert(issued);
    }
    Ok(res)
}
