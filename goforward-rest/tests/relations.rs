//! PostgREST 12 features on SQLite and PostgreSQL: many-to-many embeds
//! through junction tables, spread embeds, aggregates, `ov` and full-text
//! search, `Prefer: tx=` and `timezone=`, and column policies — each with
//! its refusals (right status, PostgREST shape, nothing written).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, BOB, call, db_count, get, seed};
use goforward_core::{
    Context, Plugin,
    access::Policy,
    sea_orm::{ConnectionTrait, DbBackend},
    testing::{TestApp, postgres_url_or_skip},
};
use goforward_rest::{ColumnPolicy, Rest, TxEnd};
use reqwest::Method;
use serde_json::{Value, json};

/// Extra tables: films ⟷ actors through `roles` (key junction) and
/// `directors` (a second one), `credits` (no key: not a junction),
/// `awards` (not exposed), films ⟷ tags through `film_tags` (unique
/// constraint), and `docs` for search.
struct Extra;

const SQLITE: &[&str] = &[
    "CREATE TABLE films (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER)",
    "CREATE TABLE actors (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE roles (film_id INTEGER NOT NULL REFERENCES films(id), \
     actor_id INTEGER NOT NULL REFERENCES actors(id), character TEXT, PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE directors (film_id INTEGER NOT NULL REFERENCES films(id), \
     actor_id INTEGER NOT NULL REFERENCES actors(id), PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE credits (id INTEGER PRIMARY KEY, film_id INTEGER REFERENCES films(id), \
     actor_id INTEGER REFERENCES actors(id))",
    "CREATE TABLE awards (film_id INTEGER NOT NULL REFERENCES films(id), \
     actor_id INTEGER NOT NULL REFERENCES actors(id), PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT NOT NULL)",
    "CREATE TABLE film_tags (id INTEGER PRIMARY KEY, film_id INTEGER NOT NULL REFERENCES films(id), \
     tag_id INTEGER NOT NULL REFERENCES tags(id), hidden_flag BOOLEAN, UNIQUE (film_id, tag_id))",
    "CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, labels jsonb_text)",
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE films (id BIGINT PRIMARY KEY, title TEXT NOT NULL, year INTEGER)",
    "CREATE TABLE actors (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE roles (film_id BIGINT NOT NULL REFERENCES films(id), \
     actor_id BIGINT NOT NULL REFERENCES actors(id), character TEXT, PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE directors (film_id BIGINT NOT NULL REFERENCES films(id), \
     actor_id BIGINT NOT NULL REFERENCES actors(id), PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE credits (id BIGINT PRIMARY KEY, film_id BIGINT REFERENCES films(id), \
     actor_id BIGINT REFERENCES actors(id))",
    "CREATE TABLE awards (film_id BIGINT NOT NULL REFERENCES films(id), \
     actor_id BIGINT NOT NULL REFERENCES actors(id), PRIMARY KEY (film_id, actor_id))",
    "CREATE TABLE tags (id BIGINT PRIMARY KEY, label TEXT NOT NULL)",
    "CREATE TABLE film_tags (id BIGINT PRIMARY KEY, film_id BIGINT NOT NULL REFERENCES films(id), \
     tag_id BIGINT NOT NULL REFERENCES tags(id), hidden_flag BOOLEAN, UNIQUE (film_id, tag_id))",
    "CREATE TABLE docs (id BIGINT PRIMARY KEY, body TEXT, labels jsonb, arr text[], nums int4[], tsv tsvector)",
];

#[async_trait::async_trait]
impl Plugin for Extra {
    fn name(&self) -> &str {
        "extra"
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let db = ctx.db();
        let ddl = match db.get_database_backend() {
            DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for stmt in ddl {
            db.execute_unprepared(stmt).await?;
        }
        Ok(())
    }
}

fn rest() -> Rest {
    let mut rest = common::rest();
    for t in [
        "films",
        "actors",
        "roles",
        "directors",
        "credits",
        "tags",
        "docs",
    ] {
        rest = rest.table(t, Policy::public());
    }
    rest.table("film_tags", Policy::public())
        .hide_columns("film_tags", ["hidden_flag"])
        .aggregates(true)
        .tx_end(TxEnd::CommitAllowOverride)
        .column_policy(
            "items",
            ColumnPolicy::new()
                .readable("anon", ["id", "name", "qty"])
                .writable("authenticated", ["name", "qty", "data"]),
        )
}

async fn start(postgres: bool, test: &str, rest: Rest) -> Option<TestApp> {
    if postgres && postgres_url_or_skip(test).is_none() {
        return None;
    }
    Some(
        TestApp::builder()
            .postgres(postgres)
            .plugin(common::Fixture)
            .plugin(Extra)
            .plugin(rest)
            .start()
            .await
            .expect("app starts"),
    )
}

macro_rules! both_with {
    ($name:ident, $rest:expr) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(app) = super::start(false, stringify!($name), $rest).await {
                    super::$name(&app, false).await;
                    app.stop().await;
                }
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(app) = super::start(true, stringify!($name), $rest).await {
                    super::$name(&app, true).await;
                    app.stop().await;
                }
            }
        }
    };
}

