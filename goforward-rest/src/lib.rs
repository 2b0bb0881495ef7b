//! GoForward's PostgREST-compatible data API, mounted at `/rest/v1`, so
//! supabase-js's `from(table)` works unmodified on SQLite and PostgreSQL.
//!
//! Only tables with a policy are reachable: policies registered by any
//! plugin or the host in core's policy registry, or given here with
//! [`Rest::table`]. Every request goes through core's access control: the
//! policy's row filter is ANDed into the SQL, written rows are checked
//! against it, and every committed write runs through core's record hooks and
//! is announced on the bus.
//!
//! ```no_run
//! use goforward_core::access::TablePolicy;
//! use goforward_rest::Rest;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(
//!     Rest::new()
//!         .table("todos", TablePolicy::owner("user_id"))
//!         .hide_columns("todos", ["internal_note"]),
//! )
//! # }
//! ```
//!
//! See `docs/rest.md` for the supported grammar, headers and limits.
#![deny(clippy::unwrap_used, clippy::print_stdout)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod error;
pub mod handlers;
#[cfg(feature = "meta")]
pub mod meta;
#[cfg(feature = "postgres")]
pub mod notify;
pub mod output;
pub mod plan;
pub mod query;
pub mod schema;

use std::{collections::HashMap, sync::Arc};

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{Context, Error, Plugin, Principal, access::Policy, error::ApiErrorFormat};
use serde::Deserialize;

pub use error::{PostgrestErrorFormat, RestError};
pub use handlers::rpc::RpcCall;
pub use handlers::{TxEnd, columns::ColumnPolicy};
pub use query::Limits;
pub use schema::{Schema, SchemaCache};

use handlers::RestState;

/// The `[rest]` config section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestConfig {
    /// Most rows one response carries (an explicit larger `limit` is refused).
    pub max_rows: u64,
    /// Bytes of the whole query string.
    pub max_query_len: usize,
    /// Conditions in all filters together.
    pub max_conditions: usize,
    /// Aggregates in `select` (`count()`, `col.sum()`, …); off by default
    /// like PostgREST's `db-aggregates-enabled` (they can scan whole tables).
    pub aggregates_enabled: bool,
    /// PostgREST's `db-tx-end`: `commit` (default), `commit-allow-override`,
    /// `rollback`, `rollback-allow-override` (`Prefer: tx=` honoured with the
    /// `-allow-override` forms only).
    pub tx_end: TxEnd,
    /// Longest one request's statement may run, in milliseconds (0: no
    /// limit of ours). PostgreSQL cancels it (`SET LOCAL statement_timeout`);
    /// SQLite reads are interrupted. Answers 500 `57014`.
    pub statement_timeout_ms: u64,
    /// PostgreSQL: run each request as the caller's database role with
    /// `request.jwt.claims` set (`SET LOCAL`), so real RLS policies apply
    /// on top of the query-rewriting ones.
    pub native_rls: bool,
    /// The roles native RLS mode may switch to (the caller's role claim
    /// must be one of them); each must exist at start.
    pub native_rls_roles: Vec<String>,
}

impl Default for RestConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_rows: 1000,
            max_query_len: limits.max_query_len,
            max_conditions: limits.max_conditions,
            aggregates_enabled: false,
            tx_end: TxEnd::Commit,
            statement_timeout_ms: 8000,
            native_rls: false,
            native_rls_roles: vec!["anon".into(), "authenticated".into()],
        }
    }
}

/// The rest plugin.
#[derive(Clone, Default)]
pub struct Rest {
    tables: Vec<(String, Policy)>,
    hidden: HashMap<String, Vec<String>>,
    max_rows: Option<u64>,
    cache: Arc<SchemaCache>,
    functions: HashMap<String, handlers::rpc::RpcHandler>,
    pg_functions: std::collections::HashSet<String>,
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    column_policies: HashMap<String, ColumnPolicy>,
    aggregates: Option<bool>,
    tx_end: Option<TxEnd>,
    statement_timeout: Option<Option<std::time::Duration>>,
    native_rls: Option<Vec<String>>,
    /// REST's PostgreSQL read pool, made once and shared by every worker.
    #[cfg(feature = "postgres")]
    pg_reads: Arc<std::sync::OnceLock<goforward_core::sea_orm::sqlx::PgPool>>,
    /// REST's SQLite read connections, made once and shared by every worker.
    /// Replaced when the app's database is another one (a restarted test app).
    #[cfg(feature = "sqlite")]
    sqlite_reads: Arc<std::sync::Mutex<Option<Arc<handlers::scope::SqliteReads>>>>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("tables", &self.tables)
            .field("hidden", &self.hidden)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .field("pg_functions", &self.pg_functions)
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// A rest plugin with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exposes `name` under `policy` (registered in core's policy registry at start).
    pub fn table(mut self, name: impl Into<String>, policy: Policy) -> Self {
        self.tables.push((name.into(), policy));
        self
    }

    /// Hides columns of `table`: they cannot be selected, filtered, ordered
    /// or written, and errors answer as if they did not exist.
    pub fn hide_columns<I, S>(mut self, table: impl Into<String>, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hidden
            .entry(table.into())
            .or_default()
            .extend(columns.into_iter().map(Into::into));
        self
    }

