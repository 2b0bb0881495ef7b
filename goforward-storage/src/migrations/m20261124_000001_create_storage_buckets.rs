//! Creates `storage_buckets` (portable SQLite / PostgreSQL DDL).

use sea_orm_migration::prelude::*;

/// `m20261124_000001_create_storage_buckets`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000001_create_storage_buckets"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("storage_buckets")
                .col(ColumnDef::new("id").text().not_null().primary_key())
                .col(ColumnDef::new("name").text().not_null())
                .col(ColumnDef::new("public").boolean().not_null().default(false))
                .col(ColumnDef::new("file_size_limit").big_integer())
                .col(ColumnDef::new("allowed_mime_types").json())
                .col(ColumnDef::new("owner").text())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("storage_buckets").to_owned())
            .await
    }
}
