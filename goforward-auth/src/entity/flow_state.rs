//! `auth_flow_state`: PKCE flows started by `/signup`, `/otp` or `/recover`
//! with a `code_challenge`, finished by `POST /token?grant_type=pkce`.

use sea_orm::entity::prelude::*;

/// One PKCE flow.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_flow_state")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The user the flow signs in.
    pub user_id: String,
    /// Hex SHA-256 of the issued auth code (set when the email link is followed).
    pub auth_code_hash: Option<String>,
    /// The client's code challenge.
    pub code_challenge: String,
    /// `s256` or `plain`.
    pub code_challenge_method: String,
    /// How the flow authenticates (`signup`, `magiclink`, `recovery`, …), the session's AMR method.
    pub authentication_method: String,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// When the auth code was issued.
    pub auth_code_issued_at: Option<DateTimeUtc>,
}

/// Relations of `auth_flow_state`.
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
