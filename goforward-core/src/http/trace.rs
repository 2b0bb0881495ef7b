//! The root span of every request, built for the common case where no
//! subscriber records it: field values (route pattern, peer address, user
//! agent) are computed only when a subscriber enables the span.
//!
//! Unlike tracing-actix-web's default builder, the span carries the path
//! without its query string (signed-URL tokens and OTPs travel there, and
//! span fields end up in logs) and the TCP peer address rather than a
//! client-supplied `X-Forwarded-For`.

use actix_web::http::header;
use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
};
use tracing::{
    Span,
    field::{Empty, display},
};
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

/// GoForward's [`RootSpanBuilder`]: an `INFO` span named `HTTP request`.
#[derive(Debug, Clone, Copy)]
pub struct LeanRootSpan;

impl RootSpanBuilder for LeanRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // Values are wrapped, not formatted: only a subscriber that records
        // the span pays for turning them into text. The route pattern is
        // recorded by the plumbing layer, which computes it once for metrics.
        let extensions = request.extensions();
        let request_id = extensions.get::<RequestId>().map(|id| display(**id));
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
            request_id = request_id,
            http.status_code = Empty,
            otel.status_code = Empty,
            exception.message = Empty,
            exception.details = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        // The default records the status and formats errors: skip that work
        // when nobody listens.
        if !span.is_disabled() {
            DefaultRootSpanBuilder::on_request_end(span, outcome);
        }
    }
}
