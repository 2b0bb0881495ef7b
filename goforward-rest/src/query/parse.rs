//! The PostgREST query-string grammar: `select`, filters (`col=op.value`,
//! `not.`, `or=(…)`, `and=(…)` nested), `order`, `limit`, `offset`,
//! `on_conflict`, `columns`.
//!
//! Everything stays text here; the planner resolves names against the schema
//! cache and converts values to the columns' types. Every size is capped by
//! [`Limits`] so no request can make the parser or the SQL grow unbounded.

use super::filter::{Expr, parse_filter_value, parse_logic_items};
use super::select::{MAX_EMBED_DEPTH, SelectItem, parse_select};
use crate::error::{RestError, Result};

/// Caps on the query string (security checklist item 18).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of the whole query string.
    pub max_query_len: usize,
    /// Bytes of one parameter value.
    pub max_value_len: usize,
    /// Conditions in all filters together.
    pub max_conditions: usize,
    /// Nesting of `and(…)` / `or(…)` / `not.`.
    pub max_depth: usize,
    /// Terms of `order`.
    pub max_order_terms: usize,
    /// Items of `select` / `columns` / `on_conflict`.
    pub max_select_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_query_len: 16 * 1024,
            max_value_len: 3584,
            max_conditions: 200,
            max_depth: 8,
            max_order_terms: 8,
            max_select_items: 200,
        }
    }
}

/// A column, optionally followed by a JSON path (`data->a->>b`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The column name as written.
    pub column: String,
    /// JSON path keys.
    pub path: Vec<String>,
    /// The last arrow was `->>` (text) rather than `->` (json).
    pub as_text: bool,
}

impl Field {
    /// The default output name: the last path key, or the column.
    pub fn output_name(&self) -> &str {
        self.path.last().map_or(&self.column, String::as_str)
    }
}

/// One term of `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// The column (and JSON path).
    pub field: Field,
    /// Descending.
    pub desc: bool,
    /// `Some(true)` nullsfirst, `Some(false)` nullslast.
    pub nulls_first: Option<bool>,
}

/// The whole query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// `select` (`None`: `*`).
    pub select: Option<Vec<SelectItem>>,
    /// Filters, ANDed.
    pub filters: Vec<Expr>,
    /// `order`.
    pub order: Vec<OrderTerm>,
    /// `limit`.
    pub limit: Option<u64>,
    /// `offset`.
    pub offset: Option<u64>,
    /// `on_conflict`.
    pub on_conflict: Option<Vec<String>>,
    /// `columns`.
    pub columns: Option<Vec<String>>,
    /// Filters and modifiers of embedded resources (`rel.col=…`,
    /// `rel.order=…`, `rel.limit=…`), by embed path (names or aliases).
    pub embedded: std::collections::BTreeMap<Vec<String>, EmbedModifiers>,
}

/// Filters, order and paging of one embedded resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedModifiers {
    /// Filters, ANDed (they filter the embedded rows; with `!inner`, the parents too).
    pub filters: Vec<Expr>,
    /// `rel.order`.
    pub order: Vec<OrderTerm>,
    /// `rel.limit`.
    pub limit: Option<u64>,
    /// `rel.offset`.
    pub offset: Option<u64>,
}

impl ParsedQuery {
    /// Number of conditions in all filters.
    pub fn condition_count(&self) -> usize {
        fn count(e: &Expr) -> usize {
            match e {
                Expr::And(v) | Expr::Or(v) => v.iter().map(count).sum(),
                Expr::Not(e) => count(e),
                Expr::Cond { .. } => 1,
            }
        }
        self.filters.iter().map(count).sum::<usize>()
            + self
                .embedded
                .values()
                .flat_map(|m| m.filters.iter())
                .map(count)
                .sum::<usize>()
    }
}

pub(super) fn perr(what: &str, value: &str, details: impl Into<String>) -> RestError {
    let mut shown: String = value.chars().take(100).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    RestError::parse(format!("failed to parse {what} ({shown})"), details)
}

