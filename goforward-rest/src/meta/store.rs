//! The ledger of applied changes (`goforward_meta_changes`) and of table
//! exposure policies (`goforward_meta_policies`), and the executor that
//! applies a change and records it in one transaction.

use goforward_core::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, sqlx,
};
use goforward_core::sea_orm_migration::{MigrationTrait, prelude::*};
use goforward_core::sea_query::{
    Alias, Expr, Order, PostgresQueryBuilder, Query, SqliteQueryBuilder, Value as SeaValue, Values,
};
use serde::Serialize;

use super::ddl::Change;
use super::error::{MetaError, Result};

/// Table of applied changes.
pub const CHANGES: &str = "goforward_meta_changes";
/// Table of exposure policies set through the API.
pub const POLICIES: &str = "goforward_meta_policies";

/// The meta plugin's migrations (ledger `goforward_migrations_meta`).
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateLedger),
        Box::new(super::sql::CreateSqlTables),
    ]
}

struct CreateLedger;

impl MigrationName for CreateLedger {
    fn name(&self) -> &str {
        "m20261124_000001_create_meta_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateLedger {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(CHANGES)
                .col(
                    ColumnDef::new("id")
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new("name").text().not_null())
                .col(ColumnDef::new("up_sql").text().not_null())
                .col(ColumnDef::new("down_sql").text())
                .col(ColumnDef::new("applied_by").text())
                .col(ColumnDef::new("applied_at").text().not_null())
                .col(ColumnDef::new("reverted_at").text())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(POLICIES)
                .col(ColumnDef::new("table_name").text().not_null().primary_key())
                .col(ColumnDef::new("policy").text().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(POLICIES).to_owned())
            .await?;
        m.drop_table(Table::drop().table(CHANGES).to_owned()).await
    }
}

/// One recorded change.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// Sequence number.
    pub id: i64,
    /// Short name.
    pub name: String,
    /// Statements that applied it.
    pub up: Vec<String>,
    /// Statements that undo it (`null`: irreversible).
    pub down: Option<Vec<String>>,
    /// Who applied it (user id or `service_role`).
    pub applied_by: Option<String>,
    /// RFC 3339.
    pub applied_at: String,
    /// RFC 3339, when reverted.
    pub reverted_at: Option<String>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn build<S>(stmt: &S, backend: DbBackend) -> (String, Values)
where
    S: goforward_core::sea_query::QueryStatementWriter,
{
    match backend {
        DbBackend::Postgres => stmt.build(PostgresQueryBuilder),
        _ => stmt.build(SqliteQueryBuilder),
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    values: Values,
) -> Result<sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>> {
    for v in values.0 {
        q = match v {
            SeaValue::String(s) => q.bind(s),
            SeaValue::BigInt(i) => q.bind(i),
            other => {
                return Err(MetaError::Core(goforward_core::Error::Internal(format!(
                    "unexpected bound value {other:?}"
                ))));
            }
        };
    }
    Ok(q)
}

fn insert_change(
    change: &Change,
    who: Option<&str>,
) -> Result<goforward_core::sea_query::InsertStatement> {
    let up = serde_json::to_string(&change.up).map_err(|e| internal(e.to_string()))?;
    let down = change
        .down
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| internal(e.to_string()))?;
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(CHANGES))
        .columns(["name", "up_sql", "down_sql", "applied_by", "applied_at"].map(Alias::new))
        .values([
            change.name.clone().into(),
            up.into(),
            down.into(),
            who.map(str::to_owned).into(),
            now().into(),
        ])
        .map_err(|e| internal(e.to_string()))?;
    Ok(stmt)
}

fn internal(msg: String) -> MetaError {
    MetaError::Core(goforward_core::Error::Internal(msg))
}

/// What to record with the statements.
pub enum Record<'a> {
    /// A new change, applied by `who`.
    Apply(&'a Change, Option<&'a str>),
    /// Reverting migration `id`.
    Revert(i64),
    /// Nothing (data statements such as truncate).
    Nothing,
}

