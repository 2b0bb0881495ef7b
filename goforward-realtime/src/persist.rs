//! Broadcast persistence: messages sent with `persist` on private channels are
//! stored (when `broadcast_persistence` is on) and replayed to joins asking for
//! `broadcast.replay {since, limit}`.

use chrono::{DateTime, Utc};
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use goforward_core::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use serde_json::Value;

/// Most messages one join replays.
pub(crate) const MAX_REPLAY: u64 = 25;

fn table() -> Alias {
    Alias::new("realtime_messages")
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// A stored broadcast.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stored {
    pub id: String,
    pub event: String,
    pub payload: Value,
}

/// Reads and writes `realtime_messages`.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: DatabaseConnection,
    max_ttl_secs: u64,
}

impl Store {
    pub(crate) fn new(db: DatabaseConnection, max_ttl_secs: u64) -> Self {
        Self { db, max_ttl_secs }
    }

    /// Stores a broadcast for `ttl_secs` (capped by the configured maximum); returns its id.
    ///
    /// # Errors
    /// The database error, as a core error.
    pub(crate) async fn save(
        &self,
        topic: &str,
        event: &str,
        payload: &Value,
        ttl_secs: Option<u64>,
    ) -> goforward_core::Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        let ttl = Ord::min(ttl_secs.unwrap_or(self.max_ttl_secs), self.max_ttl_secs);
        let expires = now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX / 2));
        let stmt = Query::insert()
            .into_table(table())
            .columns([
                col("id"),
                col("topic"),
                col("event"),
                col("payload"),
                col("created_at"),
                col("expires_at"),
            ])
            .values([
                id.clone().into(),
                topic.into(),
                event.into(),
                payload.clone().into(),
                now.into(),
                expires.into(),
            ])
            .map_err(|e| goforward_core::Error::Internal(e.to_string()))?
            .to_owned();
        self.db
            .execute(&stmt)
            .await
            .map_err(goforward_core::Error::from_db)?;
        Ok(id)
    }

    /// The newest `limit` unexpired messages of `topic` sent at or after `since`, oldest first.
    ///
    /// # Errors
    /// The database error, as a core error.
    pub(crate) async fn replay(
        &self,
        topic: &str,
        since: DateTime<Utc>,
        limit: u64,
    ) -> goforward_core::Result<Vec<Stored>> {
        let stmt = Query::select()
            .columns([col("id"), col("event"), col("payload")])
            .from(table())
            .and_where(Expr::col(col("topic")).eq(topic))
            .and_where(Expr::col(col("created_at")).gte(since))
            .and_where(Expr::col(col("expires_at")).gt(Utc::now()))
            .order_by(col("created_at"), Order::Desc)
            .limit(Ord::min(limit, MAX_REPLAY))
            .to_owned();
        let rows = self
            .db
            .query_all(&stmt)
            .await
            .map_err(goforward_core::Error::from_db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.iter().rev() {
            out.push(Stored {
                id: row
                    .try_get("", "id")
                    .map_err(goforward_core::Error::from_db)?,
                event: row
                    .try_get("", "event")
                    .map_err(goforward_core::Error::from_db)?,
                payload: row
                    .try_get::<Option<Value>>("", "payload")
                    .map_err(goforward_core::Error::from_db)?
                    .unwrap_or(Value::Null),
            });
        }
        Ok(out)
    }

    /// Deletes expired messages; returns how many.
    ///
    /// # Errors
    /// The database error, as a core error.
    pub(crate) async fn prune(&self) -> goforward_core::Result<u64> {
        let stmt = Query::delete()
            .from_table(table())
            .and_where(Expr::col(col("expires_at")).lte(Utc::now()))
            .to_owned();
        self.db
            .execute(&stmt)
            .await
            .map(|r| r.rows_affected())
            .map_err(goforward_core::Error::from_db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn save_replay_and_prune() {
        let db = goforward_core::db::connect_url("sqlite::memory:")
            .await
            .unwrap();
        let mut migrator = goforward_core::migrate::Migrator::new();
        migrator.add("realtime", crate::migrations::all()).unwrap();
        migrator.up(&db).await.unwrap();
        let store = Store::new(db, 60);
        let kept = store
            .save("realtime:t", "e", &json!({"a": 1}), Some(3600))
            .await
            .unwrap();
        store
            .save("realtime:t", "e", &json!({}), Some(0))
            .await
            .unwrap();
        store
            .save("realtime:other", "e", &json!({}), None)
            .await
            .unwrap();
        assert_eq!(store.prune().await.unwrap(), 1);
        let got = store
            .replay("realtime:t", DateTime::UNIX_EPOCH, 100)
            .await
            .unwrap();
        assert_eq!(
            got,
            vec![Stored {
                id: kept,
                event: "e".into(),
                payload: json!({"a": 1})
            }]
        );
    }
}
