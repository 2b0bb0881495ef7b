//! SMTP delivery against a real SMTP server process: `tests/support/smtp_sink.py`
//! (aiosmtpd) started as a child on an ephemeral port, storing each message
//! as a file. Plain SMTP and STARTTLS (a certificate for 127.0.0.1 from a
//! test CA, `tests/support/smtp_test_ca.pem`, that the mailer is told to
//! trust), plus the refusals that prove
//! TLS is really checked: an untrusted certificate, and plain SMTP to a
//! server that requires STARTTLS. Needs `python3` with `aiosmtpd`
//! (`pip install aiosmtpd`): without it the tests fail under `CI=true` and
//! are skipped with a printed reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use goforward_auth::config::{SmtpConfig, SmtpTls};
use goforward_auth::{Auth, SmtpMailer};
use goforward_core::testing::{TestApp, postgres_url_or_skip};
use serde_json::json;

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// The sink process; killed (and its mail directory removed) on drop.
struct Sink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `python3` with `aiosmtpd` is here; `None` (skip) after printing
/// why, a panic under `CI=true`.
fn python_with_aiosmtpd() -> Option<()> {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(());
    }
    let why = "python3 with aiosmtpd is not available (pip install aiosmtpd)";
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true: {why}");
    }
    eprintln!("skipping the SMTP sink tests: {why}");
    None
}

fn start_sink(starttls: bool) -> Option<Sink> {
    python_with_aiosmtpd()?;
    let dir = std::env::temp_dir().join(format!("goforward-smtp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(support("smtp_sink.py")).arg(&dir);
    if starttls {
        cmd.arg("--starttls")
            .arg(support("smtp_tls_cert.pem"))
            .arg(support("smtp_tls_key.pem"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port = first
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the sink did not announce its port: {first:?}"));
    Some(Sink { child, port, dir })
}

impl Sink {
    fn config(&self, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            tls,
            user: None,
            password: None,
        }
    }

    /// Messages received so far, oldest first.
    fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        });
        names
            .into_iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    /// Waits (up to 10 s) for message number `n` (1-based) and returns it.
    async fn wait_for(&self, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let all = self.messages();
            if all.len() >= n {
                return all[n - 1].clone();
            }
            assert!(Instant::now() < deadline, "no message #{n} within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn app_with(pg: bool, auth: Auth) -> Option<TestApp> {
    if pg && postgres_url_or_skip("goforward-auth smtp").is_none() {
        return None;
    }
    Some(
        TestApp::builder()
            .plugin(auth.configure(|c| {
                c.bcrypt_cost = 4;
                c.email_min_interval_secs = 0;
                c.mailer_from = "Example App <auth@example.com>".into();
            }))
            .config(|c| c.site_url = "http://localhost:3000".into())
            .postgres(pg)
            .start()
            .await
            .expect("test app starts"),
    )
}

fn code_in(message: &str) -> String {
    let at = message.find("enter this code: ").expect("a code") + "enter this code: ".len();
    message[at..at + 6].to_owned()
}

/// Sign-up (sent on the response path) and recovery (sent in the
/// background) both arrive through the sink; their codes work.
async fn deliver_through(app: &TestApp, sink: &Sink, tls: bool) {
    let email = email();
    let res = sign_up(app, &email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    let first = sink.wait_for(1).await;
    assert!(first.contains(&format!("X-Sink-To: {email}")), "{first}");
    assert!(first.contains("X-Sink-From: auth@example.com"), "{first}");
    let tls_line = if tls {
        "X-Sink-TLS: yes"
    } else {
        "X-Sink-TLS: no"
    };
    assert!(first.contains(tls_line), "{first}");
    assert!(first.contains(&format!("To: {email}")), "{first}");
    assert!(
        first.contains("From: \"Example App\" <auth@example.com>"),
        "{first}"
    );
    assert!(first.contains("Subject: Confirm Your Signup"), "{first}");
    assert!(
        first.contains("X-GoForward-Template: confirmation"),
        "{first}"
    );
    let res = post(
        app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": code_in(&first) }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);

    let res = post(app, "/recover", &json!({ "email": email }), None).await;
    assert_eq!((res.status, &res.body), (200, &json!({})));
    let second = sink.wait_for(2).await;
    assert!(
        second.contains("X-GoForward-Template: recovery"),
        "{second}"
    );
    assert!(second.contains(tls_line), "{second}");
    let res = post(
        app,
        "/verify",
        &json!({ "type": "recovery", "email": email, "token": code_in(&second) }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Nothing went to the file outbox.
    assert!(outbox(app).is_empty());
}

async fn plain(pg: bool) {
    let Some(sink) = start_sink(false) else {
        return;
    };
    let config = sink.config(SmtpTls::None);
    let Some(app) = app_with(
        pg,
        Auth::new().configure(move |c| c.smtp = Some(config.clone())),
    )
    .await
    else {
        return;
    };
    deliver_through(&app, &sink, false).await;
    app.stop().await;
}
both!(smtp_plain, plain);

async fn starttls(pg: bool) {
    let Some(sink) = start_sink(true) else {
        return;
    };
    // The CA that signed the sink's certificate (its key was discarded).
    let cert = std::fs::read(support("smtp_test_ca.pem")).unwrap();
    let mailer = SmtpMailer::with_root_certificate(&sink.config(SmtpTls::Starttls), &cert).unwrap();
    let Some(app) = app_with(pg, Auth::new().mailer(mailer)).await else {
        return;
    };
    deliver_through(&app, &sink, true).await;
    app.stop().await;

    // The same server, not trusted (web PKI roots only): the certificate is
    // refused, sign-up fails opaquely and is undone, nothing is delivered.
    let config = sink.config(SmtpTls::Starttls);
    let Some(app) = app_with(
        pg,
        Auth::new().configure(move |c| c.smtp = Some(config.clone())),
    )
    .await
    else {
        return;
    };
    let res = sign_up(&app, &email(), "correct horse").await;
    res.assert_error(500, "unexpected_failure");
    assert_eq!(count(&app, "auth_users").await, 0);
    app.stop().await;

    // Plain SMTP to a server that requires STARTTLS: refused as well.
    let config = sink.config(SmtpTls::None);
    let Some(app) = app_with(
        pg,
        Auth::new().configure(move |c| c.smtp = Some(config.clone())),
    )
    .await
    else {
        return;
    };
    let res = sign_up(&app, &email(), "correct horse").await;
    res.assert_error(500, "unexpected_failure");
    app.stop().await;
    assert_eq!(
        sink.messages().len(),
        2,
        "only the trusted session delivered"
    );
}
both!(smtp_starttls, starttls);
