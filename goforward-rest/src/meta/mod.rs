//! The database management API (feature `meta`), mounted at `/meta/v1`:
//! detailed introspection, schema changes built with sea-query and recorded
//! as revertible migrations, and exposure of new tables through `/rest/v1`.
//!
//! Only principals holding [`Capability::ManageTables`] (service_role, or a
//! user whose `app_metadata.admin_role` is `super_admin` or above) may call
//! it; everyone else gets 403 `meta.forbidden`. It shares the REST plugin's
//! schema cache, reloaded after every change, so `/rest/v1` sees new tables
//! without a restart.
//!
//! ```no_run
//! use goforward_rest::{Rest, meta::Meta};
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! let rest = Rest::new();
//! b.plugin(Meta::for_rest(&rest)).plugin(rest)
//! # }
//! ```
//!
//! See `docs/meta.md` for the endpoints and their bodies.

pub mod data;
pub mod ddl;
pub mod error;
pub mod expr;
mod handlers;
pub mod ident;
pub mod introspect;
mod roles;
pub mod sql;
pub mod store;

use std::sync::Arc;

use actix_web::web;
use goforward_core::{
    Context, Plugin, access::Policy, sea_orm_migration::MigrationTrait, token::Capability,
};

pub use error::{MetaError, MetaErrorFormat};

use crate::SchemaCache;

/// The event the meta plugin publishes on the core bus after an exposure
/// policy changes; every node's meta plugin reloads its policies (from
/// `goforward_meta_policies`) and its REST schema cache when it sees it.
pub const POLICIES_CHANGED: &str = "meta.policies_changed";

/// The meta plugin.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    cache: Arc<SchemaCache>,
    runner: Arc<std::sync::OnceLock<Option<sql::Runner>>>,
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Meta {
    /// A meta plugin sharing `rest`'s schema cache (reloaded after every change).
    pub fn for_rest(rest: &crate::Rest) -> Self {
        Self {
            cache: rest.schema_cache(),
            runner: Arc::default(),
            listener: Arc::default(),
        }
    }
}

/// Registers the policies saved in `goforward_meta_policies` with core's
/// access control (unknown names are skipped with a warning).
async fn load_policies(ctx: &Context) -> error::Result<()> {
    for (table, policy) in store::policies(ctx.db()).await? {
        match parse_policy(&policy) {
            Ok(p) => ctx.access().policies().set_table(&table, p),
            Err(_) => tracing::warn!(table, policy, "ignoring unknown saved policy"),
        }
    }
    Ok(())
}

/// Tells the other nodes (through the core event bus) that exposure
/// policies changed. A failure is logged: the change itself is committed.
pub(crate) async fn announce_policies(ctx: &Context, table: &str) {
    let event =
        goforward_core::bus::Event::custom(POLICIES_CHANGED, serde_json::json!({ "table": table }));
    if let Err(e) = ctx.bus().publish(event).await {
        tracing::warn!(error = %e, table, "meta: could not announce a policy change to other nodes");
    }
}

/// Reloads policies and the REST schema cache on every
/// [`POLICIES_CHANGED`] another node publishes, until the bus shuts down.
fn spawn_listener(ctx: Context, cache: Arc<SchemaCache>) -> tokio::task::JoinHandle<()> {
    let mut events = ctx.bus().subscribe();
    tokio::spawn(async move {
        let me = ctx.bus().node_id();
        while let Some(envelope) = events.recv().await {
            if envelope.origin == me || envelope.event.name() != POLICIES_CHANGED {
                continue;
            }
            if let Err(e) = load_policies(&ctx).await {
                tracing::warn!(error = %e, "meta: reloading exposure policies failed");
            }
            if let Err(e) = cache.reload(ctx.db()).await {
                tracing::warn!(error = %e, "meta: reloading the schema cache failed");
            }
            tracing::info!("meta: exposure policies reloaded (changed on another node)");
        }
    })
}

/// Per-app state of the handlers.
#[derive(Clone)]
pub(crate) struct MetaState {
    pub(crate) ctx: Context,
    pub(crate) cache: Arc<SchemaCache>,
    pub(crate) import_max_bytes: usize,
}

/// Parses an exposure policy name: `public`, `public_read`,
/// `authenticated`, `owner:<column>` or `none` (service_role only).
///
/// # Errors
/// [`MetaError::InvalidRequest`] for anything else.
pub fn parse_policy(name: &str) -> error::Result<Policy> {
    Ok(match name {
        "public" => Policy::public(),
        "public_read" => Policy::public_read(),
        "authenticated" => Policy::authenticated(),
        "none" => Policy::deny_all(),
        other => match other.strip_prefix("owner:") {
            Some(col) if !col.is_empty() => Policy::owner(col),
            _ => {
                return Err(MetaError::InvalidRequest(format!(
                    "unknown policy {other:?}: expected public, public_read, authenticated, owner:<column> or none"
                )));
            }
        },
    })
}

pub(crate) fn require(p: &goforward_core::Principal, cap: Capability) -> error::Result<()> {
    if p.has_capability(cap) {
        Ok(())
    } else {
        Err(MetaError::Forbidden(match cap {
            Capability::RunSql => "run_sql",
            _ => "manage_tables",
        }))
    }
}

#[async_trait::async_trait]
impl Plugin for Meta {
    fn name(&self) -> &str {
        "meta"
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        store::migrations()
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let config: sql::MetaConfig = ctx.config().section("meta")?;
        let runner = sql::Runner::start(ctx, config.sql).await?;
        // A second start (tests) keeps the first runner.
        let _ = self.runner.set(runner);
        load_policies(ctx)
            .await
            .map_err(|e| goforward_core::Error::Plugin {
                plugin: "meta".into(),
                message: format!("loading exposure policies failed: {e}"),
            })?;
        let listener = spawn_listener(ctx.clone(), Arc::clone(&self.cache));
        if let Ok(mut slot) = self.listener.lock()
            && let Some(old) = slot.replace(listener)
        {
            old.abort();
        }
        Ok(())
    }

    async fn shutdown(&self) {
        if let Ok(mut slot) = self.listener.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        if let Some(Some(runner)) = self.runner.get() {
            runner.close().await;
        }
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        let config: sql::MetaConfig = ctx.config().section("meta").unwrap_or_default();
        let state = MetaState {
            ctx: ctx.clone(),
            cache: Arc::clone(&self.cache),
            import_max_bytes: config.import_max_bytes,
        };
        // Before `/meta/v1`, which would otherwise match first.
        sql::configure(
            cfg,
            ctx,
            sql::SqlState {
                ctx: ctx.clone(),
                runner: self.runner.get().cloned().flatten(),
            },
        );
        handlers::configure(cfg, ctx, state);
    }
}
