//! The `select` grammar: columns, `alias:col`, `col::cast`, JSON arrows and
//! embedded resources `alias:rel!hint!inner(…)`.

use super::parse::{Field, parse_field, perr, split_top, unquote, valid_name};
use crate::error::{RestError, Result};

/// Casts allowed in `select` (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// `::text`
    Text,
    /// `::int`, `::integer`, `::bigint`, `::int4`, `::int8`, `::smallint`
    Int,
    /// `::float`, `::float8`, `::double precision`, `::real`, `::numeric`
    Float,
    /// `::bool`, `::boolean`
    Bool,
}

impl Cast {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "text" | "varchar" => Self::Text,
            "int" | "integer" | "bigint" | "int2" | "int4" | "int8" | "smallint" => Self::Int,
            "float" | "float4" | "float8" | "double precision" | "real" | "numeric" => Self::Float,
            "bool" | "boolean" => Self::Bool,
            _ => return None,
        })
    }
}

/// One item of `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `alias:field::cast`
    Field {
        /// Output name, when renamed.
        alias: Option<String>,
        /// The column (and JSON path).
        field: Field,
        /// Cast, when given.
        cast: Option<Cast>,
    },
    /// `alias:relation!hint!inner(items)`: a related table through a foreign
    /// key (or a junction table), or `...relation(items)` (spread: its
    /// columns flattened into the parent, to-one relationships only).
    Embed {
        /// Output name, when renamed.
        alias: Option<String>,
        /// The related table.
        relation: String,
        /// A foreign key constraint name or column picking the relationship.
        hint: Option<String>,
        /// `!inner`: keep only parent rows with a related row.
        inner: bool,
        /// What to select from the related table.
        items: Vec<SelectItem>,
        /// `...relation(items)`: the columns go into the parent object.
        spread: bool,
    },
    /// `alias:count()`, `alias:col.sum()::cast`, …: an aggregate; the
    /// other selected columns are grouped by.
    Aggregate {
        /// Output name, when renamed (default: the function name).
        alias: Option<String>,
        /// The function.
        func: AggFunc,
        /// Its column (`None` for `count()`).
        field: Option<Field>,
        /// Cast of the result, when given.
        cast: Option<Cast>,
    },
}

/// Aggregate functions allowed in `select` (a closed set, PostgREST 12's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `count()` / `col.count()`.
    Count,
    /// `col.sum()`.
    Sum,
    /// `col.avg()`.
    Avg,
    /// `col.min()`.
    Min,
    /// `col.max()`.
    Max,
}

impl AggFunc {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "count" => Self::Count,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            _ => return None,
        })
    }

    /// The function's name (the default output name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// Whether a select list (embeds included) uses an aggregate.
pub fn has_aggregate(items: &[SelectItem]) -> bool {
    items.iter().any(|i| match i {
        SelectItem::Aggregate { .. } => true,
        SelectItem::Embed { items, .. } => has_aggregate(items),
        _ => false,
    })
}

/// `alias:count()`, `alias:col.func()`, optionally followed by `::cast`;
/// `None` when `item` is not an aggregate.
fn parse_aggregate(item: &str) -> Option<Result<SelectItem>> {
    let (body, cast) = match item.find("()::") {
        Some(i) => (&item[..i + 2], Some(&item[i + 4..])),
        None => (item, None),
    };
    let head = body.strip_suffix("()")?;
    let (alias, rest) = match head.split_once(':') {
        Some((a, r)) => (Some(unquote(a.trim())), r.trim()),
        None => (None, head.trim()),
    };
    let (field, func) = if rest == "count" {
        (None, AggFunc::Count)
    } else {
        let (field, func) = rest.rsplit_once('.')?;
        (Some(field), AggFunc::parse(func.trim())?)
    };
    Some((|| {
        if alias.as_deref().is_some_and(|a| !valid_name(a)) {
            return Err(perr("select", item, "invalid alias"));
        }
        let cast = match cast {
            Some(c) => {
                Some(Cast::parse(c).ok_or_else(|| perr("select", item, "unsupported cast"))?)
            }
            None => None,
        };
        let field = field.map(parse_field).transpose()?;
        Ok(SelectItem::Aggregate {
            alias,
            func,
            field,
            cast,
        })
    })())
}

/// How deep embedded resources may nest (security checklist 18: relation depth ≤ 6).
pub const MAX_EMBED_DEPTH: usize = 6;

/// The `select` list.
pub fn parse_select(value: &str) -> Result<Vec<SelectItem>> {
    parse_select_at(value, 0)
}

/// `alias:relation!hint!inner(items)`.
fn parse_embed(item: &str, depth: usize) -> Result<SelectItem> {
    let (spread, item) = match item.strip_prefix("...") {
        Some(rest) => (true, rest),
        None => (false, item),
    };
    let open = item.find('(').unwrap_or(item.len());
    let head = &item[..open];
    let inner = item[open..]
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| perr("select", item, "expected relation(columns)"))?;
    if depth + 1 > MAX_EMBED_DEPTH {
        return Err(RestError::TooComplex(format!(
            "embedded resources nest at most {MAX_EMBED_DEPTH} levels"
        )));
    }
    let (alias, rest) = match head.split_once(':') {
        Some((a, r)) => (Some(unquote(a.trim())), r),
        None => (None, head),
    };
    if spread && alias.is_some() {
        return Err(perr("select", item, "a spread embed takes no alias"));
    }
    let mut parts = rest.split('!');
    let relation = unquote(parts.next().unwrap_or_default().trim());
    let mut hint = None;
    let mut inner_join = false;
    for p in parts {
        match p.trim() {
            "inner" => inner_join = true,
            "left" => {}
            other => hint = Some(unquote(other)),
        }
    }
    for name in alias
        .iter()
        .chain(hint.iter())
        .chain(std::iter::once(&relation))
    {
        if !valid_name(name) {
            return Err(perr("select", item, "invalid relation, alias or hint"));
        }
    }
    if relation.contains("->") {
        return Err(perr("select", item, "invalid relation"));
    }
    let items = if inner.trim().is_empty() {
        vec![SelectItem::Star]
    } else {
        parse_select_at(inner, depth + 1)?
    };
    Ok(SelectItem::Embed {
        alias,
        relation,
        hint,
        inner: inner_join,
        items,
        spread,
    })
}

fn parse_select_at(value: &str, depth: usize) -> Result<Vec<SelectItem>> {
    let mut out = Vec::new();
    for item in split_top(value, "select")? {
        let item = item.trim();
        if item.is_empty() {
            return Err(perr("select", value, "empty select item"));
        }
        if item == "*" {
            out.push(SelectItem::Star);
            continue;
        }
        if !item.starts_with("...")
            && let Some(aggregate) = parse_aggregate(item)
        {
            out.push(aggregate?);
            continue;
        }
        if item.contains('(') || item.starts_with("...") {
            out.push(parse_embed(item, depth)?);
            continue;
        }
        let (rest, cast) = match item.split_once("::") {
            Some((rest, cast)) => (
                rest,
                Some(Cast::parse(cast).ok_or_else(|| perr("select", item, "unsupported cast"))?),
            ),
            None => (item, None),
        };
        let (alias, field) = match rest.split_once(':') {
            Some((alias, field)) => {
                let alias = unquote(alias.trim());
                if !valid_name(&alias) {
                    return Err(perr("select", item, "invalid alias"));
                }
                (Some(alias), field)
            }
            None => (None, rest),
        };
        out.push(SelectItem::Field {
            alias,
            field: parse_field(field)?,
            cast,
        });
    }
    Ok(out)
}
