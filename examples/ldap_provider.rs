//! A `CustomAuthProvider` for an LDAP-style directory: users bind with
//! their `uid` (or mail) and password; the entry's DN is the identity's
//! subject, its mail a verified email and its groups go to `app_metadata`
//! (so they reach the JWT). Here the directory is a small in-process map;
//! a real one would bind against the LDAP server in `authenticate`.
//!
//! `cargo run --example ldap_provider`, then
//! `POST /auth/v1/token?grant_type=password&provider=ldap` with
//! `{"username":"ada","password":"lovelace"}` and the printed anon key as
//! `apikey` — or supabase-js `signInWithPassword({email:"ada@example.com",
//! password:"lovelace"})` (providers are tried after local passwords).
//! `cargo test --example ldap_provider` signs in over HTTP on SQLite and
//! PostgreSQL (`GOFORWARD_TEST_DATABASE_URL`).

use std::collections::HashMap;

use actix_web::{App, HttpServer};
use goforward::auth::{Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
use goforward::prelude::*;

/// One directory entry.
struct Entry {
    password: String,
    mail: String,
    groups: Vec<String>,
}

/// An in-process directory: `uid → entry`.
pub struct Directory(HashMap<String, Entry>);

impl Directory {
    /// Two people: `ada` / `lovelace` (staff, admins) and `grace` / `hopper` (staff).
    pub fn sample() -> Self {
        let entry = |password: &str, mail: &str, groups: &[&str]| Entry {
            password: password.to_owned(),
            mail: mail.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        Self(
            [
                (
                    "ada".to_owned(),
                    entry("lovelace", "ada@example.com", &["staff", "admins"]),
                ),
                (
                    "grace".to_owned(),
                    entry("hopper", "grace@example.com", &["staff"]),
                ),
            ]
            .into_iter()
            .collect(),
        )
    }
}

#[async_trait::async_trait]
impl CustomAuthProvider for Directory {
    async fn authenticate(
        &self,
        c: &Credentials,
    ) -> Result<Option<ProviderIdentity>, ProviderError> {
        // Bind by uid or by mail.
        let found = self
            .0
            .iter()
            .find(|(uid, e)| **uid == c.identifier || e.mail == c.identifier);
        let Some((uid, entry)) = found else {
            return Ok(None);
        };
        if !goforward::auth::crypto::ct_eq(&entry.password, &c.password) {
            return Ok(None);
        }
        Ok(Some(ProviderIdentity {
            subject: format!("uid={uid},ou=people,dc=example,dc=com"),
            email: Some(entry.mail.clone()),
            email_verified: true,
            user_metadata: [("uid".to_owned(), serde_json::json!(uid))]
                .into_iter()
                .collect(),
            app_metadata: [("groups".to_owned(), serde_json::json!(entry.groups))]
                .into_iter()
                .collect(),
        }))
    }
}

/// The auth plugin with the directory registered as `ldap`.
pub fn auth() -> Auth {
    Auth::new()
        .configure(|c| c.mailer_autoconfirm = true)
        .provider("ldap", Directory::sample())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gf = GoForward::builder(Config::load()?)
        .plugin(auth())
        .build()
        .await?;
    let addr = gf.config().server.addr.clone();
    tracing::warn!(
        "anon key: {} — listening on http://{addr}",
        gf.context().signer().api_key("anon", 3600)?
    );
    let app = gf.clone();
    HttpServer::new(move || App::new().configure(app.routes()))
        .bind(&addr)?
        .run()
        .await?;
    gf.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use goforward_core::testing::{TestApp, postgres_url_or_skip};
    use serde_json::{Value, json};

    async fn app(pg: bool) -> Option<TestApp> {
        if pg && postgres_url_or_skip("ldap_provider example").is_none() {
            return None;
        }
        let auth = super::auth().configure(|c| c.bcrypt_cost = 4);
        Some(
            TestApp::builder()
                .plugin(auth)
                .postgres(pg)
                .start()
                .await
                .unwrap(),
        )
    }

    async fn sign_in(app: &TestApp, query: &str, body: Value) -> (u16, Value) {
        let res = app
            .client()
            .post(app.url(&format!("/auth/v1/token?grant_type=password{query}")))
            .header("apikey", app.anon_key())
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn directory_sign_in(pg: bool) {
        let Some(app) = app(pg).await else { return };
        let (status, first) = sign_in(
            &app,
            "&provider=ldap",
            json!({ "username": "ada", "password": "lovelace" }),
        )
        .await;
        assert_eq!(status, 200, "{first}");
        let user = &first["user"];
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["app_metadata"]["groups"], json!(["staff", "admins"]));
        assert_eq!(user["identities"][0]["provider"], "ldap");
        // By mail, through plain signInWithPassword: the same user.
        let (status, again) = sign_in(
            &app,
            "",
            json!({ "email": "ada@example.com", "password": "lovelace" }),
        )
        .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["user"]["id"], user["id"]);
        // Bad credentials: GoTrue's answer, no user created.
        for body in [
            json!({ "username": "ada", "password": "wrong" }),
            json!({ "username": "nobody", "password": "lovelace" }),
            json!({ "username": "grace", "password": "lovelace" }),
        ] {
            let (status, err) = sign_in(&app, "&provider=ldap", body).await;
            assert_eq!(
                (status, err["code"].as_str()),
                (400, Some("invalid_credentials"))
            );
        }
        let (status, _) = sign_in(
            &app,
            "&provider=ldap",
            json!({ "username": "grace", "password": "hopper" }),
        )
        .await;
        assert_eq!(status, 200);
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn directory_sign_in_sqlite() {
        directory_sign_in(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn directory_sign_in_postgres() {
        directory_sign_in(true).await;
    }
}
