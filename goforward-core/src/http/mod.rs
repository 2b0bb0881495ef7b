//! HTTP plumbing every host gets from `GoForward::routes()`: health,
//! Prometheus metrics, request ids and tracing, CORS, security headers,
//! JSON body limits with wire-shaped errors, and rate limits.

pub mod errors;
mod health;
mod metrics;
mod plumbing;
mod ratelimit;
mod series;
mod trace;

pub use errors::GoForwardErrorFormat;
pub(crate) use health::routes as health_routes;
pub use metrics::Metrics;
pub(crate) use metrics::routes as metrics_routes;
pub use plumbing::Plumbing;
pub use ratelimit::{ClientIp, Quota, RateLimits};
