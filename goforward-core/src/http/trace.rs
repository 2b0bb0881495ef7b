//! The root span of every request, built for the common case where no
//! subscriber records it: field values (route pattern, peer address, user
//! agent) are computed only when a subscriber enables the span, and a
//! disabled span is never entered.
//!
//! The field names follow tracing-actix-web's and OpenTelemetry's HTTP
//! conventions, but the span carries the path without its query string
//! (signed-URL tokens and OTPs travel there, and span fields end up in logs)
//! and the TCP peer address rather than a client-supplied `X-Forwarded-For`.

use actix_web::{
    Error,
    body::BoxBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header,
};
use tracing::{
    Span,
    field::{Empty, debug, display},
};

/// An `INFO` span named `HTTP request` for `request`, tagged with `request_id`.
pub(crate) fn root_span(request: &ServiceRequest, request_id: uuid::Uuid) -> Span {
    // No subscriber wants INFO spans (none installed, or a stricter filter):
    // skip building the fields, and tracing's fallback to the `log` crate.
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return Span::none();
    }
    // Values are wrapped, not formatted: only a subscriber that records the
    // span pays for turning them into text. The route pattern is recorded by
    // the plumbing layer once it knows the span is enabled.
    let peer_ip = request.peer_addr().map(|addr| display(addr.ip()));
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    tracing::info_span!(
        "HTTP request",
        http.method = %request.method(),
        http.route = Empty,
        http.target = request.path(),
        http.peer_ip = peer_ip,
        http.user_agent = user_agent,
        request_id = %request_id,
        http.status_code = Empty,
        otel.status_code = Empty,
        exception.message = Empty,
        exception.details = Empty,
    )
}

/// Records the response's status (and the error it carries, if any).
pub(crate) fn record_response(span: &Span, response: &ServiceResponse<BoxBody>) {
    let status = response.status();
    span.record("http.status_code", status.as_u16());
    if let Some(error) = response.response().error() {
        span.record("exception.message", display(error));
        span.record("exception.details", debug(error));
    }
    let outcome = if status.is_server_error() {
        "ERROR"
    } else {
        "OK"
    };
    span.record("otel.status_code", outcome);
}

/// Records an error that left the service without a response.
pub(crate) fn record_failure(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    let status = error.as_response_error().status_code();
    span.record("http.status_code", status.as_u16());
    span.record("exception.message", display(error));
    span.record("exception.details", debug(error));
    span.record("otel.status_code", "ERROR");
}
