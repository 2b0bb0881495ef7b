//! The realtime plugin's migrations (ledger `goforward_migrations_realtime`).

mod m20261124_000001_create_notify_function;
mod m20261124_000002_create_realtime_messages;

use goforward_core::sea_orm_migration::MigrationTrait;

/// Every migration, in order.
pub(crate) fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261124_000001_create_notify_function::Migration),
        Box::new(m20261124_000002_create_realtime_messages::Migration),
    ]
}
