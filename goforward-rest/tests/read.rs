//! Reads: every operator, select forms, order, limits, ranges, counts,
//! single-object and CSV responses, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{As, get, names, seed_items};
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::json;

async fn sorted(app: &TestApp, filter: &str) -> Vec<String> {
    let r = get(
        app,
        As::Anon,
        &format!("/items?select=name&order=name.asc&{filter}"),
    )
    .await;
    assert_eq!(r.status, 200, "{filter}: {}", r.text);
    names(&r.json)
}

both!(operators);
async fn operators(app: &TestApp) {
    seed_items(app).await;
    let cases: &[(&str, &[&str])] = &[
        ("qty=eq.5", &["apple"]),
        ("qty=neq.5", &["Date", "banana"]),
        ("qty=gt.5", &["Date", "banana"]),
        ("qty=gte.7", &["Date", "banana"]),
        ("qty=lt.7", &["apple"]),
        ("qty=lte.7", &["Date", "apple"]),
        ("price=gt.1.75", &["Date", "cherry"]),
        ("name=like.*an*", &["banana"]),
        ("name=like.%25an%25", &["banana"]),
        ("name=like.d*", &[]),
        ("name=ilike.d*", &["Date"]),
        ("qty=in.(5,10)", &["apple", "banana"]),
        ("name=in.(\"apple\",\"no,such\")", &["apple"]),
        ("qty=in.()", &[]),
        ("qty=is.null", &["cherry"]),
        ("qty=not.is.null", &["Date", "apple", "banana"]),
        ("active=is.true", &["Date", "apple"]),
        ("active=is.false", &["banana"]),
        ("active=is.unknown", &["cherry"]),
        ("active=eq.true", &["Date", "apple"]),
        ("qty=isdistinct.5", &["Date", "banana", "cherry"]),
        ("qty=not.eq.5", &["Date", "banana"]),
        ("qty=not.in.(5,10)", &["Date"]),
        ("or=(qty.eq.5,name.eq.cherry)", &["apple", "cherry"]),
        (
            "or=(qty.gt.8,and(price.gte.2,price.lte.2.5))",
            &["Date", "banana"],
        ),
        ("not.or=(qty.eq.5,qty.is.null)", &["Date", "banana"]),
        (
            "and=(qty.gt.1,or(name.eq.apple,name.eq.Date))",
            &["Date", "apple"],
        ),
        ("qty=gt.1&qty=lt.8", &["Date", "apple"]),
        ("data->>color=eq.red", &["apple"]),
        ("data->color=not.is.null", &["Date", "apple", "banana"]),
        ("name=like(any).{a*,*rr*}", &["apple", "cherry"]),
        ("name=ilike(all).{*a*,*e*}", &["Date", "apple"]),
        ("qty=eq(any).{5,7}", &["Date", "apple"]),
        ("qty=not.gt(all).{4,6}", &["apple"]),
        ("name=like(any).{}", &[]),
    ];
    for (filter, expected) in cases {
        assert_eq!(&sorted(app, filter).await, expected, "filter {filter}");
    }
    let pg = app.db().get_database_backend() == goforward_core::sea_orm::DbBackend::Postgres;
    if pg {
        assert_eq!(sorted(app, "name=match.^[ab]").await, ["apple", "banana"]);
        assert_eq!(sorted(app, "name=imatch.^d").await, ["Date"]);
        assert_eq!(sorted(app, "data=cs.{\"color\":\"red\"}").await, ["apple"]);
        assert_eq!(
            sorted(
                app,
                "data=cd.{\"color\":\"red\",\"n\":1,\"tags\":[\"a\",\"b\"],\"x\":1}"
            )
            .await,
            ["apple"]
        );
    } else {
        for f in ["name=match.^a", "name=imatch.^a", "data=cs.{\"a\":1}"] {
            get(app, As::Anon, &format!("/items?{f}"))
                .await
                .assert_error(400, "PGRST100");
        }
    }
    get(app, As::Anon, "/items?qty=ov.{1,2}")
        .await
        .assert_error(400, "PGRST100");
}

both!(select_forms_and_types);
async fn select_forms_and_types(app: &TestApp) {
    seed_items(app).await;
    let r = get(
        app,
        As::Anon,
        "/items?select=label:name,qty,color:data->>color,data->tags,q:qty::text,price,active&name=eq.apple",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"label": "apple", "qty": 5, "color": "red", "tags": ["a", "b"], "q": "5", "price": 1.5, "active": true}])
    );
    // Keys come out in select order.
    assert!(
        r.text.starts_with("[{\"label\":\"apple\",\"qty\":5,"),
        "{}",
        r.text
    );
    let r = get(app, As::Anon, "/items?name=eq.apple").await;
    let row = &r.json[0];
    assert_eq!(
        row["data"],
        json!({"color": "red", "n": 1, "tags": ["a", "b"]})
    );
    assert!(row["id"].is_i64());
    assert_eq!(row.as_object().unwrap().len(), 6);
}

