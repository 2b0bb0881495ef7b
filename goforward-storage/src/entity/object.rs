//! `storage_objects`: one row per visible object (its current version).

use sea_orm::entity::prelude::*;

/// An object row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_objects")]
pub struct Model {
    /// Object id, stable across overwrites.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Bucket id.
    pub bucket_id: String,
    /// Path inside the bucket (NFC, validated).
    pub name: String,
    /// The uploader's user id.
    pub owner: Option<String>,
    /// System metadata `{size, mimetype, cacheControl, eTag, lastModified, contentLength, httpStatusCode}`.
    pub metadata: Json,
    /// Metadata the client supplied at upload.
    pub user_metadata: Option<Json>,
    /// The current version; its bytes live at `objects/<version>` in the object store.
    pub version: Uuid,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last overwrite or move.
    pub updated_at: DateTimeUtc,
    /// Last download (updated on upload; reads do not write).
    pub last_accessed_at: DateTimeUtc,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
