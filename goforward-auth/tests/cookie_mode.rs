//! Cookie mode: `__Host-` session cookies set at sign-in and refresh,
//! accepted on the auth routes, CSRF protection on cookie-authenticated
//! writes, cleared at sign-out; bearer mode unaffected. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

/// `name → full Set-Cookie line` of a response.
fn set_cookies(res: &Res) -> HashMap<String, String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .map(|line| (line.split('=').next().unwrap().to_owned(), line))
        .collect()
}

fn value(line: &str) -> String {
    line.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

/// A request carrying cookies (no Authorization header) and extra headers.
async fn with_cookies(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    cookies: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Res {
    let mut req = app
        .client()
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key());
    let cookie = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

struct Jar {
    access: String,
    refresh: String,
    csrf: String,
}

impl Jar {
    fn from(res: &Res) -> Self {
        let c = set_cookies(res);
        Self {
            access: value(&c["__Host-gf-access-token"]),
            refresh: value(&c["__Host-gf-refresh-token"]),
            csrf: value(&c["__Host-gf-csrf"]),
        }
    }
    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("__Host-gf-access-token", self.access.as_str()),
            ("__Host-gf-refresh-token", self.refresh.as_str()),
            ("__Host-gf-csrf", self.csrf.as_str()),
        ]
    }
}

async fn bearer_mode_sets_no_cookies(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    let res = sign_up(&app, &email, "correct horse").await;
    assert_eq!(res.status, 200);
    assert!(set_cookies(&res).is_empty());
    let res = sign_in(&app, &email, "correct horse").await;
    assert!(set_cookies(&res).is_empty());
    // A cookie is no credential in bearer mode.
    let token = res.body["access_token"].as_str().unwrap();
    let res = with_cookies(
        &app,
        reqwest::Method::GET,
        "/user",
        None,
        &[("__Host-gf-access-token", token)],
        &[],
    )
    .await;
    assert_eq!(res.status, 401, "{}", res.body);
    app.stop().await;
}
both!(bearer_mode, bearer_mode_sets_no_cookies);

async fn cookie_sessions_and_csrf(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.cookie_mode = true;
    })
    .await
    else {
        return;
    };
    let email = email();
    assert_eq!(sign_up(&app, &email, "correct horse").await.status, 200);
    let res = sign_in(&app, &email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Bearer mode is unaffected: the body still carries the session.
    let bearer = res.body["access_token"].as_str().unwrap().to_owned();
    let cookies = set_cookies(&res);
    for name in ["__Host-gf-access-token", "__Host-gf-refresh-token"] {
        let line = &cookies[name];
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(line.contains(attr), "{line} lacks {attr}");
        }
        assert!(!line.to_ascii_lowercase().contains("domain="), "{line}");
    }
    assert!(!cookies["__Host-gf-csrf"].contains("HttpOnly"));
    let jar = Jar::from(&res);
    assert_eq!(jar.access, bearer);
    assert_eq!(get(&app, "/user", Some(&bearer)).await.status, 200);

    // Reads with the cookie alone.
    let me = with_cookies(&app, reqwest::Method::GET, "/user", None, &jar.all(), &[]).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["email"], email.as_str());

    // Cross-site writes are refused before anything changes.
    let update = json!({ "data": { "theme": "dark" } });
    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example.net")],
        vec![],
        vec![("x-csrf-token", "not-the-token")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://localhost:3000"),
        ],
    ] {
        let res = with_cookies(
            &app,
            reqwest::Method::PUT,
            "/user",
            Some(update.clone()),
            &jar.all(),
            &headers,
        )
        .await;
        res.assert_error(403, "csrf_check_failed");
    }
    let me = get(&app, "/user", Some(&bearer)).await;
    assert!(me.body["user_metadata"].get("theme").is_none(), "unchanged");

    // Accepted: double submit, same-origin fetch metadata, or the site's Origin.
    for (i, headers) in [
        vec![("x-csrf-token", jar.csrf.as_str())],
        vec![("sec-fetch-site", "same-origin")],
        vec![("origin", "http://localhost:3000")],
    ]
    .into_iter()
    .enumerate()
    {
        let res = with_cookies(
            &app,
            reqwest::Method::PUT,
            "/user",
            Some(json!({ "data": { "n": i } })),
            &jar.all(),
            &headers,
        )
        .await;
        assert_eq!(res.status, 200, "{i}: {}", res.body);
        assert_eq!(res.body["user_metadata"]["n"], i);
    }

    // Refresh from the cookie: CSRF-checked, then new cookies.
    let res = with_cookies(
        &app,
        reqwest::Method::POST,
        "/token?grant_type=refresh_token",
        Some(json!({})),
        &[("__Host-gf-refresh-token", &jar.refresh)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    res.assert_error(403, "csrf_check_failed");
    let res = with_cookies(
        &app,
        reqwest::Method::POST,
        "/token?grant_type=refresh_token",
        Some(json!({})),
        &jar.all(),
        &[("x-csrf-token", &jar.csrf)],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let rotated = Jar::from(&res);
    assert_ne!(rotated.refresh, jar.refresh);
    assert_eq!(
        rotated.access,
        res.body["access_token"].as_str().unwrap(),
        "the cookie is the session's token"
    );
    // No cookie and no body token: the usual error.
    let res = with_cookies(
        &app,
        reqwest::Method::POST,
        "/token?grant_type=refresh_token",
        Some(json!({})),
        &[],
        &[],
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);

    // A bearer wins over a cookie (and needs no CSRF token).
    let res = send(
        &app,
        reqwest::Method::PUT,
        "/user",
        Some(json!({ "data": { "via": "bearer" } }).to_string()),
        Some(&rotated.access),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);

    // Sign-out by cookie clears the cookies; the old cookie is dead.
    let res = with_cookies(
        &app,
        reqwest::Method::POST,
        "/logout",
        None,
        &rotated.all(),
        &[("x-csrf-token", &rotated.csrf)],
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.body);
    let cleared = set_cookies(&res);
    for name in [
        "__Host-gf-access-token",
        "__Host-gf-refresh-token",
        "__Host-gf-csrf",
    ] {
        assert!(
            cleared[name].contains("Max-Age=0"),
            "{:?}",
            cleared.get(name)
        );
    }
    let res = with_cookies(
        &app,
        reqwest::Method::GET,
        "/user",
        None,
        &rotated.all(),
        &[],
    )
    .await;
    res.assert_error(403, "session_not_found");
    app.stop().await;
}
both!(cookie_sessions, cookie_sessions_and_csrf);
