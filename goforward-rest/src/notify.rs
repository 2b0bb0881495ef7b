//! PostgreSQL: `NOTIFY pgrst, 'reload schema'` (as PostgREST) reloads the
//! schema cache, so DDL run by other programs becomes visible without a restart.

use std::{sync::Arc, time::Duration};

use goforward_core::sea_orm::{DatabaseConnection, sqlx::postgres::PgListener};

use crate::schema::SchemaCache;

/// The channel PostgREST listens on.
pub const CHANNEL: &str = "pgrst";

/// Listens on [`CHANNEL`] until aborted, reconnecting with backoff; each
/// `reload schema` (or empty) notification reloads `cache`.
pub fn spawn(
    url: String,
    db: DatabaseConnection,
    cache: Arc<SchemaCache>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        backoff = Duration::from_secs(1);
                        loop {
                            match listener.recv().await {
                                Ok(n) if matches!(n.payload().trim(), "" | "reload schema") => {
                                    match cache.reload(&db).await {
                                        Ok(_) => {
                                            tracing::info!("schema cache reloaded (NOTIFY pgrst)")
                                        }
                                        Err(err) => {
                                            tracing::warn!(error = %err, "schema cache reload failed")
                                        }
                                    }
                                }
                                Ok(_) => {}
                                Err(err) => {
                                    tracing::warn!(error = %err, "NOTIFY listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "LISTEN pgrst failed"),
                },
                Err(err) => tracing::warn!(error = %err, "NOTIFY listener could not connect"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}
