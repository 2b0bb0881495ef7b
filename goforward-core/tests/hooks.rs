//! Hook tests: chain order, unbinding, tags, the custom registry, and the
//! record lifecycle runner against a real SQLite database, counting which
//! hooks fired in each scenario (PocketBase `ApiScenario` style: every hook
//! not listed must not have fired).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use std::time::Duration;

use goforward_core::Error;
use goforward_core::bus::{ChangeKind, Event, MemoryBus, RecordChanged, SharedBus, Subscription};
use goforward_core::hooks::{
    Hook, Hooks, Next, RecordAction, RecordErrorEvent, RecordEvent, RecordExecuteEvent, Tagged,
    run_record_write,
};
use goforward_core::sea_orm::{self, ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

const ACTIONS: [RecordAction; 3] = [
    RecordAction::Create,
    RecordAction::Update,
    RecordAction::Delete,
];

// ---------------------------------------------------------------------------
// Counting which hooks fired.
// ---------------------------------------------------------------------------

/// Calls per hook name.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, usize>>>);

impl Calls {
    fn hit(&self, hook: &str) {
        *self.0.lock().unwrap().entry(hook.to_owned()).or_default() += 1;
    }

    fn get(&self, hook: &str) -> usize {
        self.0.lock().unwrap().get(hook).copied().unwrap_or(0)
    }

    /// Asserts the listed counts and that no other hook fired (`"*": 0`).
    fn assert(&self, scenario: &str, expected: &[(&str, usize)]) {
        let actual = self.0.lock().unwrap().clone();
        let expected: BTreeMap<String, usize> = expected
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect();
        assert_eq!(actual, expected, "{scenario}: hook calls");
    }
}

/// Binds a counter (running first) to `hook`.
fn count<E: Send + 'static>(hook: &Hook<E>, calls: &Calls) {
    let name = hook.name().to_owned();
    let calls = calls.clone();
    hook.bind("count", i32::MIN, move |e, next| {
        calls.hit(&name);
        next.run(e)
    });
}

/// Binds a counter to every record hook.
fn count_all(hooks: &Hooks, calls: &Calls) {
    for action in ACTIONS {
        let lifecycle = hooks.record(action);
        count(lifecycle.wrap(), calls);
        count(lifecycle.execute(), calls);
        count(lifecycle.after_success(), calls);
        count(lifecycle.after_error(), calls);
    }
}

// ---------------------------------------------------------------------------
// Database and bus.
// ---------------------------------------------------------------------------

struct Fixture {
    hooks: Hooks,
    db: DatabaseConnection,
    bus: SharedBus,
    sub: Subscription,
    calls: Calls,
}

async fn fixture() -> Fixture {
    let db = goforward_core::db::connect_url("sqlite::memory:")
        .await
        .expect("sqlite in memory");
    for table in ["todos", "messages", "audit"] {
        db.execute_unprepared(&format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE)"
        ))
        .await
        .unwrap();
    }
    let bus: SharedBus = Arc::new(MemoryBus::new(16));
    let sub = bus.subscribe();
    let hooks = Hooks::new();
    let calls = Calls::default();
    count_all(&hooks, &calls);
    Fixture {
        hooks,
        db,
        bus,
        sub,
        calls,
    }
}

impl Fixture {
    async fn write(
        &self,
        action: RecordAction,
        event: RecordEvent,
    ) -> goforward_core::Result<RecordEvent> {
        let execute = match action {
            RecordAction::Create => |e| Box::pin(insert(e)) as Exec,
            RecordAction::Update => |e| Box::pin(update(e)) as Exec,
            RecordAction::Delete => |e| Box::pin(delete(e)) as Exec,
        };
        run_record_write(
            &self.hooks,
            &self.db,
            Some(&self.bus),
            action,
            event,
            execute,
        )
        .await
    }

    async fn create(&self, table: &str, title: Value) -> goforward_core::Result<RecordEvent> {
        self.write(RecordAction::Create, todo(table, title)).await
    }

    async fn titles(&self, table: &str) -> Vec<String> {
        titles(&self.db, table).await
    }

    /// The next bus event must be a record change of `kind` on `table`.
    async fn expect_change(&mut self, kind: ChangeKind, table: &str) -> RecordChanged {
        let envelope = tokio::time::timeout(Duration::from_secs(5), self.sub.recv())
            .await
            .expect("a bus event within 5 s")
            .expect("bus running");
        match &envelope.event {
            Event::RecordChanged(change) => {
                assert_eq!((change.kind, change.table.as_str()), (kind, table));
                change.clone()
            }
            other => panic!("expected a record change, got {other:?}"),
        }
    }

