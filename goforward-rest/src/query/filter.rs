//! Filters: `[not.]op.value`, `op(any|all).{…}`, and the logic trees of
//! `or=(…)` / `and=(…)`.

use super::parse::{Field, Limits, parse_field, perr, split_top, unquote};
use crate::error::{RestError, Result};

/// Filter operators as written (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawOp {
    /// `eq`
    Eq,
    /// `neq`
    Neq,
    /// `gt`
    Gt,
    /// `gte`
    Gte,
    /// `lt`
    Lt,
    /// `lte`
    Lte,
    /// `like` (`*` is a wildcard)
    Like,
    /// `ilike`
    ILike,
    /// `match` (POSIX regex, PostgreSQL)
    Match,
    /// `imatch`
    IMatch,
    /// `in.(…)`
    In,
    /// `is.null|not_null|true|false|unknown`
    Is,
    /// `isdistinct`
    IsDistinct,
    /// `cs` (contains)
    Cs,
    /// `cd` (contained by)
    Cd,
    /// `ov` (overlaps)
    Ov,
    /// Full-text search: `fts`, `plfts`, `phfts`, `wfts` (PostgreSQL).
    Fts(FtsKind),
}

/// The tsquery constructor of a full-text filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsKind {
    /// `fts`: `to_tsquery`.
    Plain,
    /// `plfts`: `plainto_tsquery`.
    PlainTo,
    /// `phfts`: `phraseto_tsquery`.
    Phrase,
    /// `wfts`: `websearch_to_tsquery`.
    Websearch,
}

impl FtsKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "fts" => Self::Plain,
            "plfts" => Self::PlainTo,
            "phfts" => Self::Phrase,
            "wfts" => Self::Websearch,
            _ => return None,
        })
    }

    /// The operator as written.
    pub fn op_name(self) -> &'static str {
        match self {
            Self::Plain => "fts",
            Self::PlainTo => "plfts",
            Self::Phrase => "phfts",
            Self::Websearch => "wfts",
        }
    }

    /// The PostgreSQL function building the tsquery.
    pub fn function(self) -> &'static str {
        match self {
            Self::Plain => "to_tsquery",
            Self::PlainTo => "plainto_tsquery",
            Self::Phrase => "phraseto_tsquery",
            Self::Websearch => "websearch_to_tsquery",
        }
    }
}

impl RawOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => Self::Eq,
            "neq" => Self::Neq,
            "gt" => Self::Gt,
            "gte" => Self::Gte,
            "lt" => Self::Lt,
            "lte" => Self::Lte,
            "like" => Self::Like,
            "ilike" => Self::ILike,
            "match" => Self::Match,
            "imatch" => Self::IMatch,
            "in" => Self::In,
            "is" => Self::Is,
            "isdistinct" => Self::IsDistinct,
            "cs" => Self::Cs,
            "cd" => Self::Cd,
            "ov" => Self::Ov,
            _ => return None,
        })
    }
}

/// The operand of a filter, still text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// One value.
    Scalar(String),
    /// `in.(a,b,"c,d")`
    List(Vec<String>),
    /// `fts(language).query`.
    Fts {
        /// The text search configuration, as written (checked by the planner).
        language: Option<String>,
        /// The query text.
        query: String,
    },
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// All hold.
    And(Vec<Expr>),
    /// One holds.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// `field op operand`.
    Cond {
        /// The column (and JSON path).
        field: Field,
        /// The operator.
        op: RawOp,
        /// The operand.
        operand: Operand,
    },
}

