//! Adds `versioning`, `quota` and `owner_quota` to `storage_buckets` (portable SQLite /
//! PostgreSQL DDL: one column per statement).

use sea_orm_migration::prelude::*;

/// `m20261124_000003_add_bucket_versioning_quota`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000003_add_bucket_versioning_quota"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .add_column(
                    ColumnDef::new("versioning")
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .add_column(ColumnDef::new("quota").big_integer())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .add_column(ColumnDef::new("owner_quota").big_integer())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .drop_column("owner_quota")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .drop_column("quota")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("storage_buckets")
                .drop_column("versioning")
                .to_owned(),
        )
        .await
    }
}
