//! Feeds arbitrary bytes to the query-string parser and planner, on both SQL
//! dialects: nothing may panic, and no client text may reach the SQL string
//! (every word of it is a keyword, a schema name or an alias of ours, every
//! string literal one our templates write; values travel as parameters).
#![no_main]

use goforward_core::filter::SqlBackend;
use goforward_core::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use goforward_rest::plan::{Target, read};
use goforward_rest::query::{Limits, parse_query};
use goforward_rest::schema::{Column, ColumnKind, Table};
use libfuzzer_sys::fuzz_target;

fn table() -> Table {
    let col = |name: &str, kind, pg_cast, data_type: &str| Column {
        name: name.into(),
        kind,
        data_type: data_type.into(),
        pg_cast,
        nullable: true,
        has_default: false,
        primary_key: name == "id",
    };
    Table {
        name: "items".into(),
        is_view: false,
        columns: vec![
            col("id", ColumnKind::Int, Some("int8"), "int8"),
            col("name", ColumnKind::Text, Some("text"), "text"),
            col("qty", ColumnKind::Int, Some("int4"), "int4"),
            col("active", ColumnKind::Bool, Some("bool"), "bool"),
            col("data", ColumnKind::Json, Some("jsonb"), "jsonb"),
            col(
                "at",
                ColumnKind::Timestamptz,
                Some("timestamptz"),
                "timestamptz",
            ),
            col("tags", ColumnKind::Other, None, "_text"),
        ],
        primary_key: vec!["id".into()],
        unique: vec![],
        foreign_keys: vec![],
    }
}

const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "LIKE",
    "ILIKE",
    "ESCAPE",
    "CAST",
    "AS",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "COUNT",
    "DISTINCT",
    "GROUP",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "lower",
    "jsonb",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "json_extract",
    "jsonb_array_elements_text",
    "jsonb_typeof",
    "json_each",
    "json_type",
    "gf_ov",
    "v",
    "value",
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
    "regconfig",
    "text",
    "bigint",
    "integer",
    "real",
    "double",
    "precision",
    "boolean",
    "int8",
    "int4",
    "bool",
    "timestamptz",
    "items",
    "id",
    "name",
    "qty",
    "active",
    "data",
    "at",
    "tags",
];

const LITERALS: &[&str] = &["\\", "array", "[]"];

fn check(sql: &str) {
    let mut word = String::new();
    let mut in_str = false;
    let mut literal = String::new();
    let ok = |w: &str| {
        w.is_empty()
            || w.chars().all(|c| c.is_ascii_digit())
            || WORDS.contains(&w)
            || (w.starts_with('c') && w[1..].chars().all(|c| c.is_ascii_digit()))
            || (w.starts_with('$') && w[1..].chars().all(|c| c.is_ascii_digit()))
    };
    for ch in sql.chars() {
        if ch == '\'' {
            if in_str {
                assert!(
                    LITERALS.contains(&literal.as_str()),
                    "literal {literal:?} in {sql}"
                );
                literal.clear();
            }
            in_str = !in_str;
            continue;
        }
        if in_str {
            literal.push(ch);
            continue;
        }
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            assert!(ok(&word), "word {word:?} in {sql}");
            word.clear();
        }
    }
    assert!(ok(&word), "word {word:?} in {sql}");
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(q) = parse_query(&raw, &Limits::default()) else {
        return;
    };
    let t = table();
    for backend in [SqlBackend::Sqlite, SqlBackend::Postgres] {
        let target = Target {
            table: &t,
            visible: &t,
            backend,
        };
        let Ok(cols) = target.select_list(q.select.as_deref()) else {
            continue;
        };
        let Ok(cond) = read::where_cond(&target, &q.filters, None) else {
            continue;
        };
        let Ok(stmt) = read::select(
            &target,
            &cols,
            cond,
            &q.order,
            q.limit,
            q.offset.unwrap_or(0),
        ) else {
            continue;
        };
        let sql = match backend {
            SqlBackend::Sqlite => stmt.build(SqliteQueryBuilder).0,
            SqlBackend::Postgres => stmt.build(PostgresQueryBuilder).0,
        };
        check(&sql);
    }
});
