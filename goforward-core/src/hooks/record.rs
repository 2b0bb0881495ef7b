//! Record lifecycle events and [`run_record_write`], the runner every write
//! through GoForward goes through.

use std::{fmt, future::Future, sync::Arc};

use actix_web::ResponseError;
use chrono::Utc;
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde_json::Value;

use super::{Hooks, RecordHooks, Tagged};
use crate::bus::{ChangeKind, Event, RecordChanged, SharedBus};
use crate::error::{Error, Result};
use crate::token::Principal;

/// Which write a record lifecycle is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordAction {
    /// A row is inserted (`on_record_create*`).
    Create,
    /// A row is updated (`on_record_update*`).
    Update,
    /// A row is deleted (`on_record_delete*`).
    Delete,
}

impl RecordAction {
    /// `"create"`, `"update"` or `"delete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// The change kind announced on the bus after commit.
    pub fn change_kind(self) -> ChangeKind {
        match self {
            Self::Create => ChangeKind::Insert,
            Self::Update => ChangeKind::Update,
            Self::Delete => ChangeKind::Delete,
        }
    }
}

impl fmt::Display for RecordAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RecordAction> for ChangeKind {
    fn from(action: RecordAction) -> Self {
        action.change_kind()
    }
}

/// A write of one row, as seen by the record hooks (`on_record_create`,
/// `on_record_after_create_success`, … and inside [`RecordExecuteEvent`]).
///
/// Tagged by table name: a handler bound with
/// `bind_tagged(["todos"], ..)` (or `["public.todos"]`) runs only for writes
/// to `todos`.
///
/// What `record` holds: for a create, the values to insert (the executor
/// replaces them with the inserted row); for an update, the new values (then
/// the updated row), with the previous row in `old_record` when known; for a
/// delete, the row being deleted (or its key) — it is announced on the bus as
/// the old record.
///
/// # Examples
///
/// ```
/// use goforward_core::hooks::RecordEvent;
/// use serde_json::json;
///
/// let event = RecordEvent::new("public", "todos", json!({ "title": "milk" }));
/// assert!(event.principal.is_none());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvent {
    /// Schema of the table (`"public"`; `"main"` on SQLite).
    pub schema: String,
    /// Table name; the event's tag.
    pub table: String,
    /// Who asked for the write (`None` for internal writes).
    pub principal: Option<Principal>,
    /// The row (see the type's documentation for each action).
    pub record: Value,
    /// The row before the write (updates and deletes), when known.
    pub old_record: Option<Value>,
}

impl RecordEvent {
    /// An event for a write of `record` to `schema.table`, with no principal
    /// and no old record.
    pub fn new(schema: impl Into<String>, table: impl Into<String>, record: Value) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            principal: None,
            record,
            old_record: None,
        }
    }

    /// Sets who asked for the write.
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// Sets the row as it was before the write.
    pub fn with_old_record(mut self, old_record: Value) -> Self {
        self.old_record = Some(old_record);
        self
    }
}

impl Tagged for RecordEvent {
    fn tags(&self) -> Vec<&str> {
        vec![&self.table]
    }

    /// Accepts the table name and the qualified `schema.table`.
    fn has_tag(&self, tag: &str) -> bool {
        tag == self.table
            || tag
                .split_once('.')
                .is_some_and(|(schema, table)| schema == self.schema && table == self.table)
    }
}

/// The event of the `on_record_*_execute` hooks: the write, and the database
/// transaction it runs in.
///
/// Handlers run inside the transaction, before the SQL: they may change the
/// record, run their own statements with [`tx`](RecordExecuteEvent::tx)
/// (committed or rolled back together with the write), or abort with `Err`
/// (nothing is written). The executor passed to [`run_record_write`] is the
/// last link of this chain and fills `event.record` with the written row.
///
/// Do not keep the transaction beyond the handler (no clones, no spawned
/// tasks): the runner must own it again to commit, and fails the write
/// otherwise.
pub struct RecordExecuteEvent {
    /// Which write this is.
    pub action: RecordAction,
    /// The write itself.
    pub event: RecordEvent,
    tx: Arc<DatabaseTransaction>,
}

