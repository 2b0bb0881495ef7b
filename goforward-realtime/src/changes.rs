//! `postgres_changes`: join bindings, their filter grammar, matching and the event payload.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use goforward_core::access::Decision;
use goforward_core::bus::{ChangeKind, RecordChanged};
use goforward_core::filter::{Comparison, Filter, Op};
use serde_json::{Map, Value, json};

/// One `postgres_changes` entry of a join, checked and ready to match.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The id echoed in the join reply and sent in `ids`.
    pub id: u32,
    /// `None` for `*`.
    pub event: Option<ChangeKind>,
    /// Schema (`public`; SQLite's `main` is treated as `public`).
    pub schema: String,
    /// Table, or `None` for every table of the schema.
    pub table: Option<String>,
    /// The subscriber's own filter.
    pub filter: Option<Filter>,
    /// What access control allows this subscriber to read (cached at join and token refresh).
    pub access: Decision,
}

/// A `postgres_changes` entry as the client sent it.
#[derive(Debug, Clone)]
pub(crate) struct RawBinding {
    /// The object exactly as received (echoed in the join reply).
    pub echo: Map<String, Value>,
    pub event: Option<ChangeKind>,
    pub schema: String,
    pub table: Option<String>,
    pub filter: Option<Filter>,
    pub id: u32,
}

/// Normalizes SQLite's `main` schema to `public`.
pub(crate) fn normalize_schema(schema: &str) -> &str {
    if schema == "main" { "public" } else { schema }
}

/// A plain SQL identifier: ASCII letters, digits and `_`, not starting with a digit, at most 63 bytes.
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Parses one `postgres_changes` join entry.
///
/// # Errors
/// A message for the client when a field is missing or malformed.
pub(crate) fn parse_binding(value: &Value) -> Result<RawBinding, String> {
    let Some(obj) = value.as_object() else {
        return Err("postgres_changes entries must be objects".into());
    };
    let text = |key: &str| obj.get(key).and_then(Value::as_str);
    let event = match text("event").unwrap_or("*").to_ascii_uppercase().as_str() {
        "*" => None,
        "INSERT" => Some(ChangeKind::Insert),
        "UPDATE" => Some(ChangeKind::Update),
        "DELETE" => Some(ChangeKind::Delete),
        other => return Err(format!("unknown postgres_changes event `{other}`")),
    };
    let schema = text("schema").unwrap_or("public");
    if !is_identifier(schema) {
        return Err(format!("invalid schema `{schema}`"));
    }
    let table = match text("table") {
        None | Some("*") => None,
        Some(t) if is_identifier(t) => Some(t.to_owned()),
        Some(t) => return Err(format!("invalid table `{t}`")),
    };
    let filter = match text("filter") {
        None | Some("") => None,
        Some(f) => Some(parse_filter(f)?),
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        text("event").unwrap_or("*"),
        schema,
        text("table"),
        text("filter"),
    )
        .hash(&mut hasher);
    // Ids are integers that JavaScript represents exactly.
    let id = (hasher.finish() & 0x7fff_ffff) as u32;
    Ok(RawBinding {
        echo: obj.clone(),
        event,
        schema: normalize_schema(schema).to_owned(),
        table,
        filter,
        id,
    })
}

/// Parses a realtime filter `col=op.value` (`eq, neq, lt, lte, gt, gte, in.(a,b), like, ilike, is`,
/// optionally `not.` first) into a core [`Filter`]. Values stay strings; they are
/// compared with the row's type at match time.
///
/// # Errors
/// A message naming what is wrong.
pub(crate) fn parse_filter(text: &str) -> Result<Filter, String> {
    let bad = || format!("Error parsing `filter` params: {text}");
    let (column, rest) = text.split_once('=').ok_or_else(bad)?;
    if !is_identifier(column) {
        return Err(bad());
    }
    let (negate, rest) = match rest.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let (op, value) = rest.split_once('.').ok_or_else(bad)?;
    let cmp = |op: Op, value: Value| Filter::cmp(column, op, value);
    let filter = match op {
        "eq" => cmp(Op::Eq, value.into()),
        "neq" => cmp(Op::Neq, value.into()),
        "lt" => cmp(Op::Lt, value.into()),
        "lte" => cmp(Op::Lte, value.into()),
        "gt" => cmp(Op::Gt, value.into()),
        "gte" => cmp(Op::Gte, value.into()),
        "like" => cmp(Op::Like, value.replace('*', "%").into()),
        "ilike" => cmp(Op::ILike, value.replace('*', "%").into()),
        "is" => match value {
            "null" => cmp(Op::Is, Value::Null),
            "true" => cmp(Op::Is, Value::Bool(true)),
            "false" => cmp(Op::Is, Value::Bool(false)),
            "unknown" => cmp(Op::Is, "unknown".into()),
            _ => return Err(bad()),
        },
        "in" => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(bad)?;
            let items: Vec<Value> = inner
                .split(',')
                .map(|s| Value::from(s.trim().trim_matches('"')))
                .collect();
            if inner.trim().is_empty() || items.len() > 100 {
                return Err(bad());
            }
            cmp(Op::In, Value::Array(items))
        }
        _ => return Err(bad()),
    };
    Ok(if negate { Filter::not(filter) } else { filter })
}

