//! INSERT / UPDATE / DELETE statements, each returning the full typed row.

use goforward_core::sea_query::{
    Alias, Condition, DeleteStatement, Expr, InsertStatement, OnConflict, Query, UpdateStatement,
};
use serde_json::{Map, Value};

use super::{Decode, Target, col_ref, values::bind_expr};
use crate::error::{RestError, Result};
use crate::query::headers::Resolution;

/// The typed expressions and decodings of every column of the table, in order.
pub fn full_row(target: &Target<'_>) -> (Vec<Expr>, Vec<Decode>, Vec<String>) {
    let mut exprs = Vec::new();
    let mut decodes = Vec::new();
    let mut names = Vec::new();
    for c in &target.table.columns {
        let (e, d) = target.typed(c);
        exprs.push(e);
        decodes.push(d);
        names.push(c.name.clone());
    }
    (exprs, decodes, names)
}

/// The decodings and names of [`full_row`] (without its expressions).
pub fn full_row_decodes(target: &Target<'_>) -> (Vec<Decode>, Vec<String>) {
    target
        .table
        .columns
        .iter()
        .map(|c| (target.decode_of(c), c.name.clone()))
        .unzip()
}

/// A full row as a JSON object.
pub fn row_object(names: &[String], values: Vec<Value>) -> Value {
    Value::Object(names.iter().cloned().zip(values).collect::<Map<_, _>>())
}

/// An upsert: conflict target, resolution, and (merge only) the condition the
/// existing row must meet to be updated (the caller's update policy).
#[derive(Debug, Clone)]
pub struct Upsert {
    /// Conflict columns (schema names).
    pub on_conflict: Vec<String>,
    /// Merge or ignore.
    pub resolution: Resolution,
    /// Guard on the existing row for merges.
    pub guard: Option<Condition>,
}

/// `INSERT INTO t (…) VALUES (…) [ON CONFLICT …] RETURNING <full row>`.
/// `record` holds coerced values keyed by schema column names.
///
/// # Errors
/// Never for records built by the handlers; kept fallible for sea-query.
pub fn insert(
    target: &Target<'_>,
    record: &Map<String, Value>,
    upsert: Option<&Upsert>,
) -> Result<InsertStatement> {
    let mut q = Query::insert();
    q.into_table(Alias::new(target.table.name.as_str()));
    let mut cols = Vec::new();
    let mut vals = Vec::new();
    for c in &target.table.columns {
        if let Some(v) = record.get(&c.name) {
            cols.push(Alias::new(c.name.as_str()));
            vals.push(bind_expr(c, v, target.backend));
        }
    }
    if cols.is_empty() {
        q.or_default_values();
    } else {
        q.columns(cols);
        q.values(vals)
            .map_err(|e| RestError::Core(goforward_core::Error::Internal(e.to_string())))?;
    }
    if let Some(u) = upsert {
        let mut oc = OnConflict::columns(u.on_conflict.iter().map(|c| Alias::new(c.as_str())));
        let update: Vec<Alias> = target
            .table
            .columns
            .iter()
            .filter(|c| record.contains_key(&c.name) && !u.on_conflict.contains(&c.name))
            .map(|c| Alias::new(c.name.as_str()))
            .collect();
        if u.resolution == Resolution::IgnoreDuplicates || update.is_empty() {
            oc.do_nothing();
        } else {
            oc.update_columns(update);
            if let Some(g) = &u.guard {
                oc.action_cond_where(g.clone());
            }
        }
        q.on_conflict(oc);
    }
    let (exprs, _, _) = full_row(target);
    q.returning(Query::returning().exprs(exprs));
    Ok(q)
}

/// `UPDATE t SET … WHERE … RETURNING <full row>`.
pub fn update(target: &Target<'_>, set: &Map<String, Value>, cond: Condition) -> UpdateStatement {
    let mut q = Query::update();
    q.table(Alias::new(target.table.name.as_str()));
    for c in &target.table.columns {
        if let Some(v) = set.get(&c.name) {
            q.value(Alias::new(c.name.as_str()), bind_expr(c, v, target.backend));
        }
    }
    q.cond_where(cond);
    let (exprs, _, _) = full_row(target);
    q.returning(Query::returning().exprs(exprs));
    q
}

/// `DELETE FROM t WHERE … RETURNING <full row>`.
pub fn delete(target: &Target<'_>, cond: Condition) -> DeleteStatement {
    let (exprs, _, _) = full_row(target);
    Query::delete()
        .from_table(Alias::new(target.table.name.as_str()))
        .cond_where(cond)
        .returning(Query::returning().exprs(exprs))
        .to_owned()
}

/// `pk1 = v1 AND pk2 = v2` for a row (values as read back, re-coerced).
///
/// # Errors
/// When the table has no primary key.
pub fn key_cond(target: &Target<'_>, row: &Value) -> Result<Condition> {
    if target.table.primary_key.is_empty() {
        return Err(RestError::Unsupported(format!(
            "table {} has no primary key: PATCH and DELETE need one",
            target.table.name
        )));
    }
    let mut cond = Condition::all();
    for name in &target.table.primary_key {
        let Some(col) = target.table.column(name) else {
            continue;
        };
        let v = row.get(name).cloned().unwrap_or(Value::Null);
        let v = super::values::coerce(&target.table.name, col, &v, target.backend)?;
        cond = cond.add(col_ref(name).eq(bind_expr(col, &v, target.backend)));
    }
    Ok(cond)
}

use goforward_core::sea_query::ExprTrait as _;
