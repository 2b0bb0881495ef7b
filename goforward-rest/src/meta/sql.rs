//! The SQL runner (`/meta/v1/sql`), locked down per security checklist
//! item 21:
//!
//! - off unless `[meta.sql] enabled = true`;
//! - its own admin secret (`meta.sql.admin_secret`, at least 32 bytes, not
//!   a well-known placeholder — boot is refused otherwise), sent in the
//!   `x-goforward-sql-secret` header, *and* a caller holding
//!   [`Capability::RunSql`] (system_admin or service_role): a user JWT alone
//!   never reaches it;
//! - loopback clients only unless `allow_remote = true` (client address as
//!   core resolves it, honouring only trusted proxies);
//! - its own rate-limit group `meta_sql`;
//! - a server-side time limit the request can only lower: PostgreSQL
//!   `SET LOCAL statement_timeout` plus a watchdog cancelling the backend
//!   (`pg_cancel_backend`) if the script lifted it; SQLite a progress
//!   handler interrupting the statement;
//! - on PostgreSQL, a separate connection URL whose role must not be a
//!   superuser nor a member of `pg_execute_server_program`,
//!   `pg_read_server_files` or `pg_write_server_files` (checked at boot);
//!   on SQLite, `ATTACH`, `DETACH`, `VACUUM`, `PRAGMA` and `load_extension`
//!   are refused (they reach the file system);
//! - every run (refusals after the lock included) is written to
//!   `goforward_meta_sql_audit` with who, what, outcome and time.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::TryStreamExt;
use goforward_core::{
    Context, Principal,
    sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, sqlx},
    sea_orm_migration::{MigrationTrait, prelude::*},
    sea_query::{
        Alias, Expr, Order, PostgresQueryBuilder, Query, QueryStatementWriter, SqliteQueryBuilder,
    },
    token::Capability,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{MetaError, Result};
use super::require;

/// The `[meta.sql]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlConfig {
    /// Turns the runner on (default off).
    pub enabled: bool,
    /// The runner's own secret (header `x-goforward-sql-secret`).
    pub admin_secret: Option<secrecy::SecretString>,
    /// Accept non-loopback clients (default false).
    pub allow_remote: bool,
    /// The longest a run may take, in milliseconds (requests may ask for less).
    pub statement_timeout_ms: u64,
    /// Most rows a result carries (requests may ask for fewer).
    pub max_rows: usize,
    /// PostgreSQL: the connection URL the runner uses (required there).
    pub database_url: Option<secrecy::SecretString>,
    /// Runs per minute per client IP.
    pub runs_per_minute: u32,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            admin_secret: None,
            allow_remote: false,
            statement_timeout_ms: 10_000,
            max_rows: 1000,
            database_url: None,
            runs_per_minute: 60,
        }
    }
}

/// The `[meta]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    /// The SQL runner.
    pub sql: SqlConfig,
    /// Largest import body in bytes (default 100 MiB).
    pub import_max_bytes: usize,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            sql: SqlConfig::default(),
            import_max_bytes: 100 * 1024 * 1024,
        }
    }
}

/// The header carrying the runner's secret.
pub const SECRET_HEADER: &str = "x-goforward-sql-secret";
const MIN_SECRET_LEN: usize = 32;
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "secret",
    "password",
    "admin",
    "your-super-secret",
    "super-secret",
    "default",
    "example",
];

fn config_err(key: &str, problem: &str) -> goforward_core::Error {
    goforward_core::Error::config(format!("meta.sql.{key}"), "<redacted>", problem)
}

