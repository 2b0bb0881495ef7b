//! MFA factors and challenges.

use sea_orm_migration::prelude::*;

/// Creates `auth_mfa_factors` and `auth_mfa_challenges`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250601_000002_create_mfa_tables"
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
                    .table(Alias::new("auth_mfa_factors"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("user_id").string_len(36).not_null())
                    .col(col("friendly_name").string_len(255).null())
                    .col(col("factor_type").string_len(16).not_null())
                    .col(col("status").string_len(16).not_null())
                    .col(col("secret").text().not_null())
                    .col(col("last_used_step").big_integer().null())
                    .col(col("last_challenged_at").timestamp_with_time_zone().null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("updated_at").timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_auth_mfa_factors_user_id")
                            .from(Alias::new("auth_mfa_factors"), Alias::new("user_id"))
                            .to(Alias::new("auth_users"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_mfa_factors_user_id_friendly_name")
                    .table(Alias::new("auth_mfa_factors"))
                    .col(Alias::new("user_id"))
                    .col(Alias::new("friendly_name"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_mfa_challenges"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("factor_id").string_len(36).not_null())
                    .col(col("ip").string_len(64).null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("verified_at").timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_auth_mfa_challenges_factor_id")
                            .from(Alias::new("auth_mfa_challenges"), Alias::new("factor_id"))
                            .to(Alias::new("auth_mfa_factors"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_auth_mfa_challenges_factor_id")
                    .table(Alias::new("auth_mfa_challenges"))
                    .col(Alias::new("factor_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["auth_mfa_challenges", "auth_mfa_factors"] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
