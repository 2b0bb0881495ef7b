//! Rendering a [`Filter`] to a sea-query [`Condition`].
//!
//! Identifiers are quoted by sea-query, values are always bound parameters,
//! and operators come from the closed [`Op`] set. Callers check column names
//! against the schema before rendering. SQLite connections run with
//! `case_sensitive_like = ON`, so `LIKE` means the same on both backends;
//! `ILIKE` becomes `lower(col) LIKE lower(pattern)` on SQLite. `\` escapes
//! `%` and `_` on both.

use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Value as SqlValue};
use serde_json::Value;

use super::{Comparison, Filter, Op};
use crate::error::{Error, Result};

/// The SQL dialect to render for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlBackend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl TryFrom<sea_orm::DbBackend> for SqlBackend {
    type Error = Error;

    fn try_from(backend: sea_orm::DbBackend) -> Result<Self> {
        match backend {
            sea_orm::DbBackend::Sqlite => Ok(Self::Sqlite),
            sea_orm::DbBackend::Postgres => Ok(Self::Postgres),
            _ => Err(Error::bad_request(
                "core.filter_unsupported",
                "only SQLite and PostgreSQL are supported",
            )),
        }
    }
}

fn unsupported(op: &str, backend: SqlBackend) -> Error {
    Error::bad_request(
        "core.filter_unsupported",
        format!("operator `{op}` is not supported on {backend:?}"),
    )
}

fn always(holds: bool) -> Condition {
    Condition::all().add(Expr::cust(if holds { "1 = 1" } else { "1 = 0" }))
}

/// A JSON value as a bound SQL value (`None` for JSON null).
fn bind(value: &Value) -> Option<SqlValue> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some((*b).into()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        }),
        Value::String(s) => Some(s.clone().into()),
        other => Some(other.to_string().into()),
    }
}

fn value_expr(value: &Value) -> Expr {
    bind(value).map_or_else(|| Expr::cust("NULL"), Expr::val)
}

/// A bound value, cast to `cast` when given (PostgreSQL column types such as
/// `uuid` or `timestamptz` that a text parameter does not compare with).
fn typed_value_expr(value: &Value, cast: Option<&'static str>) -> Expr {
    match (bind(value), cast) {
        (Some(v), Some(ty)) => Expr::val(v).cast_as(Alias::new(ty)),
        _ => value_expr(value),
    }
}

/// Which type bound values of a column are cast to on PostgreSQL; see
/// [`Filter::to_condition_with`].
pub type ColumnCasts<'a> = &'a dyn Fn(&str) -> Option<&'static str>;

