//! `auth_sessions`: one per sign-in per device.

use sea_orm::entity::prelude::*;

/// A signed-in session.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_sessions")]
pub struct Model {
    /// UUID (the `session_id` claim).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning user.
    pub user_id: String,
    /// Assurance level (`aal1`, `aal2`).
    pub aal: String,
    /// The MFA factor that raised the session to aal2 (room for MFA).
    pub factor_id: Option<String>,
    /// Authentication methods as JSON text: `[{"method","timestamp"}]`, newest first.
    pub amr: String,
    /// Absolute end of the session.
    pub not_after: Option<DateTimeUtc>,
    /// Last refresh.
    pub refreshed_at: Option<DateTimeUtc>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update.
    pub updated_at: DateTimeUtc,
}

/// Relations of `auth_sessions`.
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
