//! `POST` (insert / upsert), `PATCH` (update) and `DELETE` on
//! `/rest/v1/{table}`: one transaction per request, every row through core's
//! record hooks, so each committed row is announced on the bus.

mod delete;
mod insert;
mod update;

pub use delete::delete;
pub use insert::post;
pub use update::patch;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use goforward_core::{
    Principal,
    access::{Action, Decision},
    filter::SqlBackend,
    hooks::{RecordAction, RecordEvent, RecordExecuteEvent, run_record_writes},
    sea_orm::{ConnectionTrait, DatabaseTransaction},
    sea_query::Condition,
};
use serde_json::{Map, Value};

use super::{RestState, anonymous, decision_cond, required_values, with_range};
use crate::error::{RestError, Result};
use crate::output;
use crate::plan::{self, Cond, OutCol, Target, read, values, write as build};
use crate::query::{
    Accept, ParsedQuery, Prefer,
    headers::{Resolution, Return, check_profile},
    parse_query,
};
use crate::schema::Table;

/// Carries a [`RestError`] out of the hook runner (which speaks core errors).
#[derive(Clone, Default)]
pub(super) struct Slot(Arc<Mutex<Option<RestError>>>);

impl Slot {
    pub(super) fn fail(&self, err: RestError) -> goforward_core::Error {
        let public = goforward_core::Error::bad_request("rest.write_refused", err.to_string());
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(err);
        }
        public
    }

    pub(super) fn take(&self, err: goforward_core::Error) -> RestError {
        match self.0.lock().ok().and_then(|mut s| s.take()) {
            Some(e) => e,
            None => RestError::from_core(err),
        }
    }
}

pub(super) struct Common {
    pub(super) resolved: super::Resolved,
    pub(super) query: ParsedQuery,
    pub(super) prefer: Prefer,
    pub(super) accept: Accept,
    /// The write ends in a rollback (`rest.tx_end`, `Prefer: tx=`).
    pub(super) rollback: bool,
    /// PostgreSQL settings of the write's transaction (statement timeout,
    /// native RLS role and claims).
    pub(super) settings: super::scope::PgSettings,
    /// `Prefer: timezone=` when applied (PostgreSQL): the representation is
    /// read back in that zone.
    pub(super) zone: Option<String>,
}

/// The SQL of one row's write, run inside the request's transaction.
pub(super) type WriteFn = Arc<
    dyn for<'a> Fn(
            &'a DatabaseTransaction,
            RecordEvent,
        ) -> Pin<
            Box<
                dyn Future<Output = std::result::Result<RecordEvent, goforward_core::Error>>
                    + Send
                    + 'a,
            >,
        > + Send
        + Sync,
>;

/// Gives a row writer its higher-ranked type.
pub(super) fn write_fn<F>(f: F) -> WriteFn
where
    F: for<'a> Fn(
            &'a DatabaseTransaction,
            RecordEvent,
        ) -> Pin<
            Box<
                dyn Future<Output = std::result::Result<RecordEvent, goforward_core::Error>>
                    + Send
                    + 'a,
            >,
        > + Send
        + Sync
        + 'static,
{
    Arc::new(f)
}

/// Runs the writes of a request in one transaction: through core's record
/// hooks (wrap hooks, execute hooks inside, commit, `RecordChanged` on the
/// bus, after-success hooks) — or, when the request ends in a rollback
/// (`Prefer: tx=rollback`), through the wrap and execute hooks in a
/// transaction that is rolled back, without after hooks and without
/// announcing anything (see [`dry_run`]). Rows reported as "nothing
/// written" are left out, as core does.
pub(super) async fn execute(
    state: &RestState,
    action: RecordAction,
    events: Vec<RecordEvent>,
    rollback: bool,
    settings: &super::scope::PgSettings,
    write: WriteFn,
) -> std::result::Result<Vec<RecordEvent>, goforward_core::Error> {
    let write = with_settings(settings, write);
    // SQLite under a statement timeout: begin on the guarded pool and arm
    // the deadline at the write's first statement; dropped (disarmed) when
    // this function returns or the request is cancelled.
    #[cfg(feature = "sqlite")]
    let deadline = state
        .sqlite_writes
        .as_ref()
        .map(|w| Arc::new(super::scope::WriteDeadline::new(Arc::clone(w))));
    #[cfg(feature = "sqlite")]
    let (db, write) = match &deadline {
        Some(hold) => {
            hold.prepare()
                .await
                .map_err(goforward_core::Error::from_db)?;
            (hold.db().clone(), with_deadline(Arc::clone(hold), write))
        }
        None => (state.ctx.db().clone(), write),
    };
    #[cfg(not(feature = "sqlite"))]
    let db = state.ctx.db().clone();
    if !rollback {
        let executor = move |mut e: RecordExecuteEvent| {
            let write = Arc::clone(&write);
            async move {
                let event = e.event.clone();
                let written = write(e.tx(), event).await?;
                e.event = written;
                Ok(e)
            }
        };
        return run_record_writes(
            state.ctx.hooks(),
            &db,
            Some(state.ctx.bus()),
            action,
            events,
            executor,
        )
        .await;
    }
    dry_run(state, &db, action, events, write).await
}

