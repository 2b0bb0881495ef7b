//! The request metrics' handles, per worker and found by request path: the
//! route pattern a path belongs to (a walk of the resource map) and the two
//! labelled-vector lookups are paid once per path, not once per request.

use std::{cell::RefCell, collections::HashMap, sync::Arc};

use actix_web::{HttpRequest, http::Method};
use prometheus::{Histogram, IntCounter};

use crate::http::Metrics;

/// Paths remembered per worker and scope before the map starts over
/// (paths with ids are unbounded; the metrics themselves are by pattern).
const MAX_PATHS: usize = 4096;

struct Series {
    method: Method,
    status: u16,
    requests: IntCounter,
    latency: Histogram,
}

/// Handles of `goforward_http_requests_total` and
/// `goforward_http_request_duration_seconds` by path, then method and status.
pub(crate) struct SeriesByPath {
    metrics: Arc<Metrics>,
    paths: RefCell<HashMap<Box<str>, Vec<Series>, foldhash::fast::RandomState>>,
}

impl SeriesByPath {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            paths: RefCell::default(),
        }
    }

    /// Records one finished request of `req` with `status`, taking `seconds`.
    pub(crate) fn observe(&self, req: &HttpRequest, status: u16, seconds: f64) {
        let (path, method) = (req.path(), req.method());
        if let Some(series) = self.paths.borrow().get(path).and_then(|known| {
            known
                .iter()
                .find(|s| s.status == status && s.method == method)
        }) {
            series.requests.inc();
            series.latency.observe(seconds);
            return;
        }
        let route = req
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let (requests, latency) = self.metrics.series(&route, method.as_str(), status);
        requests.inc();
        latency.observe(seconds);
        let mut paths = self.paths.borrow_mut();
        if paths.len() >= MAX_PATHS && !paths.contains_key(path) {
            paths.clear();
        }
        paths.entry(path.into()).or_default().push(Series {
            method: method.clone(),
            status,
            requests,
            latency,
        });
    }
}
