//! Prometheus metrics: request counts and latency histograms by route and
//! status, database pool gauges. One registry per `GoForward`, so several
//! apps in one process (tests) do not mix their numbers.

use actix_web::{HttpResponse, web};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::plugin::Context;

/// The metric families GoForward records.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
}

impl Metrics {
    /// Creates the registry and its metric families.
    ///
    /// # Errors
    /// [`crate::Error::Internal`] if a family cannot be registered (a bug).
    pub fn new() -> crate::Result<Self> {
        let fail = |e: prometheus::Error| crate::Error::Internal(format!("metrics: {e}"));
        let registry = Registry::new_custom(Some("goforward".into()), None).map_err(fail)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .map_err(fail)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "method"],
        )
        .map_err(fail)?;
        let pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )
        .map_err(fail)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(fail)?;
        registry.register(Box::new(latency.clone())).map_err(fail)?;
        registry.register(Box::new(pool.clone())).map_err(fail)?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool,
        })
    }

    /// Records one finished request (`route` is the matched pattern, not the raw path).
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let (requests, latency) = self.series(route, method, status);
        requests.inc();
        latency.observe(seconds);
    }

    /// The request counter and latency histogram of one (route, method,
    /// status): handles a caller may keep to skip the label lookups.
    pub fn series(&self, route: &str, method: &str, status: u16) -> (IntCounter, Histogram) {
        (
            self.requests
                .with_label_values(&[route, method, itoa(status).as_str()]),
            self.latency.with_label_values(&[route, method]),
        )
    }

    /// The registry, for hosts that add their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn update_pool(&self, db: &sea_orm::DatabaseConnection) {
        let (size, idle) = pool_stats(db);
        self.pool.with_label_values(&["open"]).set(size);
        self.pool.with_label_values(&["idle"]).set(idle);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(error = %err, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

fn itoa(status: u16) -> String {
    status.to_string()
}

#[allow(unreachable_patterns)]
fn pool_stats(db: &sea_orm::DatabaseConnection) -> (i64, i64) {
    use sea_orm::DatabaseConnectionType as Pool;
    match &db.inner {
        #[cfg(feature = "sqlite")]
        Pool::SqlxSqlitePoolConnection(_) => {
            // The variant is checked, so the accessor cannot panic.
            let pool = db.get_sqlite_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
        #[cfg(feature = "postgres")]
        Pool::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64)
        }
        _ => (0, 0),
    }
}

async fn scrape(ctx: web::Data<Context>) -> HttpResponse {
    let metrics = ctx.metrics();
    metrics.update_pool(ctx.db());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig, ctx: &Context) {
    cfg.service(
        web::scope("/metrics")
            .wrap(ctx.plumbing("metrics"))
            .route("", web::get().to(scrape)),
    );
}