/// A write that ends in a rollback (`Prefer: tx=rollback`, `rest.tx_end`):
/// the wrap hooks run as core runs them (in order, before the
/// transaction; a handler that does not call `next` drops its row), then in
/// one transaction each approved row goes through the `…_execute` hooks and
/// its SQL, and everything is rolled back. The after-success/after-error
/// hooks do not run and nothing is announced (nothing was committed, and
/// nothing failed to commit).
///
/// Core's runner only commits, and an execute event (which carries the
/// transaction) can only be made by core: so the runner is given an empty
/// hook registry and one carrier event; our executor receives the event,
/// runs the real execute chain for every row on its transaction, keeps
/// the outcome, and fails on purpose so that core rolls the transaction back.
async fn dry_run(
    state: &RestState,
    db: &goforward_core::sea_orm::DatabaseConnection,
    action: RecordAction,
    events: Vec<RecordEvent>,
    write: WriteFn,
) -> std::result::Result<Vec<RecordEvent>, goforward_core::Error> {
    let lifecycle = state.ctx.hooks().record(action).clone();
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
    let Some(carrier) = approved.first().cloned() else {
        return Ok(approved);
    };
    type Outcome = std::result::Result<Vec<RecordEvent>, goforward_core::Error>;
    let outcome: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let rows = Arc::new(Mutex::new(approved));
    let executor = {
        let outcome = Arc::clone(&outcome);
        move |mut e: RecordExecuteEvent| {
            let outcome = Arc::clone(&outcome);
            let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(|p| p.into_inner()));
            let lifecycle = lifecycle.clone();
            let write = Arc::clone(&write);
            async move {
                let mut out = Vec::with_capacity(rows.len());
                let mut failed = None;
                for row in rows {
                    e.event = row;
                    let write = Arc::clone(&write);
                    let finalizer = move |mut e: RecordExecuteEvent| async move {
                        let event = e.event.clone();
                        e.event = write(e.tx(), event).await?;
                        Ok(e)
                    };
                    match lifecycle.execute().trigger(e, finalizer).await {
                        Ok(done) => {
                            let nothing = done.event.record.is_null()
                                && (action != RecordAction::Delete
                                    || done.event.old_record.is_none());
                            if !nothing {
                                out.push(done.event.clone());
                            }
                            e = done;
                        }
                        Err(err) => {
                            failed = Some(err);
                            break;
                        }
                    }
                }
                let result = match failed {
                    Some(err) => Err(err),
                    None => Ok(out),
                };
                if let Ok(mut slot) = outcome.lock() {
                    *slot = Some(result);
                }
                // Fail on purpose: core rolls the transaction back.
                Err::<RecordExecuteEvent, _>(goforward_core::Error::Internal(
                    "rest: tx=rollback".into(),
                ))
            }
        }
    };
    let none = goforward_core::hooks::Hooks::new();
    let ran = run_record_writes(&none, db, None, action, vec![carrier], executor).await;
    let kept = outcome.lock().ok().and_then(|mut slot| slot.take());
    match (kept, ran) {
        (Some(result), _) => result,
        // The transaction could not begin: its error.
        (None, Err(err)) => Err(err),
        (None, Ok(_)) => Err(goforward_core::Error::Internal(
            "rest: the rolled-back write did not run".into(),
        )),
    }
}

/// Arms the SQLite write deadline before each row's SQL (the first call
/// arms it, later ones keep it).
#[cfg(feature = "sqlite")]
fn with_deadline(hold: Arc<super::scope::WriteDeadline>, write: WriteFn) -> WriteFn {
    write_fn(move |tx, event| {
        hold.arm();
        write(tx, event)
    })
}