    /// Registers `name` at `/rest/v1/rpc/{name}` (supabase-js `rpc(name, args)`):
    /// `f` gets the caller, the named arguments and the database, decides
    /// what the caller may do, and returns JSON (`null` answers 204).
    ///
    /// ```no_run
    /// use goforward_rest::{Rest, RestError};
    /// use serde_json::json;
    ///
    /// let rest = Rest::new().rpc("add", |call| async move {
    ///     let a = call.args.get("a").and_then(|v| v.as_i64()).unwrap_or(0);
    ///     let b = call.args.get("b").and_then(|v| v.as_i64()).unwrap_or(0);
    ///     Ok::<_, RestError>(json!(a + b))
    /// });
    /// ```
    pub fn rpc<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(RpcCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, RestError>> + Send + 'static,
    {
        self.functions
            .insert(name.into(), handlers::rpc::handler(f));
        self
    }

    /// Exposes the PostgreSQL function `public.name` at
    /// `/rest/v1/rpc/{name}` (PostgreSQL only; named `IN` arguments, no
    /// overloads). It runs with the server's database role — RLS does not
    /// apply unless native RLS mode is on — inside a transaction (read-only for GET) where
    /// `current_setting('request.jwt.claims', true)` holds the caller's
    /// claims: check them in the function.
    pub fn function(mut self, name: impl Into<String>) -> Self {
        self.pg_functions.insert(name.into());
        self
    }

    /// Restricts, per role, the columns of `table` that can be read and
    /// written (see [`ColumnPolicy`]; service_role bypasses it).
    pub fn column_policy(mut self, table: impl Into<String>, policy: ColumnPolicy) -> Self {
        self.column_policies.insert(table.into(), policy);
        self
    }

    /// Overrides `rest.aggregates_enabled`.
    pub fn aggregates(mut self, enabled: bool) -> Self {
        self.aggregates = Some(enabled);
        self
    }

    /// Overrides `rest.tx_end`.
    pub fn tx_end(mut self, tx_end: TxEnd) -> Self {
        self.tx_end = Some(tx_end);
        self
    }

    /// Overrides `rest.statement_timeout_ms` (`None`: no limit of ours).
    pub fn statement_timeout(mut self, limit: Option<std::time::Duration>) -> Self {
        self.statement_timeout = Some(limit.filter(|d| !d.is_zero()));
        self
    }

    /// Turns native RLS mode on (PostgreSQL) with the roles callers may
    /// assume, overriding `rest.native_rls` / `rest.native_rls_roles`.
    pub fn native_rls<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.native_rls = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    /// Overrides `rest.max_rows`.
    pub fn max_rows(mut self, rows: u64) -> Self {
        self.max_rows = Some(rows);
        self
    }

    /// The schema cache (reload it after DDL with [`SchemaCache::reload`]).
    pub fn schema_cache(&self) -> Arc<SchemaCache> {
        Arc::clone(&self.cache)
    }
}

impl Rest {
    /// The native RLS roles when the mode is on (builder or config).
    fn native_rls_roles(&self, config: &RestConfig) -> Option<Vec<String>> {
        match &self.native_rls {
            Some(roles) => Some(roles.clone()),
            None => config.native_rls.then(|| config.native_rls_roles.clone()),
        }
    }
}

/// Native RLS mode needs PostgreSQL and roles that exist.
async fn check_native_rls(ctx: &Context, roles: &[String]) -> goforward_core::Result<()> {
    use goforward_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = ctx.db();
    if goforward_core::db::backend_of(db) != DbBackend::Postgres {
        return Err(Error::config(
            "rest.native_rls",
            "true",
            "native RLS mode needs PostgreSQL",
        ));
    }
    for role in roles {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT 1 FROM pg_roles WHERE rolname = $1",
                [role.clone().into()],
            ))
            .await
            .map_err(Error::from_db)?;
        if row.is_none() {
            return Err(Error::config(
                "rest.native_rls_roles",
                role,
                "no database role has this name",
            ));
        }
    }
    Ok(())
}

