//! `auth_identities`: how a user signs in (email, phone, anonymous, OAuth…).

use sea_orm::entity::prelude::*;

/// One identity of a user at one provider.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_identities")]
pub struct Model {
    /// UUID (GoTrue's `identity_id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The provider's id for the user (GoTrue's `id`); the user id for `email`.
    pub provider_id: String,
    /// Owning user.
    pub user_id: String,
    /// Provider data as JSON text (`sub`, `email`, `email_verified`, …).
    pub identity_data: String,
    /// Provider name (`email`, `phone`, …).
    pub provider: String,
    /// Email at the provider.
    pub email: Option<String>,
    /// Last sign-in through this identity.
    pub last_sign_in_at: Option<DateTimeUtc>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update.
    pub updated_at: DateTimeUtc,
}

/// Relations of `auth_identities`.
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
