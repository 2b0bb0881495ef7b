//! Property tests of the meta API's SQL building (checklist item 15): for
//! arbitrary names and column specs, planning never panics (sea-query
//! panics on some option combinations: they must be unreachable), and a
//! name is either refused or appears in the SQL as a quoted identifier.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward_core::sea_orm::DbBackend;
use goforward_rest::meta::{
    ddl::{self, AlterColumn, CreateTable},
    error::MetaError,
    introspect::Catalog,
};
use proptest::prelude::*;
use serde_json::json;

const TYPES: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "real",
    "double",
    "numeric",
    "boolean",
    "text",
    "uuid",
    "json",
    "jsonb",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "bytea",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,70}",
        "\\PC{0,40}",
        Just("select".to_owned()),
        Just("a\"b".to_owned()),
        Just("x; DROP TABLE y".to_owned()),
        Just("名前".to_owned()),
    ]
}

fn default_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(|i| json!(i)),
        any::<bool>().prop_map(|b| json!(b)),
        "\\PC{0,20}".prop_map(|s| json!(s)),
        Just(json!({"function": "now"})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn create_table_is_safe(
        table in name(),
        cols in proptest::collection::vec(
            (name(), 0..TYPES.len(), any::<bool>(), any::<bool>(), proptest::option::of(default_value())),
            1..5,
        ),
        pk in any::<bool>(),
        postgres in any::<bool>(),
    ) {
        let backend = if postgres { DbBackend::Postgres } else { DbBackend::Sqlite };
        let columns: Vec<_> = cols.iter().enumerate().map(|(i, (n, t, nullable, unique, default))| {
            let mut c = json!({"name": n, "type": TYPES[*t], "nullable": nullable, "unique": unique});
            if let Some(d) = default { c["default"] = d.clone(); }
            if pk && i == 0 { c["primary_key"] = json!(true); }
            c
        }).collect();
        let req: CreateTable = serde_json::from_value(json!({"name": table, "columns": columns})).unwrap();
        match ddl::create_table(&Catalog::default(), backend, &req) {
            Ok(change) => {
                let sql = &change.up[0];
                // Every accepted identifier has no quote, so it appears only quoted.
                prop_assert!(!table.contains('"') && !table.contains(';'));
                let head = format!("CREATE TABLE \"{table}\" (");
                prop_assert!(sql.starts_with(&head), "{}", sql);
                for (n, ..) in &cols {
                    prop_assert!(!n.contains('"'));
                    let quoted = format!("\"{n}\"");
                    prop_assert!(sql.contains(&quoted), "{} not in {}", quoted, sql);
                }
                prop_assert_eq!(change.down.unwrap(), vec![format!("DROP TABLE \"{table}\"")]);
            }
            Err(MetaError::InvalidIdentifier { .. } | MetaError::InvalidRequest(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn alter_plans_never_panic(
        ty in proptest::option::of(0..TYPES.len()),
        nullable in proptest::option::of(any::<bool>()),
        unique in proptest::option::of(any::<bool>()),
        rename in proptest::option::of(name()),
        default in proptest::option::of(default_value()),
        postgres in any::<bool>(),
    ) {
        let backend = if postgres { DbBackend::Postgres } else { DbBackend::Sqlite };
        let req: CreateTable = serde_json::from_value(json!({"name": "t", "columns": [
            {"name": "id", "type": "integer", "primary_key": true},
            {"name": "c", "type": "text"},
        ]})).unwrap();
        let catalog = catalog_with(backend, &req);
        let mut alter = json!({});
        if let Some(t) = ty { alter["type"] = json!(TYPES[t]); }
        if let Some(n) = nullable { alter["nullable"] = json!(n); }
        if let Some(u) = unique { alter["unique"] = json!(u); }
        if let Some(r) = &rename { alter["name"] = json!(r); }
        if let Some(d) = &default { alter["default"] = d.clone(); }
        let req: AlterColumn = serde_json::from_value(alter).unwrap();
        let _ = ddl::alter_column(&catalog, backend, "t", "c", &req);
        let _ = ddl::drop_column(&catalog, backend, "t", "c");
        let _ = ddl::copy_structure(&catalog, backend, "t", rename.as_deref().unwrap_or("u"));
    }
}

/// A catalog holding the table `req` describes (as introspection would).
fn catalog_with(backend: DbBackend, req: &CreateTable) -> Catalog {
    use goforward_rest::meta::introspect::{ColumnInfo, TableInfo};
    let mut catalog = Catalog::default();
    let columns: Vec<ColumnInfo> = req
        .columns
        .iter()
        .map(|c| ColumnInfo {
            name: c.name.clone(),
            data_type: c.data_type.declared(backend),
            nullable: c.nullable && !c.primary_key,
            default: None,
            identity: false,
            primary_key: c.primary_key,
            comment: None,
        })
        .collect();
    catalog.tables.insert(
        req.name.clone(),
        TableInfo {
            name: req.name.clone(),
            kind: "table",
            primary_key: columns
                .iter()
                .filter(|c| c.primary_key)
                .map(|c| c.name.clone())
                .collect(),
            columns,
            foreign_keys: Vec::new(),
            unique: Vec::new(),
            checks: Vec::new(),
            indexes: Vec::new(),
            row_estimate: None,
            size_bytes: None,
            comment: None,
            definition: None,
            triggers: Vec::new(),
            autoincrement: false,
            checks_known: true,
        },
    );
    catalog
}

/// Pieces of check expressions, benign and hostile, glued at random.
fn expression() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("price".to_owned()),
        Just("\"qty\"".to_owned()),
        Just("other".to_owned()),
        Just("t.price".to_owned()),
        Just(" > ".to_owned()),
        Just(" = ".to_owned()),
        Just(" AND ".to_owned()),
        Just(" OR ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("0".to_owned()),
        Just("'it''s'".to_owned()),
        Just(";".to_owned()),
        Just("--".to_owned()),
        Just("/*".to_owned()),
        Just("SELECT 1".to_owned()),
        Just("length(".to_owned()),
        Just("pg_sleep(".to_owned()),
        Just("::integer".to_owned()),
        Just(" IN (".to_owned()),
        Just(", ".to_owned()),
        "\\PC{0,6}",
    ];
    proptest::collection::vec(piece, 1..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A check expression is refused with a 400, or accepted as one
    /// expression that reads only the table's columns, holds no `;` or
    /// comment outside string literals, and renders to itself again.
    #[test]
    fn check_expressions_are_vetted(text in expression(), postgres in any::<bool>()) {
        use goforward_rest::meta::expr::check_expression;
        let backend = if postgres { DbBackend::Postgres } else { DbBackend::Sqlite };
        let columns = ["price".to_owned(), "qty".to_owned()];
        match check_expression("expression", &text, backend, &columns) {
            Ok(vetted) => {
                prop_assert!(vetted.columns.iter().all(|c| columns.contains(c)));
                let outside_strings: String = vetted
                    .sql
                    .split('\'')
                    .step_by(2)
                    .collect();
                prop_assert!(!outside_strings.contains(';'), "{}", vetted.sql);
                prop_assert!(!outside_strings.contains("--"), "{}", vetted.sql);
                prop_assert!(!outside_strings.contains("/*"), "{}", vetted.sql);
                let again = check_expression("expression", &vetted.sql, backend, &columns)
                    .expect("the rendering is accepted again");
                prop_assert_eq!(again, vetted);
            }
            Err(e) => prop_assert_eq!(e.code(), "meta.invalid_request"),
        }
    }
}
