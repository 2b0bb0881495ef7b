//! HTTP plumbing every host gets: health, metrics, CORS, security headers,
//! request ids, body limits with wire-shaped errors, rate limits, opaque 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use actix_web::{HttpResponse, web};
use common::{app_with_all_plugins, get};
use goforward::Error;
use goforward::testing::TestApp;
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_metrics_and_headers() {
    let app = app_with_all_plugins().start().await.expect("start");
    let (status, headers, body) = get(&app, "/health", None, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(!headers["x-request-id"].is_empty());

    let (status, _, body) = get(&app, "/health/ready", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"],
        json!({"database": true, "migrations": true})
    );

    get(&app, "/rest/v1/todos", Some(&app.anon_key()), None).await;
    let text = app
        .client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "goforward_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("goforward_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("goforward_db_pool_connections{state=\"open\"}"),
        "{text}"
    );
    // Raw paths are not labels (bounded cardinality): the rest 404 is labelled by its pattern.
    assert!(!text.contains("route=\"/rest/v1/todos\""), "{text}");

    // CORS preflight.
    let res = app
        .client()
        .request(reqwest::Method::OPTIONS, app.url("/rest/v1/todos"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "apikey,authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    // A browser's simple request: the CORS answer, exposed headers included,
    // next to GoForward's own headers.
    let res = app
        .client()
        .get(app.url("/health"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let headers = res.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(exposed.contains("content-range"), "{exposed}");
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(headers["x-content-type-options"], "nosniff");

    // No Origin (server-to-server, SDKs outside browsers): no CORS headers,
    // but `Vary: Origin` so a shared cache never hands this answer to a browser.
    let res = app.client().get(app.url("/health")).send().await.unwrap();
    let headers = res.headers();
    assert!(!headers.contains_key("access-control-allow-origin"));
    assert!(!headers.contains_key("access-control-expose-headers"));
    let vary: Vec<&str> = headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.iter().any(|v| v.contains("Origin")), "{vary:?}");
    app.stop().await;
}

fn echo_app() -> goforward::testing::TestAppBuilder {
    TestApp::builder()
        .plugin(goforward::Rest::new())
        .routes(|cfg| {
            cfg.route(
                "/echo",
                web::post().to(|body: web::Json<Value>| async move {
                    HttpResponse::Ok().json(body.into_inner())
                }),
            )
            .route(
                "/fail",
                web::get().to(|| async {
                    Err::<HttpResponse, _>(Error::Database(goforward::sea_orm::DbErr::Custom(
                        "SELECT secret_column FROM internal_table".into(),
                    )))
                }),
            );
        })
}

#[tokio::test]
async fn body_limits_and_bad_json_are_wire_shaped_4xx() {
    let app = echo_app()
        .config(|c| c.server.json_limit = 1024)
        .start()
        .await
        .expect("start");
    let post = |body: String| {
        app.client()
            .post(app.url("/echo"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let res = post("{\"a\": 1}".into()).await.unwrap();
    assert_eq!(res.status(), 200);

    let res = post(format!("{{\"a\": \"{}\"}}", "x".repeat(2000)))
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "core.payload_too_large");

    let res = post("{not json".into()).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "core.invalid_json"
    );

    // 10k-deep nesting: serde_json's recursion limit answers, no stack overflow.
    let app_deep = echo_app().start().await.expect("start");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let res = app_deep
        .client()
        .post(app_deep.url("/echo"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let res = app
        .client()
        .post(app.url("/echo"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "core.unsupported_content_type"
    );
    app.stop().await;
    app_deep.stop().await;
}

#[tokio::test]
async fn server_errors_are_opaque() {
    let app = echo_app().start().await.expect("start");
    let res = app.client().get(app.url("/fail")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("secret_column") && !text.contains("SELECT"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        json!({"code": "core.database_error", "message": "Internal server error", "details": null})
    );
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_in_the_api_shape() {
    let app = app_with_all_plugins()
        .config(|c| {
            c.server.rate_limit.enabled = true;
            c.server.rate_limit.per_second = 1;
            c.server.rate_limit.burst = 3;
        })
        .start()
        .await
        .expect("start");
    let anon = app.anon_key();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(&app, "/rest/v1/todos", Some(&anon), None).await);
    }
    let limited = statuses
        .iter()
        .find(|(s, _, _)| *s == 429)
        .expect("a 429 after the burst");
    assert!(limited.1.contains_key("retry-after"));
    assert_eq!(
        limited.2["code"].as_str().map(|c| c.starts_with("PGRST")),
        Some(true),
        "{}",
        limited.2
    );
    assert_eq!(
        statuses.iter().filter(|(s, _, _)| *s != 429).count(),
        3,
        "burst of 3 allowed"
    );

    // Groups have their own counters: auth is still available; health is never limited.
    let (status, headers, body) = get(&app, "/auth/v1/settings", Some(&anon), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!headers.contains_key("retry-after"));
    for _ in 0..10 {
        assert_eq!(get(&app, "/health", None, None).await.0, 200);
    }
    // A signed-in user has their own bucket, separate from the IP's.
    let user = app.user_token("rate-user");
    assert_eq!(
        get(&app, "/rest/v1/todos", Some(&anon), Some(&user))
            .await
            .0,
        404
    );
    app.stop().await;
}

#[test]
fn config_debug_redacts_the_jwt_secret() {
    let mut config = goforward::Config::default();
    config.jwt.secret = Some("super-secret-value-that-must-not-leak-0123".into());
    let shown = format!("{config:?}");
    assert!(!shown.contains("super-secret-value"), "{shown}");
    let serialized = serde_json::to_string(&config).unwrap();
    assert!(!serialized.contains("super-secret-value"), "{serialized}");
}

/// Sends raw bytes and returns the status line's code (0 when the server closed without one).
async fn raw_status(addr: &str, request: Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(&request).await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn smuggling_and_oversize_requests_are_refused_without_panic() {
    let app = echo_app().start().await.expect("start");
    let addr = app.base_url.trim_start_matches("http://").to_owned();

    // Content-Length together with Transfer-Encoding: chunked (request smuggling).
    let smuggle = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec();
    let status = raw_status(&addr, smuggle).await;
    assert!(status == 400 || status == 0, "CL+TE answered {status}");

    // actix-http caps the request head at 128 KiB and 96 headers: go past both.
    let mut big_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    big_headers.extend(format!("X-Big: {}\r\n\r\n", "a".repeat(200_000)).into_bytes());
    let status = raw_status(&addr, big_headers).await;
    assert!(
        status == 431 || status == 400 || status == 0,
        "oversize headers answered {status}"
    );

    let mut many_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..200 {
        many_headers.extend(format!("X-H{i}: v\r\n").into_bytes());
    }
    many_headers.extend(b"\r\n");
    let status = raw_status(&addr, many_headers).await;
    assert!(
        status == 431 || status == 400 || status == 0,
        "200 headers answered {status}"
    );

    // A 200 KB URL.
    let long_url = format!(
        "GET /health?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q=1&".repeat(50_000)
    )
    .into_bytes();
    let status = raw_status(&addr, long_url).await;
    assert!(
        status == 414 || status == 431 || status == 400 || status == 0,
        "long URL answered {status}"
    );

    // The server is still healthy afterwards.
    assert_eq!(
        app.client()
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}
