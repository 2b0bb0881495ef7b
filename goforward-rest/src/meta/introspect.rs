//! Detailed introspection for administrators: tables and views with
//! columns, keys (with referential actions), unique and check constraints,
//! indexes, size and row estimates, and the relationship graph.
//!
//! SQLite through `sqlite_master` and the `pragma_*` table functions;
//! PostgreSQL through `pg_catalog` (schema `public`). GoForward's own
//! tables (`goforward_*`) and the backends' internal ones are left out.

use std::collections::BTreeMap;

use goforward_core::sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement,
};
use serde::Serialize;

use super::error::{MetaError, Result};

/// One column.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Declared type (SQLite) or `format_type` (PostgreSQL).
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression as the database prints it.
    pub default: Option<String>,
    /// Identity / autoincrement column.
    pub identity: bool,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Comment (PostgreSQL).
    pub comment: Option<String>,
}

/// One foreign key.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ForeignKeyInfo {
    /// Constraint name (SQLite: synthesised `<table>_<cols>_fkey`).
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub foreign_table: String,
    /// Referenced columns.
    pub foreign_columns: Vec<String>,
    /// `NO ACTION`, `RESTRICT`, `CASCADE`, `SET NULL` or `SET DEFAULT`.
    pub on_update: String,
    /// As `on_update`.
    pub on_delete: String,
}

/// A unique constraint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UniqueInfo {
    /// Constraint (PostgreSQL) or automatic index (SQLite) name.
    pub name: String,
    /// Columns.
    pub columns: Vec<String>,
}

/// A check constraint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckInfo {
    /// Constraint name (SQLite: the declared one, else synthesised, see
    /// [`super::expr::SqliteTableText::checks`]).
    pub name: String,
    /// `CHECK (…)`: `pg_get_constraintdef` / the expression SQLite stored.
    pub definition: String,
    /// The expression inside `CHECK`, as the database stored it (used to
    /// recreate the constraint).
    #[serde(skip)]
    pub expression: String,
}

/// An index.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// Indexed columns (expressions show as `null` entries are left out).
    pub columns: Vec<String>,
    /// Unique index.
    pub unique: bool,
    /// Backs the primary key.
    pub primary: bool,
    /// Access method (`btree`, `hash`, …; SQLite: `btree`).
    pub method: String,
    /// Created by a constraint (primary key / unique) rather than `CREATE INDEX`.
    pub constraint: bool,
}

/// A table or view.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// `table` or `view`.
    pub kind: &'static str,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns in key order.
    pub primary_key: Vec<String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKeyInfo>,
    /// Unique constraints.
    pub unique: Vec<UniqueInfo>,
    /// Check constraints.
    pub checks: Vec<CheckInfo>,
    /// Indexes.
    pub indexes: Vec<IndexInfo>,
    /// Estimated rows (PostgreSQL statistics; SQLite `sqlite_stat1` after ANALYZE).
    pub row_estimate: Option<i64>,
    /// Bytes on disk with indexes (PostgreSQL; SQLite when `dbstat` is compiled in).
    pub size_bytes: Option<i64>,
    /// Comment (PostgreSQL).
    pub comment: Option<String>,
    /// A view's definition.
    pub definition: Option<String>,
    /// SQLite: the table's triggers as `(name, CREATE TRIGGER text)`, which a
    /// rebuild recreates.
    #[serde(skip)]
    pub triggers: Vec<(String, String)>,
    /// SQLite: the integer primary key is `AUTOINCREMENT`.
    #[serde(skip)]
    pub autoincrement: bool,
    /// Whether `checks` is complete (SQLite: the stored `CREATE TABLE` text
    /// could be parsed); a rebuild is refused otherwise, as it would lose them.
    #[serde(skip)]
    pub checks_known: bool,
}

