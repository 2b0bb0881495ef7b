//! The [`Plugin`] trait and the [`Context`] every plugin receives.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::{Arc, RwLock},
};

use actix_web::web::ServiceConfig;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigrationTrait;

use crate::access::Access;
use crate::bus::SharedBus;
use crate::config::Config;
use crate::error::{ErrorFormat, Result};
use crate::hooks::Hooks;
use crate::http::{Plumbing, RateLimits};
use crate::token::{Authenticator, TokenSigner};

/// A unit of functionality mounted into a GoForward app: auth, REST,
/// realtime and storage are plugins, and so is anything a host writes.
///
/// ```no_run
/// use actix_web::{HttpResponse, web};
/// use goforward_core::{Context, Plugin, Principal};
///
/// struct Hello;
///
/// #[async_trait::async_trait]
/// impl Plugin for Hello {
///     fn name(&self) -> &str { "hello" }
///
///     fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
///         cfg.service(
///             web::scope("/hello")
///                 .wrap(ctx.plumbing("hello"))
///                 .route("", web::get().to(|p: Principal| async move {
///                     HttpResponse::Ok().body(format!("hello {}", p.role.as_str()))
///                 })),
///         );
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Unique name: `[a-z][a-z0-9_]*`. Also the name of the plugin's config
    /// section and migration ledger (`goforward_migrations_<name>`).
    fn name(&self) -> &str;

    /// Validates the plugin's config section without connecting anywhere
    /// (`goforward config check`, and [`GoForwardBuilder::check`](crate::GoForwardBuilder::check)).
    /// The default accepts anything; a plugin with a section parses it here
    /// with [`Config::section`] and applies the checks its `start` would.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the key, the value and what is allowed.
    fn check_config(&self, _config: &Config) -> Result<()> {
        Ok(())
    }

    /// The plugin's migrations, in order (names `mYYYYMMDD_HHMMSS_verb_object`).
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }

    /// Called once in `build()`, after migrations, in registration order:
    /// register policies, services, rate-limit groups, hooks; spawn
    /// background tasks (stop them in [`Plugin::shutdown`]).
    ///
    /// # Errors
    /// Any error aborts `build()`.
    async fn start(&self, _ctx: &Context) -> Result<()> {
        Ok(())
    }

    /// Registers routes. Runs once per worker: never connect, spawn or read
    /// files here; only clone what `start` prepared.
    fn routes(&self, _cfg: &mut ServiceConfig, _ctx: &Context) {}

    /// Stops background tasks; called by `GoForward::shutdown` in reverse order.
    async fn shutdown(&self) {}
}

/// Typed registry so plugins can find each other's services without
/// depending on each other's crates.
#[derive(Default)]
pub struct ServiceRegistry {
    services: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.services.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("ServiceRegistry")
            .field("services", &n)
            .finish()
    }
}

impl ServiceRegistry {
    /// Registers (or replaces) the service of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&self, service: Arc<T>) {
        if let Ok(mut map) = self.services.write() {
            map.insert(TypeId::of::<T>(), service);
        }
    }

    /// The service of type `T`, if registered.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let map = self.services.read().ok()?;
        map.get(&TypeId::of::<T>())
            .cloned()
            .and_then(|s| s.downcast::<T>().ok())
    }
}

/// Everything a plugin needs, built once by `GoForward::build` and shared by
/// every worker (cloning is cheap: it is a bundle of `Arc`s).
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    pub(crate) config: Config,
    pub(crate) db: DatabaseConnection,
    pub(crate) bus: SharedBus,
    pub(crate) access: Access,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) services: ServiceRegistry,
    pub(crate) authenticator: Arc<Authenticator>,
    pub(crate) signer: TokenSigner,
    pub(crate) rate_limits: Arc<RateLimits>,
    pub(crate) metrics: Arc<crate::http::Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database connection pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The event bus.
    pub fn bus(&self) -> &SharedBus {
        &self.inner.bus
    }

    /// Access control (service_role bypass included) and the policy registry.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// The hook registry.
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.inner.hooks
    }

    /// The typed service registry.
    pub fn services(&self) -> &ServiceRegistry {
        &self.inner.services
    }

    /// Verifies API keys and access tokens.
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.inner.authenticator
    }

    /// Signs HS256 tokens with the configured secret (the auth plugin issues sessions with it).
    pub fn signer(&self) -> &TokenSigner {
        &self.inner.signer
    }

    /// Rate-limit groups; declare a plugin's own quotas in [`Plugin::start`].
    pub fn rate_limits(&self) -> &Arc<RateLimits> {
        &self.inner.rate_limits
    }

    /// The middleware stack every GoForward route gets (request id and
    /// tracing, CORS, security headers, metrics, rate limit of `group`),
    /// answering its own errors in GoForward's shape.
    pub fn plumbing(&self, group: &str) -> Plumbing {
        Plumbing::new(self, group, None)
    }

    /// As [`Context::plumbing`], answering errors (429, 401…) in `format`.
    pub fn plumbing_with(&self, group: &str, format: Arc<dyn ErrorFormat>) -> Plumbing {
        Plumbing::new(self, group, Some(format))
    }

    /// A `JsonConfig` with the configured size limit whose errors (bad JSON,
    /// too large, wrong content type) render in `format`.
    pub fn json_config(&self, format: Arc<dyn ErrorFormat>) -> actix_web::web::JsonConfig {
        crate::http::errors::json_config(self.inner.config.server.json_limit, format)
    }

    /// The scope every API plugin mounts: `path` wrapped in
    /// [`Context::plumbing_with`] for rate-limit `group`, with `format`
    /// registered for extractor errors (tokens, JSON, query, path) and the
    /// configured JSON limit.
    pub fn api_scope<F: ErrorFormat + Clone>(
        &self,
        path: &str,
        group: &str,
        format: F,
    ) -> actix_web::Scope<
        impl actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        > + use<F>,
    > {
        let shared: Arc<dyn ErrorFormat> = Arc::new(format.clone());
        let (query, path_config) = crate::http::errors::extractor_configs(shared.clone());
        actix_web::web::scope(path)
            .wrap(self.plumbing_with(group, shared.clone()))
            .app_data(crate::error::ApiErrorFormat::data(format))
            .app_data(self.json_config(shared))
            .app_data(query)
            .app_data(path_config)
    }

    /// The Prometheus metrics of this app (`/metrics`); register a plugin's
    /// own families on [`Metrics::registry`](crate::http::Metrics::registry).
    pub fn metrics(&self) -> &Arc<crate::http::Metrics> {
        &self.inner.metrics
    }
}
