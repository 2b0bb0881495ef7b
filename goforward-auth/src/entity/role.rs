//! `auth_roles`: named RBAC roles a user can be assigned.

use sea_orm::entity::prelude::*;

/// One role.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_roles")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique name (`[a-z][a-z0-9_-]*`, at most 64 characters), as it appears
    /// in `app_metadata.roles`.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update.
    pub updated_at: DateTimeUtc,
}

/// `auth_roles` relations are declared on the join tables.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