impl TableInfo {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `columns` (in any order) are exactly the primary key or a unique constraint.
    pub fn is_unique_set(&self, columns: &[String]) -> bool {
        let same =
            |set: &[String]| set.len() == columns.len() && set.iter().all(|c| columns.contains(c));
        (!self.primary_key.is_empty() && same(&self.primary_key))
            || self.unique.iter().any(|u| same(&u.columns))
            || self.indexes.iter().any(|i| i.unique && same(&i.columns))
    }
}

/// The introspected database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// Tables and views by name.
    pub tables: BTreeMap<String, TableInfo>,
}

impl Catalog {
    /// The table or view called `name`.
    pub fn get(&self, name: &str) -> Option<&TableInfo> {
        self.tables.get(name)
    }

    /// The table (not view) called `name`.
    ///
    /// # Errors
    /// [`MetaError::TableNotFound`].
    pub fn table(&self, name: &str) -> Result<&TableInfo> {
        self.tables
            .get(name)
            .filter(|t| t.kind == "table")
            .ok_or_else(|| MetaError::TableNotFound(name.to_owned()))
    }

    /// Tables other than `name` holding a foreign key to it.
    pub fn referencing(&self, name: &str) -> Vec<String> {
        self.tables
            .values()
            .filter(|t| t.name != name && t.foreign_keys.iter().any(|f| f.foreign_table == name))
            .map(|t| t.name.clone())
            .collect()
    }

    /// The index called `name` and its table.
    pub fn index(&self, name: &str) -> Option<(&TableInfo, &IndexInfo)> {
        self.tables
            .values()
            .find_map(|t| t.indexes.iter().find(|i| i.name == name).map(|i| (t, i)))
    }

    /// Introspects `db`.
    ///
    /// # Errors
    /// When a catalog query fails.
    pub async fn load(db: &DatabaseConnection) -> Result<Self> {
        let tables = match db.get_database_backend() {
            DbBackend::Postgres => postgres::load(db).await?,
            DbBackend::Sqlite => sqlite::load(db).await?,
            _ => return Err(MetaError::Unsupported("only SQLite and PostgreSQL".into())),
        };
        Ok(Self {
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
        })
    }

    /// The relationship graph.
    pub fn relationships(&self) -> Graph {
        let mut edges = Vec::new();
        for t in self.tables.values() {
            for fk in &t.foreign_keys {
                let kind = if t.is_unique_set(&fk.columns) {
                    "one_to_one"
                } else {
                    "many_to_one"
                };
                edges.push(Edge {
                    constraint: fk.name.clone(),
                    from: t.name.clone(),
                    from_columns: fk.columns.clone(),
                    to: fk.foreign_table.clone(),
                    to_columns: fk.foreign_columns.clone(),
                    kind,
                });
            }
        }
        let mut many_to_many = Vec::new();
        for t in self.tables.values().filter(|t| t.kind == "table") {
            // A junction: two foreign keys whose columns together are the
            // primary key (or a unique constraint) of the table.
            let fks = &t.foreign_keys;
            for (i, a) in fks.iter().enumerate() {
                for b in fks.iter().skip(i + 1) {
                    let mut cols = a.columns.clone();
                    cols.extend(b.columns.iter().cloned());
                    if a.columns.iter().any(|c| b.columns.contains(c)) || !t.is_unique_set(&cols) {
                        continue;
                    }
                    many_to_many.push(Junction {
                        junction: t.name.clone(),
                        left: a.foreign_table.clone(),
                        left_via: a.name.clone(),
                        right: b.foreign_table.clone(),
                        right_via: b.name.clone(),
                    });
                }
            }
        }
        Graph {
            nodes: self.tables.keys().cloned().collect(),
            edges,
            many_to_many,
        }
    }
}

/// Tables as nodes, foreign keys as edges, junction tables detected.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    /// Table and view names.
    pub nodes: Vec<String>,
    /// One per foreign key, from the referencing table.
    pub edges: Vec<Edge>,
    /// Many-to-many relationships through junction tables.
    pub many_to_many: Vec<Junction>,
}