/// A custom expression whose `?` placeholders take `args` in order
/// (numbered `$n` on PostgreSQL, as sea-query expects there).
fn cust(
    backend: SqlBackend,
    template: impl Into<String>,
    args: impl IntoIterator<Item = Expr>,
) -> Expr {
    let template: String = template.into();
    let template = match backend {
        SqlBackend::Sqlite => template,
        SqlBackend::Postgres => {
            let mut out = String::with_capacity(template.len() + 8);
            let mut n = 0;
            for c in template.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    Expr::cust_with_exprs(template, args)
}

fn valid_path_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 63 && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Comparison {
    fn column_expr(&self, backend: SqlBackend, table: Option<&str>) -> Result<Expr> {
        let col = match table {
            Some(t) => Expr::col((Alias::new(t), Alias::new(self.column.clone()))),
            None => Expr::col(Alias::new(self.column.clone())),
        };
        if self.json_path.is_empty() {
            return Ok(col);
        }
        if !self.json_path.iter().all(|k| valid_path_key(k)) {
            return Err(Error::bad_request(
                "core.invalid_filter",
                "JSON path keys must be letters, digits or _",
            ));
        }
        Ok(match backend {
            SqlBackend::Sqlite => {
                let path = format!("$.{}", self.json_path.join("."));
                cust(backend, "json_extract(?, ?)", [col, Expr::val(path)])
            }
            SqlBackend::Postgres => {
                let mut args = vec![col];
                let mut template = "jsonb_extract_path_text(CAST(? AS jsonb)".to_owned();
                for key in &self.json_path {
                    template.push_str(", ?");
                    args.push(Expr::val(key.clone()));
                }
                template.push(')');
                let text = cust(backend, template, args);
                match &self.value {
                    Value::Number(_) => cust(backend, "CAST(? AS double precision)", [text]),
                    Value::Bool(_) => cust(backend, "CAST(? AS boolean)", [text]),
                    _ => text,
                }
            }
        })
    }

    fn to_condition(
        &self,
        backend: SqlBackend,
        casts: ColumnCasts<'_>,
        table: Option<&str>,
    ) -> Result<Condition> {
        let col = self.column_expr(backend, table)?;
        // Casts apply to PostgreSQL values compared with the column itself.
        let cast = match backend {
            SqlBackend::Postgres if self.json_path.is_empty() => casts(&self.column),
            _ => None,
        };
        let value_expr = |v: &Value| typed_value_expr(v, cast);
        let expr = match self.op {
            Op::Eq | Op::Neq | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let v = value_expr(&self.value);
                match self.op {
                    Op::Eq => col.eq(v),
                    Op::Neq => col.ne(v),
                    Op::Gt => col.gt(v),
                    Op::Gte => col.gte(v),
                    Op::Lt => col.lt(v),
                    _ => col.lte(v),
                }
            }
            Op::Like | Op::ILike => {
                let Value::String(pattern) = &self.value else {
                    return Err(Error::bad_request(
                        "core.invalid_filter",
                        "like patterns must be strings",
                    ));
                };
                let pattern = Expr::val(pattern.clone());
                // LIKE works on text: a typed column (uuid, timestamp) is compared as text.
                let col = if cast.is_some() {
                    col.cast_as(Alias::new("text"))
                } else {
                    col
                };
                let template = match (self.op, backend) {
                    (Op::Like, SqlBackend::Sqlite) => "? LIKE ? ESCAPE '\\'",
                    (Op::Like, SqlBackend::Postgres) => "? LIKE ?",
                    (_, SqlBackend::Sqlite) => "lower(?) LIKE lower(?) ESCAPE '\\'",
                    (_, SqlBackend::Postgres) => "? ILIKE ?",
                };
                cust(backend, template, [col, pattern])
            }
            Op::Is => match &self.value {
                Value::Null => col.is_null(),
                Value::Bool(true) => cust(backend, "? IS TRUE", [col]),
                Value::Bool(false) => cust(backend, "? IS FALSE", [col]),
                Value::String(s) if s == "unknown" => col.is_null(),
                _ => {
                    return Err(Error::bad_request(
                        "core.invalid_filter",
                        "is accepts null, true, false or unknown",
                    ));
                }
            },
            Op::In => {
                let Value::Array(items) = &self.value else {
                    return Err(Error::bad_request(
                        "core.invalid_filter",
                        "in expects a list",
                    ));
                };
                if items.is_empty() {
                    return Ok(always(false));
                }
                col.is_in(items.iter().map(value_expr))
            }
            Op::IsDistinct => {
                let template = match backend {
                    SqlBackend::Sqlite => "? IS NOT ?",
                    SqlBackend::Postgres => "? IS DISTINCT FROM ?",
                };
                cust(backend, template, [col, value_expr(&self.value)])
            }
            Op::Cs | Op::Cd => {
                if backend == SqlBackend::Sqlite {
                    return Err(unsupported(
                        if self.op == Op::Cs { "cs" } else { "cd" },
                        backend,
                    ));
                }
                let operand = Expr::val(self.value.to_string());
                let template = if self.op == Op::Cs {
                    "CAST(? AS jsonb) @> CAST(? AS jsonb)"
                } else {
                    "CAST(? AS jsonb) <@ CAST(? AS jsonb)"
                };
                cust(backend, template, [col, operand])
            }
            Op::Ov => return Err(unsupported("ov", backend)),
        };
        Ok(Condition::all().add(expr))
    }
}

impl Filter {
    /// Renders the filter as a sea-query condition for `backend`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] (`core.filter_unsupported` / `core.invalid_filter`)
    /// for an operator the backend lacks or a malformed operand.
    pub fn to_condition(&self, backend: SqlBackend) -> Result<Condition> {
        self.to_condition_with(backend, &|_| None)
    }

    /// As [`Filter::to_condition`], casting bound values on PostgreSQL to the
    /// type `casts` names for their column (e.g. `uuid`, `timestamptz`), so
    /// values given as text compare with typed columns. `LIKE` / `ILIKE` on
    /// such a column compare its text form. `casts` must return trusted type
    /// names (from the introspected schema), never client text.
    ///
    /// # Errors
    /// As [`Filter::to_condition`].
    pub fn to_condition_with(
        &self,
        backend: SqlBackend,
        casts: ColumnCasts<'_>,
    ) -> Result<Condition> {
        self.to_condition_in(backend, casts, None)
    }

    /// As [`Filter::to_condition_with`], with every column qualified by
    /// `table` when given (`"todos"."user_id"`), for contexts where a bare
    /// name is ambiguous (the `WHERE` of `ON CONFLICT DO UPDATE`).
    ///
    /// # Errors
    /// As [`Filter::to_condition`].
    pub fn to_condition_in(
        &self,
        backend: SqlBackend,
        casts: ColumnCasts<'_>,
        table: Option<&str>,
    ) -> Result<Condition> {
        Ok(match self {
            Filter::True => always(true),
            Filter::False => always(false),
            Filter::And { filters } => filters.iter().try_fold(Condition::all(), |c, f| {
                f.to_condition_in(backend, casts, table).map(|f| c.add(f))
            })?,
            Filter::Or { filters } if filters.is_empty() => always(false),
            Filter::Or { filters } => filters.iter().try_fold(Condition::any(), |c, f| {
                f.to_condition_in(backend, casts, table).map(|f| c.add(f))
            })?,
            Filter::Not { filter } => filter.to_condition_in(backend, casts, table)?.not(),
            Filter::Cmp(c) => c.to_condition(backend, casts, table)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder};
    use serde_json::json;

    use super::*;

    fn sql(f: &Filter, backend: SqlBackend, casts: ColumnCasts<'_>, table: Option<&str>) -> String {
        let cond = f.to_condition_in(backend, casts, table).unwrap();
        let q = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("t"))
            .cond_where(cond)
            .to_owned();
        match backend {
            SqlBackend::Sqlite => q.build(SqliteQueryBuilder).0,
            SqlBackend::Postgres => q.build(PostgresQueryBuilder).0,
        }
    }

    #[test]
    fn casts_apply_to_postgres_values_only() {
        let casts = |c: &str| (c == "user_id").then_some("uuid");
        let f = Filter::and([
            Filter::eq("user_id", "u"),
            Filter::cmp("user_id", Op::In, json!(["a", "b"])),
            Filter::cmp("user_id", Op::Like, "a%"),
            Filter::eq("title", "x"),
        ]);
        let pg = sql(&f, SqlBackend::Postgres, &casts, None);
        assert!(pg.contains(r#""user_id" = CAST($1 AS uuid)"#), "{pg}");
        assert!(
            pg.contains(r#""user_id" IN (CAST($2 AS uuid), CAST($3 AS uuid))"#),
            "{pg}"
        );
        assert!(pg.contains(r#"CAST("user_id" AS text) LIKE $4"#), "{pg}");
        assert!(pg.contains(r#""title" = $5"#), "{pg}");
        let lite = sql(&f, SqlBackend::Sqlite, &casts, None);
        assert!(!lite.contains("CAST"), "{lite}");
    }

    #[test]
    fn columns_can_be_qualified() {
        let f = Filter::or([Filter::eq("a", 1), Filter::not(Filter::eq("b", 2))]);
        let s = sql(&f, SqlBackend::Sqlite, &|_| None, Some("t"));
        assert!(
            s.contains(r#""t"."a" = ?"#) && s.contains(r#""t"."b""#),
            "{s}"
        );
        assert_eq!(
            f.to_condition(SqlBackend::Sqlite).is_ok(),
            f.to_condition_with(SqlBackend::Sqlite, &|_| None).is_ok()
        );
    }
}
