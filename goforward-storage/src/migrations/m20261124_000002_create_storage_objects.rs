//! Creates `storage_objects` with its unique `(bucket_id, name)` index
//! (portable SQLite / PostgreSQL DDL).

use sea_orm_migration::prelude::*;

/// `m20261124_000002_create_storage_objects`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_create_storage_objects"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("storage_objects")
                .col(ColumnDef::new("id").uuid().not_null().primary_key())
                .col(ColumnDef::new("bucket_id").text().not_null())
                .col(ColumnDef::new("name").text().not_null())
                .col(ColumnDef::new("owner").text())
                .col(ColumnDef::new("metadata").json().not_null())
                .col(ColumnDef::new("user_metadata").json())
                .col(ColumnDef::new("version").uuid().not_null())
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
                .col(
                    ColumnDef::new("last_accessed_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_storage_objects_bucket")
                        .from("storage_objects", "bucket_id")
                        .to("storage_buckets", "id")
                        .on_delete(ForeignKeyAction::Restrict)
                        .on_update(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_storage_objects_bucket_name")
                .table("storage_objects")
                .col("bucket_id")
                .col("name")
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("storage_objects").to_owned())
            .await
    }
}
