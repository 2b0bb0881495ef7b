//! Creates `realtime_messages`: broadcasts stored for replay (portable SQLite / PostgreSQL DDL).

use goforward_core::sea_orm_migration::prelude::*;

/// `m20261124_000002_create_realtime_messages`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261124_000002_create_realtime_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("realtime_messages")
                .col(ColumnDef::new("id").text().not_null().primary_key())
                .col(ColumnDef::new("topic").text().not_null())
                .col(ColumnDef::new("event").text().not_null())
                .col(ColumnDef::new("payload").json())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new("expires_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("realtime_messages_topic_created_at")
                .table("realtime_messages")
                .col("topic")
                .col("created_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("realtime_messages").to_owned())
            .await
    }
}
