//! [`GoForward`]: the composed application, built once before the HTTP server starts.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use actix_web::web::{self, ServiceConfig};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::access::{Access, AccessControl, PolicyAccessControl, PolicyRegistry};
use crate::bus::{MemoryBus, SharedBus};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::http::{self, GoForwardErrorFormat, Metrics, RateLimits};
use crate::migrate::Migrator;
use crate::plugin::{Context, ContextInner, Plugin, ServiceRegistry};
use crate::token::{Authenticator, TokenVerifier};

/// Capacity of the in-process event bus per subscriber.
const BUS_CAPACITY: usize = 4096;

/// Configures a [`GoForward`]: plugins, access control, then [`build`](GoForwardBuilder::build).
pub struct GoForwardBuilder {
    config: Config,
    plugins: Vec<Arc<dyn Plugin>>,
    access: Option<Arc<dyn AccessControl>>,
    bus: Option<SharedBus>,
    database: Option<DatabaseConnection>,
}

impl std::fmt::Debug for GoForwardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoForwardBuilder")
            .field(
                "plugins",
                &self
                    .plugins
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl GoForwardBuilder {
    /// Adds a plugin; plugins start in the order they are added.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Replaces the default policy-driven access control (service_role still bypasses).
    pub fn access_control(mut self, access: impl AccessControl) -> Self {
        self.access = Some(Arc::new(access));
        self
    }

    /// Uses this event bus instead of the one chosen from config.
    pub fn bus(mut self, bus: SharedBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Uses an existing database connection instead of connecting from config.
    pub fn database(mut self, db: DatabaseConnection) -> Self {
        self.database = Some(db);
        self
    }

    /// The migrations of every added plugin (for `goforward migrate`).
    ///
    /// # Errors
    /// [`Error::Plugin`] for invalid or duplicate plugin names.
    pub fn migrator(&self) -> Result<Migrator> {
        let mut migrator = Migrator::new();
        for plugin in &self.plugins {
            migrator.add(plugin.name(), plugin.migrations())?;
        }
        Ok(migrator)
    }

    /// Validates the config without connecting anywhere (for `goforward config check`).
    ///
    /// # Errors
    /// The first invalid value, or a config section no plugin claims.
    pub fn check(&mut self) -> Result<()> {
        self.config.validate()?;
        for plugin in &self.plugins {
            plugin.check_config(&self.config)?;
        }
        for section in self.config.sections.keys() {
            if !self.plugins.iter().any(|p| p.name() == section) {
                let known: Vec<&str> = self.plugins.iter().map(|p| p.name()).collect();
                return Err(Error::config(
                    section.clone(),
                    "<section>",
                    format!(
                        "unknown configuration section; core sections are server, database, jwt, redis and plugin sections are {known:?}"
                    ),
                ));
            }
        }
        self.migrator().map(|_| ())
    }

    /// The configuration as it stands (validated after [`GoForwardBuilder::check`]).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Connects to the database (after validating the config).
    ///
    /// # Errors
    /// As [`GoForwardBuilder::check`] and [`crate::db::connect`].
    pub async fn connect(&mut self) -> Result<DatabaseConnection> {
        self.check()?;
        if let Some(db) = &self.database {
            return Ok(db.clone());
        }
        ensure_sqlite_dir(&self.config)?;
        crate::db::connect(&self.config.database).await
    }

    /// Validates config, connects, applies pending migrations (unless
    /// `database.auto_migrate = false`) and starts every plugin.
    ///
    /// # Errors
    /// Invalid config, unreachable database, a failed migration or a plugin
    /// that fails to start.
    pub async fn build(mut self) -> Result<GoForward> {
        let db = self.connect().await?;
        let migrator = self.migrator()?;
        let mut config = self.config;

        let secret = config.resolve_jwt_secret()?;
        let secret_bytes = secret.expose_secret().as_bytes();
        let mut verifier = TokenVerifier::empty()
            .with_secret(config.jwt.kid.clone(), secret_bytes)
            .with_leeway(config.jwt.leeway_secs);
        for previous in &config.jwt.previous_secrets {
            verifier = verifier.with_secret(
                previous.kid.clone(),
                previous.secret.expose_secret().as_bytes(),
            );
        }
        for key in &config.jwt.public_keys {
            verifier = verifier
                .with_public_key(key.kid.clone(), key.alg, key.pem.as_bytes())
                .map_err(|_| {
                    Error::config(
                        "jwt.public_keys",
                        key.kid.clone().unwrap_or_default(),
                        "PEM does not parse for the algorithm",
                    )
                })?;
        }
        if !config.jwt.audience.is_empty() {
            verifier = verifier.with_audience(config.jwt.audience.clone());
        }
        if !config.jwt.issuer.is_empty() {
            verifier = verifier.with_issuer(config.jwt.issuer.clone());
        }
        let authenticator = Arc::new(Authenticator::with_cache_capacity(
            verifier,
            config.server.require_apikey,
            config.jwt.cache_capacity,
        ));
        let signer = config.token_signer()?;

        let migrations_applied = if config.database.auto_migrate {
            migrator.up(&db).await?;
            true
        } else {
            migrator
                .status(&db)
                .await?
                .iter()
                .all(|s| s.applied_at.is_some())
        };

        let bus = match self.bus.take() {
            Some(bus) => bus,
            None => default_bus(&config).await?,
        };
        let policies = Arc::new(PolicyRegistry::default());
        let inner_access = self
            .access
            .take()
            .unwrap_or_else(|| Arc::new(PolicyAccessControl::new(policies.clone())));
        let rate_limits = Arc::new(RateLimits::new(
            &config.server.rate_limit,
            config.server.trusted_proxies.clone(),
        ));

        let ctx = Context {
            inner: Arc::new(ContextInner {
                db: db.clone(),
                bus,
                access: Access::new(inner_access, policies),
                hooks: Arc::new(Hooks::new()),
                services: ServiceRegistry::default(),
                authenticator,
                signer,
                rate_limits,
                metrics: Arc::new(Metrics::new()?),
                config,
            }),
        };

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sweeper = spawn_rate_limit_sweeper(ctx.rate_limits().clone(), stop_rx.clone());
        let revocations = spawn_revocation_listener(&ctx, stop_rx);

        let mut started: Vec<Arc<dyn Plugin>> = Vec::new();
        for plugin in &self.plugins {
            if let Err(err) = plugin.start(&ctx).await {
                for done in started.iter().rev() {
                    done.shutdown().await;
                }
                let _ = stop_tx.send(true);
                return Err(err);
            }
            started.push(plugin.clone());
        }

        Ok(GoForward {
            inner: Arc::new(GoForwardInner {
                readiness: web::Data::new(Readiness {
                    applied: AtomicBool::new(migrations_applied),
                    migrator,
                    db,
                }),
                ctx,
                plugins: self.plugins,
                stop: stop_tx,
                tasks: Mutex::new(vec![sweeper, revocations]),
                stopped: AtomicBool::new(false),
            }),
        })
    }
}

fn ensure_sqlite_dir(config: &Config) -> Result<()> {
    let url = config.database_url();
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or_default();
        if !path.is_empty()
            && !path.contains(":memory:")
            && let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::config(
                    "database.url",
                    url,
                    format!("cannot create directory {}: {e}", parent.display()),
                )
            })?;
        }
    }
    Ok(())
}

