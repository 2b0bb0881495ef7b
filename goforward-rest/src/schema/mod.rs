//! The schema cache: tables, views, columns, keys, read by introspection at
//! start and on reload, behind a lock so each request works on one snapshot.
//!
//! Identifiers that reach SQL come from here only (never from the request).

mod postgres;
mod sqlite;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use goforward_core::sea_orm::{DatabaseConnection, DbBackend};
use serde::Serialize;

use crate::error::{RestError, Result};

/// How values of a column are bound, read and validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Integers of any width.
    Int,
    /// Floating point.
    Float,
    /// Exact numerics (`numeric`, `decimal`).
    Numeric,
    /// Booleans (SQLite stores 0/1).
    Bool,
    /// Text of any kind.
    Text,
    /// UUIDs (SQLite stores text).
    Uuid,
    /// `json` / `jsonb` (SQLite stores text).
    Json,
    /// Timestamps with time zone.
    Timestamptz,
    /// Timestamps without time zone.
    Timestamp,
    /// Dates.
    Date,
    /// Times of day.
    Time,
    /// Anything else (read as text, written as text).
    Other,
}

impl ColumnKind {
    /// The type name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "integer",
            Self::Float => "double precision",
            Self::Numeric => "numeric",
            Self::Bool => "boolean",
            Self::Text => "text",
            Self::Uuid => "uuid",
            Self::Json => "json",
            Self::Timestamptz => "timestamp with time zone",
            Self::Timestamp => "timestamp without time zone",
            Self::Date => "date",
            Self::Time => "time without time zone",
            Self::Other => "text",
        }
    }

    /// Classifies a SQLite declared type (affinity-style, by substring).
    pub fn from_sqlite(declared: &str) -> Self {
        let t = declared.to_ascii_lowercase();
        if t.contains("bool") {
            Self::Bool
        } else if t.contains("uuid") {
            Self::Uuid
        } else if t.contains("json") {
            Self::Json
        } else if t.contains("timestamp_with_timezone")
            || t.contains("timestamptz")
            || t.contains("with time zone")
        {
            Self::Timestamptz
        } else if t.contains("timestamp") || t.contains("datetime") {
            Self::Timestamp
        } else if t.contains("date") {
            Self::Date
        } else if t.contains("time") {
            Self::Time
        } else if t.contains("interval") {
            Self::Other
        } else if t.contains("int") {
            Self::Int
        } else if t.contains("real") || t.contains("floa") || t.contains("doub") {
            Self::Float
        } else if t.contains("numeric") || t.contains("decimal") {
            Self::Numeric
        } else if t.contains("char") || t.contains("clob") || t.contains("text") {
            Self::Text
        } else {
            Self::Other
        }
    }

    /// Classifies a PostgreSQL type by its `pg_type.typname`.
    pub fn from_postgres(typname: &str) -> Self {
        match typname {
            "int2" | "int4" | "int8" => Self::Int,
            "float4" | "float8" => Self::Float,
            "numeric" => Self::Numeric,
            "bool" => Self::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Self::Text,
            "uuid" => Self::Uuid,
            "json" | "jsonb" => Self::Json,
            "timestamptz" => Self::Timestamptz,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            "time" | "timetz" => Self::Time,
            _ => Self::Other,
        }
    }
}

/// One column of a table or view.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// How values are handled.
    pub kind: ColumnKind,
    /// The declared type (SQLite) or `pg_type.typname` (PostgreSQL).
    pub data_type: String,
    /// On PostgreSQL, the type bound values are cast to (a closed set of
    /// built-in type names); `None` when values bind as they are.
    #[serde(skip)]
    pub pg_cast: Option<&'static str>,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Whether the database fills the column when omitted (default, identity, rowid).
    pub has_default: bool,
    /// Part of the primary key.
    pub primary_key: bool,
}

/// A foreign key of a table.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignKey {
    /// Constraint name (SQLite: synthesised `<table>_<cols>_fkey`).
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub foreign_table: String,
    /// Referenced columns.
    pub foreign_columns: Vec<String>,
}

/// A table or view.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// Table name.
    pub name: String,
    /// Whether this is a view (no writes through keys).
    pub is_view: bool,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Primary key columns, in key order.
    pub primary_key: Vec<String>,
    /// Unique constraints (each a column list), the primary key excluded.
    pub unique: Vec<Vec<String>>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// This table without `hidden` columns (they behave as if they did not exist).
    pub fn without(&self, hidden: &[String]) -> Table {
        let mut t = self.clone();
        if hidden.is_empty() {
            return t;
        }
        t.columns.retain(|c| !hidden.contains(&c.name));
        t.foreign_keys
            .retain(|fk| fk.columns.iter().all(|c| !hidden.contains(c)));
        t.unique.retain(|u| u.iter().all(|c| !hidden.contains(c)));
        t
    }
}

