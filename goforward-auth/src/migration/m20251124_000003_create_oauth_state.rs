//! OAuth2 / OIDC sign-in state (between `/authorize` and `/callback`).

use sea_orm_migration::prelude::*;

/// Creates `auth_oauth_state`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20251124_000003_create_oauth_state"
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
                    .table(Alias::new("auth_oauth_state"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("state_hash").string_len(64).not_null())
                    .col(col("provider").string_len(64).not_null())
                    .col(col("pkce_verifier").string_len(128).not_null())
                    .col(col("redirect_to").text().not_null())
                    .col(col("code_challenge").string_len(128).null())
                    .col(col("code_challenge_method").string_len(8).null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_oauth_state_state_hash")
                    .table(Alias::new("auth_oauth_state"))
                    .col(Alias::new("state_hash"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("auth_oauth_state"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
