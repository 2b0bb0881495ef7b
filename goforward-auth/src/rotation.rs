//! Group commit of refresh-token rotations.
//!
//! Concurrent `grant_type=refresh_token` requests join a queue; one task at
//! a time ([`MAX_DRAINERS`]) takes everything queued (up to [`MAX_BATCH`])
//! and rotates the whole batch with a handful of statements instead of
//! five per refresh:
//!
//! 1. one joined read of the tokens, their sessions and users
//!    (`token_hash IN (…)`);
//! 2. one multi-row `INSERT … ON CONFLICT (token_hash) DO NOTHING
//!    RETURNING parent` of the children (the returned parents are the
//!    rotations this batch won), then one `UPDATE … WHERE id IN (…)` marking
//!    those parents revoked, and, at most once per touch interval and
//!    session, one `UPDATE` of the sessions' `refreshed_at` — on SQLite under
//!    the in-process write lock;
//! 3. alongside the writes, the users' identities and factors for the user
//!    objects (two reads for the batch).
//!
//! The semantics are those of [`sessions::refresh`], which stays the path
//! for everything that is not a plain rotation: a token that is already
//! rotated (reuse within or after the interval), an expired session, a
//! banned or deleted user, a second copy of a token in the same batch (run
//! after the batch committed, so it finds the child like any concurrent
//! refresh), a child that a concurrent writer inserted first, and any
//! database error of the batch. Each request's answer then comes from that
//! path, alone, so one bad token in a batch never affects the others. The
//! writes keep the order of the single path (child first, then parent), so
//! a stop between them leaves the same recoverable state.
//!
//! Requests build their own responses (JWT, JSON) from what the batch
//! hands back, on their own worker, so the batch task only does the SQL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QueryTrait, SelectThreeModel, SelectorTrait, Statement,
    sea_query::{Expr, OnConflict},
};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::crypto::sha256_hex;
use crate::entity::{identity, mfa_factor, refresh_token, session, user};
use crate::error::{AuthError, Result};
use crate::sessions;
use crate::state::AuthState;
use crate::users;

/// Most rotations in one batch.
pub(crate) const MAX_BATCH: usize = 64;

/// The queue of refreshes waiting for a batch (one per [`AuthState`]).
#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rotation::Queue")
    }
}

#[derive(Default)]
struct Inner {
    pending: Vec<Job>,
    /// Tasks draining the queue (at most [`MAX_DRAINERS`]).
    drainers: usize,
}

/// Batches in flight at once. Two (the next batch reading while one
/// writes) measured no faster than one on SQLite, file or memory, so one
/// batch runs at a time.
const MAX_DRAINERS: usize = 1;

struct Job {
    token: String,
    reply: oneshot::Sender<Outcome>,
}

/// What the batch did with one request.
enum Outcome {
    /// Rotated: build the session object from this.
    Rotated(Box<Rotated>),
    /// Not a plain rotation: answer through [`sessions::refresh`].
    Single,
    /// No such token.
    NotFound,
}

struct Rotated {
    user: Arc<user::Model>,
    session: session::Model,
    child: String,
    /// The user's identities and factors; `None` if the batch could not
    /// read them (the request reads them itself then: the rotation stands).
    user_data: Option<UserData>,
}

type UserData = (Arc<Vec<identity::Model>>, Arc<Vec<mfa_factor::Model>>);

