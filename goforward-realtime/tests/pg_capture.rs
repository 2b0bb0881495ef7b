//! PostgreSQL capture: rows written by any program (here: plain SQL, no REST)
//! reach subscribers once, through the trigger + LISTEN/NOTIFY source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Msg, app, config};
use goforward_core::access::Policy;
use goforward_core::bus::{ChangeKind, Event, RecordChanged};
use goforward_core::sea_orm::ConnectionTrait;
use goforward_realtime::RealtimeConfig;
use serde_json::json;

const QUIET: Duration = Duration::from_millis(400);

fn is_change(m: &Msg) -> bool {
    m.event == "postgres_changes"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_by_other_programs_are_delivered_once() {
    let Some(app) = app(true, RealtimeConfig::default()).await else {
        return;
    };
    let db = app.db().clone();
    db.execute_unprepared(
        "CREATE TABLE notes (id serial PRIMARY KEY, user_id text NOT NULL, body text NOT NULL)",
    )
    .await
    .unwrap();
    app.gf
        .context()
        .access()
        .policies()
        .set_table("notes", Policy::owner("user_id"));
    let binding = json!([{"event": "*", "schema": "public", "table": "notes"}]);
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    a.join_ok(
        "n",
        config(false, false, "", binding.clone()),
        Some(&app.user_token("user-a")),
    )
    .await;
    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    b.join_ok(
        "n",
        config(false, false, "", binding),
        Some(&app.user_token("user-b")),
    )
    .await;

    // A plain SQL insert (no GoForward involved) reaches the owner only.
    db.execute_unprepared("INSERT INTO notes (user_id, body) VALUES ('user-a', 'hi')")
        .await
        .unwrap();
    let m = a.recv_where(is_change).await;
    let data = &m.payload["data"];
    assert_eq!(data["type"], "INSERT");
    assert_eq!(data["schema"], "public");
    assert_eq!(data["table"], "notes");
    assert_eq!(
        data["record"],
        json!({"id": 1, "user_id": "user-a", "body": "hi"})
    );
    assert!(data["commit_timestamp"].as_str().unwrap().ends_with('Z'));
    b.assert_none(QUIET, is_change).await;

    // A write GoForward also announces on the bus (as REST does) arrives once, not twice.
    db.execute_unprepared("INSERT INTO notes (user_id, body) VALUES ('user-a', 'both')")
        .await
        .unwrap();
    let change = RecordChanged {
        schema: "public".into(),
        table: "notes".into(),
        kind: ChangeKind::Insert,
        record: Some(json!({"id": 2, "user_id": "user-a", "body": "both"})),
        old_record: None,
        commit_timestamp: chrono::Utc::now(),
    };
    app.gf
        .context()
        .bus()
        .publish(Event::RecordChanged(change))
        .await
        .unwrap();
    assert_eq!(
        a.recv_where(is_change).await.payload["data"]["record"]["body"],
        "both"
    );
    a.assert_none(QUIET, is_change).await;

    // Rows over NOTIFY's 8000-byte limit are read back by primary key.
    let big = "x".repeat(10_000);
    db.execute_unprepared(&format!(
        "INSERT INTO notes (user_id, body) VALUES ('user-a', '{big}')"
    ))
    .await
    .unwrap();
    let m = a.recv_where(is_change).await;
    assert_eq!(
        m.payload["data"]["record"]["body"].as_str().unwrap().len(),
        10_000
    );
    assert_eq!(m.payload["data"]["record"]["id"], 3);

    // Old rows show only the primary key (default replica identity), yet the row policy
    // is decided on the whole row: the owner gets them, B does not.
    db.execute_unprepared("UPDATE notes SET body = 'bye' WHERE id = 1")
        .await
        .unwrap();
    let m = a.recv_where(is_change).await;
    assert_eq!(m.payload["data"]["type"], "UPDATE");
    assert_eq!(m.payload["data"]["old_record"], json!({"id": 1}));
    assert_eq!(m.payload["data"]["record"]["body"], "bye");
    // With REPLICA IDENTITY FULL the whole old row is shown.
    db.execute_unprepared("ALTER TABLE notes REPLICA IDENTITY FULL")
        .await
        .unwrap();
    db.execute_unprepared("UPDATE notes SET body = 'bye again' WHERE id = 1")
        .await
        .unwrap();
    let m = a.recv_where(is_change).await;
    assert_eq!(m.payload["data"]["old_record"]["body"], "bye");
    db.execute_unprepared("ALTER TABLE notes REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM notes WHERE id = 1")
        .await
        .unwrap();
    let m = a.recv_where(is_change).await;
    assert_eq!(m.payload["data"]["type"], "DELETE");
    assert_eq!(m.payload["data"]["old_record"], json!({"id": 1}));
    b.assert_none(QUIET, is_change).await;

    // The LISTEN connection is killed: it comes back and delivery resumes.
    let killed = db
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .await
        .unwrap();
    assert_eq!(
        killed.rows_affected(),
        1,
        "the LISTEN connection was found and killed"
    );
    let mut delivered = false;
    for i in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        db.execute_unprepared(&format!(
            "INSERT INTO notes (user_id, body) VALUES ('user-a', 'again-{i}')"
        ))
        .await
        .unwrap();
        if tokio::time::timeout(Duration::from_millis(250), a.recv_where(is_change))
            .await
            .is_ok()
        {
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "delivery resumes after the LISTEN connection was killed"
    );
    drop((a, b));
    app.stop().await;
}
