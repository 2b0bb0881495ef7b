//! [`RestError`]: every way a data API request can fail, rendered in
//! PostgREST's wire shape `{"code", "details", "hint", "message"}`.
//!
//! Codes are PostgREST's (`PGRST…`) or the PostgreSQL SQLSTATE PostgREST
//! would pass through (`23505`, `42703`, …), identical on SQLite and
//! PostgreSQL. Messages never carry driver text and never name objects the
//! caller cannot see; 5xx bodies are opaque.

use std::ops::Deref;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use goforward_core::{
    Error,
    error::{ErrorFormat, log_if_server_fault},
    sea_orm::{DbErr, RuntimeErr, sqlx},
};
use serde_json::{Value, json};

/// Result alias of the rest crate.
pub type Result<T, E = RestError> = std::result::Result<T, E>;

/// A failed data API request.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The relation does not exist or is not exposed (404 `PGRST205`).
    #[error("Could not find the table 'public.{0}' in the schema cache")]
    TableNotFound(String),
    /// The function is not registered (404 `PGRST202`).
    #[error("Could not find the function public.{0} in the schema cache")]
    FunctionNotFound(String),
    /// A column named in the query string does not exist (or is hidden) (400 `42703`).
    #[error("column {table}.{column} does not exist")]
    ColumnNotFound {
        /// Table name.
        table: String,
        /// Column as written by the client.
        column: String,
    },
    /// A column named in the body or `columns=` does not exist (400 `PGRST204`).
    #[error("Could not find the '{column}' column of '{table}' in the schema cache")]
    BodyColumnNotFound {
        /// Table name.
        table: String,
        /// Column as written by the client.
        column: String,
    },
    /// The query string does not parse (400 `PGRST100`).
    #[error("{message}")]
    Parse {
        /// What failed to parse.
        message: String,
        /// Why.
        details: String,
    },
    /// The request body is not what the endpoint takes (400 `PGRST102`).
    #[error("{0}")]
    InvalidBody(String),
    /// A value does not fit its column's type (400 `22P02`).
    #[error("invalid input syntax for type {kind}: \"{value}\"")]
    InvalidValue {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The column's type, as the API names it.
        kind: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// The request is beyond a configured limit (400 `PGRST100`-class).
    #[error("{0}")]
    TooComplex(String),
    /// The operator or feature is not available on this backend (400 `PGRST100`).
    #[error("{0}")]
    Unsupported(String),
    /// The requested range is outside the result (416 `PGRST103`).
    #[error("Requested range not satisfiable")]
    InvalidRange {
        /// Why the range is invalid.
        details: String,
    },
    /// The schema named in `Accept-Profile` / `Content-Profile` is not exposed (406 `PGRST106`).
    #[error("Invalid schema: {0}")]
    SchemaNotExposed(String),
    /// The `Accept` header asks for a format we do not produce (406 `PGRST107`).
    #[error("None of these media types are available: {0}")]
    NotAcceptable(String),
    /// `Accept: application/vnd.pgrst.object+json` but not exactly one row (406 `PGRST116`).
    #[error("Cannot coerce the result to a single JSON object")]
    Singular {
        /// How many rows the result has.
        rows: usize,
    },
    /// The caller may not do this at all (`42501`: 401 for anon, 403 otherwise).
    #[error("permission denied for table {table}")]
    PermissionDenied {
        /// Table name.
        table: String,
        /// Whether the caller is anonymous (401) or not (403).
        anonymous: bool,
    },
    /// A written row would fall outside the caller's policy (`42501`).
    #[error("new row violates row-level security policy for table \"{table}\"")]
    PolicyViolation {
        /// Table name.
        table: String,
        /// Whether the caller is anonymous (401) or not (403).
        anonymous: bool,
    },
    /// A write names a column the caller may read but not write (`42501`:
    /// 401 for anon, 403 otherwise).
    #[error("permission denied to write column {column} of table {table}")]
    ColumnNotWritable {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Whether the caller is anonymous (401) or not (403).
        anonymous: bool,
    },
    /// UPDATE / DELETE without any filter (400 `21000`).
    #[error("{verb} requires a WHERE clause")]
    RequiresWhere {
        /// `UPDATE` or `DELETE`.
        verb: &'static str,
    },
    /// No foreign key joins the tables, or the related table is not exposed (400 `PGRST200`).
    #[error(
        "Could not find a relationship between '{parent}' and '{relation}' in the schema cache"
    )]
    RelationshipNotFound {
        /// The parent table.
        parent: String,
        /// The embedded table, as the client named it.
        relation: String,
    },
    /// More than one foreign key joins the tables (300 `PGRST201`): add a hint.
    #[error(
        "Could not embed because more than one relationship was found for '{parent}' and '{relation}'"
    )]
    AmbiguousEmbed {
        /// The parent table.
        parent: String,
        /// The embedded table.
        relation: String,
    },
    /// A spread `...rel()` over a to-many relationship (400 `PGRST119`).
    #[error("A spread operation on '{relation}' is not possible")]
    SpreadToMany {
        /// The parent table.
        parent: String,
        /// The embedded table, as the client named it.
        relation: String,
    },
    /// Aggregates in `select` while `rest.aggregates_enabled` is off (400 `PGRST123`).
    #[error("Use of aggregate functions is not allowed")]
    AggregatesDisabled,
    /// Unknown preferences under `Prefer: handling=strict` (400 `PGRST122`).
    #[error("Invalid preferences given with handling=strict")]
    InvalidPreferences(String),
    /// More rows would change than `Prefer: max-affected` allows (400 `PGRST124`).
    #[error("Query result exceeds max-affected preference constraint")]
    MaxAffected {
        /// How many rows the request would change.
        rows: usize,
    },
    /// `on_conflict` names no primary key or unique constraint (400 `42P10`).
    #[error("there is no unique or exclusion constraint matching the ON CONFLICT specification")]
    NoConflictKey,
    /// The relation cannot be written (a view the database cannot update) (400 `55000`).
    #[error("cannot write to this relation")]
    NotWritable,
    /// A write in a read-only transaction (GET of a function that writes) (405 `25006`).
    #[error("cannot execute a write in a read-only transaction")]
    ReadOnly,
    /// A function raised an exception (400 `P0001`): its own message.
    #[error("{0}")]
    Raised(String),
    /// A unique or primary key constraint was violated (409 `23505`).
    #[error("duplicate key value violates unique constraint")]
    UniqueViolation,
    /// A foreign key constraint was violated (409 `23503`).
    #[error("insert or update on table violates foreign key constraint")]
    ForeignKeyViolation,
    /// A NOT NULL column got no value (400 `23502`).
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation {
        /// Table name.
        table: String,
        /// Column name (empty when only the database knows it).
        column: String,
    },
    /// A CHECK constraint was violated (400 `23514`).
    #[error("new row violates check constraint")]
    CheckViolation,
    /// The statement ran longer than `rest.statement_timeout_ms` and was
    /// cancelled (500 `57014`, as PostgREST answers PostgreSQL's cancel).
    #[error("canceling statement due to statement timeout")]
    StatementTimeout {
        /// The limit, in milliseconds.
        limit_ms: u64,
    },
    /// Native RLS mode: the caller's role is not one the server may switch
    /// to (`rest.native_rls_roles`) (`42501`: 401 for anon, 403 otherwise).
    #[error("permission denied to set role \"{role}\"")]
    RoleNotAllowed {
        /// The role claim (truncated).
        role: String,
        /// Whether the caller is anonymous (401) or not (403).
        anonymous: bool,
    },
    /// An error raised by core (token, access, hook, database unavailable…).
    #[error(transparent)]
    Core(#[from] Error),
}

