//! Sessions, access tokens and refresh-token rotation.
//!
//! Rotation follows GoTrue: each refresh revokes the presented token and
//! issues a child. A revoked token presented again within
//! `refresh_token_reuse_interval_secs` of its rotation returns the same
//! child (concurrent refreshes of one token converge on one child); after
//! that, the reuse is treated as theft and the whole session (the token
//! family) is revoked.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, QueryTrait, SelectThreeModel, SelectorTrait, Set, Statement,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde_json::{Value, json};

use crate::crypto::{random_token, sha256_hex};
use crate::entity::{refresh_token, session, user};
use crate::error::{AuthError, Result};
use crate::state::AuthState;
use crate::users;

/// Who is signing in from where (stored on the session).
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    /// Client IP.
    pub ip: Option<String>,
    /// `User-Agent` header (truncated to 512 bytes).
    pub user_agent: Option<String>,
}

impl ClientMeta {
    /// Reads the IP (through the trusted-proxy rules) and user agent of `req`.
    pub fn of(state: &AuthState, req: &actix_web::HttpRequest) -> Self {
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Self {
            ip: state.client_ip(req),
            user_agent,
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A refresh-token row's id: a time-ordered UUID (v7). Every refresh
/// inserts a row and the next one revokes it by id, so ids that grow with
/// time keep the primary-key and `parent` indexes appending at their end
/// instead of dirtying a random page each (on SQLite, fewer pages written to
/// the WAL per commit). These ids never leave the server; the token itself
/// is random and stored hashed.
fn new_token_row_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new, unrevoked refresh-token row of `session_id` (`parent`: the token
/// it rotates, `None` for a family's first).
pub(crate) fn token_row(
    token_hash: String,
    user_id: &str,
    session_id: &str,
    parent: Option<&str>,
    now: DateTime<Utc>,
) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel::from(refresh_token::Model {
        id: new_token_row_id(),
        token_hash,
        user_id: user_id.to_owned(),
        session_id: session_id.to_owned(),
        parent: parent.map(str::to_owned),
        revoked: false,
        created_at: now,
        updated_at: now,
    })
}

/// Signs an access token for `user` in `session`; returns `(jwt, exp)`.
///
/// # Errors
/// [`AuthError::Internal`] if signing fails.
pub fn access_token(
    state: &AuthState,
    user: &user::Model,
    session: &session::Model,
) -> Result<(String, i64)> {
    let now = Utc::now().timestamp();
    let exp = now + state.config.jwt_expiry_secs;
    let amr: Value = serde_json::from_str(&session.amr).unwrap_or_else(|_| json!([]));
    let claims = json!({
        "iss": state.issuer,
        "sub": user.id,
        "aud": user.aud,
        "exp": exp,
        "iat": now,
        "email": user.email.clone().unwrap_or_default(),
        "phone": user.phone.clone().unwrap_or_default(),
        "app_metadata": users::json_object(&user.raw_app_meta_data),
        "user_metadata": users::json_object(&user.raw_user_meta_data),
        "role": user.role,
        "aal": session.aal,
        "amr": amr,
        "session_id": session.id,
        "is_anonymous": user.is_anonymous,
    });
    let jwt = state
        .signer
        .sign(&claims)
        .map_err(|e| AuthError::Internal(format!("sign access token: {e}")))?;
    Ok((jwt, exp))
}

/// GoTrue's session object.
///
/// # Errors
/// Database or signing errors.
pub async fn session_json<C: ConnectionTrait>(
    state: &AuthState,
    db: &C,
    user: &user::Model,
    session: &session::Model,
    refresh_token: &str,
) -> Result<Value> {
    let user_json = users::user_json(db, user).await?;
    session_value(state, user, session, refresh_token, user_json)
}

/// GoTrue's session object around an already rendered user object.
///
/// # Errors
/// [`AuthError::Internal`] if signing fails.
pub(crate) fn session_value(
    state: &AuthState,
    user: &user::Model,
    session: &session::Model,
    refresh_token: &str,
    user_json: Value,
) -> Result<Value> {
    let (access_token, expires_at) = access_token(state, user, session)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": state.config.jwt_expiry_secs,
        "expires_at": expires_at,
        "refresh_token": refresh_token,
        "user": user_json,
    }))
}

