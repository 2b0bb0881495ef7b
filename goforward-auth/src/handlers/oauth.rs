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
pub(crate) async fn callback(
    req: HttpRequest,
    state: State,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse> {
    state.limit(&req, groups::VERIFY)?;
    let flow = crate::oauth::take_flow(&state, query.state.as_deref()).await?;
    if let Some(error) = &query.error {
        let description = query
            .error_description
            .as_deref()
            .unwrap_or("The provider refused the sign-in");
        return Err(AuthError::BadOAuthCallback(format!(
            "{}: {}",
            error.chars().take(64).collect::<String>(),
            description.chars().take(256).collect::<String>()
        )));
    }
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
    let identity = crate::oauth::identity(&state, &flow, code).await?;
    if state.config.disable_signup
        && !crate::provider::identity_exists(&state, &flow.provider, &identity.subject).await?
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
    let (user, created) = crate::provider::user_for(&state, &flow.provider, identity).await?;
    if user
        .banned_until
        .is_some_and(|until| until > chrono::Utc::now())
    {
        return Err(AuthError::UserBanned);
    }
    let meta = ClientMeta::of(&state, &req);
    let mut target = url::Url::parse(&flow.redirect_to)
        .map_err(|e| AuthError::Internal(format!("redirect target: {e}")))?;
    target.set_fragment(None);
    let mut issued = None;
    if let (Some(challenge), Some(method)) = (&flow.code_challenge, &flow.code_challenge_method) {
        let challenge = crate::pkce::Challenge {
            challenge: challenge.clone(),
            method: method.clone(),
        };
        crate::pkce::start(&state, &user.id, &challenge, "oauth").await?;
        let code = crate::pkce::issue_code(&state, &user.id)
            .await?
            .ok_or_else(|| AuthError::Internal("PKCE flow vanished".into()))?;
        target.query_pairs_mut().append_pair("code", &code);
    } else {
        let session = sessions::issue(&state, &user, "oauth", &meta).await?;
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
        announce(&state, created, &user, &flow.provider).await;
    }
    audit(
        &state,
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