/// A ready runner (built in `Meta::start` when enabled).
#[derive(Clone)]
pub struct Runner {
    config: SqlConfig,
    secret: Arc<Vec<u8>>,
    /// PostgreSQL: the runner's own pool; SQLite: the app's database.
    db: DatabaseConnection,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    /// Validates the config and, on PostgreSQL, connects and checks the
    /// runner's role. `Ok(None)` when the runner is off.
    ///
    /// # Errors
    /// A missing/short/placeholder secret, a missing or privileged runner role.
    pub async fn start(ctx: &Context, config: SqlConfig) -> goforward_core::Result<Option<Self>> {
        use secrecy::ExposeSecret;
        if !config.enabled {
            return Ok(None);
        }
        let secret = config
            .admin_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default();
        if secret.trim().is_empty() {
            return Err(config_err(
                "admin_secret",
                "required when the SQL runner is enabled",
            ));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(config_err(
                "admin_secret",
                "must be at least 32 bytes (use a random value)",
            ));
        }
        let lower = secret.to_lowercase();
        if PLACEHOLDERS.iter().any(|p| lower.contains(p))
            || secret
                .chars()
                .all(|c| c == secret.chars().next().unwrap_or(' '))
        {
            return Err(config_err(
                "admin_secret",
                "looks like a placeholder: use a random value",
            ));
        }
        if ctx
            .config()
            .jwt
            .secret
            .as_ref()
            .is_some_and(|j| j.expose_secret() == secret)
        {
            return Err(config_err("admin_secret", "must differ from jwt.secret"));
        }
        if config.statement_timeout_ms == 0 || config.max_rows == 0 {
            return Err(config_err(
                "statement_timeout_ms",
                "statement_timeout_ms and max_rows must be at least 1",
            ));
        }
        let quota = std::num::NonZeroU32::new(Ord::max(config.runs_per_minute, 1))
            .map(|n| goforward_core::http::Quota::per_window(n, Duration::from_secs(60)));
        ctx.rate_limits().declare("meta_sql", quota);
        let db = match ctx.db().get_database_backend() {
            DbBackend::Postgres => {
                let url = config
                    .database_url
                    .as_ref()
                    .map(|u| u.expose_secret().to_owned())
                    .ok_or_else(|| {
                        config_err(
                            "database_url",
                            "required on PostgreSQL: a role without superuser or server file/program access",
                        )
                    })?;
                let db = goforward_core::db::connect_url(&url).await?;
                check_role(&db).await?;
                db
            }
            _ => ctx.db().clone(),
        };
        Ok(Some(Self {
            secret: Arc::new(secret.into_bytes()),
            config,
            db,
        }))
    }
}

impl Runner {
    /// Closes the runner's own PostgreSQL pool (SQLite: the app's, left open).
    pub async fn close(&self) {
        if self.db.get_database_backend() == DbBackend::Postgres {
            let _ = self.db.close_by_ref().await;
        }
    }
}

/// Refuses a superuser or a member of the server file/program roles.
async fn check_role(db: &DatabaseConnection) -> goforward_core::Result<()> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolsuper, \
             pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'), \
             pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), \
             pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') \
             FROM pg_roles r WHERE r.rolname = current_user",
        ))
        .await?
        .ok_or_else(|| config_err("database_url", "cannot read the runner role"))?;
    let flags: [bool; 4] = [
        row.try_get_by_index(0)?,
        row.try_get_by_index(1)?,
        row.try_get_by_index(2)?,
        row.try_get_by_index(3)?,
    ];
    if flags.iter().any(|f| *f) {
        return Err(config_err(
            "database_url",
            "the runner role must not be a superuser nor a member of pg_execute_server_program, \
             pg_read_server_files or pg_write_server_files",
        ));
    }
    Ok(())
}

/// The runner migration: audit log, history, saved queries.
pub(super) struct CreateSqlTables;

impl MigrationName for CreateSqlTables {
    fn name(&self) -> &str {
        "m20261124_000002_create_meta_sql"
    }
}

