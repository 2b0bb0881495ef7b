//! Users, identities, sessions, refresh tokens, one-time tokens, audit log.

use sea_orm_migration::prelude::*;

/// Creates the core auth tables.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20250601_000001_create_auth_tables"
    }
}

fn id() -> ColumnDef {
    ColumnDef::new(Alias::new("id"))
        .string_len(36)
        .not_null()
        .primary_key()
        .to_owned()
}

fn uuid_col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .string_len(36)
        .not_null()
        .to_owned()
}

fn ts(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn ts_not_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().null().to_owned()
}

fn text_not_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .text()
        .not_null()
        .to_owned()
}

fn fk(from_table: &str, column: &str, to_table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{column}"))
        .from(Alias::new(from_table), Alias::new(column))
        .to(Alias::new(to_table), Alias::new("id"))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(table: &str, columns: &[&str], unique: bool) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("idx_{table}_{}", columns.join("_")))
        .table(Alias::new(table));
    for c in columns {
        stmt.col(Alias::new(*c));
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

const TABLES: [&str; 6] = [
    "auth_audit_log",
    "auth_one_time_tokens",
    "auth_refresh_tokens",
    "auth_sessions",
    "auth_identities",
    "auth_users",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_users"))
                    .col(id())
                    .col(ColumnDef::new(Alias::new("aud")).string_len(255).not_null())
                    .col(
                        ColumnDef::new(Alias::new("role"))
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("email")).string_len(255).null())
                    .col(ColumnDef::new(Alias::new("phone")).string_len(32).null())
                    .col(text("encrypted_password"))
                    .col(ts("email_confirmed_at"))
                    .col(ts("phone_confirmed_at"))
                    .col(ts("invited_at"))
                    .col(ts("confirmation_sent_at"))
                    .col(ts("recovery_sent_at"))
                    .col(
                        ColumnDef::new(Alias::new("email_change"))
                            .string_len(255)
                            .null(),
                    )
                    .col(ts("email_change_sent_at"))
                    .col(ts("last_sign_in_at"))
                    .col(text_not_null("raw_app_meta_data"))
                    .col(text_not_null("raw_user_meta_data"))
                    .col(
                        ColumnDef::new(Alias::new("is_anonymous"))
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ts("banned_until"))
                    .col(
                        ColumnDef::new(Alias::new("failed_sign_ins"))
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts("failed_sign_ins_since"))
                    .col(ts_not_null("created_at"))
                    .col(ts_not_null("updated_at"))
                    .col(ts("deleted_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_users", &["email"], true))
            .await?;
        manager
            .create_index(index("auth_users", &["phone"], true))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_identities"))
                    .col(id())
                    .col(text_not_null("provider_id"))
                    .col(uuid_col("user_id"))
                    .col(text_not_null("identity_data"))
                    .col(
                        ColumnDef::new(Alias::new("provider"))
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("email")).string_len(255).null())
                    .col(ts("last_sign_in_at"))
                    .col(ts_not_null("created_at"))
                    .col(ts_not_null("updated_at"))
                    .foreign_key(&mut fk("auth_identities", "user_id", "auth_users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_identities", &["provider", "provider_id"], true))
            .await?;
        manager
            .create_index(index("auth_identities", &["user_id"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_sessions"))
                    .col(id())
                    .col(uuid_col("user_id"))
                    .col(ColumnDef::new(Alias::new("aal")).string_len(16).not_null())
                    .col(
                        ColumnDef::new(Alias::new("factor_id"))
                            .string_len(36)
                            .null(),
                    )
                    .col(text_not_null("amr"))
                    .col(ts("not_after"))
                    .col(ts("refreshed_at"))
                    .col(text("user_agent"))
                    .col(ColumnDef::new(Alias::new("ip")).string_len(64).null())
                    .col(ts_not_null("created_at"))
                    .col(ts_not_null("updated_at"))
                    .foreign_key(&mut fk("auth_sessions", "user_id", "auth_users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_sessions", &["user_id"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_refresh_tokens"))
                    .col(id())
                    .col(
                        ColumnDef::new(Alias::new("token_hash"))
                            .string_len(64)
                            .not_null(),
                    )
                    .col(uuid_col("user_id"))
                    .col(uuid_col("session_id"))
                    .col(ColumnDef::new(Alias::new("parent")).string_len(36).null())
                    .col(
                        ColumnDef::new(Alias::new("revoked"))
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ts_not_null("created_at"))
                    .col(ts_not_null("updated_at"))
                    .foreign_key(&mut fk(
                        "auth_refresh_tokens",
                        "session_id",
                        "auth_sessions",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_refresh_tokens", &["token_hash"], true))
            .await?;
        manager
            .create_index(index("auth_refresh_tokens", &["session_id"], false))
            .await?;
        manager
            .create_index(index("auth_refresh_tokens", &["parent"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_one_time_tokens"))
                    .col(id())
                    .col(uuid_col("user_id"))
                    .col(
                        ColumnDef::new(Alias::new("token_type"))
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("token_hash"))
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("relates_to"))
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Alias::new("attempts"))
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts_not_null("created_at"))
                    .col(ts_not_null("expires_at"))
                    .foreign_key(&mut fk("auth_one_time_tokens", "user_id", "auth_users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "auth_one_time_tokens",
                &["user_id", "token_type"],
                true,
            ))
            .await?;
        manager
            .create_index(index("auth_one_time_tokens", &["token_hash"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_audit_log"))
                    .col(id())
                    .col(ColumnDef::new(Alias::new("actor_id")).string_len(36).null())
                    .col(
                        ColumnDef::new(Alias::new("action"))
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Alias::new("ip")).string_len(64).null())
                    .col(text_not_null("payload"))
                    .col(ts_not_null("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_audit_log", &["created_at"], false))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
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
