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

/// The meta plugin.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    cache: Arc<SchemaCache>,
    runner: Arc<std::sync::OnceLock<Option<sql::Runner>>>,
}

impl Meta {
    /// A meta plugin sharing `rest`'s schema cache (reloaded after every change).
    pub fn for_rest(rest: &crate::Rest) -> Self {
        Self {
            cache: rest.schema_cache(),
            runner: Arc::default(),
        }
    }
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
        let saved = store::policies(ctx.db())
            .await
            .map_err(|e| goforward_core::Error::Plugin {
                plugin: "meta".into(),
                message: format!("loading exposure policies failed: {e}"),
            })?;
        for (table, policy) in saved {
            match parse_policy(&policy) {
                Ok(p) => ctx.access().policies().set_table(&table, p),
                Err(_) => tracing::warn!(table, policy, "ignoring unknown saved policy"),
            }
        }
        Ok(())
    }

    async fn shutdown(&self) {
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
