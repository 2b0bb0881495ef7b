//! Shared helpers of the meta API tests: an app with Rest + Meta sharing one
//! schema cache, on SQLite or PostgreSQL, and a request helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward_core::testing::{TestApp, postgres_url_or_skip};
use goforward_rest::{Rest, meta::Meta};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN: &str = "00000000-0000-4000-8000-0000000000ad";
pub const USER: &str = "00000000-0000-4000-8000-000000000005";

/// Starts Rest + Meta (no pre-made tables); `None` when PostgreSQL is not configured.
pub async fn start(postgres: bool, test: &str) -> Option<TestApp> {
    if postgres && postgres_url_or_skip(test).is_none() {
        return None;
    }
    let rest = Rest::new();
    Some(
        TestApp::builder()
            .postgres(postgres)
            .plugin(Meta::for_rest(&rest))
            .plugin(rest)
            .start()
            .await
            .expect("app starts"),
    )
}

/// Runs `body` on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(app) = super::meta_common::start(false, stringify!($name)).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(app) = super::meta_common::start(true, stringify!($name)).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            }
        }
    };
}

/// Who calls.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Anon,
    Service,
    /// A signed-in user without administrator level.
    User,
    /// A user with `app_metadata.admin_role` = the given level.
    Admin(&'a str),
}

#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub text: String,
    pub json: Value,
}

impl Res {
    /// Asserts GoForward's error shape with `status` and `code`.
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(self.json["code"], code, "code; body: {}", self.text);
        let obj = self.json.as_object().expect("error object");
        assert!(obj.contains_key("details"), "details in {}", self.text);
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()));
        self
    }

    pub fn ok(&self) -> &Value {
        assert!(
            self.status.is_success(),
            "status {}; body: {}",
            self.status,
            self.text
        );
        &self.json
    }
}

pub async fn call(
    app: &TestApp,
    who: As<'_>,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Res {
    let key = match who {
        As::Service => app.service_key(),
        _ => app.anon_key(),
    };
    let bearer = match who {
        As::User => app.user_token(USER),
        As::Admin(level) => app.token(json!({
            "sub": ADMIN, "role": "authenticated", "aud": "authenticated", "aal": "aal1",
            "app_metadata": {"admin_role": level},
        })),
        _ => key.clone(),
    };
    let mut req = app
        .client()
        .request(method, app.url(url))
        .header("apikey", key)
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res { status, text, json }
}

/// A call to `/meta/v1{path}` as a super_admin.
pub async fn meta(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Res {
    call(
        app,
        As::Admin("super_admin"),
        method,
        &format!("/meta/v1{path}"),
        body,
    )
    .await
}

/// The user tables' names.
pub async fn table_names(app: &TestApp) -> Vec<String> {
    let r = meta(app, Method::GET, "/tables", None).await;
    r.ok()
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}