async fn films(app: &TestApp) {
    seed(
        app,
        "films",
        json!([{"id": 1, "title": "Alpha", "year": 2001}, {"id": 2, "title": "Beta", "year": 2002},
               {"id": 3, "title": "Gamma", "year": 2001}]),
    )
    .await;
    seed(
        app,
        "actors",
        json!([{"id": 10, "name": "Ann"}, {"id": 11, "name": "Bo"}, {"id": 12, "name": "Cy"}]),
    )
    .await;
    seed(
        app,
        "roles",
        json!([{"film_id": 1, "actor_id": 10, "character": "a"}, {"film_id": 1, "actor_id": 11, "character": "b"},
               {"film_id": 2, "actor_id": 11, "character": "c"}]),
    )
    .await;
    seed(app, "directors", json!([{"film_id": 1, "actor_id": 12}])).await;
    seed(
        app,
        "tags",
        json!([{"id": 100, "label": "drama"}, {"id": 101, "label": "noir"}]),
    )
    .await;
    seed(
        app,
        "film_tags",
        json!([{"id": 1, "film_id": 1, "tag_id": 100}, {"id": 2, "film_id": 2, "tag_id": 100},
               {"id": 3, "film_id": 2, "tag_id": 101}]),
    )
    .await;
}

fn field(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("array expected: {v}"))
        .iter()
        .map(|r| match &r[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

both_with!(many_to_many_embeds, super::rest());
async fn many_to_many_embeds(app: &TestApp, _pg: bool) {
    films(app).await;
    // Two junctions (roles, directors) join films and actors: ambiguous.
    get(app, As::Anon, "/films?select=title,actors(name)")
        .await
        .assert_error(300, "PGRST201");
    // A hint naming the junction picks it.
    let r = get(
        app,
        As::Anon,
        "/films?select=title,actors!roles(name)&order=title&actors.order=name",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"title": "Alpha", "actors": [{"name": "Ann"}, {"name": "Bo"}]},
            {"title": "Beta", "actors": [{"name": "Bo"}]},
            {"title": "Gamma", "actors": []},
        ])
    );
    // …or one of its foreign keys; and the other direction.
    let r = get(
        app,
        As::Anon,
        "/actors?select=name,films!directors_film_id_fkey(title)&order=name",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ann", "films": []}, {"name": "Bo", "films": []}, {"name": "Cy", "films": [{"title": "Alpha"}]}])
    );
    // A junction by unique constraint (film_tags), with nested filters,
    // order and limit, next to a one-to-many embed, in one request.
    let r = get(
        app,
        As::Anon,
        "/films?select=title,tags(label),roles(character)&order=title\
         &tags.order=label.desc&tags.limit=1&roles.order=character",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"title": "Alpha", "tags": [{"label": "drama"}], "roles": [{"character": "a"}, {"character": "b"}]},
            {"title": "Beta", "tags": [{"label": "noir"}], "roles": [{"character": "c"}]},
            {"title": "Gamma", "tags": [], "roles": []},
        ])
    );
    let r = get(
        app,
        As::Anon,
        "/films?select=title,tags!inner(label)&tags.label=eq.noir",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"title": "Beta", "tags": [{"label": "noir"}]}])
    );
    // Nested: actors of films of a tag.
    let r = get(
        app,
        As::Anon,
        "/tags?select=label,films(title,actors!roles(name))&label=eq.noir",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"label": "noir", "films": [{"title": "Beta", "actors": [{"name": "Bo"}]}]}])
    );
    // Back to the same table two levels down (inner scopes shadow outer ones).
    let r = get(
        app,
        As::Anon,
        "/films?select=title,actors!roles(name,films!roles(title))&id=eq.2",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[0]["actors"][0]["name"], "Bo");
    let mut titles = field(&r.json[0]["actors"][0]["films"], "title");
    titles.sort();
    assert_eq!(titles, ["Alpha", "Beta"]);
    // Refusals: a keyless link table is no junction, an unexposed one is
    // unknown, a hint matching nothing, a hidden column in a nested filter.
    get(app, As::Anon, "/films?select=actors!credits(name)")
        .await
        .assert_error(400, "PGRST200");
    get(app, As::Anon, "/films?select=actors!awards(name)")
        .await
        .assert_error(400, "PGRST200");
    get(app, As::Anon, "/films?select=actors!nosuch(name)")
        .await
        .assert_error(400, "PGRST200");
    get(app, As::Anon, "/films?select=tags(label)&tags.nosuch=eq.1")
        .await
        .assert_error(400, "42703");
    get(
        app,
        As::Anon,
        "/films?select=actors!roles(name)&actors.limit=x",
    )
    .await
    .assert_error(400, "PGRST100");
}