both!(order_limit_offset_range_count);
async fn order_limit_offset_range_count(app: &TestApp) {
    seed_items(app).await;
    let r = get(
        app,
        As::Anon,
        "/items?select=name&order=qty.desc.nullslast,name",
    )
    .await;
    assert_eq!(names(&r.json), ["banana", "Date", "apple", "cherry"]);
    let r = get(app, As::Anon, "/items?select=name&order=qty.asc.nullsfirst").await;
    assert_eq!(names(&r.json), ["cherry", "apple", "Date", "banana"]);
    let r = get(app, As::Anon, "/items?select=name&order=qty.desc").await;
    assert_eq!(
        names(&r.json)[0],
        "cherry",
        "desc puts nulls first by default"
    );

    let r = get(
        app,
        As::Anon,
        "/items?select=name&order=name&limit=2&offset=1",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(names(&r.json), ["apple", "banana"]);
    assert_eq!(r.header("content-range"), Some("1-2/*"));

    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?select=name&order=name&limit=2",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("0-1/4"));
    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?select=name&qty=gt.0",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), Some("0-2/3"));
    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?qty=gt.100",
        &[("prefer", "count=planned")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), Some("*/0"));
    assert_eq!(r.json, json!([]));

    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?select=name&order=name",
        &[("range", "1-2"), ("range-unit", "items")],
        None,
    )
    .await;
    assert_eq!(names(&r.json), ["apple", "banana"]);
    assert_eq!(r.header("content-range"), Some("1-2/*"));
    common::call(
        app,
        As::Anon,
        Method::GET,
        "/items",
        &[("range", "3-1")],
        None,
    )
    .await
    .assert_error(416, "PGRST103");
    common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?offset=10",
        &[("prefer", "count=exact")],
        None,
    )
    .await
    .assert_error(416, "PGRST103");

    // max_rows is 50 in the fixture: a larger explicit limit is refused.
    get(app, As::Anon, "/items?limit=50").await;
    get(app, As::Anon, "/items?limit=51")
        .await
        .assert_error(400, "PGRST100");

    let r = common::call(
        app,
        As::Anon,
        Method::HEAD,
        "/items",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "");
    assert_eq!(r.header("content-range"), Some("0-3/4"));
}

both!(single_object_and_csv);
async fn single_object_and_csv(app: &TestApp) {
    seed_items(app).await;
    let object = [("accept", "application/vnd.pgrst.object+json")];
    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?select=name,qty&name=eq.apple",
        &object,
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!({"name": "apple", "qty": 5}));
    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?name=eq.nope",
        &object,
        None,
    )
    .await;
    r.assert_error(406, "PGRST116");
    assert_eq!(r.json["details"], "The result contains 0 rows");
    assert_eq!(
        r.json["message"],
        "Cannot coerce the result to a single JSON object"
    );
    let r = common::call(app, As::Anon, Method::GET, "/items", &object, None).await;
    assert_eq!(r.json["details"], "The result contains 4 rows");

    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/items?select=name,qty,active&order=name&limit=2",
        &[("accept", "text/csv")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(r.text, "name,qty,active\nDate,7,true\napple,5,true");

    common::call(
        app,
        As::Anon,
        Method::GET,
        "/items",
        &[("accept", "application/xml")],
        None,
    )
    .await
    .assert_error(406, "PGRST107");
    common::call(
        app,
        As::Anon,
        Method::GET,
        "/items",
        &[("accept-profile", "private")],
        None,
    )
    .await
    .assert_error(406, "PGRST106");
    assert_eq!(
        common::call(
            app,
            As::Anon,
            Method::GET,
            "/items",
            &[("accept-profile", "public")],
            None
        )
        .await
        .status,
        200
    );
}

both!(timestamps_and_uuids_read_the_same);
async fn timestamps_and_uuids_read_the_same(app: &TestApp) {
    let r = common::call(
        app,
        As::User(common::ALICE),
        Method::POST,
        "/todos",
        &[("prefer", "return=representation")],
        Some(json!({"title": "t", "created_at": "2024-01-02T03:04:05+01:00"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json[0]["created_at"], "2024-01-02T02:04:05+00:00");
    assert_eq!(r.json[0]["user_id"], common::ALICE);
    let r = get(
        app,
        As::User(common::ALICE),
        "/todos?created_at=lt.2024-01-03&select=created_at,user_id",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"created_at": "2024-01-02T02:04:05+00:00", "user_id": common::ALICE}])
    );
    let r = get(
        app,
        As::User(common::ALICE),
        "/todos?created_at=gt.2024-01-02T02:04:06Z",
    )
    .await;
    assert_eq!(r.json, json!([]));
}

both!(openapi_lists_readable_tables);
async fn openapi_lists_readable_tables(app: &TestApp) {
    let r = common::call(
        app,
        As::Anon,
        Method::GET,
        "/",
        &[("accept", "application/openapi+json")],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["swagger"], "2.0");
    let paths = r.json["paths"].as_object().unwrap();
    assert!(paths.contains_key("/items") && paths.contains_key("/profiles"));
    assert!(
        !paths.contains_key("/hidden_table"),
        "unexposed tables are not described"
    );
    assert!(!paths.contains_key("/todos"), "anon may not read todos");
    assert!(
        paths["/profiles"].get("post").is_none(),
        "anon may not write profiles"
    );
    let items = &r.json["definitions"]["items"];
    assert_eq!(items["properties"]["qty"]["type"], "integer");
    assert_eq!(items["required"], json!(["name"]));
    let r = get(app, As::User(common::ALICE), "/").await;
    assert!(r.json["paths"].get("/todos").is_some());
    let todo = &r.json["definitions"]["todos"]["properties"];
    assert!(
        todo.get("secret").is_none(),
        "hidden columns are not described"
    );
    assert!(
        todo["id"]["description"]
            .as_str()
            .unwrap()
            .contains("Primary Key")
    );
}
