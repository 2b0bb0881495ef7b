//! `m20260101_000001_create_demo_schema`: portable DDL (SQLite and PostgreSQL) via sea-query.

use goforward::sea_orm_migration::prelude::*;

pub struct CreateDemoSchema;

impl MigrationName for CreateDemoSchema {
    fn name(&self) -> &str {
        "m20260101_000001_create_demo_schema"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateDemoSchema {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let now = || Expr::current_timestamp();
        m.create_table(
            Table::create()
                .table("profiles")
                .col(ColumnDef::new("id").uuid().not_null().primary_key())
                .col(ColumnDef::new("username").text().not_null().unique_key())
                .col(ColumnDef::new("bio").text())
                .col(ColumnDef::new("avatar_url").text())
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .default(now()),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("todos")
                .col(
                    ColumnDef::new("id")
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new("user_id").uuid().not_null())
                .col(ColumnDef::new("title").text().not_null())
                .col(ColumnDef::new("done").boolean().not_null().default(false))
                .col(ColumnDef::new("priority").integer())
                .col(
                    ColumnDef::new("inserted_at")
                        .timestamp_with_time_zone()
                        .not_null()
                        .default(now()),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("messages")
                .col(
                    ColumnDef::new("id")
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new("room").text().not_null())
                .col(ColumnDef::new("user_id").uuid().not_null())
                .col(ColumnDef::new("body").text().not_null())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null()
                        .default(now()),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("messages", "user_id")
                        .to("profiles", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["messages", "todos", "profiles"] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
