//! The realtime migrations go up, down and up again on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use goforward_core::Plugin;
use goforward_core::migrate::Migrator;
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use goforward_core::testing;
use goforward_realtime::Realtime;

async fn function_count(db: &DatabaseConnection) -> u64 {
    db.execute_unprepared("SELECT 1 FROM pg_proc WHERE proname = 'goforward_realtime_notify'")
        .await
        .unwrap()
        .rows_affected()
}

async fn cycle(db: &DatabaseConnection) {
    let pg = db.get_database_backend() == DbBackend::Postgres;
    let mut migrator = Migrator::new();
    migrator
        .add("realtime", Realtime::new().migrations())
        .unwrap();
    assert_eq!(migrator.up(db).await.unwrap().len(), 2);
    if pg {
        assert_eq!(function_count(db).await, 1);
        // A trigger using it goes away with it on the way down.
        db.execute_unprepared("CREATE TABLE t (id int PRIMARY KEY)")
            .await
            .unwrap();
        db.execute_unprepared(
            "CREATE TRIGGER goforward_realtime AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION goforward_realtime_notify()",
        )
        .await
        .unwrap();
    }
    assert_eq!(migrator.down(db, 2).await.unwrap().len(), 2);
    if pg {
        assert_eq!(function_count(db).await, 0);
        let triggers = db
            .execute_unprepared("SELECT 1 FROM pg_trigger WHERE tgname = 'goforward_realtime'")
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(triggers, 0);
    }
    assert_eq!(migrator.up(db).await.unwrap().len(), 2);
    if pg {
        assert_eq!(function_count(db).await, 1);
    }
}

#[tokio::test]
async fn up_down_up_sqlite() {
    let dir = std::env::temp_dir().join(format!(
        "gf-realtime-mig-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    let db = goforward_core::db::connect_url(&url).await.unwrap();
    cycle(&db).await;
    db.close().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn up_down_up_postgres() {
    let Some(admin) = testing::postgres_url_or_skip("realtime migrations (postgres)") else {
        return;
    };
    let (url, name) = testing::create_postgres_database(&admin).await.unwrap();
    let db = goforward_core::db::connect_url(&url).await.unwrap();
    cycle(&db).await;
    db.close().await.unwrap();
    testing::drop_postgres_database(&admin, &name)
        .await
        .unwrap();
}
