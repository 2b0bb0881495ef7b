//! PostgreSQL introspection of schema `public` through `pg_catalog`.

use std::collections::HashMap;

use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::{Column, ColumnKind, ForeignKey, Function, Table, group};
use crate::error::{RestError, Result};

const COLUMNS: &str = "SELECT c.relname::text, c.relkind::text, a.attname::text, t.typname::text, \
     NOT a.attnotnull, (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') \
     FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     JOIN pg_type t ON t.oid = a.atttypid \
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
     ORDER BY c.relname, a.attnum";

const CONSTRAINTS: &str = "SELECT c.relname::text, con.conname::text, con.contype::text, a.attname::text, \
     fc.relname::text, fa.attname::text \
     FROM pg_constraint con \
     JOIN pg_class c ON c.oid = con.conrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
     LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
     LEFT JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[k.ord] \
     WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f') \
     ORDER BY c.relname, con.conname, k.ord";

/// The type a bound text value is cast to, from a closed set of built-ins.
fn pg_cast(typname: &str) -> Option<&'static str> {
    Some(match typname {
        "uuid" => "uuid",
        "json" => "json",
        "jsonb" => "jsonb",
        "timestamptz" => "timestamptz",
        "timestamp" => "timestamp",
        "date" => "date",
        "time" => "time",
        "timetz" => "timetz",
        "numeric" => "numeric",
        "interval" => "interval",
        "inet" => "inet",
        "cidr" => "cidr",
        "macaddr" => "macaddr",
        "int2" => "int2",
        "int4" => "int4",
        "int8" => "int8",
        "float4" => "float4",
        "float8" => "float8",
        "bool" => "bool",
        "text" => "text",
        "varchar" => "varchar",
        "bpchar" => "bpchar",
        _ => return None,
    })
}

fn db(err: goforward_core::sea_orm::DbErr) -> RestError {
    RestError::from_db(err)
}

pub(super) async fn load(conn: &DatabaseConnection) -> Result<Vec<Table>> {
    let rows = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, COLUMNS))
        .await
        .map_err(db)?;
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        let table: String = row.try_get_by_index(0).map_err(db)?;
        let kind: String = row.try_get_by_index(1).map_err(db)?;
        let name: String = row.try_get_by_index(2).map_err(db)?;
        let typname: String = row.try_get_by_index(3).map_err(db)?;
        let nullable: bool = row.try_get_by_index(4).map_err(db)?;
        let has_default: bool = row.try_get_by_index(5).map_err(db)?;
        if tables.last().is_none_or(|t| t.name != table) {
            tables.push(Table {
                name: table.clone(),
                is_view: kind != "r" && kind != "p",
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique: Vec::new(),
                foreign_keys: Vec::new(),
            });
        }
        if let Some(t) = tables.last_mut() {
            t.columns.push(Column {
                name,
                kind: ColumnKind::from_postgres(&typname),
                pg_cast: pg_cast(&typname),
                data_type: typname,
                nullable,
                has_default,
                primary_key: false,
            });
        }
    }

    let rows = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, CONSTRAINTS))
        .await
        .map_err(db)?;
    let mut flat = Vec::new();
    for row in rows {
        let table: String = row.try_get_by_index(0).map_err(db)?;
        let conname: String = row.try_get_by_index(1).map_err(db)?;
        let contype: String = row.try_get_by_index(2).map_err(db)?;
        let column: String = row.try_get_by_index(3).map_err(db)?;
        let ftable: Option<String> = row.try_get_by_index(4).map_err(db)?;
        let fcolumn: Option<String> = row.try_get_by_index(5).map_err(db)?;
        flat.push(((table, conname, contype), (column, ftable, fcolumn)));
    }
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, t) in tables.iter().enumerate() {
        by_name.insert(t.name.clone(), i);
    }
    for ((table, conname, contype), cols) in group(flat) {
        let Some(t) = by_name.get(&table).and_then(|&i| tables.get_mut(i)) else {
            continue;
        };
        let columns: Vec<String> = cols.iter().map(|(c, _, _)| c.clone()).collect();
        match contype.as_str() {
            "p" => {
                for c in t.columns.iter_mut() {
                    if columns.contains(&c.name) {
                        c.primary_key = true;
                    }
                }
                t.primary_key = columns;
            }
            "u" => t.unique.push(columns),
            _ => {
                let foreign_table = cols
                    .first()
                    .and_then(|(_, ft, _)| ft.clone())
                    .unwrap_or_default();
                t.foreign_keys.push(ForeignKey {
                    name: conname,
                    columns,
                    foreign_table,
                    foreign_columns: cols.into_iter().filter_map(|(_, _, fc)| fc).collect(),
                });
            }
        }
    }
    Ok(tables)
}

const FUNCTIONS: &str = "SELECT p.proname::text, p.proretset, (p.prorettype = 'void'::regtype), \
     p.provolatile::text, COALESCE(p.proargnames, ARRAY[]::text[])::text[], \
     COALESCE((SELECT array_agg(format_type(a.t, NULL) ORDER BY a.i) \
               FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)), ARRAY[]::text[])::text[], \
     p.pronargdefaults::int8, (p.proargmodes IS NULL) \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = 'public' AND p.prokind = 'f' \
     ORDER BY p.proname";

/// A type name as `format_type` prints it: letters, digits, spaces, `_`,
/// `[]`, `()`, `,`, `.` and double quotes only (anything else is not used in SQL).
fn plain_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, ' ' | '_' | '[' | ']' | '(' | ')' | ',' | '.' | '"')
        })
}

pub(super) async fn load_functions(conn: &DatabaseConnection) -> Result<Vec<Function>> {
    let rows = conn
        .query_all_raw(Statement::from_string(DbBackend::Postgres, FUNCTIONS))
        .await
        .map_err(db)?;
    let mut out: Vec<Function> = Vec::new();
    let mut overloaded: Vec<String> = Vec::new();
    for row in rows {
        let name: String = row.try_get_by_index(0).map_err(db)?;
        let returns_set: bool = row.try_get_by_index(1).map_err(db)?;
        let returns_void: bool = row.try_get_by_index(2).map_err(db)?;
        let volatility: String = row.try_get_by_index(3).map_err(db)?;
        let names: Vec<String> = row.try_get_by_index(4).map_err(db)?;
        let types: Vec<String> = row.try_get_by_index(5).map_err(db)?;
        let defaults: i64 = row.try_get_by_index(6).map_err(db)?;
        let only_in: bool = row.try_get_by_index(7).map_err(db)?;
        if out.iter().any(|f| f.name == name) || overloaded.contains(&name) {
            out.retain(|f| f.name != name);
            overloaded.push(name);
            continue;
        }
        // Only named IN arguments of plain types can be called by name.
        if !only_in
            || names.len() != types.len()
            || names.iter().any(String::is_empty)
            || !types.iter().all(|t| plain_type(t))
        {
            continue;
        }
        let first_default = types.len().saturating_sub(defaults.max(0) as usize);
        let args = names
            .into_iter()
            .zip(types)
            .enumerate()
            .map(|(i, (n, t))| (n, t, i >= first_default))
            .collect();
        out.push(Function {
            name,
            args,
            returns_set,
            returns_void,
            volatility,
        });
    }
    Ok(out)
}