/// Applies `settings` in the write's transaction before its first row
/// (once per request: every row runs in the same transaction).
fn with_settings(settings: &super::scope::PgSettings, write: WriteFn) -> WriteFn {
    if settings.is_empty() {
        return write;
    }
    let settings = Arc::new(settings.clone());
    let applied = Arc::new(std::sync::atomic::AtomicBool::new(false));
    write_fn(move |tx, event| {
        let write = Arc::clone(&write);
        let settings = Arc::clone(&settings);
        let first = !applied.swap(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if first {
                super::scope::apply_db(tx, &settings)
                    .await
                    .map_err(goforward_core::Error::Database)?;
            }
            write(tx, event).await
        })
    })
}

pub(super) async fn common(
    req: &HttpRequest,
    state: &RestState,
    table: &str,
    principal: &Principal,
    allow_embeds: bool,
) -> Result<Common> {
    check_profile(req, true)?;
    let resolved = state.resolve_as(table, principal)?;
    if resolved.table.is_view && resolved.backend == SqlBackend::Sqlite {
        return Err(RestError::Unsupported(format!(
            "{} is a view: SQLite views cannot be written",
            resolved.table.name
        )));
    }
    let query = parse_query(req.query_string(), &state.limits)?;
    if !query.embedded.is_empty() {
        return Err(RestError::Unsupported(
            "filters on embedded resources are not supported in writes".into(),
        ));
    }
    if !allow_embeds
        && query.select.as_deref().is_some_and(|items| {
            items
                .iter()
                .any(|i| matches!(i, crate::query::SelectItem::Embed { .. }))
        })
    {
        return Err(RestError::Unsupported(
            "embedded resources in the representation of a delete are not supported yet".into(),
        ));
    }
    if query
        .select
        .as_deref()
        .is_some_and(crate::query::select::has_aggregate)
    {
        return Err(RestError::Unsupported(
            "aggregates are not supported in the representation of a write".into(),
        ));
    }
    let mut prefer = Prefer::from_request(req);
    prefer.check()?;
    let (rollback, applied) = state.tx_end.rollback(prefer.tx);
    if let Some(tx) = prefer.tx {
        let item = if tx { "tx=rollback" } else { "tx=commit" };
        prefer.settle(item.to_owned(), applied)?;
    }
    let zone = match prefer.timezone.clone() {
        None => None,
        Some(zone) => {
            // Timestamps written are absolute; the zone shapes the
            // representation, read back by primary key after commit in a
            // transaction set to that zone (PostgreSQL; not for DELETE,
            // whose rows are gone, nor a rolled-back write).
            let usable = resolved.backend == SqlBackend::Postgres
                && allow_embeds
                && !rollback
                && prefer.return_ == Return::Representation
                && !resolved.table.primary_key.is_empty()
                && super::read::timezone_exists(state, &zone).await?;
            prefer.settle(format!("timezone={zone}"), usable)?;
            usable.then_some(zone)
        }
    };
    let accept = Accept::from_request(req)?;
    let settings = match resolved.backend {
        SqlBackend::Postgres => state.pg_settings(principal, None)?,
        _ => Vec::new(),
    };
    Ok(Common {
        resolved,
        query,
        prefer,
        accept,
        rollback,
        settings,
        zone,
    })
}

/// The columns a POST or PATCH representation returns, embeds included
/// (those the caller may read). Embeds are read back by primary key, so a
/// table without one cannot embed in a write's representation.
///
/// # Errors
/// A bad `select`, or 400 when embedding on a table without a primary key.
pub(super) async fn representation_columns(
    state: &RestState,
    principal: &Principal,
    c: &Common,
    target: &Target<'_>,
) -> Result<Vec<OutCol>> {
    let embeds = state.embeds(principal, c.query.select.as_deref()).await;
    let cols = target.select_list_with(c.query.select.as_deref(), &embeds)?;
    if c.rollback
        && c.prefer.return_ == Return::Representation
        && cols.iter().any(|col| col.derived)
    {
        return Err(RestError::Unsupported(
            "embedded resources in the representation of a rolled-back write are not supported"
                .into(),
        ));
    }
    if cols.iter().any(|col| col.shape.is_some()) && target.table.primary_key.is_empty() {
        return Err(RestError::Unsupported(
            "embedding in a write representation needs a primary key".into(),
        ));
    }
    Ok(cols)
}

/// Reads the request body up to the configured `server.json_limit`.
///
/// # Errors
/// 413 in PostgREST's shape beyond the limit, 400 `PGRST102` when the body
/// cannot be read.
pub(crate) async fn read_body(state: &RestState, payload: web::Payload) -> Result<web::Bytes> {
    let limit = state.ctx.config().server.json_limit;
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(RestError::InvalidBody(
            "could not read the request body".into(),
        )),
        Err(_) => Err(RestError::Core(goforward_core::Error::PayloadTooLarge {
            limit,
        })),
    }
}