impl RestError {
    /// A query-string parse error.
    pub fn parse(message: impl Into<String>, details: impl Into<String>) -> Self {
        Self::Parse {
            message: message.into(),
            details: details.into(),
        }
    }

    /// The PostgREST / SQLSTATE code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TableNotFound(_) => "PGRST205",
            Self::FunctionNotFound(_) => "PGRST202",
            Self::ColumnNotFound { .. } => "42703",
            Self::BodyColumnNotFound { .. } => "PGRST204",
            Self::Parse { .. } | Self::TooComplex(_) | Self::Unsupported(_) => "PGRST100",
            Self::InvalidBody(_) => "PGRST102",
            Self::InvalidValue { .. } => "22P02",
            Self::InvalidRange { .. } => "PGRST103",
            Self::SchemaNotExposed(_) => "PGRST106",
            Self::NotAcceptable(_) => "PGRST107",
            Self::Singular { .. } => "PGRST116",
            Self::PermissionDenied { .. }
            | Self::PolicyViolation { .. }
            | Self::ColumnNotWritable { .. } => "42501",
            Self::RequiresWhere { .. } => "21000",
            Self::AmbiguousEmbed { .. } => "PGRST201",
            Self::RelationshipNotFound { .. } => "PGRST200",
            Self::InvalidPreferences(_) => "PGRST122",
            Self::SpreadToMany { .. } => "PGRST119",
            Self::AggregatesDisabled => "PGRST123",
            Self::MaxAffected { .. } => "PGRST124",
            Self::UniqueViolation => "23505",
            Self::NoConflictKey => "42P10",
            Self::ReadOnly => "25006",
            Self::Raised(_) => "P0001",
            Self::NotWritable => "55000",
            Self::ForeignKeyViolation => "23503",
            Self::NotNullViolation { .. } => "23502",
            Self::CheckViolation => "23514",
            Self::StatementTimeout { .. } => "57014",
            Self::RoleNotAllowed { .. } => "42501",
            Self::Core(err) => core_code(err),
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Parse { details, .. } => json!(details),
            Self::InvalidRange { details } => json!(details),
            Self::Singular { rows } => json!(format!("The result contains {rows} rows")),
            Self::ColumnNotWritable { table, column, .. } => {
                json!(format!(
                    "column {table}.{column} is not writable by this role"
                ))
            }
            Self::InvalidValue { table, column, .. } if !column.is_empty() => {
                json!(format!("column {table}.{column}"))
            }
            Self::InvalidPreferences(list) => json!(format!("Invalid preferences: {list}")),
            Self::MaxAffected { rows } => json!(format!("The query affects {rows} rows")),
            Self::StatementTimeout { limit_ms } => {
                json!(format!("The statement ran longer than {limit_ms} ms"))
            }
            Self::SpreadToMany { parent, relation } => json!(format!(
                "'{parent}' and '{relation}' do not form a many-to-one or one-to-one relationship"
            )),
            _ => Value::Null,
        }
    }

    fn hint(&self) -> Value {
        match self {
            Self::SchemaNotExposed(_) => json!("Only the following schemas are exposed: public"),
            _ => Value::Null,
        }
    }

    /// Classifies a database error by its SQLSTATE (PostgreSQL) or extended
    /// result code (SQLite); anything unknown stays an opaque 500.
    pub fn from_db(err: DbErr) -> Self {
        if goforward_core::db::is_unavailable(&err) {
            return Self::Core(Error::DatabaseUnavailable(err));
        }
        let (code, message) = match &err {
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                match e.deref() {
                    sqlx::Error::Database(d) => (
                        d.code().map(|c| c.into_owned()),
                        d.message().chars().take(500).collect::<String>(),
                    ),
                    _ => (None, String::new()),
                }
            }
            _ => (None, String::new()),
        };
        match code.as_deref() {
            // PostgreSQL SQLSTATEs, then SQLite extended codes.
            Some("23505") | Some("2067") | Some("1555") => Self::UniqueViolation,
            Some("23503") | Some("787") => Self::ForeignKeyViolation,
            Some("23502") | Some("1299") => Self::NotNullViolation {
                table: String::new(),
                column: String::new(),
            },
            Some("23514") | Some("275") => Self::CheckViolation,
            Some("42P10") => Self::NoConflictKey,
            Some("25006") => Self::ReadOnly,
            // Native RLS mode: a row-level security check (WITH CHECK) or a
            // missing grant for the caller's role.
            Some("42501") => Self::PolicyViolation {
                table: String::new(),
                anonymous: false,
            },
            // PostgreSQL's statement_timeout; SQLite's interrupt (our progress handler).
            Some("57014") | Some("9") => Self::StatementTimeout { limit_ms: 0 },
            // RAISE EXCEPTION in a function: the message is the function's own.
            Some("P0001") => Self::Raised(message),
            Some("55000") | Some("0A000") | Some("42809") => Self::NotWritable,
            Some("42883") | Some("42804") | Some("22021") | Some("22025") | Some("2201B")
            | Some("22P02") | Some("22007") | Some("22008") | Some("22003") | Some("22023")
            // A tsquery that does not parse (`fts.a b`): only user text reaches it.
            | Some("42601") => {
                Self::InvalidValue {
                    table: String::new(),
                    column: String::new(),
                    kind: "value",
                    value: String::new(),
                }
            }
            _ => Self::Core(Error::from_db(err)),
        }
    }

    /// The core error behind a failed write: a [`RestError`] smuggled through
    /// core's hook runner is unwrapped by the caller; database errors are classified here.
    pub fn from_core(err: Error) -> Self {
        match err {
            Error::Database(db) => Self::from_db(db),
            other => Self::Core(other),
        }
    }

    /// The JSON body in PostgREST's shape.
    pub fn body(&self) -> Value {
        let message = match self {
            Self::Core(err) => err.public_message(),
            Self::NotNullViolation { column, .. } if column.is_empty() => {
                "null value violates not-null constraint".to_owned()
            }
            Self::PolicyViolation { table, .. } if table.is_empty() => {
                "new row violates row-level security policy".to_owned()
            }
            Self::InvalidValue { column, .. } if column.is_empty() => {
                "invalid input syntax".to_owned()
            }
            other => other.to_string(),
        };
        json!({ "code": self.code(), "details": self.details(), "hint": self.hint(), "message": message })
    }
}

