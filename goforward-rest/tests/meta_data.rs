//! Data import (CSV / JSON, atomic or with a per-row report, types checked)
//! and streamed export (CSV / JSON with REST filters) — SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use goforward_core::testing::TestApp;
use meta_common::{As, Res, meta};
use reqwest::Method;
use serde_json::{Value, json};

async fn send(app: &TestApp, who: As<'_>, path: &str, content_type: &str, body: &str) -> Res {
    let key = match who {
        As::Service => app.service_key(),
        _ => app.anon_key(),
    };
    let bearer = match who {
        As::User => app.user_token(meta_common::USER),
        As::Admin(level) => app.token(json!({"sub": meta_common::ADMIN, "role": "authenticated", "app_metadata": {"admin_role": level}})),
        _ => key.clone(),
    };
    let res = app
        .client()
        .post(app.url(&format!("/meta/v1{path}")))
        .header("apikey", key)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res { status, text, json }
}

async fn export(app: &TestApp, query: &str, accept: &str) -> (u16, String) {
    let res = app
        .client()
        .get(app.url(&format!("/meta/v1/tables/items/export{query}")))
        .header("apikey", app.service_key())
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn count(app: &TestApp) -> usize {
    let (status, text) = export(app, "?select=id", "application/json").await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

async fn import_and_export(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "items",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "name", "type": "text", "nullable": false, "unique": true},
                {"name": "qty", "type": "integer"},
                {"name": "price", "type": "double"},
                {"name": "active", "type": "boolean"},
            ],
        })),
    )
    .await
    .ok();

    // Atomic CSV import: quoting, doubled quotes, empty = NULL, "" = empty text.
    let csv = "id,name,qty,price,active\r\n1,apple,5,1.5,true\r\n2,\"pear, green\",,2,false\r\n3,\"say \"\"hi\"\"\",7,,\n";
    let r = send(
        app,
        As::Admin("super_admin"),
        "/tables/items/import",
        "text/csv",
        csv,
    )
    .await;
    assert_eq!(r.ok()["imported"], 3, "{}", r.text);
    let (_, text) = export(app, "?order=id", "application/json").await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([
            {"id": 1, "name": "apple", "qty": 5, "price": 1.5, "active": true},
            {"id": 2, "name": "pear, green", "qty": null, "price": 2.0, "active": false},
            {"id": 3, "name": "say \"hi\"", "qty": 7, "price": null, "active": null},
        ])
    );

    // A bad row: nothing imported in atomic mode.
    let bad = "id,name,qty\n4,kiwi,1\n5,plum,many\n6,fig,2\n";
    let r = send(app, As::Service, "/tables/items/import", "text/csv", bad).await;
    r.assert_error(400, "meta.import_rejected");
    assert_eq!(r.json["details"]["row"], 2, "{}", r.text);
    assert_eq!(count(app).await, 3);
    // A constraint violation (duplicate name) too.
    let dup = "id,name\n7,grape\n8,apple\n";
    let r = send(app, As::Service, "/tables/items/import", "text/csv", dup).await;
    r.assert_error(400, "meta.import_rejected");
    assert_eq!(count(app).await, 3);
    // Report mode: good rows in, each bad one reported.
    let r = send(
        app,
        As::Service,
        "/tables/items/import?mode=report",
        "text/csv",
        "id,name,qty\n4,kiwi,1\n5,plum,many\n6,apple,2\n7,fig,3\n",
    )
    .await;
    let v = r.ok().clone();
    assert_eq!(v["imported"], 2, "{v}");
    assert_eq!(v["rejected"], 2);
    assert_eq!(v["errors"][0]["row"], 2);
    assert_eq!(v["errors"][1]["row"], 3);
    assert_eq!(count(app).await, 5);

    // JSON array and NDJSON.
    let r = send(
        app,
        As::Service,
        "/tables/items/import",
        "application/json",
        r#"[{"id": 10, "name": "a10", "active": true}, {"id": 11, "name": "a11"}]"#,
    )
    .await;
    assert_eq!(r.ok()["imported"], 2, "{}", r.text);
    let r = send(app, As::Service, "/tables/items/import", "application/x-ndjson", "{\"id\": 12, \"name\": \"a12\", \"qty\": 3}\n\n{\"id\": 13, \"name\": \"a13\", \"qty\": \"x\"}\n").await;
    r.assert_error(400, "meta.import_rejected");
    assert_eq!(r.json["details"]["row"], 2);
    assert_eq!(count(app).await, 7);

    // Refusals: unknown column, bad content type, bad mode, unknown table, non-admin.
    send(
        app,
        As::Service,
        "/tables/items/import",
        "text/csv",
        "id,nope\n1,2\n",
    )
    .await
    .assert_error(404, "meta.column_not_found");
    send(app, As::Service, "/tables/items/import", "text/plain", "x")
        .await
        .assert_error(400, "meta.invalid_request");
    send(
        app,
        As::Service,
        "/tables/items/import?mode=yolo",
        "text/csv",
        "id\n",
    )
    .await
    .assert_error(400, "meta.invalid_request");
    send(app, As::Service, "/tables/nope/import", "text/csv", "id\n")
        .await
        .assert_error(404, "meta.table_not_found");
    send(
        app,
        As::User,
        "/tables/items/import",
        "text/csv",
        "id,name\n99,x\n",
    )
    .await
    .assert_error(403, "meta.forbidden");
    send(
        app,
        As::Service,
        "/tables/items/import",
        "text/csv",
        "id,name\n99,\"open\n",
    )
    .await
    .assert_error(400, "meta.invalid_request");
    assert_eq!(count(app).await, 7);

    // Export with REST filters, as CSV.
    let (status, text) = export(app, "?select=name,qty&qty=gte.3&order=qty.desc", "text/csv").await;
    assert_eq!(status, 200);
    assert_eq!(
        text,
        "name,qty\r\nsay \"\"hi\"\",7\r\napple,5\r\nfig,3\r\n"
            .replace("say \"\"hi\"\"", "\"say \"\"hi\"\"\"")
    );
    let (status, text) = export(
        app,
        "?select=id&name=like.a1*&limit=1&offset=1&order=id",
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!([{"id": 11}])
    );
    let (status, text) = export(app, "?qty=zz.1", "application/json").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["code"],
        "meta.invalid_request"
    );
    let (status, _) = export(app, "?nope=eq.1", "application/json").await;
    assert_eq!(status, 400);
    let res = app
        .client()
        .get(app.url("/meta/v1/tables/items/export"))
        .header("apikey", app.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
both!(import_and_export);
