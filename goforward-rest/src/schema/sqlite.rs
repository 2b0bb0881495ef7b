//! SQLite introspection through `sqlite_master` and the `pragma_*` table functions.

use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::{Column, ColumnKind, ForeignKey, Table, group};
use crate::error::{RestError, Result};

fn db(err: goforward_core::sea_orm::DbErr) -> RestError {
    RestError::from_db(err)
}

fn stmt(sql: &str, table: &str) -> Statement {
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, [table.to_owned().into()])
}

pub(super) async fn load(conn: &DatabaseConnection) -> Result<Vec<Table>> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        ))
        .await
        .map_err(db)?;
    let mut tables = Vec::new();
    for row in rows {
        let name: String = row.try_get_by_index(0).map_err(db)?;
        let kind: String = row.try_get_by_index(1).map_err(db)?;
        tables.push(load_table(conn, name, kind == "view").await?);
    }
    Ok(tables)
}

async fn load_table(conn: &DatabaseConnection, name: String, is_view: bool) -> Result<Table> {
    let rows = conn
        .query_all_raw(stmt(
            "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?) ORDER BY cid",
            &name,
        ))
        .await
        .map_err(db)?;
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    for row in rows {
        let col: String = row.try_get_by_index(0).map_err(db)?;
        let declared: String = row.try_get_by_index(1).map_err(db)?;
        let notnull: i64 = row.try_get_by_index(2).map_err(db)?;
        let has_default: i64 = row.try_get_by_index(3).map_err(db)?;
        let has_default = has_default != 0;
        let pk_pos: i64 = row.try_get_by_index(4).map_err(db)?;
        if pk_pos > 0 {
            pk.push((pk_pos, col.clone()));
        }
        columns.push(Column {
            name: col,
            kind: ColumnKind::from_sqlite(&declared),
            data_type: declared,
            pg_cast: None,
            nullable: notnull == 0 && pk_pos == 0,
            has_default,
            primary_key: pk_pos > 0,
        });
    }
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
    // A single INTEGER PRIMARY KEY is the rowid: the database fills it.
    if let [only] = primary_key.as_slice()
        && let Some(c) = columns.iter_mut().find(|c| &c.name == only)
        && c.data_type.eq_ignore_ascii_case("integer")
    {
        c.has_default = true;
    }

    let rows = conn
        .query_all_raw(stmt(
            "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?) ORDER BY id, seq",
            &name,
        ))
        .await
        .map_err(db)?;
    let mut flat = Vec::new();
    for row in rows {
        let id: i64 = row.try_get_by_index(0).map_err(db)?;
        let ftable: String = row.try_get_by_index(1).map_err(db)?;
        let from: String = row.try_get_by_index(2).map_err(db)?;
        let to: Option<String> = row.try_get_by_index(3).map_err(db)?;
        flat.push(((id, ftable), (from, to)));
    }
    let foreign_keys = group(flat)
        .into_iter()
        .map(|((_, foreign_table), cols)| {
            let columns: Vec<String> = cols.iter().map(|(f, _)| f.clone()).collect();
            ForeignKey {
                name: format!("{name}_{}_fkey", columns.join("_")),
                columns,
                foreign_table,
                foreign_columns: cols.into_iter().filter_map(|(_, t)| t).collect(),
            }
        })
        .collect();

    let rows = conn
        .query_all_raw(stmt(
            "SELECT l.name, i.name FROM pragma_index_list(?) AS l, pragma_index_info(l.name) AS i \
             WHERE l.\"unique\" = 1 AND l.origin <> 'pk' ORDER BY l.seq, i.seqno",
            &name,
        ))
        .await
        .map_err(db)?;
    let mut flat = Vec::new();
    for row in rows {
        let index: String = row.try_get_by_index(0).map_err(db)?;
        let col: String = row.try_get_by_index(1).map_err(db)?;
        flat.push((index, col));
    }
    let unique = group(flat).into_iter().map(|(_, cols)| cols).collect();

    Ok(Table {
        name,
        is_view,
        columns,
        primary_key,
        unique,
        foreign_keys,
    })
}
