//! Property tests of the query-string parser and planner: arbitrary input
//! never panics, and every produced statement carries values only as bound
//! parameters (no client text in the SQL string).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward_core::filter::SqlBackend;
use goforward_core::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use goforward_rest::plan::{Target, read};
use goforward_rest::query::{Limits, parse_query};
use goforward_rest::schema::{Column, ColumnKind, Table};
use proptest::prelude::*;

fn table() -> Table {
    let col = |name: &str, kind, pg_cast| Column {
        name: name.into(),
        kind,
        data_type: String::new(),
        pg_cast,
        nullable: true,
        has_default: false,
        primary_key: name == "id",
    };
    Table {
        name: "items".into(),
        is_view: false,
        columns: vec![
            col("id", ColumnKind::Int, Some("int8")),
            col("name", ColumnKind::Text, Some("text")),
            col("qty", ColumnKind::Int, Some("int4")),
            col("active", ColumnKind::Bool, Some("bool")),
            col("data", ColumnKind::Json, Some("jsonb")),
            col("at", ColumnKind::Timestamptz, Some("timestamptz")),
            col("body", ColumnKind::Text, Some("text")),
            Column {
                data_type: "_text".into(),
                ..col("tags", ColumnKind::Other, None)
            },
        ],
        primary_key: vec!["id".into()],
        unique: vec![],
        foreign_keys: vec![],
    }
}

const ALLOWED_WORDS: &[&str] = &[
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
    "lower",
    "jsonb",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "json_extract",
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
    "c0",
    "c1",
    "c2",
    "c3",
    "c4",
    "c5",
    "c6",
    "c7",
    "c8",
    "c9",
    "ILIKE",
    // ov, fts, aggregates
    "EXISTS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
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
    "body",
    "tags",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "GROUP",
];

/// String literals our own templates write (never client text).
const ALLOWED_LITERALS: &[&str] = &["\\", "array", "[]"];

/// Every identifier-like word of the SQL is ours (schema names, keywords, aliases).
fn only_known_words(sql: &str) {
    let mut word = String::new();
    let check = |w: &str| {
        if w.is_empty() || w.chars().all(|c| c.is_ascii_digit()) {
            return;
        }
        let alias = w.starts_with('c') && w[1..].chars().all(|c| c.is_ascii_digit());
        assert!(
            ALLOWED_WORDS.contains(&w) || alias,
            "unexpected word {w:?} in {sql}"
        );
    };
    let mut in_str = false;
    for ch in sql.chars() {
        if ch == '\'' {
            in_str = !in_str;
            continue;
        }
        if in_str {
            continue;
        }
        if ch.is_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            check(&word);
            word.clear();
        }
    }
    check(&word);
}

fn plan(raw: &str) {
    let Ok(q) = parse_query(raw, &Limits::default()) else {
        return;
    };
    let t = table();
    for backend in [SqlBackend::Sqlite, SqlBackend::Postgres] {
        let target = Target {
            table: &t,
            visible: &t,
            backend,
            alias: None,
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
        let (sql, _values) = match backend {
            SqlBackend::Sqlite => stmt.build(SqliteQueryBuilder),
            SqlBackend::Postgres => stmt.build(PostgresQueryBuilder),
        };
        only_known_words(&sql);
        // String literals in the SQL are ours only (the LIKE escape
        // character, the JSON type names of `ov`).
        for lit in sql.split('\'').skip(1).step_by(2) {
            assert!(ALLOWED_LITERALS.contains(&lit), "literal {lit:?} in {sql}");
        }
    }
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("select=".to_owned()),
        Just("order=".to_owned()),
        Just("or=(".to_owned()),
        Just("and(".to_owned()),
        Just("not.".to_owned()),
        Just("name=eq.".to_owned()),
        Just("qty=in.(".to_owned()),
        Just("data->>".to_owned()),
        Just("::text".to_owned()),
        Just("id".to_owned()),
        Just("name".to_owned()),
        Just("like.".to_owned()),
        Just("is.null".to_owned()),
        Just("body=fts(english).".to_owned()),
        Just("body=wfts.".to_owned()),
        Just("fts(".to_owned()),
        Just("data=ov.{".to_owned()),
        Just("tags=ov.{".to_owned()),
        Just("}".to_owned()),
        Just("count()".to_owned()),
        Just("qty.sum()".to_owned()),
        Just("name.max()".to_owned()),
        Just("...".to_owned()),
        Just(",".to_owned()),
        Just(")".to_owned()),
        Just("&".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just(";".to_owned()),
        Just("--".to_owned()),
        Just("%22".to_owned()),
        Just("%27".to_owned()),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(raw in "\\PC{0,200}") {
        plan(&raw);
    }

    #[test]
    fn grammar_fragments_never_leak(parts in prop::collection::vec(fragment(), 0..16)) {
        plan(&parts.concat());
    }
}

#[test]
fn values_are_bound_not_inlined() {
    for raw in [
        "name=eq.'; DROP TABLE items; --",
        "or=(name.eq.x' OR '1'='1,qty.eq.1)",
        "name=like.*'*&select=a:name,data->>evil_key",
        "qty=in.(1,2)&order=name.desc&limit=3",
        "name=match.a'b",
        "body=fts(english).'; DROP TABLE items; --",
        "body=not.phfts.a'b&tags=ov.{x',\"y\"}&data=ov.{'}",
        "select=active,n:count(),qty.sum(),name.min()&order=active",
    ] {
        plan(raw);
    }
}

#[test]
fn search_overlap_and_aggregates_bind_their_values() {
    let t = table();
    let target = Target {
        table: &t,
        visible: &t,
        backend: SqlBackend::Postgres,
        alias: None,
    };
    let evil = "x'; DROP TABLE items; --";
    let raw = format!(
        "select=active,count(),qty.sum()&body=fts(english).{e}&tags=ov.{{{e}}}&data=ov.{{{e}}}",
        e = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
    );
    let q = parse_query(&raw, &Limits::default()).unwrap();
    let cols = target.select_list(q.select.as_deref()).unwrap();
    let cond = read::where_cond(&target, &q.filters, None).unwrap();
    let stmt = read::select(&target, &cols, cond, &q.order, None, 0).unwrap();
    let (sql, values) = stmt.build(PostgresQueryBuilder);
    only_known_words(&sql);
    for needle in [
        "to_tsvector",
        "&&",
        "jsonb_array_elements_text",
        "SUM",
        "GROUP BY",
    ] {
        assert!(sql.contains(needle), "{needle} in {sql}");
    }
    assert!(!sql.contains("DROP"), "{sql}");
    let bound = format!("{values:?}");
    assert!(bound.contains("DROP TABLE"), "{bound}");
    assert!(bound.contains("english"), "{bound}");
}