async fn default_bus(config: &Config) -> Result<SharedBus> {
    match &config.redis.url {
        #[cfg(feature = "redis")]
        Some(url) => {
            let channel = config
                .redis
                .channel
                .clone()
                .unwrap_or_else(|| "goforward:events".to_owned());
            Ok(Arc::new(
                crate::bus::RedisBus::connect(url, &channel, BUS_CAPACITY).await?,
            ))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(Error::config(
            "redis.url",
            "<set>",
            "this build has no Redis support: enable the `redis` cargo feature",
        )),
        None => Ok(Arc::new(MemoryBus::new(BUS_CAPACITY))),
    }
}

fn spawn_rate_limit_sweeper(
    limits: Arc<RateLimits>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => limits.retain_recent(),
                _ = stop.changed() => break,
            }
        }
    })
}

/// Feeds every [`SessionsRevoked`](crate::bus::SessionsRevoked) event on
/// the bus (this node's and, through Redis, other nodes') to the
/// authenticator, so the ended sessions' access tokens are refused at once
/// by every plugin. Subscribed before any plugin starts: none is missed.
fn spawn_revocation_listener(
    ctx: &Context,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut events = ctx.bus().subscribe();
    let authenticator = ctx.authenticator().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                envelope = events.recv() => match envelope {
                    Some(envelope) => {
                        if let crate::bus::Event::SessionsRevoked(revoked) = &envelope.event {
                            authenticator.revoke_sessions(revoked);
                        }
                    }
                    None => break,
                },
                _ = stop.changed() => break,
            }
        }
    })
}

