//! The storage migrations go up, down and up again on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use goforward_core::Plugin;
use goforward_core::migrate::Migrator;
use goforward_core::sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use goforward_core::testing;
use goforward_storage::Storage;
use goforward_storage::entity::{bucket, object, object_version};

async fn cycle(db: &DatabaseConnection) {
    let mut migrator = Migrator::new();
    migrator
        .add("storage", Storage::new().migrations())
        .unwrap();
    assert_eq!(migrator.up(db).await.unwrap().len(), 5);
    let now = Utc::now();
    bucket::ActiveModel {
        id: Set("b".into()),
        name: Set("b".into()),
        public: Set(false),
        file_size_limit: Set(Some(10)),
        allowed_mime_types: Set(Some(serde_json::json!(["image/*"]))),
        versioning: Set(true),
        quota: Set(Some(1000)),
        owner_quota: Set(Some(100)),
        max_versions: Set(Some(3)),
        owner: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    let row = |name: &str| object::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        bucket_id: Set("b".into()),
        name: Set(name.into()),
        owner: Set(Some("u".into())),
        metadata: Set(serde_json::json!({"size": 1})),
        user_metadata: Set(None),
        version: Set(uuid::Uuid::new_v4()),
        created_at: Set(now),
        updated_at: Set(now),
        last_accessed_at: Set(now),
    };
    row("a.txt").insert(db).await.unwrap();
    assert!(
        row("a.txt").insert(db).await.is_err(),
        "(bucket_id, name) is unique"
    );
    let orphan = object::ActiveModel {
        bucket_id: Set("missing".into()),
        ..row("x.txt")
    };
    assert!(
        orphan.insert(db).await.is_err(),
        "objects reference their bucket"
    );
    assert_eq!(object::Entity::find().all(db).await.unwrap().len(), 1);
    // Kept versions reference their object and go with it.
    let a = object::Entity::find().one(db).await.unwrap().unwrap();
    let kept = |object_id| object_version::ActiveModel {
        version: Set(uuid::Uuid::new_v4()),
        object_id: Set(object_id),
        owner: Set(None),
        size: Set(1),
        metadata: Set(serde_json::json!({"size": 1})),
        user_metadata: Set(None),
        created_at: Set(now),
        archived_at: Set(now),
    };
    kept(a.id).insert(db).await.unwrap();
    assert!(
        kept(uuid::Uuid::new_v4()).insert(db).await.is_err(),
        "versions reference their object"
    );
    object::Entity::delete_by_id(a.id).exec(db).await.unwrap();
    assert!(
        object_version::Entity::find()
            .all(db)
            .await
            .unwrap()
            .is_empty()
    );
    row("a.txt").insert(db).await.unwrap();

    assert_eq!(migrator.down(db, 5).await.unwrap().len(), 5);
    assert!(
        object::Entity::find().all(db).await.is_err(),
        "table dropped"
    );
    assert!(
        bucket::Entity::find().all(db).await.is_err(),
        "table dropped"
    );
    assert!(
        object_version::Entity::find().all(db).await.is_err(),
        "table dropped"
    );
    assert_eq!(migrator.up(db).await.unwrap().len(), 5);
    assert!(object::Entity::find().all(db).await.unwrap().is_empty());
}

#[tokio::test]
async fn up_down_up_sqlite() {
    let dir = tempfile_dir();
    let url = format!("sqlite://{}/m.db?mode=rwc", dir.display());
    let db = goforward_core::db::connect_url(&url).await.unwrap();
    cycle(&db).await;
    db.close().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn up_down_up_postgres() {
    let Some(admin) = testing::postgres_url_or_skip("storage migrations (postgres)") else {
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

fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gf-storage-mig-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
