//! `auth_refresh_tokens`: opaque refresh tokens, stored as SHA-256 hashes.

use sea_orm::entity::prelude::*;

/// One refresh token of a session's rotation chain.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_refresh_tokens")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Hex SHA-256 of the token (the token itself is never stored).
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Owning user.
    pub user_id: String,
    /// Session (the token family).
    pub session_id: String,
    /// Id of the token this one replaced.
    pub parent: Option<String>,
    /// Rotated or revoked.
    pub revoked: bool,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update (revocation time once revoked).
    pub updated_at: DateTimeUtc,
}

/// Relations of `auth_refresh_tokens`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The session (family).
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::SessionId",
        to = "super::session::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
