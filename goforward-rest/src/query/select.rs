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
    /// `alias:relation!hint!inner(items)`: a related table through a foreign key.
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
    },
}

/// How deep embedded resources may nest (security checklist 18: relation depth ≤ 6).
pub const MAX_EMBED_DEPTH: usize = 6;

/// The `select` list.
pub fn parse_select(value: &str) -> Result<Vec<SelectItem>> {
    parse_select_at(value, 0)
}

/// `alias:relation!hint!inner(items)`.
fn parse_embed(item: &str, depth: usize) -> Result<SelectItem> {
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
        let head = item.split('(').next().unwrap_or_default();
        let aggregate = item.contains('(')
            && (head.rsplit(':').next().is_some_and(|h| h.trim() == "count") || head.contains('.'));
        if item.starts_with("...") || aggregate {
            return Err(perr(
                "select",
                item,
                "spread embeds and aggregates are not supported yet",
            ));
        }
        if item.contains('(') {
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