    /// Proves nothing was published by the scenario before: a marker
    /// published now must be the very next event (one publisher, in order).
    async fn expect_no_change(&mut self, scenario: &str) {
        self.bus
            .publish(Event::custom("marker", json!(null)))
            .await
            .unwrap();
        let envelope = self.sub.recv().await.expect("bus running");
        assert_eq!(
            envelope.event.name(),
            "marker",
            "{scenario}: nothing must have been published, got {:?}",
            envelope.event
        );
    }
}

type Exec = std::pin::Pin<
    Box<dyn Future<Output = goforward_core::Result<RecordExecuteEvent>> + Send + 'static>,
>;

fn todo(table: &str, title: Value) -> RecordEvent {
    RecordEvent::new("main", table, json!({ "title": title }))
}

fn text(value: &Value) -> sea_orm::Value {
    match value.as_str() {
        Some(s) => s.into(),
        None => sea_orm::Value::String(None),
    }
}

fn row_json(row: Option<sea_orm::QueryResult>) -> goforward_core::Result<Value> {
    Ok(match row {
        Some(row) => json!({
            "id": row.try_get::<i64>("", "id")?,
            "title": row.try_get::<String>("", "title")?,
        }),
        None => Value::Null,
    })
}

/// The executor of creates: `INSERT … RETURNING` with the transaction.
async fn insert(mut e: RecordExecuteEvent) -> goforward_core::Result<RecordExecuteEvent> {
    let sql = format!(
        "INSERT INTO {} (title) VALUES (?) RETURNING id, title",
        e.event.table
    );
    let row = e
        .tx()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [text(&e.event.record["title"])],
        ))
        .await?;
    e.event.record = row_json(row)?;
    Ok(e)
}

/// The executor of updates: sets `title` of the row `old_record.id`.
async fn update(mut e: RecordExecuteEvent) -> goforward_core::Result<RecordExecuteEvent> {
    let id = e.event.old_record.as_ref().unwrap()["id"].as_i64().unwrap();
    let sql = format!(
        "UPDATE {} SET title = ? WHERE id = ? RETURNING id, title",
        e.event.table
    );
    let row = e
        .tx()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [text(&e.event.record["title"]), id.into()],
        ))
        .await?;
    e.event.record = row_json(row)?;
    Ok(e)
}

/// The executor of deletes: removes the row `record.id`.
async fn delete(e: RecordExecuteEvent) -> goforward_core::Result<RecordExecuteEvent> {
    let id = e.event.record["id"].as_i64().unwrap();
    let sql = format!("DELETE FROM {} WHERE id = ?", e.event.table);
    e.tx()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            [id.into()],
        ))
        .await?;
    Ok(e)
}

async fn titles(db: &DatabaseConnection, table: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        DbBackend::Sqlite,
        format!("SELECT title FROM {table} ORDER BY id"),
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "title").unwrap())
    .collect()
}

// ---------------------------------------------------------------------------
// The record lifecycle.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn successful_create_fires_wrap_execute_success_and_publishes_once() {
    let mut f = fixture().await;

    let written = f.create("todos", json!("milk")).await.unwrap();

    assert_eq!(written.record, json!({ "id": 1, "title": "milk" }));
    f.calls.assert(
        "successful create",
        &[
            ("on_record_create", 1),
            ("on_record_create_execute", 1),
            ("on_record_after_create_success", 1),
            ("on_record_after_create_error", 0),
        ],
    );
    assert_eq!(f.titles("todos").await, ["milk"]);

    let change = f.expect_change(ChangeKind::Insert, "todos").await;
    assert_eq!(change.schema, "main");
    assert_eq!(change.record, Some(json!({ "id": 1, "title": "milk" })));
    assert_eq!(change.old_record, None);
    f.expect_no_change("exactly one RecordChanged").await;
}