/// Starts a session for `user` authenticated by `method` (an AMR method:
/// `password`, `otp`, `magiclink`, `recovery`, `anonymous`, …) and returns
/// the session object. Updates `last_sign_in_at`.
///
/// # Errors
/// Database or signing errors.
pub async fn issue(
    state: &AuthState,
    user: &user::Model,
    method: &str,
    meta: &ClientMeta,
) -> Result<Value> {
    let now = Utc::now();
    let session = session::Model {
        id: new_id(),
        user_id: user.id.clone(),
        aal: "aal1".to_owned(),
        factor_id: None,
        amr: json!([{ "method": method, "timestamp": now.timestamp() }]).to_string(),
        not_after: (state.config.session_timebox_secs > 0)
            .then(|| now + Duration::seconds(state.config.session_timebox_secs)),
        refreshed_at: None,
        user_agent: meta.user_agent.clone(),
        ip: meta.ip.clone(),
        created_at: now,
        updated_at: now,
    };
    let token = random_token(32);
    let _writer = state.sqlite_write_turn().await;
    let txn = state.db.begin().await?;
    session::ActiveModel::from(session.clone())
        .insert(&txn)
        .await?;
    token_row(
        sha256_hex(token.as_bytes()),
        &user.id,
        &session.id,
        None,
        now,
    )
    .insert(&txn)
    .await?;
    let mut active: user::ActiveModel = user.clone().into();
    active.last_sign_in_at = Set(Some(now));
    let user = active.update(&txn).await?;
    txn.commit().await?;
    session_json(state, &state.db, &user, &session, &token).await
}

/// The `refresh_token` grant for one token: rotates `token` and returns a
/// new session object. The HTTP handler goes through
/// the batch queue (`rotation.rs`), which rotates concurrent refreshes in
/// batches and falls back to this for everything but a plain rotation.
///
/// The child token is derived from its parent (an HMAC), and token hashes
/// are unique: of concurrent rotations of one token exactly one inserts the
/// child (`ON CONFLICT DO NOTHING`), so no transaction is needed. The
/// winner then marks the parent revoked; the rotation time is the child's
/// `created_at`, which is what the reuse interval is measured from. If the
/// process stops between the two writes, the parent stays unrevoked but has
/// a child: presenting it again finds the child, as after a rotation.
///
/// The happy path is five statements: the joined read (token, session,
/// user), the child's `INSERT` and the parent's `UPDATE` (the only work on
/// SQLite's single writer, plus the session touch at most once per
/// `touch_interval`), then the user object's identities and factors.
///
/// # Errors
/// `refresh_token_not_found`, `refresh_token_already_used` (the session is
/// revoked), `session_expired`, `user_banned`, or database errors.
pub async fn refresh(state: &AuthState, token: &str) -> Result<Value> {
    let hash = sha256_hex(token.as_bytes());
    // The token, its session and its user in one round trip.
    let Some((row, Some(session), user)) = find_token(&state.db, hash).await? else {
        return Err(AuthError::RefreshTokenNotFound);
    };
    let now = Utc::now();
    let inactivity = state.config.session_inactivity_timeout_secs;
    let last_active = session.refreshed_at.unwrap_or(session.created_at);
    if session.not_after.is_some_and(|end| end <= now)
        || (inactivity > 0 && last_active + Duration::seconds(inactivity) <= now)
    {
        if revoke_session(&state.db, &session.id).await? {
            announce_revoked(
                state,
                &session.user_id,
                Some(vec![session.id.clone()]),
                "session_expired",
            )
            .await;
        }
        return Err(AuthError::SessionExpired);
    }
    // A session belongs to its token's user; a deleted user has no sessions.
    let Some(user) = user.filter(|u| u.id == row.user_id && u.deleted_at.is_none()) else {
        return Err(AuthError::RefreshTokenNotFound);
    };
    if user.banned_until.is_some_and(|until| until > now) {
        return Err(AuthError::UserBanned);
    }
    let child = state.refresh_key.child(token);
    let child_hash = sha256_hex(child.as_bytes());

    if !row.revoked {
        let writer = state.sqlite_write_turn().await;
        let inserted = refresh_token::Entity::insert(token_row(
            child_hash.clone(),
            &user.id,
            &session.id,
            Some(&row.id),
            now,
        ))
        .on_conflict(
            OnConflict::column(refresh_token::Column::TokenHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&state.db)
        .await?
            == 1;
        if inserted {
            refresh_token::Entity::update_many()
                .col_expr(refresh_token::Column::Revoked, Expr::value(true))
                .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
                .filter(refresh_token::Column::Id.eq(row.id.clone()))
                .exec(&state.db)
                .await?;
            // `refreshed_at` drives the inactivity timeout; it is written at
            // most once per `touch_interval`, not on every refresh.
            let session = if session
                .refreshed_at
                .is_none_or(|at| at + touch_interval(inactivity) <= now)
            {
                session::Entity::update_many()
                    .col_expr(session::Column::RefreshedAt, Expr::value(Some(now)))
                    .col_expr(session::Column::UpdatedAt, Expr::value(now))
                    .filter(session::Column::Id.eq(session.id.clone()))
                    .exec(&state.db)
                    .await?;
                session::Model {
                    refreshed_at: Some(now),
                    updated_at: now,
                    ..session
                }
            } else {
                session
            };
            drop(writer);
            return session_json(state, &state.db, &user, &session, &child).await;
        }
    }

    // The token was already rotated: by a concurrent request just now, or
    // earlier. Within the reuse interval of that rotation its (live) child
    // is handed out again; otherwise this is a reuse and the family ends.
    let window = Duration::seconds(state.config.refresh_token_reuse_interval_secs);
    let child_row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(child_hash))
        .all(&state.db)
        .await?
        .pop();
    match child_row {
        Some(c) if !c.revoked && c.session_id == session.id && c.created_at + window >= now => {
            session_json(state, &state.db, &user, &session, &child).await
        }
        _ => {
            tracing::warn!(session_id = %session.id, "refresh token reused: revoking the session");
            if revoke_session(&state.db, &session.id).await? {
                announce_revoked(
                    state,
                    &user.id,
                    Some(vec![session.id.clone()]),
                    "refresh_token_reused",
                )
                .await;
            }
            Err(AuthError::RefreshTokenAlreadyUsed)
        }
    }
}

