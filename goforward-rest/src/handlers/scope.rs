//! Per-request database settings: the statement timeout
//! (`rest.statement_timeout_ms`) on both backends and, on PostgreSQL in
//! native RLS mode (`rest.native_rls`), the database role and JWT claims.
//!
//! PostgreSQL: the settings are `set_config(name, value, true)` calls (the
//! `SET LOCAL` form) in one statement at the start of the request's
//! transaction, so they end with it and never leak to the next user of the
//! pooled connection. SQLite: a read runs on a connection taken from the
//! pool whose progress handler interrupts the statement at the deadline.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::sync::Arc;
#[cfg(feature = "sqlite")]
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use goforward_core::sea_orm::{DatabaseConnection, RuntimeErr, sqlx};
use goforward_core::{
    Principal,
    sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, TransactionTrait},
};
use serde_json::Value;

use super::RestState;
use crate::error::{RestError, Result};

/// Native RLS mode (PostgreSQL): the roles the server may switch to.
#[derive(Debug, Clone)]
pub struct NativeRls {
    /// Database roles a caller's role claim may name (`SET LOCAL ROLE`).
    pub roles: Vec<String>,
}

/// `set_config` calls for one PostgreSQL transaction (empty: none needed).
pub type PgSettings = Vec<(&'static str, String)>;

impl RestState {
    /// The settings a PostgreSQL transaction of `who` needs: the statement
    /// timeout when it is below the connection's own, the time zone of
    /// `Prefer: timezone=`, and in native RLS mode the role and claims.
    ///
    /// # Errors
    /// [`RestError::RoleNotAllowed`] when native RLS is on and the caller's
    /// role is not in `rest.native_rls_roles`.
    pub fn pg_settings(&self, who: &Principal, zone: Option<&str>) -> Result<PgSettings> {
        let mut items = Vec::new();
        if let Some(ms) = self.pg_local_timeout_ms() {
            items.push(("statement_timeout", ms.to_string()));
        }
        if let Some(zone) = zone {
            items.push(("timezone", zone.to_owned()));
        }
        if let Some(rls) = &self.native_rls {
            // service_role keeps the server's own role (table owners bypass
            // RLS, as Supabase's service_role does with BYPASSRLS).
            if !who.is_service() {
                let role = who.role.as_str();
                if !rls.roles.iter().any(|r| r == role) {
                    return Err(RestError::RoleNotAllowed {
                        role: role.chars().take(63).collect(),
                        anonymous: super::anonymous(who),
                    });
                }
                items.push(("role", role.to_owned()));
            }
            let mut claims = (*who.claims).clone();
            claims
                .entry("role")
                .or_insert_with(|| Value::String(who.role.as_str().to_owned()));
            let sub = match claims.get("sub") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            items.push(("request.jwt.claims", Value::Object(claims).to_string()));
            items.push(("request.jwt.claim.sub", sub));
            items.push(("request.jwt.claim.role", who.role.as_str().to_owned()));
        }
        Ok(items)
    }

    /// Only the statement timeout's setting (when PostgreSQL needs one).
    pub fn pg_timeout_settings(&self) -> PgSettings {
        self.pg_local_timeout_ms()
            .map(|ms| vec![("statement_timeout", ms.to_string())])
            .unwrap_or_default()
    }

    /// The REST statement timeout in ms when PostgreSQL needs a `SET LOCAL`
    /// for it: set, and below the timeout every pooled connection already
    /// has (core's `database.statement_timeout_ms`).
    fn pg_local_timeout_ms(&self) -> Option<u64> {
        let ms = self.statement_timeout.map(|d| d.as_millis() as u64)?;
        let connection = self.ctx.config().database.statement_timeout_ms;
        (connection == 0 || ms < connection).then_some(ms)
    }

    /// The configured limit in ms (0 when off), for error details.
    pub(crate) fn timeout_ms(&self) -> u64 {
        self.statement_timeout.map_or(0, |d| d.as_millis() as u64)
    }

    /// Names the configured limit in a statement-timeout error.
    pub(crate) fn timeout_error(&self, err: RestError) -> RestError {
        match err {
            RestError::StatementTimeout { .. } => RestError::StatementTimeout {
                limit_ms: self.timeout_ms(),
            },
            other => other,
        }
    }
}

/// Applies `settings` in the transaction `conn` (one statement; nothing
/// when empty). Names come from our code; values are bound.
///
/// # Errors
/// A database error.
pub async fn apply<C: ConnectionTrait>(conn: &C, settings: &PgSettings) -> Result<()> {
    apply_db(conn, settings).await.map_err(RestError::from_db)
}

/// As [`apply`], with the database's own error.
///
/// # Errors
/// A database error.
pub async fn apply_db<C: ConnectionTrait>(
    conn: &C,
    settings: &PgSettings,
) -> std::result::Result<(), DbErr> {
    if settings.is_empty() {
        return Ok(());
    }
    let calls: Vec<String> = settings
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("set_config('{name}', ${}, true)", i + 1))
        .collect();
    let sql = format!("SELECT {}", calls.join(", "));
    let values = settings.iter().map(|(_, v)| v.clone().into());
    conn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?;
    Ok(())
}

