//! `auth_mfa_factors`: enrolled second factors (TOTP, phone).

use sea_orm::entity::prelude::*;

/// One MFA factor of a user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_mfa_factors")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning user.
    pub user_id: String,
    /// Name the user gave it (unique per user).
    pub friendly_name: Option<String>,
    /// `totp` or `phone`.
    pub factor_type: String,
    /// `unverified` until the first successful verification, then `verified`.
    pub status: String,
    /// The TOTP secret, AES-256-GCM encrypted (base64 of nonce ‖ ciphertext);
    /// empty for a phone factor.
    pub secret: String,
    /// A phone factor's number (E.164 digits).
    pub phone: Option<String>,
    /// The last accepted TOTP time step (each step is accepted once).
    pub last_used_step: Option<i64>,
    /// Last challenge.
    pub last_challenged_at: Option<DateTimeUtc>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update.
    pub updated_at: DateTimeUtc,
}

/// Relations of `auth_mfa_factors`.
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
