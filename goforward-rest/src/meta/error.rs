//! [`MetaError`]: how a database management call fails, in GoForward's own
//! wire shape `{"code": "meta.…", "message": "…", "details": {…}}`.
//!
//! Client mistakes carry a stable code and a message written here (never
//! driver text); database faults answer an opaque 500 and are logged once.

use std::ops::Deref;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use goforward_core::{
    Error,
    error::{ErrorFormat, goforward_body, log_if_server_fault},
    sea_orm::{DbErr, RuntimeErr, sqlx},
};
use serde_json::{Value, json};

/// Result alias of the meta API.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// A failed meta API call.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The caller lacks the administrator capability (403 `meta.forbidden`).
    #[error("this requires the {0} capability")]
    Forbidden(&'static str),
    /// An identifier is not acceptable (400 `meta.invalid_identifier`).
    #[error("invalid identifier {name:?}: {problem}")]
    InvalidIdentifier {
        /// The identifier as sent.
        name: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// The request body or query is malformed (400 `meta.invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The table or view does not exist (404 `meta.table_not_found`).
    #[error("table {0:?} does not exist")]
    TableNotFound(String),
    /// The column does not exist (404 `meta.column_not_found`).
    #[error("column {table:?}.{column:?} does not exist")]
    ColumnNotFound {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
    },
    /// The constraint or index does not exist (404 `meta.constraint_not_found`).
    #[error("{kind} {name:?} does not exist")]
    ConstraintNotFound {
        /// `foreign key`, `index`, `check constraint`, `policy`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The migration does not exist (404 `meta.migration_not_found`).
    #[error("migration {0} does not exist or is already reverted")]
    MigrationNotFound(i64),
    /// Something of that name already exists (409 `meta.already_exists`).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Other tables reference the table (409 `meta.table_referenced`).
    #[error(
        "table {table:?} is referenced by {referenced_by:?}; pass cascade=true to drop those foreign keys too"
    )]
    Referenced {
        /// The table to drop.
        table: String,
        /// Tables holding foreign keys to it.
        referenced_by: Vec<String>,
    },
    /// Existing rows conflict with the change (409 `meta.data_conflict`):
    /// a NOT NULL on a column with NULLs, a unique index over duplicates, a
    /// foreign key that existing rows violate, a value that cannot be converted.
    #[error("existing rows conflict with this change: {0}")]
    DataConflict(&'static str),
    /// A check constraint or trigger reads the column a change would drop
    /// (409 `meta.column_in_use`); drop that first.
    #[error("column {table:?}.{column:?} is used by {used_by}; drop that first")]
    ColumnInUse {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// What reads it, e.g. `check constraint "price_positive"`.
        used_by: String,
    },
    /// Only the most recent applied migration can be reverted (409 `meta.not_latest`).
    #[error("only the latest applied migration ({latest}) can be reverted")]
    NotLatest {
        /// The latest applied migration.
        latest: i64,
    },
    /// The backend cannot do this (400 `meta.unsupported`).
    #[error("{0}")]
    Unsupported(String),
    /// An import row is bad; in atomic mode nothing was imported (400 `meta.import_rejected`).
    #[error("row {row}: {message}; nothing was imported")]
    ImportRejected {
        /// The data row (from 1, the CSV header not counted).
        row: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The SQL runner is not enabled (404 `meta.sql_disabled`).
    #[error("the SQL runner is not enabled")]
    SqlDisabled,
    /// The SQL runner only serves loopback clients (403 `meta.sql_remote_refused`).
    #[error("the SQL runner only accepts loopback clients")]
    SqlRemote,
    /// The runner's secret header is missing or wrong (401 `meta.sql_locked`).
    #[error("the SQL runner needs its admin secret in the x-goforward-sql-secret header")]
    SqlLocked,
    /// The statement ran past the time limit and was cancelled (408 `meta.sql_timeout`).
    #[error("the statement was cancelled: it exceeded the time limit")]
    SqlTimeout,
    /// A write in read-only mode (400 `meta.sql_read_only`).
    #[error("the statement tried to write in read-only mode")]
    SqlReadOnly,
    /// The runner refuses this input (400 `meta.sql_refused`).
    #[error("{0}")]
    SqlRefused(&'static str),
    /// The database rejected the administrator's SQL (400 `meta.sql_error`;
    /// the database's message is part of the runner's answer).
    #[error("the database rejected the statement")]
    SqlError {
        /// SQLSTATE (PostgreSQL) or extended result code (SQLite).
        sqlstate: String,
        /// The database's message.
        message: String,
    },
    /// A core error (database unavailable, internal…), rendered by core's rules.
    #[error(transparent)]
    Core(#[from] Error),
}

impl MetaError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden(_) => "meta.forbidden",
            Self::InvalidIdentifier { .. } => "meta.invalid_identifier",
            Self::InvalidRequest(_) => "meta.invalid_request",
            Self::TableNotFound(_) => "meta.table_not_found",
            Self::ColumnNotFound { .. } => "meta.column_not_found",
            Self::ConstraintNotFound { .. } => "meta.constraint_not_found",
            Self::MigrationNotFound(_) => "meta.migration_not_found",
            Self::AlreadyExists(_) => "meta.already_exists",
            Self::Referenced { .. } => "meta.table_referenced",
            Self::DataConflict(_) => "meta.data_conflict",
            Self::ColumnInUse { .. } => "meta.column_in_use",
            Self::NotLatest { .. } => "meta.not_latest",
            Self::Unsupported(_) => "meta.unsupported",
            Self::ImportRejected { .. } => "meta.import_rejected",
            Self::SqlDisabled => "meta.sql_disabled",
            Self::SqlRemote => "meta.sql_remote_refused",
            Self::SqlLocked => "meta.sql_locked",
            Self::SqlTimeout => "meta.sql_timeout",
            Self::SqlReadOnly => "meta.sql_read_only",
            Self::SqlRefused(_) => "meta.sql_refused",
            Self::SqlError { .. } => "meta.sql_error",
            Self::Core(e) => e.code(),
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::InvalidIdentifier { name, problem } => {
                json!({"identifier": name, "problem": problem})
            }
            Self::Referenced {
                table,
                referenced_by,
            } => json!({"table": table, "referenced_by": referenced_by}),
            Self::NotLatest { latest } => json!({"latest": latest}),
            Self::ColumnInUse {
                table,
                column,
                used_by,
            } => json!({"table": table, "column": column, "used_by": used_by}),
            Self::ImportRejected { row, message } => json!({"row": row, "message": message}),
            Self::SqlError { sqlstate, message } => {
                json!({"sqlstate": sqlstate, "message": message})
            }
            _ => Value::Null,
        }
    }

    /// Classifies a database error raised by a change: constraint violations
    /// and failed conversions are the client's (409, no driver text); an
    /// object that already exists is 409; the rest is a server fault.
    pub fn from_db(err: DbErr) -> Self {
        if goforward_core::db::is_unavailable(&err) {
            return Self::Core(Error::DatabaseUnavailable(err));
        }
        let code = match &err {
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                sqlx_code(e.deref())
            }
            _ => None,
        };
        Self::classify(code.as_deref()).unwrap_or_else(|| Self::Core(Error::from_db(err)))
    }

    /// As [`MetaError::from_db`] for a bare sqlx error.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        let code = sqlx_code(&err);
        Self::classify(code.as_deref())
            .unwrap_or_else(|| Self::from_db(DbErr::Exec(RuntimeErr::SqlxError(err.into()))))
    }

    fn classify(code: Option<&str>) -> Option<Self> {
        Some(match code? {
            "23505" | "2067" | "1555" => Self::DataConflict("duplicate values"),
            "23502" | "1299" => Self::DataConflict("NULL values"),
            "23503" | "787" => Self::DataConflict("rows violate a foreign key"),
            "23514" | "275" => Self::DataConflict("rows violate a check constraint"),
            "42804" | "22P02" | "22003" | "22007" | "22008" | "42846" => {
                Self::DataConflict("values cannot be converted to the new type")
            }
            "42P07" | "42710" => Self::AlreadyExists("an object of that name".into()),
            "2BP01" => Self::Referenced {
                table: String::new(),
                referenced_by: Vec::new(),
            },
            _ => return None,
        })
    }
}

