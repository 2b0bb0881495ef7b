//! Embedded resources through foreign keys (`select=*,owner(*),notes(body)`):
//! each embed is a correlated subquery building JSON in the database
//! (`json_build_object` / `json_agg` on PostgreSQL, `json_object` /
//! `json_group_array` on SQLite), so a request stays one SQL statement.
//! The embedded table's own select policy is ANDed into its subquery.
//!
//! Many-to-many embeds go through an exposed junction table (an `EXISTS`
//! on it, its select policy ANDed in); spread embeds `...rel(cols)` become
//! one scalar subquery per column of the parent.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use goforward_core::{
    filter::SqlBackend,
    sea_query::{Alias, Condition, Expr, ExprTrait, NullOrdering, Order, Query, SelectStatement},
};
use serde_json::Value;

use super::{Cond, Decode, OutCol, Target, cust};
use crate::error::{RestError, Result};
use crate::query::{EmbedModifiers, Field, SelectItem};
use crate::schema::{ForeignKey, Table};

/// A related table the request may embed: exposed, with the caller's select policy.
#[derive(Debug, Clone)]
pub struct EmbedTable {
    /// Every column.
    pub table: Arc<Table>,
    /// Hidden columns removed.
    pub visible: Arc<Table>,
    /// The select policy as a row condition (`None`: every row).
    pub policy: Option<Cond>,
}

/// What a request may embed: the related tables by name, and the filters
/// and modifiers of each embed path.
#[derive(Debug, Clone, Default)]
pub struct Embeds {
    /// Related tables by name (exposed ones only).
    pub tables: HashMap<String, EmbedTable>,
    /// Exposed tables that may join two others (many-to-many), with the
    /// caller's select policy on them.
    pub junctions: Vec<EmbedTable>,
    /// `rel.col=…`, `rel.order=…`, … by embed path.
    pub modifiers: BTreeMap<Vec<String>, EmbedModifiers>,
}

impl Embeds {
    /// Nothing to embed.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The embed paths of a select list (each embed by its alias or relation name).
pub fn paths(items: &[SelectItem], prefix: &[String], out: &mut Vec<Vec<String>>) {
    for item in items {
        if let SelectItem::Embed {
            alias,
            relation,
            items,
            ..
        } = item
        {
            let mut path = prefix.to_vec();
            path.push(alias.clone().unwrap_or_else(|| relation.clone()));
            paths(items, &path, out);
            out.push(path);
        }
    }
}

/// How to normalise an embedded JSON value read back.
#[derive(Debug, Clone)]
pub struct Shape {
    /// To-many (an array) or to-one (an object or null).
    pub many: bool,
    /// Output fields: name, decoding, nested shape.
    pub fields: Vec<(String, Decode, Option<Arc<Shape>>)>,
}

impl Shape {
    /// Normalises a value read for this embed.
    pub fn normalize(&self, value: Value, backend: SqlBackend) -> Value {
        self.normalize_in(value, backend, false)
    }

    /// As [`Shape::normalize`]; `zoned`: `timestamptz` values keep the
    /// offset the database rendered them with (`Prefer: timezone=`, the
    /// session's zone) instead of being brought to UTC.
    pub fn normalize_in(&self, value: Value, backend: SqlBackend, zoned: bool) -> Value {
        match value {
            Value::Array(items) if self.many => Value::Array(
                items
                    .into_iter()
                    .map(|v| self.normalize_object(v, backend, zoned))
                    .collect(),
            ),
            other if !self.many => self.normalize_object(other, backend, zoned),
            other => other,
        }
    }

    fn normalize_object(&self, value: Value, backend: SqlBackend, zoned: bool) -> Value {
        let Value::Object(mut map) = value else {
            return value;
        };
        for (name, decode, nested) in &self.fields {
            if let Some(v) = map.remove(name) {
                let v = match nested {
                    Some(shape) => shape.normalize_in(v, backend, zoned),
                    None if zoned && matches!(decode, Decode::Timestamptz) => {
                        Decode::TimestamptzZoned.normalize(v, backend)
                    }
                    None => decode.normalize(v, backend),
                };
                map.insert(name.clone(), v);
            }
        }
        Value::Object(map)
    }
}

/// Collects the relation names of a select list (to resolve them before planning).
pub fn relations(items: &[SelectItem], out: &mut Vec<String>) {
    for item in items {
        if let SelectItem::Embed {
            relation, items, ..
        } = item
        {
            if !out.contains(relation) {
                out.push(relation.clone());
            }
            relations(items, out);
        }
    }
}

/// One embed of a select list.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Output name, when renamed.
    pub alias: Option<&'a str>,
    /// The related table.
    pub relation: &'a str,
    /// Constraint name or column disambiguating the relationship.
    pub hint: Option<&'a str>,
    /// `!inner`.
    pub inner: bool,
    /// What to select from it.
    pub items: &'a [SelectItem],
}

