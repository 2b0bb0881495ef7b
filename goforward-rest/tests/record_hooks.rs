//! REST writes run through core's record hooks: a wrap hook can change the
//! record, an execute hook can refuse the write (nothing written, its message
//! shown), on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{As, call, db_count, get};
use goforward_core::hooks::{RecordEvent, RecordExecuteEvent};
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

both!(hooks_shape_and_refuse_writes);
async fn hooks_shape_and_refuse_writes(app: &TestApp) {
    let hooks = app.gf.context().hooks();
    hooks.on_record_create().bind_tagged(
        ["items"],
        "upper",
        0,
        |mut e: RecordEvent, next| async move {
            if let Some(Value::String(name)) = e.record.get_mut("name") {
                *name = name.to_uppercase();
            }
            next.run(e).await
        },
    );
    hooks.on_record_update_execute().bind_tagged(
        ["items"],
        "no_zero",
        0,
        |e: RecordExecuteEvent, next| async move {
            if e.event.record.get("qty") == Some(&json!(0)) {
                return Err(next.abort("qty must not become zero"));
            }
            next.run(e).await
        },
    );
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?select=name",
        &[("prefer", "return=representation")],
        Some(json!([{"name": "a", "qty": 1}, {"name": "b", "qty": 2}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "A"}, {"name": "B"}]));
    // Other tables are untouched by the tagged hook.
    call(
        app,
        As::User(common::ALICE),
        Method::POST,
        "/todos",
        &[],
        Some(json!({"title": "lower"})),
    )
    .await;
    let r = get(app, As::User(common::ALICE), "/todos?select=title").await;
    assert_eq!(r.json, json!([{"title": "lower"}]));

    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?qty=gt.0",
        &[],
        Some(json!({"qty": 0})),
    )
    .await;
    r.assert_error(400, "P0001");
    assert_eq!(r.json["message"], "qty must not become zero");
    let r = get(app, As::Anon, "/items?select=qty&order=qty").await;
    assert_eq!(
        r.json,
        json!([{"qty": 1}, {"qty": 2}]),
        "the whole PATCH rolled back"
    );
    assert_eq!(db_count(app, "items").await, 2);
}