fn core_code(err: &Error) -> &'static str {
    match err {
        Error::Unauthorized(goforward_core::token::TokenError::Expired) => "PGRST303",
        Error::Unauthorized(_) => "PGRST301",
        Error::NotFound(_) => "PGRST205",
        Error::BadRequest { .. } => "PGRST100",
        Error::PayloadTooLarge { .. } => "PGRST102",
        Error::Hook { .. } => "P0001",
        Error::Forbidden(_) => "42501",
        Error::DatabaseUnavailable(_) => "PGRST001",
        _ => "PGRST000",
    }
}

impl ResponseError for RestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::TableNotFound(_) | Self::FunctionNotFound(_) => StatusCode::NOT_FOUND,
            Self::ColumnNotFound { .. }
            | Self::BodyColumnNotFound { .. }
            | Self::Parse { .. }
            | Self::InvalidBody(_)
            | Self::InvalidValue { .. }
            | Self::TooComplex(_)
            | Self::Unsupported(_)
            | Self::RequiresWhere { .. }
            | Self::RelationshipNotFound { .. }
            | Self::InvalidPreferences(_)
            | Self::SpreadToMany { .. }
            | Self::AggregatesDisabled
            | Self::NoConflictKey
            | Self::Raised(_)
            | Self::NotWritable
            | Self::MaxAffected { .. }
            | Self::NotNullViolation { .. }
            | Self::CheckViolation => StatusCode::BAD_REQUEST,
            Self::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::SchemaNotExposed(_) | Self::NotAcceptable(_) | Self::Singular { .. } => {
                StatusCode::NOT_ACCEPTABLE
            }
            Self::PermissionDenied { anonymous, .. }
            | Self::PolicyViolation { anonymous, .. }
            | Self::ColumnNotWritable { anonymous, .. }
            | Self::RoleNotAllowed { anonymous, .. } => {
                if *anonymous {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                }
            }
            Self::UniqueViolation | Self::ForeignKeyViolation => StatusCode::CONFLICT,
            Self::AmbiguousEmbed { .. } => StatusCode::MULTIPLE_CHOICES,
            Self::ReadOnly => StatusCode::METHOD_NOT_ALLOWED,
            Self::StatementTimeout { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Core(err) => err.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Core(err) = self {
            log_if_server_fault(err);
            return PostgrestErrorFormat.render(err);
        }
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

/// PostgREST's error shape for errors raised by core extractors and
/// middleware (bad token, rate limit, bad JSON): `{"code", "details", "hint", "message"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgrestErrorFormat;

impl ErrorFormat for PostgrestErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        let mut res = HttpResponse::build(err.status_code());
        if let Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(json!({
            "code": core_code(err),
            "details": null,
            "hint": null,
            "message": err.public_message(),
        }))
    }
}