/// The `refresh_token` grant through the batch queue: rotates `token` and
/// returns the new session object (see the module docs).
///
/// # Errors
/// As [`sessions::refresh`].
pub async fn refresh(state: Arc<AuthState>, token: &str) -> Result<Value> {
    let (reply, answer) = oneshot::channel();
    let queue = &state.refresh_key.rotations;
    let lead = {
        let mut inner = queue.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.pending.push(Job {
            token: token.to_owned(),
            reply,
        });
        let lead = inner.drainers < MAX_DRAINERS;
        if lead {
            inner.drainers += 1;
        }
        lead
    };
    if lead {
        // A task of its own: a cancelled request must not stop the batch
        // that other requests wait for.
        tokio::spawn(drain(state.clone()));
    }
    match answer.await {
        Ok(Outcome::Rotated(r)) => match &r.user_data {
            Some((identities, factors)) => {
                let user_json = users::render(&r.user, identities, factors);
                sessions::session_value(&state, &r.user, &r.session, &r.child, user_json)
            }
            None => sessions::session_json(&state, &state.db, &r.user, &r.session, &r.child).await,
        },
        Ok(Outcome::NotFound) => Err(AuthError::RefreshTokenNotFound),
        // `Single`, or the batch task died (its jobs were dropped).
        Ok(Outcome::Single) | Err(_) => sessions::refresh(&state, token).await,
    }
}

/// Accounts for a draining task that ends without finding the queue empty
/// (a panic, or its runtime shutting down): it no longer counts, and if it
/// was the last one the jobs still queued are dropped, so their requests
/// take the single path instead of waiting for a batch that never comes.
struct Draining<'a> {
    queue: &'a Queue,
    finished: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut inner = self
            .queue
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        inner.drainers = inner.drainers.saturating_sub(1);
        if inner.drainers == 0 {
            inner.pending.clear();
        }
    }
}

async fn drain(state: Arc<AuthState>) {
    let queue = &state.refresh_key.rotations;
    let mut draining = Draining {
        queue,
        finished: false,
    };
    loop {
        let batch: Vec<Job> = {
            let mut inner = queue.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.pending.is_empty() {
                // Under the same lock as the check: a job queued after it
                // sees one drainer less and starts a task of its own.
                inner.drainers = inner.drainers.saturating_sub(1);
                draining.finished = true;
                return;
            }
            let n = inner.pending.len().min(MAX_BATCH);
            inner.pending.drain(..n).collect()
        };
        run(&state, batch).await;
    }
}

/// A token of the batch that may rotate.
struct Candidate {
    job: usize,
    row: refresh_token::Model,
    session: session::Model,
    user: Arc<user::Model>,
    child: String,
    child_hash: String,
}

async fn run(state: &AuthState, jobs: Vec<Job>) {
    let mut outcomes: Vec<Option<Outcome>> = jobs.iter().map(|_| None).collect();
    if let Err(err) = rotate(state, &jobs, &mut outcomes).await {
        // Everything not yet decided goes the single path, which reports
        // (or recovers from) the error per request.
        tracing::debug!(error = %err, "refresh batch failed; answering one by one");
    }
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome.unwrap_or(Outcome::Single));
    }
}

