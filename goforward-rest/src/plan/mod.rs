//! The planner: resolves parsed names against the schema cache (hidden and
//! unknown columns alike are "does not exist"), converts values to column
//! types, and builds sea-query statements. Identifiers come only from the
//! schema; values are always bound.

pub mod embed;
mod filter;
pub mod read;
pub mod values;
pub mod write;

use std::sync::Arc;

use goforward_core::{
    filter::{Filter, SqlBackend},
    sea_query::{Alias, Condition, Expr, ExprTrait},
};
use serde_json::Value;

use crate::error::{RestError, Result};
use crate::query::{AggFunc, Cast, Field, SelectItem};
use crate::schema::{Column, ColumnKind, Table};
pub use filter::TEXT_SEARCH_LANGUAGES;
pub use values::Decode;

/// The table a request addresses: all its columns (for SQL the server
/// builds itself: keys, policies) and the ones the client may name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Every column.
    pub table: &'a Table,
    /// The columns the client can see (hidden ones removed).
    pub visible: &'a Table,
    /// The SQL dialect.
    pub backend: SqlBackend,
    /// The name the table goes by in its query when not its own: an
    /// embedded table related to itself is aliased in its subquery so the
    /// parent row stays reachable (`None`: the table's name).
    pub alias: Option<&'a str>,
}

/// One output column of a read.
#[derive(Debug, Clone)]
pub struct OutCol {
    /// The JSON key.
    pub name: String,
    /// The SQL expression (typed for decoding).
    pub expr: Expr,
    /// How to read it back.
    pub decode: Decode,
    /// How to compute it from a full JSON row (for write representations).
    pub field: Field,
    /// The cast, if any.
    pub cast: Option<Cast>,
    /// The value as it goes into an embedding JSON object (the raw column,
    /// so PostgreSQL keeps its JSON types).
    pub raw: Expr,
    /// For embedded resources: how to normalise the JSON read back.
    pub shape: Option<Arc<embed::Shape>>,
    /// For `!inner` embeds: the condition the parent row must meet.
    pub inner: Option<Condition>,
    /// An aggregate (`count()`, `col.sum()`, …): the other columns are grouped by.
    pub aggregate: bool,
    /// Not computable from the table's own row (embeds, spreads,
    /// aggregates): write representations read it back from the database.
    pub derived: bool,
}

/// A filter condition: core's [`Filter`] or a regex match (PostgreSQL only).
#[derive(Debug, Clone)]
pub enum Cond {
    /// A core filter (comparisons, logic).
    Filter(Filter),
    /// `col ~ pattern` / `col ~* pattern`.
    Regex {
        /// Column (from the schema).
        column: String,
        /// `~*`.
        insensitive: bool,
        /// The bound pattern.
        pattern: String,
    },
    /// `col && array` (PostgreSQL arrays) or "some element of the JSON
    /// array is one of `items`" (json/jsonb columns).
    Overlaps {
        /// Column (from the schema).
        column: String,
        /// For PostgreSQL array columns, the array type (closed set).
        array_type: Option<&'static str>,
        /// The bound array literal `{a,b}` (array columns).
        literal: String,
        /// The items as text (JSON columns).
        items: Vec<String>,
    },
    /// `to_tsvector([lang,] col) @@ <function>([lang,] query)` (PostgreSQL).
    TextSearch {
        /// Column (from the schema).
        column: String,
        /// The column already is a `tsvector`.
        tsvector: bool,
        /// `to_tsquery`, `plainto_tsquery`, … (closed set).
        function: &'static str,
        /// The configuration (from an allowlist; bound as `regconfig`).
        language: Option<&'static str>,
        /// The bound query text.
        query: String,
    },
    /// All hold.
    And(Vec<Cond>),
    /// One holds.
    Or(Vec<Cond>),
    /// Negation.
    Not(Box<Cond>),
}