/// The relationship between a parent and a related table.
struct Relationship {
    /// `(child column, parent column)` pairs (direct foreign keys).
    pairs: Vec<(String, String)>,
    /// One-to-many (an array) or many-to-one (an object).
    many: bool,
    /// Many-to-many through a junction table.
    junction: Option<Junction>,
}

/// A junction table joining a parent and a related table.
struct Junction {
    /// The junction table (visible columns) and its select policy.
    table: EmbedTable,
    /// `(junction column, parent column)` pairs.
    parent_pairs: Vec<(String, String)>,
    /// `(junction column, child column)` pairs.
    child_pairs: Vec<(String, String)>,
}

/// Whether `cols` all belong to the primary key or to one unique constraint.
fn in_a_key(table: &Table, cols: &[&String]) -> bool {
    let within = |key: &[String]| !key.is_empty() && cols.iter().all(|c| key.contains(c));
    within(&table.primary_key) || table.unique.iter().any(|u| within(u))
}

/// Many-to-many relationships (PostgREST's detection): a junction table with
/// a foreign key to the parent and another to the child, the columns of both
/// part of its primary key (or of one unique constraint). A hint names the
/// junction table or one of its foreign keys.
fn junctions(
    parent: &Table,
    child: &Table,
    hint: Option<&str>,
    candidates: &[EmbedTable],
    found: &mut Vec<Relationship>,
) {
    for j in candidates {
        let jt = &j.visible;
        if jt.name == parent.name || jt.name == child.name {
            continue;
        }
        for to_parent in jt.foreign_keys.iter().filter(|fk| {
            fk.foreign_table == parent.name
                && fk
                    .foreign_columns
                    .iter()
                    .all(|c| parent.column(c).is_some())
        }) {
            for to_child in jt.foreign_keys.iter().filter(|fk| {
                fk.name != to_parent.name
                    && fk.foreign_table == child.name
                    && fk.foreign_columns.iter().all(|c| child.column(c).is_some())
            }) {
                let key: Vec<&String> = to_parent
                    .columns
                    .iter()
                    .chain(to_child.columns.iter())
                    .collect();
                let hinted =
                    hint.is_none_or(|h| h == jt.name || h == to_parent.name || h == to_child.name);
                if !hinted || !in_a_key(jt, &key) {
                    continue;
                }
                found.push(Relationship {
                    pairs: Vec::new(),
                    many: true,
                    junction: Some(Junction {
                        table: j.clone(),
                        parent_pairs: to_parent
                            .columns
                            .iter()
                            .cloned()
                            .zip(to_parent.foreign_columns.iter().cloned())
                            .collect(),
                        child_pairs: to_child
                            .columns
                            .iter()
                            .cloned()
                            .zip(to_child.foreign_columns.iter().cloned())
                            .collect(),
                    }),
                });
            }
        }
    }
}

fn not_found(parent: &str, relation: &str) -> RestError {
    RestError::RelationshipNotFound {
        parent: parent.to_owned(),
        relation: relation.chars().take(63).collect(),
    }
}

fn matches_hint(fk: &ForeignKey, hint: Option<&str>) -> bool {
    hint.is_none_or(|h| fk.name == h || fk.columns.len() == 1 && fk.columns[0] == h)
}

