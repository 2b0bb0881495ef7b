//! No account enumeration through sign-in timing: a wrong password, an
//! unknown email and an unknown phone each run exactly one bcrypt
//! verification (counted, not timed) and get the same answer. One test
//! (SQLite then PostgreSQL) because the counter is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::password::verifications;
use serde_json::json;

async fn scenario(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.phone_enabled = true;
    })
    .await
    else {
        return;
    };
    let email = email();
    assert_eq!(sign_up(&app, &email, "correct horse").await.status, 200);
    // Let the background dummy hash exist before counting.
    let _ = sign_in(&app, "warm-up@example.com", "whatever").await;

    let cases = [
        (
            "known email, wrong password",
            json!({ "email": email, "password": "wrong horse" }),
        ),
        (
            "unknown email",
            json!({ "email": "nobody-here@example.com", "password": "wrong horse" }),
        ),
        (
            "unknown phone",
            json!({ "phone": "+15550001111", "password": "wrong horse" }),
        ),
    ];
    let mut bodies = Vec::new();
    for (what, body) in &cases {
        let before = verifications();
        let res = post(&app, "/token?grant_type=password", body, None).await;
        let ran = verifications() - before;
        res.assert_error(400, "invalid_credentials");
        assert_eq!(ran, 1, "{what}: one bcrypt verification");
        bodies.push(res.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // The right password: one verification as well.
    let before = verifications();
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    assert_eq!(verifications() - before, 1);
    // Over 72 bytes fails cheaply on both paths alike (no bcrypt at all).
    let long = "x".repeat(73);
    for who in [email.as_str(), "nobody-here@example.com"] {
        let before = verifications();
        sign_in(&app, who, &long)
            .await
            .assert_error(400, "invalid_credentials");
        assert_eq!(verifications() - before, 0, "{who}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_costs_one_bcrypt_for_known_and_unknown_accounts() {
    scenario(false).await;
    scenario(true).await;
}
