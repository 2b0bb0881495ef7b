//! Migrations are atomic on both backends (checklist item 34): a failing
//! statement mid-migration leaves schema and ledger unchanged; concurrent
//! runs apply each migration once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward::core::migrate::Migrator;
use goforward::sea_orm::{ConnectionTrait, DatabaseConnection};
use goforward::sea_orm_migration::prelude::*;
use goforward::testing;

struct Good;
impl MigrationName for Good {
    fn name(&self) -> &str {
        "m20260103_000001_create_alpha"
    }
}
#[async_trait::async_trait]
impl MigrationTrait for Good {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("alpha")
                .col(ColumnDef::new("id").integer().primary_key())
                .to_owned(),
        )
        .await
    }
    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("alpha").to_owned()).await
    }
}

/// Creates a table, then fails on a second statement.
struct FailsHalfway;
impl MigrationName for FailsHalfway {
    fn name(&self) -> &str {
        "m20260103_000002_create_beta_then_fail"
    }
}
#[async_trait::async_trait]
impl MigrationTrait for FailsHalfway {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("beta")
                .col(ColumnDef::new("id").integer().primary_key())
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared("INSERT INTO no_such_table VALUES (1)")
            .await
            .map(|_| ())
    }
}

fn migrator(with_failing: bool) -> Migrator {
    let mut m = Migrator::new();
    let mut list: Vec<Box<dyn MigrationTrait>> = vec![Box::new(Good)];
    if with_failing {
        list.push(Box::new(FailsHalfway));
    }
    m.add("atomic", list).unwrap();
    m
}

async fn exists(db: &DatabaseConnection, table: &str) -> bool {
    db.execute_unprepared(&format!("SELECT 1 FROM {table} LIMIT 1"))
        .await
        .is_ok()
}

async fn check_atomic(db: &DatabaseConnection) {
    let err = migrator(true).up(db).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("m20260103_000002_create_beta_then_fail"),
        "{err}"
    );
    assert!(exists(db, "alpha").await, "the good migration committed");
    assert!(
        !exists(db, "beta").await,
        "the failing migration's first statement rolled back"
    );
    let status = migrator(true).status(db).await.unwrap();
    assert_eq!(
        status.iter().filter(|s| s.applied_at.is_some()).count(),
        1,
        "{status:?}"
    );
    // Reverting the good one leaves a clean database.
    migrator(false).down(db, 5).await.unwrap();
    assert!(!exists(db, "alpha").await);
}

#[tokio::test]
async fn failing_migration_rolls_back_schema_and_ledger_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = goforward::core::db::connect_url(&url).await.unwrap();
    check_atomic(&db).await;
}

#[tokio::test]
async fn failing_migration_rolls_back_schema_and_ledger_on_postgres() {
    let Some(admin) = testing::postgres_url_or_skip("migrations on postgres") else {
        return;
    };
    let (url, name) = testing::create_postgres_database(&admin).await.unwrap();
    let db = goforward::core::db::connect_url(&url).await.unwrap();
    check_atomic(&db).await;
    db.close().await.unwrap();
    testing::drop_postgres_database(&admin, &name)
        .await
        .unwrap();
}

async fn concurrent(url: &str) {
    let (a, b) = tokio::join!(
        async {
            let db = goforward::core::db::connect_url(url).await.unwrap();
            migrator(false).up(&db).await.unwrap()
        },
        async {
            let db = goforward::core::db::connect_url(url).await.unwrap();
            migrator(false).up(&db).await.unwrap()
        }
    );
    assert_eq!(a.len() + b.len(), 1, "applied exactly once: {a:?} {b:?}");
}

#[tokio::test]
async fn concurrent_boots_apply_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    concurrent(&url).await;
}

#[tokio::test]
async fn concurrent_boots_apply_once_on_postgres() {
    let Some(admin) = testing::postgres_url_or_skip("concurrent migrations on postgres") else {
        return;
    };
    let (url, name) = testing::create_postgres_database(&admin).await.unwrap();
    concurrent(&url).await;
    testing::drop_postgres_database(&admin, &name)
        .await
        .unwrap();
}
