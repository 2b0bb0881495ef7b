//! The middleware stack: tracing-actix-web (request id + span) → actix-cors
//! → GoForward's layer (rate limit, metrics, security headers, request id
//! header). One value of [`Plumbing`] wraps one scope.

use std::{future::Future, pin::Pin, rc::Rc, sync::Arc, time::Instant};

use actix_cors::Cors;
use actix_service::{Service, ServiceExt, Transform, boxed::BoxService};
use actix_web::{
    Error as ActixError, HttpMessage,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderName, HeaderValue},
    },
};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::error::{Error, ErrorFormat};
use crate::http::{Metrics, RateLimits, errors::GoForwardErrorFormat};
use crate::plugin::Context;
use crate::token::Authenticator;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

struct LayerState {
    group: String,
    format: Arc<dyn ErrorFormat>,
    metrics: Arc<Metrics>,
    rate_limits: Arc<RateLimits>,
    authenticator: Arc<Authenticator>,
}

/// The middleware stack for one scope; see [`Context::plumbing`].
pub struct Plumbing {
    cors_origins: Vec<String>,
    cors_max_age: usize,
    state: Rc<LayerState>,
}

impl Plumbing {
    pub(crate) fn new(ctx: &Context, group: &str, format: Option<Arc<dyn ErrorFormat>>) -> Self {
        let cors = &ctx.config().server.cors;
        Self {
            cors_origins: cors.allowed_origins.clone(),
            cors_max_age: cors.max_age_secs,
            state: Rc::new(LayerState {
                group: group.to_owned(),
                format: format.unwrap_or_else(|| Arc::new(GoForwardErrorFormat)),
                metrics: ctx.metrics().clone(),
                rate_limits: ctx.rate_limits().clone(),
                authenticator: ctx.authenticator().clone(),
            }),
        }
    }

    fn cors(&self) -> Cors {
        let mut cors = Cors::default()
            .allow_any_method()
            .allow_any_header()
            .expose_headers([
                header::CONTENT_RANGE,
                header::HeaderName::from_static("x-request-id"),
                header::HeaderName::from_static("x-supabase-api-version"),
                header::HeaderName::from_static("x-total-count"),
                header::RETRY_AFTER,
            ])
            .max_age(self.cors_max_age);
        if self.cors_origins.iter().any(|o| o == "*") {
            cors = cors.allow_any_origin();
        } else {
            for origin in &self.cors_origins {
                cors = cors.allowed_origin(origin);
            }
        }
        cors
    }
}

impl<S, B> Transform<S, ServiceRequest> for Plumbing
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Transform = BoxService<ServiceRequest, ServiceResponse<BoxBody>, ActixError>;
    type InitError = ();
    type Future = LocalBoxFuture<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let layer = LayerService {
            service: Rc::new(service),
            state: self.state.clone(),
        };
        let cors = self.cors();
        Box::pin(async move {
            let cors_service = cors.new_transform(layer).await?;
            let traced = TracingLogger::default().new_transform(cors_service).await?;
            Ok(actix_service::boxed::service(
                traced.map(|res| res.map_into_boxed_body()),
            ))
        })
    }
}

struct LayerService<S> {
    service: Rc<S>,
    state: Rc<LayerState>,
}

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static DENY: HeaderValue = HeaderValue::from_static("DENY");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

impl<S, B> Service<ServiceRequest> for LayerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let service = self.service.clone();
        let state = self.state.clone();
        Box::pin(async move {
            let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
            let method = req.method().clone();

            let limited = if method == Method::OPTIONS {
                None
            } else {
                state
                    .rate_limits
                    .check(&state.group, || rate_key(&state, &req))
                    .err()
            };
            let mut res = match limited {
                Some(retry_after_secs) => {
                    let response = state
                        .format
                        .render(&Error::RateLimited { retry_after_secs });
                    req.into_response(response)
                }
                None => service.call(req).await?.map_into_boxed_body(),
            };

            let headers = res.headers_mut();
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
            if !headers.contains_key(header::X_FRAME_OPTIONS) {
                headers.insert(header::X_FRAME_OPTIONS, DENY.clone());
            }
            if !headers.contains_key(header::REFERRER_POLICY) {
                headers.insert(header::REFERRER_POLICY, NO_REFERRER.clone());
            }
            if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                headers.insert(HeaderName::from_static("x-request-id"), id);
            }
            let route = res
                .request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            state.metrics.observe(
                &route,
                method.as_str(),
                res.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok(res)
        })
    }
}

/// Authenticated users are limited per user; everyone else per client IP.
fn rate_key(state: &LayerState, req: &ServiceRequest) -> String {
    if let Ok(principal) = state.authenticator.principal_of(req.request())
        && let Some(uid) = principal.user_id
    {
        return format!("u:{uid}");
    }
    match state.rate_limits.client_ip(req.request()) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}
