//! `auth_oauth_state`: an OAuth2 / OIDC sign-in between `/authorize` and
//! `/callback` (single use, at most 10 minutes old).

use sea_orm::entity::prelude::*;

/// One pending OAuth sign-in.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_oauth_state")]
pub struct Model {
    /// UUID.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Hex SHA-256 of the `state` parameter sent to the provider.
    pub state_hash: String,
    /// The provider's configured name.
    pub provider: String,
    /// Our PKCE verifier towards the provider (useless without the provider's code).
    pub pkce_verifier: String,
    /// Where the browser goes after the callback (already allow-listed).
    pub redirect_to: String,
    /// The client's PKCE challenge (supabase-js `flowType: 'pkce'`), if any.
    pub code_challenge: Option<String>,
    /// `s256` or `plain` with `code_challenge`.
    pub code_challenge_method: Option<String>,
    /// Creation time.
    pub created_at: DateTimeUtc,
}

/// `auth_oauth_state` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