async fn rotate(state: &AuthState, jobs: &[Job], outcomes: &mut [Option<Outcome>]) -> Result<()> {
    let hashes: Vec<String> = jobs
        .iter()
        .map(|j| sha256_hex(j.token.as_bytes()))
        .collect();
    let found = find_tokens(&state.db, &hashes).await?;
    let mut by_hash: HashMap<&str, usize> = HashMap::with_capacity(found.len());
    for (i, (row, _, _)) in found.iter().enumerate() {
        by_hash.insert(row.token_hash.as_str(), i);
    }

    let now = Utc::now();
    let inactivity = state.config.session_inactivity_timeout_secs;
    let mut seen: HashSet<&str> = HashSet::with_capacity(jobs.len());
    let mut users_by_id: HashMap<String, Arc<user::Model>> = HashMap::new();
    let mut candidates = Vec::with_capacity(jobs.len());
    for (i, hash) in hashes.iter().enumerate() {
        let Some(&at) = by_hash.get(hash.as_str()) else {
            outcomes[i] = Some(Outcome::NotFound);
            continue;
        };
        // A second copy of a token waits for the first's rotation and then
        // takes the single path (which hands out the same child).
        if !seen.insert(hash.as_str()) {
            continue;
        }
        let (row, session, user) = &found[at];
        let (Some(session), Some(user)) = (session, user) else {
            continue;
        };
        let last_active = session.refreshed_at.unwrap_or(session.created_at);
        let expired = session.not_after.is_some_and(|end| end <= now)
            || (inactivity > 0 && last_active + Duration::seconds(inactivity) <= now);
        let usable = user.id == row.user_id
            && user.deleted_at.is_none()
            && user.banned_until.is_none_or(|until| until <= now);
        if row.revoked || expired || !usable {
            continue;
        }
        let user = users_by_id
            .entry(user.id.clone())
            .or_insert_with(|| Arc::new(user.clone()))
            .clone();
        let child = state.refresh_key.child(&jobs[i].token);
        let child_hash = sha256_hex(child.as_bytes());
        candidates.push(Candidate {
            job: i,
            row: row.clone(),
            session: session.clone(),
            user,
            child,
            child_hash,
        });
    }
    if candidates.is_empty() {
        return Ok(());
    }

    let user_ids: Vec<String> = users_by_id.keys().cloned().collect();
    let (written, identities, factors) = tokio::join!(
        write(state, &candidates, now, inactivity),
        identities_of(&state.db, &user_ids),
        factors_of(&state.db, &user_ids),
    );
    let (won, touched) = written?;
    let mut shared: HashMap<&str, UserData> = HashMap::with_capacity(user_ids.len());
    match (identities, factors) {
        (Ok(identities), Ok(factors)) => {
            let mut identities = group_by_user(identities, |i| &i.user_id);
            let mut factors = group_by_user(factors, |f| &f.user_id);
            for id in &user_ids {
                shared.insert(
                    id.as_str(),
                    (
                        Arc::new(identities.remove(id).unwrap_or_default()),
                        Arc::new(factors.remove(id).unwrap_or_default()),
                    ),
                );
            }
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(error = %err, "refresh batch: user objects read per request");
        }
    }
    for c in candidates {
        if !won.contains(&c.row.id) {
            // A concurrent writer inserted this child first.
            continue;
        }
        let session = if touched.contains(&c.session.id) {
            session::Model {
                refreshed_at: Some(now),
                updated_at: now,
                ..c.session
            }
        } else {
            c.session
        };
        let user_data = shared.get(c.user.id.as_str()).cloned();
        outcomes[c.job] = Some(Outcome::Rotated(Box::new(Rotated {
            user: c.user,
            session,
            child: c.child,
            user_data,
        })));
    }
    Ok(())
}

/// Inserts the children, revokes the parents whose child this batch
/// inserted and touches the sessions due; returns those parents' ids and
/// the touched sessions' ids.
async fn write(
    state: &AuthState,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    inactivity: i64,
) -> Result<(HashSet<String>, HashSet<String>)> {
    let db = &state.db;
    let backend = db.get_database_backend();
    let _writer = state.sqlite_write_turn().await;
    let mut insert = refresh_token::Entity::insert_many(candidates.iter().map(|c| {
        sessions::token_row(
            c.child_hash.clone(),
            &c.user.id,
            &c.session.id,
            Some(&c.row.id),
            now,
        )
    }))
    .on_conflict(
        OnConflict::column(refresh_token::Column::TokenHash)
            .do_nothing()
            .to_owned(),
    )
    .into_query();
    insert.returning_col(refresh_token::Column::Parent);
    let mut won = HashSet::with_capacity(candidates.len());
    for row in db.query_all_raw(backend.build(&insert)).await? {
        if let Some(parent) = row.try_get::<Option<String>>("", "parent")? {
            won.insert(parent);
        }
    }
    if !won.is_empty() {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::Revoked, Expr::value(true))
            .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
            .filter(refresh_token::Column::Id.is_in(padded(won.iter().cloned().collect())))
            .exec(db)
            .await?;
    }
    // `refreshed_at` drives the inactivity timeout; written at most once
    // per touch interval (see `sessions::touch_interval`).
    let due: HashSet<String> = candidates
        .iter()
        .filter(|c| won.contains(&c.row.id))
        .filter(|c| {
            c.session
                .refreshed_at
                .is_none_or(|at| at + sessions::touch_interval(inactivity) <= now)
        })
        .map(|c| c.session.id.clone())
        .collect();
    if !due.is_empty() {
        session::Entity::update_many()
            .col_expr(session::Column::RefreshedAt, Expr::value(Some(now)))
            .col_expr(session::Column::UpdatedAt, Expr::value(now))
            .filter(session::Column::Id.is_in(padded(due.iter().cloned().collect())))
            .exec(db)
            .await?;
    }
    Ok((won, due))
}

