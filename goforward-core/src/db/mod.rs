//! Database connection: SQLite (embedded default) and PostgreSQL from one URL.
//!
//! SQLite connections get WAL journaling, foreign keys, a busy timeout and
//! case-sensitive `LIKE` (so `LIKE` means the same on both backends).
//! PostgreSQL connections get the configured `statement_timeout`.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
};

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (`sqlite:` URLs).
    Sqlite,
    /// PostgreSQL (`postgres:` / `postgresql:` URLs).
    Postgres,
}

impl Backend {
    /// Detects the backend from a URL's scheme.
    ///
    /// # Errors
    /// [`Error::Config`] naming `database.url` for any other scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(Error::config(
                "database.url",
                redact_url(url),
                "unknown database scheme: expected `sqlite:` or `postgres://`",
            )),
        }
    }
}

/// Connects with the given settings.
///
/// # Errors
/// [`Error::Config`] for a malformed URL or unknown scheme,
/// [`Error::DatabaseUnavailable`] when the server cannot be reached.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection> {
    let url = config
        .url
        .as_deref()
        .ok_or_else(|| Error::config("database.url", "", "no database URL resolved"))?;
    let backend = Backend::from_url(url)?;
    if backend == Backend::Postgres {
        url::Url::parse(url).map_err(|e| {
            Error::config(
                "database.url",
                redact_url(url),
                format!("malformed URL: {e}"),
            )
        })?;
    }
    let in_memory =
        backend == Backend::Sqlite && url.contains(":memory:") || url.contains("mode=memory");

    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(if in_memory { 1 } else { config.max_connections })
        .min_connections(if in_memory {
            1
        } else {
            config.min_connections.min(config.max_connections)
        })
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .sqlx_logging(false);
    if in_memory {
        // Every pooled connection to `:memory:` would be its own empty database.
        opts.idle_timeout(None).max_lifetime(None);
    }
    if backend == Backend::Sqlite {
        // sqlx pings a connection when it goes back to the pool and, by
        // default, again when it is taken out. A SQLite connection lives in
        // this process and cannot be dropped by a server or a network
        // between the two, so the second ping only costs a round trip to
        // the connection's thread on every statement.
        opts.test_before_acquire(false);
    }
    if backend == Backend::Postgres && config.statement_timeout_ms > 0 {
        opts.statement_timeout(Duration::from_millis(config.statement_timeout_ms));
    }
    #[cfg(feature = "sqlite")]
    {
        let busy = Duration::from_millis(config.acquire_timeout_ms.max(1000));
        opts.map_sqlx_sqlite_opts(move |o| {
            o.foreign_keys(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                // WAL + NORMAL: a commit survives a crash of the process and
                // is fsynced at checkpoints (SQLite's recommendation for WAL;
                // a power cut may lose the last commits, never corrupt).
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .create_if_missing(true)
                .pragma("case_sensitive_like", "ON")
        });
    }

    let db = Database::connect(opts).await.map_err(|err| match &err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
            if matches!(**e, sea_orm::sqlx::Error::Configuration(_)) =>
        {
            Error::config(
                "database.url",
                redact_url(url),
                format!("malformed URL: {e}"),
            )
        }
        _ => Error::DatabaseUnavailable(err),
    })?;
    Ok(db)
}

/// Connects to `url` with default pool settings (tests, tools).
///
/// # Errors
/// As [`connect`].
pub async fn connect_url(url: &str) -> Result<DatabaseConnection> {
    connect(&DatabaseConfig {
        url: Some(url.to_owned()),
        ..DatabaseConfig::default()
    })
    .await
}

/// Runs a trivial query: `Ok` when the database answers.
///
/// # Errors
/// [`Error::DatabaseUnavailable`] when it does not.
pub async fn ping(db: &DatabaseConnection) -> Result<()> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(|_| ())
        .map_err(Error::DatabaseUnavailable)
}

/// True when `err` means the database could not be reached (pool timeout,
/// connection refused or reset, server shutting down).
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                **e,
                sea_orm::sqlx::Error::Io(_)
                    | sea_orm::sqlx::Error::PoolTimedOut
                    | sea_orm::sqlx::Error::PoolClosed
                    | sea_orm::sqlx::Error::WorkerCrashed
            ) || e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
        }
        _ => false,
    }
}

/// The sea-orm backend of a connection.
pub fn backend_of(db: &DatabaseConnection) -> DbBackend {
    db.get_database_backend()
}

/// Replaces the password in a URL with `***` for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