fn sqlx_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

impl From<DbErr> for MetaError {
    fn from(err: DbErr) -> Self {
        Self::from_db(err)
    }
}

impl From<crate::RestError> for MetaError {
    /// REST's client errors (a bad filter, a value that does not fit its
    /// column) keep their client-safe message; the rest is a server fault.
    fn from(err: crate::RestError) -> Self {
        match err {
            crate::RestError::Core(e) => Self::Core(e),
            e if e.status_code().is_client_error() => Self::InvalidRequest(e.to_string()),
            e => Self::Core(Error::Internal(e.to_string())),
        }
    }
}

impl ResponseError for MetaError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Forbidden(_) | Self::SqlRemote => StatusCode::FORBIDDEN,
            Self::SqlDisabled => StatusCode::NOT_FOUND,
            Self::SqlLocked => StatusCode::UNAUTHORIZED,
            Self::SqlTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::SqlReadOnly
            | Self::SqlRefused(_)
            | Self::SqlError { .. }
            | Self::ImportRejected { .. } => StatusCode::BAD_REQUEST,
            Self::InvalidIdentifier { .. } | Self::InvalidRequest(_) | Self::Unsupported(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::TableNotFound(_)
            | Self::ColumnNotFound { .. }
            | Self::ConstraintNotFound { .. }
            | Self::MigrationNotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadyExists(_)
            | Self::Referenced { .. }
            | Self::DataConflict(_)
            | Self::ColumnInUse { .. }
            | Self::NotLatest { .. } => StatusCode::CONFLICT,
            Self::Core(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Core(e) = self {
            log_if_server_fault(e);
            return HttpResponse::build(e.status_code()).json(goforward_body(e));
        }
        HttpResponse::build(self.status_code()).json(json!({
            "code": self.code(),
            "message": self.to_string(),
            "details": self.details(),
        }))
    }
}

/// Renders core errors raised inside `/meta/v1` (bad token, bad JSON, rate
/// limit) in GoForward's own shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaErrorFormat;

impl ErrorFormat for MetaErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        goforward_core::http::errors::GoForwardErrorFormat.render(err)
    }
}