/// The smallest power of two ≥ `n` (at least 1): `IN` lists are padded to
/// it so a few statement texts cover every batch size and stay prepared.
fn bucket(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// `values` padded to [`bucket`] by repeating its last element (harmless in
/// an `IN` list).
fn padded(mut values: Vec<String>) -> Vec<String> {
    if let Some(last) = values.last().cloned() {
        values.resize(bucket(values.len()), last);
    }
    values
}

type Found = (
    refresh_token::Model,
    Option<session::Model>,
    Option<user::Model>,
);

/// The tokens with `hashes`, each with its session and user, in one
/// joined read. The SQL is built once per backend and bucket size (see
/// [`padded`]) and reused with the hashes bound; no `LIMIT` (see
/// `sessions::find_token`).
async fn find_tokens(db: &DatabaseConnection, hashes: &[String]) -> Result<Vec<Found>> {
    const BUCKETS: usize = MAX_BATCH.trailing_zeros() as usize + 1;
    static SQL: [[OnceLock<Option<String>>; BUCKETS]; 2] =
        [const { [const { OnceLock::new() }; BUCKETS] }; 2];
    let backend = db.get_database_backend();
    let values = padded(hashes.to_vec());
    let query = || {
        refresh_token::Entity::find()
            .find_also_related(session::Entity)
            .and_also_related(user::Entity)
    };
    let size = values.len();
    let slot = SQL[usize::from(backend == DbBackend::Postgres)]
        .get(size.trailing_zeros() as usize)
        .filter(|_| size.is_power_of_two());
    let cached = slot.and_then(|slot| {
        slot.get_or_init(|| {
            let probe = query()
                .filter(refresh_token::Column::TokenHash.is_in(vec![String::new(); size]))
                .build(backend);
            // Only reusable if the hashes are its only bound values.
            (probe.values.as_ref().map(|v| v.0.len()) == Some(size)).then_some(probe.sql)
        })
        .as_ref()
    });
    let stmt = match cached {
        Some(sql) => Statement::from_sql_and_values(
            backend,
            sql.clone(),
            values.into_iter().map(sea_orm::Value::from),
        ),
        None => query()
            .filter(refresh_token::Column::TokenHash.is_in(values))
            .build(backend),
    };
    let rows = db.query_all_raw(stmt).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(SelectThreeModel::<
            refresh_token::Model,
            session::Model,
            user::Model,
        >::from_raw_query_result(row)?);
    }
    Ok(out)
}

async fn identities_of(
    db: &DatabaseConnection,
    user_ids: &[String],
) -> Result<Vec<identity::Model>> {
    Ok(identity::Entity::find()
        .filter(identity::Column::UserId.is_in(padded(user_ids.to_vec())))
        .order_by_asc(identity::Column::CreatedAt)
        .all(db)
        .await?)
}

async fn factors_of(
    db: &DatabaseConnection,
    user_ids: &[String],
) -> Result<Vec<mfa_factor::Model>> {
    Ok(mfa_factor::Entity::find()
        .filter(mfa_factor::Column::UserId.is_in(padded(user_ids.to_vec())))
        .order_by_asc(mfa_factor::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Splits `rows` by user id, keeping their order.
fn group_by_user<T>(rows: Vec<T>, user_id: impl Fn(&T) -> &String) -> HashMap<String, Vec<T>> {
    let mut out: HashMap<String, Vec<T>> = HashMap::new();
    for row in rows {
        out.entry(user_id(&row).clone()).or_default().push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(0), 1);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(3), 4);
        assert_eq!(bucket(64), 64);
        let p = padded(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(p, ["a", "b", "c", "c"]);
        assert!(padded(Vec::new()).is_empty());
    }
}
