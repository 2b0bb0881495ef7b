//! The middleware stack of a scope, outermost first: GoForward's layer
//! (request id, root span, rate limit, metrics, security headers) → actix-cors
//! for requests with an `Origin` header → the scope's routes. One value of
//! [`Plumbing`] wraps one scope.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::Instant,
};

use actix_cors::Cors;
use actix_cors::CorsMiddleware;
use actix_service::{Service, Transform};
use actix_web::body::EitherBody;
use actix_web::{
    Error as ActixError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderName, HeaderValue},
    },
};
use bytes::BytesMut;
use futures_util::{
    TryFutureExt,
    future::{Either, MapOk},
};

use crate::error::{Error, ErrorFormat};
use crate::http::{
    RateLimits,
    errors::GoForwardErrorFormat,
    ratelimit::{Limiter, take},
    series::SeriesByPath,
    trace,
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
    type Transform = LayerService<OriginSwitch<CorsMiddleware<Rc<S>>, Rc<S>>>;
    type InitError = ();
    type Future = LocalBoxFuture<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let service = Rc::new(service);
        let cors = self.cors();
        let state = self.state.clone();
        Box::pin(async move {
            let cors = cors.new_transform(service.clone()).await?;
            let switch = OriginSwitch {
                cors,
                plain: service,
            };
            Ok(LayerService {
                service: Rc::new(switch),
                state,
            })
        })
    }
}

/// Sends requests that carry an `Origin` header through actix-cors and the
/// rest (server-to-server calls, SDKs outside browsers, probes) straight to
/// the routes: CORS has nothing to tell them but `Vary: Origin`, which the
/// layer adds itself, so they skip the middleware's work and its headers.
pub struct OriginSwitch<C, L> {
    cors: C,
    plain: L,
}

/// A plain response, typed as actix-cors's.
type PlainResponse<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B>>;

impl<C, L, B> Service<ServiceRequest> for OriginSwitch<C, L>
where
    C: Service<ServiceRequest, Response = ServiceResponse<EitherBody<B>>, Error = ActixError>,
    B: MessageBody + 'static,
    L: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError>,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = ActixError;
    type Future = Either<C::Future, MapOk<L::Future, PlainResponse<B>>>;

    fn poll_ready(&self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        match self.cors.poll_ready(cx)? {
            Poll::Ready(()) => self.plain.poll_ready(cx),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            Either::Left(self.cors.call(req))
        } else {
            let left: PlainResponse<B> = ServiceResponse::map_into_left_body;
            Either::Right(self.plain.call(req).map_ok(left))
        }
    }
}

/// GoForward's layer around one scope (see the module docs); the service
/// [`Plumbing`] turns a scope into. Named only as `Plumbing`'s `Transform`.
pub struct LayerService<S> {
    service: Rc<S>,
    state: Rc<LayerState>,
}

static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static DENY: HeaderValue = HeaderValue::from_static("DENY");
static NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");
static ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl<S, B> Service<ServiceRequest> for LayerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = ActixError> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = ActixError;
    type Future = LayerFuture<S::Future>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4();
        let span = trace::root_span(&req, request_id);
        let traced = !span.is_disabled();
        if traced {
            let route = req.match_pattern();
            span.record("http.route", route.as_deref().unwrap_or("unmatched"));
        }
        // actix-cors adds `Vary: Origin` to the requests it sees.
        let vary_origin = !req.headers().contains_key(header::ORIGIN);
        let state = self.state.clone();
        let limited = match &state.limiter {
            Some(limiter) if req.method() != Method::OPTIONS => {
                take(limiter, &rate_key(&state, &req)).err()
            }
            _ => None,
        };
        let stage = match limited {
            Some(retry_after_secs) => {
                let response = state
                    .format
                    .render(&Error::RateLimited { retry_after_secs });
                Stage::Refused {
                    response: Some(req.into_response(response)),
                }
            }
            None => {
                // Entering a span costs even when nobody records it: only a
                // recorded span is entered around the routes' work.
                let _entered = traced.then(|| span.enter());
                Stage::Routed {
                    future: self.service.call(req),
                }
            }
        };
        LayerFuture {
            stage,
            finish: Finish {
                started,
                request_id,
                vary_origin,
                span: traced.then_some(span),
                state,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`LayerService`]: the scope's own future (or
    /// the rate limiter's refusal), then the headers, metrics and span
    /// fields every response gets. A named type rather than a boxed `async`
    /// block: one allocation less per request.
    pub struct LayerFuture<F> {
        #[pin]
        stage: Stage<F>,
        finish: Finish,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        Routed { #[pin] future: F },
        Refused { response: Option<ServiceResponse<BoxBody>> },
    }
}

/// What the layer does to every response once the scope answered.
struct Finish {
    started: Instant,
    request_id: uuid::Uuid,
    vary_origin: bool,
    /// The request's span, when a subscriber records it.
    span: Option<tracing::Span>,
    state: Rc<LayerState>,
}

impl Finish {
    fn response(&self, mut res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
        stamp_headers(res.headers_mut(), self.request_id, self.vary_origin);
        self.state.series.observe(
            res.request(),
            res.status().as_u16(),
            self.started.elapsed().as_secs_f64(),
        );
        if let Some(span) = &self.span {
            trace::record_response(span, &res);
        }
        res
    }
}

impl<F, B> Future for LayerFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, ActixError>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<BoxBody>, ActixError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let finish = &*this.finish;
        let res = match this.stage.project() {
            StageProjection::Routed { future } => {
                let _entered = finish.span.as_ref().map(tracing::Span::enter);
                match future.poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(res)) => res.map_into_boxed_body(),
                    Poll::Ready(Err(err)) => {
                        if let Some(span) = &finish.span {
                            trace::record_failure(span, &err);
                        }
                        return Poll::Ready(Err(err));
                    }
                }
            }
            StageProjection::Refused { response } => match response.take() {
                Some(res) => res,
                None => {
                    return Poll::Ready(Err(actix_web::error::ErrorInternalServerError(
                        "plumbing future polled after completion",
                    )));
                }
            },
        };
        Poll::Ready(Ok(finish.response(res)))
    }
}

