//! `auth_users`: one row per account.

use sea_orm::entity::prelude::*;

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_users")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Audience (`authenticated`).
    pub aud: String,
    /// Database role claimed in tokens (`authenticated`).
    pub role: String,
    /// Lower-cased email address.
    pub email: Option<String>,
    /// Phone number (E.164 digits).
    pub phone: Option<String>,
    /// bcrypt hash of the password.
    pub encrypted_password: Option<String>,
    /// When the email was confirmed.
    pub email_confirmed_at: Option<DateTimeUtc>,
    /// When the phone was confirmed.
    pub phone_confirmed_at: Option<DateTimeUtc>,
    /// When the user was invited.
    pub invited_at: Option<DateTimeUtc>,
    /// When the last confirmation message was sent.
    pub confirmation_sent_at: Option<DateTimeUtc>,
    /// When the last recovery message was sent.
    pub recovery_sent_at: Option<DateTimeUtc>,
    /// Pending new email address.
    pub email_change: Option<String>,
    /// When the email change messages were sent.
    pub email_change_sent_at: Option<DateTimeUtc>,
    /// Pending new phone number (E.164 digits), confirmed by an SMS code.
    pub phone_change: Option<String>,
    /// When the phone change code was sent.
    pub phone_change_sent_at: Option<DateTimeUtc>,
    /// Last sign-in.
    pub last_sign_in_at: Option<DateTimeUtc>,
    /// `app_metadata` as JSON text (server-only).
    pub raw_app_meta_data: String,
    /// `user_metadata` as JSON text (user-writable).
    pub raw_user_meta_data: String,
    /// Signed in anonymously and not converted yet.
    pub is_anonymous: bool,
    /// Banned until this instant.
    pub banned_until: Option<DateTimeUtc>,
    /// Failed password sign-ins in the current lockout window.
    pub failed_sign_ins: i32,
    /// Start of the current lockout window.
    pub failed_sign_ins_since: Option<DateTimeUtc>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Last update.
    pub updated_at: DateTimeUtc,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTimeUtc>,
}

/// Relations of `auth_users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's identities.
    #[sea_orm(has_many = "super::identity::Entity")]
    Identity,
    /// The user's sessions.
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
    /// The user's MFA factors.
    #[sea_orm(has_many = "super::mfa_factor::Entity")]
    MfaFactor,
}

impl Related<super::identity::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Identity.def()
    }
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::mfa_factor::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MfaFactor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