/// The value of a column filter: `[not.]op.value`.
pub(super) fn parse_filter_value(
    field: Field,
    value: &str,
    depth: usize,
    limits: &Limits,
) -> Result<Expr> {
    if depth > limits.max_depth {
        return Err(RestError::TooComplex(format!(
            "filters nest at most {} levels",
            limits.max_depth
        )));
    }
    if let Some(rest) = value.strip_prefix("not.") {
        let inner = parse_filter_value(field, rest, depth + 1, limits)?;
        return Ok(Expr::Not(Box::new(inner)));
    }
    let (op_text, operand) = value
        .split_once('.')
        .ok_or_else(|| perr("filter", value, "expected op.value"))?;
    // `op(any).{a,b}` / `op(all).{a,b}`: one condition per value, ORed / ANDed.
    for (suffix, any) in [("(any)", true), ("(all)", false)] {
        let Some(base) = op_text.strip_suffix(suffix) else {
            continue;
        };
        let op = RawOp::parse(base)
            .filter(|op| {
                matches!(
                    op,
                    RawOp::Eq
                        | RawOp::Like
                        | RawOp::ILike
                        | RawOp::Gt
                        | RawOp::Gte
                        | RawOp::Lt
                        | RawOp::Lte
                        | RawOp::Match
                        | RawOp::IMatch
                )
            })
            .ok_or_else(|| {
                perr(
                    "filter",
                    value,
                    "any/all apply to eq, like, ilike, gt, gte, lt, lte, match, imatch",
                )
            })?;
        let inner = operand
            .trim()
            .strip_prefix('{')
            .and_then(|o| o.strip_suffix('}'))
            .ok_or_else(|| perr("filter", value, "any/all expect {a,b,…}"))?;
        let items = if inner.trim().is_empty() {
            Vec::new()
        } else {
            split_top(inner, "filter")?
        };
        if items.len() > limits.max_conditions {
            return Err(RestError::TooComplex("too many values in {…}".into()));
        }
        let conds: Vec<Expr> = items
            .into_iter()
            .map(|v| Expr::Cond {
                field: field.clone(),
                op,
                operand: Operand::Scalar(unquote(v.trim())),
            })
            .collect();
        return Ok(if any {
            Expr::Or(conds)
        } else {
            Expr::And(conds)
        });
    }
    // `fts.q`, `fts(english).q`, and plfts / phfts / wfts alike.
    let (fts_name, fts_lang) = match op_text.split_once('(') {
        Some((name, lang)) => (name, Some(lang)),
        None => (op_text, None),
    };
    if let Some(kind) = FtsKind::parse(fts_name) {
        let language = match fts_lang {
            None => None,
            Some(l) => {
                let l = l
                    .strip_suffix(')')
                    .ok_or_else(|| perr("filter", value, "expected fts(language)"))?;
                if l.is_empty()
                    || l.len() > 63
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(perr("filter", value, "invalid text search language"));
                }
                Some(l.to_owned())
            }
        };
        return Ok(Expr::Cond {
            field,
            op: RawOp::Fts(kind),
            operand: Operand::Fts {
                language,
                query: operand.to_owned(),
            },
        });
    }
    let op = RawOp::parse(op_text).ok_or_else(|| {
        if op_text.contains('(') {
            perr("filter", value, "this operator is not supported")
        } else {
            perr("filter", value, "unknown operator")
        }
    })?;
    let operand = match op {
        RawOp::In => {
            let inner = operand
                .trim()
                .strip_prefix('(')
                .and_then(|o| o.strip_suffix(')'))
                .ok_or_else(|| perr("filter", value, "in expects (a,b,…)"))?;
            if inner.trim().is_empty() {
                Operand::List(Vec::new())
            } else {
                let items = split_top(inner, "filter")?;
                if items.len() > limits.max_conditions {
                    return Err(RestError::TooComplex("too many values in in.(…)".into()));
                }
                Operand::List(items.into_iter().map(|v| unquote(v.trim())).collect())
            }
        }
        RawOp::Is => {
            let v = operand.trim().to_ascii_lowercase();
            if !matches!(
                v.as_str(),
                "null" | "not_null" | "true" | "false" | "unknown"
            ) {
                return Err(perr(
                    "filter",
                    value,
                    "is accepts null, not_null, true, false or unknown",
                ));
            }
            Operand::Scalar(v)
        }
        _ => Operand::Scalar(operand.to_owned()),
    };
    Ok(Expr::Cond { field, op, operand })
}

/// Items of `or=(…)` / `and(…)`: `a.eq.1,and(b.gt.2,c.lt.3),not.or(…)`.
pub(super) fn parse_logic_items(s: &str, depth: usize, limits: &Limits) -> Result<Vec<Expr>> {
    if depth > limits.max_depth {
        return Err(RestError::TooComplex(format!(
            "filters nest at most {} levels",
            limits.max_depth
        )));
    }
    let mut out = Vec::new();
    for item in split_top(s, "logic tree")? {
        out.push(parse_logic_item(item.trim(), depth, limits)?);
    }
    Ok(out)
}

fn parse_logic_item(item: &str, depth: usize, limits: &Limits) -> Result<Expr> {
    let (negate, body) = match item.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, item),
    };
    for (kw, is_or) in [("or(", true), ("and(", false)] {
        if let Some(rest) = body.strip_prefix(kw) {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| perr("logic tree", item, "expected )"))?;
            let items = parse_logic_items(inner, depth + 1, limits)?;
            let e = if is_or {
                Expr::Or(items)
            } else {
                Expr::And(items)
            };
            return Ok(if negate { Expr::Not(Box::new(e)) } else { e });
        }
    }
    let (field, rest) = body
        .split_once('.')
        .ok_or_else(|| perr("logic tree", item, "expected field.op.value"))?;
    let field = parse_field(field)?;
    let mut e = parse_filter_value(field, rest, depth + 1, limits)?;
    match &mut e {
        Expr::Cond {
            operand: Operand::Scalar(v),
            op,
            ..
        } if *op != RawOp::Is => *v = unquote(v),
        Expr::Cond {
            operand: Operand::Fts { query, .. },
            ..
        } => *query = unquote(query),
        _ => {}
    }
    Ok(if negate { Expr::Not(Box::new(e)) } else { e })
}
