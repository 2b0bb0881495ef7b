//! `auth_api_keys`: service-account API keys (`gf_sa_<public_id>_<secret>`),
//! stored as the SHA-256 of the secret and looked up by the public id.

use sea_orm::entity::prelude::*;

/// One API key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_api_keys")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The public part of the key (16 lower-case hex characters), unique.
    pub public_id: String,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// Human-readable name.
    pub name: String,
    /// The role the key acts as (`service_role` or a custom role).
    pub role: String,
    /// Scopes as a JSON array of strings (carried in the `scopes` claim).
    pub scopes: String,
    /// The user who created it (`None` for the service_role key or the CLI).
    pub created_by: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
    /// Refused from this instant on, when set.
    pub expires_at: Option<DateTimeUtc>,
    /// Last accepted use (updated at most once a minute).
    pub last_used_at: Option<DateTimeUtc>,
    /// Refused since this instant, when set.
    pub revoked_at: Option<DateTimeUtc>,
}

/// `auth_api_keys` has no relations (a key outlives its creator's account).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
