//! `[auth.bootstrap_admin]`: the first administrator is created at start,
//! an existing account is never changed by it; bad values fail the build
//! naming the key. On both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::{
    Auth,
    bootstrap::{self, Outcome},
    config::BootstrapAdminConfig,
    state::AuthState,
};
use goforward_core::testing::TestApp;

fn admin(email: &str, password: &str, role: &str) -> BootstrapAdminConfig {
    BootstrapAdminConfig {
        email: email.to_owned(),
        password: password.to_owned().into(),
        admin_role: role.to_owned(),
    }
}

async fn first_run(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.bootstrap_admin = Some(admin("Root@Example.com", "correct horse", "system_admin"));
    })
    .await
    else {
        return;
    };
    let signed = sign_in(&app, "root@example.com", "correct horse").await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let token = signed.body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["app_metadata"]["admin_role"], "system_admin");
    assert!(signed.body["user"]["email_confirmed_at"].is_string());
    // The bootstrap administrator uses the admin API.
    assert_eq!(get(&app, "/admin/users", Some(token)).await.status, 200);

    // Running the first-run step again leaves the account alone.
    let state = app.gf.context().services().get::<AuthState>().unwrap();
    let outcome = bootstrap::first_run(
        &state,
        &admin("root@example.com", "another one", "moderator"),
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(
        sign_in(&app, "root@example.com", "correct horse")
            .await
            .status,
        200
    );
    let again = sign_in(&app, "root@example.com", "correct horse").await;
    assert_eq!(
        claims(again.body["access_token"].as_str().unwrap())["app_metadata"]["admin_role"],
        "system_admin"
    );
    assert_eq!(count(&app, "auth_users").await, 1);
    app.stop().await;
}
both!(bootstrap_first_run, first_run);

#[tokio::test]
async fn bad_bootstrap_config_names_the_key() {
    for (config, key) in [
        (
            admin("not-an-email", "correct horse", "admin"),
            "auth.bootstrap_admin.email",
        ),
        (
            admin("a@example.com", "correct horse", "root"),
            "auth.bootstrap_admin.admin_role",
        ),
        (
            admin("a@example.com", "", "admin"),
            "auth.bootstrap_admin.password",
        ),
        (
            admin("a@example.com", "short", "admin"),
            "auth.bootstrap_admin",
        ),
    ] {
        let auth = Auth::new().configure(move |c| {
            c.bcrypt_cost = 4;
            c.bootstrap_admin = Some(config.clone());
        });
        let err = TestApp::builder()
            .plugin(auth)
            .postgres(false)
            .start()
            .await
            .err()
            .unwrap_or_else(|| panic!("{key}: the build should fail"));
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}