impl fmt::Debug for RecordExecuteEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordExecuteEvent")
            .field("action", &self.action)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl RecordExecuteEvent {
    /// The transaction of this write; run statements with it
    /// (`sea_orm::ConnectionTrait` is implemented for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::{Hooks, Next, RecordExecuteEvent};
    /// use goforward_core::sea_orm::{ConnectionTrait, Statement};
    ///
    /// let hooks = Hooks::new();
    /// hooks.on_record_create_execute().bind_tagged(["todos"], "audit", 0,
    ///     |e: RecordExecuteEvent, next: Next<RecordExecuteEvent>| async move {
    ///         let backend = e.tx().get_database_backend();
    ///         e.tx()
    ///             .execute_raw(Statement::from_string(backend, "INSERT INTO audit (what) VALUES ('todo')"))
    ///             .await?;
    ///         next.run(e).await
    ///     });
    /// ```
    pub fn tx(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

impl Tagged for RecordExecuteEvent {
    fn tags(&self) -> Vec<&str> {
        self.event.tags()
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.event.has_tag(tag)
    }
}

/// The event of the `on_record_after_*_error` hooks: a write that failed
/// and was rolled back (or never started).
///
/// Handlers are notified only; the original error is returned to the caller
/// whatever they do.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct RecordErrorEvent {
    /// Which write failed.
    pub action: RecordAction,
    /// The write as it was before the transaction began.
    pub event: RecordEvent,
    /// The error's stable machine code ([`Error::code`]), e.g. `core.database_error`.
    pub code: &'static str,
    /// The error's full text (may contain database details: log it, do not
    /// send it to clients).
    pub message: String,
    /// The HTTP status the error maps to.
    pub status: u16,
}

impl RecordErrorEvent {
    /// The notice of `error` for a failed `action` on `event` (core builds
    /// it; public so handlers can be tested in isolation).
    pub fn new(action: RecordAction, event: RecordEvent, error: &Error) -> Self {
        Self {
            action,
            event,
            code: error.code(),
            message: error.to_string(),
            status: error.status_code().as_u16(),
        }
    }
}

impl Tagged for RecordErrorEvent {
    fn tags(&self) -> Vec<&str> {
        self.event.tags()
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.event.has_tag(tag)
    }
}

/// Runs one write through the record lifecycle and returns the written event.
///
/// 1. `on_record_<action>` (wrap) handlers; the rest happens only if they all
///    call `next`. A handler that returns `Ok` without calling `next` stops
///    here: no transaction, no SQL, no other hook, nothing published; its
///    event is returned.
/// 2. A transaction begins on `db`.
/// 3. `on_record_<action>_execute` handlers run inside it, then `execute`
///    (the actual SQL, run with [`RecordExecuteEvent::tx`]; it fills
///    `event.record` with the written row and returns the event).
/// 4. Commit.
/// 5. If `bus` is given, a [`RecordChanged`] is published (a publish failure
///    is logged, not returned: the write did commit).
/// 6. `on_record_after_<action>_success` handlers (an error from them is
///    logged, not returned).
///
/// If any step from 2 to 4 fails, the transaction is rolled back, the
/// `on_record_after_<action>_error` handlers are notified, nothing is
/// published and the error is returned.
///
/// `execute` and the handlers must be `'static`: clone what they need.
///
/// # Errors
///
/// The error of a wrap or execute handler, of `execute`, of the database
/// (begin/commit, as [`Error::from_db`] classifies it), or
/// [`Error::Internal`] when a handler kept a clone of the transaction.
///
/// # Examples
///
/// ```
/// use goforward_core::hooks::{Hooks, RecordAction, RecordEvent, run_record_write};
/// use goforward_core::sea_orm::{ConnectionTrait, Statement};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> goforward_core::Result<()> {
/// let db = goforward_core::db::connect_url("sqlite::memory:").await?;
/// db.execute_unprepared("CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL)").await?;
/// let hooks = Hooks::new();
///
/// let event = RecordEvent::new("main", "todos", json!({ "title": "milk" }));
/// let written = run_record_write(&hooks, &db, None, RecordAction::Create, event, |mut e| async move {
///     let backend = e.tx().get_database_backend();
///     let title = e.event.record["title"].as_str().unwrap_or_default().to_owned();
///     let row = e.tx().query_one_raw(Statement::from_sql_and_values(
///         backend,
///         "INSERT INTO todos (title) VALUES (?) RETURNING id",
///         [title.clone().into()],
///     )).await?;
///     let id: i64 = row.map(|r| r.try_get("", "id")).transpose()?.unwrap_or_default();
///     e.event.record = json!({ "id": id, "title": title });
///     Ok(e)
/// })
/// .await?;
/// assert_eq!(written.record["id"], 1);
/// # Ok(())
/// # }
/// ```
pub async fn run_record_write<F, Fut>(
    hooks: &Hooks,
    db: &DatabaseConnection,
    bus: Option<&SharedBus>,
    action: RecordAction,
    event: RecordEvent,
    execute: F,
) -> Result<RecordEvent>
where
    F: FnOnce(RecordExecuteEvent) -> Fut + Send + 'static,
    Fut: Future<Output = Result<RecordExecuteEvent>> + Send + 'static,
{
    let lifecycle = hooks.record(action).clone();
    let wrap = lifecycle.wrap().clone();
    let db = db.clone();
    let bus = bus.cloned();
    wrap.trigger(event, move |event| {
        transact(lifecycle, db, bus, action, event, execute)
    })
    .await
}

/// The last link of the wrap chain: transaction, execute hooks, SQL, commit,
/// publish, after hooks.
async fn transact<F, Fut>(
    lifecycle: RecordHooks,
    db: DatabaseConnection,
    bus: Option<SharedBus>,
    action: RecordAction,
    event: RecordEvent,
    execute: F,
) -> Result<RecordEvent>
where
    F: FnOnce(RecordExecuteEvent) -> Fut + Send + 'static,
    Fut: Future<Output = Result<RecordExecuteEvent>> + Send + 'static,
{
    let tx = match db.begin().await {
        Ok(tx) => Arc::new(tx),
        Err(err) => return fail(&lifecycle, action, event, Error::from_db(err)).await,
    };
    // The execute chain consumes the event even when it fails; the error
    // hooks get the write as it was before.
    let before = event.clone();
    let executed = lifecycle
        .execute()
        .trigger(
            RecordExecuteEvent {
                action,
                event,
                tx: Arc::clone(&tx),
            },
            execute,
        )
        .await;

    let written = match executed {
        Ok(RecordExecuteEvent {
            event, tx: handed, ..
        }) => {
            drop(handed);
            match Arc::try_unwrap(tx) {
                Ok(tx) => match tx.commit().await {
                    Ok(()) => event,
                    Err(err) => return fail(&lifecycle, action, before, Error::from_db(err)).await,
                },
                Err(kept) => {
                    // Dropping our handle leaves the rollback to whoever holds
                    // the last clone; the write is never committed.
                    drop(kept);
                    let err = Error::Internal(format!(
                        "a `{}` handler kept the transaction of a write to `{}`; the write was rolled back",
                        lifecycle.execute().name(),
                        before.table
                    ));
                    return fail(&lifecycle, action, before, err).await;
                }
            }
        }
        Err(err) => {
            rollback(tx).await;
            return fail(&lifecycle, action, before, err).await;
        }
    };

    let commit_timestamp = Utc::now();
    if let Some(bus) = bus {
        publish(&bus, action, &written, commit_timestamp).await;
    }

    if lifecycle.after_success().is_empty() {
        return Ok(written);
    }
    match lifecycle.after_success().emit(written.clone()).await {
        Ok(event) => Ok(event),
        Err(err) => {
            tracing::warn!(
                hook = lifecycle.after_success().name(),
                table = %written.table,
                error = %err,
                "after-success hook failed; the write is committed"
            );
            Ok(written)
        }
    }
}

/// Runs several writes of the same kind in **one** transaction, each through
/// the record lifecycle (used for bulk inserts and filtered updates/deletes).
///
/// 1. `on_record_<action>` (wrap) handlers run for each event in turn, before
///    the transaction; an event whose chain stops without calling `next` is
///    dropped. (Unlike [`run_record_write`], code a wrap handler runs after
///    `next` returns runs *before* the write: `next` only approves the event.)
/// 2. One transaction begins; for each approved event the
///    `on_record_<action>_execute` handlers run, then `execute`.
/// 3. Commit. Then, for each event that wrote something, a [`RecordChanged`]
///    is published and the `on_record_after_<action>_success` handlers run.
///    An executor reports "nothing written" (an upsert that ignored a
///    duplicate, a row deleted meanwhile) by setting `record` to null (and,
///    for a delete, `old_record` to `None`); such events are not returned.
///
/// If any step fails, the transaction is rolled back, the
/// `on_record_after_<action>_error` handlers are notified for every approved
/// event, nothing is published and the error is returned.
///
/// # Errors
/// As [`run_record_write`].
pub async fn run_record_writes<F, Fut>(
    hooks: &Hooks,
    db: &DatabaseConnection,
    bus: Option<&SharedBus>,
    action: RecordAction,
    events: Vec<RecordEvent>,
    execute: F,
) -> Result<Vec<RecordEvent>>
where
    F: Fn(RecordExecuteEvent) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<RecordExecuteEvent>> + Send + 'static,
{
    let lifecycle = hooks.record(action).clone();
    let mut approved = Vec::with_capacity(events.len());
    for event in events {
        let passed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&passed);
        let event = lifecycle
            .wrap()
            .trigger(event, move |event| async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(event)
            })
            .await?;
        if passed.load(std::sync::atomic::Ordering::SeqCst) {
            approved.push(event);
        }
    }
    if approved.is_empty() {
        return Ok(approved);
    }

    let before = approved.clone();
    let fail_all = |error: Error| {
        let lifecycle = lifecycle.clone();
        let before = before.clone();
        async move {
            for event in before {
                let notice = RecordErrorEvent::new(action, event, &error);
                if let Err(hook_err) = lifecycle.after_error().emit(notice).await {
                    tracing::warn!(
                        hook = lifecycle.after_error().name(),
                        error = %hook_err,
                        "after-error hook failed"
                    );
                }
            }
            Err::<Vec<RecordEvent>, Error>(error)
        }
    };

    let tx = match db.begin().await {
        Ok(tx) => Arc::new(tx),
        Err(err) => return fail_all(Error::from_db(err)).await,
    };
    let mut written = Vec::with_capacity(approved.len());
    for event in approved {
        let executed = lifecycle
            .execute()
            .trigger(
                RecordExecuteEvent {
                    action,
                    event,
                    tx: Arc::clone(&tx),
                },
                execute.clone(),
            )
            .await;
        match executed {
            Ok(RecordExecuteEvent {
                event, tx: handed, ..
            }) => {
                drop(handed);
                written.push(event);
            }
            Err(err) => {
                rollback(tx).await;
                return fail_all(err).await;
            }
        }
    }
    match Arc::try_unwrap(tx) {
        Ok(tx) => {
            if let Err(err) = tx.commit().await {
                return fail_all(Error::from_db(err)).await;
            }
        }
        Err(kept) => {
            drop(kept);
            return fail_all(Error::Internal(format!(
                "a `{}` handler kept the transaction of a bulk write; it was rolled back",
                lifecycle.execute().name()
            )))
            .await;
        }
    }

    let commit_timestamp = Utc::now();
    let mut out = Vec::with_capacity(written.len());
    for event in written {
        let nothing = event.record.is_null()
            && (action != RecordAction::Delete || event.old_record.is_none());
        if nothing {
            continue;
        }
        if let Some(bus) = bus {
            publish(bus, action, &event, commit_timestamp).await;
        }
        if lifecycle.after_success().is_empty() {
            out.push(event);
            continue;
        }
        match lifecycle.after_success().emit(event.clone()).await {
            Ok(e) => out.push(e),
            Err(err) => {
                tracing::warn!(
                    hook = lifecycle.after_success().name(),
                    table = %event.table,
                    error = %err,
                    "after-success hook failed; the write is committed"
                );
                out.push(event);
            }
        }
    }
    Ok(out)
}