/// Parses a raw (still percent-encoded) query string.
///
/// # Errors
/// [`RestError::Parse`] for malformed parts, [`RestError::TooComplex`] beyond `limits`.
pub fn parse_query(raw: &str, limits: &Limits) -> Result<ParsedQuery> {
    if raw.len() > limits.max_query_len {
        return Err(RestError::TooComplex(format!(
            "the query string exceeds {} bytes",
            limits.max_query_len
        )));
    }
    let mut q = ParsedQuery::default();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if key.contains('\0') || value.contains('\0') {
            return Err(RestError::parse(
                "failed to parse the query string",
                "NUL characters are not allowed",
            ));
        }
        if value.len() > limits.max_value_len {
            return Err(RestError::TooComplex(format!(
                "the value of `{}` exceeds {} bytes",
                key.chars().take(64).collect::<String>(),
                limits.max_value_len
            )));
        }
        match key.as_ref() {
            "select" => {
                let items = parse_select(&value)?;
                if items.len() > limits.max_select_items {
                    return Err(RestError::TooComplex("too many select items".into()));
                }
                q.select = Some(items);
            }
            "order" => {
                let terms = parse_order(&value)?;
                if terms.len() > limits.max_order_terms {
                    return Err(RestError::TooComplex(format!(
                        "at most {} order terms are allowed",
                        limits.max_order_terms
                    )));
                }
                q.order = terms;
            }
            "limit" => q.limit = Some(parse_u64("limit", &value)?),
            "offset" => q.offset = Some(parse_u64("offset", &value)?),
            "on_conflict" => q.on_conflict = Some(parse_names("on_conflict", &value)?),
            "columns" => {
                let cols = parse_names("columns", &value)?;
                if cols.len() > limits.max_select_items {
                    return Err(RestError::TooComplex("too many columns".into()));
                }
                q.columns = Some(cols);
            }
            "or" | "and" | "not.or" | "not.and" => {
                let (negate, kind) = match key.strip_prefix("not.") {
                    Some(k) => (true, k),
                    None => (false, key.as_ref()),
                };
                let body = value.trim();
                let inner = body
                    .strip_prefix('(')
                    .and_then(|b| b.strip_suffix(')'))
                    .ok_or_else(|| perr("logic tree", body, "expected (…)"))?;
                let items = parse_logic_items(inner, 1, limits)?;
                let e = if kind == "or" {
                    Expr::Or(items)
                } else {
                    Expr::And(items)
                };
                q.filters
                    .push(if negate { Expr::Not(Box::new(e)) } else { e });
            }
            other if other.contains('.') && !other.contains("->") => {
                let mut path: Vec<String> = other.split('.').map(|p| p.trim().to_owned()).collect();
                let last = path.pop().unwrap_or_default();
                if path.len() > MAX_EMBED_DEPTH || path.iter().any(|p| !valid_name(p)) {
                    return Err(perr("parameter", other, "invalid embedded resource path"));
                }
                let m = q.embedded.entry(path).or_default();
                match last.as_str() {
                    "order" => {
                        let terms = parse_order(&value)?;
                        if terms.len() > limits.max_order_terms {
                            return Err(RestError::TooComplex(format!(
                                "at most {} order terms are allowed",
                                limits.max_order_terms
                            )));
                        }
                        m.order = terms;
                    }
                    "limit" => m.limit = Some(parse_u64("limit", &value)?),
                    "offset" => m.offset = Some(parse_u64("offset", &value)?),
                    "or" | "and" => {
                        let body = value.trim();
                        let inner = body
                            .strip_prefix('(')
                            .and_then(|b| b.strip_suffix(')'))
                            .ok_or_else(|| perr("logic tree", body, "expected (…)"))?;
                        let items = parse_logic_items(inner, 1, limits)?;
                        m.filters.push(if last == "or" {
                            Expr::Or(items)
                        } else {
                            Expr::And(items)
                        });
                    }
                    column => {
                        let field = parse_field(column)?;
                        m.filters
                            .push(parse_filter_value(field, &value, 1, limits)?);
                    }
                }
            }
            column => {
                let field = parse_field(column)?;
                q.filters
                    .push(parse_filter_value(field, &value, 1, limits)?);
            }
        }
        if q.condition_count() > limits.max_conditions {
            return Err(RestError::TooComplex(format!(
                "at most {} filter conditions are allowed",
                limits.max_conditions
            )));
        }
    }
    Ok(q)
}

