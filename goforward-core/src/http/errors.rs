//! GoForward's own error shape and wire-shaped extractor errors.

use std::sync::Arc;

use actix_web::{HttpResponse, ResponseError, error::JsonPayloadError, http::header, web};

use crate::error::{Error, ErrorFormat, goforward_body, log_if_server_fault};

/// `{"code", "message", "details"}` — the shape of GoForward's own endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoForwardErrorFormat;

impl ErrorFormat for GoForwardErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        let mut response = HttpResponse::build(err.status_code());
        if let Error::RateLimited { retry_after_secs } = err {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(goforward_body(err))
    }
}

/// Maps a JSON extractor failure to a core error (never a 500, never plain text).
pub fn json_error(err: &JsonPayloadError, limit: usize) -> Error {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Error::PayloadTooLarge { limit }
        }
        JsonPayloadError::ContentType => Error::bad_request(
            "core.unsupported_content_type",
            "expected Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            Error::bad_request("core.invalid_body", format!("invalid body: {e}"))
        }
        JsonPayloadError::Deserialize(e) => {
            Error::bad_request("core.invalid_json", format!("invalid JSON: {e}"))
        }
        _ => Error::bad_request("core.invalid_body", "could not read the request body"),
    }
}

/// A `JsonConfig` limited to `limit` bytes whose errors render in `format`.
pub fn json_config(limit: usize, format: Arc<dyn ErrorFormat>) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            let core = json_error(&err, limit);
            log_if_server_fault(&core);
            let response = format.render(&core);
            actix_web::error::InternalError::from_response(err, response).into()
        })
}

/// Query-string and path extractor configs whose errors render in `format`.
pub fn extractor_configs(format: Arc<dyn ErrorFormat>) -> (web::QueryConfig, web::PathConfig) {
    let query_format = format.clone();
    let query = web::QueryConfig::default().error_handler(move |err, _req| {
        let response =
            query_format.render(&Error::bad_request("core.invalid_query", err.to_string()));
        actix_web::error::InternalError::from_response(err, response).into()
    });
    let path = web::PathConfig::default().error_handler(move |err, _req| {
        let response = format.render(&Error::bad_request("core.invalid_path", err.to_string()));
        actix_web::error::InternalError::from_response(err, response).into()
    });
    (query, path)
}
