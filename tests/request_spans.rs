//! The root span of every request, as a subscriber sees it: one INFO
//! `HTTP request` span per request with the route pattern, the status, the
//! same request id as the `x-request-id` header, and the path without its
//! query string (signed-URL tokens travel there: checklist item 32).
//!
//! One test per binary: it installs the process-wide subscriber, because the
//! server's worker threads are not the test's thread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use goforward::testing::TestApp;
use tracing_subscriber::fmt::{MakeWriter, format::FmtSpan};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn each_request_has_one_span_with_route_status_and_id_but_no_query() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_span_events(FmtSpan::CLOSE)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .json()
        .init();

    let app = TestApp::builder().start().await.expect("start");
    let res = app
        .client()
        .get(app.url("/health?token=secret-in-the-query"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_owned();
    let missing = app.client().get(app.url("/health/nope")).send().await;
    assert_eq!(missing.expect("request").status(), 404);
    app.stop().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("secret-in-the-query"), "{text}");
    let spans: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|event: &serde_json::Value| event["span"]["name"] == "HTTP request")
        .collect();
    let ours: Vec<_> = spans
        .iter()
        .filter(|event| event["span"]["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "one closed span per request: {text}");
    let span = &ours[0]["span"];
    assert_eq!(span["http.method"], "GET");
    assert_eq!(span["http.target"], "/health");
    assert_eq!(span["http.route"], "/health");
    assert_eq!(span["http.status_code"], 200);
    assert_eq!(span["otel.status_code"], "OK");
    assert!(
        spans
            .iter()
            .any(|event| event["span"]["http.status_code"] == 404),
        "the 404 has its span too: {text}"
    );
}
