//! `auth_audit_log`: security-relevant actions.

use sea_orm::entity::prelude::*;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_audit_log")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Who acted (user id), if known.
    pub actor_id: Option<String>,
    /// What happened (`user_signedup`, `login`, `logout`, `token_revoked`, …).
    pub action: String,
    /// Client IP.
    pub ip: Option<String>,
    /// Details as JSON text.
    pub payload: String,
    /// When.
    pub created_at: DateTimeUtc,
}

/// `auth_audit_log` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