/// A foreign key seen as a relationship.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// The foreign key.
    pub constraint: String,
    /// Referencing table.
    pub from: String,
    /// Referencing columns.
    pub from_columns: Vec<String>,
    /// Referenced table.
    pub to: String,
    /// Referenced columns.
    pub to_columns: Vec<String>,
    /// `one_to_one` when the referencing columns are unique, else `many_to_one`.
    pub kind: &'static str,
}

/// A many-to-many relationship.
#[derive(Debug, Clone, Serialize)]
pub struct Junction {
    /// The junction table.
    pub junction: String,
    /// One side.
    pub left: String,
    /// The foreign key to it.
    pub left_via: String,
    /// The other side.
    pub right: String,
    /// The foreign key to it.
    pub right_via: String,
}

fn get<T: goforward_core::sea_orm::TryGetable>(row: &QueryResult, i: usize) -> Result<T> {
    row.try_get_by_index(i).map_err(MetaError::from_db)
}

mod sqlite {
    use super::*;

    fn stmt(sql: &str, arg: &str) -> Statement {
        Statement::from_sql_and_values(DbBackend::Sqlite, sql, [arg.to_owned().into()])
    }

    pub(super) async fn load(db: &DatabaseConnection) -> Result<Vec<TableInfo>> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 AND name NOT LIKE 'goforward\\_%' ESCAPE '\\' ORDER BY name",
            ))
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let name: String = get(&row, 0)?;
            let kind: String = get(&row, 1)?;
            let sql: Option<String> = get(&row, 2)?;
            out.push(table(db, name, kind == "view", sql).await?);
        }
        Ok(out)
    }

    async fn table(
        db: &DatabaseConnection,
        name: String,
        is_view: bool,
        sql: Option<String>,
    ) -> Result<TableInfo> {
        let rows = db
            .query_all_raw(stmt(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?) \
                 WHERE hidden IN (0, 2, 3) ORDER BY cid",
                &name,
            ))
            .await?;
        let mut columns = Vec::new();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for row in rows {
            let col: String = get(&row, 0)?;
            let data_type: String = get(&row, 1)?;
            let notnull: i64 = get(&row, 2)?;
            let default: Option<String> = get(&row, 3)?;
            let pk_pos: i64 = get(&row, 4)?;
            if pk_pos > 0 {
                pk.push((pk_pos, col.clone()));
            }
            columns.push(ColumnInfo {
                name: col,
                data_type,
                nullable: notnull == 0 && pk_pos == 0,
                default,
                identity: false,
                primary_key: pk_pos > 0,
                comment: None,
            });
        }
        pk.sort();
        let primary_key: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
        if let [only] = primary_key.as_slice()
            && let Some(c) = columns.iter_mut().find(|c| &c.name == only)
            && c.data_type.eq_ignore_ascii_case("integer")
        {
            c.identity = true;
        }

        let rows = db
            .query_all_raw(stmt(
                "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
                 FROM pragma_foreign_key_list(?) ORDER BY id, seq",
                &name,
            ))
            .await?;
        let mut foreign_keys: Vec<(i64, ForeignKeyInfo)> = Vec::new();
        for row in rows {
            let id: i64 = get(&row, 0)?;
            let ftable: String = get(&row, 1)?;
            let from: String = get(&row, 2)?;
            let to: Option<String> = get(&row, 3)?;
            let on_update: String = get(&row, 4)?;
            let on_delete: String = get(&row, 5)?;
            match foreign_keys.last_mut() {
                Some((last, fk)) if *last == id => {
                    fk.columns.push(from);
                    fk.foreign_columns.extend(to);
                }
                _ => foreign_keys.push((
                    id,
                    ForeignKeyInfo {
                        name: String::new(),
                        columns: vec![from],
                        foreign_table: ftable,
                        foreign_columns: to.into_iter().collect(),
                        on_update,
                        on_delete,
                    },
                )),
            }
        }
        // pragma_foreign_key_list lists the last-declared key first.
        foreign_keys.reverse();
        let foreign_keys = foreign_keys
            .into_iter()
            .map(|(_, mut fk)| {
                fk.name = format!("{name}_{}_fkey", fk.columns.join("_"));
                fk
            })
            .collect();

        let rows = db
            .query_all_raw(stmt(
                "SELECT l.name, l.\"unique\", l.origin, i.name FROM pragma_index_list(?) AS l, \
                 pragma_index_info(l.name) AS i ORDER BY l.seq DESC, i.seqno",
                &name,
            ))
            .await?;
        let mut indexes: Vec<IndexInfo> = Vec::new();
        for row in rows {
            let index: String = get(&row, 0)?;
            let unique: i64 = get(&row, 1)?;
            let origin: String = get(&row, 2)?;
            let col: Option<String> = get(&row, 3)?;
            match indexes.last_mut() {
                Some(last) if last.name == index => last.columns.extend(col),
                _ => indexes.push(IndexInfo {
                    name: index,
                    columns: col.into_iter().collect(),
                    unique: unique != 0,
                    primary: origin == "pk",
                    method: "btree".into(),
                    constraint: origin != "c",
                }),
            }
        }
        let unique = indexes
            .iter()
            .filter(|i| i.unique && i.constraint && !i.primary)
            .map(|i| UniqueInfo {
                name: i.name.clone(),
                columns: i.columns.clone(),
            })
            .collect();

        let parsed = match (&sql, is_view) {
            (Some(text), false) => super::super::expr::sqlite_table(&name, text),
            _ => None,
        };
        let checks_known = is_view || parsed.is_some();
        let (checks, autoincrement) = match parsed {
            Some(p) => (
                p.checks
                    .into_iter()
                    .map(|(name, expression)| CheckInfo {
                        name,
                        definition: format!("CHECK ({expression})"),
                        expression,
                    })
                    .collect(),
                p.autoincrement,
            ),
            None => (Vec::new(), false),
        };
        let mut triggers = Vec::new();
        if !is_view {
            for row in db
                .query_all_raw(stmt(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' \
                     AND tbl_name = ? ORDER BY name",
                    &name,
                ))
                .await?
            {
                let trigger: String = get(&row, 0)?;
                let text: Option<String> = get(&row, 1)?;
                triggers.extend(text.map(|t| (trigger, t)));
            }
        }
        let row_estimate = if is_view {
            None
        } else {
            stat_rows(db, &name).await
        };
        let size_bytes = if is_view {
            None
        } else {
            db.query_one_raw(stmt(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN \
                 (SELECT name FROM sqlite_master WHERE tbl_name = ?1)",
                &name,
            ))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
        };
        Ok(TableInfo {
            kind: if is_view { "view" } else { "table" },
            definition: if is_view { sql } else { None },
            name,
            columns,
            primary_key,
            foreign_keys,
            unique,
            checks,
            indexes,
            row_estimate,
            size_bytes,
            comment: None,
            triggers,
            autoincrement,
            checks_known,
        })
    }

    async fn stat_rows(db: &DatabaseConnection, name: &str) -> Option<i64> {
        let row = db
            .query_one_raw(stmt(
                "SELECT stat FROM sqlite_stat1 WHERE tbl = ? LIMIT 1",
                name,
            ))
            .await
            .ok()
            .flatten()?;
        let stat: String = row.try_get_by_index(0).ok()?;
        stat.split(' ').next()?.parse().ok()
    }
}

