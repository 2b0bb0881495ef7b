//! `auth_permissions`: named permissions that roles grant.

use sea_orm::entity::prelude::*;

/// One permission.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_permissions")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique name (e.g. `posts:write`; letters, digits and `_-.:*`, at most 128 characters).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// `auth_permissions` relations are declared on the join table.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
