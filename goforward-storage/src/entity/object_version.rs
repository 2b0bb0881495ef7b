//! `storage_object_versions`: previous versions of objects in versioned
//! buckets. Rows go with their object (`ON DELETE CASCADE`).

use sea_orm::entity::prelude::*;

/// A kept previous version.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_object_versions")]
pub struct Model {
    /// The version id; its bytes live at `objects/<xx>/<version>` in the object store.
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: Uuid,
    /// The object (`storage_objects.id`) this was a version of.
    pub object_id: Uuid,
    /// Who uploaded this version.
    pub owner: Option<String>,
    /// Size in bytes.
    pub size: i64,
    /// System metadata of this version (as `storage_objects.metadata`).
    pub metadata: Json,
    /// User metadata of this version.
    pub user_metadata: Option<Json>,
    /// When this version was written.
    pub created_at: DateTimeUtc,
    /// When a newer version replaced it.
    pub archived_at: DateTimeUtc,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
