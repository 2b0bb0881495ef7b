//! `GET /authorize`, `GET /callback` and `POST /callback`: OAuth2 / OIDC
//! sign-in (see [`crate::oauth`]). None needs an `apikey`: the browser
//! navigates (or, for Apple's `response_mode=form_post`, posts a form) here.

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

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// Apple, first sign-in only: `{"name":{"firstName":…,"lastName":…},"email":…}`.
    user: Option<String>,
}

/// The largest form body `POST /callback` reads (Apple's is well under 8 KiB).
const MAX_CALLBACK_FORM: usize = 64 * 1024;

/// `POST /callback` with an `application/x-www-form-urlencoded` body
/// (`code`, `state`, `error`, `error_description`, `user`): Apple's
/// `response_mode=form_post`. Handled exactly as [`callback`] once read;
/// the query string is not consulted (GoTrue reads a POST's form).
///
/// A body that is not such a form — another content type, over 64 KiB,
/// not UTF-8, a parameter given twice — is refused in JSON before the
/// state is looked at, so the pending flow stays usable.
pub(crate) async fn callback_form(
    req: HttpRequest,
    state: State,
    payload: web::Payload,
) -> Result<HttpResponse> {
    state.limit(&req, groups::VERIFY)?;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(AuthError::BadOAuthCallback(
            "OAuth callback body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = match payload.to_bytes_limited(MAX_CALLBACK_FORM).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(AuthError::BadOAuthCallback(
                "Could not read the OAuth callback body".into(),
            ));
        }
        Err(_) => {
            return Err(AuthError::Core(goforward_core::Error::PayloadTooLarge {
                limit: MAX_CALLBACK_FORM,
            }));
        }
    };
    let query = parse_callback_form(&body)?;
    finish_callback(&req, &state, &query).await
}

/// Reads the callback form: UTF-8, each known parameter at most once
/// (unknown ones, like Apple's `id_token` copy, are ignored).
fn parse_callback_form(body: &[u8]) -> Result<CallbackQuery> {
    let bad =
        |why: &str| AuthError::BadOAuthCallback(format!("Invalid OAuth callback form: {why}"));
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
    let mut query = CallbackQuery::default();
    for (key, value) in url::form_urlencoded::parse(text.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut query.code,
            "state" => &mut query.state,
            "error" => &mut query.error,
            "error_description" => &mut query.error_description,
            "user" => &mut query.user,
            _ => continue,
        };
        if slot.is_some() {
            return Err(bad(&format!("{key} given more than once")));
        }
        *slot = Some(value.into_owned());
    }
    Ok(query)
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
    finish_callback(&req, &state, &query).await
}

/// The callback once its parameters are read (from the query or the form).
async fn finish_callback(
    req: &HttpRequest,
    state: &crate::state::AuthState,
    query: &CallbackQuery,
) -> Result<HttpResponse> {
    let flow = crate::oauth::take_flow(state, query.state.as_deref()).await?;
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
        match complete(req, state, query, &flow).await {
            Ok(res) => return Ok(res),
            Err(err) => RedirectError::of(&err, &flow.provider),
        }
    };
    Ok(failure.redirect(state, &flow.redirect_to))
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
    // Apple's `user` field (read for Apple only, as GoTrue does) is checked
    // before the code is spent.
    let is_apple = state
        .oauth
        .get(&flow.provider)
        .is_some_and(|spec| spec.kind == crate::oauth::ProviderKind::Apple);
    let apple_name = match query
        .user
        .as_deref()
        .filter(|u| is_apple && !u.trim().is_empty())
    {
        Some(raw) => crate::oauth::apple_user_name(raw)?,
        None => None,
    };
    let (identity, provider_tokens) =
        crate::oauth::identity(state, flow, code, apple_name.as_deref()).await?;
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
        // The provider's tokens wait, sealed, for the code exchange.
        let code =
            crate::pkce::issue_for_oauth(state, &user.id, &challenge, &provider_tokens).await?;
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
        // GoTrue: the provider's tokens, for the app to call the provider.
        fragment.append_pair("provider_token", &provider_tokens.access_token);
        if let Some(refresh) = &provider_tokens.refresh_token {
            fragment.append_pair("provider_refresh_token", refresh);
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
