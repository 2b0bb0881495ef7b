//! Phone changes (`auth_users.phone_change`, `phone_change_sent_at`) and
//! MFA phone factors (`auth_mfa_factors.phone`, the challenge's hashed SMS
//! code and its wrong-code counter).

use sea_orm_migration::prelude::*;

/// Adds the phone-change and phone-factor columns.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20251124_000004_phone_change_and_mfa_phone"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

/// One `ALTER TABLE … ADD COLUMN` per column (SQLite takes one at a time).
fn additions() -> Vec<(&'static str, ColumnDef)> {
    vec![
        (
            "auth_users",
            col("phone_change").string_len(32).null().to_owned(),
        ),
        (
            "auth_users",
            col("phone_change_sent_at")
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ),
        (
            "auth_mfa_factors",
            col("phone").string_len(32).null().to_owned(),
        ),
        (
            "auth_mfa_challenges",
            col("otp_code").string_len(64).null().to_owned(),
        ),
        (
            "auth_mfa_challenges",
            col("attempts").integer().not_null().default(0).to_owned(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut column) in additions() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in additions().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