pub(super) fn body_json(body: &[u8]) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RestError::InvalidBody("Empty or invalid json".into()));
    }
    serde_json::from_slice(body).map_err(|_| RestError::InvalidBody("Empty or invalid json".into()))
}

/// Validates and converts `record`'s values; keys must be visible columns.
pub(super) fn coerce_record(
    target: &Target<'_>,
    record: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in record {
        let col = target
            .table
            .column(k)
            .ok_or_else(|| RestError::BodyColumnNotFound {
                table: target.table.name.clone(),
                column: k.chars().take(63).collect(),
            })?;
        if v.is_null() && !col.nullable {
            return Err(RestError::NotNullViolation {
                table: target.table.name.clone(),
                column: col.name.clone(),
            });
        }
        out.insert(
            col.name.clone(),
            values::coerce(&target.table.name, col, v, target.backend)?,
        );
    }
    Ok(out)
}

/// Rows of a write as the caller may read them, projected by `select`.
pub(super) fn representation(
    rows: &[Value],
    select_decision: &Decision,
    cols: &[OutCol],
) -> Vec<Vec<Value>> {
    rows.iter()
        .filter(|r| select_decision.permits(r))
        .map(|r| plan::project(r, cols))
        .collect()
}

pub(super) fn respond(
    c: &Common,
    status_with_body: StatusCode,
    status_minimal: StatusCode,
    content_range: String,
    rows: Vec<Vec<Value>>,
    cols: &[OutCol],
) -> Result<HttpResponse> {
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let mut applied = c.prefer.applied.clone();
    if c.prefer.return_ != Return::Representation {
        applied.retain(|a| !a.starts_with("return=representation"));
    }
    let mut res = with_range(
        if c.prefer.return_ == Return::Representation {
            status_with_body
        } else {
            status_minimal
        },
        content_range,
    );
    if !applied.is_empty() {
        res.insert_header(("Preference-Applied", applied.join(", ")));
    }
    if c.prefer.return_ != Return::Representation {
        return Ok(res.finish());
    }
    Ok(match c.accept {
        Accept::Object => {
            if rows.len() != 1 {
                return Err(RestError::Singular { rows: rows.len() });
            }
            res.content_type("application/vnd.pgrst.object+json; charset=utf-8")
                .body(output::object(&names, &rows[0]))
        }
        Accept::Csv => res
            .content_type("text/csv; charset=utf-8")
            .body(output::csv(&names, &rows)),
        Accept::Json => res
            .content_type("application/json; charset=utf-8")
            .body(output::array(&names, &rows)),
    })
}

pub(super) fn total_range(prefer: &Prefer, n: usize, update: bool) -> String {
    let total = if prefer.count {
        n.to_string()
    } else {
        "*".to_owned()
    };
    if update && n > 0 {
        format!("0-{}/{total}", n - 1)
    } else {
        format!("*/{total}")
    }
}

