//! Shared helpers of the auth integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use goforward_auth::{Auth, AuthConfig};
use goforward_core::testing::{TestApp, postgres_url_or_skip};
use serde_json::Value;

/// Runs one scenario on SQLite and on PostgreSQL: `both!(name, scenario_fn)`
/// defines `name_sqlite` and `name_postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(true).await;
            }
        }
    };
}

/// Starts an app with the auth plugin (bcrypt cost 4, anonymous sign-ins on)
/// plus `tweak`; `None` when PostgreSQL is requested but not configured (a
/// failure under `CI=true`).
pub async fn app(
    pg: bool,
    tweak: impl Fn(&mut AuthConfig) + Send + Sync + 'static,
) -> Option<TestApp> {
    if pg && postgres_url_or_skip("goforward-auth").is_none() {
        return None;
    }
    let auth = Auth::new().configure(move |c| {
        c.bcrypt_cost = 4;
        c.anonymous_users = true;
        c.uri_allow_list = vec!["https://app.example.com/**".into()];
        tweak(c);
    });
    Some(
        TestApp::builder()
            .plugin(auth)
            .config(|c| c.site_url = "http://localhost:3000".into())
            .postgres(pg)
            .start()
            .await
            .expect("test app starts"),
    )
}

/// A response: status, headers, JSON body (or the text as a JSON string).
pub struct Res {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Res {
    /// The GoTrue error code.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
    /// Asserts a GoTrue error: status, `code`, message present, version header echoed.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {}", self.body);
        assert_eq!(self.code(), code, "code of {}", self.body);
        assert!(self.body["message"].is_string(), "message of {}", self.body);
        assert_eq!(
            self.headers
                .get("x-supabase-api-version")
                .and_then(|v| v.to_str().ok()),
            Some("2024-01-01")
        );
    }
}

async fn finish(res: reqwest::Response) -> Res {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Res {
        status,
        headers,
        body,
    }
}

/// POST `path` (under /auth/v1) with a JSON body and the anon key, optionally a bearer.
pub async fn post(app: &TestApp, path: &str, body: &Value, bearer: Option<&str>) -> Res {
    send(
        app,
        reqwest::Method::POST,
        path,
        Some(body.to_string()),
        bearer,
    )
    .await
}

/// PUT `path` with a JSON body and a bearer.
pub async fn put(app: &TestApp, path: &str, body: &Value, bearer: &str) -> Res {
    send(
        app,
        reqwest::Method::PUT,
        path,
        Some(body.to_string()),
        Some(bearer),
    )
    .await
}

/// GET `path` with the anon key, optionally a bearer.
pub async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> Res {
    send(app, reqwest::Method::GET, path, None, bearer).await
}

/// Any request with a raw body (JSON content type) under /auth/v1.
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
    bearer: Option<&str>,
) -> Res {
    let mut req = app
        .client()
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key())
        .header("x-supabase-api-version", "2024-01-01");
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json;charset=UTF-8")
            .body(body);
    }
    finish(req.send().await.expect("request")).await
}

/// Signs up `email` / `password` (autoconfirm apps return a session).
pub async fn sign_up(app: &TestApp, email: &str, password: &str) -> Res {
    post(
        app,
        "/signup",
        &serde_json::json!({ "email": email, "password": password }),
        None,
    )
    .await
}

/// Password sign-in.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> Res {
    post(
        app,
        "/token?grant_type=password",
        &serde_json::json!({ "email": email, "password": password }),
        None,
    )
    .await
}

/// Refresh grant.
pub async fn refresh(app: &TestApp, token: &str) -> Res {
    post(
        app,
        "/token?grant_type=refresh_token",
        &serde_json::json!({ "refresh_token": token }),
        None,
    )
    .await
}

/// Waits (up to 10 s) until no email is being sent in the background
/// (`/recover`, `/otp`, `/magiclink` and `/resend` send after answering).
pub fn settle() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while goforward_auth::otp::background_sends() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Every outbox message, oldest first (after background sends settle).
pub fn outbox(app: &TestApp) -> Vec<String> {
    settle();
    let dir = app.gf.config().data_dir.join("outbox");
    let mut names: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Messages sent to `to`, oldest first.
pub fn mails_to(app: &TestApp, to: &str) -> Vec<String> {
    outbox(app)
        .into_iter()
        .filter(|m| {
            m.lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
        })
        .collect()
}

/// The code in the newest message to `to`.
pub fn last_code(app: &TestApp, to: &str) -> String {
    let mail = mails_to(app, to)
        .pop()
        .unwrap_or_else(|| panic!("no mail to {to}"));
    let at = mail.find("enter this code: ").expect("code in mail") + "enter this code: ".len();
    mail[at..at + 6].to_owned()
}

/// The verification link in the newest message to `to`.
pub fn last_link(app: &TestApp, to: &str) -> String {
    let mail = mails_to(app, to)
        .pop()
        .unwrap_or_else(|| panic!("no mail to {to}"));
    mail.lines()
        .find(|l| l.contains("/auth/v1/verify?"))
        .unwrap_or_else(|| panic!("link in mail {mail}"))
        .trim()
        .to_owned()
}

/// The `token` (hash) query parameter of a verification link.
pub fn link_param(link: &str, name: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A fresh address.
pub fn email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Decodes a JWT's claims without verifying (tests only).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Counts rows of an auth table.
pub async fn count(app: &TestApp, table: &str) -> i64 {
    use goforward_core::sea_orm::ConnectionTrait;
    use goforward_core::sea_query::{Alias, Asterisk, Expr, Func, Query};
    let stmt = Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), Alias::new("n"))
        .from(Alias::new(table))
        .to_owned();
    let row = app.db().query_one(&stmt).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Decodes a TOTP secret as `/factors` returns it (RFC 4648 base32, no padding).
pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("bad base32"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