/// Whether a read is a bounded lookup: its top-level filters fix every
/// primary-key column with `eq` and it embeds nothing, so it reads at most
/// one row through the key's index and cannot run long. Such reads skip the
/// statement-timeout machinery (the SQLite progress handler, PostgreSQL's
/// `SET LOCAL` transaction when nothing else needs one).
pub fn bounded_lookup(
    table: &crate::schema::Table,
    filters: &[crate::query::Expr],
    cols: &[crate::plan::OutCol],
) -> bool {
    use crate::query::{Expr, Operand, RawOp};
    if table.primary_key.is_empty() || cols.iter().any(|c| c.derived || c.inner.is_some()) {
        return false;
    }
    table.primary_key.iter().all(|pk| {
        filters.iter().any(|f| {
            matches!(f, Expr::Cond { field, op: RawOp::Eq, operand: Operand::Scalar(_) }
                if field.path.is_empty() && field.column == *pk)
        })
    })
}

/// Runs a read's SELECT (and COUNT) under the request's settings: on
/// PostgreSQL in a transaction with `settings` when there are any, on
/// SQLite under the statement timeout unless `bounded` (see
/// [`bounded_lookup`]).
///
/// # Errors
/// [`RestError::StatementTimeout`] when the timeout fires, and any
/// database error.
pub async fn read(
    state: &RestState,
    settings: &PgSettings,
    bounded: bool,
    select: Statement,
    count: Option<Statement>,
) -> Result<(Vec<QueryResult>, Option<u64>)> {
    let db = state.ctx.db();
    let dropped;
    let settings = if bounded && settings.iter().any(|(n, _)| *n == "statement_timeout") {
        dropped = settings
            .iter()
            .filter(|(n, _)| *n != "statement_timeout")
            .cloned()
            .collect::<PgSettings>();
        &dropped
    } else {
        settings
    };
    let out = async {
        match db.get_database_backend() {
            #[cfg(feature = "sqlite")]
            DbBackend::Sqlite => match (&state.sqlite_reads, state.statement_timeout) {
                // REST's own read connections: one hop to the driver's
                // thread per statement, the deadline armed without one.
                (Some(reads), limit) => {
                    reads.fetch(limit.filter(|_| !bounded), select, count).await
                }
                _ if bounded => fetch(db, select, count).await,
                (None, Some(limit)) => sqlite_read(state, db, limit, select, count).await,
                (None, None) => fetch(db, select, count).await,
            },
            #[cfg(not(feature = "sqlite"))]
            DbBackend::Sqlite => fetch(db, select, count).await,
            _ if settings.is_empty() => fetch(db, select, count).await,
            // Only the timeout: on REST's read pool, whose connections carry
            // it (one round trip, no transaction); else BEGIN and SET LOCAL
            // in one round trip.
            #[cfg(feature = "postgres")]
            DbBackend::Postgres if settings.len() == 1 && settings[0].0 == "statement_timeout" => {
                match &state.pg_reads {
                    Some(pool) => pg_fetch(pool, select, count).await,
                    None => {
                        let ms = state.pg_local_timeout_ms().unwrap_or(0);
                        pg_read(db, ms, select, count).await
                    }
                }
            }
            _ => {
                let tx = db.begin().await.map_err(RestError::from_db)?;
                apply(&tx, settings).await?;
                let out = fetch(&tx, select, count).await?;
                tx.commit().await.map_err(RestError::from_db)?;
                Ok(out)
            }
        }
    };
    out.await.map_err(|e| state.timeout_error(e))
}