fn relationship(
    parent: &Table,
    child: &Table,
    hint: Option<&str>,
    candidates: &[EmbedTable],
) -> Result<Relationship> {
    let mut found = Vec::new();
    // many-to-one: the parent references the child.
    for fk in &parent.foreign_keys {
        if fk.foreign_table == child.name
            && matches_hint(fk, hint)
            && fk.foreign_columns.iter().all(|c| child.column(c).is_some())
        {
            found.push(Relationship {
                pairs: fk
                    .foreign_columns
                    .iter()
                    .cloned()
                    .zip(fk.columns.iter().cloned())
                    .collect(),
                many: false,
                junction: None,
            });
        }
    }
    // one-to-many: the child references the parent.
    for fk in &child.foreign_keys {
        if fk.foreign_table == parent.name
            && matches_hint(fk, hint)
            && fk
                .foreign_columns
                .iter()
                .all(|c| parent.column(c).is_some())
        {
            found.push(Relationship {
                pairs: fk
                    .columns
                    .iter()
                    .cloned()
                    .zip(fk.foreign_columns.iter().cloned())
                    .collect(),
                many: true,
                junction: None,
            });
        }
    }
    junctions(parent, child, hint, candidates, &mut found);
    match found.len() {
        0 => Err(not_found(&parent.name, &child.name)),
        1 => Ok(found.remove(0)),
        _ => Err(RestError::AmbiguousEmbed {
            parent: parent.name.clone(),
            relation: child.name.clone(),
        }),
    }
}

/// A table related to itself (PostgREST's rule for self-relationships):
/// naming the table gives the **one-to-many** side — the rows whose foreign
/// key points at the parent row (`reports:employees!manager_id(…)`; the
/// hint names the referencing column or the constraint). Several
/// self-referencing foreign keys without a hint: 300 `PGRST201`. The
/// many-to-one side is embedded by naming the foreign-key column
/// (`manager:manager_id(…)`, see [`resolve`]). Many-to-many through a
/// junction is not followed for a table related to itself.
fn self_relationship(table: &Table, hint: Option<&str>) -> Result<Relationship> {
    let mut found: Vec<Relationship> = table
        .foreign_keys
        .iter()
        .filter(|fk| {
            fk.foreign_table == table.name
                && matches_hint(fk, hint)
                && fk.foreign_columns.iter().all(|c| table.column(c).is_some())
        })
        .map(|fk| Relationship {
            pairs: fk
                .columns
                .iter()
                .cloned()
                .zip(fk.foreign_columns.iter().cloned())
                .collect(),
            many: true,
            junction: None,
        })
        .collect();
    match found.len() {
        0 => Err(not_found(&table.name, &table.name)),
        1 => Ok(found.remove(0)),
        _ => Err(RestError::AmbiguousEmbed {
            parent: table.name.clone(),
            relation: table.name.clone(),
        }),
    }
}

/// The related table of an embed and the relationship to it. The target
/// is a table (or view) name; without a hint it may also be a
/// single-column foreign key of the parent (`manager_id(…)`, as PostgREST
/// allows): that key's many-to-one relationship — the way to embed the
/// referenced row of a table related to itself.
fn resolve<'e>(
    parent: &Target<'_>,
    embeds: &'e Embeds,
    req: &Request<'_>,
) -> Result<(&'e EmbedTable, Relationship)> {
    if let Some(related) = embeds.tables.get(req.relation) {
        let rel = if related.table.name == parent.table.name {
            self_relationship(parent.visible, req.hint)?
        } else {
            relationship(
                parent.visible,
                &related.visible,
                req.hint,
                &embeds.junctions,
            )?
        };
        return Ok((related, rel));
    }
    if req.hint.is_none()
        && let Some(fk) = parent
            .visible
            .foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns[0] == req.relation)
        && let Some(related) = embeds.tables.get(&fk.foreign_table)
        && fk
            .foreign_columns
            .iter()
            .all(|c| related.visible.column(c).is_some())
    {
        let rel = Relationship {
            pairs: fk
                .foreign_columns
                .iter()
                .cloned()
                .zip(fk.columns.iter().cloned())
                .collect(),
            many: false,
            junction: None,
        };
        return Ok((related, rel));
    }
    Err(not_found(&parent.table.name, req.relation))
}

/// The alias of an embedded table in its subquery when it has the name its
/// parent goes by (a table related to itself): `<table>_<depth>`, so the
/// join can still name the parent row.
fn child_alias(parent: &Target<'_>, child: &Table, path: &[String]) -> Option<String> {
    (child.name == parent.qualifier()).then(|| format!("{}_{}", child.name, path.len()))
}

/// `FROM table` or `FROM table AS alias`.
fn from_child(q: &mut SelectStatement, child: &Target<'_>) {
    match child.alias {
        Some(alias) => q.from_as(Alias::new(child.table.name.as_str()), Alias::new(alias)),
        None => q.from(Alias::new(child.table.name.as_str())),
    };
}

