//! Values: query-string text and JSON body values converted to the column's
//! type (validated, so both backends refuse the same inputs), bound values
//! for SQL, and typed database values read back into JSON.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use goforward_core::{
    filter::SqlBackend,
    sea_orm::{DbErr, QueryResult},
    sea_query::{Alias, Expr, ExprTrait, Value as SqlValue},
};
use serde_json::{Number, Value};

use crate::error::{RestError, Result};
use crate::schema::{Column, ColumnKind};

fn invalid(table: &str, col: &Column, value: &str) -> RestError {
    RestError::InvalidValue {
        table: table.to_owned(),
        column: col.name.clone(),
        kind: col.kind.name(),
        value: value.chars().take(100).collect(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "on" => Some(true),
        "false" | "f" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A timestamp with its own offset (RFC 3339, or PostgreSQL's text form
/// `YYYY-MM-DD HH:MM:SS[.f]±HH[:MM]`), as the database rendered it in the
/// session's time zone.
pub fn parse_zoned(s: &str) -> Option<DateTime<chrono::FixedOffset>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
}

/// A timestamp as UTC, from RFC 3339 or `YYYY-MM-DD[ T]HH:MM:SS[.f][offset]`
/// (no offset means UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Converts query-string text to a typed JSON value for a comparison with `col`.
///
/// # Errors
/// [`RestError::InvalidValue`] naming the column when the text does not fit.
pub fn coerce_text(table: &str, col: &Column, raw: &str, backend: SqlBackend) -> Result<Value> {
    coerce(table, col, &Value::String(raw.to_owned()), backend)
}

/// Converts a JSON value (body or query text) to the canonical JSON value
/// for `col` (what gets bound): numbers for numeric columns, booleans,
/// canonical UUID / timestamp text, JSON documents as text.
///
/// # Errors
/// [`RestError::InvalidValue`] naming the column when the value does not fit.
pub fn coerce(table: &str, col: &Column, value: &Value, backend: SqlBackend) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let text = || match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bad = || invalid(table, col, &text());
    // PostgreSQL text cannot hold NUL; refuse it on both backends alike.
    if value.as_str().is_some_and(|s| s.contains('\0')) {
        return Err(bad());
    }
    Ok(match col.kind {
        ColumnKind::Int => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                Value::from(n.as_i64().ok_or_else(bad)?)
            }
            Value::String(s) => Value::from(s.trim().parse::<i64>().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnKind::Float => {
            let f = match value {
                Value::Number(n) => n.as_f64().ok_or_else(bad)?,
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| bad())?,
                _ => return Err(bad()),
            };
            Number::from_f64(f).map(Value::Number).ok_or_else(bad)?
        }
        ColumnKind::Numeric => {
            let s = text();
            let f = s.trim().parse::<f64>().map_err(|_| bad())?;
            if !f.is_finite() {
                return Err(bad());
            }
            match backend {
                // Exact text, cast to numeric by the database.
                SqlBackend::Postgres => Value::String(s.trim().to_owned()),
                SqlBackend::Sqlite => Number::from_f64(f).map(Value::Number).ok_or_else(bad)?,
            }
        }
        ColumnKind::Bool => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) => Value::Bool(parse_bool(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        ColumnKind::Uuid => {
            let Value::String(s) = value else {
                return Err(bad());
            };
            let u = uuid::Uuid::parse_str(s.trim()).map_err(|_| bad())?;
            Value::String(u.hyphenated().to_string())
        }
        ColumnKind::Timestamptz | ColumnKind::Timestamp => {
            let Value::String(s) = value else {
                return Err(bad());
            };
            let t = parse_timestamp(s).ok_or_else(bad)?;
            Value::String(match (backend, col.kind) {
                // SQLite stores UTC text in CURRENT_TIMESTAMP's shape, so text order is time order.
                (SqlBackend::Sqlite, _) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
                (SqlBackend::Postgres, ColumnKind::Timestamptz) => {
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
                }
                _ => t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            })
        }
        ColumnKind::Date => {
            let Value::String(s) = value else {
                return Err(bad());
            };
            let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| bad())?;
            Value::String(d.format("%Y-%m-%d").to_string())
        }
        ColumnKind::Time => {
            let Value::String(s) = value else {
                return Err(bad());
            };
            let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
                .map_err(|_| bad())?;
            Value::String(t.format("%H:%M:%S%.f").to_string())
        }
        ColumnKind::Json => Value::String(value.to_string()),
        // SQLite view expressions have no declared type: compare numbers as numbers.
        ColumnKind::Other if backend == SqlBackend::Sqlite && col.data_type.trim().is_empty() => {
            match value {
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .and_then(Number::from_f64)
                            .map(Value::Number)
                    })
                    .unwrap_or_else(|| Value::String(s.clone())),
                other => other.clone(),
            }
        }
        ColumnKind::Text | ColumnKind::Other => Value::String(text()),
    })
}

