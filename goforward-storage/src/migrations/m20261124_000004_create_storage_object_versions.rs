//! Creates `storage_object_versions`: the previous versions of objects in
//! versioned buckets (portable SQLite / PostgreSQL DDL).

use sea_orm_migration::prelude::*;

/// `m20261124_000004_create_storage_object_versions`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000004_create_storage_object_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("storage_object_versions")
                .col(ColumnDef::new("version").uuid().not_null().primary_key())
                .col(ColumnDef::new("object_id").uuid().not_null())
                .col(ColumnDef::new("owner").text())
                .col(ColumnDef::new("size").big_integer().not_null())
                .col(ColumnDef::new("metadata").json().not_null())
                .col(ColumnDef::new("user_metadata").json())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new("archived_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_storage_object_versions_object")
                        .from("storage_object_versions", "object_id")
                        .to("storage_objects", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .on_update(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_storage_object_versions_object")
                .table("storage_object_versions")
                .col("object_id")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("storage_object_versions").to_owned())
            .await
    }
}