/// One introspected snapshot of the database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Schema {
    /// Tables and views by name.
    pub tables: BTreeMap<String, Arc<Table>>,
    /// PostgreSQL functions of schema `public` by name (overloads left out).
    pub functions: BTreeMap<String, Arc<Function>>,
}

/// A PostgreSQL function (only `IN` arguments).
#[derive(Debug, Clone, Serialize)]
pub struct Function {
    /// Function name.
    pub name: String,
    /// Arguments in order: name, SQL type (`format_type`), has a default.
    pub args: Vec<(String, String, bool)>,
    /// Returns a set (`SETOF` / `TABLE`).
    pub returns_set: bool,
    /// Returns `void`.
    pub returns_void: bool,
    /// Volatility: `i`mmutable, `s`table or `v`olatile.
    pub volatility: String,
}

impl Schema {
    /// Introspects `db`.
    ///
    /// # Errors
    /// When a catalog query fails.
    pub async fn load(db: &DatabaseConnection) -> Result<Self> {
        let backend = goforward_core::db::backend_of(db);
        let (tables, functions) = match backend {
            DbBackend::Postgres => (
                postgres::load(db).await?,
                postgres::load_functions(db).await?,
            ),
            DbBackend::Sqlite => (sqlite::load(db).await?, Vec::new()),
            _ => {
                return Err(RestError::Unsupported(
                    "only SQLite and PostgreSQL are supported".into(),
                ));
            }
        };
        Ok(Self {
            tables: tables
                .into_iter()
                .map(|t| (t.name.clone(), Arc::new(t)))
                .collect(),
            functions: functions
                .into_iter()
                .map(|f| (f.name.clone(), Arc::new(f)))
                .collect(),
        })
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&Arc<Table>> {
        self.tables.get(name)
    }
}

/// The shared cache: readers clone an `Arc` snapshot; reloads swap it.
///
/// Reloads can overlap (a node's own DDL, `NOTIFY pgrst` from another
/// node, the admin endpoint). Each takes a ticket before it reads the
/// catalog, and a snapshot is installed only over an older ticket's: a
/// reload that began before a DDL committed and finished after the DDL's
/// own reload would otherwise put the table back out of the cache.
#[derive(Debug, Default)]
pub struct SchemaCache {
    current: RwLock<(u64, Arc<Schema>)>,
    tickets: AtomicU64,
}

impl SchemaCache {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Schema> {
        match self.current.read() {
            Ok(s) => Arc::clone(&s.1),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().1),
        }
    }

    /// Re-introspects `db` and swaps the snapshot in, unless a reload that
    /// began later already did; returns the current snapshot.
    ///
    /// # Errors
    /// When introspection fails (the previous snapshot stays).
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<Arc<Schema>> {
        let ticket = self.ticket();
        let schema = Schema::load(db).await?;
        Ok(self.install(ticket, schema))
    }

    /// A ticket for a reload about to read the catalog.
    fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Installs `schema`, read under `ticket`, unless a later ticket's
    /// snapshot is already in; returns the current snapshot.
    fn install(&self, ticket: u64, schema: Schema) -> Arc<Schema> {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ticket > current.0 {
            *current = (ticket, Arc::new(schema));
        }
        Arc::clone(&current.1)
    }
}

/// Groups constraint rows `(table, constraint, column, …)` in order.
pub(crate) fn group<K: std::hash::Hash + Eq + Clone, V>(
    rows: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, Vec<V>)> {
    let mut order: Vec<K> = Vec::new();
    let mut map: HashMap<K, Vec<V>> = HashMap::new();
    for (k, v) in rows {
        if !map.contains_key(&k) {
            order.push(k.clone());
        }
        map.entry(k).or_default().push(v);
    }
    order
        .into_iter()
        .filter_map(|k| map.remove(&k).map(|v| (k, v)))
        .collect()
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn with_table(name: &str) -> Schema {
        let table = Table {
            name: name.to_owned(),
            is_view: false,
            columns: Vec::new(),
            primary_key: Vec::new(),
            unique: Vec::new(),
            foreign_keys: Vec::new(),
        };
        Schema {
            tables: [(name.to_owned(), Arc::new(table))].into_iter().collect(),
            ..Schema::default()
        }
    }

    #[test]
    fn an_older_reload_finishing_last_does_not_replace_a_newer_snapshot() {
        let cache = SchemaCache::default();
        let before_ddl = cache.ticket();
        let after_ddl = cache.ticket();
        cache.install(after_ddl, with_table("authorships"));
        let current = cache.install(before_ddl, Schema::default());
        assert!(current.table("authorships").is_some());
        assert!(cache.snapshot().table("authorships").is_some());
        // A later reload still replaces it.
        let next = cache.ticket();
        cache.install(next, with_table("books"));
        assert!(cache.snapshot().table("authorships").is_none());
        assert!(cache.snapshot().table("books").is_some());
    }
}
