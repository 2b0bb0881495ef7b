//! Cookie mode (`cookie_mode = true`): session cookies for server-rendered
//! apps, next to the unchanged bearer mode.
//!
//! Responses that carry a session (sign-in, sign-up, verify, refresh, PKCE,
//! MFA) also set `__Host-gf-access-token` and `__Host-gf-refresh-token`
//! (`Secure; HttpOnly; SameSite=Lax; Path=/`, no `Domain`) and a readable
//! `__Host-gf-csrf` token; `POST /logout` clears them. A request with **no
//! `Authorization` header** is authenticated by the access cookie on every
//! auth route, and `POST /token?grant_type=refresh_token` takes the refresh
//! cookie when the body has no `refresh_token`.
//!
//! CSRF: a state-changing request (not GET/HEAD/OPTIONS) that carries one
//! of the session cookies and no `Authorization` header must show one of:
//! `X-CSRF-Token` equal to the `__Host-gf-csrf` cookie (double submit,
//! compared in constant time); `Sec-Fetch-Site: same-origin`; or, without
//! `Sec-Fetch-Site`, an `Origin` equal to the site's or the API's origin.
//! Otherwise 403 `csrf_check_failed`, before the handler runs.

use actix_web::{
    HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web,
};
use serde_json::Value;

use crate::crypto::{ct_eq, random_token};
use crate::error::AuthError;
use crate::state::AuthState;

/// The access-token cookie.
pub const ACCESS_COOKIE: &str = "__Host-gf-access-token";
/// The refresh-token cookie.
pub const REFRESH_COOKIE: &str = "__Host-gf-refresh-token";
/// The double-submit CSRF cookie (readable by the page's scripts).
pub const CSRF_COOKIE: &str = "__Host-gf-csrf";
/// The header that must repeat [`CSRF_COOKIE`].
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session a handler issued (response extension read by the middleware).
#[derive(Debug, Clone)]
pub(crate) struct IssuedSession {
    access: String,
    refresh: String,
    expires_in: i64,
}

impl IssuedSession {
    /// From a session JSON object; `None` when it has no tokens.
    pub(crate) fn of(session: &Value) -> Option<Self> {
        Some(Self {
            access: session["access_token"].as_str()?.to_owned(),
            refresh: session["refresh_token"].as_str()?.to_owned(),
            expires_in: session["expires_in"].as_i64().unwrap_or(3600),
        })
    }
}

/// Marks a response that ends the caller's session (cookies are cleared).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndedSession;

/// Marks a request whose refresh cookie passed the CSRF check.
#[derive(Debug, Clone)]
pub(crate) struct CookieRefresh(pub(crate) String);

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie(headers: &header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

fn set_cookie(name: &str, value: &str, max_age: i64, http_only: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; Secure;{} SameSite=Lax",
        if http_only { " HttpOnly;" } else { "" }
    )
}

fn csrf_ok(state: &AuthState, req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if let (Some(sent), Some(expected)) = (
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
        cookie(headers, CSRF_COOKIE),
    ) && !sent.is_empty()
        && ct_eq(sent, &expected)
    {
        return true;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site.eq_ignore_ascii_case("same-origin"),
        None => headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .and_then(|o| url::Url::parse(o).ok())
            .is_some_and(|origin| {
                let site = state.redirects.site_url().origin();
                let api = url::Url::parse(&state.external_url).map(|u| u.origin());
                origin.origin() == site || api.is_ok_and(|api| api == origin.origin())
            }),
    }
}

/// The cookie-mode middleware of the `/auth/v1` scope.
///
/// # Errors
/// 403 `csrf_check_failed`; the inner service's errors.
pub(crate) async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AuthState>>().cloned() else {
        return next.call(req).await;
    };
    if !state.config.cookie_mode {
        return next.call(req).await;
    }
    let has_bearer = req.headers().contains_key(header::AUTHORIZATION);
    let access = cookie(req.headers(), ACCESS_COOKIE);
    let refresh = cookie(req.headers(), REFRESH_COOKIE);
    if !has_bearer && (access.is_some() || refresh.is_some()) {
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_ok(&state, &req) {
            return Err(AuthError::CsrfCheckFailed.into());
        }
        if let Some(access) = access
            && let Ok(value) = header::HeaderValue::from_str(&format!("Bearer {access}"))
        {
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        if let Some(refresh) = refresh.filter(|_| !safe) {
            req.extensions_mut().insert(CookieRefresh(refresh));
        }
    }
    let mut res = next.call(req).await?;
    let issued = res.response().extensions().get::<IssuedSession>().cloned();
    let ended = res.response().extensions().get::<EndedSession>().is_some();
    let cookies: Vec<String> = if let Some(s) = issued {
        let refresh_age = if state.config.session_timebox_secs > 0 {
            state.config.session_timebox_secs
        } else {
            state.config.cookie_refresh_max_age_secs
        };
        vec![
            set_cookie(ACCESS_COOKIE, &s.access, s.expires_in, true),
            set_cookie(REFRESH_COOKIE, &s.refresh, refresh_age, true),
            set_cookie(CSRF_COOKIE, &random_token(24), refresh_age, false),
        ]
    } else if ended {
        [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE]
            .iter()
            .map(|name| set_cookie(name, "", 0, *name != CSRF_COOKIE))
            .collect()
    } else {
        Vec::new()
    };
    for c in cookies {
        if let Ok(value) = header::HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(res)
}
