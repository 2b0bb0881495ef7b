//! MFA recovery codes.

use sea_orm_migration::prelude::*;

/// Creates `auth_mfa_recovery_codes`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20251124_000002_create_mfa_recovery_codes"
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
                    .table(Alias::new("auth_mfa_recovery_codes"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("user_id").string_len(36).not_null())
                    .col(col("code_hash").string_len(64).not_null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("used_at").timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_auth_mfa_recovery_codes_user_id")
                            .from(Alias::new("auth_mfa_recovery_codes"), Alias::new("user_id"))
                            .to(Alias::new("auth_users"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_mfa_recovery_codes_user_id_code_hash")
                    .table(Alias::new("auth_mfa_recovery_codes"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("code_hash"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("auth_mfa_recovery_codes"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