/// A coerced JSON value (see [`coerce`]) as a bound SQL expression for `col`
/// (cast on PostgreSQL to the column's type when it needs one).
pub fn bind_expr(col: &Column, value: &Value, backend: SqlBackend) -> Expr {
    let v: SqlValue = match value {
        Value::Null => return Expr::cust("NULL"),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        Value::String(s) => s.clone().into(),
        other => other.to_string().into(),
    };
    match (backend, col.pg_cast) {
        (SqlBackend::Postgres, Some(ty)) => Expr::val(v).cast_as(Alias::new(ty)),
        _ => Expr::val(v),
    }
}

/// How a selected expression is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// 64-bit integer.
    Int,
    /// Double.
    Float,
    /// Boolean (SQLite: integer).
    Bool,
    /// Text.
    Text,
    /// JSON document as text.
    Json,
    /// Numeric text, output as a JSON number.
    Numeric,
    /// A timestamp with time zone, output as RFC 3339 with `+00:00`.
    Timestamptz,
    /// A timestamp without time zone, output as `YYYY-MM-DDTHH:MM:SS[.f]`.
    Timestamp,
    /// A timestamp with time zone read as the database renders it in the
    /// session's zone (`Prefer: timezone=`), output as RFC 3339 keeping
    /// that offset.
    TimestamptzZoned,
    /// An embedded resource: JSON text, normalised afterwards by its shape.
    Embedded,
    /// A SQLite column without a declared type (view expressions): read as
    /// whatever the value is (integer, real, text).
    Dynamic,
}