/// The representation of written rows: projected in memory, or — when the
/// select list embeds related tables — read back after commit by primary key
/// (under the caller's select policy), in write order.
pub(super) async fn body_rows(
    state: &RestState,
    target: &Target<'_>,
    c: &Common,
    cols: &[OutCol],
    rows: &[Value],
    select_decision: &Decision,
) -> Result<Vec<Vec<Value>>> {
    if c.prefer.return_ != Return::Representation {
        return Ok(Vec::new());
    }
    if cols.iter().all(|col| !col.derived) && c.zone.is_none() {
        return Ok(representation(rows, select_decision, cols));
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for row in rows {
        any = any.add(build::key_cond(target, row)?);
    }
    let mut cond = Condition::all().add(any);
    if let Some(policy) = decision_cond(select_decision) {
        cond = cond.add(target.render(&policy)?);
    }
    for inner in cols.iter().filter_map(|col| col.inner.clone()) {
        cond = cond.add(inner);
    }
    // The output columns, then the key to restore write order.
    let mut all = cols.to_vec();
    for key in &target.table.primary_key {
        let Some(col) = target.table.column(key) else {
            continue;
        };
        let (expr, decode) = target.typed(col);
        all.push(OutCol {
            name: key.clone(),
            expr: expr.clone(),
            decode,
            field: crate::query::Field {
                column: key.clone(),
                path: Vec::new(),
                as_text: false,
            },
            cast: None,
            raw: expr,
            shape: None,
            inner: None,
            aggregate: false,
            derived: false,
        });
    }
    let stmt = read::select(target, &all, cond, &[], None, 0)?;
    let db = state.ctx.db();
    let stmt = db.get_database_backend().build(&stmt);
    let found = match &c.zone {
        // In the caller's zone: a transaction with `SET LOCAL timezone`.
        Some(zone) => {
            let mut settings = state.pg_timeout_settings();
            settings.push(("timezone", zone.clone()));
            super::scope::read(state, &settings, false, stmt, None)
                .await?
                .0
        }
        None => db.query_all_raw(stmt).await.map_err(RestError::from_db)?,
    };
    let zoned = c.zone.is_some();
    let decodes: Vec<_> = all
        .iter()
        .map(|col| match col.decode {
            // The key columns (after the output ones) stay as written, to
            // match the written rows.
            plan::Decode::Timestamptz if zoned => plan::Decode::TimestamptzZoned,
            d => d,
        })
        .collect();
    let mut keyed = Vec::with_capacity(found.len());
    for r in &found {
        let mut values =
            read::decode_row(r, &decodes, target.backend).map_err(RestError::from_db)?;
        let mut key = values.split_off(cols.len());
        if zoned {
            // A timestamptz key compares as the UTC value written.
            for (k, pk) in key.iter_mut().zip(&target.table.primary_key) {
                if let Some(col) = target.table.column(pk)
                    && col.kind == crate::schema::ColumnKind::Timestamptz
                {
                    *k = plan::Decode::Timestamptz.normalize(std::mem::take(k), target.backend);
                }
            }
        }
        for (value, col) in values.iter_mut().zip(cols) {
            if let Some(shape) = &col.shape {
                *value = shape.normalize_in(std::mem::take(value), target.backend, zoned);
            }
        }
        keyed.push((key, values));
    }
    let mut out = Vec::with_capacity(keyed.len());
    for row in rows {
        let key: Vec<Value> = target
            .table
            .primary_key
            .iter()
            .map(|k| row.get(k).cloned().unwrap_or(Value::Null))
            .collect();
        if let Some(pos) = keyed.iter().position(|(k, _)| *k == key) {
            out.push(keyed.swap_remove(pos).1);
        }
    }
    Ok(out)
}

/// Decodes a returned full row.
pub(super) fn returned(
    table: &Table,
    backend: SqlBackend,
    row: Option<goforward_core::sea_orm::QueryResult>,
) -> std::result::Result<Value, goforward_core::Error> {
    let Some(row) = row else {
        return Ok(Value::Null);
    };
    let target = Target {
        table,
        visible: table,
        backend,
        alias: None,
    };
    let (decodes, names) = build::full_row_decodes(&target);
    let values =
        read::decode_row(&row, &decodes, backend).map_err(goforward_core::Error::from_db)?;
    Ok(build::row_object(&names, values))
}

/// The rows a PATCH / DELETE addresses: the client's filters AND the
/// action's policy AND the select policy, read before the transaction.
pub(super) async fn candidates(
    state: &RestState,
    target: &Target<'_>,
    query: &ParsedQuery,
    policies: &[Option<Cond>],
) -> Result<Vec<Value>> {
    let mut cond = read::where_cond(target, &query.filters, None)?;
    for p in policies.iter().flatten() {
        cond = cond.add(target.render(p)?);
    }
    let (exprs, decodes, names) = build::full_row(target);
    let mut q = goforward_core::sea_query::Query::select();
    for (i, e) in exprs.into_iter().enumerate() {
        q.expr_as(e, goforward_core::sea_query::Alias::new(format!("c{i}")));
    }
    q.from(goforward_core::sea_query::Alias::new(
        target.table.name.as_str(),
    ))
    .cond_where(cond);
    // Under the statement timeout like any read (a slow filter expression
    // is cancelled here, before the transaction).
    let settings = match target.backend {
        SqlBackend::Postgres => state.pg_timeout_settings(),
        _ => Vec::new(),
    };
    let stmt = state.ctx.db().get_database_backend().build(&q);
    let (rows, _) = super::scope::read(state, &settings, false, stmt, None).await?;
    rows.iter()
        .map(|r| {
            read::decode_row(r, &decodes, target.backend)
                .map(|v| build::row_object(&names, v))
                .map_err(RestError::from_db)
        })
        .collect()
}

/// The row's key AND the action's policy: the WHERE of its UPDATE / DELETE.
pub(super) fn row_cond(
    target: &Target<'_>,
    row: &Value,
    policy: Option<&Cond>,
) -> Result<Condition> {
    let mut cond = build::key_cond(target, row)?;
    if let Some(p) = policy {
        cond = cond.add(target.render(p)?);
    }
    Ok(cond)
}