/// Whether the database answers and every migration is applied.
pub(crate) struct Readiness {
    applied: AtomicBool,
    migrator: Migrator,
    db: DatabaseConnection,
}

impl Readiness {
    pub(crate) async fn migrations_applied(&self) -> bool {
        if self.applied.load(Ordering::Relaxed) {
            return true;
        }
        let done = self
            .migrator
            .status(&self.db)
            .await
            .is_ok_and(|s| s.iter().all(|m| m.applied_at.is_some()));
        self.applied.store(done, Ordering::Relaxed);
        done
    }
}

struct GoForwardInner {
    ctx: Context,
    plugins: Vec<Arc<dyn Plugin>>,
    readiness: web::Data<Readiness>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stopped: AtomicBool,
}

/// A built GoForward application: cheap to clone, shared by every worker.
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use goforward_core::{Config, GoForward};
///
/// # async fn run() -> goforward_core::Result<()> {
/// let gf = GoForward::builder(Config::default()).build().await?;
/// let app = gf.clone();
/// HttpServer::new(move || App::new().configure(app.routes()))
///     .bind(gf.config().server.addr())?
///     .run()
///     .await?;
/// gf.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GoForward {
    inner: Arc<GoForwardInner>,
}

impl std::fmt::Debug for GoForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoForward")
            .field(
                "plugins",
                &self
                    .inner
                    .plugins
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl GoForward {
    /// Starts configuring an app from a validated-at-build config.
    pub fn builder(config: Config) -> GoForwardBuilder {
        GoForwardBuilder {
            config,
            plugins: Vec::new(),
            access: None,
            bus: None,
            database: None,
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        self.inner.ctx.config()
    }

    /// The shared context (database, bus, access control, hooks, services).
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// Everything GoForward serves, for `App::configure`: health, metrics and
    /// every plugin's scope. Call it inside the `HttpServer::new` closure;
    /// it only clones `Arc`s.
    pub fn routes(&self) -> impl Fn(&mut ServiceConfig) + Clone + Send + Sync + 'static {
        let gf = self.clone();
        move |cfg: &mut ServiceConfig| gf.configure(cfg)
    }

    fn configure(&self, cfg: &mut ServiceConfig) {
        let ctx = &self.inner.ctx;
        let format: Arc<dyn crate::error::ErrorFormat> = Arc::new(GoForwardErrorFormat);
        let (query, path) = http::errors::extractor_configs(format.clone());
        cfg.app_data(web::Data::new(ctx.clone()))
            .app_data(web::Data::from(ctx.authenticator().clone()))
            .app_data(self.inner.readiness.clone())
            .app_data(ctx.json_config(format))
            .app_data(query)
            .app_data(path);
        http::health_routes(cfg, ctx);
        http::metrics_routes(cfg, ctx);
        for plugin in &self.inner.plugins {
            plugin.routes(cfg, ctx);
        }
    }

    /// Stops background tasks and plugins (in reverse order) and the bus. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.inner.stop.send(true);
        for plugin in self.inner.plugins.iter().rev() {
            plugin.shutdown().await;
        }
        self.inner.ctx.bus().shutdown().await;
        let tasks = self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        tracing::info!("goforward stopped");
    }
}