/// Rolls back explicitly when we own the last handle; otherwise the
/// transaction rolls back when its last clone is dropped.
async fn rollback(tx: Arc<DatabaseTransaction>) {
    if let Ok(tx) = Arc::try_unwrap(tx)
        && let Err(err) = tx.rollback().await
    {
        tracing::warn!(error = %err, "rollback failed");
    }
}

/// Notifies the after-error hooks and returns `error`.
async fn fail(
    lifecycle: &RecordHooks,
    action: RecordAction,
    event: RecordEvent,
    error: Error,
) -> Result<RecordEvent> {
    let notice = RecordErrorEvent::new(action, event, &error);
    if let Err(hook_err) = lifecycle.after_error().emit(notice).await {
        tracing::warn!(
            hook = lifecycle.after_error().name(),
            error = %hook_err,
            original = %error,
            "after-error hook failed"
        );
    }
    Err(error)
}

/// Announces a committed write; failures are logged.
async fn publish(
    bus: &SharedBus,
    action: RecordAction,
    written: &RecordEvent,
    commit_timestamp: chrono::DateTime<Utc>,
) {
    let (record, old_record) = match action {
        RecordAction::Create => (Some(written.record.clone()), None),
        RecordAction::Update => (Some(written.record.clone()), written.old_record.clone()),
        RecordAction::Delete => (
            None,
            written
                .old_record
                .clone()
                .or_else(|| (!written.record.is_null()).then(|| written.record.clone())),
        ),
    };
    let change = RecordChanged {
        schema: written.schema.clone(),
        table: written.table.clone(),
        kind: action.change_kind(),
        record,
        old_record,
        commit_timestamp,
    };
    if let Err(err) = bus.publish(Event::RecordChanged(change)).await {
        tracing::warn!(
            table = %written.table,
            kind = %action.change_kind(),
            error = %err,
            "could not publish a committed record change"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sea_orm::{ConnectionTrait, Statement};
    use serde_json::json;

    use super::*;
    use crate::bus::MemoryBus;

    async fn db() -> DatabaseConnection {
        let db = crate::db::connect_url("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
            .await
            .unwrap();
        db
    }

    /// Inserts `record.v`; `record.skip` reports "nothing written".
    async fn insert(mut e: RecordExecuteEvent) -> Result<RecordExecuteEvent> {
        if e.event.record["skip"] == json!(true) {
            e.event.record = Value::Null;
            return Ok(e);
        }
        let v = e.event.record["v"].as_str().unwrap_or_default().to_owned();
        let backend = e.tx().get_database_backend();
        e.tx()
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO t (v) VALUES (?)",
                [v.into()],
            ))
            .await?;
        Ok(e)
    }

    async fn count(db: &DatabaseConnection) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) FROM t",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    fn events(values: &[Value]) -> Vec<RecordEvent> {
        values
            .iter()
            .map(|v| RecordEvent::new("main", "t", v.clone()))
            .collect()
    }

    #[tokio::test]
    async fn batch_commits_together_and_publishes_each_written_row() {
        let db = db().await;
        let hooks = Hooks::new();
        let bus: SharedBus = Arc::new(MemoryBus::new(16));
        let mut sub = bus.subscribe();
        let after = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&after);
        hooks
            .on_record_after_create_success()
            .bind("count", 0, move |e: RecordEvent, next| {
                seen.fetch_add(1, Ordering::SeqCst);
                next.run(e)
            });
        // A wrap handler that stops one event without calling next.
        hooks
            .on_record_create()
            .bind("skip_c", 0, |e: RecordEvent, next| async move {
                if e.record["v"] == json!("c") {
                    return Ok(e);
                }
                next.run(e).await
            });
        let written = run_record_writes(
            &hooks,
            &db,
            Some(&bus),
            RecordAction::Create,
            events(&[
                json!({"v": "a"}),
                json!({"v": "c"}),
                json!({"skip": true}),
                json!({"v": "b"}),
            ]),
            insert,
        )
        .await
        .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(count(&db).await, 2);
        assert_eq!(after.load(Ordering::SeqCst), 2);
        for expected in ["a", "b"] {
            let envelope = sub.recv().await.unwrap();
            let Event::RecordChanged(change) = &envelope.event else {
                panic!("expected a record change");
            };
            assert_eq!(change.record.as_ref().unwrap()["v"], expected);
        }
    }

    #[tokio::test]
    async fn one_failure_rolls_back_the_batch_and_notifies_every_event() {
        let db = db().await;
        let hooks = Hooks::new();
        let bus: SharedBus = Arc::new(MemoryBus::new(16));
        let mut sub = bus.subscribe();
        let errors = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&errors);
        hooks
            .on_record_after_create_error()
            .bind("count", 0, move |e: RecordErrorEvent, next| {
                seen.fetch_add(1, Ordering::SeqCst);
                next.run(e)
            });
        let result = run_record_writes(
            &hooks,
            &db,
            Some(&bus),
            RecordAction::Create,
            events(&[json!({"v": "a"}), json!({"v": "b"}), json!({"v": "a"})]),
            insert,
        )
        .await;
        assert!(result.is_err(), "the duplicate fails the batch");
        assert_eq!(count(&db).await, 0, "nothing committed");
        assert_eq!(errors.load(Ordering::SeqCst), 3);
        bus.publish(Event::Custom {
            name: "marker".into(),
            payload: Value::Null,
        })
        .await
        .ok();
        let first = sub.recv().await.unwrap();
        assert!(
            !matches!(first.event, Event::RecordChanged(_)),
            "nothing announced"
        );
    }
}