fn id_col() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSqlTables {
    async fn up(&self, m: &SchemaManager) -> std::result::Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AUDIT)
                .col(id_col())
                .col(ColumnDef::new("at").text().not_null())
                .col(ColumnDef::new("actor").text().not_null())
                .col(ColumnDef::new("client_ip").text())
                .col(ColumnDef::new("sql").text().not_null())
                .col(ColumnDef::new("read_only").boolean().not_null())
                .col(ColumnDef::new("outcome").text().not_null())
                .col(ColumnDef::new("row_count").big_integer())
                .col(ColumnDef::new("elapsed_ms").big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(HISTORY)
                .col(id_col())
                .col(ColumnDef::new("owner").text().not_null())
                .col(ColumnDef::new("sql").text().not_null())
                .col(ColumnDef::new("at").text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SAVED)
                .col(id_col())
                .col(ColumnDef::new("owner").text().not_null())
                .col(ColumnDef::new("name").text().not_null())
                .col(ColumnDef::new("sql").text().not_null())
                .col(ColumnDef::new("created_at").text().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> std::result::Result<(), DbErr> {
        for t in [SAVED, HISTORY, AUDIT] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}

const AUDIT: &str = "goforward_meta_sql_audit";
const HISTORY: &str = "goforward_meta_sql_history";
const SAVED: &str = "goforward_meta_sql_saved";

/// State of the `/meta/v1/sql` scope.
#[derive(Clone)]
pub(super) struct SqlState {
    pub(super) ctx: Context,
    pub(super) runner: Option<Runner>,
}

fn eq_ct(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The lock in front of every runner route: enabled, loopback, secret, capability.
fn unlock<'a>(state: &'a SqlState, req: &HttpRequest, p: &Principal) -> Result<&'a Runner> {
    let runner = state.runner.as_ref().ok_or(MetaError::SqlDisabled)?;
    let ip = state.ctx.rate_limits().client_ip(req);
    if !runner.config.allow_remote && !ip.is_some_and(|ip: IpAddr| ip.is_loopback()) {
        tracing::warn!(client_ip = ?ip, "meta: SQL runner refused a non-loopback client");
        return Err(MetaError::SqlRemote);
    }
    let sent = req
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !eq_ct(sent, &runner.secret) {
        tracing::warn!(client_ip = ?ip, "meta: SQL runner refused a request without its secret");
        return Err(MetaError::SqlLocked);
    }
    require(p, Capability::RunSql)?;
    Ok(runner)
}

fn actor(p: &Principal) -> String {
    p.user_id
        .as_deref()
        .unwrap_or_else(|| p.role.as_str())
        .to_owned()
}

/// `POST /meta/v1/sql/run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunRequest {
    sql: String,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    max_rows: Option<usize>,
    /// `plan` (EXPLAIN / EXPLAIN QUERY PLAN) or `analyze` (PostgreSQL EXPLAIN ANALYZE).
    #[serde(default)]
    explain: Option<String>,
}

