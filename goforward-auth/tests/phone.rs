//! Phone sign-in with SMS codes (file SMS outbox), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_core::testing::TestApp;
use serde_json::json;

fn sms_to(app: &TestApp, number: &str) -> Vec<String> {
    let dir = app.gf.config().data_dir.join("sms_outbox");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "txt"));
    names.sort();
    names
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.starts_with(&format!("To: +{number}\n")))
        .collect()
}

fn last_sms_code(app: &TestApp, number: &str) -> String {
    let text = sms_to(app, number).pop().expect("an sms");
    let at = text.find("Your code is ").unwrap() + "Your code is ".len();
    text[at..at + 6].to_owned()
}

async fn phone_disabled(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    post(&app, "/otp", &json!({ "phone": "+15555550100" }), None)
        .await
        .assert_error(422, "phone_provider_disabled");
    post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": "123456", "type": "sms" }),
        None,
    )
    .await
    .assert_error(422, "phone_provider_disabled");
    assert_eq!(
        get(&app, "/settings", None).await.body["external"]["phone"],
        false
    );
    assert_eq!(count(&app, "auth_users").await, 0);
    app.stop().await;
}
both!(disabled, phone_disabled);

async fn sms_sign_in(pg: bool) {
    let Some(app) = app(pg, |c| c.phone_enabled = true).await else {
        return;
    };
    assert_eq!(
        get(&app, "/settings", None).await.body["external"]["phone"],
        true
    );
    // Unknown number with create_user false; invalid numbers.
    post(
        &app,
        "/otp",
        &json!({ "phone": "+15555550100", "create_user": false }),
        None,
    )
    .await
    .assert_error(422, "otp_disabled");
    post(&app, "/otp", &json!({ "phone": "12ab" }), None)
        .await
        .assert_error(400, "validation_failed");
    assert_eq!(count(&app, "auth_users").await, 0);

    let res = post(
        &app,
        "/otp",
        &json!({ "phone": "+1 (555) 555-0100", "data": { "src": "sms" }, "channel": "sms" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["message_id"].is_string());
    let code = last_sms_code(&app, "15555550100");
    // Too soon for another SMS.
    post(&app, "/otp", &json!({ "phone": "+15555550100" }), None)
        .await
        .assert_error(429, "over_sms_send_rate_limit");
    // Wrong code, wrong number.
    let wrong = if code == "111111" { "222222" } else { "111111" };
    post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": wrong, "type": "sms" }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550199", "token": code, "type": "sms" }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    let s = post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": code, "type": "sms" }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    let user = &s.body["user"];
    assert_eq!(user["phone"], "15555550100");
    assert_eq!(user["email"], "");
    assert!(user["phone_confirmed_at"].is_string());
    assert_eq!(user["user_metadata"]["src"], "sms");
    assert_eq!(user["identities"][0]["provider"], "phone");
    assert_eq!(
        user["identities"][0]["identity_data"]["phone_verified"],
        true
    );
    let c = claims(s.body["access_token"].as_str().unwrap());
    assert_eq!(c["phone"], "15555550100");
    assert_eq!(c["amr"][0]["method"], "otp");
    // Single use.
    post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": code, "type": "sms" }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    // A phone with another type is refused.
    post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": code, "type": "signup" }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    app.stop().await;
}
both!(sms, sms_sign_in);

async fn phone_password(pg: bool) {
    let Some(app) = app(pg, |c| c.phone_enabled = true).await else {
        return;
    };
    let res = post(
        &app,
        "/signup",
        &json!({ "phone": "+44 7700 900123", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.get("access_token").is_none());
    assert_eq!(res.body["phone"], "447700900123");
    post(
        &app,
        "/token?grant_type=password",
        &json!({ "phone": "+447700900123", "password": "correct horse" }),
        None,
    )
    .await
    .assert_error(400, "phone_not_confirmed");
    let code = last_sms_code(&app, "447700900123");
    let s = post(
        &app,
        "/verify",
        &json!({ "phone": "+447700900123", "token": code, "type": "sms" }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    let ok = post(
        &app,
        "/token?grant_type=password",
        &json!({ "phone": "447700900123", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["user"]["phone"], "447700900123");
    post(
        &app,
        "/token?grant_type=password",
        &json!({ "phone": "+447700900123", "password": "wrong horse" }),
        None,
    )
    .await
    .assert_error(400, "invalid_credentials");
    post(
        &app,
        "/token?grant_type=password",
        &json!({ "phone": "+447700900999", "password": "correct horse" }),
        None,
    )
    .await
    .assert_error(400, "invalid_credentials");
    // Bad inputs change nothing.
    let users = count(&app, "auth_users").await;
    post(&app, "/signup", &json!({ "phone": "+447700900124" }), None)
        .await
        .assert_error(400, "validation_failed");
    post(
        &app,
        "/signup",
        &json!({ "phone": "+447700900124", "password": "short" }),
        None,
    )
    .await
    .assert_error(422, "weak_password");
    post(
        &app,
        "/signup",
        &json!({ "phone": "not a phone", "password": "correct horse" }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(count(&app, "auth_users").await, users);
    app.stop().await;

    // Autoconfirm: a session at once; disabled: refused.
    let Some(app) = common::app(pg, |c| {
        c.phone_enabled = true;
        c.phone_autoconfirm = true;
    })
    .await
    else {
        return;
    };
    let res = post(
        &app,
        "/signup",
        &json!({ "phone": "+15555550142", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["access_token"].is_string());
    post(
        &app,
        "/signup",
        &json!({ "phone": "+15555550142", "password": "correct horse" }),
        None,
    )
    .await
    .assert_error(422, "user_already_exists");
    app.stop().await;
    let Some(app) = common::app(pg, |_| {}).await else {
        return;
    };
    post(
        &app,
        "/signup",
        &json!({ "phone": "+15555550142", "password": "correct horse" }),
        None,
    )
    .await
    .assert_error(422, "phone_provider_disabled");
    app.stop().await;
}
both!(password, phone_password);

/// A fake Twilio Messages API on 127.0.0.1 (real HTTP): records each
/// request (head + body) and answers like Twilio (201 + `sid`), or 400.
async fn fake_twilio(fail: bool) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&buf).to_string());
            let (status, body) = if fail {
                (
                    "400 Bad Request",
                    r#"{"code":21211,"message":"The 'To' number +1555 is not valid."}"#,
                )
            } else {
                (
                    "201 Created",
                    r#"{"sid":"SM0123456789abcdef","status":"queued"}"#,
                )
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (port, rx)
}

async fn twilio_provider(pg: bool) {
    let (port, mut rx) = fake_twilio(false).await;
    let Some(app) = app(pg, move |c| {
        c.phone_enabled = true;
        c.sms_provider = Some(goforward_auth::config::SmsProviderConfig {
            base_url: format!("http://127.0.0.1:{port}"),
            account_sid: "AC123".into(),
            auth_token: "secret-token".into(),
            from: Some("+15550000000".into()),
            messaging_service_sid: None,
        });
    })
    .await
    else {
        return;
    };
    let res = post(&app, "/otp", &json!({ "phone": "+15555550100" }), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["message_id"], "SM0123456789abcdef");
    let request = rx.recv().await.unwrap();
    assert!(
        request.starts_with("POST /2010-04-01/Accounts/AC123/Messages.json HTTP/1.1"),
        "{request}"
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:secret-token");
    assert!(request.to_ascii_lowercase().contains(&format!(
        "authorization: basic {}",
        basic.to_ascii_lowercase()
    )));
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(form["To"], "+15555550100");
    assert_eq!(form["From"], "+15550000000");
    let code = form["Body"].trim_start_matches("Your code is ").to_owned();
    // Nothing went to the file outbox; the texted code signs in.
    assert!(sms_to(&app, "15555550100").is_empty());
    let s = post(
        &app,
        "/verify",
        &json!({ "phone": "+15555550100", "token": code, "type": "sms" }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    app.stop().await;

    // A provider error is an opaque 500.
    let (port, _rx) = fake_twilio(true).await;
    let Some(app) = common::app(pg, move |c| {
        c.phone_enabled = true;
        c.sms_provider = Some(goforward_auth::config::SmsProviderConfig {
            base_url: format!("http://127.0.0.1:{port}"),
            account_sid: "AC123".into(),
            auth_token: "secret-token".into(),
            from: None,
            messaging_service_sid: Some("MG1".into()),
        });
    })
    .await
    else {
        return;
    };
    let res = post(&app, "/otp", &json!({ "phone": "+15555550100" }), None).await;
    res.assert_error(500, "unexpected_failure");
    assert!(!res.body.to_string().contains("21211"));
    app.stop().await;
}
both!(twilio, twilio_provider);