fn parse_u64(what: &str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| perr(what, value, "expected a non-negative integer"))
}

/// `a,b` or `"a","b"` (supabase-js quotes each name in `columns`).
fn parse_names(what: &str, value: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for part in split_top(value, what)? {
        let name = unquote(part.trim());
        if name.is_empty() {
            return Err(perr(what, value, "empty column name"));
        }
        out.push(name);
    }
    Ok(out)
}

/// Splits on commas outside parentheses and double quotes.
pub(crate) fn split_top<'a>(s: &'a str, what: &str) -> Result<Vec<&'a str>> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' | '{' if !quoted => depth += 1,
            ')' | '}' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| perr(what, s, "unbalanced parentheses"))?;
            }
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || depth != 0 {
        return Err(perr(what, s, "unbalanced quotes or parentheses"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Removes surrounding double quotes, resolving `\"` and `\\`.
pub(crate) fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => s.to_owned(),
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s
            .chars()
            .any(|c| matches!(c, '.' | ',' | ':' | '(' | ')' | '"' | '\\') || c.is_control())
}

/// `col`, `col->a->>b`, `col->0`.
pub fn parse_field(s: &str) -> Result<Field> {
    let s = s.trim();
    let mut parts = s.split("->");
    let column = unquote(parts.next().unwrap_or_default().trim());
    if !valid_name(&column) {
        return Err(perr("field", s, "invalid column name"));
    }
    let mut path = Vec::new();
    let mut as_text = false;
    for part in parts {
        let (key, text) = match part.strip_prefix('>') {
            Some(k) => (k, true),
            None => (part, false),
        };
        let key = unquote(key.trim());
        if key.is_empty()
            || key.len() > 63
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(perr(
                "field",
                s,
                "JSON path keys must be letters, digits or _",
            ));
        }
        path.push(key);
        as_text = text;
    }
    Ok(Field {
        column,
        path,
        as_text,
    })
}

/// The `order` list: `col.desc.nullslast,col2`.
pub fn parse_order(value: &str) -> Result<Vec<OrderTerm>> {
    let mut out = Vec::new();
    for term in split_top(value, "order")? {
        let term = term.trim();
        let mut parts = term.split('.');
        let field = parse_field(parts.next().unwrap_or_default())?;
        let mut desc = false;
        let mut nulls_first = None;
        for modifier in parts {
            match modifier {
                "asc" => desc = false,
                "desc" => desc = true,
                "nullsfirst" => nulls_first = Some(true),
                "nullslast" => nulls_first = Some(false),
                _ => {
                    return Err(perr(
                        "order",
                        term,
                        "expected asc, desc, nullsfirst or nullslast",
                    ));
                }
            }
        }
        out.push(OrderTerm {
            field,
            desc,
            nulls_first,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::filter::{Operand, RawOp};
    use crate::query::select::Cast;

    fn q(s: &str) -> Result<ParsedQuery> {
        parse_query(s, &Limits::default())
    }

    fn field(c: &str) -> Field {
        Field {
            column: c.into(),
            path: vec![],
            as_text: false,
        }
    }

    #[test]
    fn filters_and_modifiers() {
        let p =
            q("id=eq.1&name=not.like.a*b&limit=5&offset=10&order=id.desc.nullslast,name").unwrap();
        assert_eq!(p.limit, Some(5));
        assert_eq!(p.offset, Some(10));
        assert_eq!(
            p.filters[0],
            Expr::Cond {
                field: field("id"),
                op: RawOp::Eq,
                operand: Operand::Scalar("1".into())
            }
        );
        assert!(matches!(&p.filters[1], Expr::Not(_)));
        assert_eq!(p.order.len(), 2);
        assert!(p.order[0].desc);
        assert_eq!(p.order[0].nulls_first, Some(false));
    }

    #[test]
    fn form_encoding_and_in_lists() {
        let p = q("title=eq.hello+world&id=in.%281%2C2%2C%22a%2Cb%22%29").unwrap();
        assert_eq!(
            p.filters[0],
            Expr::Cond {
                field: field("title"),
                op: RawOp::Eq,
                operand: Operand::Scalar("hello world".into())
            }
        );
        assert_eq!(
            p.filters[1],
            Expr::Cond {
                field: field("id"),
                op: RawOp::In,
                operand: Operand::List(vec!["1".into(), "2".into(), "a,b".into()])
            }
        );
    }

    #[test]
    fn logic_trees_nest() {
        let p = q("or=(a.eq.1,and(b.gt.2,not.c.is.null),d.eq.\"x,y\")").unwrap();
        let Expr::Or(items) = &p.filters[0] else {
            panic!("expected or")
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Expr::And(v) if v.len() == 2));
        assert_eq!(
            items[2],
            Expr::Cond {
                field: field("d"),
                op: RawOp::Eq,
                operand: Operand::Scalar("x,y".into())
            }
        );
        assert!(matches!(
            q("not.and=(a.eq.1)").unwrap().filters[0],
            Expr::Not(_)
        ));
    }

    #[test]
    fn select_items() {
        let p = q("select=id,t:title,data->a->>b,n:id::text,*").unwrap();
        let items = p.select.unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[2],
            SelectItem::Field {
                alias: None,
                field: Field {
                    column: "data".into(),
                    path: vec!["a".into(), "b".into()],
                    as_text: true
                },
                cast: None
            }
        );
        assert!(
            matches!(&items[3], SelectItem::Field { cast: Some(Cast::Text), alias: Some(a), .. } if a == "n")
        );
        assert!(q("select=id::evil").is_err());
        assert!(q("select=...a:rel(a)").is_err());
        assert!(q("select=...rel").is_err());
        assert!(q("select=x:qty.median()").is_err());
        assert!(q("select=qty.sum()::evil").is_err());
    }

    #[test]
    fn aggregates_and_spreads() {
        use crate::query::AggFunc;
        let items = q("select=cat,count(),total:qty.sum()::int,price.avg(),...rel!inner(a,b)")
            .unwrap()
            .select
            .unwrap();
        assert!(matches!(
            &items[1],
            SelectItem::Aggregate {
                alias: None,
                func: AggFunc::Count,
                field: None,
                cast: None
            }
        ));
        assert!(matches!(
            &items[2],
            SelectItem::Aggregate { alias: Some(a), func: AggFunc::Sum, field: Some(f), cast: Some(Cast::Int) }
                if a == "total" && f.column == "qty"
        ));
        assert!(matches!(
            &items[3],
            SelectItem::Aggregate {
                func: AggFunc::Avg,
                ..
            }
        ));
        assert!(matches!(
            &items[4],
            SelectItem::Embed { spread: true, inner: true, relation, .. } if relation == "rel"
        ));
        // An embed with no columns is not an aggregate.
        assert!(matches!(
            &q("select=notes()").unwrap().select.unwrap()[0],
            SelectItem::Embed { spread: false, .. }
        ));
    }

    #[test]
    fn any_and_all_expand() {
        let p = q("name=like(any).{a*,\"b,c\"}&qty=gt(all).{1,2}").unwrap();
        assert!(matches!(&p.filters[0], Expr::Or(v) if v.len() == 2));
        assert!(matches!(&p.filters[0], Expr::Or(v) if v[1] == Expr::Cond {
            field: field("name"), op: RawOp::Like, operand: Operand::Scalar("b,c".into())
        }));
        assert!(matches!(&p.filters[1], Expr::And(v) if v.len() == 2));
        assert!(q("qty=in(any).{1}").is_err());
        assert!(q("qty=eq(any).1").is_err());
        assert!(matches!(
            q("not.or=(a.eq(any).{1,2})").unwrap().filters[0],
            Expr::Not(_)
        ));
    }

    #[test]
    fn embedded_modifiers() {
        let p = q("select=*,a(*,b(*))&a.x=eq.1&a.order=x.desc&a.limit=2&a.b.or=(y.eq.1,y.eq.2)&a.offset=1")
            .unwrap();
        let a = &p.embedded[&vec!["a".to_owned()]];
        assert_eq!(a.filters.len(), 1);
        assert_eq!(a.limit, Some(2));
        assert_eq!(a.offset, Some(1));
        assert!(a.order[0].desc);
        let ab = &p.embedded[&vec!["a".to_owned(), "b".to_owned()]];
        assert!(matches!(&ab.filters[0], Expr::Or(v) if v.len() == 2));
        assert_eq!(p.condition_count(), 3);
    }

    #[test]
    fn embeds() {
        let p = q("select=id,o:owner!todos_user_id_fkey!inner(name,pets(*)),notes()").unwrap();
        let items = p.select.unwrap();
        let SelectItem::Embed {
            alias,
            relation,
            hint,
            inner,
            items: sub,
            ..
        } = &items[1]
        else {
            panic!("embed expected")
        };
        assert_eq!(alias.as_deref(), Some("o"));
        assert_eq!(relation, "owner");
        assert_eq!(hint.as_deref(), Some("todos_user_id_fkey"));
        assert!(*inner);
        assert!(matches!(&sub[1], SelectItem::Embed { relation, .. } if relation == "pets"));
        assert!(
            matches!(&items[2], SelectItem::Embed { items, .. } if items == &vec![SelectItem::Star])
        );
        let deep = format!("select={}x{}", "a(".repeat(7), ")".repeat(7));
        assert!(matches!(q(&deep), Err(RestError::TooComplex(_))));
        assert!(q("select=a(b").is_err());
    }

    #[test]
    fn full_text_search() {
        use crate::query::FtsKind;
        let p = q("body=fts(english).fat%20%26%20cat&t=wfts.%22a+b%22&or=(body.plfts.x,body.phfts(simple).y)")
            .unwrap();
        assert_eq!(
            p.filters[0],
            Expr::Cond {
                field: field("body"),
                op: RawOp::Fts(FtsKind::Plain),
                operand: Operand::Fts {
                    language: Some("english".into()),
                    query: "fat & cat".into()
                }
            }
        );
        assert!(matches!(
            &p.filters[1],
            Expr::Cond {
                op: RawOp::Fts(FtsKind::Websearch),
                operand: Operand::Fts { language: None, .. },
                ..
            }
        ));
        assert!(matches!(&p.filters[2], Expr::Or(v) if v.len() == 2));
        assert!(matches!(
            q("body=not.fts.x").unwrap().filters[0],
            Expr::Not(_)
        ));
    }

    #[test]
    fn columns_are_unquoted() {
        let p = q("columns=%22a%22,%22b%22&on_conflict=id").unwrap();
        assert_eq!(p.columns.unwrap(), vec!["a", "b"]);
        assert_eq!(p.on_conflict.unwrap(), vec!["id"]);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            "id=eq",
            "id=foo.1",
            "id=in.1,2",
            "or=a.eq.1",
            "or=(a.eq.1",
            "limit=-1",
            "order=id.sideways",
            "id=is.maybe",
            "a..b=eq.1",
            "a.order=x.up",
            "x->=eq.1",
            "id=fts(en glish).word",
            "id=fts(english.word",
            "id=wfts().word",
        ] {
            assert!(q(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn limits_hold() {
        let limits = Limits::default();
        let many = (0..=limits.max_conditions)
            .map(|i| format!("c{i}=eq.1"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(matches!(
            parse_query(
                &many,
                &Limits {
                    max_query_len: usize::MAX,
                    ..limits
                }
            ),
            Err(RestError::TooComplex(_))
        ));
        let deep = format!("or=({}a.eq.1{})", "or(".repeat(20), ")".repeat(20));
        assert!(matches!(q(&deep), Err(RestError::TooComplex(_))));
        let long = format!("a=eq.{}", "x".repeat(limits.max_value_len + 1));
        assert!(matches!(q(&long), Err(RestError::TooComplex(_))));
        let order = (0..9)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            q(&format!("order={order}")),
            Err(RestError::TooComplex(_))
        ));
    }
}