/// A custom expression whose `?` placeholders take `args` in order
/// (numbered `$n` on PostgreSQL, as sea-query expects there).
pub(crate) fn cust(backend: SqlBackend, template: &str, args: Vec<Expr>) -> Expr {
    let template = match backend {
        SqlBackend::Sqlite => template.to_owned(),
        SqlBackend::Postgres => {
            let mut out = String::with_capacity(template.len() + 8);
            let mut n = 0;
            for c in template.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    Expr::cust_with_exprs(template, args)
}

/// A column reference (the name comes from the schema cache).
pub(crate) fn col_ref(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

impl<'a> Target<'a> {
    /// The name that qualifies this table's columns in its query: its
    /// alias, or its own name.
    pub fn qualifier(&self) -> &'a str {
        self.alias.unwrap_or(self.table.name.as_str())
    }

    /// The visible column `name`.
    ///
    /// # Errors
    /// [`RestError::ColumnNotFound`] when unknown or hidden.
    pub fn column(&self, name: &str) -> Result<&'a Column> {
        self.visible
            .column(name)
            .ok_or_else(|| RestError::ColumnNotFound {
                table: self.table.name.clone(),
                column: name.chars().take(63).collect(),
            })
    }

    /// The PostgreSQL cast of bound values for `column` (any column of the table).
    pub fn cast_of(&self, column: &str) -> Option<&'static str> {
        self.table.column(column).and_then(|c| c.pg_cast)
    }

    /// How a plain column read back by [`Target::typed`] decodes.
    pub fn decode_of(&self, col: &Column) -> Decode {
        if self.backend == SqlBackend::Sqlite
            && col.kind == ColumnKind::Other
            && col.data_type.trim().is_empty()
        {
            return Decode::Dynamic;
        }
        Decode::of(col.kind)
    }

    /// A plain column read back with its type.
    pub fn typed(&self, col: &Column) -> (Expr, Decode) {
        let decode = self.decode_of(col);
        if decode == Decode::Dynamic {
            return (col_ref(&col.name), Decode::Dynamic);
        }
        (
            col_ref(&col.name).cast_as(Alias::new(decode.sql_type(self.backend))),
            decode,
        )
    }

    fn json_path(&self, col: &Column, field: &Field) -> Result<(Expr, Decode)> {
        if col.kind != ColumnKind::Json {
            return Err(RestError::parse(
                format!("failed to parse field ({})", field.column),
                "JSON arrows apply to json and jsonb columns only",
            ));
        }
        Ok(match self.backend {
            SqlBackend::Postgres => {
                let func = if field.as_text {
                    "jsonb_extract_path_text"
                } else {
                    "jsonb_extract_path"
                };
                let mut template = format!("{func}(CAST(? AS jsonb)");
                let mut args = vec![col_ref(&col.name)];
                for key in &field.path {
                    template.push_str(", ?");
                    args.push(Expr::val(key.clone()));
                }
                template.push(')');
                let e = cust(self.backend, &template, args).cast_as(Alias::new("text"));
                (
                    e,
                    if field.as_text {
                        Decode::Text
                    } else {
                        Decode::Json
                    },
                )
            }
            SqlBackend::Sqlite => {
                let mut path = "$".to_owned();
                for key in &field.path {
                    if key.chars().all(|c| c.is_ascii_digit()) {
                        path.push_str(&format!("[{key}]"));
                    } else {
                        path.push('.');
                        path.push_str(key);
                    }
                }
                let args = vec![col_ref(&col.name), Expr::val(path)];
                if field.as_text {
                    (
                        cust(self.backend, "CAST((? ->> ?) AS text)", args),
                        Decode::Text,
                    )
                } else {
                    (cust(self.backend, "(? -> ?)", args), Decode::Json)
                }
            }
        })
    }

    /// The expression of a field (column or JSON path), typed.
    pub fn field_expr(&self, field: &Field) -> Result<(Expr, Decode)> {
        let col = self.column(&field.column)?;
        if field.path.is_empty() {
            Ok(self.typed(col))
        } else {
            self.json_path(col, field)
        }
    }

    /// The output columns of `select` (`None`: every visible column).
    ///
    /// # Errors
    /// Unknown / hidden columns, JSON arrows on non-JSON columns.
    pub fn select_list(&self, items: Option<&[SelectItem]>) -> Result<Vec<OutCol>> {
        self.select_list_with(items, &embed::Embeds::new())
    }

    /// As [`Target::select_list`], with the related tables `embeds` the
    /// request may embed (resolved by the handler: exposed, with their policy).
    ///
    /// # Errors
    /// Unknown / hidden columns, JSON arrows on non-JSON columns, unknown or
    /// ambiguous relationships.
    pub fn select_list_with(
        &self,
        items: Option<&[SelectItem]>,
        embeds: &embed::Embeds,
    ) -> Result<Vec<OutCol>> {
        self.select_list_at(items, embeds, &[])
    }

    /// As [`Target::select_list_with`] for an embed at `path`.
    ///
    /// # Errors
    /// As [`Target::select_list_with`].
    pub fn select_list_at(
        &self,
        items: Option<&[SelectItem]>,
        embeds: &embed::Embeds,
        path: &[String],
    ) -> Result<Vec<OutCol>> {
        let star = [SelectItem::Star];
        let items = items.unwrap_or(&star);
        let mut out = Vec::new();
        for item in items {
            match item {
                SelectItem::Star => {
                    for col in &self.visible.columns {
                        let (expr, decode) = self.typed(col);
                        out.push(OutCol {
                            name: col.name.clone(),
                            expr,
                            decode,
                            field: Field {
                                column: col.name.clone(),
                                path: Vec::new(),
                                as_text: false,
                            },
                            cast: None,
                            raw: col_ref(&col.name),
                            shape: None,
                            inner: None,
                            aggregate: false,
                            derived: false,
                        });
                    }
                }
                SelectItem::Embed {
                    relation,
                    hint,
                    inner,
                    items,
                    spread: true,
                    ..
                } => {
                    let mut sub = path.to_vec();
                    sub.push(relation.clone());
                    out.extend(embed::plan_spread(
                        self,
                        embeds,
                        embed::Request {
                            alias: None,
                            relation,
                            hint: hint.as_deref(),
                            inner: *inner,
                            items,
                        },
                        &sub,
                    )?);
                }
                SelectItem::Aggregate {
                    alias,
                    func,
                    field,
                    cast,
                } => {
                    out.push(self.aggregate(alias.as_deref(), *func, field.as_ref(), *cast)?);
                }
                SelectItem::Embed {
                    alias,
                    relation,
                    hint,
                    inner,
                    items,
                    spread: false,
                } => {
                    let mut sub = path.to_vec();
                    sub.push(alias.clone().unwrap_or_else(|| relation.clone()));
                    out.push(embed::plan(
                        self,
                        embeds,
                        embed::Request {
                            alias: alias.as_deref(),
                            relation,
                            hint: hint.as_deref(),
                            inner: *inner,
                            items,
                        },
                        &sub,
                    )?)
                }
                SelectItem::Field { alias, field, cast } => {
                    let (mut expr, mut decode) = self.field_expr(field)?;
                    if let Some(cast) = cast {
                        decode = match cast {
                            Cast::Text => Decode::Text,
                            Cast::Int => Decode::Int,
                            Cast::Float => Decode::Float,
                            Cast::Bool => Decode::Bool,
                        };
                        // Cast the raw value, not its decoding form.
                        let base = if field.path.is_empty() {
                            col_ref(&field.column)
                        } else {
                            expr
                        };
                        expr = base.cast_as(Alias::new(decode.sql_type(self.backend)));
                    }
                    let raw = if field.path.is_empty() && cast.is_none() {
                        col_ref(&field.column)
                    } else {
                        expr.clone()
                    };
                    out.push(OutCol {
                        raw,
                        shape: None,
                        inner: None,
                        aggregate: false,
                        derived: false,
                        name: alias
                            .clone()
                            .unwrap_or_else(|| field.output_name().to_owned()),
                        expr,
                        decode,
                        field: field.clone(),
                        cast: *cast,
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Target<'_> {
    /// An aggregate output column.
    fn aggregate(
        &self,
        alias: Option<&str>,
        func: AggFunc,
        field: Option<&Field>,
        cast: Option<Cast>,
    ) -> Result<OutCol> {
        let refuse = |what: &str| {
            RestError::parse(
                format!("failed to parse select ({}())", func.name()),
                what.to_owned(),
            )
        };
        let (expr, decode) = match field {
            None => (Expr::cust("COUNT(*)"), Decode::Int),
            Some(f) => {
                if !f.path.is_empty() {
                    return Err(refuse("aggregates of JSON paths are not supported"));
                }
                let col = self.column(&f.column)?;
                let c = col_ref(&col.name);
                let numeric = matches!(
                    col.kind,
                    ColumnKind::Int | ColumnKind::Float | ColumnKind::Numeric
                );
                match func {
                    AggFunc::Count => (cust(self.backend, "COUNT(?)", vec![c]), Decode::Int),
                    AggFunc::Sum | AggFunc::Avg => {
                        if !numeric {
                            return Err(refuse("sum and avg apply to numeric columns"));
                        }
                        let d = if func == AggFunc::Sum && col.kind == ColumnKind::Int {
                            Decode::Int
                        } else {
                            Decode::Float
                        };
                        let f = if func == AggFunc::Sum {
                            "SUM(?)"
                        } else {
                            "AVG(?)"
                        };
                        (
                            cust(self.backend, f, vec![c])
                                .cast_as(Alias::new(d.sql_type(self.backend))),
                            d,
                        )
                    }
                    AggFunc::Min | AggFunc::Max => {
                        if matches!(
                            col.kind,
                            ColumnKind::Json | ColumnKind::Bool | ColumnKind::Uuid
                        ) {
                            return Err(refuse(
                                "min and max do not apply to json, boolean or uuid columns",
                            ));
                        }
                        let f = if func == AggFunc::Min {
                            "MIN(?)"
                        } else {
                            "MAX(?)"
                        };
                        let e = cust(self.backend, f, vec![c]);
                        if self.backend == SqlBackend::Sqlite
                            && col.kind == ColumnKind::Other
                            && col.data_type.trim().is_empty()
                        {
                            (e, Decode::Dynamic)
                        } else {
                            let d = Decode::of(col.kind);
                            (e.cast_as(Alias::new(d.sql_type(self.backend))), d)
                        }
                    }
                }
            }
        };
        let (expr, decode) = match cast {
            None => (expr, decode),
            Some(cast) => {
                let d = match cast {
                    Cast::Text => Decode::Text,
                    Cast::Int => Decode::Int,
                    Cast::Float => Decode::Float,
                    Cast::Bool => Decode::Bool,
                };
                (expr.cast_as(Alias::new(d.sql_type(self.backend))), d)
            }
        };
        let name = alias.unwrap_or(func.name()).to_owned();
        Ok(OutCol {
            name: name.clone(),
            raw: expr.clone(),
            expr,
            decode,
            field: Field {
                column: name,
                path: Vec::new(),
                as_text: false,
            },
            cast: None,
            shape: None,
            inner: None,
            aggregate: true,
            derived: true,
        })
    }
}

/// Computes an output column from a full JSON row (write representations).
pub fn project(row: &Value, cols: &[OutCol]) -> Vec<Value> {
    cols.iter()
        .map(|c| {
            let mut v = row.get(&c.field.column).cloned().unwrap_or(Value::Null);
            for key in &c.field.path {
                v = match &v {
                    Value::Object(m) => m.get(key).cloned().unwrap_or(Value::Null),
                    Value::Array(a) => key
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| a.get(i).cloned())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            if c.field.as_text && !Value::is_null(&v) && !v.is_string() {
                v = Value::String(v.to_string());
            }
            match (c.cast, &v) {
                (_, Value::Null) | (None, _) => v,
                (Some(Cast::Text), Value::String(_)) => v,
                (Some(Cast::Text), other) => Value::String(other.to_string()),
                (Some(Cast::Int), other) => other
                    .as_i64()
                    .or_else(|| other.as_f64().map(|f| f.round() as i64))
                    .or_else(|| other.as_str().and_then(|s| s.trim().parse().ok()))
                    .map_or(Value::Null, Value::from),
                (Some(Cast::Float), other) => other
                    .as_f64()
                    .or_else(|| other.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number),
                (Some(Cast::Bool), other) => other.as_bool().map_or(Value::Null, Value::Bool),
            }
        })
        .collect()
}
