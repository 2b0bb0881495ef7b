//! GoForward storage: the Supabase Storage API on [`object_store`], mounted at `/storage/v1`,
//! so supabase-js's `storage` client works unmodified.
//!
//! - Buckets (public/private, size limit, allowed MIME types with `image/*`
//!   wildcards) declared in code with [`Bucket`] or created through the API.
//! - Objects: streaming uploads (raw body or multipart form) with the size
//!   limit enforced while streaming, downloads with `Range`, `ETag`,
//!   `If-None-Match`; list, move, copy, remove, info.
//! - Atomic writes: bytes go to a fresh version key; the object becomes
//!   visible when its metadata row is committed; replaced versions are deleted after commit.
//! - Access through core's `AccessControl` (`Resource::Object`), service_role bypasses.
//! - Listing (folders, search, sort, paging) and `listV2` (flat or delimited,
//!   cursor paging) as SQL over the metadata table.
//! - Optional per-bucket versioning (kept, listed, restored under
//!   `/object/versions/…`, oldest pruned beyond a retention limit) and per-bucket quotas enforced while streaming.
//! - Signed download and upload URLs (HMAC-SHA256, scoped to one object and one purpose).
//! - `ObjectUploaded` / `ObjectDeleted` events on the bus after commit.
//!
//! ```no_run
//! use goforward_storage::{Bucket, Storage};
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(
//!     Storage::new()
//!         .bucket(Bucket::public("avatars").allowed_mime_types(["image/*"]).file_size_limit(5_000_000))
//!         .bucket(Bucket::private("documents").file_size_limit(50_000_000)),
//! )
//! # }
//! ```
//!
//! Cargo features: `s3`, `gcs`, `azure` add the cloud backends of `object_store`;
//! `image` adds image transformations (`/render/image/…`).
#![deny(clippy::unwrap_used, clippy::print_stdout)]

mod backend;
mod bucket;
pub mod config;
pub mod entity;
pub mod error;
mod handlers;
mod migrations;
pub mod mime;
pub mod names;
pub mod signing;
mod state;
#[cfg(feature = "image")]
mod transform;
mod upload;

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use goforward_core::{Context, Error, Plugin, error::ApiErrorFormat};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sea_orm_migration::MigrationTrait;

pub use crate::bucket::Bucket;
pub use crate::config::{BackendConfig, PreviousSigningSecret, StorageConfig};
pub use crate::error::{Result, StorageError, StorageErrorFormat};
pub use crate::state::StorageState;

use crate::entity::bucket as bucket_entity;

/// The storage plugin.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    buckets: Vec<Bucket>,
    backend: Option<BackendConfig>,
    sweeper: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Storage {
    /// A storage plugin with default settings and no declared bucket.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a bucket: created at start (or brought in line with this
    /// declaration) and its access policy registered.
    pub fn bucket(mut self, bucket: Bucket) -> Self {
        self.buckets.push(bucket);
        self
    }

    /// Overrides the configured backend (e.g. [`BackendConfig::Memory`] in tests).
    pub fn backend(mut self, backend: BackendConfig) -> Self {
        self.backend = Some(backend);
        self
    }

    async fn sync_bucket(ctx: &Context, b: &Bucket) -> Result<(), Error> {
        let fail = |message: String| Error::Plugin {
            plugin: "storage".into(),
            message,
        };
        names::validate_bucket_id(&b.id).map_err(|e| fail(e.to_string()))?;
        let types = match &b.allowed_mime_types {
            Some(list) => Some(
                list.iter()
                    .map(|t| mime::validate_pattern(t))
                    .collect::<Result<Vec<_>>>()
                    .map_err(|e| fail(format!("bucket {}: {e}", b.id)))?,
            ),
            None => None,
        };
        let limit = b
            .file_size_limit
            .map(i64::try_from)
            .transpose()
            .map_err(|_| fail(format!("bucket {}: file_size_limit too large", b.id)))?;
        let quota = b
            .quota
            .map(i64::try_from)
            .transpose()
            .map_err(|_| fail(format!("bucket {}: quota too large", b.id)))?;
        let owner_quota = b
            .owner_quota
            .map(i64::try_from)
            .transpose()
            .map_err(|_| fail(format!("bucket {}: owner_quota too large", b.id)))?;
        let max_versions = b
            .max_versions
            .map(i64::try_from)
            .transpose()
            .map_err(|_| fail(format!("bucket {}: max_versions too large", b.id)))?;
        let now = Utc::now();
        let existing = bucket_entity::Entity::find_by_id(b.id.clone())
            .one(ctx.db())
            .await
            .map_err(Error::from_db)?;
        match existing {
            Some(row) => {
                let mut am: bucket_entity::ActiveModel = row.into();
                am.public = Set(b.public);
                am.file_size_limit = Set(limit);
                am.allowed_mime_types = Set(types.map(|t| serde_json::json!(t)));
                am.versioning = Set(b.versioning);
                am.quota = Set(quota);
                am.owner_quota = Set(owner_quota);
                am.max_versions = Set(max_versions);
                am.updated_at = Set(now);
                am.update(ctx.db()).await.map_err(Error::from_db)?;
            }
            None => {
                bucket_entity::ActiveModel {
                    id: Set(b.id.clone()),
                    name: Set(b.id.clone()),
                    public: Set(b.public),
                    file_size_limit: Set(limit),
                    allowed_mime_types: Set(types.map(|t| serde_json::json!(t))),
                    versioning: Set(b.versioning),
                    quota: Set(quota),
                    owner_quota: Set(owner_quota),
                    max_versions: Set(max_versions),
                    owner: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(ctx.db())
                .await
                .map_err(Error::from_db)?;
            }
        }
        let policy = b
            .policy
            .clone()
            .unwrap_or_else(|| Bucket::default_policy(b.public));
        ctx.access().policies().set_bucket(&b.id, policy);
        Ok(())
    }
}

/// Unknown routes: a bad or missing key is still answered 401 first.
async fn unknown_route(
    req: HttpRequest,
    principal: std::result::Result<goforward_core::Principal, actix_web::Error>,
) -> std::result::Result<HttpResponse, actix_web::Error> {
    principal?;
    Err(ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Route not found".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Storage {
    fn name(&self) -> &str {
        "storage"
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        migrations::all()
    }

    async fn start(&self, ctx: &Context) -> Result<(), Error> {
        let mut config: StorageConfig = ctx.config().section("storage")?;
        if let Some(backend) = &self.backend {
            config.backend = backend.clone();
        }
        let max_file_size = names::parse_size(&config.max_file_size)
            .map_err(|e| {
                Error::config(
                    "storage.max_file_size",
                    config.max_file_size.to_string(),
                    e.to_string(),
                )
            })?
            .unwrap_or(u64::MAX);
        let signer = signing::UrlSigner::from_config(&config, &ctx.config().jwt)?;
        let store = backend::build(&config.backend, &ctx.config().data_dir, config.fsync)?;
        let local_root = backend::local_root(&config.backend, &ctx.config().data_dir)?;

        // Runtime-created buckets get their default policy back; declared ones are synced.
        let rows = bucket_entity::Entity::find()
            .all(ctx.db())
            .await
            .map_err(Error::from_db)?;
        for row in &rows {
            ctx.access()
                .policies()
                .set_bucket(&row.id, Bucket::default_policy(row.public));
        }
        for b in &self.buckets {
            Self::sync_bucket(ctx, b).await?;
        }

        let state = StorageState {
            db: ctx.db().clone(),
            store,
            access: ctx.access().clone(),
            bus: ctx.bus().clone(),
            signer,
            max_file_size,
            default_max_versions: config.max_versions,
            fsync: config.fsync,
            signed_upload_expires_secs: config.signed_upload_expires_secs,
            max_signed_url_expires_secs: config.max_signed_url_expires_secs,
            declared: self
                .buckets
                .iter()
                .map(|b| b.id.clone())
                .collect::<HashSet<_>>(),
            #[cfg(feature = "image")]
            images: transform::Limits {
                max_input_bytes: config.image_max_input_bytes,
                max_input_side: config.image_max_input_side,
                permits: tokio::sync::Semaphore::new(config.image_max_concurrent.max(1)),
            },
            local_root,
            sqlite_writes: (ctx.db().get_database_backend() == sea_orm::DbBackend::Sqlite)
                .then(|| tokio::sync::Mutex::new(())),
        };
        let state = Arc::new(state);
        ctx.services().insert(state.clone());
        if config.sweep_interval_secs > 0 {
            let period = std::time::Duration::from_secs(config.sweep_interval_secs);
            let grace = std::time::Duration::from_secs(config.orphan_grace_secs);
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(err) = state.sweep_orphans(grace).await {
                        tracing::warn!(error = %err, "storage orphan sweep failed");
                    }
                }
            });
            if let Ok(mut slot) = self.sweeper.lock() {
                *slot = Some(task);
            }
        }
        Ok(())
    }

    async fn shutdown(&self) {
        let task = self.sweeper.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            task.abort();
        }
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        let scope = ctx.api_scope("/storage/v1", "storage", StorageErrorFormat);
        match ctx.services().get::<StorageState>() {
            Some(state) => cfg.service(
                scope
                    .app_data(web::Data::from(state))
                    .configure(handlers::configure)
                    .default_service(web::to(unknown_route)),
            ),
            None => {
                tracing::error!("storage routes registered before the plugin started");
                cfg.service(scope.default_service(web::to(unknown_route)))
            }
        };
    }
}
