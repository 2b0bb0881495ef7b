//! `auth_mfa_challenges`: single-use, short-lived challenges of a factor.

use sea_orm::entity::prelude::*;

/// One challenge.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_mfa_challenges")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The challenged factor.
    pub factor_id: String,
    /// Client IP that asked for it.
    pub ip: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// When it was answered (then it cannot be used again).
    pub verified_at: Option<DateTimeUtc>,
    /// A phone factor's SMS code, hashed (hex SHA-256 of the challenge id and
    /// the code); `None` for TOTP.
    pub otp_code: Option<String>,
    /// Wrong codes entered against this challenge (phone factors).
    pub attempts: i32,
}

/// Relations of `auth_mfa_challenges`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The factor.
    #[sea_orm(
        belongs_to = "super::mfa_factor::Entity",
        from = "Column::FactorId",
        to = "super::mfa_factor::Column::Id",
        on_delete = "Cascade"
    )]
    Factor,
}

impl Related<super::mfa_factor::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Factor.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