async fn not_found(
    req: HttpRequest,
    principal: Result<Principal, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    principal?;
    Err(ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Could not find the table in the schema cache".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Rest {
    fn name(&self) -> &str {
        "rest"
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let config: RestConfig = ctx.config().section("rest")?;
        if config.max_rows == 0 {
            return Err(Error::config("rest.max_rows", "0", "must be at least 1"));
        }
        if let Some(roles) = self.native_rls_roles(&config) {
            check_native_rls(ctx, &roles).await?;
        }
        for (name, policy) in &self.tables {
            ctx.access().policies().set_table(name, policy.clone());
        }
        // Shared with realtime, which strips the same columns from changes.
        for (name, columns) in &self.hidden {
            ctx.access()
                .policies()
                .set_hidden_columns(name, columns.iter().cloned());
        }
        self.cache
            .reload(ctx.db())
            .await
            .map_err(|e| Error::Plugin {
                plugin: "rest".into(),
                message: format!("schema introspection failed: {e}"),
            })?;
        #[cfg(feature = "postgres")]
        if goforward_core::db::backend_of(ctx.db()) == goforward_core::sea_orm::DbBackend::Postgres
        {
            let task = notify::spawn(
                ctx.config().database_url().to_owned(),
                ctx.db().clone(),
                Arc::clone(&self.cache),
            );
            if let Ok(mut slot) = self.listener.lock()
                && let Some(old) = slot.replace(task)
            {
                old.abort();
            }
        }
        Ok(())
    }

    async fn shutdown(&self) {
        let task = self.listener.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task {
            task.abort();
        }
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        let config: RestConfig = ctx.config().section("rest").unwrap_or_default();
        let limits = Limits {
            max_query_len: config.max_query_len,
            max_conditions: config.max_conditions,
            ..Limits::default()
        };
        let statement_timeout = self.statement_timeout.unwrap_or_else(|| {
            (config.statement_timeout_ms > 0)
                .then(|| std::time::Duration::from_millis(config.statement_timeout_ms))
        });
        #[cfg(feature = "sqlite")]
        let sqlite_writes = match (statement_timeout, goforward_core::db::backend_of(ctx.db())) {
            (Some(limit), goforward_core::sea_orm::DbBackend::Sqlite) => Some(Arc::new(
                handlers::scope::SqliteWrites::new(ctx.db(), limit),
            )),
            _ => None,
        };
        #[cfg(feature = "sqlite")]
        let sqlite_reads = match goforward_core::db::backend_of(ctx.db()) {
            goforward_core::sea_orm::DbBackend::Sqlite => {
                let mut shared = self.sqlite_reads.lock().unwrap_or_else(|p| p.into_inner());
                match &*shared {
                    Some(reads) if reads.serves(ctx.db()) => Some(Arc::clone(reads)),
                    _ => {
                        let db = &ctx.config().database;
                        let reads = handlers::scope::SqliteReads::new(
                            ctx.db(),
                            db.url.as_deref(),
                            db.max_connections,
                        )
                        .map(Arc::new);
                        shared.clone_from(&reads);
                        reads
                    }
                }
            }
            _ => None,
        };
        // Reads whose only setting would be a `SET LOCAL statement_timeout`
        // run on a pool whose connections carry that limit instead.
        #[cfg(feature = "postgres")]
        let pg_reads = match (statement_timeout, goforward_core::db::backend_of(ctx.db())) {
            (Some(limit), goforward_core::sea_orm::DbBackend::Postgres) => {
                let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
                let connection = ctx.config().database.statement_timeout_ms;
                (ms > 0 && (connection == 0 || ms < connection)).then(|| {
                    self.pg_reads
                        .get_or_init(|| handlers::scope::pg_read_pool(ctx.db(), ms))
                        .clone()
                })
            }
            _ => None,
        };
        let state = RestState {
            ctx: ctx.clone(),
            cache: Arc::clone(&self.cache),
            hidden: Arc::new(self.hidden.clone()),
            limits,
            max_rows: self.max_rows.unwrap_or(config.max_rows).max(1),
            functions: Arc::new(self.functions.clone()),
            pg_functions: Arc::new(self.pg_functions.clone()),
            column_policies: Arc::new(self.column_policies.clone()),
            aggregates: self.aggregates.unwrap_or(config.aggregates_enabled),
            tx_end: self.tx_end.unwrap_or(config.tx_end),
            known_zones: Arc::default(),
            star_lists: Arc::default(),
            statement_timeout,
            #[cfg(feature = "sqlite")]
            sqlite_writes,
            #[cfg(feature = "sqlite")]
            sqlite_reads,
            #[cfg(feature = "postgres")]
            pg_reads,
            native_rls: self
                .native_rls_roles(&config)
                .filter(|_| {
                    goforward_core::db::backend_of(ctx.db())
                        == goforward_core::sea_orm::DbBackend::Postgres
                })
                .map(|roles| Arc::new(handlers::scope::NativeRls { roles })),
        };
        cfg.service(
            ctx.api_scope("/rest/v1", "rest", PostgrestErrorFormat)
                .app_data(web::Data::new(state))
                // One resource for every verb on a table, matched first: a
                // request tests one pattern, not one per route (single-segment
                // paths only; the other routes have none or two).
                .service(
                    web::resource("/{table}")
                        .route(web::get().to(handlers::read::get))
                        .route(web::head().to(handlers::read::get))
                        .route(web::post().to(handlers::write::post))
                        .route(web::patch().to(handlers::write::patch))
                        .route(web::delete().to(handlers::write::delete))
                        // Other methods answer as before, when no route matched.
                        .default_service(web::to(not_found)),
                )
                .route("/_schema/reload", web::post().to(handlers::admin::reload))
                .route("/rpc/{name}", web::post().to(handlers::rpc::call))
                .route("/rpc/{name}", web::get().to(handlers::rpc::call))
                .route("/rpc/{name}", web::head().to(handlers::rpc::call))
                .route("/", web::get().to(handlers::openapi::spec))
                .route("", web::get().to(handlers::openapi::spec))
                .default_service(web::to(not_found)),
        );
    }
}