impl Decode {
    /// The decoding of a plain column of `kind`.
    pub fn of(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Int => Self::Int,
            ColumnKind::Float => Self::Float,
            ColumnKind::Numeric => Self::Numeric,
            ColumnKind::Bool => Self::Bool,
            ColumnKind::Json => Self::Json,
            ColumnKind::Timestamptz => Self::Timestamptz,
            ColumnKind::Timestamp => Self::Timestamp,
            _ => Self::Text,
        }
    }

    /// The SQL type an expression is cast to so it decodes as `self`.
    pub fn sql_type(self, backend: SqlBackend) -> &'static str {
        match (self, backend) {
            (Self::Int, SqlBackend::Postgres) => "bigint",
            (Self::Int | Self::Bool, SqlBackend::Sqlite) => "integer",
            (Self::Float, SqlBackend::Postgres) => "double precision",
            (Self::Float, SqlBackend::Sqlite) => "real",
            (Self::Bool, SqlBackend::Postgres) => "boolean",
            _ => "text",
        }
    }

    /// Reads column `idx` of `row` into JSON.
    ///
    /// # Errors
    /// When the driver cannot decode the value.
    pub fn read(self, row: &QueryResult, idx: usize, backend: SqlBackend) -> Result<Value, DbErr> {
        Ok(match self {
            Self::Int => row
                .try_get_by_index::<Option<i64>>(idx)?
                .map_or(Value::Null, Value::from),
            Self::Float => row
                .try_get_by_index::<Option<f64>>(idx)?
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Self::Bool => match backend {
                SqlBackend::Postgres => row
                    .try_get_by_index::<Option<bool>>(idx)?
                    .map_or(Value::Null, Value::Bool),
                SqlBackend::Sqlite => row
                    .try_get_by_index::<Option<i64>>(idx)?
                    .map_or(Value::Null, |i| Value::Bool(i != 0)),
            },
            Self::Text => row
                .try_get_by_index::<Option<String>>(idx)?
                .map_or(Value::Null, Value::String),
            Self::Dynamic => {
                if let Ok(v) = row.try_get_by_index::<Option<i64>>(idx) {
                    v.map_or(Value::Null, Value::from)
                } else if let Ok(v) = row.try_get_by_index::<Option<f64>>(idx) {
                    v.and_then(Number::from_f64)
                        .map_or(Value::Null, Value::Number)
                } else {
                    row.try_get_by_index::<Option<String>>(idx)?
                        .map_or(Value::Null, Value::String)
                }
            }
            Self::Json | Self::Embedded => match row.try_get_by_index::<Option<String>>(idx)? {
                None => Value::Null,
                Some(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            },
            Self::Numeric => match row.try_get_by_index::<Option<String>>(idx)? {
                None => Value::Null,
                Some(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map_or(Value::String(s), Value::Number),
            },
            Self::TimestamptzZoned => row
                .try_get_by_index::<Option<String>>(idx)?
                .map_or(Value::Null, |s| self.normalize(Value::String(s), backend)),
            Self::Timestamptz | Self::Timestamp => row
                .try_get_by_index::<Option<String>>(idx)?
                .map_or(Value::Null, |s| self.normalize(Value::String(s), backend)),
        })
    }

    /// Brings a value read inside a JSON document (embedded resources) to
    /// the form [`Decode::read`] gives, so both backends answer alike.
    pub fn normalize(self, value: Value, backend: SqlBackend) -> Value {
        match (self, value) {
            (_, Value::Null) => Value::Null,
            (Self::Bool, Value::Number(n)) => Value::Bool(n.as_f64().is_some_and(|f| f != 0.0)),
            (Self::Float, Value::Number(n)) => n
                .as_f64()
                .and_then(Number::from_f64)
                .map_or(Value::Number(n), Value::Number),
            (Self::Json, Value::String(s)) if backend == SqlBackend::Sqlite => {
                serde_json::from_str(&s).unwrap_or(Value::String(s))
            }
            (Self::TimestamptzZoned, Value::String(s)) => match parse_zoned(&s) {
                Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
                None => Self::Timestamptz.normalize(Value::String(s), backend),
            },
            (Self::Timestamptz, Value::String(s)) => match parse_timestamp(&s) {
                Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, false)),
                None => Value::String(s),
            },
            (Self::Timestamp, Value::String(s)) => match parse_timestamp(&s) {
                Some(t) => Value::String(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
                None => Value::String(s),
            },
            (_, v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnKind) -> Column {
        Column {
            name: "c".into(),
            kind,
            data_type: String::new(),
            pg_cast: None,
            nullable: true,
            has_default: false,
            primary_key: false,
        }
    }

    #[test]
    fn coercion_validates_per_type() {
        let s = SqlBackend::Sqlite;
        assert_eq!(
            coerce_text("t", &col(ColumnKind::Int), "42", s).unwrap(),
            Value::from(42)
        );
        assert!(coerce_text("t", &col(ColumnKind::Int), "4x", s).is_err());
        assert!(coerce_text("t", &col(ColumnKind::Uuid), "nope", s).is_err());
        assert_eq!(
            coerce_text("t", &col(ColumnKind::Bool), "true", s).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            coerce_text(
                "t",
                &col(ColumnKind::Timestamptz),
                "2024-01-02T03:04:05+01:00",
                s
            )
            .unwrap(),
            Value::String("2024-01-02 02:04:05".into())
        );
        assert!(coerce("t", &col(ColumnKind::Int), &Value::Bool(true), s).is_err());
    }
}
