//! SELECT and COUNT statements of a read.

use goforward_core::{
    filter::SqlBackend,
    sea_orm::{DbErr, QueryResult, Statement},
    sea_query::{Alias, Condition, Expr, NullOrdering, Order, Query, SelectStatement},
};
use serde_json::Value;

use super::{Cond, Decode, OutCol, Target, col_ref};
use crate::error::{RestError, Result};
use crate::query::{Expr as ParsedExpr, OrderTerm};

/// The WHERE of a request: the client's filters ANDed with the policy's.
///
/// # Errors
/// As [`Target::cond`] / [`Target::render`].
pub fn where_cond(
    target: &Target<'_>,
    filters: &[ParsedExpr],
    policy: Option<&Cond>,
) -> Result<Condition> {
    let mut all = Condition::all();
    for f in filters {
        all = all.add(target.render(&target.cond(f)?)?);
    }
    if let Some(p) = policy {
        all = all.add(target.render(p)?);
    }
    Ok(all)
}

/// `SELECT <cols> FROM t WHERE … ORDER BY … LIMIT … OFFSET …`.
///
/// # Errors
/// Unknown / hidden order columns.
pub fn select(
    target: &Target<'_>,
    cols: &[OutCol],
    cond: Condition,
    order: &[OrderTerm],
    limit: Option<u64>,
    offset: u64,
) -> Result<SelectStatement> {
    select_listed(target, cols, None, cond, order, limit, offset)
}

/// As [`select`]; with `list` (a [`StarList`]'s rendered select list for
/// these `cols`) the columns go in as that text instead of one expression
/// each — the same SQL, without building, rendering and dropping the
/// typed column expressions per request.
///
/// # Errors
/// As [`select`].
pub fn select_listed(
    target: &Target<'_>,
    cols: &[OutCol],
    list: Option<&str>,
    cond: Condition,
    order: &[OrderTerm],
    limit: Option<u64>,
    offset: u64,
) -> Result<SelectStatement> {
    let mut q = Query::select();
    match list {
        Some(list) => {
            q.expr(Expr::cust(list.to_owned()));
        }
        None => push_columns(&mut q, cols),
    }
    q.from(Alias::new(target.table.name.as_str()));
    q.cond_where(cond);
    // Aggregates: every other selected column is grouped by (PostgREST 12).
    let mut grouped: Option<Vec<&str>> = None;
    if cols.iter().any(|c| c.aggregate) {
        let mut keys = Vec::new();
        for c in cols.iter().filter(|c| !c.aggregate) {
            if c.derived {
                return Err(RestError::Unsupported(
                    "aggregates together with embedded resources are not supported yet".into(),
                ));
            }
            if !c.field.path.is_empty() {
                return Err(RestError::Unsupported(
                    "grouping by a JSON path is not supported".into(),
                ));
            }
            let col = target.column(&c.field.column)?;
            if !keys.contains(&col.name.as_str()) {
                q.add_group_by([col_ref(&col.name)]);
                keys.push(col.name.as_str());
            }
        }
        grouped = Some(keys);
    }
    for term in order {
        let col = target.column(&term.field.column)?;
        if let Some(keys) = &grouped
            && (!keys.contains(&col.name.as_str()) || !term.field.path.is_empty())
        {
            return Err(RestError::parse(
                format!("failed to parse order ({})", col.name),
                "with aggregates, order by the selected (grouped) columns only",
            ));
        }
        let expr = if term.field.path.is_empty() {
            col_ref(&col.name)
        } else {
            target.field_expr(&term.field)?.0
        };
        // PostgreSQL's defaults, made explicit so SQLite sorts the same.
        let nulls_first = term.nulls_first.unwrap_or(term.desc);
        q.order_by_expr_with_nulls(
            expr,
            if term.desc { Order::Desc } else { Order::Asc },
            if nulls_first {
                NullOrdering::First
            } else {
                NullOrdering::Last
            },
        );
    }
    if let Some(limit) = limit {
        q.limit(limit);
    }
    if offset > 0 {
        if limit.is_none() && target.backend == SqlBackend::Sqlite {
            q.limit(i64::MAX as u64);
        }
        q.offset(offset);
    }
    // `q` is the statement itself: no `to_owned()` copy of it (a deep
    // clone and a drop of every expression, per request).
    Ok(q)
}