both_with!(spread_embeds, super::rest());
async fn spread_embeds(app: &TestApp, _pg: bool) {
    seed(
        app,
        "profiles",
        json!([{"id": ALICE, "username": "alice"}, {"id": BOB, "username": "bob"}]),
    )
    .await;
    seed(
        app,
        "notes",
        json!([{"profile_id": ALICE, "body": "n1"}, {"profile_id": BOB, "body": "n2"}]),
    )
    .await;
    let r = get(
        app,
        As::Anon,
        "/notes?select=body,...profiles(author:username,id)&order=body",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"body": "n1", "author": "alice", "id": ALICE}, {"body": "n2", "author": "bob", "id": BOB}])
    );
    // Filters on the spread relation; !inner drops parents without a match.
    let r = get(
        app,
        As::Anon,
        "/notes?select=body,...profiles!inner(username)&profiles.username=eq.bob",
    )
    .await;
    assert_eq!(r.json, json!([{"body": "n2", "username": "bob"}]));
    // Nested embed inside a spread.
    let r = get(
        app,
        As::Anon,
        "/notes?select=body,...profiles(username,notes(body))&body=eq.n1",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"body": "n1", "username": "alice", "notes": [{"body": "n1"}]}])
    );
    // CSV and single object see flat columns too.
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/notes?select=body,...profiles(username)&body=eq.n1",
        &[("accept", "application/vnd.pgrst.object+json")],
        None,
    )
    .await;
    assert_eq!(r.json, json!({"body": "n1", "username": "alice"}));
    // Write representation with a spread.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/notes?select=body,...profiles(username)",
        &[("prefer", "return=representation")],
        Some(json!({"profile_id": BOB, "body": "n3"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"body": "n3", "username": "bob"}]));
    // Refusals: to-many, alias, unknown relation, modifiers on a to-one spread.
    let before = db_count(app, "notes").await;
    get(app, As::Anon, "/profiles?select=...notes(body)")
        .await
        .assert_error(400, "PGRST119");
    get(app, As::Anon, "/notes?select=...p:profiles(username)")
        .await
        .assert_error(400, "PGRST100");
    get(app, As::Anon, "/notes?select=...nosuch(x)")
        .await
        .assert_error(400, "PGRST200");
    get(
        app,
        As::Anon,
        "/notes?select=...profiles(username)&profiles.order=username",
    )
    .await
    .assert_error(400, "PGRST100");
    call(
        app,
        As::Anon,
        Method::POST,
        "/notes?select=...profiles(nosuch)",
        &[("prefer", "return=representation")],
        Some(json!({"profile_id": BOB, "body": "n4"})),
    )
    .await
    .assert_error(400, "42703");
    assert_eq!(db_count(app, "notes").await, before);
}

both_with!(aggregates, super::rest());
async fn aggregates(app: &TestApp, _pg: bool) {
    common::seed_items(app).await;
    let r = get(app, As::Service, "/items?select=count()").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([{"count": 4}]));
    let r = get(
        app,
        As::Service,
        "/items?select=total:qty.sum(),qty.avg(),price.max(),name.min(),qty.count()",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"total": 22, "avg": 22.0 / 3.0, "max": 3.0, "min": "Date", "count": 3}])
    );
    // Grouped by the other selected columns, ordered by a grouped one.
    let r = get(
        app,
        As::Service,
        "/items?select=active,n:count(),qty.sum()&order=active.nullsfirst",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"active": null, "n": 1, "sum": null},
            {"active": false, "n": 1, "sum": 10},
            {"active": true, "n": 2, "sum": 12},
        ])
    );
    // count=exact counts groups; a range of groups is a 206.
    let r = call(
        app,
        As::Service,
        Method::GET,
        "/items?select=active,count()&order=active&limit=2",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(r.status, 206, "{}", r.text);
    assert_eq!(r.header("content-range"), Some("0-1/3"));
    // Filters apply before grouping; casts on the result.
    let r = get(
        app,
        As::Service,
        "/items?select=qty.sum()::text&active=is.true",
    )
    .await;
    assert_eq!(r.json, json!([{"sum": "12"}]));
    // Row policy applies: anon may read only some columns of items.
    let r = get(app, As::Anon, "/items?select=count(),qty.sum()").await;
    assert_eq!(r.json, json!([{"count": 4, "sum": 22}]));
    get(app, As::Anon, "/items?select=price.sum()")
        .await
        .assert_error(400, "42703");
    // Refusals.
    for (q, status, code) in [
        ("/items?select=name.sum()", 400, "PGRST100"),
        ("/items?select=data.min()", 400, "PGRST100"),
        ("/items?select=nosuch.sum()", 400, "42703"),
        ("/items?select=qty.median()", 400, "PGRST100"),
        ("/items?select=active,count()&order=name", 400, "PGRST100"),
        (
            "/notes?select=body,profiles(username),count()",
            400,
            "PGRST100",
        ),
        (
            "/notes?select=body,...profiles(username),count()",
            400,
            "PGRST100",
        ),
        ("/items?select=data->>color,count()", 400, "PGRST100"),
    ] {
        get(app, As::Service, q).await.assert_error(status, code);
    }
    let before = db_count(app, "items").await;
    call(
        app,
        As::Service,
        Method::POST,
        "/items?select=count()",
        &[("prefer", "return=representation")],
        Some(json!({"name": "x"})),
    )
    .await
    .assert_error(400, "PGRST100");
    assert_eq!(db_count(app, "items").await, before);
}

