//! `auth_mfa_recovery_codes`: single-use MFA recovery codes, stored hashed.

use sea_orm::entity::prelude::*;

/// One recovery code.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_mfa_recovery_codes")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The user.
    pub user_id: String,
    /// Hex SHA-256 of `<user id>:<normalized code>`.
    pub code_hash: String,
    /// When the set was generated.
    pub created_at: DateTimeUtc,
    /// When it was used (then never again).
    pub used_at: Option<DateTimeUtc>,
}

/// Relations of `auth_mfa_recovery_codes`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