/// Runs a read's SELECT (and COUNT) on `conn`.
///
/// # Errors
/// Any database error.
pub async fn fetch<C: ConnectionTrait>(
    conn: &C,
    select: Statement,
    count: Option<Statement>,
) -> Result<(Vec<QueryResult>, Option<u64>)> {
    let rows = conn
        .query_all_raw(select)
        .await
        .map_err(RestError::from_db)?;
    let total = match count {
        None => None,
        Some(stmt) => {
            let row = conn.query_one_raw(stmt).await.map_err(RestError::from_db)?;
            let n: i64 = match row {
                Some(r) => r.try_get_by_index(0).map_err(RestError::from_db)?,
                None => 0,
            };
            Some(n.max(0) as u64)
        }
    };
    Ok((rows, total))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn sqlx_err(err: sqlx::Error) -> RestError {
    RestError::from_db(DbErr::Query(RuntimeErr::SqlxError(Arc::new(err))))
}

/// SQLite: takes a connection from the pool, arms its progress handler
/// with the deadline (SQLite calls it every 1000 VM instructions; past the
/// deadline it interrupts the statement, which fails with
/// `SQLITE_INTERRUPT`), runs the statements, then disarms it. The handler
/// stays installed but disarmed, so later users of the connection are never
/// interrupted; the next armed read replaces it.
#[cfg(feature = "sqlite")]
async fn sqlite_read(
    state: &RestState,
    db: &DatabaseConnection,
    limit: Duration,
    select: Statement,
    count: Option<Statement>,
) -> Result<(Vec<QueryResult>, Option<u64>)> {
    let mut conn = db
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(sqlx_err)?;
    let armed = Disarm(Arc::new(AtomicBool::new(true)));
    // On core's single connection, writes rely on the shared handler: keep
    // it installed and arm its deadline while this read holds the connection.
    let _shared = match &state.sqlite_writes {
        Some(writes) if writes.shared => {
            // One hop to the driver's thread less per read while the
            // shared handler is known to be in place.
            if !writes.fresh() {
                writes.install(&mut conn).await.map_err(sqlx_err)?;
            }
            let hold = WriteDeadline::new(Arc::clone(writes));
            hold.arm();
            Some(hold)
        }
        _ => {
            let deadline = Instant::now() + limit;
            let armed = Arc::clone(&armed.0);
            let mut handle = conn.lock_handle().await.map_err(sqlx_err)?;
            handle.set_progress_handler(1000, move || {
                !armed.load(Ordering::Relaxed) || Instant::now() < deadline
            });
            None
        }
    };
    let result = async {
        let rows = query(&select)
            .fetch_all(&mut *conn)
            .await
            .map_err(sqlx_err)?;
        let total = match &count {
            None => None,
            Some(stmt) => {
                use sqlx::Row;
                let row = query(stmt)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(sqlx_err)?;
                let n: i64 = match row {
                    Some(r) => r.try_get(0).map_err(sqlx_err)?,
                    None => 0,
                };
                Some(n.max(0) as u64)
            }
        };
        Ok::<_, RestError>((rows.into_iter().map(QueryResult::from).collect(), total))
    }
    .await;
    drop(armed);
    result
}

/// SQLite: REST's own read connections, outside any sqlx pool.
///
/// Reading through core's pool costs three hops to the connection's driver
/// thread per request (sqlx pings a connection when it is acquired and again,
/// from a spawned task, when it is released) besides the statement itself;
/// on a small machine those thread wake-ups were most of a by-id read's CPU.
/// These connections are opened lazily with core's connect options (the same
/// file, or the same shared-cache in-memory database) and used directly: one
/// hop per statement. Each carries a progress handler installed once as it
/// connects, reading a deadline of its own, so a read under the statement
/// timeout arms and disarms it with an atomic store instead of a hop.
///
/// Committed writes on core's connections are visible to the next read here
/// (a read starts its own read transaction); an in-memory database's shared
/// cache makes a read wait (SQLite's unlock notification) while a write
/// transaction holds its table, as a reader on core's single connection
/// waited for the connection itself.
#[cfg(feature = "sqlite")]
pub struct SqliteReads {
    options: sqlx::sqlite::SqliteConnectOptions,
    slots: Vec<tokio::sync::Mutex<Option<ReadConn>>>,
    base: Instant,
}

/// One of [`SqliteReads`]' connections and its deadline (ns since the
/// reads' `base`; 0: disarmed).
#[cfg(feature = "sqlite")]
struct ReadConn {
    conn: sqlx::SqliteConnection,
    deadline: Arc<std::sync::atomic::AtomicU64>,
}

#[cfg(feature = "sqlite")]
impl SqliteReads {
    /// Read connections for `core`'s SQLite database, at most `size` (at
    /// least one); `None` when a second connection would not see the same
    /// database (an in-memory database with a private cache).
    pub fn new(core: &DatabaseConnection, url: Option<&str>, size: u32) -> Option<Self> {
        let options = (*core.get_sqlite_connection_pool().connect_options()).clone();
        let memory = url.is_some_and(|u| u.contains(":memory:") || u.contains("mode=memory"));
        if memory && url.is_some_and(|u| u.contains("cache=private")) {
            return None;
        }
        let slots = (0..size.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Some(Self {
            options,
            slots,
            base: Instant::now(),
        })
    }

    /// Whether these connections open `core`'s database.
    pub fn serves(&self, core: &DatabaseConnection) -> bool {
        core.get_sqlite_connection_pool()
            .connect_options()
            .get_filename()
            == self.options.get_filename()
    }

    /// A free connection slot: the first free one (so few connections open
    /// under light load), else waits for the first.
    async fn slot(&self) -> tokio::sync::MutexGuard<'_, Option<ReadConn>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        // `slots` is never empty (see `new`).
        let n = self.slots.len();
        let i = usize::try_from(self.base.elapsed().subsec_nanos()).unwrap_or(0) % n.max(1);
        self.slots[i].lock().await
    }

    async fn connect(&self) -> std::result::Result<ReadConn, sqlx::Error> {
        use sqlx::ConnectOptions as _;
        let mut conn = self.options.connect().await?;
        let deadline = Arc::new(std::sync::atomic::AtomicU64::new(0));
        conn.lock_handle()
            .await?
            .set_progress_handler(1000, progress(Arc::clone(&deadline), self.base));
        Ok(ReadConn { conn, deadline })
    }

    /// Runs a read's SELECT (and COUNT) on one of the connections, under
    /// `limit` when given.
    ///
    /// # Errors
    /// [`RestError::StatementTimeout`] past the deadline, any database error.
    pub async fn fetch(
        &self,
        limit: Option<Duration>,
        select: Statement,
        count: Option<Statement>,
    ) -> Result<(Vec<QueryResult>, Option<u64>)> {
        let mut slot = self.slot().await;
        let rc = match &mut *slot {
            Some(rc) => rc,
            empty => empty.insert(self.connect().await.map_err(sqlx_err)?),
        };
        let armed = limit.map(|limit| {
            let at = (self.base.elapsed() + limit).as_nanos();
            let token = u64::try_from(at).unwrap_or(u64::MAX).max(1);
            rc.deadline.store(token, Ordering::Relaxed);
            Disarmed(Arc::clone(&rc.deadline))
        });
        let result = sqlite_statements(&mut rc.conn, &select, count.as_ref()).await;
        drop(armed);
        if let Err(err) = &result
            && matches!(
                err,
                sqlx::Error::WorkerCrashed | sqlx::Error::Io(_) | sqlx::Error::Protocol(_)
            )
        {
            // A broken connection is opened anew by the next read.
            *slot = None;
        }
        result.map_err(sqlx_err)
    }
}

/// Zeroes a [`ReadConn`]'s deadline when dropped (also when the request is
/// cancelled mid-query).
#[cfg(feature = "sqlite")]
struct Disarmed(Arc<std::sync::atomic::AtomicU64>);

#[cfg(feature = "sqlite")]
impl Drop for Disarmed {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A read's SELECT (and COUNT) on one SQLite connection.
#[cfg(feature = "sqlite")]
async fn sqlite_statements(
    conn: &mut sqlx::SqliteConnection,
    select: &Statement,
    count: Option<&Statement>,
) -> std::result::Result<(Vec<QueryResult>, Option<u64>), sqlx::Error> {
    use sqlx::Row;
    let rows = query(select).fetch_all(&mut *conn).await?;
    let total = match count {
        None => None,
        Some(stmt) => {
            let n: i64 = match query(stmt).fetch_optional(&mut *conn).await? {
                Some(r) => r.try_get(0)?,
                None => 0,
            };
            Some(n.max(0) as u64)
        }
    };
    Ok((rows.into_iter().map(QueryResult::from).collect(), total))
}

/// PostgreSQL: a read whose only setting is the statement timeout. The
/// transaction opens with `BEGIN; SET LOCAL statement_timeout = N` (N is
/// our own integer, not request text) in one simple-query round trip
/// instead of sea-orm's BEGIN plus a `set_config` statement; sqlx's
/// transaction guard rolls back if the request is dropped midway.
#[cfg(feature = "postgres")]
async fn pg_read(
    db: &DatabaseConnection,
    ms: u64,
    select: Statement,
    count: Option<Statement>,
) -> Result<(Vec<QueryResult>, Option<u64>)> {
    let mut tx = db
        .get_postgres_connection_pool()
        .begin_with(sqlx::AssertSqlSafe(format!(
            "BEGIN; SET LOCAL statement_timeout = {ms}"
        )))
        .await
        .map_err(sqlx_err)?;
    let rows = pg_query(&select)
        .fetch_all(&mut *tx)
        .await
        .map_err(sqlx_err)?;
    let total = match &count {
        None => None,
        Some(stmt) => {
            use sqlx::Row;
            let row = pg_query(stmt)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sqlx_err)?;
            let n: i64 = match row {
                Some(r) => r.try_get(0).map_err(sqlx_err)?,
                None => 0,
            };
            Some(n.max(0) as u64)
        }
    };
    // A read has nothing to commit: dropping the transaction queues its
    // ROLLBACK, which sqlx sends together with the ping it does anyway when
    // the connection goes back to the pool — one round trip less than
    // COMMIT, and the settings end with the transaction all the same.
    drop(tx);
    Ok((rows.into_iter().map(QueryResult::from).collect(), total))
}

/// PostgreSQL: REST's pool for reads whose only per-request setting would
/// be the statement timeout. Its connections are opened with core's
/// connect options plus `statement_timeout = ms` as a startup parameter,
/// so such a read is one plain query — no `BEGIN; SET LOCAL …`, no
/// transaction — under the same limit (`statement_timeout` applies per
/// statement either way). Same size as core's pool; connects lazily and
/// keeps no connection open before the first read. Core's connections
/// keep their own timeout.
#[cfg(feature = "postgres")]
pub fn pg_read_pool(core: &DatabaseConnection, ms: u64) -> sqlx::PgPool {
    let pool = core.get_postgres_connection_pool();
    let options = (*pool.connect_options())
        .clone()
        .options([("statement_timeout", ms.to_string())]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .min_connections(0)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .idle_timeout(pool.options().get_idle_timeout())
        .max_lifetime(pool.options().get_max_lifetime())
        .connect_lazy_with(options)
}

/// Runs a read's SELECT (and COUNT) on REST's read pool ([`pg_read_pool`]).
#[cfg(feature = "postgres")]
async fn pg_fetch(
    pool: &sqlx::PgPool,
    select: Statement,
    count: Option<Statement>,
) -> Result<(Vec<QueryResult>, Option<u64>)> {
    let mut conn = pool.acquire().await.map_err(sqlx_err)?;
    let rows = pg_query(&select)
        .fetch_all(&mut *conn)
        .await
        .map_err(sqlx_err)?;
    let total = match &count {
        None => None,
        Some(stmt) => {
            use sqlx::Row;
            let row = pg_query(stmt)
                .fetch_optional(&mut *conn)
                .await
                .map_err(sqlx_err)?;
            let n: i64 = match row {
                Some(r) => r.try_get(0).map_err(sqlx_err)?,
                None => 0,
            };
            Some(n.max(0) as u64)
        }
    };
    Ok((rows.into_iter().map(QueryResult::from).collect(), total))
}

/// A sea-query statement as a sqlx PostgreSQL query (values bound).
#[cfg(feature = "postgres")]
fn pg_query(
    stmt: &Statement,
) -> sqlx::query::Query<'_, sqlx::Postgres, sea_query_sqlx::SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or_else(|| goforward_core::sea_query::Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.as_str()),
        sea_query_sqlx::SqlxValues(values),
    )
}

