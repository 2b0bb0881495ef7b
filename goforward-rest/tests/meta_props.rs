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
        },
    );
    catalog
}