fn has_word(upper: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    upper.match_indices(word).any(|(i, _)| {
        let before = upper[..i].chars().next_back();
        let after = upper[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// One statement: no `;` anywhere but an optional trailing one.
fn single_statement(sql: &str) -> Option<&str> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    (!trimmed.is_empty() && !trimmed.contains(';')).then_some(trimmed)
}

pub(super) async fn run(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let runner = unlock(&state, &req, &p)?;
    let body: RunRequest = serde_json::from_value(body.into_inner())
        .map_err(|e| MetaError::InvalidRequest(format!("invalid body: {e}")))?;
    let who = actor(&p);
    let ip = state
        .ctx
        .rate_limits()
        .client_ip(&req)
        .map(|i| i.to_string());
    let audit_id = audit_start(&state.ctx, &who, ip, &body).await?;
    let started = Instant::now();
    let outcome = execute(runner, &body).await;
    let elapsed = started.elapsed();
    let (label, rows) = match &outcome {
        Ok(v) => ("ok".to_owned(), v["row_count"].as_i64()),
        Err(e) => (e.code().to_owned(), None),
    };
    tracing::info!(actor = %who, sql = %body.sql, outcome = %label, elapsed_ms = elapsed.as_millis() as u64, "meta: sql run");
    audit_finish(&state.ctx, audit_id, &label, rows, elapsed).await?;
    history(&state.ctx, &who, &body.sql).await?;
    let mut result = outcome?;
    result["elapsed_ms"] = json!(elapsed.as_secs_f64() * 1000.0);
    Ok(HttpResponse::Ok().json(result))
}

fn build<S: QueryStatementWriter>(s: &S, backend: DbBackend) -> Statement {
    let (sql, values) = match backend {
        DbBackend::Postgres => s.build(PostgresQueryBuilder),
        _ => s.build(SqliteQueryBuilder),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes the audit row before the statement runs (outcome `running`), so
/// a run that never returns is still on record; returns its id.
async fn audit_start(
    ctx: &Context,
    who: &str,
    ip: Option<String>,
    body: &RunRequest,
) -> Result<i64> {
    let db = ctx.db();
    let backend = db.get_database_backend();
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(AUDIT))
        .columns(
            [
                "at",
                "actor",
                "client_ip",
                "sql",
                "read_only",
                "outcome",
                "elapsed_ms",
            ]
            .map(Alias::new),
        )
        .values([
            now().into(),
            who.into(),
            ip.into(),
            body.sql.clone().into(),
            body.read_only.into(),
            "running".into(),
            0i64.into(),
        ])
        .map_err(|e| MetaError::Core(goforward_core::Error::Internal(e.to_string())))?;
    stmt.returning_col(Alias::new("id"));
    let row = db
        .query_one_raw(build(&stmt, backend))
        .await?
        .ok_or_else(|| MetaError::Core(goforward_core::Error::Internal("no audit id".into())))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// Completes the audit row with the outcome.
async fn audit_finish(
    ctx: &Context,
    id: i64,
    outcome: &str,
    rows: Option<i64>,
    elapsed: Duration,
) -> Result<()> {
    let db = ctx.db();
    let stmt = Query::update()
        .table(Alias::new(AUDIT))
        .value(Alias::new("outcome"), outcome)
        .value(Alias::new("row_count"), rows)
        .value(Alias::new("elapsed_ms"), elapsed.as_millis() as i64)
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    db.execute_raw(build(&stmt, db.get_database_backend()))
        .await?;
    Ok(())
}

async fn history(ctx: &Context, who: &str, sql: &str) -> Result<()> {
    let db = ctx.db();
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(HISTORY))
        .columns(["owner", "sql", "at"].map(Alias::new))
        .values([who.into(), sql.into(), now().into()])
        .map_err(|e| MetaError::Core(goforward_core::Error::Internal(e.to_string())))?;
    db.execute_raw(build(&stmt, db.get_database_backend()))
        .await?;
    Ok(())
}

/// Runs the request under the runner's limits.
async fn execute(runner: &Runner, body: &RunRequest) -> Result<Value> {
    let backend = runner.db.get_database_backend();
    let timeout = Duration::from_millis(
        body.timeout_ms
            .unwrap_or(runner.config.statement_timeout_ms)
            .clamp(1, runner.config.statement_timeout_ms),
    );
    let max_rows = body
        .max_rows
        .unwrap_or(runner.config.max_rows)
        .clamp(1, runner.config.max_rows);
    let upper = body.sql.to_uppercase();
    if backend == DbBackend::Sqlite {
        for word in ["ATTACH", "DETACH", "VACUUM", "PRAGMA", "LOAD_EXTENSION"] {
            if has_word(&upper, word) {
                return Err(MetaError::SqlRefused(
                    "ATTACH, DETACH, VACUUM, PRAGMA and load_extension are not allowed on SQLite",
                ));
            }
        }
    }
    let sql = match body.explain.as_deref() {
        None => {
            if body.read_only {
                single_statement(&body.sql)
                    .ok_or(MetaError::SqlRefused(
                        "read-only mode runs exactly one statement (no `;` inside)",
                    ))?
                    .to_owned()
            } else if body.sql.trim().is_empty() {
                return Err(MetaError::InvalidRequest("sql must not be empty".into()));
            } else {
                body.sql.clone()
            }
        }
        Some(mode) => {
            let one = single_statement(&body.sql).ok_or(MetaError::SqlRefused(
                "EXPLAIN takes exactly one statement (no `;` inside)",
            ))?;
            match (mode, backend) {
                ("plan", DbBackend::Sqlite) => format!("EXPLAIN QUERY PLAN {one}"),
                ("plan", _) => format!("EXPLAIN {one}"),
                ("analyze", DbBackend::Postgres) => format!("EXPLAIN ANALYZE {one}"),
                ("analyze", _) => {
                    return Err(MetaError::Unsupported(
                        "EXPLAIN ANALYZE is PostgreSQL only; use explain=plan".into(),
                    ));
                }
                _ => {
                    return Err(MetaError::InvalidRequest(
                        "explain: `plan` or `analyze`".into(),
                    ));
                }
            }
        }
    };
    match backend {
        DbBackend::Postgres => postgres(runner, &sql, body.read_only, timeout, max_rows).await,
        _ => sqlite(runner, &sql, body.read_only, timeout, max_rows).await,
    }
}

/// Result rows grouped by statement (a new set whenever the columns change).
#[derive(Default)]
struct Collector {
    sets: Vec<Value>,
    columns: Vec<(String, String)>,
    rows: Vec<Value>,
    count: usize,
    truncated: bool,
}

impl Collector {
    fn push(&mut self, columns: Vec<(String, String)>, row: Vec<Value>) {
        if columns != self.columns {
            self.flush();
            self.columns = columns;
        }
        self.rows.push(Value::Array(row));
        self.count += 1;
    }

    fn flush(&mut self) {
        if !self.columns.is_empty() || !self.rows.is_empty() {
            let columns: Vec<Value> = self
                .columns
                .drain(..)
                .map(|(n, t)| json!({"name": n, "type": t}))
                .collect();
            self.sets
                .push(json!({"columns": columns, "rows": std::mem::take(&mut self.rows)}));
        }
    }

    fn finish(mut self) -> Value {
        self.flush();
        let last = self
            .sets
            .last()
            .cloned()
            .unwrap_or(json!({"columns": [], "rows": []}));
        json!({
            "columns": last["columns"],
            "rows": last["rows"],
            "result_sets": self.sets,
            "row_count": self.count,
            "truncated": self.truncated,
        })
    }
}

fn classify(err: sqlx::Error) -> MetaError {
    match &err {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // query_canceled (statement_timeout or the watchdog); SQLITE_INTERRUPT.
                "57014" | "9" => MetaError::SqlTimeout,
                // read_only_sql_transaction; SQLITE_READONLY.
                "25006" | "8" => MetaError::SqlReadOnly,
                _ => MetaError::SqlError {
                    sqlstate: code,
                    message: d.message().chars().take(1000).collect(),
                },
            }
        }
        _ => MetaError::from_sqlx(err),
    }
}

async fn sqlite(
    runner: &Runner,
    sql: &str,
    read_only: bool,
    timeout: Duration,
    max_rows: usize,
) -> Result<Value> {
    use sqlx::{Column, Row, TypeInfo, ValueRef};
    let pool = runner.db.get_sqlite_connection_pool();
    let mut conn = pool.acquire().await.map_err(MetaError::from_sqlx)?;
    let deadline = Instant::now() + timeout;
    conn.lock_handle()
        .await
        .map_err(MetaError::from_sqlx)?
        .set_progress_handler(1000, move || Instant::now() < deadline);
    if read_only {
        sqlx::raw_sql("PRAGMA query_only = ON")
            .execute(&mut *conn)
            .await
            .map_err(MetaError::from_sqlx)?;
    }
    let mut out = Collector::default();
    let result: Result<()> = async {
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).fetch(&mut *conn);
        while let Some(row) = stream.try_next().await.map_err(classify)? {
            if out.count >= max_rows {
                out.truncated = true;
                break;
            }
            let columns: Vec<(String, String)> = row
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
                .collect();
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let raw = row.try_get_raw(i).map_err(MetaError::from_sqlx)?;
                let v = if raw.is_null() {
                    Value::Null
                } else {
                    match raw.type_info().name() {
                        "INTEGER" => json!(
                            row.try_get_unchecked::<i64, _>(i)
                                .map_err(MetaError::from_sqlx)?
                        ),
                        "REAL" => json!(
                            row.try_get_unchecked::<f64, _>(i)
                                .map_err(MetaError::from_sqlx)?
                        ),
                        "BLOB" => json!(format!(
                            "\\x{}",
                            row.try_get_unchecked::<Vec<u8>, _>(i)
                                .map_err(MetaError::from_sqlx)?
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<String>()
                        )),
                        _ => json!(
                            row.try_get_unchecked::<String, _>(i)
                                .map_err(MetaError::from_sqlx)?
                        ),
                    }
                };
                values.push(v);
            }
            out.push(columns, values);
        }
        Ok(())
    }
    .await;
    // Restore the pooled connection whatever happened: a transaction the
    // script left open is rolled back (an error here means there was none).
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    if read_only {
        let _ = sqlx::raw_sql("PRAGMA query_only = OFF")
            .execute(&mut *conn)
            .await;
    }
    if let Ok(mut handle) = conn.lock_handle().await {
        handle.set_progress_handler(0, || true);
    }
    result?;
    Ok(out.finish())
}

