//! `storage_buckets`: one row per bucket.

use sea_orm::entity::prelude::*;

/// A bucket row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_buckets")]
pub struct Model {
    /// Bucket id (also its name in the URL).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Display name (Supabase keeps it equal to the id).
    pub name: String,
    /// Whether objects are readable without a token through `/object/public/…`.
    pub public: bool,
    /// Largest object in bytes; `None`: the server's limit.
    pub file_size_limit: Option<i64>,
    /// Allowed MIME types (`image/*` wildcards); `None`: any.
    pub allowed_mime_types: Option<Json>,
    /// Whether overwrites keep the previous version (`storage_object_versions`).
    pub versioning: bool,
    /// Most bytes the bucket may hold (objects and kept versions); `None`: no quota.
    pub quota: Option<i64>,
    /// Most bytes one owner's objects (and their kept versions) may take in the bucket.
    pub owner_quota: Option<i64>,
    /// Most kept versions per object in a versioned bucket (the oldest beyond
    /// it are pruned on overwrite); `None`: the server default
    /// (`storage.max_versions`), `0`: no limit.
    pub max_versions: Option<i64>,
    /// The user who created the bucket, if any.
    pub owner: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