/// SQLite: the statement timeout of writes (`rest.statement_timeout_ms`).
///
/// A write's transaction is begun by core's record-hook runner, which does
/// not expose its connection, so the progress handler cannot be armed on it
/// after the fact. Instead writes begin on a pool whose every connection
/// carries a handler reading one shared deadline, armed by the write's
/// first statement (inside the transaction) and disarmed when the write
/// ends:
/// - a file database: a pool of its own with **one** connection (SQLite
///   has one writer at a time anyway), opened with core's options, whose
///   handler is installed as it connects — while a write's transaction is
///   open nobody else uses that connection;
/// - core's pool when it has a single connection (`:memory:`): the handler
///   is (re)installed before each write and by every read of ours, which
///   arm the same deadline while they hold the connection.
#[cfg(feature = "sqlite")]
pub struct SqliteWrites {
    db: DatabaseConnection,
    deadline: Arc<std::sync::atomic::AtomicU64>,
    base: Instant,
    limit: Duration,
    shared: bool,
    /// When the shared handler was last installed (ns since `base`; 0: never).
    installed: std::sync::atomic::AtomicU64,
}

/// How long a shared handler is trusted before it is installed again.
#[cfg(feature = "sqlite")]
const REINSTALL: Duration = Duration::from_secs(1);

