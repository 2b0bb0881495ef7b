//! PostgreSQL: `NOTIFY pgrst, 'reload schema'` reloads the schema cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{As, get};
use goforward_core::sea_orm::ConnectionTrait;

#[tokio::test]
async fn notify_reloads_the_schema_cache_postgres() {
    let Some(app) = common::start(true, "notify").await else {
        return;
    };
    app.db()
        .execute_unprepared("CREATE TABLE announced (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    app.gf
        .context()
        .access()
        .policies()
        .set_table("announced", goforward_core::access::Policy::public());
    get(&app, As::Anon, "/announced")
        .await
        .assert_error(404, "PGRST205");
    // Give the listener a moment to be subscribed, then announce.
    let mut ok = false;
    for _ in 0..50 {
        app.db()
            .execute_unprepared("NOTIFY pgrst, 'reload schema'")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if get(&app, As::Anon, "/announced").await.status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the table became visible after NOTIFY");
    app.stop().await;
}
