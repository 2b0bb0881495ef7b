//! PostgreSQL change capture: a trigger per subscribed table calls
//! `goforward_realtime_notify()` (see the migration), and a `LISTEN`
//! connection on every node turns the notifications into `postgres_changes`.
//!
//! Every node listens, so each node delivers each change to its own
//! subscribers once. REST writes also publish `RecordChanged` on the bus; the
//! hub ignores those for tables captured here, so nothing arrives twice.

use std::sync::Arc;
use std::time::Duration;

use goforward_core::bus::{ChangeKind, RecordChanged};
use goforward_core::sea_orm::sqlx::postgres::PgListener;
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use goforward_core::sea_query::{Alias, Expr, ExprTrait, Query};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::changes::is_identifier;
use crate::hub::Hub;

/// The NOTIFY channel `goforward_realtime_notify()` publishes on.
const CHANNEL: &str = "goforward_realtime";

/// Installs triggers and listens for their notifications.
#[derive(Debug)]
pub(crate) struct PgSource {
    db: DatabaseConnection,
    hub: Arc<Hub>,
    install: tokio::sync::Mutex<()>,
    /// Whether the `LISTEN` connection is up.
    listening: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Deserialize)]
struct Notification {
    schema: String,
    table: String,
    #[serde(rename = "type")]
    kind: ChangeKind,
    commit_timestamp: String,
    #[serde(default)]
    record: Option<Value>,
    #[serde(default)]
    old_record: Option<Value>,
    #[serde(default)]
    too_large: bool,
    #[serde(default)]
    key: Option<Map<String, Value>>,
    #[serde(default)]
    primary_key: Vec<String>,
    #[serde(default)]
    replica_identity_full: bool,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl PgSource {
    /// A source for `db` when it is PostgreSQL.
    pub(crate) fn new(db: &DatabaseConnection, hub: Arc<Hub>) -> Option<Arc<Self>> {
        (db.get_database_backend() == DbBackend::Postgres).then(|| {
            Arc::new(Self {
                db: db.clone(),
                hub,
                install: tokio::sync::Mutex::new(()),
                listening: tokio::sync::watch::Sender::new(false),
            })
        })
    }

    async fn table_exists(&self, schema: &str, table: &str) -> Result<bool, String> {
        let stmt = Query::select()
            .expr(Expr::val(1))
            .from((Alias::new("information_schema"), Alias::new("tables")))
            .and_where(Expr::col(Alias::new("table_schema")).eq(schema))
            .and_where(Expr::col(Alias::new("table_name")).eq(table))
            .to_owned();
        self.db
            .query_one(&stmt)
            .await
            .map(|row| row.is_some())
            .map_err(|e| e.to_string())
    }

    /// Makes sure changes of `schema.table` are captured; `false` when they are
    /// not (no such table, or no privilege to add a trigger): the bus stays the source.
    pub(crate) async fn ensure(&self, schema: &str, table: &str) -> bool {
        if self.hub.is_captured(schema, table) {
            return true;
        }
        let _guard = self.install.lock().await;
        if self.hub.is_captured(schema, table) {
            return true;
        }
        if !is_identifier(schema) || !is_identifier(table) {
            return false;
        }
        match self.table_exists(schema, table).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(err) => {
                tracing::warn!(error = %err, table, "could not look up a table for realtime");
                return false;
            }
        }
        // Identifiers are checked above (known table, plain characters) and quoted.
        let sql = format!(
            "CREATE OR REPLACE TRIGGER goforward_realtime AFTER INSERT OR UPDATE OR DELETE ON {}.{} \
             FOR EACH ROW EXECUTE FUNCTION goforward_realtime_notify()",
            quote(schema),
            quote(table)
        );
        match self.db.execute_unprepared(&sql).await {
            Ok(_) => {
                self.hub.mark_captured(schema, table);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, table, "could not install the realtime trigger; only writes through GoForward are delivered");
                false
            }
        }
    }

    /// Reads a row by primary key (for notifications over NOTIFY's size limit).
    async fn fetch(&self, schema: &str, table: &str, key: &Map<String, Value>) -> Option<Value> {
        if key.is_empty() || !is_identifier(schema) || !is_identifier(table) {
            return None;
        }
        let mut stmt = Query::select();
        stmt.expr_as(Expr::cust("to_jsonb(goforward_row)"), Alias::new("row"))
            .from_as(
                (Alias::new(schema), Alias::new(table)),
                Alias::new("goforward_row"),
            );
        for (column, value) in key {
            if !is_identifier(column) {
                return None;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            stmt.and_where(
                Expr::col((Alias::new("goforward_row"), Alias::new(column)))
                    .cast_as(Alias::new("text"))
                    .eq(text),
            );
        }
        match self.db.query_one(&stmt).await {
            Ok(Some(row)) => row.try_get::<Value>("", "row").ok(),
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, table, "could not read a changed row");
                None
            }
        }
    }

    async fn handle(&self, payload: &str) {
        let n: Notification = match serde_json::from_str(payload) {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "malformed realtime notification");
                return;
            }
        };
        self.hub.mark_captured(&n.schema, &n.table);
        let (mut record, mut old_record) = (n.record, n.old_record);
        if n.too_large {
            let key = n.key.unwrap_or_default();
            match n.kind {
                ChangeKind::Delete => old_record = Some(Value::Object(key)),
                kind => {
                    record = self.fetch(&n.schema, &n.table, &key).await;
                    if kind == ChangeKind::Update {
                        old_record = Some(Value::Object(key));
                    }
                    if record.is_none() {
                        // Gone again before we could read it: a later notification follows.
                        return;
                    }
                }
            }
        }
        let commit_timestamp = chrono::DateTime::parse_from_rfc3339(&n.commit_timestamp)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        // Subscribers see only the key of an old row unless the table's replica
        // identity is FULL (Supabase's rule); access is still decided on the whole row.
        let shown_old = match &old_record {
            Some(Value::Object(old)) if !n.replica_identity_full && !n.primary_key.is_empty() => {
                Some(Value::Object(
                    old.iter()
                        .filter(|(k, _)| n.primary_key.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
            }
            other => other.clone(),
        };
        let change = RecordChanged {
            schema: n.schema,
            table: n.table,
            kind: n.kind,
            record,
            old_record,
            commit_timestamp,
        };
        let shown = RecordChanged {
            old_record: shown_old,
            ..change.clone()
        };
        self.hub.deliver(&change, &shown);
    }

    /// Waits (at most `limit`) until the `LISTEN` connection is up, so that a
    /// subscription made once the plugin has started misses no change; `false` on timeout.
    pub(crate) async fn wait_listening(&self, limit: Duration) -> bool {
        let mut rx = self.listening.subscribe();
        matches!(
            tokio::time::timeout(limit, rx.wait_for(|up| *up)).await,
            Ok(Ok(_))
        )
    }

    /// Listens until aborted; reconnects (and re-`LISTEN`s) after connection loss.
    pub(crate) async fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let pool = self.db.get_postgres_connection_pool();
            let mut listener = match PgListener::connect_with(pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "realtime could not open its LISTEN connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %err, "realtime could not LISTEN");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            backoff = Duration::from_millis(100);
            self.listening.send_replace(true);
            loop {
                // `recv` reconnects and re-LISTENs by itself after a lost connection.
                match listener.recv().await {
                    Ok(notification) => self.handle(notification.payload()).await,
                    Err(err) => {
                        self.listening.send_replace(false);
                        tracing::warn!(error = %err, "realtime LISTEN connection failed; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        break;
                    }
                }
            }
        }
    }
}