/// The joined read of a refresh: the token with `hash`, its session and its
/// user.
///
/// The statement is built by sea-query once per backend and reused with the
/// hash bound (building the three-entity select and its column aliases
/// cost as much as running it). No `LIMIT`: the hash is unique, and a bound
/// `LIMIT ?` (what `.one()` adds) makes SQLite (the bundled 3.51) re-prepare
/// the statement whenever the parameter is bound again, so the join would
/// be parsed and planned anew on every refresh.
async fn find_token(
    db: &DatabaseConnection,
    hash: String,
) -> Result<
    Option<(
        refresh_token::Model,
        Option<session::Model>,
        Option<user::Model>,
    )>,
> {
    static SQL: [OnceLock<Option<String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let backend = db.get_database_backend();
    let query = || {
        refresh_token::Entity::find()
            .find_also_related(session::Entity)
            .and_also_related(user::Entity)
    };
    let cached = SQL[usize::from(backend == DbBackend::Postgres)].get_or_init(|| {
        let probe = query()
            .filter(refresh_token::Column::TokenHash.eq(String::new()))
            .build(backend);
        // Only reusable if the hash is its one bound value.
        (probe.values.as_ref().map(|v| v.0.len()) == Some(1)).then_some(probe.sql)
    });
    let stmt = match cached {
        Some(sql) => Statement::from_sql_and_values(backend, sql.clone(), [hash.into()]),
        None => query()
            .filter(refresh_token::Column::TokenHash.eq(hash))
            .build(backend),
    };
    let Some(found) = db.query_all_raw(stmt).await?.pop() else {
        return Ok(None);
    };
    Ok(Some(SelectThreeModel::<
        refresh_token::Model,
        session::Model,
        user::Model,
    >::from_raw_query_result(found)?))
}

/// How stale a session's `refreshed_at` may get before a refresh writes it
/// again: a tenth of the inactivity timeout, at most 60 s (so the timeout
/// is enforced within 10 %), and 60 s without one.
pub(crate) fn touch_interval(inactivity_secs: i64) -> Duration {
    let cap = Duration::seconds(60);
    if inactivity_secs > 0 {
        Duration::milliseconds(inactivity_secs.saturating_mul(100)).min(cap)
    } else {
        cap
    }
}

/// Refuses the ended sessions' access tokens on this node at once (core's
/// authenticator) and publishes [`SessionsRevoked`] for the others, after
/// the revocation was committed (best effort: a failure is logged).
/// `session_ids: None` means every session of the user; an empty list does
/// nothing.
///
/// [`SessionsRevoked`]: goforward_core::bus::SessionsRevoked
pub(crate) async fn announce_revoked(
    state: &AuthState,
    user_id: &str,
    session_ids: Option<Vec<String>>,
    reason: &str,
) {
    use goforward_core::bus::{Event, SessionsRevoked};
    if session_ids.as_ref().is_some_and(Vec::is_empty) {
        return;
    }
    let revoked = SessionsRevoked {
        user_id: user_id.to_owned(),
        session_ids,
        reason: reason.to_owned(),
    };
    // This node refuses the sessions' tokens before the response leaves;
    // other nodes (and this one again, harmlessly) learn it from the bus.
    state.authenticator.revoke_sessions(&revoked);
    let event = Event::SessionsRevoked(revoked);
    if let Err(err) = state.bus.publish(event).await {
        tracing::warn!(error = %err, reason, "could not publish sessions_revoked");
    }
}

/// Deletes a session and (by cascade) its refresh tokens. Returns whether
/// a session was deleted.
///
/// # Errors
/// Database errors.
pub async fn revoke_session<C: ConnectionTrait>(db: &C, session_id: &str) -> Result<bool> {
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .exec(db)
        .await?;
    let deleted = session::Entity::delete_by_id(session_id.to_owned())
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Deletes every session of `user_id`, except `keep` when given. Returns
/// the ids of the sessions that ended (for [`SessionsRevoked`] events).
///
/// [`SessionsRevoked`]: goforward_core::bus::SessionsRevoked
///
/// # Errors
/// Database errors.
pub async fn revoke_user_sessions<C: ConnectionTrait>(
    db: &C,
    user_id: &str,
    keep: Option<&str>,
) -> Result<Vec<String>> {
    let mut ids = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(user_id));
    let mut tokens =
        refresh_token::Entity::delete_many().filter(refresh_token::Column::UserId.eq(user_id));
    let mut sessions = session::Entity::delete_many().filter(session::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        ids = ids.filter(session::Column::Id.ne(keep));
        tokens = tokens.filter(refresh_token::Column::SessionId.ne(keep));
        sessions = sessions.filter(session::Column::Id.ne(keep));
    }
    let ids: Vec<String> = ids.into_tuple().all(db).await?;
    tokens.exec(db).await?;
    sessions.exec(db).await?;
    Ok(ids)
}

/// Raises `session` to `aal2` after a verified second factor: records the
/// factor, puts `method` first in the AMR and issues a new refresh token in
/// the same session. Returns the session object.
///
/// # Errors
/// Database or signing errors.
pub async fn upgrade_aal2(
    state: &AuthState,
    user: &user::Model,
    session: &session::Model,
    factor_id: &str,
    method: &str,
) -> Result<Value> {
    let now = Utc::now();
    let mut amr: Vec<Value> = serde_json::from_str(&session.amr).unwrap_or_default();
    amr.retain(|m| m["method"] != method);
    amr.insert(0, json!({ "method": method, "timestamp": now.timestamp() }));
    let token = random_token(32);
    let txn = state.db.begin().await?;
    let mut active: session::ActiveModel = session.clone().into();
    active.aal = Set("aal2".to_owned());
    active.factor_id = Set(Some(factor_id.to_owned()));
    active.amr = Set(Value::Array(amr).to_string());
    active.updated_at = Set(now);
    let session = active.update(&txn).await?;
    token_row(
        sha256_hex(token.as_bytes()),
        &user.id,
        &session.id,
        None,
        now,
    )
    .insert(&txn)
    .await?;
    txn.commit().await?;
    session_json(state, &state.db, user, &session, &token).await
}
