//! A host app's own plugin: its route, its migration (applied once, tracked
//! in its own ledger, reverted by `goforward migrate down`) and its event
//! subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix_web::{HttpResponse, web};
use goforward::bus::Event;
use goforward::cli::{Command, MigrateAction};
use goforward::sea_orm::{ConnectionTrait, DatabaseConnection};
use goforward::sea_orm_migration::prelude::*;
use goforward::{Config, Context, Plugin, Principal};
use serde_json::json;

struct CreateNotes;

impl MigrationName for CreateNotes {
    fn name(&self) -> &str {
        "m20260102_000001_create_notes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateNotes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("notes")
                .col(
                    ColumnDef::new("id")
                        .integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new("body").text().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("notes").to_owned()).await
    }
}

#[derive(Clone, Default)]
struct Notes {
    seen: Arc<AtomicUsize>,
    listener: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

async fn add_note(
    ctx: web::Data<Context>,
    _p: Principal,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, goforward::Error> {
    let text = body["body"].as_str().unwrap_or_default().to_owned();
    let stmt = Query::insert()
        .into_table("notes")
        .columns(["body"])
        .values_panic([text.clone().into()])
        .to_owned();
    ctx.db()
        .execute(&stmt)
        .await
        .map_err(goforward::Error::from_db)?;
    ctx.bus()
        .publish(Event::Custom {
            name: "note_added".into(),
            payload: json!({ "body": text }),
        })
        .await?;
    Ok(HttpResponse::Created().finish())
}

#[async_trait::async_trait]
impl Plugin for Notes {
    fn name(&self) -> &str {
        "notes"
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateNotes)]
    }

    async fn start(&self, ctx: &Context) -> goforward::Result<()> {
        let mut sub = ctx.bus().subscribe();
        let seen = self.seen.clone();
        let task = tokio::spawn(async move {
            while let Some(envelope) = sub.recv().await {
                if matches!(&envelope.event, Event::Custom { name, .. } if name == "note_added") {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        *self.listener.lock().unwrap() = Some(task);
        Ok(())
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            web::scope("/notes")
                .wrap(ctx.plumbing("notes"))
                .route("", web::post().to(add_note)),
        );
    }

    async fn shutdown(&self) {
        let task = self.listener.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

async fn ledger_rows(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(goforward::sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM goforward_migrations_notes",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn notes_table_exists(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1 FROM notes LIMIT 1")
        .await
        .is_ok()
}

fn file_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.jwt.secret = Some(goforward::testing::TEST_JWT_SECRET.into());
    config.server.rate_limit.enabled = false;
    config
}

#[tokio::test]
async fn plugin_route_migration_and_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let app = goforward::testing::TestApp::builder()
        .plugin(notes.clone())
        .config(|c| c.data_dir = dir.path().to_path_buf())
        .start()
        .await
        .unwrap();
    let res = app
        .client()
        .post(app.url("/notes"))
        .header("apikey", app.anon_key())
        .json(&json!({"body": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for _ in 0..100 {
        if notes.seen.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        notes.seen.load(Ordering::SeqCst),
        1,
        "subscriber got the event once"
    );
    assert_eq!(ledger_rows(app.db()).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn migration_applied_once_and_reverted_by_migrate_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path());

    // Two builds on the same database: applied once.
    for _ in 0..2 {
        let gf = goforward::GoForward::builder(config.clone())
            .plugin(Notes::default())
            .build()
            .await
            .unwrap();
        assert_eq!(ledger_rows(gf.context().db()).await, 1);
        assert!(notes_table_exists(gf.context().db()).await);
        gf.shutdown().await;
    }

    // `goforward migrate status` then `goforward migrate down`, through the CLI code path.
    let with_notes = |b: goforward::GoForwardBuilder| b.plugin(Notes::default());
    goforward::cli::execute(
        Command::Migrate {
            action: MigrateAction::Status,
        },
        config.clone(),
        with_notes,
    )
    .await
    .unwrap();
    goforward::cli::execute(
        Command::Migrate {
            action: MigrateAction::Down { steps: 1 },
        },
        config.clone(),
        with_notes,
    )
    .await
    .unwrap();

    let db = goforward::core::db::connect(&{
        let mut c = config.clone();
        c.validate().unwrap();
        c.database
    })
    .await
    .unwrap();
    assert_eq!(ledger_rows(&db).await, 0, "ledger row removed");
    assert!(!notes_table_exists(&db).await, "table dropped by down()");

    // And `up` brings it back.
    goforward::cli::execute(
        Command::Migrate {
            action: MigrateAction::Up,
        },
        config,
        with_notes,
    )
    .await
    .unwrap();
    assert_eq!(ledger_rows(&db).await, 1);
    assert!(notes_table_exists(&db).await);
}