#[cfg(feature = "sqlite")]
impl SqliteWrites {
    /// Write guard for `core`'s database (SQLite) under `limit`. Connects
    /// lazily: nothing is opened before the first write.
    pub fn new(core: &DatabaseConnection, limit: Duration) -> Self {
        let deadline = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let base = Instant::now();
        let pool = core.get_sqlite_connection_pool();
        let shared = pool.options().get_max_connections() <= 1;
        let db = if shared {
            core.clone()
        } else {
            let handler = (Arc::clone(&deadline), base);
            let own = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .after_connect(move |conn, _meta| {
                    let (deadline, base) = handler.clone();
                    Box::pin(async move {
                        let mut handle = conn.lock_handle().await?;
                        handle.set_progress_handler(1000, progress(deadline, base));
                        Ok(())
                    })
                })
                .connect_lazy_with((*pool.connect_options()).clone());
            goforward_core::sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(own)
        };
        Self {
            db,
            deadline,
            base,
            limit,
            shared,
            installed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether the shared handler was installed less than a second ago.
    fn fresh(&self) -> bool {
        let at = self.installed.load(Ordering::Relaxed);
        at != 0 && self.base.elapsed().as_nanos() < u128::from(at) + REINSTALL.as_nanos()
    }

    /// The database writes begin their transaction on.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Before a write: on core's single connection, (re)installs the shared
    /// handler (another user of the connection may have replaced it).
    ///
    /// # Errors
    /// The pool's error.
    pub async fn prepare(&self) -> std::result::Result<(), DbErr> {
        if !self.shared || self.fresh() {
            return Ok(());
        }
        let mut conn = self
            .db
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        self.install(&mut conn)
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))
    }

