//! GoForward realtime: Phoenix-channel broadcast, presence and database changes, mounted at `/realtime/v1`.
//!
//! Speaks Supabase Realtime's protocol, so `supabase.channel(..)` (realtime-js)
//! works unmodified:
//!
//! - `GET /realtime/v1/websocket?apikey=…&vsn=1.0.0|2.0.0`: the Phoenix socket
//!   (heartbeat, `phx_join`/`phx_leave`, broadcast with `self`/`ack`, presence,
//!   `postgres_changes`, `access_token` refresh; V2 binary broadcast frames).
//! - `POST /realtime/v1/api/broadcast` and `POST /realtime/v1/api/broadcast/{topic}/events/{event}`.
//!
//! Broadcasts and presence travel through core's event bus (Redis with
//! several nodes); `postgres_changes` come from the `RecordChanged` events
//! written through GoForward and, on PostgreSQL (feature `postgres`, on by
//! default), from per-table triggers + `LISTEN/NOTIFY`, filtered per subscriber
//! by its filter and by the same access control the REST API applies. See
//! `docs/realtime.md`.
//!
//! ```no_run
//! use goforward_realtime::Realtime;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Realtime::new())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

mod api;
mod changes;
mod config;
mod error;
mod handle;
mod hub;
mod metrics;
mod migrations;
mod persist;
#[cfg(feature = "postgres")]
mod pg;
pub mod protocol;
mod socket;
mod state;

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{Context, Error, Plugin, Principal, error::ApiErrorFormat};
use tokio::task::JoinHandle;

pub use config::RealtimeConfig;
pub use error::{RealtimeError, RealtimeErrorFormat, Result};
pub use handle::RealtimeHandle;

use crate::hub::Hub;
use crate::state::RealtimeState;

/// The realtime plugin.
#[derive(Debug, Clone, Default)]
pub struct Realtime {
    config: Option<RealtimeConfig>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Realtime {
    /// A realtime plugin configured from the `[realtime]` config section.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `config` instead of the `[realtime]` config section.
    pub fn with_config(mut self, config: RealtimeConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The broadcast handle of a started app (`None` before `build()` or without this plugin).
    pub fn handle(ctx: &Context) -> Option<Arc<RealtimeHandle>> {
        ctx.services().get::<RealtimeHandle>()
    }
}

async fn not_found(
    req: HttpRequest,
    principal: std::result::Result<Principal, actix_web::Error>,
) -> std::result::Result<HttpResponse, actix_web::Error> {
    principal?;
    Err(ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Not found".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Realtime {
    fn name(&self) -> &str {
        "realtime"
    }

    fn migrations(&self) -> Vec<Box<dyn goforward_core::sea_orm_migration::MigrationTrait>> {
        migrations::all()
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let config = match &self.config {
            Some(config) => config.clone(),
            None => ctx.config().section::<RealtimeConfig>("realtime")?,
        };
        config.validate()?;
        let metrics = metrics::RealtimeMetrics::new(ctx.metrics().registry())?;
        let hub = Arc::new(
            Hub::new(
                ctx.bus().clone(),
                std::time::Duration::from_secs(config.node_timeout_secs),
            )
            .with_policies(Arc::clone(ctx.access().policies())),
        );
        let subscription = ctx.bus().subscribe();
        let mut tasks = vec![tokio::spawn(Arc::clone(&hub).run(subscription))];
        #[cfg(feature = "postgres")]
        let pg = pg::PgSource::new(ctx.db(), Arc::clone(&hub));
        #[cfg(feature = "postgres")]
        if let Some(pg) = &pg {
            tasks.push(tokio::spawn(Arc::clone(pg).listen()));
            // Joins made once the app is up must not miss the first changes.
            if !pg.wait_listening(std::time::Duration::from_secs(5)).await {
                tracing::warn!(
                    "realtime LISTEN connection not up after 5 s; changes by other programs are delivered once it is"
                );
            }
        }
        let store = config
            .broadcast_persistence
            .then(|| persist::Store::new(ctx.db().clone(), config.max_persist_ttl_secs));
        if let Some(store) = store.clone() {
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
                loop {
                    every.tick().await;
                    if let Err(err) = store.prune().await {
                        tracing::warn!(error = %err, "could not prune expired realtime messages");
                    }
                }
            }));
        }
        if let Ok(mut slot) = self.tasks.lock() {
            for old in slot.drain(..) {
                old.abort();
            }
            *slot = tasks;
        }
        ctx.services().insert(Arc::new(RealtimeHandle {
            hub: Arc::clone(&hub),
        }));
        ctx.services().insert(Arc::new(RealtimeState {
            hub,
            ctx: ctx.clone(),
            slots: socket::IpSlots::new(config.max_connections_per_ip),
            user_slots: socket::UserSlots::new(config.max_connections_per_user),
            metrics,
            store,
            #[cfg(feature = "postgres")]
            pg,
            config,
        }));
        Ok(())
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        let mut scope = ctx.api_scope("/realtime/v1", "realtime", RealtimeErrorFormat);
        match ctx.services().get::<RealtimeState>() {
            Some(state) => {
                scope = scope
                    .app_data(web::Data::from(state))
                    .route("/websocket", web::get().to(socket::connect))
                    .route("/api/broadcast", web::post().to(api::batch))
                    .route(
                        "/api/broadcast/{topic}/events/{event}",
                        web::post().to(api::single),
                    );
            }
            None => tracing::error!("realtime routes mounted before the plugin was started"),
        }
        cfg.service(scope.default_service(web::to(not_found)));
    }

    async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .map(|mut slot| slot.drain(..).collect())
            .unwrap_or_default();
        for task in tasks {
            task.abort();
        }
    }
}
