//! No account enumeration by time on `/recover`, `/otp`, `/magiclink` and
//! `/resend`: for a known address the token write and the email happen on a
//! spawned task, so the answer does not wait for them. Tested structurally
//! (no clocks): a mailer that blocks until the test opens a gate — each
//! known-address request answers while its email is still stuck in the
//! mailer, and the email completes only after the response; a failing
//! mailer changes nothing in the answer; unknown addresses get the same
//! status and body and never reach the mailer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use goforward_auth::{Auth, Email, MailError, Mailer};
use goforward_core::testing::{TestApp, postgres_url_or_skip};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

/// A mailer that reports each email as it arrives, then waits for a permit
/// of `gate` before finishing (or fails, when `fail` is set).
struct GatedMailer {
    entered: mpsc::UnboundedSender<Email>,
    gate: Arc<Semaphore>,
    finished: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Mailer for GatedMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let _ = self.entered.send(email.clone());
        self.gate
            .acquire()
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?
            .forget();
        self.finished.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(MailError::Smtp("relay refused".into()));
        }
        Ok(())
    }
}

struct Harness {
    app: TestApp,
    entered: mpsc::UnboundedReceiver<Email>,
    gate: Arc<Semaphore>,
    finished: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
}

async fn harness(pg: bool) -> Option<Harness> {
    if pg && postgres_url_or_skip("goforward-auth timing parity").is_none() {
        return None;
    }
    let (tx, entered) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(AtomicBool::new(false));
    let mailer = GatedMailer {
        entered: tx,
        gate: gate.clone(),
        finished: finished.clone(),
        fail: fail.clone(),
    };
    let auth = Auth::new().mailer(mailer).configure(|c| {
        c.bcrypt_cost = 4;
        c.email_min_interval_secs = 0;
    });
    let app = TestApp::builder()
        .plugin(auth)
        .config(|c| c.site_url = "http://localhost:3000".into())
        .postgres(pg)
        .start()
        .await
        .expect("test app starts");
    Some(Harness {
        app,
        entered,
        gate,
        finished,
        fail,
    })
}

impl Harness {
    /// The next email the mailer received (within 10 s).
    async fn next_email(&mut self) -> Email {
        tokio::time::timeout(Duration::from_secs(10), self.entered.recv())
            .await
            .expect("the mailer is reached within 10 s")
            .expect("mailer alive")
    }

    /// Opens the gate for one email and waits until the mailer finished it.
    async fn release_one(&self) {
        let before = self.finished.load(Ordering::SeqCst);
        self.gate.add_permits(1);
        for _ in 0..1000 {
            if self.finished.load(Ordering::SeqCst) > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the mailer did not finish");
    }
}

fn code_of(mail: &Email) -> String {
    let at = mail.text.find("enter this code: ").expect("code") + "enter this code: ".len();
    mail.text[at..at + 6].to_owned()
}

async fn scenario(pg: bool) {
    let Some(mut h) = harness(pg).await else {
        return;
    };
    // A confirmed account (its confirmation email released) and an
    // unconfirmed one (for `/resend`).
    let known = email();
    let signup = {
        let target = app_url(&h.app);
        let known = known.clone();
        tokio::spawn(async move { sign_up_on(target, &known).await })
    };
    let mail = h.next_email().await;
    h.release_one().await;
    assert_eq!(signup.await.unwrap(), 200);
    let res = post(
        &h.app,
        "/verify",
        &json!({ "type": "signup", "email": known, "token": code_of(&mail) }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let pending = email();
    let signup = {
        let target = app_url(&h.app);
        let pending = pending.clone();
        tokio::spawn(async move { sign_up_on(target, &pending).await })
    };
    h.next_email().await;
    h.release_one().await;
    assert_eq!(signup.await.unwrap(), 200);

    // A fresh unknown address per case (`/otp` and `/magiclink` create theirs).
    let unknown = email();
    let unknown2 = email();
    let cases = [
        (
            "/recover",
            json!({ "email": known }),
            json!({ "email": unknown }),
            "recovery",
        ),
        (
            "/otp",
            json!({ "email": known }),
            json!({ "email": unknown, "create_user": true }),
            "magic_link",
        ),
        (
            "/magiclink",
            json!({ "email": known }),
            json!({ "email": unknown2 }),
            "magic_link",
        ),
        (
            "/resend",
            json!({ "type": "signup", "email": pending }),
            json!({ "type": "signup", "email": email() }),
            "confirmation",
        ),
    ];
    for (path, known_body, unknown_body, kind) in cases {
        // Known address: the answer arrives while the email is still held
        // in the mailer (the gate is closed).
        let finished = h.finished.load(Ordering::SeqCst);
        // (A handler that waited for the mailer would never answer: the
        // gate is closed.)
        let res = tokio::time::timeout(
            Duration::from_secs(10),
            post(&h.app, path, &known_body, None),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer while the email is held"));
        assert_eq!((res.status, &res.body), (200, &json!({})), "{path}");
        let mail = h.next_email().await;
        assert_eq!(mail.kind.as_str(), kind, "{path}");
        assert_eq!(
            h.finished.load(Ordering::SeqCst),
            finished,
            "{path}: the response did not wait for the mailer"
        );
        h.release_one().await;
        // The code of that email is valid: the token write happened.
        let verify_type = match kind {
            "recovery" => "recovery",
            "confirmation" => "signup",
            _ => "magiclink",
        };
        let to = mail.to.clone();
        let res = post(
            &h.app,
            "/verify",
            &json!({ "type": verify_type, "email": to, "token": code_of(&mail) }),
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{path}: {}", res.body);

        // Unknown address: the same answer. (`/otp` and `/magiclink` create
        // the account and mail it, in the background like a known address.)
        let res = post(&h.app, path, &unknown_body, None).await;
        assert_eq!((res.status, &res.body), (200, &json!({})), "{path} unknown");
        if matches!(path, "/otp" | "/magiclink") {
            let mail = h.next_email().await;
            assert_eq!(mail.to, unknown_body["email"].as_str().unwrap());
            assert_eq!(mail.kind.as_str(), "confirmation");
            h.release_one().await;
        }
    }
    // Nothing else reached the mailer.
    settle();
    if let Ok(extra) = h.entered.try_recv() {
        panic!("an unexpected email: {} {:?}", extra.to, extra.kind);
    }

    // A failing mailer: still `{}` (the failure is logged, not answered).
    h.fail.store(true, Ordering::SeqCst);
    h.gate.add_permits(100);
    for (path, body) in [
        ("/recover", json!({ "email": known })),
        ("/magiclink", json!({ "email": known })),
        ("/otp", json!({ "email": known })),
    ] {
        let res = post(&h.app, path, &body, None).await;
        assert_eq!((res.status, &res.body), (200, &json!({})), "{path}");
        h.next_email().await;
    }
    settle();
    h.app.stop().await;
}

fn app_url(app: &TestApp) -> (String, String) {
    (app.url("/auth/v1/signup"), app.anon_key())
}

/// Sign-up sends its confirmation email on the response path: run it on a
/// task so the test can release the gated mailer meanwhile.
async fn sign_up_on((url, key): (String, String), email: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("apikey", key)
        .json(&json!({ "email": email, "password": "correct horse" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_addresses_answer_before_their_email_is_sent() {
    scenario(false).await;
    scenario(true).await;
}