both_with!(aggregates_off_by_default, super::common::rest());
async fn aggregates_off_by_default(app: &TestApp, _pg: bool) {
    get(app, As::Service, "/items?select=count()")
        .await
        .assert_error(400, "PGRST123");
    get(app, As::Service, "/items?select=name,qty.sum()")
        .await
        .assert_error(400, "PGRST123");
    get(app, As::Service, "/profiles?select=notes(count())")
        .await
        .assert_error(400, "PGRST123");
}

both_with!(overlaps_and_full_text_search, super::rest());
async fn overlaps_and_full_text_search(app: &TestApp, pg: bool) {
    let mut rows = json!([
        {"id": 1, "body": "The fat cat sat on the mat", "labels": ["a", "b"]},
        {"id": 2, "body": "Fat rats ate the cats", "labels": ["c", 1]},
        {"id": 3, "body": "A dog", "labels": []},
        {"id": 4, "body": null, "labels": null},
    ]);
    if pg {
        for (i, arr) in [json!("{a,b}"), json!("{c}"), json!("{}"), Value::Null]
            .into_iter()
            .enumerate()
        {
            rows[i]["arr"] = arr;
        }
    }
    // Arrays go in through SQL on PostgreSQL (JSON arrays bind as JSON).
    for row in rows.as_array().unwrap() {
        let mut r = row.clone();
        r.as_object_mut().unwrap().remove("arr");
        seed(app, "docs", r).await;
    }
    if pg {
        app.db()
            .execute_unprepared(
                "UPDATE docs SET arr = '{a,b}', nums = '{1,2}' WHERE id = 1; \
                 UPDATE docs SET arr = '{c}', nums = '{3}' WHERE id = 2; \
                 UPDATE docs SET arr = '{}' WHERE id = 3; \
                 UPDATE docs SET tsv = to_tsvector('english', body)",
            )
            .await
            .unwrap();
    }
    let ids = |r: &common::Res| field(&r.json, "id");
    // ov on JSON arrays (both backends).
    let r = get(app, As::Anon, "/docs?select=id&labels=ov.{b,c}&order=id").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), ["1", "2"]);
    let r = get(app, As::Anon, "/docs?select=id&labels=ov.{1}&order=id").await;
    assert_eq!(ids(&r), ["2"]);
    let r = get(app, As::Anon, "/docs?select=id&labels=not.ov.{a}&order=id").await;
    assert_eq!(ids(&r), ["2", "3"]);
    let r = get(app, As::Anon, "/docs?select=id&labels=ov.{}").await;
    assert_eq!(r.json, json!([]));
    get(app, As::Anon, "/docs?labels=ov.a,b")
        .await
        .assert_error(400, "PGRST100");
    get(app, As::Anon, "/docs?body=ov.{a}")
        .await
        .assert_error(400, "PGRST100");
    if pg {
        // ov on PostgreSQL arrays, values bound as an array literal.
        let r = get(app, As::Anon, "/docs?select=id&arr=ov.{b,c}&order=id").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(ids(&r), ["1", "2"]);
        let r = get(app, As::Anon, "/docs?select=id&nums=ov.{2,3}&order=id").await;
        assert_eq!(ids(&r), ["1", "2"]);
        get(app, As::Anon, "/docs?nums=ov.{x}")
            .await
            .assert_error(400, "22P02");
        // Full-text search.
        for (q, want) in [
            ("body=fts.mat", vec!["1"]),
            ("body=fts(simple).cat", vec!["1"]),
            ("body=fts(english).cat", vec!["1", "2"]),
            ("body=fts(english).fat%20%26%20rat", vec!["2"]),
            ("body=plfts(english).fat%20cats", vec!["1", "2"]),
            ("body=phfts(english).fat%20cat", vec!["1"]),
            ("body=wfts(english).%22fat%20rats%22%20-dog", vec!["2"]),
            ("tsv=fts(english).mat", vec!["1"]),
            ("body=not.fts(english).cat", vec!["3"]),
            (
                "or=(body.fts(english).dog,body.fts(english).rat)",
                vec!["2", "3"],
            ),
        ] {
            let r = get(app, As::Anon, &format!("/docs?select=id&order=id&{q}")).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            assert_eq!(ids(&r), want, "{q}");
        }
        // Refusals: unknown language (never reaches SQL), bad tsquery, wrong column type.
        get(app, As::Anon, "/docs?body=fts(klingon).cat")
            .await
            .assert_error(400, "PGRST100");
        get(app, As::Anon, "/docs?body=fts(english').cat")
            .await
            .assert_error(400, "PGRST100");
        get(app, As::Anon, "/docs?body=fts(english).fat%20cat")
            .await
            .assert_error(400, "22P02");
        get(app, As::Anon, "/docs?id=fts.cat")
            .await
            .assert_error(400, "PGRST100");
    } else {
        for q in [
            "body=fts.cat",
            "body=fts(english).cat",
            "body=plfts.cat",
            "body=phfts.cat",
            "body=wfts.cat",
        ] {
            let r = get(app, As::Anon, &format!("/docs?{q}")).await;
            r.assert_error(400, "PGRST100");
            assert!(
                r.json["message"].as_str().unwrap().contains("SQLite"),
                "{}",
                r.text
            );
        }
    }
    assert_eq!(db_count(app, "docs").await, 4);
}

