//! Schema changes: request bodies, their validation against the
//! introspected catalog, and the up/down SQL each one runs — every statement
//! built with sea-query, every identifier quoted.
//!
//! Where SQLite cannot alter in place (column type, NOT NULL, default,
//! foreign keys), the table is rebuilt as the SQLite documentation
//! prescribes: create the new shape under a temporary name, copy the rows,
//! drop the old table, rename, recreate its indexes and triggers — inside
//! one transaction with foreign key enforcement off and `foreign_key_check`
//! before commit (see `store::apply`). Check constraints and the
//! `AUTOINCREMENT` counter survive a rebuild; a check or trigger reading a
//! dropped column refuses it ([`MetaError::ColumnInUse`]).

use goforward_core::sea_orm::DbBackend;
use goforward_core::sea_query::{
    Alias, Check, ColumnDef, Expr, ExprTrait, ForeignKey, ForeignKeyAction,
    ForeignKeyCreateStatement, Index, IndexCreateStatement, PostgresQueryBuilder, Query,
    SchemaStatementBuilder, SimpleExpr, SqliteQueryBuilder, Table, TableCreateStatement,
};
use serde::Deserialize;
use serde_json::Value;

use super::error::{MetaError, Result};
use super::expr::{check_expression, mentions, unique_name};
use super::ident::validate;
use super::introspect::{Catalog, CheckInfo, ColumnInfo, ForeignKeyInfo, IndexInfo, TableInfo};

/// A planned change: the statements to run and the ones that undo them.
#[derive(Debug, Clone)]
pub struct Change {
    /// Short name, e.g. `create_table_authors`.
    pub name: String,
    /// Statements applying the change, in order.
    pub up: Vec<String>,
    /// Statements undoing it; `None` when it cannot be undone.
    pub down: Option<Vec<String>>,
}

/// Column types a client may ask for (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// 16-bit integer.
    Smallint,
    /// 32-bit integer.
    #[serde(alias = "int", alias = "int4")]
    Integer,
    /// 64-bit integer.
    #[serde(alias = "int8")]
    Bigint,
    /// 32-bit float.
    #[serde(alias = "float4")]
    Real,
    /// 64-bit float.
    #[serde(alias = "float8", alias = "double_precision")]
    Double,
    /// Exact numeric.
    #[serde(alias = "decimal")]
    Numeric,
    /// Boolean.
    #[serde(alias = "bool")]
    Boolean,
    /// Text.
    Text,
    /// UUID.
    Uuid,
    /// JSON.
    Json,
    /// Binary JSON (PostgreSQL `jsonb`).
    Jsonb,
    /// Date.
    Date,
    /// Time of day.
    Time,
    /// Timestamp without time zone.
    Timestamp,
    /// Timestamp with time zone.
    Timestamptz,
    /// Bytes.
    #[serde(alias = "blob")]
    Bytea,
}

impl DataType {
    fn apply(self, def: &mut ColumnDef) {
        match self {
            Self::Smallint => def.small_integer(),
            Self::Integer => def.integer(),
            Self::Bigint => def.big_integer(),
            Self::Real => def.float(),
            Self::Double => def.double(),
            Self::Numeric => def.decimal(),
            Self::Boolean => def.boolean(),
            Self::Text => def.text(),
            Self::Uuid => def.uuid(),
            Self::Json => def.json(),
            Self::Jsonb => def.json_binary(),
            Self::Date => def.date(),
            Self::Time => def.time(),
            Self::Timestamp => def.timestamp(),
            Self::Timestamptz => def.timestamp_with_time_zone(),
            Self::Bytea => def.binary(),
        };
    }