    async fn install(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> std::result::Result<(), sqlx::Error> {
        let mut handle = conn.lock_handle().await?;
        handle.set_progress_handler(1000, progress(Arc::clone(&self.deadline), self.base));
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.installed.store(now.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Arms the deadline `limit` from now; the token disarms it.
    fn arm(&self) -> u64 {
        let at = (self.base.elapsed() + self.limit).as_nanos();
        let token = u64::try_from(at).unwrap_or(u64::MAX).max(1);
        self.deadline.store(token, Ordering::Relaxed);
        token
    }

    /// Disarms the deadline if it is still `token`'s (a later user may
    /// have armed its own meanwhile).
    fn disarm(&self, token: u64) {
        let _ = self
            .deadline
            .compare_exchange(token, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The progress handler of [`SqliteWrites`]: continue unless armed and past
/// the deadline.
#[cfg(feature = "sqlite")]
fn progress(
    deadline: Arc<std::sync::atomic::AtomicU64>,
    base: Instant,
) -> impl FnMut() -> bool + Send + 'static {
    move || {
        let at = deadline.load(Ordering::Relaxed);
        at == 0 || base.elapsed().as_nanos() < u128::from(at)
    }
}

/// One write's (or shared-connection read's) hold on the [`SqliteWrites`]
/// deadline: armed once by [`WriteDeadline::arm`], disarmed when dropped —
/// also when the request is cancelled midway.
#[cfg(feature = "sqlite")]
pub struct WriteDeadline {
    writes: Arc<SqliteWrites>,
    token: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "sqlite")]
impl WriteDeadline {
    /// A disarmed hold on `writes`.
    pub fn new(writes: Arc<SqliteWrites>) -> Self {
        Self {
            writes,
            token: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The guard's database.
    pub fn db(&self) -> &DatabaseConnection {
        self.writes.db()
    }

    /// See [`SqliteWrites::prepare`].
    ///
    /// # Errors
    /// The pool's error.
    pub async fn prepare(&self) -> std::result::Result<(), DbErr> {
        self.writes.prepare().await
    }

    /// Arms the deadline the first time (the write's first statement);
    /// later calls keep it.
    pub fn arm(&self) {
        if self.token.load(Ordering::Relaxed) == 0 {
            self.token.store(self.writes.arm(), Ordering::Relaxed);
        }
    }
}

#[cfg(feature = "sqlite")]
impl Drop for WriteDeadline {
    fn drop(&mut self) {
        let token = self.token.load(Ordering::Relaxed);
        if token != 0 {
            self.writes.disarm(token);
        }
    }
}

/// Disarms a progress handler when dropped — also when the request is
/// cancelled mid-query, so the pooled connection never carries a live deadline.
#[cfg(feature = "sqlite")]
struct Disarm(Arc<AtomicBool>);

#[cfg(feature = "sqlite")]
impl Drop for Disarm {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A sea-query statement as a sqlx SQLite query (values bound).
#[cfg(feature = "sqlite")]
fn query(stmt: &Statement) -> sqlx::query::Query<'_, sqlx::Sqlite, sea_query_sqlx::SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or_else(|| goforward_core::sea_query::Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(stmt.sql.as_str()),
        sea_query_sqlx::SqlxValues(values),
    )
}
