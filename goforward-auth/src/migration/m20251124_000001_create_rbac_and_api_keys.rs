//! RBAC (roles, permissions, assignments) and service-account API keys.

use sea_orm_migration::prelude::*;

/// Creates `auth_roles`, `auth_permissions`, `auth_role_permissions`,
/// `auth_user_roles` and `auth_api_keys`.
pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20251124_000001_create_rbac_and_api_keys"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
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

/// Dropped in this order by `down` (join tables first).
const TABLES: [&str; 5] = [
    "auth_api_keys",
    "auth_user_roles",
    "auth_role_permissions",
    "auth_permissions",
    "auth_roles",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_roles"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("name").string_len(64).not_null())
                    .col(col("description").text().null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("updated_at").timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_roles", &["name"], true))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_permissions"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("name").string_len(128).not_null())
                    .col(col("description").text().null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_permissions", &["name"], true))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_role_permissions"))
                    .col(col("role_id").string_len(36).not_null())
                    .col(col("permission_id").string_len(36).not_null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("role_id"))
                            .col(Alias::new("permission_id")),
                    )
                    .foreign_key(&mut fk("auth_role_permissions", "role_id", "auth_roles"))
                    .foreign_key(&mut fk(
                        "auth_role_permissions",
                        "permission_id",
                        "auth_permissions",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_role_permissions", &["permission_id"], false))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_user_roles"))
                    .col(col("user_id").string_len(36).not_null())
                    .col(col("role_id").string_len(36).not_null())
                    .col(col("granted_by").string_len(36).null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("user_id"))
                            .col(Alias::new("role_id")),
                    )
                    .foreign_key(&mut fk("auth_user_roles", "user_id", "auth_users"))
                    .foreign_key(&mut fk("auth_user_roles", "role_id", "auth_roles"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_user_roles", &["role_id"], false))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("auth_api_keys"))
                    .col(col("id").string_len(36).not_null().primary_key())
                    .col(col("public_id").string_len(32).not_null())
                    .col(col("secret_hash").string_len(64).not_null())
                    .col(col("name").string_len(128).not_null())
                    .col(col("role").string_len(64).not_null())
                    .col(col("scopes").text().not_null())
                    .col(col("created_by").string_len(36).null())
                    .col(col("created_at").timestamp_with_time_zone().not_null())
                    .col(col("expires_at").timestamp_with_time_zone().null())
                    .col(col("last_used_at").timestamp_with_time_zone().null())
                    .col(col("revoked_at").timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("auth_api_keys", &["public_id"], true))
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
