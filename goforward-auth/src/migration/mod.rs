//! The auth plugin's migrations (ledger `goforward_migrations_auth`).
//!
//! Built with sea-query's schema builders so the same code creates the
//! tables on SQLite and PostgreSQL.

mod m20250601_000001_create_auth_tables;
mod m20250601_000002_create_mfa_tables;
mod m20250601_000003_create_flow_state;
mod m20251124_000001_create_rbac_and_api_keys;
mod m20251124_000002_create_mfa_recovery_codes;
mod m20251124_000003_create_oauth_state;
mod m20251124_000004_phone_change_and_mfa_phone;
mod m20251124_000005_flow_state_provider_tokens;

use sea_orm_migration::MigrationTrait;

/// Every auth migration, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20250601_000001_create_auth_tables::Migration),
        Box::new(m20250601_000002_create_mfa_tables::Migration),
        Box::new(m20250601_000003_create_flow_state::Migration),
        Box::new(m20251124_000001_create_rbac_and_api_keys::Migration),
        Box::new(m20251124_000002_create_mfa_recovery_codes::Migration),
        Box::new(m20251124_000003_create_oauth_state::Migration),
        Box::new(m20251124_000004_phone_change_and_mfa_phone::Migration),
        Box::new(m20251124_000005_flow_state_provider_tokens::Migration),
    ]
}
