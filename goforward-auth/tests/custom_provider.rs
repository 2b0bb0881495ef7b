//! CustomAuthProvider: a directory-style provider served from memory, on
//! both backends — first sign-in creates the user, later ones find it by
//! identity, linking only with verified emails, failures are opaque.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use goforward_auth::{Auth, Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
use goforward_core::testing::TestApp;
use serde_json::json;

/// uid → (password, email, email verified).
struct Directory(HashMap<&'static str, (&'static str, &'static str, bool)>);

#[async_trait::async_trait]
impl CustomAuthProvider for Directory {
    async fn authenticate(
        &self,
        c: &Credentials,
    ) -> Result<Option<ProviderIdentity>, ProviderError> {
        if c.identifier == "crash" {
            return Err(ProviderError(
                "directory unreachable: connection refused to 10.1.2.3".into(),
            ));
        }
        // Accept the uid or the email as identifier.
        let found = self
            .0
            .iter()
            .find(|(uid, (_, email, _))| **uid == c.identifier || *email == c.identifier);
        Ok(match found {
            Some((uid, (password, email, verified))) if *password == c.password => {
                Some(ProviderIdentity {
                    subject: format!("uid={uid},ou=people"),
                    email: Some((*email).to_owned()),
                    email_verified: *verified,
                    user_metadata: [("cn".to_owned(), json!(uid.to_uppercase()))]
                        .into_iter()
                        .collect(),
                    app_metadata: [("groups".to_owned(), json!(["staff"]))]
                        .into_iter()
                        .collect(),
                })
            }
            _ => None,
        })
    }
}

async fn app_with_directory(pg: bool) -> Option<TestApp> {
    if pg && goforward_core::testing::postgres_url_or_skip("custom_provider").is_none() {
        return None;
    }
    let directory = Directory(
        [
            ("alice", ("alice-pass", "alice@corp.example", true)),
            ("bob", ("bob-pass", "bob@corp.example", true)),
            ("eve", ("eve-pass", "eve@corp.example", false)),
        ]
        .into_iter()
        .collect(),
    );
    Some(
        TestApp::builder()
            .plugin(
                Auth::new()
                    .configure(|c| {
                        c.bcrypt_cost = 4;
                        c.mailer_autoconfirm = true;
                    })
                    .provider("directory", directory),
            )
            .postgres(pg)
            .start()
            .await
            .unwrap(),
    )
}

async fn provider_sign_in(pg: bool) {
    let Some(app) = app_with_directory(pg).await else {
        return;
    };
    // Named provider with a username: the user is created on first sign-in.
    let body = json!({ "username": "alice", "password": "alice-pass" });
    let first = post(
        &app,
        "/token?grant_type=password&provider=directory",
        &body,
        None,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let user = &first.body["user"];
    assert_eq!(user["email"], "alice@corp.example");
    assert!(user["email_confirmed_at"].is_string());
    assert_eq!(user["user_metadata"]["cn"], "ALICE");
    assert_eq!(user["app_metadata"]["provider"], "directory");
    assert_eq!(user["app_metadata"]["groups"], json!(["staff"]));
    assert_eq!(user["identities"][0]["provider"], "directory");
    assert_eq!(user["identities"][0]["id"], "uid=alice,ou=people");
    let c = claims(first.body["access_token"].as_str().unwrap());
    assert_eq!(c["app_metadata"]["groups"], json!(["staff"]));
    // supabase-js's plain signInWithPassword (email, no provider) falls through to the providers.
    let again = sign_in(&app, "alice@corp.example", "alice-pass").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["user"]["id"], user["id"]);
    assert_eq!(count(&app, "auth_users").await, 1);
    // Wrong password and unknown names: invalid_credentials, nothing created.
    post(
        &app,
        "/token?grant_type=password&provider=directory",
        &json!({ "username": "alice", "password": "nope" }),
        None,
    )
    .await
    .assert_error(400, "invalid_credentials");
    sign_in(&app, "nobody@corp.example", "x")
        .await
        .assert_error(400, "invalid_credentials");
    post(
        &app,
        "/token?grant_type=password&provider=ldap",
        &body,
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(count(&app, "auth_users").await, 1);
    // A provider failure is an opaque 500.
    let res = post(
        &app,
        "/token?grant_type=password&provider=directory",
        &json!({ "username": "crash", "password": "x" }),
        None,
    )
    .await;
    res.assert_error(500, "unexpected_failure");
    assert!(!res.body.to_string().contains("10.1.2.3"));
    app.stop().await;
}
both!(sign_in_via_provider, provider_sign_in);

async fn provider_linking(pg: bool) {
    let Some(app) = app_with_directory(pg).await else {
        return;
    };
    // A confirmed local account + a verified provider email: linked.
    let local = sign_up(&app, "bob@corp.example", "local password").await;
    assert_eq!(local.status, 200);
    let res = post(
        &app,
        "/token?grant_type=password",
        &json!({ "username": "bob", "password": "bob-pass" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["user"]["id"], local.body["user"]["id"]);
    let providers: Vec<_> = res.body["user"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].clone())
        .collect();
    assert_eq!(providers, vec![json!("email"), json!("directory")]);
    assert_eq!(
        res.body["user"]["app_metadata"]["providers"],
        json!(["email", "directory"])
    );
    // Both credentials still work.
    assert_eq!(
        sign_in(&app, "bob@corp.example", "local password")
            .await
            .status,
        200
    );
    // An unverified provider email never takes over a local account.
    sign_up(&app, "eve@corp.example", "local password").await;
    post(
        &app,
        "/token?grant_type=password&provider=directory",
        &json!({ "username": "eve", "password": "eve-pass" }),
        None,
    )
    .await
    .assert_error(422, "email_exists");
    assert_eq!(count(&app, "auth_identities").await, 3);
    app.stop().await;
}
both!(linking, provider_linking);