/// Security headers (unless the route set its own) and the request id.
fn stamp_headers(headers: &mut header::HeaderMap, request_id: uuid::Uuid, vary_origin: bool) {
    // One pass over the (few) headers the route set, rather than a hashed
    // lookup per security header.
    let (mut nosniff, mut frame, mut referrer) = (false, false, false);
    for name in headers.keys() {
        if *name == header::X_CONTENT_TYPE_OPTIONS {
            nosniff = true;
        } else if *name == header::X_FRAME_OPTIONS {
            frame = true;
        } else if *name == header::REFERRER_POLICY {
            referrer = true;
        }
    }
    // `append` where the header is known to be absent: no old value to
    // remove (actix's `insert` costs three times as much).
    if !nosniff {
        headers.append(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
    }
    if vary_origin {
        headers.append(header::VARY, ORIGIN.clone());
    }
    if !frame {
        headers.append(header::X_FRAME_OPTIONS, DENY.clone());
    }
    if !referrer {
        headers.append(header::REFERRER_POLICY, NO_REFERRER.clone());
    }
    if let Some(value) = request_id_value(request_id) {
        // Only the layer sets it.
        headers.append(X_REQUEST_ID.clone(), value);
    }
}

/// Request ids written per worker thread into one shared buffer.
const REQUEST_ID_ARENA_BYTES: usize = 36 * 512;

thread_local! {
    static REQUEST_ID_ARENA: std::cell::RefCell<BytesMut> =
        std::cell::RefCell::new(BytesMut::new());
}

/// `request_id` as a header value. The text is carved out of a per-thread
/// buffer (a reference count per request) rather than allocated for each
/// response; the buffer is freed once its last response is gone.
fn request_id_value(request_id: uuid::Uuid) -> Option<HeaderValue> {
    let mut text = uuid::Uuid::encode_buffer();
    let text = request_id.hyphenated().encode_lower(&mut text).as_bytes();
    let bytes = REQUEST_ID_ARENA.with(|arena| {
        let mut arena = arena.try_borrow_mut().ok()?;
        if arena.capacity() < text.len() {
            *arena = BytesMut::with_capacity(REQUEST_ID_ARENA_BYTES);
        }
        arena.extend_from_slice(text);
        Some(arena.split().freeze())
    })?;
    HeaderValue::from_maybe_shared(bytes).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_stay_intact_across_arena_refills() {
        let ids: Vec<uuid::Uuid> = (0..3 * 512 + 7).map(|_| uuid::Uuid::new_v4()).collect();
        let values: Vec<HeaderValue> = ids
            .iter()
            .map(|id| request_id_value(*id).expect("a uuid is a valid header value"))
            .collect();
        for (id, value) in ids.iter().zip(&values) {
            assert_eq!(value.to_str().unwrap(), id.to_string());
        }
    }

    #[test]
    fn security_headers_are_added_once_and_never_over_a_routes_own() {
        let mut headers = header::HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let id = uuid::Uuid::new_v4();
        stamp_headers(&mut headers, id, true);
        let values = |name| {
            headers
                .get_all(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(header::X_FRAME_OPTIONS), ["SAMEORIGIN"]);
        assert_eq!(values(header::X_CONTENT_TYPE_OPTIONS), ["nosniff"]);
        assert_eq!(values(header::REFERRER_POLICY), ["no-referrer"]);
        assert_eq!(values(header::VARY), ["Origin"]);
        assert_eq!(values(X_REQUEST_ID.clone()), [id.to_string()]);

        let mut with_origin = header::HeaderMap::new();
        stamp_headers(&mut with_origin, id, false);
        assert!(with_origin.get(header::VARY).is_none());
    }
}