both_with!(tx_rollback_and_timezone, super::rest());
async fn tx_rollback_and_timezone(app: &TestApp, pg: bool) {
    common::seed_items(app).await;
    let before = db_count(app, "items").await;
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/items?select=name",
        &[("prefer", "return=representation, tx=rollback")],
        Some(json!([{"name": "ghost1"}, {"name": "ghost2"}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "ghost1"}, {"name": "ghost2"}]));
    assert!(
        r.header("preference-applied")
            .is_some_and(|p| p.contains("tx=rollback")),
        "{:?}",
        r.headers
    );
    assert_eq!(db_count(app, "items").await, before);
    // PATCH and DELETE roll back too.
    let r = call(
        app,
        As::Service,
        Method::PATCH,
        "/items?name=eq.apple&select=qty",
        &[("prefer", "return=representation,tx=rollback")],
        Some(json!({"qty": 99})),
    )
    .await;
    assert_eq!(r.json, json!([{"qty": 99}]));
    let r = call(
        app,
        As::Service,
        Method::DELETE,
        "/items?name=eq.apple",
        &[("prefer", "tx=rollback")],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = get(app, As::Service, "/items?select=qty&name=eq.apple").await;
    assert_eq!(r.json, json!([{"qty": 5}]));
    // tx=commit commits.
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/items",
        &[("prefer", "tx=commit")],
        Some(json!({"name": "real"})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(db_count(app, "items").await, before + 1);
    // A bad write under tx=rollback still answers its error.
    call(
        app,
        As::Service,
        Method::POST,
        "/items",
        &[("prefer", "tx=rollback")],
        Some(json!({"name": "apple"})),
    )
    .await
    .assert_error(409, "23505");
    // Timezone: PostgreSQL renders timestamptz in the zone; SQLite ignores it
    // (not applied), and refuses it under handling=strict.
    seed(
        app,
        "todos",
        json!({"user_id": ALICE, "title": "t", "created_at": "2024-01-02T03:04:05Z"}),
    )
    .await;
    let r = call(
        app,
        As::Service,
        Method::GET,
        "/todos?select=created_at",
        &[("prefer", "timezone=America/Los_Angeles")],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    if pg {
        assert_eq!(r.json, json!([{"created_at": "2024-01-01T19:04:05-08:00"}]));
        assert_eq!(
            r.header("preference-applied"),
            Some("timezone=America/Los_Angeles")
        );
        // Again (the zone is now known without asking the catalog), with a count.
        let r = call(
            app,
            As::Service,
            Method::GET,
            "/todos?select=created_at",
            &[("prefer", "timezone=America/Los_Angeles, count=exact")],
            None,
        )
        .await;
        assert_eq!(r.json, json!([{"created_at": "2024-01-01T19:04:05-08:00"}]));
        assert_eq!(r.header("content-range"), Some("0-0/1"));
        // Unknown zones are ignored (lenient) or refused (strict).
        let r = call(
            app,
            As::Service,
            Method::GET,
            "/todos?select=created_at",
            &[("prefer", "timezone=Mars/Olympus")],
            None,
        )
        .await;
        assert_eq!(r.json, json!([{"created_at": "2024-01-02T03:04:05+00:00"}]));
        assert!(r.header("preference-applied").is_none());
        call(
            app,
            As::Service,
            Method::GET,
            "/todos?select=created_at",
            &[("prefer", "handling=strict, timezone=Mars/Olympus")],
            None,
        )
        .await
        .assert_error(400, "PGRST122");
    } else {
        assert_eq!(r.json, json!([{"created_at": "2024-01-02T03:04:05+00:00"}]));
        assert!(r.header("preference-applied").is_none());
        call(
            app,
            As::Service,
            Method::GET,
            "/todos?select=created_at",
            &[("prefer", "handling=strict, timezone=UTC")],
            None,
        )
        .await
        .assert_error(400, "PGRST122");
    }
}

both_with!(tx_override_refused_by_default, super::common::rest());
async fn tx_override_refused_by_default(app: &TestApp, _pg: bool) {
    let before = db_count(app, "items").await;
    // Lenient: the preference is ignored and the write commits.
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/items",
        &[("prefer", "tx=rollback")],
        Some(json!({"name": "kept"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("preference-applied").is_none());
    assert_eq!(db_count(app, "items").await, before + 1);
    // Strict: refused, nothing written.
    call(
        app,
        As::Service,
        Method::POST,
        "/items",
        &[("prefer", "handling=strict, tx=rollback")],
        Some(json!({"name": "refused"})),
    )
    .await
    .assert_error(400, "PGRST122");
    assert_eq!(db_count(app, "items").await, before + 1);
}

both_with!(column_policies, super::rest());
async fn column_policies(app: &TestApp, _pg: bool) {
    common::seed_items(app).await;
    // anon reads id, name, qty only: * leaves the rest out…
    let r = get(app, As::Anon, "/items?select=*&name=eq.apple").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json.as_array().unwrap()[0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id", "name", "qty"]
    );
    // …and naming, filtering or ordering by them is "does not exist".
    for q in [
        "/items?select=price",
        "/items?price=gt.1",
        "/items?order=price",
        "/items?select=p:price",
        "/items?or=(price.gt.1,qty.eq.1)",
    ] {
        get(app, As::Anon, q).await.assert_error(400, "42703");
    }
    // The OpenAPI document shows anon only what it may read.
    let spec = get(app, As::Anon, "/").await;
    let props = spec.json["definitions"]["items"]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{}", spec.text));
    assert!(
        props.contains_key("qty") && !props.contains_key("price"),
        "{props:?}"
    );
    let spec = get(app, As::User(ALICE), "/").await;
    assert!(spec.json["definitions"]["items"]["properties"]["price"].is_object());
    // authenticated reads everything.
    let r = get(app, As::User(ALICE), "/items?select=price&name=eq.apple").await;
    assert_eq!(r.json, json!([{"price": 1.5}]));
    // Writes: a readable but not writable column is 403 naming it; nothing written.
    let before = db_count(app, "items").await;
    let r = call(
        app,
        As::User(ALICE),
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": "new", "price": 9.0})),
    )
    .await;
    r.assert_error(403, "42501");
    assert!(r.text.contains("price"), "{}", r.text);
    assert_eq!(db_count(app, "items").await, before);
    let r = call(
        app,
        As::User(ALICE),
        Method::PATCH,
        "/items?name=eq.apple",
        &[],
        Some(json!({"active": false})),
    )
    .await;
    r.assert_error(403, "42501");
    assert!(r.text.contains("active"), "{}", r.text);
    call(
        app,
        As::User(ALICE),
        Method::POST,
        "/items?on_conflict=name",
        &[("prefer", "resolution=merge-duplicates")],
        Some(json!({"name": "apple", "price": 0.0})),
    )
    .await
    .assert_error(403, "42501");
    let r = get(app, As::Service, "/items?select=price,active&name=eq.apple").await;
    assert_eq!(r.json, json!([{"price": 1.5, "active": true}]));
    // Writable columns go through, and the representation shows readable ones.
    let r = call(
        app,
        As::User(ALICE),
        Method::POST,
        "/items?select=name,qty",
        &[("prefer", "return=representation")],
        Some(json!({"name": "new", "qty": 1})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "new", "qty": 1}]));
    // anon has a read list and no write list: it may write what it can
    // read, and columns it cannot read do not exist for it.
    call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": "x", "price": 1.0})),
    )
    .await
    .assert_error(400, "PGRST204");
    // service_role bypasses column policies.
    let r = call(
        app,
        As::Service,
        Method::PATCH,
        "/items?name=eq.apple",
        &[("prefer", "return=representation")],
        Some(json!({"price": 2.0})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[0]["price"], 2.0);
}

both_with!(
    rpc_refuses_tx_and_timezone_when_strict,
    super::rest().rpc("one", |_call| async {
        Ok::<_, goforward_rest::RestError>(serde_json::json!(1))
    })
);
async fn rpc_refuses_tx_and_timezone_when_strict(app: &TestApp, _pg: bool) {
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/one",
        &[("prefer", "tx=rollback")],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("preference-applied").is_none());
    for prefer in [
        "handling=strict, tx=rollback",
        "handling=strict, timezone=UTC",
    ] {
        call(
            app,
            As::Anon,
            Method::POST,
            "/rpc/one",
            &[("prefer", prefer)],
            Some(json!({})),
        )
        .await
        .assert_error(400, "PGRST122");
    }
}

/// `[rest] tx_end = "rollback"`, `aggregates_enabled = true` from config.
async fn start_configured(postgres: bool, test: &str) -> Option<TestApp> {
    if postgres && postgres_url_or_skip(test).is_none() {
        return None;
    }
    Some(
        TestApp::builder()
            .postgres(postgres)
            .config(|c| {
                c.sections.insert(
                    "rest".into(),
                    json!({"tx_end": "rollback", "aggregates_enabled": true}),
                );
            })
            .plugin(common::Fixture)
            .plugin(common::rest())
            .start()
            .await
            .expect("app starts"),
    )
}

#[tokio::test]
async fn config_rollback_and_aggregates() {
    for pg in [false, true] {
        let Some(app) = start_configured(pg, "config_rollback_and_aggregates").await else {
            continue;
        };
        let r = call(
            &app,
            As::Service,
            Method::POST,
            "/items?select=name",
            &[("prefer", "return=representation")],
            Some(json!({"name": "dry"})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json, json!([{"name": "dry"}]));
        assert_eq!(db_count(&app, "items").await, 0, "rolled back");
        // tx=commit is not honoured without -allow-override.
        call(
            &app,
            As::Service,
            Method::POST,
            "/items",
            &[("prefer", "handling=strict, tx=commit")],
            Some(json!({"name": "dry"})),
        )
        .await
        .assert_error(400, "PGRST122");
        let r = get(&app, As::Service, "/items?select=count()").await;
        assert_eq!(r.json, json!([{"count": 0}]), "{}", r.text);
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_config_is_refused() {
    let res = TestApp::builder()
        .config(|c| {
            c.sections
                .insert("rest".into(), json!({"tx_end": "sometimes"}));
        })
        .plugin(common::rest())
        .start()
        .await;
    assert!(res.is_err(), "an unknown tx_end is a config error");
}

both_with!(
    junction_policy_applies,
    super::rest().table("directors", goforward_core::access::Policy::deny_all())
);
async fn junction_policy_applies(app: &TestApp, _pg: bool) {
    films(app).await;
    // anon may not read the junction: the relationship shows no rows…
    let r = get(
        app,
        As::Anon,
        "/films?select=title,actors!directors(name)&id=eq.1",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([{"title": "Alpha", "actors": []}]));
    let r = get(
        app,
        As::Anon,
        "/films?select=title,actors!directors!inner(name)",
    )
    .await;
    assert_eq!(r.json, json!([]));
    // …service_role bypasses policies.
    let r = get(
        app,
        As::Service,
        "/films?select=title,actors!directors(name)&id=eq.1",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"title": "Alpha", "actors": [{"name": "Cy"}]}])
    );
}

both_with!(embedded_aggregates, super::rest());
async fn embedded_aggregates(app: &TestApp, _pg: bool) {
    films(app).await;
    let r = get(
        app,
        As::Anon,
        "/films?select=title,actors!roles(count())&order=title",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"title": "Alpha", "actors": [{"count": 2}]},
            {"title": "Beta", "actors": [{"count": 1}]},
            {"title": "Gamma", "actors": [{"count": 0}]},
        ])
    );
    // Grouped by the embed's other columns, ordered by a grouped one.
    let r = get(
        app,
        As::Anon,
        "/tags?select=label,film_tags(tag_id,n:count(),film_id.max())&order=label&film_tags.order=tag_id",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"label": "drama", "film_tags": [{"tag_id": 100, "n": 2, "max": 2}]},
            {"label": "noir", "film_tags": [{"tag_id": 101, "n": 1, "max": 2}]},
        ])
    );
    // Refusals: to-one embeds and spreads, ungrouped order, disabled aggregates
    // (see aggregates_off_by_default) — all 400.
    get(app, As::Anon, "/roles?select=films(count())")
        .await
        .assert_error(400, "PGRST100");
    get(app, As::Anon, "/roles?select=...films(count())")
        .await
        .assert_error(400, "PGRST100");
    get(
        app,
        As::Anon,
        "/tags?select=film_tags(tag_id,count())&film_tags.order=film_id",
    )
    .await
    .assert_error(400, "PGRST100");
    get(
        app,
        As::Anon,
        "/tags?select=film_tags(films(title),count())",
    )
    .await
    .assert_error(400, "PGRST100");
}

