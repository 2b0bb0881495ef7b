//! `auth_one_time_tokens`: email OTPs and link tokens, stored hashed.

use sea_orm::entity::prelude::*;

/// One pending one-time token; at most one per user and type.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_one_time_tokens")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning user.
    pub user_id: String,
    /// Purpose: `confirmation`, `recovery`, `magiclink`, `email_change_new`,
    /// `email_change_current`, `invite`.
    pub token_type: String,
    /// Hex SHA-256 of `relates_to` + the OTP (also the link's `token_hash`).
    pub token_hash: String,
    /// The address the token was sent to.
    pub relates_to: String,
    /// Wrong codes entered for this address and purpose so far.
    pub attempts: i32,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Expiry.
    pub expires_at: DateTimeUtc,
}

/// Relations of `auth_one_time_tokens`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The owning user.
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