/// Converts a string operand to the JSON type of the row's value, so `id=eq.1`
/// matches the number `1`.
fn coerce(operand: &Value, actual: &Value) -> Value {
    let Value::String(s) = operand else {
        return operand.clone();
    };
    match actual {
        Value::Number(_) => s
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| s.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| operand.clone()),
        Value::Bool(_) => match s.as_str() {
            "true" | "t" => Value::Bool(true),
            "false" | "f" => Value::Bool(false),
            _ => operand.clone(),
        },
        _ => operand.clone(),
    }
}

fn typed<'a>(filter: &'a Filter, row: &Value) -> Cow<'a, Filter> {
    match filter {
        Filter::Cmp(c) if c.op != Op::Is && c.json_path.is_empty() => {
            let actual = row.get(&c.column).unwrap_or(&Value::Null);
            let value = match &c.value {
                Value::Array(items) => {
                    Value::Array(items.iter().map(|i| coerce(i, actual)).collect())
                }
                v => coerce(v, actual),
            };
            Cow::Owned(Filter::Cmp(Comparison {
                column: c.column.clone(),
                json_path: Vec::new(),
                op: c.op,
                value,
            }))
        }
        Filter::Not { filter } => Cow::Owned(Filter::not(typed(filter, row).into_owned())),
        other => Cow::Borrowed(other),
    }
}

impl Binding {
    /// Whether `change` (already known to be on a table this binding may cover) is for this binding.
    #[cfg(test)]
    pub(crate) fn matches(&self, change: &RecordChanged, schema: &str) -> bool {
        self.matches_visible(change, &[], schema)
    }

    /// As [`Binding::matches`] for a table with `hidden` columns: the
    /// subscriber's filter sees the row without them (as if they did not
    /// exist, so no filter can probe their values); the row policy sees it whole.
    pub(crate) fn matches_visible(
        &self,
        change: &RecordChanged,
        hidden: &[String],
        schema: &str,
    ) -> bool {
        if self.schema != schema {
            return false;
        }
        if self.table.as_deref().is_some_and(|t| t != change.table) {
            return false;
        }
        if self.event.is_some_and(|e| e != change.kind) {
            return false;
        }
        let row = match change.kind {
            ChangeKind::Delete => change.old_record.as_ref(),
            _ => change.record.as_ref(),
        };
        let Some(row) = row else {
            return false;
        };
        if let Some(filter) = &self.filter {
            let visible = without_columns(row, hidden);
            if !typed(filter, &visible).matches(&visible) {
                return false;
            }
        }
        self.access.permits(row)
    }
}

/// `row` without the `hidden` columns (borrowed when there are none).
pub(crate) fn without_columns<'a>(row: &'a Value, hidden: &[String]) -> Cow<'a, Value> {
    match row {
        Value::Object(map) if hidden.iter().any(|h| map.contains_key(h)) => {
            let mut visible = map.clone();
            for column in hidden {
                visible.remove(column);
            }
            Cow::Owned(Value::Object(visible))
        }
        _ => Cow::Borrowed(row),
    }
}

/// `change` with the `hidden` columns removed from both rows.
pub(crate) fn visible_change<'a>(
    change: &'a RecordChanged,
    hidden: &[String],
) -> Cow<'a, RecordChanged> {
    if hidden.is_empty() {
        return Cow::Borrowed(change);
    }
    let strip = |row: &Option<Value>| {
        row.as_ref()
            .map(|r| without_columns(r, hidden).into_owned())
    };
    let mut visible = change.clone();
    visible.record = strip(&change.record);
    visible.old_record = strip(&change.old_record);
    Cow::Owned(visible)
}

fn column_type(value: &Value) -> &'static str {
    match value {
        Value::Number(n) if n.is_f64() => "float8",
        Value::Number(_) => "int8",
        Value::Bool(_) => "bool",
        Value::Object(_) | Value::Array(_) => "jsonb",
        _ => "text",
    }
}