/// `json_build_object(k, v, …)` / `json_object(k, v, …)`, chunked below
/// the functions' argument limits.
fn json_object(backend: SqlBackend, pairs: Vec<(String, Expr)>) -> Expr {
    let chunks: Vec<Expr> = pairs
        .chunks(40)
        .map(|chunk| {
            let mut template = String::new();
            let mut args = Vec::new();
            for (i, (k, v)) in chunk.iter().enumerate() {
                if i > 0 {
                    template.push_str(", ");
                }
                template.push_str("?, ?");
                args.push(Expr::val(k.clone()));
                args.push(v.clone());
            }
            let func = match (backend, pairs.len() > 40) {
                (SqlBackend::Postgres, false) => "json_build_object",
                (SqlBackend::Postgres, true) => "jsonb_build_object",
                (SqlBackend::Sqlite, _) => "json_object",
            };
            cust(backend, &format!("{func}({template})"), args)
        })
        .collect();
    if chunks.len() <= 1 {
        return chunks
            .into_iter()
            .next()
            .unwrap_or_else(|| cust(backend, "json_object()", Vec::new()));
    }
    let mut iter = chunks.into_iter();
    let mut acc = iter.next().unwrap_or_else(|| Expr::cust("NULL"));
    for next in iter {
        acc = match backend {
            SqlBackend::Postgres => cust(backend, "(? || ?)", vec![acc, next]),
            SqlBackend::Sqlite => cust(backend, "json_patch(?, ?)", vec![acc, next]),
        };
    }
    match backend {
        SqlBackend::Postgres => acc.cast_as(Alias::new("json")),
        SqlBackend::Sqlite => acc,
    }
}

