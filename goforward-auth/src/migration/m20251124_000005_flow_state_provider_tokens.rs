//! The provider's tokens kept with an OAuth PKCE flow until the code
//! exchange (`auth_flow_state.provider_access_token`,
//! `provider_refresh_token`), sealed with AES-256-GCM (see `crate::pkce`).

use sea_orm_migration::prelude::*;

/// Adds the sealed provider-token columns.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20251124_000005_flow_state_provider_tokens"
    }
}

const COLUMNS: [&str; 2] = ["provider_access_token", "provider_refresh_token"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One `ALTER TABLE … ADD COLUMN` per column (SQLite takes one at a time).
        for name in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("auth_flow_state"))
                        .add_column(ColumnDef::new(Alias::new(name)).text().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in COLUMNS.into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("auth_flow_state"))
                        .drop_column(Alias::new(name))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