/// The `data` object of a `postgres_changes` push, serialized once per change.
pub(crate) fn change_data(change: &RecordChanged, schema: &str) -> String {
    let empty = Value::Object(Map::new());
    let shape = change.record.as_ref().or(change.old_record.as_ref());
    let columns: Vec<Value> = shape
        .and_then(Value::as_object)
        .map(|row| {
            row.iter()
                .map(|(name, v)| json!({ "name": name, "type": column_type(v) }))
                .collect()
        })
        .unwrap_or_default();
    let mut data = json!({
        "schema": schema,
        "table": change.table,
        "commit_timestamp": change
            .commit_timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "type": change.kind.as_str(),
        "columns": columns,
        "errors": null,
    });
    if let Some(obj) = data.as_object_mut() {
        if change.kind != ChangeKind::Delete {
            obj.insert(
                "record".into(),
                change.record.clone().unwrap_or_else(|| empty.clone()),
            );
        }
        if change.kind != ChangeKind::Insert {
            obj.insert(
                "old_record".into(),
                change.old_record.clone().unwrap_or(empty),
            );
        }
    }
    data.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, record: Value) -> RecordChanged {
        RecordChanged {
            schema: "main".into(),
            table: "todos".into(),
            kind,
            record: Some(record),
            old_record: None,
            commit_timestamp: chrono::Utc::now(),
        }
    }

    #[test]
    fn filters_parse_and_match_with_row_types() {
        let raw = parse_binding(&json!({"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=in.(1,2)"})).unwrap();
        let b = Binding {
            id: raw.id,
            event: raw.event,
            schema: raw.schema,
            table: raw.table,
            filter: raw.filter,
            access: Decision::Allow,
        };
        assert!(b.matches(&change(ChangeKind::Insert, json!({"id": 2})), "public"));
        assert!(!b.matches(&change(ChangeKind::Insert, json!({"id": 3})), "public"));
        assert!(!b.matches(&change(ChangeKind::Update, json!({"id": 2})), "public"));
        let neq = parse_filter("done=not.eq.true").unwrap();
        assert!(typed(&neq, &json!({"done": false})).matches(&json!({"done": false})));
        for bad in [
            "",
            "id",
            "id=eq",
            "id=zz.1",
            "i d=eq.1",
            "id=in.1",
            "id=is.maybe",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_binding(&json!({"event": "TRUNCATE"})).is_err());
        assert!(parse_binding(&json!({"table": "a;drop"})).is_err());
    }

    #[test]
    fn hidden_columns_are_invisible_to_filters_and_payloads() {
        let hidden = vec!["secret".to_owned()];
        let b = Binding {
            id: 1,
            event: None,
            schema: "public".into(),
            table: Some("todos".into()),
            filter: Some(parse_filter("secret=eq.42").unwrap()),
            access: Decision::AllowWhere(Filter::eq("secret", 42)),
        };
        let row = change(ChangeKind::Insert, json!({"id": 1, "secret": 42}));
        // Without hiding, the filter would match; hidden, the column does not exist for it.
        assert!(b.matches(&row, "public"));
        assert!(!b.matches_visible(&row, &hidden, "public"));
        // The row policy still sees the whole row.
        let open = Binding { filter: None, ..b };
        assert!(open.matches_visible(&row, &hidden, "public"));
        let shown = visible_change(&row, &hidden);
        let data: Value = serde_json::from_str(&change_data(&shown, "public")).unwrap();
        assert_eq!(data["record"], json!({"id": 1}));
        assert!(!data["columns"].to_string().contains("secret"));
    }

    #[test]
    fn access_filter_is_applied() {
        let b = Binding {
            id: 1,
            event: None,
            schema: "public".into(),
            table: Some("todos".into()),
            filter: None,
            access: Decision::AllowWhere(Filter::eq("user_id", "a")),
        };
        assert!(b.matches(
            &change(ChangeKind::Insert, json!({"user_id": "a"})),
            "public"
        ));
        assert!(!b.matches(
            &change(ChangeKind::Insert, json!({"user_id": "b"})),
            "public"
        ));
        let data: Value = serde_json::from_str(&change_data(
            &change(ChangeKind::Insert, json!({"user_id": "a", "n": 1})),
            "public",
        ))
        .unwrap();
        assert_eq!(data["type"], "INSERT");
        assert_eq!(data["columns"][0]["name"], "n");
        assert!(data.get("old_record").is_none());
    }
}