#[tokio::test]
async fn failing_execute_fires_error_hooks_writes_nothing_publishes_nothing() {
    let mut f = fixture().await;
    let seen: Arc<Mutex<Vec<RecordErrorEvent>>> = Arc::default();
    let sink = seen.clone();
    f.hooks
        .on_record_after_create_error()
        .bind("keep", 0, move |e, next| {
            sink.lock().unwrap().push(e.clone());
            next.run(e)
        });

    // NOT NULL violation.
    let err = f.create("todos", Value::Null).await.unwrap_err();

    assert!(matches!(err, Error::Database(_)), "{err:?}");
    f.calls.assert(
        "constraint violation",
        &[
            ("on_record_create", 1),
            ("on_record_create_execute", 1),
            ("on_record_after_create_error", 1),
        ],
    );
    assert!(f.titles("todos").await.is_empty());
    f.expect_no_change("a rolled-back write").await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].action, RecordAction::Create);
    assert_eq!(seen[0].code, "core.database_error");
    assert_eq!(seen[0].status, 500);
    assert_eq!(seen[0].event.table, "todos");
    assert!(
        seen[0].message.to_lowercase().contains("not null"),
        "{}",
        seen[0].message
    );
}

#[tokio::test]
async fn unique_violation_rolls_back_what_execute_hooks_wrote_in_the_transaction() {
    let mut f = fixture().await;
    f.create("todos", json!("milk")).await.unwrap();
    f.expect_change(ChangeKind::Insert, "todos").await;

    // An execute hook writing an audit row through the same transaction.
    f.hooks.on_record_create_execute().bind_tagged(
        ["todos"],
        "audit",
        0,
        |e: RecordExecuteEvent, next| async move {
            e.tx()
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "INSERT INTO audit (title) VALUES (?)",
                    [text(&e.event.record["title"])],
                ))
                .await?;
            next.run(e).await
        },
    );

    // Duplicate title: the audit row goes down with the failed insert…
    let err = f.create("todos", json!("milk")).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(titles(&f.db, "audit").await.is_empty());
    assert_eq!(f.titles("todos").await, ["milk"]);
    f.expect_no_change("a rolled-back write").await;

    // …and commits with a successful one.
    f.create("todos", json!("eggs")).await.unwrap();
    assert_eq!(titles(&f.db, "audit").await, ["eggs"]);
    assert_eq!(f.titles("todos").await, ["milk", "eggs"]);
    f.calls.assert(
        "ok, duplicate, ok",
        &[
            ("on_record_create", 3),
            ("on_record_create_execute", 3),
            ("on_record_after_create_success", 2),
            ("on_record_after_create_error", 1),
        ],
    );
}

#[tokio::test]
async fn execute_hook_error_aborts_before_sql() {
    let mut f = fixture().await;
    f.hooks.on_record_create_execute().bind(
        "refuse",
        0,
        |e: RecordExecuteEvent, next| async move {
            if e.event.record["title"] == "forbidden" {
                return Err(next.abort("no forbidden titles"));
            }
            next.run(e).await
        },
    );
    let executed = Arc::new(AtomicBool::new(false));
    let flag = executed.clone();

    let err = run_record_write(
        &f.hooks,
        &f.db,
        Some(&f.bus),
        RecordAction::Create,
        todo("todos", json!("forbidden")),
        move |e| {
            flag.store(true, Ordering::SeqCst);
            insert(e)
        },
    )
    .await
    .unwrap_err();

    match &err {
        Error::Hook { hook, message } => {
            assert_eq!(hook, "on_record_create_execute");
            assert_eq!(message, "no forbidden titles");
        }
        other => panic!("expected a hook error, got {other:?}"),
    }
    assert_eq!(err.code(), "core.hook_aborted");
    assert!(!executed.load(Ordering::SeqCst), "the SQL must not run");
    f.calls.assert(
        "execute hook refused",
        &[
            ("on_record_create", 1),
            ("on_record_create_execute", 1),
            ("on_record_after_create_error", 1),
        ],
    );
    assert!(f.titles("todos").await.is_empty());
    f.expect_no_change("an aborted write").await;
}

#[tokio::test]
async fn wrap_handler_that_does_not_call_next_prevents_transaction_and_sql() {
    let mut f = fixture().await;
    f.hooks
        .on_record_create()
        .bind("swallow", 0, |mut e: RecordEvent, _next| async move {
            e.record["swallowed"] = json!(true);
            Ok(e)
        });
    let executed = Arc::new(AtomicBool::new(false));
    let flag = executed.clone();

    let out = run_record_write(
        &f.hooks,
        &f.db,
        Some(&f.bus),
        RecordAction::Create,
        todo("todos", json!("milk")),
        move |e| {
            flag.store(true, Ordering::SeqCst);
            insert(e)
        },
    )
    .await
    .unwrap();

    assert_eq!(out.record["swallowed"], true);
    // The transaction begins in the final link of the wrap chain, with the
    // execute hooks, the SQL and the after hooks: none of them ran.
    assert!(!executed.load(Ordering::SeqCst));
    f.calls
        .assert("short-circuited wrap", &[("on_record_create", 1)]);
    assert!(f.titles("todos").await.is_empty());
    f.expect_no_change("a short-circuited write").await;
}