/// Runs `statements` in one transaction and records it; returns the new
/// migration id for [`Record::Apply`]. On SQLite, foreign key enforcement
/// is off for the duration (table rebuilds, as SQLite prescribes) and
/// `PRAGMA foreign_key_check` must come back empty before commit.
///
/// # Errors
/// A failing statement (classified), violated foreign keys, database faults.
pub async fn apply(
    db: &DatabaseConnection,
    statements: &[String],
    record: Record<'_>,
) -> Result<Option<i64>> {
    let backend = db.get_database_backend();
    let mark_reverted = |id: i64| {
        let mut stmt = Query::update();
        stmt.table(Alias::new(CHANGES))
            .value(Alias::new("reverted_at"), now())
            .and_where(Expr::col(Alias::new("id")).eq(id));
        stmt
    };
    match backend {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            // One prepared statement each: PostgreSQL refuses several
            // commands in one, so nothing can ride along.
            for s in statements {
                txn.execute_raw(Statement::from_string(backend, s.clone()))
                    .await?;
            }
            let id = match record {
                Record::Apply(change, who) => {
                    let mut stmt = insert_change(change, who)?;
                    stmt.returning_col(Alias::new("id"));
                    let (sql, values) = build(&stmt, backend);
                    let row = txn
                        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                        .await?;
                    match row {
                        Some(r) => Some(r.try_get_by_index::<i64>(0)?),
                        None => None,
                    }
                }
                Record::Revert(id) => {
                    let (sql, values) = build(&mark_reverted(id), backend);
                    txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                        .await?;
                    None
                }
                Record::Nothing => None,
            };
            txn.commit().await?;
            Ok(id)
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            let mut conn = pool.acquire().await.map_err(MetaError::from_sqlx)?;
            sqlx::raw_sql("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await
                .map_err(MetaError::from_sqlx)?;
            let result = sqlite_txn(&mut conn, statements, record, backend, mark_reverted).await;
            // Always restore enforcement before the connection goes back to the pool.
            let restored = sqlx::raw_sql("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await
                .map_err(MetaError::from_sqlx);
            let id = result?;
            restored?;
            Ok(id)
        }
        _ => Err(MetaError::Unsupported("only SQLite and PostgreSQL".into())),
    }
}

async fn sqlite_txn(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    statements: &[String],
    record: Record<'_>,
    backend: DbBackend,
    mark_reverted: impl Fn(i64) -> goforward_core::sea_query::UpdateStatement,
) -> Result<Option<i64>> {
    use sqlx::Connection;
    let mut tx = conn.begin().await.map_err(MetaError::from_sqlx)?;
    for s in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone()))
            .execute(&mut *tx)
            .await
            .map_err(MetaError::from_sqlx)?;
    }
    let violations = sqlx::raw_sql("PRAGMA foreign_key_check")
        .fetch_all(&mut *tx)
        .await
        .map_err(MetaError::from_sqlx)?;
    if !violations.is_empty() {
        return Err(MetaError::DataConflict("rows violate a foreign key"));
    }
    let id = match record {
        Record::Apply(change, who) => {
            let (sql, values) = build(&insert_change(change, who)?, backend);
            let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), values)?
                .execute(&mut *tx)
                .await
                .map_err(MetaError::from_sqlx)?;
            Some(done.last_insert_rowid())
        }
        Record::Revert(id) => {
            let (sql, values) = build(&mark_reverted(id), backend);
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), values)?
                .execute(&mut *tx)
                .await
                .map_err(MetaError::from_sqlx)?;
            None
        }
        Record::Nothing => None,
    };
    tx.commit().await.map_err(MetaError::from_sqlx)?;
    Ok(id)
}

fn parse_list(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Every recorded change, oldest first.
///
/// # Errors
/// Database faults.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<Migration>> {
    let backend = db.get_database_backend();
    let stmt = Query::select()
        .columns(
            [
                "id",
                "name",
                "up_sql",
                "down_sql",
                "applied_by",
                "applied_at",
                "reverted_at",
            ]
            .map(Alias::new),
        )
        .from(Alias::new(CHANGES))
        .order_by(Alias::new("id"), Order::Asc)
        .to_owned();
    let (sql, values) = build(&stmt, backend);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(Migration {
            id: r.try_get_by_index(0)?,
            name: r.try_get_by_index(1)?,
            up: parse_list(r.try_get_by_index(2)?).unwrap_or_default(),
            down: parse_list(r.try_get_by_index(3)?),
            applied_by: r.try_get_by_index(4)?,
            applied_at: r.try_get_by_index(5)?,
            reverted_at: r.try_get_by_index(6)?,
        });
    }
    Ok(out)
}

/// Saved exposure policies: `(table, policy)`.
///
/// # Errors
/// Database faults.
pub async fn policies(db: &DatabaseConnection) -> Result<Vec<(String, String)>> {
    let backend = db.get_database_backend();
    let stmt = Query::select()
        .columns(["table_name", "policy"].map(Alias::new))
        .from(Alias::new(POLICIES))
        .to_owned();
    let (sql, values) = build(&stmt, backend);
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// Saves (replaces) the exposure policy of `table`.
///
/// # Errors
/// Database faults.
pub async fn save_policy(db: &DatabaseConnection, table: &str, policy: &str) -> Result<()> {
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let del = Query::delete()
        .from_table(Alias::new(POLICIES))
        .and_where(Expr::col(Alias::new("table_name")).eq(table))
        .to_owned();
    let (sql, values) = build(&del, backend);
    txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let ins = Query::insert()
        .into_table(Alias::new(POLICIES))
        .columns(["table_name", "policy"].map(Alias::new))
        .values([table.into(), policy.into()])
        .map_err(|e| internal(e.to_string()))?
        .to_owned();
    let (sql, values) = build(&ins, backend);
    txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    txn.commit().await?;
    Ok(())
}
