//! The auth plugin's migrations (ledger `goforward_migrations_auth`).
//!
//! Built with sea-query's schema builders so the same code creates the
//! tables on SQLite and PostgreSQL. API keys and RBAC come in later migrations.

mod m20250601_000001_create_auth_tables;
mod m20250601_000002_create_mfa_tables;
mod m20250601_000003_create_flow_state;

use sea_orm_migration::MigrationTrait;

/// Every auth migration, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20250601_000001_create_auth_tables::Migration),
        Box::new(m20250601_000002_create_mfa_tables::Migration),
        Box::new(m20250601_000003_create_flow_state::Migration),
    ]
}