fn qualified(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

/// The join of the child to its parent, qualified on both sides; through a
/// junction, `EXISTS (SELECT 1 FROM junction WHERE … AND its policy)`.
fn join(parent: &str, child: &str, rel: &Relationship, backend: SqlBackend) -> Result<Condition> {
    if let Some(j) = &rel.junction {
        let jname = j.table.table.name.as_str();
        let mut cond = Condition::all();
        for (jc, pc) in &j.parent_pairs {
            cond = cond.add(qualified(jname, jc).eq(qualified(parent, pc)));
        }
        for (jc, cc) in &j.child_pairs {
            cond = cond.add(qualified(jname, jc).eq(qualified(child, cc)));
        }
        if let Some(policy) = &j.table.policy {
            let target = Target {
                table: &j.table.table,
                visible: &j.table.visible,
                backend,
                alias: None,
            };
            cond = cond.add(target.render_in(policy, true)?);
        }
        let exists = Query::select()
            .expr(Expr::cust("1"))
            .from(Alias::new(jname))
            .cond_where(cond)
            .to_owned();
        return Ok(Condition::all().add(Expr::exists(exists)));
    }
    Ok(rel
        .pairs
        .iter()
        .fold(Condition::all(), |cond, (child_col, parent_col)| {
            cond.add(
                Expr::col((Alias::new(child), Alias::new(child_col.as_str()))).eq(Expr::col((
                    Alias::new(parent),
                    Alias::new(parent_col.as_str()),
                ))),
            )
        }))
}

/// Plans one embed as an output column of the parent.
///
/// # Errors
/// Unknown relation (or not exposed) → 400 `PGRST200`; several foreign keys
/// → 300 `PGRST201`; unknown columns inside.
pub fn plan(
    parent: &Target<'_>,
    embeds: &Embeds,
    req: Request<'_>,
    path: &[String],
) -> Result<OutCol> {
    let (related, rel) = resolve(parent, embeds, &req)?;
    let alias = child_alias(parent, &related.table, path);
    let child = Target {
        table: &related.table,
        visible: &related.visible,
        backend: parent.backend,
        alias: alias.as_deref(),
    };
    let cols = child.select_list_at(Some(req.items), embeds, path)?;
    let modifiers = embeds.modifiers.get(path);
    let backend = parent.backend;
    let pairs = cols
        .iter()
        .map(|c| {
            let value = match (&c.shape, backend) {
                // Nested JSON must stay JSON inside SQLite's json_object.
                (Some(_), SqlBackend::Sqlite) => cust(backend, "json(?)", vec![c.raw.clone()]),
                _ => c.raw.clone(),
            };
            (c.name.clone(), value)
        })
        .collect();
    let object = json_object(backend, pairs);

    let child_name = child.qualifier();
    let mut cond = join(parent.qualifier(), child_name, &rel, backend)?;
    if let Some(policy) = &related.policy {
        cond = cond.add(child.render_in(policy, true)?);
    }
    for c in &cols {
        if let Some(inner) = &c.inner {
            cond = cond.add(inner.clone());
        }
    }
    if let Some(m) = modifiers {
        for f in &m.filters {
            cond = cond.add(child.render_in(&child.cond(f)?, true)?);
        }
    }
    // Aggregates (`actors(count())`): the embed's other columns are grouped by.
    let grouped = group_columns(&child, &cols, rel.many)?;
    let paged = grouped.is_some()
        || modifiers.is_some_and(|m| {
            rel.many && (!m.order.is_empty() || m.limit.is_some() || m.offset.unwrap_or(0) > 0)
        });
    let sub: SelectStatement = if paged {
        // Order and page (or group) the related rows in a derived table, then aggregate.
        let m = modifiers.cloned().unwrap_or_default();
        let mut rows = Query::select();
        rows.expr_as(object, Alias::new("gf_json"));
        from_child(&mut rows, &child);
        rows.cond_where(cond.clone());
        if let Some(keys) = &grouped {
            for key in keys {
                rows.add_group_by([qualified(child_name, key)]);
            }
            if let Some(term) = m
                .order
                .iter()
                .find(|t| !t.field.path.is_empty() || !keys.contains(&t.field.column))
            {
                return Err(RestError::parse(
                    format!("failed to parse order ({})", term.field.column),
                    "with aggregates, order by the selected (grouped) columns only",
                ));
            }
        }
        for term in &m.order {
            let (expr, _) = child.field_expr(&term.field)?;
            let expr = if term.field.path.is_empty() {
                Expr::col((
                    Alias::new(child_name),
                    Alias::new(term.field.column.as_str()),
                ))
            } else {
                expr
            };
            let nulls_first = term.nulls_first.unwrap_or(term.desc);
            rows.order_by_expr_with_nulls(
                expr,
                if term.desc { Order::Desc } else { Order::Asc },
                if nulls_first {
                    NullOrdering::First
                } else {
                    NullOrdering::Last
                },
            );
        }
        match (m.limit, m.offset.unwrap_or(0)) {
            (Some(l), o) => {
                rows.limit(l);
                if o > 0 {
                    rows.offset(o);
                }
            }
            (None, o) if o > 0 => {
                rows.limit(i64::MAX as u64).offset(o);
            }
            _ => {}
        }
        let item = Expr::col((Alias::new("gf_rows"), Alias::new("gf_json")));
        let aggregate = match backend {
            SqlBackend::Postgres => cust(
                backend,
                "COALESCE(json_agg(?), json_build_array())",
                vec![item],
            ),
            SqlBackend::Sqlite => cust(backend, "json_group_array(json(?))", vec![item]),
        };
        Query::select()
            .expr(aggregate)
            .from_subquery(rows.to_owned(), Alias::new("gf_rows"))
            .to_owned()
    } else {
        let aggregate = match (rel.many, backend) {
            (true, SqlBackend::Postgres) => cust(
                backend,
                "COALESCE(json_agg(?), json_build_array())",
                vec![object],
            ),
            (true, SqlBackend::Sqlite) => cust(backend, "json_group_array(?)", vec![object]),
            (false, _) => object,
        };
        let mut sub = Query::select().expr(aggregate).to_owned();
        from_child(&mut sub, &child);
        sub.cond_where(cond.clone());
        if !rel.many {
            sub.limit(1);
        }
        sub
    };
    let raw = Expr::SubQuery(None, Box::new(sub.into()));
    let expr = match backend {
        SqlBackend::Postgres => raw.clone().cast_as(Alias::new("text")),
        SqlBackend::Sqlite => raw.clone(),
    };
    let inner = req.inner.then(|| {
        let mut exists = Query::select().expr(Expr::cust("1")).to_owned();
        from_child(&mut exists, &child);
        exists.cond_where(cond);
        Condition::all().add(Expr::exists(exists))
    });
    let shape = Shape {
        many: rel.many,
        fields: cols
            .iter()
            .map(|c| (c.name.clone(), c.decode, c.shape.clone()))
            .collect(),
    };
    let name = req.alias.unwrap_or(req.relation).to_owned();
    Ok(OutCol {
        name: name.clone(),
        expr,
        decode: Decode::Embedded,
        field: Field {
            column: name,
            path: Vec::new(),
            as_text: false,
        },
        cast: None,
        raw,
        shape: Some(Arc::new(shape)),
        inner,
        aggregate: false,
        derived: true,
    })
}

/// The columns an embed with aggregates groups by (`None` without
/// aggregates).
///
/// # Errors
/// Aggregates in a to-one embed, next to nested embeds or JSON paths.
fn group_columns(child: &Target<'_>, cols: &[OutCol], many: bool) -> Result<Option<Vec<String>>> {
    if !cols.iter().any(|c| c.aggregate) {
        return Ok(None);
    }
    if !many {
        return Err(RestError::Unsupported(
            "aggregates apply to to-many embedded resources only".into(),
        ));
    }
    let mut keys = Vec::new();
    for c in cols.iter().filter(|c| !c.aggregate) {
        if c.derived || !c.field.path.is_empty() {
            return Err(RestError::Unsupported(
                "aggregates next to nested embeds or JSON paths are not supported yet".into(),
            ));
        }
        let name = child.column(&c.field.column)?.name.clone();
        if !keys.contains(&name) {
            keys.push(name);
        }
    }
    Ok(Some(keys))
}

/// Plans `...relation(items)`: each selected column of a to-one related
/// row becomes a column of the parent (a scalar subquery each, so the
/// request stays one statement).
///
/// # Errors
/// As [`plan`]; a to-many relationship → 400 `PGRST119`.
pub fn plan_spread(
    parent: &Target<'_>,
    embeds: &Embeds,
    req: Request<'_>,
    path: &[String],
) -> Result<Vec<OutCol>> {
    let (related, rel) = resolve(parent, embeds, &req)?;
    if rel.many {
        return Err(RestError::SpreadToMany {
            parent: parent.table.name.clone(),
            relation: req.relation.chars().take(63).collect(),
        });
    }
    if embeds
        .modifiers
        .get(path)
        .is_some_and(|m| !m.order.is_empty() || m.limit.is_some() || m.offset.is_some())
    {
        return Err(RestError::parse(
            format!("failed to parse parameter ({}.…)", path.join(".")),
            "order, limit and offset do not apply to a to-one spread",
        ));
    }
    let alias = child_alias(parent, &related.table, path);
    let child = Target {
        table: &related.table,
        visible: &related.visible,
        backend: parent.backend,
        alias: alias.as_deref(),
    };
    let cols = child.select_list_at(Some(req.items), embeds, path)?;
    if cols.iter().any(|c| c.aggregate) {
        return Err(RestError::Unsupported(
            "aggregates apply to to-many embedded resources only".into(),
        ));
    }
    let mut cond = join(parent.qualifier(), child.qualifier(), &rel, parent.backend)?;
    if let Some(policy) = &related.policy {
        cond = cond.add(child.render_in(policy, true)?);
    }
    for c in &cols {
        if let Some(inner) = &c.inner {
            cond = cond.add(inner.clone());
        }
    }
    if let Some(m) = embeds.modifiers.get(path) {
        for f in &m.filters {
            cond = cond.add(child.render_in(&child.cond(f)?, true)?);
        }
    }
    let scalar = |e: Expr| {
        let mut sub = Query::select().expr(e).to_owned();
        from_child(&mut sub, &child);
        sub.cond_where(cond.clone()).limit(1);
        Expr::SubQuery(None, Box::new(sub.into()))
    };
    let mut out: Vec<OutCol> = cols
        .into_iter()
        .map(|c| OutCol {
            name: c.name.clone(),
            expr: scalar(c.expr),
            decode: c.decode,
            field: Field {
                column: c.name,
                path: Vec::new(),
                as_text: false,
            },
            cast: None,
            raw: scalar(c.raw),
            shape: c.shape,
            inner: None,
            aggregate: false,
            derived: true,
        })
        .collect();
    if req.inner
        && let Some(first) = out.first_mut()
    {
        let mut exists = Query::select().expr(Expr::cust("1")).to_owned();
        from_child(&mut exists, &child);
        exists.cond_where(cond);
        first.inner = Some(Condition::all().add(Expr::exists(exists)));
    }
    Ok(out)
}