#[cfg(feature = "postgres")]
async fn postgres(
    runner: &Runner,
    sql: &str,
    read_only: bool,
    timeout: Duration,
    max_rows: usize,
) -> Result<Value> {
    use sqlx::{Column, Connection, Row, TypeInfo};
    let pool = runner.db.get_postgres_connection_pool();
    let mut conn = pool.acquire().await.map_err(MetaError::from_sqlx)?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .map_err(MetaError::from_sqlx)?;
    let mut tx = conn
        .begin_with(if read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        })
        .await
        .map_err(MetaError::from_sqlx)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis()
    )))
    .execute(&mut *tx)
    .await
    .map_err(MetaError::from_sqlx)?;
    // If the script lifts the timeout, the watchdog cancels the backend
    // from a second connection of the same role.
    let watchdog_pool = pool.clone();
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(timeout + Duration::from_millis(500)).await;
        let _ = sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .execute(&watchdog_pool)
            .await;
    });
    let mut out = Collector::default();
    let result: Result<()> = async {
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).fetch(&mut *tx);
        while let Some(row) = stream.try_next().await.map_err(classify)? {
            if out.count >= max_rows {
                out.truncated = true;
                break;
            }
            let columns: Vec<(String, String)> = row
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_info().name().to_lowercase()))
                .collect();
            let mut values = Vec::with_capacity(columns.len());
            for (i, (_, ty)) in columns.iter().enumerate() {
                // The simple protocol answers in text: convert by type.
                let text: Option<String> =
                    row.try_get_unchecked(i).map_err(MetaError::from_sqlx)?;
                values.push(match text {
                    None => Value::Null,
                    Some(t) => pg_value(ty, t),
                });
            }
            out.push(columns, values);
        }
        Ok(())
    }
    .await;
    watchdog.abort();
    match result {
        Ok(()) => {
            tx.commit().await.map_err(classify)?;
            Ok(out.finish())
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

#[cfg(not(feature = "postgres"))]
async fn postgres(
    _runner: &Runner,
    _sql: &str,
    _read_only: bool,
    _timeout: Duration,
    _max_rows: usize,
) -> Result<Value> {
    Err(MetaError::Unsupported(
        "the SQL runner on PostgreSQL needs goforward-rest's `postgres` feature".into(),
    ))
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn pg_value(ty: &str, text: String) -> Value {
    match ty {
        "int2" | "int4" | "int8" | "oid" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        "float4" | "float8" => text
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        "bool" => Value::Bool(text == "t"),
        "json" | "jsonb" => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::String(text),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    #[serde(default)]
    limit: Option<u64>,
}

pub(super) async fn list_history(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let db = state.ctx.db();
    let stmt = Query::select()
        .columns(["id", "sql", "at"].map(Alias::new))
        .from(Alias::new(HISTORY))
        .and_where(Expr::col(Alias::new("owner")).eq(actor(&p)))
        .order_by(Alias::new("id"), Order::Desc)
        .limit(Ord::min(q.limit.unwrap_or(100), 1000))
        .to_owned();
    let rows = db
        .query_all_raw(build(&stmt, db.get_database_backend()))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(json!({
            "id": r.try_get_by_index::<i64>(0)?,
            "sql": r.try_get_by_index::<String>(1)?,
            "at": r.try_get_by_index::<String>(2)?,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn delete_owned(state: &SqlState, table: &str, owner: &str, id: Option<i64>) -> Result<u64> {
    let db = state.ctx.db();
    let mut stmt = Query::delete();
    stmt.from_table(Alias::new(table))
        .and_where(Expr::col(Alias::new("owner")).eq(owner));
    if let Some(id) = id {
        stmt.and_where(Expr::col(Alias::new("id")).eq(id));
    }
    Ok(db
        .execute_raw(build(&stmt, db.get_database_backend()))
        .await?
        .rows_affected())
}

pub(super) async fn delete_history(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    path: Option<web::Path<i64>>,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let id = path.map(|p| p.into_inner());
    let n = delete_owned(&state, HISTORY, &actor(&p), id).await?;
    if id.is_some() && n == 0 {
        return Err(MetaError::InvalidRequest("no such history entry".into()));
    }
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SaveQuery {
    name: String,
    sql: String,
}

pub(super) async fn save(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let body: SaveQuery = serde_json::from_value(body.into_inner())
        .map_err(|e| MetaError::InvalidRequest(format!("invalid body: {e}")))?;
    if body.name.trim().is_empty() || body.name.len() > 200 || body.sql.trim().is_empty() {
        return Err(MetaError::InvalidRequest(
            "name (1-200 bytes) and sql must not be empty".into(),
        ));
    }
    let db = state.ctx.db();
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(SAVED))
        .columns(["owner", "name", "sql", "created_at"].map(Alias::new))
        .values([
            actor(&p).into(),
            body.name.clone().into(),
            body.sql.clone().into(),
            now().into(),
        ])
        .map_err(|e| MetaError::Core(goforward_core::Error::Internal(e.to_string())))?;
    db.execute_raw(build(&stmt, db.get_database_backend()))
        .await?;
    Ok(HttpResponse::Created().json(json!({"name": body.name, "sql": body.sql})))
}

pub(super) async fn list_saved(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let db = state.ctx.db();
    let stmt = Query::select()
        .columns(["id", "name", "sql", "created_at"].map(Alias::new))
        .from(Alias::new(SAVED))
        .and_where(Expr::col(Alias::new("owner")).eq(actor(&p)))
        .order_by(Alias::new("id"), Order::Asc)
        .to_owned();
    let rows = db
        .query_all_raw(build(&stmt, db.get_database_backend()))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(json!({
            "id": r.try_get_by_index::<i64>(0)?,
            "name": r.try_get_by_index::<String>(1)?,
            "sql": r.try_get_by_index::<String>(2)?,
            "created_at": r.try_get_by_index::<String>(3)?,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}

pub(super) async fn delete_saved(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    path: web::Path<i64>,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let n = delete_owned(&state, SAVED, &actor(&p), Some(path.into_inner())).await?;
    if n == 0 {
        return Err(MetaError::InvalidRequest("no such saved query".into()));
    }
    Ok(HttpResponse::Ok().json(json!({"deleted": n})))
}

/// Entries of the audit log, newest first (RunSql holders behind the lock).
pub(super) async fn list_audit(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    let db = state.ctx.db();
    let stmt = Query::select()
        .columns(
            [
                "id",
                "at",
                "actor",
                "client_ip",
                "sql",
                "read_only",
                "outcome",
                "row_count",
                "elapsed_ms",
            ]
            .map(Alias::new),
        )
        .from(Alias::new(AUDIT))
        .order_by(Alias::new("id"), Order::Desc)
        .limit(Ord::min(q.limit.unwrap_or(100), 1000))
        .to_owned();
    let rows = db
        .query_all_raw(build(&stmt, db.get_database_backend()))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let mut m = Map::new();
        m.insert("id".into(), json!(r.try_get_by_index::<i64>(0)?));
        m.insert("at".into(), json!(r.try_get_by_index::<String>(1)?));
        m.insert("actor".into(), json!(r.try_get_by_index::<String>(2)?));
        m.insert(
            "client_ip".into(),
            json!(r.try_get_by_index::<Option<String>>(3)?),
        );
        m.insert("sql".into(), json!(r.try_get_by_index::<String>(4)?));
        m.insert("read_only".into(), json!(r.try_get_by_index::<bool>(5)?));
        m.insert("outcome".into(), json!(r.try_get_by_index::<String>(6)?));
        m.insert(
            "row_count".into(),
            json!(r.try_get_by_index::<Option<i64>>(7)?),
        );
        m.insert("elapsed_ms".into(), json!(r.try_get_by_index::<i64>(8)?));
        out.push(Value::Object(m));
    }
    Ok(HttpResponse::Ok().json(out))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig, ctx: &Context, state: SqlState) {
    cfg.service(
        ctx.api_scope("/meta/v1/sql", "meta_sql", super::MetaErrorFormat)
            .app_data(web::Data::new(state))
            .route("/run", web::post().to(run))
            .route("/history", web::get().to(list_history))
            .route("/history", web::delete().to(delete_all_history))
            .route("/history/{id}", web::delete().to(delete_history))
            .route("/saved", web::get().to(list_saved))
            .route("/saved", web::post().to(save))
            .route("/saved/{id}", web::delete().to(delete_saved))
            .route("/audit", web::get().to(list_audit))
            .default_service(web::to(disabled_or_unknown)),
    );
}

async fn delete_all_history(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse> {
    delete_history(state, req, p, None).await
}

async fn disabled_or_unknown(
    state: web::Data<SqlState>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse> {
    unlock(&state, &req, &p)?;
    Err(MetaError::InvalidRequest("no such endpoint".into()))
}