#[tokio::test]
async fn wrap_handler_error_stops_everything() {
    let mut f = fixture().await;
    f.hooks.on_record_create().bind_tagged(
        ["todos"],
        "validate",
        0,
        |e: RecordEvent, next| async move {
            if e.record["title"].as_str().is_none_or(str::is_empty) {
                return Err(next.abort("title is required"));
            }
            next.run(e).await
        },
    );

    let err = f.create("todos", json!("")).await.unwrap_err();

    assert_eq!(err.public_message(), "title is required");
    f.calls.assert("wrap refused", &[("on_record_create", 1)]);
    assert!(f.titles("todos").await.is_empty());
    f.expect_no_change("a refused write").await;
}

#[tokio::test]
async fn handlers_can_change_the_record_before_and_after_the_sql() {
    let mut f = fixture().await;
    f.hooks
        .on_record_create()
        .bind("trim", 0, |mut e: RecordEvent, next| async move {
            let title = e.record["title"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_owned();
            e.record["title"] = json!(title);
            let mut e = next.run(e).await?;
            e.record["decorated"] = json!(true); // after the SQL, not persisted
            Ok(e)
        });
    f.hooks.on_record_create_execute().bind(
        "upper",
        0,
        |mut e: RecordExecuteEvent, next| async move {
            let title = e.event.record["title"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase();
            e.event.record["title"] = json!(title);
            next.run(e).await
        },
    );

    let out = f.create("todos", json!("  milk ")).await.unwrap();

    assert_eq!(
        out.record,
        json!({ "id": 1, "title": "MILK", "decorated": true })
    );
    assert_eq!(f.titles("todos").await, ["MILK"]);
    let change = f.expect_change(ChangeKind::Insert, "todos").await;
    assert_eq!(change.record, Some(json!({ "id": 1, "title": "MILK" })));
}

#[tokio::test]
async fn update_and_delete_run_their_own_hooks_and_publish_their_kind() {
    let mut f = fixture().await;
    let created = f.create("todos", json!("milk")).await.unwrap();
    f.expect_change(ChangeKind::Insert, "todos").await;

    let updated = f
        .write(
            RecordAction::Update,
            todo("todos", json!("oat milk")).with_old_record(created.record.clone()),
        )
        .await
        .unwrap();
    assert_eq!(updated.record, json!({ "id": 1, "title": "oat milk" }));
    let change = f.expect_change(ChangeKind::Update, "todos").await;
    assert_eq!(change.record, Some(updated.record.clone()));
    assert_eq!(change.old_record, Some(created.record.clone()));

    f.write(
        RecordAction::Delete,
        RecordEvent::new("main", "todos", updated.record.clone()),
    )
    .await
    .unwrap();
    let change = f.expect_change(ChangeKind::Delete, "todos").await;
    assert_eq!(change.record, None);
    assert_eq!(change.old_record, Some(updated.record.clone()));
    assert!(f.titles("todos").await.is_empty());

    f.calls.assert(
        "create, update, delete",
        &[
            ("on_record_create", 1),
            ("on_record_create_execute", 1),
            ("on_record_after_create_success", 1),
            ("on_record_update", 1),
            ("on_record_update_execute", 1),
            ("on_record_after_update_success", 1),
            ("on_record_delete", 1),
            ("on_record_delete_execute", 1),
            ("on_record_after_delete_success", 1),
        ],
    );
    f.expect_no_change("one event per write").await;
}

#[tokio::test]
async fn after_success_error_does_not_undo_or_fail_the_committed_write() {
    let mut f = fixture().await;
    f.hooks.on_record_after_create_success().bind(
        "mailer_down",
        0,
        |_e: RecordEvent, next| async move { Err(next.abort("smtp unreachable")) },
    );

    let out = f.create("todos", json!("milk")).await.unwrap();

    assert_eq!(out.record["title"], "milk");
    assert_eq!(f.titles("todos").await, ["milk"]);
    f.expect_change(ChangeKind::Insert, "todos").await;
    f.calls.assert(
        "after-success failed",
        &[
            ("on_record_create", 1),
            ("on_record_create_execute", 1),
            ("on_record_after_create_success", 1),
        ],
    );
}

#[tokio::test]
async fn without_a_bus_the_write_still_commits() {
    let f = fixture().await;
    run_record_write(
        &f.hooks,
        &f.db,
        None,
        RecordAction::Create,
        todo("todos", json!("milk")),
        insert,
    )
    .await
    .unwrap();
    assert_eq!(f.titles("todos").await, ["milk"]);
}

#[tokio::test]
async fn a_publish_failure_after_commit_is_not_an_error() {
    let f = fixture().await;
    f.bus.shutdown().await;
    f.create("todos", json!("milk")).await.unwrap();
    assert_eq!(f.titles("todos").await, ["milk"]);
    assert_eq!(f.calls.get("on_record_after_create_success"), 1);
}

// ---------------------------------------------------------------------------
// Tags.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tagged_handlers_only_fire_for_their_tables() {
    let mut f = fixture().await;
    let todos = Calls::default();
    for (id, tags) in [("plain", vec!["todos"]), ("qualified", vec!["main.todos"])] {
        let todos = todos.clone();
        f.hooks
            .on_record_after_create_success()
            .bind_tagged(tags, id, 0, move |e, next| {
                todos.hit(id);
                next.run(e)
            });
    }
    let view = f
        .hooks
        .on_record_create_execute()
        .tagged(["todos", "notes"]);
    let view_calls = todos.clone();
    view.bind("view", 0, move |e, next| {
        view_calls.hit("view");
        next.run(e)
    });

    f.create("messages", json!("hi")).await.unwrap();
    f.expect_change(ChangeKind::Insert, "messages").await;
    todos.assert("write to messages", &[]);

    f.create("todos", json!("milk")).await.unwrap();
    f.expect_change(ChangeKind::Insert, "todos").await;
    todos.assert(
        "write to todos",
        &[("plain", 1), ("qualified", 1), ("view", 1)],
    );

    // Untagged handlers (the counters) fired for both.
    assert_eq!(f.calls.get("on_record_create"), 2);
    let create_view = f.hooks.on_record_create().tagged(["todos"]);
    assert!(create_view.can_trigger_on(&todo("todos", json!("x"))));
    assert!(!create_view.can_trigger_on(&todo("messages", json!("x"))));
    assert!(create_view.can_trigger_on(&RecordEvent::new("main", "todos", Value::Null)));
    assert!(!create_view.can_trigger_on(&RecordEvent::new("other", "messages", Value::Null)));
}

#[derive(Debug)]
struct Upload {
    bucket: String,
    size: u64,
}

impl Tagged for Upload {
    fn tags(&self) -> Vec<&str> {
        vec![&self.bucket]
    }
}

#[tokio::test]
async fn tagged_custom_hook_and_skipped_handlers_keep_the_chain_going() {
    let hooks = Hooks::new();
    let upload = hooks.custom::<Upload>("on_object_upload");
    upload.bind_tagged(
        ["avatars"],
        "limit",
        0,
        |e: Upload, next: Next<Upload>| async move {
            if e.size > 100 {
                return Err(next.abort("avatar too large"));
            }
            next.run(e).await
        },
    );

    let stored = Arc::new(AtomicUsize::new(0));
    let store = |stored: Arc<AtomicUsize>| {
        move |e: Upload| async move {
            stored.fetch_add(1, Ordering::SeqCst);
            Ok(e)
        }
    };

    // Another bucket: the avatar limit is skipped, the upload happens.
    let big_doc = Upload {
        bucket: "documents".into(),
        size: 1000,
    };
    upload
        .trigger(big_doc, store(stored.clone()))
        .await
        .unwrap();
    // The avatar limit applies.
    let big_avatar = Upload {
        bucket: "avatars".into(),
        size: 1000,
    };
    let err = hooks
        .custom::<Upload>("on_object_upload")
        .trigger(big_avatar, store(stored.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "hook `on_object_upload` aborted: avatar too large"
    );
    assert_eq!(stored.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Chain mechanics.
// ---------------------------------------------------------------------------

fn push(hook: &Hook<Vec<String>>, id: &str, priority: i32) {
    let label = id.to_owned();
    hook.bind(id, priority, move |mut log: Vec<String>, next| {
        log.push(label.clone());
        next.run(log)
    });
}

async fn order(hook: &Hook<Vec<String>>) -> Vec<String> {
    hook.trigger(Vec::new(), |mut log| async move {
        log.push("op".to_owned());
        Ok(log)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn priority_order_ties_in_bind_order_rebind_and_unbind() {
    let hook: Hook<Vec<String>> = Hook::new("on_test");
    push(&hook, "b", 0);
    push(&hook, "late", 10);
    push(&hook, "a", -5);
    push(&hook, "c", 0);
    assert_eq!(order(&hook).await, ["a", "b", "c", "late", "op"]);
    assert_eq!(hook.len(), 4);

    // Rebinding an id replaces the handler (and may move it).
    push(&hook, "late", -10);
    assert_eq!(order(&hook).await, ["late", "a", "b", "c", "op"]);
    assert_eq!(hook.len(), 4);

    assert!(hook.unbind("b"));
    assert!(!hook.unbind("b"));
    assert_eq!(order(&hook).await, ["late", "a", "c", "op"]);
    assert!(hook.contains("a"));

    hook.unbind_all();
    assert!(hook.is_empty());
    assert_eq!(order(&hook).await, ["op"]);
}

#[tokio::test]
async fn generated_ids_can_be_unbound() {
    let hook: Hook<u32> = Hook::new("on_number");
    let first = hook.bind_fn(|n, next| next.run(n + 1));
    let second = hook.bind_fn(|n, next| next.run(n * 10));
    assert_ne!(first, second);
    assert_eq!(hook.emit(1).await.unwrap(), 20);
    assert!(hook.unbind(&first));
    assert_eq!(hook.emit(1).await.unwrap(), 10);
    assert_eq!(hook.ids(), [second]);
}

#[tokio::test]
async fn finalizer_runs_once_only_if_every_handler_calls_next() {
    let hook: Hook<u32> = Hook::new("on_number");
    let ran = Arc::new(AtomicUsize::new(0));
    let finalizer = |ran: Arc<AtomicUsize>| {
        move |n: u32| async move {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok(n)
        }
    };
    hook.bind("stop_on_zero", 0, |n, next| async move {
        if n == 0 { Ok(n) } else { next.run(n).await }
    });

    assert_eq!(hook.trigger(0, finalizer(ran.clone())).await.unwrap(), 0);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(hook.trigger(7, finalizer(ran.clone())).await.unwrap(), 7);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_handler_may_unbind_while_the_chain_runs() {
    let hook: Hook<u32> = Hook::new("on_number");
    let handle = hook.clone();
    hook.bind("once", 0, move |n, next| {
        handle.unbind("once");
        next.run(n + 1)
    });
    assert_eq!(hook.emit(0).await.unwrap(), 1);
    assert_eq!(hook.emit(0).await.unwrap(), 0);
}

#[tokio::test]
async fn custom_hooks_are_keyed_by_name_and_type() {
    let hooks = Hooks::new();
    hooks
        .custom::<u32>("on_thing")
        .bind("x", 0, |n, next| next.run(n + 1));
    assert_eq!(hooks.custom::<u32>("on_thing").len(), 1);
    assert_eq!(hooks.custom::<u32>("on_thing").emit(1).await.unwrap(), 2);
    assert!(hooks.custom::<String>("on_thing").is_empty());
    assert!(hooks.custom::<u32>("on_other").is_empty());
    assert_eq!(hooks.custom::<u32>("on_thing").name(), "on_thing");
}

#[test]
fn hook_names_follow_pocketbase() {
    let hooks = Hooks::new();
    let names: Vec<&str> = vec![
        hooks.on_record_create().name(),
        hooks.on_record_create_execute().name(),
        hooks.on_record_after_create_success().name(),
        hooks.on_record_after_create_error().name(),
        hooks.on_record_update().name(),
        hooks.on_record_update_execute().name(),
        hooks.on_record_after_update_success().name(),
        hooks.on_record_after_update_error().name(),
        hooks.on_record_delete().name(),
        hooks.on_record_delete_execute().name(),
        hooks.on_record_after_delete_success().name(),
        hooks.on_record_after_delete_error().name(),
    ];
    assert_eq!(
        names,
        [
            "on_record_create",
            "on_record_create_execute",
            "on_record_after_create_success",
            "on_record_after_create_error",
            "on_record_update",
            "on_record_update_execute",
            "on_record_after_update_success",
            "on_record_after_update_error",
            "on_record_delete",
            "on_record_delete_execute",
            "on_record_after_delete_success",
            "on_record_after_delete_error",
        ]
    );
}