/// The select list: each column's expression under its output alias.
fn push_columns(q: &mut SelectStatement, cols: &[OutCol]) {
    for (i, c) in cols.iter().enumerate() {
        let alias = match OUT_ALIASES.get(i) {
            Some(name) => Alias::new(*name),
            None => Alias::new(format!("c{i}")),
        };
        q.expr_as(c.expr.clone(), alias);
    }
    if cols.is_empty() {
        q.expr(Expr::cust("1"));
    }
}

/// A table's default select list (`select` absent or `*`), planned once per
/// schema snapshot and backend: the output columns, their JSON names and
/// the select list as rendered SQL (identifiers from the schema and our
/// type names only; it carries no values).
#[derive(Debug)]
pub struct StarList {
    /// The (visible) table it was planned for.
    pub table: std::sync::Arc<crate::schema::Table>,
    /// The dialect.
    pub backend: SqlBackend,
    /// The output columns.
    pub cols: Vec<OutCol>,
    /// Their JSON keys.
    pub names: Vec<String>,
    /// `CAST("a" AS …) AS "c0", …` as the statement builder renders it.
    pub sql: String,
}

impl StarList {
    /// Plans `table`'s default select list; `None` when it cannot be
    /// rendered on its own (then requests plan it as before).
    pub fn new(table: std::sync::Arc<crate::schema::Table>, backend: SqlBackend) -> Option<Self> {
        use goforward_core::sea_orm::DbBackend;
        let target = Target {
            table: &table,
            visible: &table,
            backend,
            alias: None,
        };
        let cols = target.select_list(None).ok()?;
        let db = match backend {
            SqlBackend::Sqlite => DbBackend::Sqlite,
            SqlBackend::Postgres => DbBackend::Postgres,
        };
        let from = Alias::new(table.name.as_str());
        let mut q = Query::select();
        push_columns(&mut q, &cols);
        q.from(from.clone());
        let full = db.build(&q);
        let bare = db.build(Query::select().expr(Expr::cust("1")).from(from));
        if full.values.as_ref().is_some_and(|v| !v.0.is_empty())
            || bare.values.as_ref().is_some_and(|v| !v.0.is_empty())
        {
            return None;
        }
        let from_clause = bare.sql.strip_prefix("SELECT 1")?;
        let sql = full
            .sql
            .strip_prefix("SELECT ")?
            .strip_suffix(from_clause)?
            .to_owned();
        let names = cols.iter().map(|c| c.name.clone()).collect();
        Some(Self {
            table,
            backend,
            cols,
            names,
            sql,
        })
    }
}

/// The output aliases `c0`, `c1`, … of the first columns, without a
/// `format!` per column per request.
const OUT_ALIASES: [&str; 16] = [
    "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12", "c13", "c14",
    "c15",
];

/// Appends `LIMIT limit OFFSET offset` to a built SQLite `SELECT` (built
/// without bounds) as integer literals rather than bound parameters.
///
/// SQLite marks a statement whose `LIMIT`/`OFFSET` is a bound parameter for
/// re-optimisation whenever that parameter is bound again
/// (`sqlite3ExprIsInteger` → `sqlite3VdbeSetVarmask`), so a cached
/// statement was parsed and planned anew on every request. The bounds are
/// integers computed here (the parsed `limit`/`offset`/`Range`, capped by
/// `max_rows`), never request text.
pub fn with_literal_bounds(mut stmt: Statement, limit: u64, offset: u64) -> Statement {
    use std::fmt::Write as _;
    // SQLite's bounds are signed 64-bit; writing to a String cannot fail.
    let cap = |n: u64| n.min(i64::MAX as u64);
    let _ = write!(stmt.sql, " LIMIT {}", cap(limit));
    if offset > 0 {
        let _ = write!(stmt.sql, " OFFSET {}", cap(offset));
    }
    stmt
}

/// `SELECT COUNT(*) FROM t WHERE …`.
pub fn count(target: &Target<'_>, cond: Condition) -> SelectStatement {
    Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(Alias::new(target.table.name.as_str()))
        .cond_where(cond)
        .to_owned()
}

/// `SELECT COUNT(*) FROM (<rows>)`: the rows a statement yields (groups,
/// for aggregates).
pub fn count_rows(rows: SelectStatement) -> SelectStatement {
    Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(rows, Alias::new("gf_rows"))
        .to_owned()
}

/// Decodes one row of `decodes`.
///
/// # Errors
/// When the driver cannot decode a value.
pub fn decode_row(
    row: &QueryResult,
    decodes: &[Decode],
    backend: SqlBackend,
) -> Result<Vec<Value>, DbErr> {
    decodes
        .iter()
        .enumerate()
        .map(|(i, d)| d.read(row, i, backend))
        .collect()
}
