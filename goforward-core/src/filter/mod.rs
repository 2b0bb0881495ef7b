//! The filter expression tree shared by REST, realtime and storage.
//!
//! One [`Filter`] renders to a `sea_query::Condition` (REST ANDs it into SQL)
//! and evaluates against a JSON row (realtime checks each changed row), with
//! the same three-valued SQL semantics on both sides: a comparison with NULL
//! is *unknown*, and unknown rows do not match.
//!
//! ```
//! use goforward_core::filter::{Filter, Op};
//! use serde_json::json;
//!
//! let f = Filter::and([
//!     Filter::cmp("user_id", Op::Eq, json!("u1")),
//!     Filter::not(Filter::cmp("done", Op::Is, json!(true))),
//! ]);
//! assert!(f.matches(&json!({"user_id": "u1", "done": false})));
//! assert!(!f.matches(&json!({"user_id": "u2", "done": false})));
//! ```

mod eval;
mod sql;

pub use eval::Truth;
pub use sql::{ColumnCasts, SqlBackend};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A boolean expression over the columns of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Filter {
    /// Always true (the neutral element of `And`).
    True,
    /// Always false (the neutral element of `Or`).
    False,
    /// All children hold.
    And {
        /// Operands.
        filters: Vec<Filter>,
    },
    /// At least one child holds.
    Or {
        /// Operands.
        filters: Vec<Filter>,
    },
    /// The child does not hold (unknown stays unknown).
    Not {
        /// Operand.
        filter: Box<Filter>,
    },
    /// A comparison of a column (optionally a JSON path inside it) with a value.
    Cmp(Comparison),
}

/// `column[->path...] op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Column name; checked against the schema by the caller before rendering.
    pub column: String,
    /// JSON path inside the column (`col->a->>b`); empty for the column itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_path: Vec<String>,
    /// The operator.
    pub op: Op,
    /// The operand: a scalar for comparisons, an array for `In`/`Cs`/`Cd`/`Ov`,
    /// `null`/`true`/`false` (or the string `"unknown"`) for `Is`.
    pub value: Value,
}

/// Comparison operators (a closed set: nothing user-written reaches SQL as an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `=`
    Eq,
    /// `<>`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards; PostgREST's `*` already mapped to `%`).
    Like,
    /// Case-insensitive `LIKE`.
    ILike,
    /// `IS NULL` / `IS TRUE` / `IS FALSE` / `IS UNKNOWN`.
    Is,
    /// `IN (…)`.
    In,
    /// `IS DISTINCT FROM` (NULL-safe inequality).
    IsDistinct,
    /// Contains (`@>`): the column's array/object contains the operand.
    Cs,
    /// Contained by (`<@`).
    Cd,
    /// Overlaps (`&&`): the arrays share an element.
    Ov,
}

impl Filter {
    /// `column op value`.
    pub fn cmp(column: impl Into<String>, op: Op, value: impl Into<Value>) -> Self {
        Self::Cmp(Comparison {
            column: column.into(),
            json_path: Vec::new(),
            op,
            value: value.into(),
        })
    }

    /// `column = value`.
    pub fn eq(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::cmp(column, Op::Eq, value)
    }

    /// Conjunction; flattens nested `And` and drops `True`.
    pub fn and(filters: impl IntoIterator<Item = Filter>) -> Self {
        let mut out = Vec::new();
        for f in filters {
            match f {
                Filter::True => {}
                Filter::And { filters } => out.extend(filters),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::True,
            1 => out.pop().unwrap_or(Filter::True),
            _ => Filter::And { filters: out },
        }
    }

    /// Disjunction; flattens nested `Or` and drops `False`.
    pub fn or(filters: impl IntoIterator<Item = Filter>) -> Self {
        let mut out = Vec::new();
        for f in filters {
            match f {
                Filter::False => {}
                Filter::Or { filters } => out.extend(filters),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => Filter::False,
            1 => out.pop().unwrap_or(Filter::False),
            _ => Filter::Or { filters: out },
        }
    }

    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Self {
        match filter {
            Filter::True => Filter::False,
            Filter::False => Filter::True,
            other => Filter::Not {
                filter: Box::new(other),
            },
        }
    }

    /// Every column name this filter references (for schema checks).
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_columns(&mut out);
        out
    }

    fn visit_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Filter::True | Filter::False => {}
            Filter::And { filters } | Filter::Or { filters } => {
                filters.iter().for_each(|f| f.visit_columns(out))
            }
            Filter::Not { filter } => filter.visit_columns(out),
            Filter::Cmp(c) => out.push(&c.column),
        }
    }
}