mod postgres {
    use super::*;

    const TABLES: &str = "SELECT c.relname::text, c.relkind::text, \
         CASE WHEN c.relkind IN ('r', 'p', 'm') THEN c.reltuples::int8 END, \
         CASE WHEN c.relkind IN ('r', 'p', 'm') THEN pg_total_relation_size(c.oid)::int8 END, \
         obj_description(c.oid, 'pg_class'), \
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND c.relname NOT LIKE 'goforward\\_%' ORDER BY c.relname";

    const COLUMNS: &str = "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
         NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), (a.attidentity <> '' OR \
         COALESCE(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%'), col_description(c.oid, a.attnum) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY c.relname, a.attnum";

    const CONSTRAINTS: &str = "SELECT c.relname::text, con.conname::text, con.contype::text, \
         COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) \
           WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = con.conrelid \
           AND a.attnum = k.attnum), ARRAY[]::text[]), \
         fc.relname::text, \
         COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) \
           WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = con.confrelid \
           AND a.attnum = k.attnum), ARRAY[]::text[]), \
         con.confupdtype::text, con.confdeltype::text, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
         WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f', 'c') \
         ORDER BY c.relname, con.conname";

    const INDEXES: &str = "SELECT t.relname::text, i.relname::text, x.indisunique, x.indisprimary, \
         am.amname::text, \
         COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.indkey::int2[]) \
           WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = t.oid \
           AND a.attnum = k.attnum), ARRAY[]::text[]), \
         EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.oid AND con.contype IN ('p', 'u')) \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace JOIN pg_am am ON am.oid = i.relam \
         WHERE n.nspname = 'public' ORDER BY t.relname, i.relname";

    fn action(code: &str) -> String {
        match code {
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "NO ACTION",
        }
        .to_owned()
    }

    fn q(sql: &str) -> Statement {
        Statement::from_string(DbBackend::Postgres, sql)
    }

    pub(super) async fn load(db: &DatabaseConnection) -> Result<Vec<TableInfo>> {
        let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
        for row in db.query_all_raw(q(TABLES)).await? {
            let name: String = get(&row, 0)?;
            let kind: String = get(&row, 1)?;
            let estimate: Option<i64> = get(&row, 2)?;
            let size: Option<i64> = get(&row, 3)?;
            let comment: Option<String> = get(&row, 4)?;
            let definition: Option<String> = get(&row, 5)?;
            tables.insert(
                name.clone(),
                TableInfo {
                    name,
                    kind: if kind == "r" || kind == "p" {
                        "table"
                    } else {
                        "view"
                    },
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    foreign_keys: Vec::new(),
                    unique: Vec::new(),
                    checks: Vec::new(),
                    indexes: Vec::new(),
                    // -1: never analysed.
                    row_estimate: estimate.filter(|n| *n >= 0),
                    size_bytes: size,
                    comment,
                    definition,
                    triggers: Vec::new(),
                    autoincrement: false,
                    checks_known: true,
                },
            );
        }
        for row in db.query_all_raw(q(COLUMNS)).await? {
            let table: String = get(&row, 0)?;
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            t.columns.push(ColumnInfo {
                name: get(&row, 1)?,
                data_type: get(&row, 2)?,
                nullable: get(&row, 3)?,
                default: get(&row, 4)?,
                identity: get(&row, 5)?,
                primary_key: false,
                comment: get(&row, 6)?,
            });
        }
        for row in db.query_all_raw(q(CONSTRAINTS)).await? {
            let table: String = get(&row, 0)?;
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            let name: String = get(&row, 1)?;
            let contype: String = get(&row, 2)?;
            let columns: Vec<String> = get(&row, 3)?;
            match contype.as_str() {
                "p" => {
                    for c in t.columns.iter_mut() {
                        c.primary_key = columns.contains(&c.name);
                    }
                    t.primary_key = columns;
                }
                "u" => t.unique.push(UniqueInfo { name, columns }),
                "f" => {
                    let foreign_table: Option<String> = get(&row, 4)?;
                    let on_update: String = get(&row, 6)?;
                    let on_delete: String = get(&row, 7)?;
                    t.foreign_keys.push(ForeignKeyInfo {
                        name,
                        columns,
                        foreign_table: foreign_table.unwrap_or_default(),
                        foreign_columns: get(&row, 5)?,
                        on_update: action(&on_update),
                        on_delete: action(&on_delete),
                    });
                }
                _ => {
                    let definition: String = get(&row, 8)?;
                    let expression = definition
                        .strip_prefix("CHECK ")
                        .unwrap_or(&definition)
                        .trim_end_matches(" NOT VALID")
                        .to_owned();
                    t.checks.push(CheckInfo {
                        name,
                        definition,
                        expression,
                    })
                }
            }
        }
        for row in db.query_all_raw(q(INDEXES)).await? {
            let table: String = get(&row, 0)?;
            let Some(t) = tables.get_mut(&table) else {
                continue;
            };
            t.indexes.push(IndexInfo {
                name: get(&row, 1)?,
                unique: get(&row, 2)?,
                primary: get(&row, 3)?,
                method: get(&row, 4)?,
                columns: get(&row, 5)?,
                constraint: get(&row, 6)?,
            });
        }
        Ok(tables.into_values().collect())
    }
}

/// Schemas (PostgreSQL namespaces; SQLite: `main`).
///
/// # Errors
/// When a catalog query fails.
pub async fn schemas(db: &DatabaseConnection) -> Result<Vec<serde_json::Value>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(vec![serde_json::json!({"name": "main", "owner": null})]);
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text FROM pg_namespace n \
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
             ORDER BY n.nspname",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(serde_json::json!({
                "name": get::<String>(r, 0)?,
                "owner": get::<String>(r, 1)?,
            }))
        })
        .collect()
}

