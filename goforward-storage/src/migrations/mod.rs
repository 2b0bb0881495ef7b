//! The storage plugin's migrations (ledger `goforward_migrations_storage`).

mod m20261124_000001_create_storage_buckets;
mod m20261124_000002_create_storage_objects;
mod m20261124_000003_add_bucket_versioning_quota;
mod m20261124_000004_create_storage_object_versions;
mod m20261124_000005_add_bucket_max_versions;

use sea_orm_migration::MigrationTrait;

/// Every migration, in order.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261124_000001_create_storage_buckets::Migration),
        Box::new(m20261124_000002_create_storage_objects::Migration),
        Box::new(m20261124_000003_add_bucket_versioning_quota::Migration),
        Box::new(m20261124_000004_create_storage_object_versions::Migration),
        Box::new(m20261124_000005_add_bucket_max_versions::Migration),
    ]
}