// `Prefer: tx=rollback` runs the wrap and execute hooks as a committed
// write does (a wrap hook shapes the record, an execute hook's own SQL runs
// in the write's transaction and can refuse it) and rolls everything back;
// the after-success hooks do not run.
both_with!(tx_rollback_runs_execute_hooks, super::rest());
async fn tx_rollback_runs_execute_hooks(app: &TestApp, _pg: bool) {
    use goforward_core::{
        hooks::{RecordEvent, RecordExecuteEvent},
        sea_orm::Statement,
    };
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    common::seed_items(app).await;
    let hooks = app.gf.context().hooks();
    let executed = Arc::new(AtomicUsize::new(0));
    let succeeded = Arc::new(AtomicUsize::new(0));
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
    let count = Arc::clone(&executed);
    hooks.on_record_create_execute().bind_tagged(
        ["items"],
        "audit",
        0,
        move |e: RecordExecuteEvent, next| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                // The hook's own statement, in the write's transaction: a
                // second item named after the first (`DUP` collides with apple).
                let name = e.event.record["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let audit = if name == "DUP" {
                    "apple".to_owned()
                } else {
                    format!("audit-{name}")
                };
                let backend = e.tx().get_database_backend();
                e.tx()
                    .execute_raw(Statement::from_sql_and_values(
                        backend,
                        match backend {
                            goforward_core::sea_orm::DbBackend::Postgres => {
                                "INSERT INTO items (name) VALUES ($1)"
                            }
                            _ => "INSERT INTO items (name) VALUES (?)",
                        },
                        [audit.into()],
                    ))
                    .await?;
                next.run(e).await
            }
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
    let count = Arc::clone(&succeeded);
    hooks.on_record_after_create_success().bind_tagged(
        ["items"],
        "count",
        0,
        move |e: RecordEvent, next| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                next.run(e).await
            }
        },
    );
    let before = db_count(app, "items").await;
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/items?select=name",
        &[("prefer", "return=representation, tx=rollback")],
        Some(json!([{"name": "g1"}, {"name": "g2"}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "G1"}, {"name": "G2"}]));
    assert_eq!(executed.load(Ordering::SeqCst), 2, "execute hooks ran");
    assert_eq!(succeeded.load(Ordering::SeqCst), 0, "nothing committed");
    assert_eq!(
        db_count(app, "items").await,
        before,
        "rows and audit rows rolled back"
    );
    // The execute hook's statement ran in the transaction: its conflict is
    // the write's answer, as when committing.
    for tx in ["tx=rollback", "tx=commit"] {
        call(
            app,
            As::Service,
            Method::POST,
            "/items",
            &[("prefer", tx)],
            Some(json!({"name": "dup"})),
        )
        .await
        .assert_error(409, "23505");
    }
    // An execute hook refuses a rolled-back write as it refuses a real one.
    let r = call(
        app,
        As::Service,
        Method::PATCH,
        "/items?name=eq.apple",
        &[("prefer", "tx=rollback")],
        Some(json!({"qty": 0})),
    )
    .await;
    r.assert_error(400, "P0001");
    assert_eq!(r.json["message"], "qty must not become zero");
    assert_eq!(db_count(app, "items").await, before);
    // Committed: the same hooks, plus after-success, and both rows stay.
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/items",
        &[("prefer", "tx=commit")],
        Some(json!({"name": "kept"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(succeeded.load(Ordering::SeqCst), 1);
    assert_eq!(db_count(app, "items").await, before + 2);
    let r = get(
        app,
        As::Service,
        "/items?select=name&name=like.*KEPT&order=name",
    )
    .await;
    assert_eq!(r.json, json!([{"name": "KEPT"}, {"name": "audit-KEPT"}]));
}

// `Prefer: timezone=` on PostgreSQL shapes timestamptz values inside
// embedded resources and in the representation of POST / PATCH (read back
// in the zone); the stored value is the same instant. Not applied to
// DELETE, to return=minimal, nor anywhere on SQLite (strict: 400).
both_with!(timezone_in_embeds_and_writes, super::rest());
async fn timezone_in_embeds_and_writes(app: &TestApp, pg: bool) {
    const LA: (&str, &str) = ("prefer", "timezone=America/Los_Angeles");
    seed(app, "profiles", json!({"id": ALICE, "username": "alice"})).await;
    seed(
        app,
        "private_notes",
        json!({"profile_id": ALICE, "owner": ALICE, "body": "n", "at": "2024-01-02T03:04:05Z"}),
    )
    .await;
    let (zoned, utc) = ("2024-01-01T19:04:05-08:00", "2024-01-02T03:04:05+00:00");
    let expect = if pg { zoned } else { utc };
    // To-many embed, with a to-one embed nested inside it.
    let r = call(
        app,
        As::Service,
        Method::GET,
        "/profiles?select=username,private_notes(at,profiles(username))",
        &[LA],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"username": "alice", "private_notes": [{"at": expect, "profiles": {"username": "alice"}}]}])
    );
    // Writes: POST and PATCH representations in the zone (top level and
    // embedded), stored as the same instant.
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/private_notes?select=at,profiles(username)",
        &[(
            "prefer",
            "return=representation, timezone=America/Los_Angeles",
        )],
        Some(
            json!({"profile_id": ALICE, "owner": ALICE, "body": "w", "at": "2024-01-02T03:04:05Z"}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"at": expect, "profiles": {"username": "alice"}}])
    );
    assert_eq!(
        r.header("preference-applied")
            .is_some_and(|p| p.contains("timezone=America/Los_Angeles")),
        pg,
        "{:?}",
        r.headers
    );
    let r = call(
        app,
        As::Service,
        Method::PATCH,
        "/private_notes?body=eq.w&select=body,at",
        &[(
            "prefer",
            "return=representation, timezone=America/Los_Angeles",
        )],
        Some(json!({"at": "2024-07-01T12:00:00+02:00"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let summer = if pg {
        "2024-07-01T03:00:00-07:00"
    } else {
        "2024-07-01T10:00:00+00:00"
    };
    assert_eq!(r.json, json!([{"body": "w", "at": summer}]));
    let r = get(app, As::Service, "/private_notes?select=at&body=eq.w").await;
    assert_eq!(r.json, json!([{"at": "2024-07-01T10:00:00+00:00"}]));
    // DELETE's representation stays UTC: not applied, refused when strict.
    let r = call(
        app,
        As::Service,
        Method::DELETE,
        "/private_notes?body=eq.w&select=at",
        &[(
            "prefer",
            "return=representation, handling=strict, timezone=America/Los_Angeles",
        )],
        None,
    )
    .await;
    r.assert_error(400, "PGRST122");
    let r = call(
        app,
        As::Service,
        Method::DELETE,
        "/private_notes?body=eq.w&select=at",
        &[(
            "prefer",
            "return=representation, timezone=America/Los_Angeles",
        )],
        None,
    )
    .await;
    assert_eq!(r.json, json!([{"at": "2024-07-01T10:00:00+00:00"}]));
    assert!(
        r.header("preference-applied")
            .is_none_or(|p| !p.contains("timezone"))
    );
    // An unknown zone on a write: ignored (UTC), or 400 when strict.
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/private_notes?select=at",
        &[("prefer", "return=representation, timezone=Mars/Olympus")],
        Some(
            json!({"profile_id": ALICE, "owner": ALICE, "body": "x", "at": "2024-01-02T03:04:05Z"}),
        ),
    )
    .await;
    assert_eq!(r.json, json!([{"at": utc}]));
}
