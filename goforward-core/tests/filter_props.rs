//! Property test: a random `Filter` selects the same rows in SQL (SQLite and
//! PostgreSQL) as its in-memory evaluation does on the same random rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward_core::filter::{Filter, Op, SqlBackend};
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use goforward_core::sea_query::{Alias, PostgresQueryBuilder, Query, SqliteQueryBuilder};
use goforward_core::testing;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};

fn int_value() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Value::Null), 6 => (-5i64..5).prop_map(Value::from)]
}
fn text_value() -> impl Strategy<Value = Value> {
    prop_oneof![1 => Just(Value::Null), 6 => "[abAB_%]{0,4}".prop_map(Value::from)]
}
fn bool_value() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), Just(json!(true)), Just(json!(false))]
}

fn row() -> impl Strategy<Value = Value> {
    (int_value(), text_value(), bool_value()).prop_map(|(i, t, b)| json!({"i": i, "t": t, "b": b}))
}

fn leaf() -> impl Strategy<Value = Filter> {
    let cmp_op = prop_oneof![
        Just(Op::Eq),
        Just(Op::Neq),
        Just(Op::Gt),
        Just(Op::Gte),
        Just(Op::Lt),
        Just(Op::Lte)
    ];
    prop_oneof![
        (cmp_op.clone(), int_value()).prop_map(|(op, v)| Filter::cmp("i", op, v)),
        (cmp_op, text_value()).prop_map(|(op, v)| Filter::cmp("t", op, v)),
        (
            prop_oneof![Just(Op::Like), Just(Op::ILike)],
            "[abAB_%]{0,4}"
        )
            .prop_map(|(op, p)| Filter::cmp("t", op, p)),
        prop::collection::vec(int_value(), 0..4).prop_map(|v| Filter::cmp(
            "i",
            Op::In,
            Value::Array(v)
        )),
        prop::collection::vec(text_value(), 0..4).prop_map(|v| Filter::cmp(
            "t",
            Op::In,
            Value::Array(v)
        )),
        prop_oneof![
            Just(Value::Null),
            Just(json!(true)),
            Just(json!(false)),
            Just(json!("unknown"))
        ]
        .prop_map(|v| Filter::cmp("b", Op::Is, v)),
        Just(Filter::cmp("i", Op::Is, Value::Null)),
        int_value().prop_map(|v| Filter::cmp("i", Op::IsDistinct, v)),
        bool_value().prop_map(|v| Filter::cmp("b", Op::Eq, v)),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|f| Filter::And { filters: f }),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|f| Filter::Or { filters: f }),
            inner.prop_map(|f| Filter::Not {
                filter: Box::new(f)
            }),
        ]
    })
}

async fn setup(db: &DatabaseConnection, table: &str, backend: SqlBackend, rows: &[Value]) {
    let text = if backend == SqlBackend::Postgres {
        "TEXT COLLATE \"C\""
    } else {
        "TEXT"
    };
    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, i BIGINT, t {text}, b BOOLEAN)"
    ))
    .await
    .unwrap();
    for (id, row) in rows.iter().enumerate() {
        let q = Query::insert()
            .into_table(Alias::new(table))
            .columns([
                Alias::new("id"),
                Alias::new("i"),
                Alias::new("t"),
                Alias::new("b"),
            ])
            .values_panic([
                (id as i64).into(),
                row["i"].as_i64().into(),
                row["t"].as_str().map(str::to_owned).into(),
                row["b"].as_bool().into(),
            ])
            .to_owned();
        db.execute(&q).await.unwrap();
    }
}

async fn sql_ids(
    db: &DatabaseConnection,
    table: &str,
    backend: SqlBackend,
    f: &Filter,
) -> Vec<i64> {
    let q = Query::select()
        .column(Alias::new("id"))
        .from(Alias::new(table))
        .cond_where(f.to_condition(backend).unwrap())
        .order_by(Alias::new("id"), goforward_core::sea_query::Order::Asc)
        .to_owned();
    let (sql, values) = match backend {
        SqlBackend::Sqlite => q.build(SqliteQueryBuilder),
        SqlBackend::Postgres => q.build(PostgresQueryBuilder),
    };
    let stmt = Statement::from_sql_and_values(db.get_database_backend(), sql.clone(), values);
    let rows = db
        .query_all_raw(stmt)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|r| r.try_get::<i64>("", "id").unwrap())
        .collect()
}

fn check(db: DatabaseConnection, backend: SqlBackend, cases: u32) {
    let rt = tokio::runtime::Handle::current();
    let table = format!("filter_props_{}", uuid_like());
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        ..RunnerConfig::default()
    });
    let result = runner.run(
        &(
            prop::collection::vec(row(), 1..16),
            prop::collection::vec(filter(), 1..8),
        ),
        |(rows, filters)| {
            tokio::task::block_in_place(|| {
                rt.block_on(async {
                    setup(&db, &table, backend, &rows).await;
                    for f in &filters {
                        let expected: Vec<i64> = rows
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| f.matches(r))
                            .map(|(id, _)| id as i64)
                            .collect();
                        let got = sql_ids(&db, &table, backend, f).await;
                        prop_assert_eq!(&got, &expected, "filter {:?} on rows {:?}", f, rows);
                    }
                    Ok(())
                })
            })
        },
    );
    tokio::task::block_in_place(|| {
        rt.block_on(async {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await
                .unwrap()
        })
    });
    result.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_memory_agree_on_sqlite() {
    let db = goforward_core::db::connect_url("sqlite::memory:")
        .await
        .unwrap();
    check(db, SqlBackend::Sqlite, 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_memory_agree_on_postgres() {
    let Some(admin) = testing::postgres_url_or_skip("filter properties on postgres") else {
        return;
    };
    let (url, name) = testing::create_postgres_database(&admin).await.unwrap();
    let db = goforward_core::db::connect_url(&url).await.unwrap();
    check(db.clone(), SqlBackend::Postgres, 96);
    db.close().await.unwrap();
    testing::drop_postgres_database(&admin, &name)
        .await
        .unwrap();
}
