//! `auth_role_permissions`: which permissions a role grants.

use sea_orm::entity::prelude::*;

/// One grant of a permission to a role.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_role_permissions")]
pub struct Model {
    /// The role.
    #[sea_orm(primary_key, auto_increment = false)]
    pub role_id: String,
    /// The permission.
    #[sea_orm(primary_key, auto_increment = false)]
    pub permission_id: String,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// Relations of `auth_role_permissions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The role.
    #[sea_orm(
        belongs_to = "super::role::Entity",
        from = "Column::RoleId",
        to = "super::role::Column::Id",
        on_delete = "Cascade"
    )]
    Role,
    /// The permission.
    #[sea_orm(
        belongs_to = "super::permission::Entity",
        from = "Column::PermissionId",
        to = "super::permission::Column::Id",
        on_delete = "Cascade"
    )]
    Permission,
}

impl Related<super::role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Role.def()
    }
}

impl Related<super::permission::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Permission.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
