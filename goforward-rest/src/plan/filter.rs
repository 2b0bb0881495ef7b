//! Filter planning: parsed filters resolved against the schema (values
//! converted to column types) into [`Cond`]s, rendered to sea-query conditions.

use goforward_core::{
    filter::{Filter, Op, SqlBackend},
    sea_query::{Alias, Condition, Expr},
};
use serde_json::Value;

use super::{Cond, Target, col_ref, cust, values};
use crate::error::{RestError, Result};
use crate::query::{Expr as ParsedExpr, Field, Operand, RawOp};
use crate::schema::ColumnKind;

impl Target<'_> {
    /// Plans a parsed filter.
    ///
    /// # Errors
    /// Unknown / hidden columns, values that do not fit, unsupported operators.
    pub fn cond(&self, expr: &ParsedExpr) -> Result<Cond> {
        Ok(match expr {
            ParsedExpr::And(items) => {
                Cond::And(items.iter().map(|e| self.cond(e)).collect::<Result<_>>()?)
            }
            ParsedExpr::Or(items) => {
                Cond::Or(items.iter().map(|e| self.cond(e)).collect::<Result<_>>()?)
            }
            ParsedExpr::Not(e) => Cond::Not(Box::new(self.cond(e)?)),
            ParsedExpr::Cond { field, op, operand } => self.leaf(field, *op, operand)?,
        })
    }

    fn unsupported(&self, op: &str) -> RestError {
        let backend = match self.backend {
            SqlBackend::Sqlite => "SQLite",
            SqlBackend::Postgres => "PostgreSQL",
        };
        RestError::Unsupported(format!("operator {op} is not supported on {backend}"))
    }

    fn leaf(&self, field: &Field, op: RawOp, operand: &Operand) -> Result<Cond> {
        let col = self.column(&field.column)?;
        let table = &self.table.name;
        let scalar = || match operand {
            Operand::Scalar(s) => Ok(s.as_str()),
            Operand::List(_) | Operand::Fts { .. } => Err(RestError::parse(
                "failed to parse filter",
                "a list is only allowed with in",
            )),
        };
        let typed = |raw: &str| -> Result<Value> {
            if field.path.is_empty() {
                values::coerce_text(table, col, raw, self.backend)
            } else if self.backend == SqlBackend::Sqlite {
                // json_extract yields SQL values: compare numbers as numbers.
                Ok(raw
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        raw.parse::<f64>()
                            .ok()
                            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                    })
                    .unwrap_or_else(|| Value::String(raw.to_owned())))
            } else {
                Ok(Value::String(raw.to_owned()))
            }
        };
        if !field.path.is_empty() && col.kind != ColumnKind::Json {
            return Err(RestError::parse(
                format!("failed to parse filter ({})", field.column),
                "JSON arrows apply to json and jsonb columns only",
            ));
        }
        let cmp = |op: Op, value: Value| {
            Cond::Filter(Filter::Cmp(goforward_core::filter::Comparison {
                column: col.name.clone(),
                json_path: field.path.clone(),
                op,
                value,
            }))
        };
        Ok(match op {
            RawOp::Eq => cmp(Op::Eq, typed(scalar()?)?),
            RawOp::Neq => cmp(Op::Neq, typed(scalar()?)?),
            RawOp::Gt => cmp(Op::Gt, typed(scalar()?)?),
            RawOp::Gte => cmp(Op::Gte, typed(scalar()?)?),
            RawOp::Lt => cmp(Op::Lt, typed(scalar()?)?),
            RawOp::Lte => cmp(Op::Lte, typed(scalar()?)?),
            RawOp::IsDistinct => cmp(Op::IsDistinct, typed(scalar()?)?),
            RawOp::Like | RawOp::ILike => {
                let pattern = scalar()?.replace('*', "%");
                let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
                if trailing % 2 == 1 {
                    return Err(RestError::parse(
                        format!("failed to parse filter ({})", field.column),
                        "a like pattern must not end with the escape character \\",
                    ));
                }
                cmp(
                    if op == RawOp::Like {
                        Op::Like
                    } else {
                        Op::ILike
                    },
                    Value::String(pattern),
                )
            }
            RawOp::Match | RawOp::IMatch => {
                if self.backend != SqlBackend::Postgres || !field.path.is_empty() {
                    return Err(self.unsupported(if op == RawOp::Match {
                        "match"
                    } else {
                        "imatch"
                    }));
                }
                Cond::Regex {
                    column: col.name.clone(),
                    insensitive: op == RawOp::IMatch,
                    pattern: scalar()?.to_owned(),
                }
            }
            RawOp::In => {
                let Operand::List(items) = operand else {
                    return Err(RestError::parse(
                        "failed to parse filter",
                        "in expects a list",
                    ));
                };
                let values = items.iter().map(|v| typed(v)).collect::<Result<Vec<_>>>()?;
                cmp(Op::In, Value::Array(values))
            }
            RawOp::Is => match scalar()? {
                "null" => cmp(Op::Is, Value::Null),
                "not_null" => Cond::Not(Box::new(cmp(Op::Is, Value::Null))),
                "true" => cmp(Op::Is, Value::Bool(true)),
                "false" => cmp(Op::Is, Value::Bool(false)),
                _ => cmp(Op::Is, Value::String("unknown".into())),
            },
            RawOp::Cs | RawOp::Cd => {
                let name = if op == RawOp::Cs { "cs" } else { "cd" };
                if self.backend != SqlBackend::Postgres || col.kind != ColumnKind::Json {
                    return Err(self.unsupported(name));
                }
                let raw = scalar()?;
                let value = match serde_json::from_str::<Value>(raw) {
                    Ok(v) => v,
                    Err(_) => {
                        // A PostgreSQL array literal: {a,b,"c,d"}
                        let inner = raw
                            .trim()
                            .strip_prefix('{')
                            .and_then(|r| r.strip_suffix('}'))
                            .ok_or_else(|| {
                                RestError::parse(
                                    format!("failed to parse filter ({name}.{raw})"),
                                    "expected JSON or {a,b}",
                                )
                            })?;
                        Value::Array(
                            inner
                                .split(',')
                                .filter(|s| !s.trim().is_empty())
                                .map(|s| Value::String(s.trim().trim_matches('"').to_owned()))
                                .collect(),
                        )
                    }
                };
                cmp(if op == RawOp::Cs { Op::Cs } else { Op::Cd }, value)
            }
            RawOp::Ov => {
                if !field.path.is_empty() {
                    return Err(self.unsupported("ov on a JSON path"));
                }
                let raw = scalar()?;
                let inner = raw
                    .trim()
                    .strip_prefix('{')
                    .and_then(|r| r.strip_suffix('}'))
                    .ok_or_else(|| {
                        RestError::parse(
                            format!("failed to parse filter (ov.{})", short(raw)),
                            "ov expects {a,b,…}",
                        )
                    })?;
                let items: Vec<String> = if inner.trim().is_empty() {
                    Vec::new()
                } else {
                    crate::query::parse::split_top(inner, "filter")?
                        .into_iter()
                        .map(|v| crate::query::parse::unquote(v.trim()))
                        .collect()
                };
                let array_type = match (self.backend, col.kind) {
                    (_, ColumnKind::Json) => None,
                    (SqlBackend::Postgres, ColumnKind::Other) => {
                        Some(pg_array_type(&col.data_type).ok_or_else(|| self.ov_type(&col.name))?)
                    }
                    _ => return Err(self.ov_type(&col.name)),
                };
                Cond::Overlaps {
                    column: col.name.clone(),
                    array_type,
                    literal: raw.trim().to_owned(),
                    items,
                }
            }
            RawOp::Fts(kind) => {
                let Operand::Fts { language, query } = operand else {
                    return Err(RestError::parse(
                        "failed to parse filter",
                        "full-text search expects a query",
                    ));
                };
                if self.backend != SqlBackend::Postgres {
                    return Err(self.unsupported(kind.op_name()));
                }
                let tsvector = col.data_type == "tsvector";
                if !field.path.is_empty() || !(tsvector || col.kind == ColumnKind::Text) {
                    return Err(RestError::parse(
                        format!("failed to parse filter ({}.{})", col.name, kind.op_name()),
                        "full-text search applies to text and tsvector columns",
                    ));
                }
                let language = match language {
                    None => None,
                    Some(l) => Some(
                        TEXT_SEARCH_LANGUAGES
                            .iter()
                            .find(|known| known.eq_ignore_ascii_case(l))
                            .copied()
                            .ok_or_else(|| {
                                RestError::parse(
                                    format!(
                                        "failed to parse filter ({}({}))",
                                        kind.op_name(),
                                        short(l)
                                    ),
                                    format!(
                                        "unknown text search language; use one of: {}",
                                        TEXT_SEARCH_LANGUAGES.join(", ")
                                    ),
                                )
                            })?,
                    ),
                };
                Cond::TextSearch {
                    column: col.name.clone(),
                    tsvector,
                    function: kind.function(),
                    language,
                    query: query.clone(),
                }
            }
        })
    }

    fn ov_type(&self, column: &str) -> RestError {
        RestError::parse(
            format!("failed to parse filter ({column}.ov)"),
            match self.backend {
                SqlBackend::Postgres => "ov applies to array and json/jsonb columns",
                SqlBackend::Sqlite => "ov applies to JSON columns on SQLite",
            },
        )
    }

    /// Renders a condition to SQL.
    ///
    /// # Errors
    /// Operators the backend lacks.
    pub fn render(&self, cond: &Cond) -> Result<Condition> {
        self.render_in(cond, false)
    }

    /// As [`Target::render`], qualifying columns with the table name when
    /// `qualified` (needed where `excluded` is in scope: upsert guards).
    ///
    /// # Errors
    /// Operators the backend lacks.
    pub fn render_in(&self, cond: &Cond, qualified: bool) -> Result<Condition> {
        let table = qualified.then_some(self.qualifier());
        Ok(match cond {
            Cond::Filter(f) => {
                for c in f.columns() {
                    if self.table.column(c).is_none() {
                        // A policy naming a column the table lacks: a host bug.
                        return Err(RestError::Core(goforward_core::Error::Internal(format!(
                            "filter on `{}` names unknown column `{c}`",
                            self.table.name
                        ))));
                    }
                }
                f.to_condition_in(self.backend, &|c| self.cast_of(c), table)
                    .map_err(|e| RestError::Unsupported(e.public_message()))?
            }
            Cond::Regex {
                column,
                insensitive,
                pattern,
            } => {
                let template = if *insensitive {
                    "CAST(? AS text) ~* ?"
                } else {
                    "CAST(? AS text) ~ ?"
                };
                Condition::all().add(cust(
                    self.backend,
                    template,
                    vec![
                        match table {
                            Some(t) => Expr::col((Alias::new(t), Alias::new(column.as_str()))),
                            None => col_ref(column),
                        },
                        Expr::val(pattern.clone()),
                    ],
                ))
            }
            Cond::Overlaps {
                column,
                array_type,
                literal,
                items,
            } => {
                let col = match table {
                    Some(t) => Expr::col((Alias::new(t), Alias::new(column.as_str()))),
                    None => col_ref(column),
                };
                if let Some(array_type) = array_type {
                    // The literal is PostgreSQL's array syntax, parsed by the
                    // array type's input function (a bad one is 22P02).
                    return Ok(Condition::all().add(cust(
                        self.backend,
                        &format!("? && CAST(? AS {array_type})"),
                        vec![col, Expr::val(literal.clone())],
                    )));
                }
                if items.is_empty() {
                    return Ok(Condition::all().add(Expr::cust("1 = 0")));
                }
                let marks = vec!["?"; items.len()].join(", ");
                let template = match self.backend {
                    SqlBackend::Postgres => format!(
                        "CASE WHEN ? IS NULL THEN NULL ELSE EXISTS (SELECT 1 FROM \
                         jsonb_array_elements_text(CASE WHEN jsonb_typeof(CAST(? AS jsonb)) = 'array' \
                         THEN CAST(? AS jsonb) ELSE CAST('[]' AS jsonb) END) AS gf_ov(v) \
                         WHERE gf_ov.v IN ({marks})) END"
                    ),
                    SqlBackend::Sqlite => format!(
                        "CASE WHEN ? IS NULL THEN NULL ELSE EXISTS (SELECT 1 FROM \
                         json_each(CASE WHEN json_type(?) = 'array' THEN ? ELSE '[]' END) AS gf_ov \
                         WHERE CAST(gf_ov.value AS text) IN ({marks})) END"
                    ),
                };
                let mut args = vec![col.clone(), col.clone(), col];
                args.extend(items.iter().map(|v| Expr::val(v.clone())));
                Condition::all().add(cust(self.backend, &template, args))
            }
            Cond::TextSearch {
                column,
                tsvector,
                function,
                language,
                query,
            } => {
                let col = match table {
                    Some(t) => Expr::col((Alias::new(t), Alias::new(column.as_str()))),
                    None => col_ref(column),
                };
                let (template, args) = match (language, tsvector) {
                    (Some(l), true) => (
                        format!("? @@ {function}(CAST(? AS regconfig), ?)"),
                        vec![col, Expr::val(*l), Expr::val(query.clone())],
                    ),
                    (Some(l), false) => (
                        format!(
                            "to_tsvector(CAST(? AS regconfig), ?) @@ {function}(CAST(? AS regconfig), ?)"
                        ),
                        vec![Expr::val(*l), col, Expr::val(*l), Expr::val(query.clone())],
                    ),
                    (None, true) => (
                        format!("? @@ {function}(?)"),
                        vec![col, Expr::val(query.clone())],
                    ),
                    (None, false) => (
                        format!("to_tsvector(?) @@ {function}(?)"),
                        vec![col, Expr::val(query.clone())],
                    ),
                };
                Condition::all().add(cust(self.backend, &template, args))
            }
            Cond::And(items) => items.iter().try_fold(Condition::all(), |c, i| {
                self.render_in(i, qualified).map(|r| c.add(r))
            })?,
            Cond::Or(items) if items.is_empty() => Condition::all().add(Expr::cust("1 = 0")),
            Cond::Or(items) => items.iter().try_fold(Condition::any(), |c, i| {
                self.render_in(i, qualified).map(|r| c.add(r))
            })?,
            Cond::Not(inner) => self.render_in(inner, qualified)?.not(),
        })
    }
}

/// The built-in text search configurations of PostgreSQL: the only
/// languages `fts(language)` accepts (bound as `regconfig`).
pub const TEXT_SEARCH_LANGUAGES: &[&str] = &[
    "simple",
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
];

/// The array type of a PostgreSQL array column (`pg_type.typname` `_int4`
/// → `int4[]`), from a closed set of built-in element types.
fn pg_array_type(typname: &str) -> Option<&'static str> {
    Some(match typname {
        "_int2" => "int2[]",
        "_int4" => "int4[]",
        "_int8" => "int8[]",
        "_float4" => "float4[]",
        "_float8" => "float8[]",
        "_numeric" => "numeric[]",
        "_bool" => "bool[]",
        "_text" => "text[]",
        "_varchar" => "varchar[]",
        "_bpchar" => "bpchar[]",
        "_uuid" => "uuid[]",
        "_date" => "date[]",
        "_timestamptz" => "timestamptz[]",
        "_timestamp" => "timestamp[]",
        _ => return None,
    })
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}