/// Functions of schema `public` (PostgreSQL; SQLite has none stored).
///
/// # Errors
/// When a catalog query fails.
pub async fn functions(db: &DatabaseConnection) -> Result<Vec<serde_json::Value>> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT p.proname::text, pg_get_function_arguments(p.oid), \
             pg_get_function_result(p.oid), l.lanname::text, p.provolatile::text, \
             p.prosecdef, p.prokind::text FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
             WHERE n.nspname = 'public' ORDER BY p.proname, 2",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let volatility = match get::<String>(r, 4)?.as_str() {
                "i" => "immutable",
                "s" => "stable",
                _ => "volatile",
            };
            let kind = match get::<String>(r, 6)?.as_str() {
                "p" => "procedure",
                "a" => "aggregate",
                "w" => "window",
                _ => "function",
            };
            Ok(serde_json::json!({
                "name": get::<String>(r, 0)?,
                "arguments": get::<String>(r, 1)?,
                "returns": get::<Option<String>>(r, 2)?,
                "language": get::<String>(r, 3)?,
                "volatility": volatility,
                "security_definer": get::<bool>(r, 5)?,
                "kind": kind,
            }))
        })
        .collect()
}

/// Triggers on tables of schema `public` / the SQLite database.
///
/// # Errors
/// When a catalog query fails.
pub async fn triggers(db: &DatabaseConnection) -> Result<Vec<serde_json::Value>> {
    let (backend, sql) = match db.get_database_backend() {
        DbBackend::Postgres => (
            DbBackend::Postgres,
            "SELECT t.tgname::text, c.relname::text, pg_get_triggerdef(t.oid), t.tgenabled <> 'D' \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND NOT t.tgisinternal \
             AND c.relname NOT LIKE 'goforward\\_%' ORDER BY c.relname, t.tgname",
        ),
        _ => (
            DbBackend::Sqlite,
            "SELECT name, tbl_name, sql, 1 FROM sqlite_master WHERE type = 'trigger' \
             AND tbl_name NOT LIKE 'goforward\\_%' ESCAPE '\\' ORDER BY tbl_name, name",
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await?;
    rows.iter()
        .map(|r| {
            let enabled = match backend {
                DbBackend::Postgres => get::<bool>(r, 3)?,
                _ => get::<i64>(r, 3)? != 0,
            };
            Ok(serde_json::json!({
                "name": get::<String>(r, 0)?,
                "table": get::<String>(r, 1)?,
                "definition": get::<Option<String>>(r, 2)?,
                "enabled": enabled,
            }))
        })
        .collect()
}
