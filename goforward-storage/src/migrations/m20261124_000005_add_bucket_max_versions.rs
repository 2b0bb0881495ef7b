//! Adds `max_versions` (retention limit of kept versions) to `storage_buckets`.

use sea_orm_migration::prelude::*;

/// `m20261124_000005_add_bucket_max_versions`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000005_add_bucket_max_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .add_column(ColumnDef::new("max_versions").big_integer())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .drop_column("max_versions")
                .to_owned(),
        )
        .await
    }
}