    /// The type name the backend stores, as introspection reports it.
    pub fn declared(self, backend: DbBackend) -> String {
        let mut def = ColumnDef::new(Alias::new("c"));
        self.apply(&mut def);
        let sql = render_create(
            Table::create()
                .table(Alias::new("t"))
                .col(&mut def)
                .to_owned(),
            backend,
        );
        // CREATE TABLE "t" ( "c" <type> )
        sql.split("\"c\" ")
            .nth(1)
            .map(|s| {
                s.trim_end_matches(" )")
                    .trim_end_matches(')')
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    }
}

/// A default: a JSON literal, or `{"function": "now"}` /
/// `{"function": "gen_random_uuid"}` (PostgreSQL).
fn default_expr(value: &Value, backend: DbBackend) -> Result<SimpleExpr> {
    Ok(match value {
        Value::Null => Expr::cust("NULL"),
        Value::Bool(b) => Expr::val(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Expr::val(i),
            (None, Some(f)) => Expr::val(f),
            _ => {
                return Err(MetaError::InvalidRequest(
                    "default: number out of range".into(),
                ));
            }
        },
        Value::String(s) => Expr::val(s.clone()),
        Value::Object(o) => match o.get("function").and_then(Value::as_str) {
            Some("now") if o.len() == 1 => Expr::cust("CURRENT_TIMESTAMP"),
            Some("gen_random_uuid") if o.len() == 1 && backend == DbBackend::Postgres => {
                Expr::cust("gen_random_uuid()")
            }
            _ => {
                return Err(MetaError::InvalidRequest(
                    "default: a JSON scalar, {\"function\": \"now\"} or (PostgreSQL) {\"function\": \"gen_random_uuid\"}"
                        .into(),
                ));
            }
        },
        Value::Array(_) => {
            return Err(MetaError::InvalidRequest(
                "default: arrays are not supported".into(),
            ));
        }
    })
}

/// A referential action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    /// `NO ACTION` (default).
    NoAction,
    /// `RESTRICT`.
    Restrict,
    /// `CASCADE`.
    Cascade,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`.
    SetDefault,
}

impl FkAction {
    fn parse(introspected: &str) -> ForeignKeyAction {
        match introspected.to_ascii_uppercase().as_str() {
            "RESTRICT" => ForeignKeyAction::Restrict,
            "CASCADE" => ForeignKeyAction::Cascade,
            "SET NULL" => ForeignKeyAction::SetNull,
            "SET DEFAULT" => ForeignKeyAction::SetDefault,
            _ => ForeignKeyAction::NoAction,
        }
    }
}

/// A column of a new table or an added column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// NULL allowed (default true; primary key columns never).
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Default value.
    #[serde(default)]
    pub default: Option<Value>,
    /// Single-column primary key.
    #[serde(default)]
    pub primary_key: bool,
    /// Unique.
    #[serde(default)]
    pub unique: bool,
    /// Filled by the database (integer/bigint primary key only).
    #[serde(default)]
    pub identity: bool,
}

fn yes() -> bool {
    true
}

/// A foreign key to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeySpec {
    /// Constraint name (default `<table>_<cols>_fkey`).
    #[serde(default)]
    pub name: Option<String>,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub foreign_table: String,
    /// Referenced columns (default: its primary key).
    #[serde(default)]
    pub foreign_columns: Option<Vec<String>>,
    /// `ON DELETE`.
    #[serde(default)]
    pub on_delete: Option<FkAction>,
    /// `ON UPDATE`.
    #[serde(default)]
    pub on_update: Option<FkAction>,
}

/// An index to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Index name (default `<table>_<cols>_idx` / `_key` when unique).
    #[serde(default)]
    pub name: Option<String>,
    /// Columns.
    pub columns: Vec<String>,
    /// Unique index.
    #[serde(default)]
    pub unique: bool,
}

/// A check constraint to create (`POST /meta/v1/tables/{table}/checks`,
/// `checks` of a new table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Constraint name (default `<table>_<first column read>_check`).
    #[serde(default)]
    pub name: Option<String>,
    /// A boolean SQL expression over the table's columns, vetted by
    /// [`super::expr::check_expression`].
    pub expression: String,
}

/// `POST /meta/v1/tables`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    /// Table name.
    pub name: String,
    /// Columns.
    pub columns: Vec<ColumnSpec>,
    /// Composite primary key (instead of `primary_key` on a column).
    #[serde(default)]
    pub primary_key: Option<Vec<String>>,
    /// Unique constraints over several columns.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    /// Foreign keys.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeySpec>,
    /// Indexes.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// Check constraints.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// How `/rest/v1` exposes the table (see [`super::parse_policy`]).
    #[serde(default)]
    pub policy: Option<String>,
}

/// `PATCH /meta/v1/tables/{table}/columns/{column}`: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterColumn {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New type.
    #[serde(rename = "type", default)]
    pub data_type: Option<DataType>,
    /// NULL allowed.
    #[serde(default)]
    pub nullable: Option<bool>,
    /// New default (`null` removes it).
    #[serde(default, deserialize_with = "some_value")]
    pub default: Option<Value>,
    /// Add (`true`) or drop (`false`) a single-column unique index.
    #[serde(default)]
    pub unique: Option<bool>,
}

fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn a(name: &str) -> Alias {
    Alias::new(name)
}

/// Renders a schema statement for `backend`.
pub fn render<S: SchemaStatementBuilder>(stmt: &S, backend: DbBackend) -> String {
    match backend {
        DbBackend::Postgres => stmt.to_string(PostgresQueryBuilder),
        _ => stmt.to_string(SqliteQueryBuilder),
    }
}

fn render_create(stmt: TableCreateStatement, backend: DbBackend) -> String {
    render(&stmt, backend)
}

fn fk_name(table: &str, columns: &[String], suffix: &str) -> String {
    let mut name = format!("{table}_{}_{suffix}", columns.join("_"));
    // Keep generated names within PostgreSQL's 63 bytes.
    while name.len() > 63 {
        name.remove(0);
    }
    name
}

fn check_columns(table: &str, names: &[String], exists: impl Fn(&str) -> bool) -> Result<()> {
    if names.is_empty() {
        return Err(MetaError::InvalidRequest(
            "a column list must not be empty".into(),
        ));
    }
    for c in names {
        if !exists(c) {
            return Err(MetaError::ColumnNotFound {
                table: table.to_owned(),
                column: c.clone(),
            });
        }
    }
    Ok(())
}

/// Resolves a foreign key spec of `table` (whose columns are `own`) against the catalog.
fn resolve_fk(
    catalog: &Catalog,
    table: &str,
    own: &[ColumnInfo],
    own_pk: &[String],
    spec: &ForeignKeySpec,
) -> Result<ForeignKeyInfo> {
    check_columns(table, &spec.columns, |c| own.iter().any(|x| x.name == c))?;
    let (target_cols, target_pk, target_unique): (Vec<String>, Vec<String>, bool) =
        if spec.foreign_table == table {
            let cols: Vec<String> = own.iter().map(|c| c.name.clone()).collect();
            (cols, own_pk.to_vec(), true)
        } else {
            let t = catalog.table(&spec.foreign_table)?;
            (
                t.columns.iter().map(|c| c.name.clone()).collect(),
                t.primary_key.clone(),
                false,
            )
        };
    let foreign_columns = match &spec.foreign_columns {
        Some(cols) => cols.clone(),
        None if !target_pk.is_empty() => target_pk.clone(),
        None => {
            return Err(MetaError::InvalidRequest(format!(
                "table {:?} has no primary key: name foreign_columns",
                spec.foreign_table
            )));
        }
    };
    check_columns(&spec.foreign_table, &foreign_columns, |c| {
        target_cols.iter().any(|x| x == c)
    })?;
    if foreign_columns.len() != spec.columns.len() {
        return Err(MetaError::InvalidRequest(
            "columns and foreign_columns must have the same length".into(),
        ));
    }
    if !target_unique
        && let Ok(t) = catalog.table(&spec.foreign_table)
        && !t.is_unique_set(&foreign_columns)
    {
        return Err(MetaError::InvalidRequest(format!(
            "the referenced columns of {:?} must be its primary key or unique",
            spec.foreign_table
        )));
    }
    let name = match &spec.name {
        Some(n) => validate(n)?.to_owned(),
        None => fk_name(table, &spec.columns, "fkey"),
    };
    let act = |x: Option<FkAction>| {
        match x.unwrap_or(FkAction::NoAction) {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
        .to_owned()
    };
    Ok(ForeignKeyInfo {
        name,
        columns: spec.columns.clone(),
        foreign_table: spec.foreign_table.clone(),
        foreign_columns,
        on_update: act(spec.on_update),
        on_delete: act(spec.on_delete),
    })
}

fn fk_statement(table: &str, fk: &ForeignKeyInfo) -> ForeignKeyCreateStatement {
    let mut stmt = ForeignKey::create();
    stmt.name(fk.name.as_str())
        .from_tbl(a(table))
        .to_tbl(a(&fk.foreign_table))
        .on_update(FkAction::parse(&fk.on_update))
        .on_delete(FkAction::parse(&fk.on_delete));
    for c in &fk.columns {
        stmt.from_col(a(c));
    }
    for c in &fk.foreign_columns {
        stmt.to_col(a(c));
    }
    stmt
}

/// Vets a check spec of `table` (whose columns are `columns`, whose
/// existing checks are `existing`) and names it.
fn resolve_check(
    backend: DbBackend,
    table: &str,
    columns: &[String],
    existing: &[CheckInfo],
    spec: &CheckSpec,
) -> Result<CheckInfo> {
    let vetted = check_expression("expression", &spec.expression, backend, columns)?;
    let name = match &spec.name {
        Some(n) => {
            let n = validate(n)?.to_owned();
            if existing.iter().any(|c| c.name == n) {
                return Err(MetaError::AlreadyExists(format!("check constraint {n:?}")));
            }
            n
        }
        None => {
            let base = match vetted.columns.first() {
                Some(col) => fk_name(table, std::slice::from_ref(col), "check"),
                None => {
                    let mut n = format!("{table}_check");
                    while n.len() > 63 {
                        n.remove(0);
                    }
                    n
                }
            };
            unique_name(&base, |n| existing.iter().any(|c| c.name == n))
        }
    };
    Ok(CheckInfo {
        name,
        definition: format!("CHECK ({})", vetted.sql),
        expression: vetted.sql,
    })
}

fn check_constraint(c: &CheckInfo) -> Check {
    Check::named(a(&c.name), Expr::cust(c.expression.clone()))
}

/// PostgreSQL: `ALTER TABLE … ADD CONSTRAINT … CHECK (…)` (sea-query has no
/// builder for it): quoted identifiers around a vetted or stored expression.
fn add_check_sql(table: &str, c: &CheckInfo) -> String {
    let mut stmt = Table::create();
    stmt.table(a("t")).check(check_constraint(c));
    // `CREATE TABLE "t" ( CONSTRAINT "n" CHECK (…) )` → the constraint clause.
    let create = render(&stmt, DbBackend::Postgres);
    let clause = create
        .strip_prefix("CREATE TABLE \"t\" ( ")
        .and_then(|x| x.strip_suffix(" )"))
        .unwrap_or_default()
        .to_owned();
    let mut prefix = render(
        Table::alter().table(a(table)).drop_constraint(a(&c.name)),
        DbBackend::Postgres,
    );
    // `ALTER TABLE "t" DROP CONSTRAINT "n"` → `ALTER TABLE "t" `.
    if let Some(at) = prefix.find(" DROP CONSTRAINT ") {
        prefix.truncate(at);
    }
    format!("{prefix} ADD {clause}")
}

fn drop_check_sql(table: &str, name: &str) -> String {
    render(
        Table::alter().table(a(table)).drop_constraint(a(name)),
        DbBackend::Postgres,
    )
}

fn index_statement(table: &str, index: &IndexInfo) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(index.name.as_str()).table(a(table));
    if index.unique {
        stmt.unique();
    }
    for c in &index.columns {
        stmt.col(a(c));
    }
    stmt
}

fn drop_index(table: &str, name: &str, backend: DbBackend) -> String {
    let mut stmt = Index::drop();
    stmt.name(name);
    if backend != DbBackend::Sqlite && backend != DbBackend::Postgres {
        stmt.table(a(table));
    }
    render(&stmt, backend)
}

/// Plans `CREATE TABLE` (with its indexes).
///
/// # Errors
/// Invalid identifiers, unknown referenced tables/columns, conflicting specs.
pub fn create_table(catalog: &Catalog, backend: DbBackend, req: &CreateTable) -> Result<Change> {
    let name = validate(&req.name)?;
    if catalog.get(name).is_some() {
        return Err(MetaError::AlreadyExists(format!("table {name:?}")));
    }
    if req.columns.is_empty() {
        return Err(MetaError::InvalidRequest(
            "a table needs at least one column".into(),
        ));
    }
    let mut cols: Vec<ColumnInfo> = Vec::new();
    for c in &req.columns {
        validate(&c.name)?;
        if cols.iter().any(|x| x.name == c.name) {
            return Err(MetaError::InvalidRequest(format!(
                "column {:?} appears twice",
                c.name
            )));
        }
        cols.push(ColumnInfo {
            name: c.name.clone(),
            data_type: c.data_type.declared(backend),
            nullable: c.nullable,
            default: None,
            identity: c.identity,
            primary_key: c.primary_key,
            comment: None,
        });
    }
    let inline_pk: Vec<String> = req
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.clone())
        .collect();
    let pk = match (&req.primary_key, inline_pk.len()) {
        (Some(_), n) if n > 0 => {
            return Err(MetaError::InvalidRequest(
                "use either primary_key on columns or the table's primary_key list".into(),
            ));
        }
        (Some(list), _) => {
            check_columns(name, list, |c| cols.iter().any(|x| x.name == c))?;
            list.clone()
        }
        (None, _) => inline_pk,
    };
    if req.columns.iter().any(|c| c.identity) {
        let ok = req.columns.iter().filter(|c| c.identity).all(|c| {
            matches!(c.data_type, DataType::Integer | DataType::Bigint)
                && pk.len() == 1
                && pk[0] == c.name
        });
        if !ok {
            return Err(MetaError::InvalidRequest(
                "identity is only allowed on a single integer/bigint primary key column".into(),
            ));
        }
    }
    let mut stmt = Table::create();
    stmt.table(a(name));
    for c in &req.columns {
        let mut def = ColumnDef::new(a(&c.name));
        c.data_type.apply(&mut def);
        if c.identity {
            if backend == DbBackend::Sqlite {
                // SQLite's AUTOINCREMENT exists only on INTEGER PRIMARY KEY.
                def.integer();
            }
            def.auto_increment();
        }
        let in_pk = pk.contains(&c.name);
        if in_pk && pk.len() == 1 {
            def.primary_key();
        }
        if !c.nullable || in_pk {
            def.not_null();
        }
        if let Some(d) = &c.default {
            if c.identity {
                return Err(MetaError::InvalidRequest(
                    "an identity column cannot have a default".into(),
                ));
            }
            def.default(default_expr(d, backend)?);
        }
        if c.unique && !in_pk {
            def.unique_key();
        }
        stmt.col(&mut def);
    }
    if pk.len() > 1 {
        let mut p = Index::create();
        for c in &pk {
            p.col(a(c));
        }
        stmt.primary_key(&mut p);
    }
    for u in &req.unique {
        check_columns(name, u, |c| cols.iter().any(|x| x.name == c))?;
        let mut idx = Index::create();
        idx.unique().name(fk_name(name, u, "key"));
        for c in u {
            idx.col(a(c));
        }
        stmt.index(&mut idx);
    }
    let mut fks = Vec::new();
    for spec in &req.foreign_keys {
        let fk = resolve_fk(catalog, name, &cols, &pk, spec)?;
        stmt.foreign_key(&mut fk_statement(name, &fk));
        fks.push(fk);
    }
    let col_names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let mut checks: Vec<CheckInfo> = Vec::new();
    for spec in &req.checks {
        let c = resolve_check(backend, name, &col_names, &checks, spec)?;
        stmt.check(check_constraint(&c));
        checks.push(c);
    }
    let mut up = vec![render(&stmt, backend)];
    for spec in &req.indexes {
        check_columns(name, &spec.columns, |c| cols.iter().any(|x| x.name == c))?;
        let index = IndexInfo {
            name: match &spec.name {
                Some(n) => validate(n)?.to_owned(),
                None => fk_name(name, &spec.columns, if spec.unique { "key" } else { "idx" }),
            },
            columns: spec.columns.clone(),
            unique: spec.unique,
            primary: false,
            method: "btree".into(),
            constraint: false,
        };
        if catalog.index(&index.name).is_some() {
            return Err(MetaError::AlreadyExists(format!("index {:?}", index.name)));
        }
        up.push(render(&index_statement(name, &index), backend));
    }
    let down = vec![render(Table::drop().table(a(name)), backend)];
    Ok(Change {
        name: format!("create_table_{name}"),
        up,
        down: Some(down),
    })
}

/// The `CREATE TABLE` (plus `CREATE INDEX`es) rebuilding `t` as introspected, under `as_name`.
fn recreate(t: &TableInfo, as_name: &str, backend: DbBackend) -> Vec<String> {
    let mut stmt = Table::create();
    stmt.table(a(as_name));
    for c in &t.columns {
        let mut def = ColumnDef::new(a(&c.name));
        if !c.data_type.is_empty() {
            def.custom(a(&c.data_type));
        }
        let pk_single = t.primary_key.len() == 1 && t.primary_key[0] == c.name;
        if pk_single {
            def.primary_key();
        }
        if !c.nullable {
            def.not_null();
        }
        if pk_single && t.autoincrement && backend == DbBackend::Sqlite {
            def.integer().auto_increment();
        }
        if c.identity && backend == DbBackend::Postgres {
            def.extra("GENERATED BY DEFAULT AS IDENTITY");
        } else if let Some(d) = &c.default {
            // The database's own rendering of a default it accepted.
            def.default(Expr::cust(d.clone()));
        }
        stmt.col(&mut def);
    }
    if t.primary_key.len() > 1 {
        let mut p = Index::create();
        for c in &t.primary_key {
            p.col(a(c));
        }
        stmt.primary_key(&mut p);
    }
    for u in &t.unique {
        let mut idx = Index::create();
        idx.unique();
        if backend == DbBackend::Postgres {
            idx.name(u.name.as_str());
        }
        for c in &u.columns {
            idx.col(a(c));
        }
        stmt.index(&mut idx);
    }
    for fk in &t.foreign_keys {
        let target = if fk.foreign_table == t.name {
            as_name
        } else {
            &fk.foreign_table
        };
        let mut f = fk.clone();
        f.foreign_table = target.to_owned();
        stmt.foreign_key(&mut fk_statement(as_name, &f));
    }
    for c in &t.checks {
        stmt.check(check_constraint(c));
    }
    let mut out = vec![render(&stmt, backend)];
    out.extend(plain_indexes(t, &t.name, backend));
    out
}

fn plain_indexes(t: &TableInfo, table: &str, backend: DbBackend) -> Vec<String> {
    t.indexes
        .iter()
        .filter(|i| !i.constraint && !i.columns.is_empty())
        .map(|i| render(&index_statement(table, i), backend))
        .collect()
}

/// SQLite: the statements turning `old` into `new` by rebuilding the table,
/// keeping its check constraints, triggers and `AUTOINCREMENT` counter.
///
/// # Errors
/// [`MetaError::Unsupported`] when the stored definition could not be read
/// (its checks would be lost); [`MetaError::ColumnInUse`] when a check or
/// trigger of `new` reads a column `new` no longer has.
fn rebuild(old: &TableInfo, new: &TableInfo) -> Result<Vec<String>> {
    if !old.checks_known || !new.checks_known {
        return Err(MetaError::Unsupported(format!(
            "table {:?} cannot be rebuilt: its stored definition could not be read, \
             so its check constraints would be lost",
            old.name
        )));
    }
    for gone in old.columns.iter().filter(|c| new.column(&c.name).is_none()) {
        in_use(new, &gone.name, DbBackend::Sqlite)?;
    }
    let tmp = format!("goforward_rebuild_{}", new.name);
    let mut create = recreate(new, &tmp, DbBackend::Sqlite);
    let indexes = create.split_off(1);
    let mut out = create;
    let shared: Vec<(String, String)> = new
        .columns
        .iter()
        .filter_map(|c| {
            old.columns
                .iter()
                .find(|o| o.name == c.name)
                .map(|o| (o.name.clone(), c.name.clone()))
        })
        .collect();
    if !shared.is_empty() {
        let mut select = Query::select();
        select.from(a(&old.name));
        for (o, _) in &shared {
            select.column(a(o));
        }
        let mut insert = Query::insert();
        insert
            .into_table(a(&tmp))
            .columns(shared.iter().map(|(_, n)| a(n)));
        if insert.select_from(select).is_ok() {
            out.push(insert.to_string(SqliteQueryBuilder));
        }
    }
    if old.autoincrement && new.autoincrement {
        // Keep the AUTOINCREMENT counter (ids of deleted rows stay unused).
        let seq = a("sqlite_sequence");
        out.push(
            Query::delete()
                .from_table(seq.clone())
                .and_where(Expr::col(a("name")).eq(tmp.as_str()))
                .to_string(SqliteQueryBuilder),
        );
        let mut select = Query::select();
        select
            .expr(Expr::val(tmp.as_str()))
            .column(a("seq"))
            .from(seq.clone())
            .and_where(Expr::col(a("name")).eq(old.name.as_str()));
        let mut insert = Query::insert();
        insert.into_table(seq).columns([a("name"), a("seq")]);
        if insert.select_from(select).is_ok() {
            out.push(insert.to_string(SqliteQueryBuilder));
        }
    }
    out.push(render(Table::drop().table(a(&old.name)), DbBackend::Sqlite));
    out.push(render(
        Table::rename().table(a(&tmp), a(&new.name)),
        DbBackend::Sqlite,
    ));
    // Index names are global: the old ones went with the old table.
    let _ = indexes;
    out.extend(plain_indexes(new, &new.name, DbBackend::Sqlite));
    // Triggers went with the old table too: recreate them from the text
    // SQLite stored for them.
    out.extend(new.triggers.iter().map(|(_, sql)| sql.clone()));
    Ok(out)
}

/// Refuses when a check constraint or (SQLite) trigger of `t` reads `column`.
fn in_use(t: &TableInfo, column: &str, backend: DbBackend) -> Result<()> {
    let by = t
        .checks
        .iter()
        .find(|c| mentions(&c.expression, backend, column))
        .map(|c| format!("check constraint {:?}", c.name))
        .or_else(|| {
            t.triggers
                .iter()
                .find(|(_, sql)| mentions(sql, DbBackend::Sqlite, column))
                .map(|(n, _)| format!("trigger {n:?}"))
        });
    match by {
        Some(by) => Err(MetaError::ColumnInUse {
            table: t.name.clone(),
            column: column.to_owned(),
            used_by: by,
        }),
        None => Ok(()),
    }
}

/// A column's introspected definition as a `ColumnDef` (for PostgreSQL ALTERs).
fn column_def(c: &ColumnInfo) -> ColumnDef {
    let mut def = ColumnDef::new(a(&c.name));
    def.custom(a(&c.data_type));
    def
}

/// Plans `DROP TABLE` (refused while referenced unless `cascade`).
///
/// # Errors
/// Unknown table; [`MetaError::Referenced`].
pub fn drop_table(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    cascade: bool,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let referencing = catalog.referencing(table);
    if !referencing.is_empty() && !cascade {
        return Err(MetaError::Referenced {
            table: table.to_owned(),
            referenced_by: referencing,
        });
    }
    let mut up = Vec::new();
    let mut down = recreate(t, table, backend);
    // SQLite keeps a table's triggers in its schema text: bring them back too.
    down.extend(t.triggers.iter().map(|(_, sql)| sql.clone()));
    for child in &referencing {
        let c = catalog.table(child)?;
        let mut without = c.clone();
        without.foreign_keys.retain(|f| f.foreign_table != table);
        match backend {
            DbBackend::Sqlite => {
                up.extend(rebuild(c, &without)?);
                down.extend(rebuild(&without, c)?);
            }
            _ => {
                for fk in c.foreign_keys.iter().filter(|f| f.foreign_table == table) {
                    up.push(render(
                        ForeignKey::drop().name(fk.name.as_str()).table(a(child)),
                        backend,
                    ));
                    down.push(render(&fk_statement(child, fk), backend));
                }
            }
        }
    }
    up.push(render(Table::drop().table(a(table)), backend));
    Ok(Change {
        name: format!("drop_table_{table}"),
        up,
        down: Some(down),
    })
}

/// Plans a table rename.
///
/// # Errors
/// Unknown table, invalid or taken new name.
pub fn rename_table(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    to: &str,
) -> Result<Change> {
    catalog.table(table)?;
    let to = validate(to)?;
    if catalog.get(to).is_some() {
        return Err(MetaError::AlreadyExists(format!("table {to:?}")));
    }
    Ok(Change {
        name: format!("rename_table_{table}_to_{to}"),
        up: vec![render(Table::rename().table(a(table), a(to)), backend)],
        down: Some(vec![render(
            Table::rename().table(a(to), a(table)),
            backend,
        )]),
    })
}

/// Plans a copy of `table`'s structure (columns, defaults, keys, unique
/// constraints, foreign keys, indexes — no rows) under `to`.
///
/// # Errors
/// Unknown table, invalid or taken name.
pub fn copy_structure(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    to: &str,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let to = validate(to)?;
    if catalog.get(to).is_some() {
        return Err(MetaError::AlreadyExists(format!("table {to:?}")));
    }
    let mut copy = t.clone();
    copy.name = to.to_owned();
    // Index and unique-constraint names are unique per schema: rename them.
    for u in copy.unique.iter_mut() {
        u.name = fk_name(to, &u.columns, "key");
    }
    for i in copy.indexes.iter_mut() {
        i.name = fk_name(to, &i.columns, if i.unique { "key" } else { "idx" });
    }
    for f in copy.foreign_keys.iter_mut() {
        f.name = fk_name(to, &f.columns, "fkey");
        if f.foreign_table == table {
            f.foreign_table = to.to_owned();
        }
    }
    for i in copy.indexes.iter().filter(|i| !i.constraint) {
        if catalog.index(&i.name).is_some() {
            return Err(MetaError::AlreadyExists(format!("index {:?}", i.name)));
        }
    }
    Ok(Change {
        name: format!("copy_table_{table}_to_{to}"),
        up: recreate(&copy, to, backend),
        down: Some(vec![render(Table::drop().table(a(to)), backend)]),
    })
}

/// The statement deleting every row of `table` (foreign key actions apply).
///
/// # Errors
/// Unknown table.
pub fn truncate(catalog: &Catalog, backend: DbBackend, table: &str) -> Result<String> {
    catalog.table(table)?;
    let stmt = Query::delete().from_table(a(table)).to_owned();
    Ok(match backend {
        DbBackend::Postgres => stmt.to_string(PostgresQueryBuilder),
        _ => stmt.to_string(SqliteQueryBuilder),
    })
}

/// Plans `ADD COLUMN` (SQLite: a rebuild when the column is NOT NULL without default).
///
/// # Errors
/// Unknown table, invalid or taken name, unsupported spec.
pub fn add_column(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    spec: &ColumnSpec,
) -> Result<Change> {
    let t = catalog.table(table)?;
    validate(&spec.name)?;
    if t.column(&spec.name).is_some() {
        return Err(MetaError::AlreadyExists(format!(
            "column {table:?}.{:?}",
            spec.name
        )));
    }
    if spec.primary_key || spec.identity {
        return Err(MetaError::Unsupported(
            "a primary key or identity column can only be declared when creating the table".into(),
        ));
    }
    let mut up = Vec::new();
    let mut down = Vec::new();
    let default = spec
        .default
        .as_ref()
        .map(|d| default_expr(d, backend))
        .transpose()?;
    if backend == DbBackend::Sqlite && !spec.nullable && default.is_none() {
        let mut new = t.clone();
        new.columns.push(ColumnInfo {
            name: spec.name.clone(),
            data_type: spec.data_type.declared(backend),
            nullable: false,
            default: None,
            identity: false,
            primary_key: false,
            comment: None,
        });
        up.extend(rebuild(t, &new)?);
        down.extend(rebuild(&new, t)?);
    } else {
        let mut def = ColumnDef::new(a(&spec.name));
        spec.data_type.apply(&mut def);
        if !spec.nullable {
            def.not_null();
        }
        if let Some(d) = default {
            def.default(d);
        }
        up.push(render(
            Table::alter().table(a(table)).add_column(&mut def),
            backend,
        ));
        down.push(render(
            Table::alter().table(a(table)).drop_column(a(&spec.name)),
            backend,
        ));
    }
    if spec.unique {
        let idx = IndexInfo {
            name: fk_name(table, std::slice::from_ref(&spec.name), "key"),
            columns: vec![spec.name.clone()],
            unique: true,
            primary: false,
            method: "btree".into(),
            constraint: false,
        };
        up.push(render(&index_statement(table, &idx), backend));
        down.insert(0, drop_index(table, &idx.name, backend));
    }
    Ok(Change {
        name: format!("add_column_{table}_{}", spec.name),
        up,
        down: Some(down),
    })
}

/// Plans `DROP COLUMN` (SQLite: a rebuild, dropping indexes over the column).
///
/// # Errors
/// Unknown table/column, primary key columns, columns other tables reference.
pub fn drop_column(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    column: &str,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let c = t.column(column).ok_or_else(|| MetaError::ColumnNotFound {
        table: table.to_owned(),
        column: column.to_owned(),
    })?;
    if c.primary_key {
        return Err(MetaError::Unsupported(
            "a primary key column cannot be dropped".into(),
        ));
    }
    let referencing: Vec<String> = catalog
        .tables
        .values()
        .filter(|o| {
            o.foreign_keys
                .iter()
                .any(|f| f.foreign_table == table && f.foreign_columns.iter().any(|x| x == column))
        })
        .map(|o| o.name.clone())
        .collect();
    if !referencing.is_empty() {
        return Err(MetaError::Referenced {
            table: format!("{table}.{column}"),
            referenced_by: referencing,
        });
    }
    in_use(t, column, backend)?;
    let (up, down) = match backend {
        DbBackend::Sqlite => {
            let mut new = t.clone();
            new.columns.retain(|x| x.name != column);
            new.foreign_keys
                .retain(|f| !f.columns.iter().any(|x| x == column));
            new.unique
                .retain(|u| !u.columns.iter().any(|x| x == column));
            new.indexes
                .retain(|i| !i.columns.iter().any(|x| x == column));
            (rebuild(t, &new)?, rebuild(&new, t)?)
        }
        _ => {
            let up = vec![render(
                Table::alter().table(a(table)).drop_column(a(column)),
                backend,
            )];
            let mut def = column_def(c);
            if !c.nullable {
                def.not_null();
            }
            if let Some(d) = &c.default {
                def.default(Expr::cust(d.clone()));
            }
            let mut down = vec![render(
                Table::alter().table(a(table)).add_column(&mut def),
                backend,
            )];
            for u in t
                .unique
                .iter()
                .filter(|u| u.columns.iter().any(|x| x == column))
            {
                down.push(render(
                    &index_statement(
                        table,
                        &IndexInfo {
                            name: u.name.clone(),
                            columns: u.columns.clone(),
                            unique: true,
                            primary: false,
                            method: String::new(),
                            constraint: false,
                        },
                    ),
                    backend,
                ));
            }
            for i in t
                .indexes
                .iter()
                .filter(|i| !i.constraint && i.columns.iter().any(|x| x == column))
            {
                down.push(render(&index_statement(table, i), backend));
            }
            for fk in t
                .foreign_keys
                .iter()
                .filter(|f| f.columns.iter().any(|x| x == column))
            {
                down.push(render(&fk_statement(table, fk), backend));
            }
            (up, down)
        }
    };
    Ok(Change {
        name: format!("drop_column_{table}_{column}"),
        up,
        down: Some(down),
    })
}

/// Plans a column change: rename, type, NOT NULL, default, unique.
///
/// # Errors
/// Unknown table/column, invalid new name, nothing to change.
pub fn alter_column(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    column: &str,
    req: &AlterColumn,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let c = t.column(column).ok_or_else(|| MetaError::ColumnNotFound {
        table: table.to_owned(),
        column: column.to_owned(),
    })?;
    let default = req
        .default
        .as_ref()
        .map(|d| default_expr(d, backend))
        .transpose()?;
    let mut up = Vec::new();
    let mut down = Vec::new();
    let changes_shape = req.data_type.is_some() || req.nullable.is_some() || default.is_some();
    if changes_shape {
        if c.primary_key && req.nullable == Some(true) {
            return Err(MetaError::Unsupported(
                "a primary key column cannot allow NULL".into(),
            ));
        }
        match backend {
            DbBackend::Sqlite => {
                let mut new = t.clone();
                if let Some(nc) = new.columns.iter_mut().find(|x| x.name == column) {
                    if let Some(ty) = req.data_type {
                        nc.data_type = ty.declared(backend);
                    }
                    if let Some(n) = req.nullable {
                        nc.nullable = n;
                    }
                    if let Some(d) = &req.default {
                        nc.default = match d {
                            Value::Null => None,
                            _ => default.as_ref().map(|e| {
                                Query::select()
                                    .expr(e.clone())
                                    .to_string(SqliteQueryBuilder)
                                    .trim_start_matches("SELECT ")
                                    .to_owned()
                            }),
                        };
                    }
                }
                up.extend(rebuild(t, &new)?);
                down.extend(rebuild(&new, t)?);
            }
            _ => {
                // A type change is its own statement: its USING clause
                // (an explicit cast, so any castable change works) must
                // follow the TYPE clause.
                if let Some(ty) = req.data_type {
                    let cast = |to: String| {
                        Expr::cust_with_expr(format!("$1::{to}"), Expr::col(a(column)))
                    };
                    let mut def = ColumnDef::new(a(column));
                    ty.apply(&mut def);
                    def.using(cast(ty.declared(backend)));
                    let mut undo = column_def(c);
                    undo.using(cast(c.data_type.clone()));
                    up.push(render(
                        Table::alter().table(a(table)).modify_column(&mut def),
                        backend,
                    ));
                    down.push(render(
                        Table::alter().table(a(table)).modify_column(&mut undo),
                        backend,
                    ));
                }
                let mut def = ColumnDef::new(a(column));
                let mut undo = ColumnDef::new(a(column));
                if let Some(n) = req.nullable {
                    if n {
                        def.null();
                    } else {
                        def.not_null();
                    }
                    if c.nullable {
                        undo.null();
                    } else {
                        undo.not_null();
                    }
                }
                if let Some(d) = default {
                    def.default(d);
                    undo.default(Expr::cust(
                        c.default.clone().unwrap_or_else(|| "NULL".into()),
                    ));
                }
                if req.nullable.is_some() || req.default.is_some() {
                    up.push(render(
                        Table::alter().table(a(table)).modify_column(&mut def),
                        backend,
                    ));
                    down.insert(
                        0,
                        render(
                            Table::alter().table(a(table)).modify_column(&mut undo),
                            backend,
                        ),
                    );
                }
            }
        }
    }
    if let Some(unique) = req.unique {
        let idx_name = fk_name(table, &[column.to_owned()], "key");
        let single = [column.to_owned()];
        let existing = t
            .indexes
            .iter()
            .find(|i| i.unique && !i.constraint && i.columns == single);
        match (unique, existing) {
            (true, None) => {
                let idx = IndexInfo {
                    name: idx_name,
                    columns: single.to_vec(),
                    unique: true,
                    primary: false,
                    method: "btree".into(),
                    constraint: false,
                };
                up.push(render(&index_statement(table, &idx), backend));
                down.insert(0, drop_index(table, &idx.name, backend));
            }
            (false, Some(i)) => {
                up.push(drop_index(table, &i.name, backend));
                down.insert(0, render(&index_statement(table, i), backend));
            }
            _ => {}
        }
    }
    if let Some(to) = &req.name {
        let to = validate(to)?;
        if to != column {
            if t.column(to).is_some() {
                return Err(MetaError::AlreadyExists(format!("column {table:?}.{to:?}")));
            }
            up.push(render(
                Table::alter()
                    .table(a(table))
                    .rename_column(a(column), a(to)),
                backend,
            ));
            down.insert(
                0,
                render(
                    Table::alter()
                        .table(a(table))
                        .rename_column(a(to), a(column)),
                    backend,
                ),
            );
        }
    }
    if up.is_empty() {
        return Err(MetaError::InvalidRequest("nothing to change".into()));
    }
    // Undo in reverse order of the steps.
    Ok(Change {
        name: format!("alter_column_{table}_{column}"),
        up,
        down: Some(down),
    })
}

/// Plans a foreign key on an existing table (SQLite: a rebuild).
///
/// # Errors
/// Unknown tables/columns, invalid or taken name.
pub fn add_foreign_key(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    spec: &ForeignKeySpec,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let fk = resolve_fk(catalog, table, &t.columns, &t.primary_key, spec)?;
    if t.foreign_keys.iter().any(|f| f.name == fk.name) {
        return Err(MetaError::AlreadyExists(format!(
            "foreign key {:?}",
            fk.name
        )));
    }
    let (up, down) = match backend {
        DbBackend::Sqlite => {
            let mut new = t.clone();
            new.foreign_keys.push(fk.clone());
            (rebuild(t, &new)?, rebuild(&new, t)?)
        }
        _ => (
            vec![render(&fk_statement(table, &fk), backend)],
            vec![render(
                ForeignKey::drop().name(fk.name.as_str()).table(a(table)),
                backend,
            )],
        ),
    };
    Ok(Change {
        name: format!("add_foreign_key_{}", fk.name),
        up,
        down: Some(down),
    })
}

/// Plans dropping a foreign key (SQLite: a rebuild).
///
/// # Errors
/// Unknown table or foreign key.
pub fn drop_foreign_key(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    name: &str,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let fk = t
        .foreign_keys
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| MetaError::ConstraintNotFound {
            kind: "foreign key",
            name: name.to_owned(),
        })?;
    let (up, down) = match backend {
        DbBackend::Sqlite => {
            let mut new = t.clone();
            new.foreign_keys.retain(|f| f.name != name);
            (rebuild(t, &new)?, rebuild(&new, t)?)
        }
        _ => (
            vec![render(
                ForeignKey::drop().name(name).table(a(table)),
                backend,
            )],
            vec![render(&fk_statement(table, fk), backend)],
        ),
    };
    Ok(Change {
        name: format!("drop_foreign_key_{name}"),
        up,
        down: Some(down),
    })
}

/// Plans a check constraint on an existing table (SQLite: a rebuild, whose
/// copy of the rows fails with `meta.data_conflict` when a row violates it).
///
/// # Errors
/// Unknown table, a refused expression, invalid or taken name.
pub fn add_check(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    spec: &CheckSpec,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let columns: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let check = resolve_check(backend, table, &columns, &t.checks, spec)?;
    let (up, down) = match backend {
        DbBackend::Sqlite => {
            let mut new = t.clone();
            new.checks.push(check.clone());
            (rebuild(t, &new)?, rebuild(&new, t)?)
        }
        _ => (
            vec![add_check_sql(table, &check)],
            vec![drop_check_sql(table, &check.name)],
        ),
    };
    Ok(Change {
        name: format!("add_check_{table}_{}", check.name),
        up,
        down: Some(down),
    })
}

/// Plans dropping a check constraint (SQLite: a rebuild).
///
/// # Errors
/// Unknown table or constraint.
pub fn drop_check(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    name: &str,
) -> Result<Change> {
    let t = catalog.table(table)?;
    let check =
        t.checks
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| MetaError::ConstraintNotFound {
                kind: "check constraint",
                name: name.to_owned(),
            })?;
    let (up, down) = match backend {
        DbBackend::Sqlite => {
            let mut new = t.clone();
            new.checks.retain(|c| c.name != name);
            (rebuild(t, &new)?, rebuild(&new, t)?)
        }
        _ => (
            vec![drop_check_sql(table, name)],
            vec![add_check_sql(table, check)],
        ),
    };
    Ok(Change {
        name: format!("drop_check_{table}_{name}"),
        up,
        down: Some(down),
    })
}

/// Plans `CREATE INDEX`.
///
/// # Errors
/// Unknown table/columns, invalid or taken name.
pub fn create_index(
    catalog: &Catalog,
    backend: DbBackend,
    table: &str,
    spec: &IndexSpec,
) -> Result<Change> {
    let t = catalog.table(table)?;
    check_columns(table, &spec.columns, |c| t.column(c).is_some())?;
    let name = match &spec.name {
        Some(n) => validate(n)?.to_owned(),
        None => fk_name(
            table,
            &spec.columns,
            if spec.unique { "key" } else { "idx" },
        ),
    };
    if catalog.index(&name).is_some() || catalog.get(&name).is_some() {
        return Err(MetaError::AlreadyExists(format!("index {name:?}")));
    }
    let idx = IndexInfo {
        name: name.clone(),
        columns: spec.columns.clone(),
        unique: spec.unique,
        primary: false,
        method: "btree".into(),
        constraint: false,
    };
    Ok(Change {
        name: format!("create_index_{name}"),
        up: vec![render(&index_statement(table, &idx), backend)],
        down: Some(vec![drop_index(table, &name, backend)]),
    })
}

/// Plans `DROP INDEX` (indexes backing a primary key or unique constraint excepted).
///
/// # Errors
/// Unknown index, constraint indexes.
pub fn drop_index_change(catalog: &Catalog, backend: DbBackend, name: &str) -> Result<Change> {
    let (t, idx) = catalog
        .index(name)
        .ok_or_else(|| MetaError::ConstraintNotFound {
            kind: "index",
            name: name.to_owned(),
        })?;
    if idx.constraint {
        return Err(MetaError::Unsupported(
            "this index backs a primary key or unique constraint".into(),
        ));
    }
    Ok(Change {
        name: format!("drop_index_{name}"),
        up: vec![drop_index(&t.name, name, backend)],
        down: Some(vec![render(&index_statement(&t.name, idx), backend)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_are_what_introspection_reports() {
        assert_eq!(DataType::Bigint.declared(DbBackend::Postgres), "bigint");
        assert_eq!(DataType::Uuid.declared(DbBackend::Sqlite), "uuid_text");
        assert_eq!(DataType::Text.declared(DbBackend::Sqlite), "text");
    }

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        let catalog = Catalog::default();
        let req: CreateTable = serde_json::from_value(serde_json::json!({
            "name": "select",
            "columns": [{"name": "order", "type": "text"}, {"name": "名前", "type": "integer"}]
        }))
        .unwrap();
        let change = create_table(&catalog, DbBackend::Postgres, &req).unwrap();
        assert_eq!(
            change.up[0],
            "CREATE TABLE \"select\" ( \"order\" text, \"名前\" integer )"
        );
    }
}
