//! PKCE flow state.

use sea_orm_migration::prelude::*;

/// Creates `auth_flow_state`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250601_000003_create_flow_state"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_flow_state"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("user_id").string_len(36).not_null())
                    .col(col("auth_code_hash").string_len(64).null())
                    .col(col("code_challenge").string_len(128).not_null())
                    .col(col("code_challenge_method").string_len(8).not_null())
                    .col(col("authentication_method").string_len(32).not_null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("auth_code_issued_at").timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_auth_flow_state_user_id")
                            .from(Alias::new("auth_flow_state"), Alias::new("user_id"))
                            .to(Alias::new("auth_users"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_flow_state_auth_code_hash")
                    .table(Alias::new("auth_flow_state"))
                    .col(Alias::new("auth_code_hash"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_flow_state_user_id")
                    .table(Alias::new("auth_flow_state"))
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("auth_flow_state"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
