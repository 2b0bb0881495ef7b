//! The middleware stack: tracing-actix-web (request id + span) → actix-cors
//! → GoForward's layer (rate limit, metrics, security headers, request id
//! header). One value of [`Plumbing`] wraps one scope.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Instant,
};

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
use futures_util::future::Either;
use tracing_actix_web::{RequestId, RootSpan, TracingLogger};

use crate::error::{Error, ErrorFormat};
use crate::http::{
    LeanRootSpan, RateLimits,
    errors::GoForwardErrorFormat,
    ratelimit::{Limiter, take},
    series::SeriesByPath,
};
use crate::plugin::Context;
use crate::token::Authenticator;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

struct LayerState {
    series: SeriesByPath,
    /// The scope's rate limiter, resolved once (`None`: unlimited).
    limiter: Option<Arc<Limiter>>,
    format: Arc<dyn ErrorFormat>,
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
                limiter: ctx.rate_limits().limiter(group),
                series: SeriesByPath::new(ctx.metrics().clone()),
                format: format.unwrap_or_else(|| Arc::new(GoForwardErrorFormat)),
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
        let service = Rc::new(service);
        let behind_cors = LayerService {
            service: service.clone(),
            state: self.state.clone(),
            vary_origin: false,
        };
        let without_cors = LayerService {
            service,
            state: self.state.clone(),
            vary_origin: true,
        };
        let cors = self.cors();
        Box::pin(async move {
            let cors = cors.new_transform(behind_cors).await?;
            let switch = OriginSwitch {
                cors,
                plain: without_cors,
            };
            let traced = TracingLogger::<LeanRootSpan>::new()
                .new_transform(switch)
                .await?;
            Ok(actix_service::boxed::service(
                traced.map(|res| res.map_into_boxed_body()),
            ))
        })
    }
}

/// Sends requests that carry an `Origin` header through actix-cors and the
/// rest (server-to-server calls, SDKs outside browsers, probes) straight to
/// the layer: CORS has nothing to tell them but `Vary: Origin`, which the
/// layer adds itself, so they skip the middleware's work and its headers.
struct OriginSwitch<C, L> {
    cors: C,
    plain: L,
}

impl<C, L, B> Service<ServiceRequest> for OriginSwitch<C, L>
where
    C: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError>,
    C::Future: 'static,
    B: MessageBody + 'static,
    L: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = ActixError>,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Future = Either<LocalBoxFuture<Result<Self::Response, Self::Error>>, L::Future>;

    fn poll_ready(&self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        match self.cors.poll_ready(cx)? {
            Poll::Ready(()) => self.plain.poll_ready(cx),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            let response = self.cors.call(req);
            Either::Left(Box::pin(async move {
                response.await.map(ServiceResponse::map_into_boxed_body)
            }))
        } else {
            Either::Right(self.plain.call(req))
        }
    }
}

struct LayerService<S> {
    service: Rc<S>,
    state: Rc<LayerState>,
    /// Set on the path that bypasses actix-cors (see [`OriginSwitch`]).
    vary_origin: bool,
}

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static DENY: HeaderValue = HeaderValue::from_static("DENY");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
static ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

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
        let vary_origin = self.vary_origin;
        Box::pin(async move {
            let (request_id, span) = {
                let extensions = req.extensions();
                let id = extensions.get::<RequestId>().map(|id| **id);
                (id, extensions.get::<RootSpan>().map(|s| (**s).clone()))
            };
            if let Some(span) = span.filter(|s| !s.is_disabled()) {
                let route = req.match_pattern();
                span.record("http.route", route.as_deref().unwrap_or("unmatched"));
            }

            let limited = match &state.limiter {
                Some(limiter) if req.method() != Method::OPTIONS => {
                    take(limiter, &rate_key(&state, &req)).err()
                }
                _ => None,
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

            // `append` where the header is known to be absent: no old value to remove.
            let headers = res.headers_mut();
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
            if vary_origin {
                headers.append(header::VARY, ORIGIN.clone());
            }
            if !headers.contains_key(header::X_FRAME_OPTIONS) {
                headers.append(header::X_FRAME_OPTIONS, DENY.clone());
            }
            if !headers.contains_key(header::REFERRER_POLICY) {
                headers.append(header::REFERRER_POLICY, NO_REFERRER.clone());
            }
            if let Some(id) = request_id {
                let mut buffer = uuid::Uuid::encode_buffer();
                let text = id.hyphenated().encode_lower(&mut buffer);
                if let Ok(value) = HeaderValue::from_str(text) {
                    headers.insert(HeaderName::from_static("x-request-id"), value);
                }
            }
            state.series.observe(
                res.request(),
                res.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok(res)
        })
    }
}

/// Authenticated users are limited per user; everyone else per client IP.
fn rate_key(state: &LayerState, req: &ServiceRequest) -> String {
    if let Ok(principal) = state.authenticator.remember_principal_of(req.request())
        && let Some(uid) = principal.user_id
    {
        return format!("u:{uid}");
    }
    match state.rate_limits.client_ip(req.request()) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}
