//! `POST /object/list-v2/{bucket}` (storage-js `listV2`) on SQLite and
//! PostgreSQL: flat and delimited listings, string prefixes, byte order,
//! cursor paging by name and by time (stable under inserts), `exactMatch`,
//! access decisions in SQL, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{As, H, U1, U2};
use reqwest::Method;
use serde_json::{Value, json};

async fn put(h: &H, who: As, bucket: &str, name: &str) {
    let (s, r) = h
        .upload(who, bucket, name, name.to_owned(), "text/plain", false)
        .await;
    assert_eq!(s, 200, "{bucket}/{name}: {r}");
}

async fn list_v2(h: &H, who: As, bucket: &str, body: Value) -> (u16, Value) {
    h.send(
        h.req(Method::POST, &format!("/object/list-v2/{bucket}"), who)
            .json(&body),
    )
    .await
}

async fn ok(h: &H, bucket: &str, body: Value) -> Value {
    let (s, r) = list_v2(h, As::Service, bucket, body.clone()).await;
    assert_eq!(s, 200, "{body} → {r}");
    r
}

fn field(list: &Value, part: &str, key: &str) -> Vec<String> {
    list[part]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].as_str().unwrap().to_owned())
        .collect()
}

/// Every key of a paged listing, following `nextCursor`.
async fn all_pages(h: &H, who: As, bucket: &str, body: Value) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut pages = 0;
    let mut request = body.clone();
    loop {
        let (s, page) = list_v2(h, who, bucket, request.clone()).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        keys.extend(field(&page, "folders", "key"));
        keys.extend(field(&page, "objects", "key"));
        if page["hasNext"] == false {
            assert!(page.get("nextCursor").is_none(), "{page}");
            break;
        }
        request["cursor"] = page["nextCursor"].clone();
        assert!(pages < 100);
    }
    (keys, pages)
}

async fn scenario(h: Arc<H>) {
    let names = [
        "docs/a.txt",
        "docs/b.txt",
        "docs/sub/c.txt",
        "docs/sub/d/e.txt",
        "docs.txt",
        "zeta.txt",
        "a b/c.txt",
        "Ünï/é.txt",
    ];
    for n in names {
        put(&h, As::Service, "open", n).await;
    }

    // Flat: every object under the prefix, keys in byte order, no folders.
    let flat = ok(&h, "open", json!({})).await;
    let mut sorted: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    sorted.sort();
    assert_eq!(field(&flat, "objects", "key"), sorted);
    assert_eq!(field(&flat, "objects", "name"), sorted);
    assert_eq!(flat["folders"], json!([]));
    assert_eq!(flat["hasNext"], false);
    let first = &flat["objects"][0];
    assert!(first["id"].is_string() && first["version"].is_string());
    assert_eq!(first["metadata"]["size"], 9, "{first}");
    assert_eq!(first["metadata"]["mimetype"], "text/plain");
    assert!(first["updated_at"].is_string() && first["created_at"].is_string());

    // Delimited at the root: folders and objects apart, each in byte order.
    let root = ok(&h, "open", json!({"with_delimiter": true})).await;
    assert_eq!(
        field(&root, "folders", "key"),
        ["a b/", "docs/", "Ünï/"].map(String::from).to_vec()
    );
    assert_eq!(
        field(&root, "folders", "name"),
        ["a b", "docs", "Ünï"].map(String::from).to_vec()
    );
    assert_eq!(
        field(&root, "objects", "key"),
        ["docs.txt", "zeta.txt"].map(String::from).to_vec()
    );

    // A folder prefix: names relative to it.
    let docs = ok(
        &h,
        "open",
        json!({"prefix": "docs/", "with_delimiter": true}),
    )
    .await;
    assert_eq!(
        field(&docs, "objects", "name"),
        ["a.txt", "b.txt"].map(String::from).to_vec()
    );
    assert_eq!(
        field(&docs, "objects", "key"),
        ["docs/a.txt", "docs/b.txt"].map(String::from).to_vec()
    );
    assert_eq!(
        docs["folders"],
        json!([{"name": "sub", "key": "docs/sub/"}])
    );
    // A partial prefix matches names, not only folders.
    let partial = ok(
        &h,
        "open",
        json!({"prefix": "docs/s", "with_delimiter": true}),
    )
    .await;
    assert_eq!(
        partial["folders"],
        json!([{"name": "sub", "key": "docs/sub/"}])
    );
    assert_eq!(partial["objects"], json!([]));
    let partial = ok(&h, "open", json!({"prefix": "do", "with_delimiter": true})).await;
    assert_eq!(field(&partial, "objects", "key"), ["docs.txt"]);
    assert_eq!(field(&partial, "folders", "key"), ["docs/"]);
    // Flat under a folder: the whole subtree.
    let subtree = ok(&h, "open", json!({"prefix": "docs/sub/"})).await;
    assert_eq!(
        field(&subtree, "objects", "key"),
        ["docs/sub/c.txt", "docs/sub/d/e.txt"]
            .map(String::from)
            .to_vec()
    );
    assert_eq!(
        field(&subtree, "objects", "name"),
        ["c.txt", "d/e.txt"].map(String::from).to_vec()
    );
    // exactMatch: the object whose key is the prefix.
    let exact = ok(
        &h,
        "open",
        json!({"prefix": "docs/a.txt", "exactMatch": true}),
    )
    .await;
    assert_eq!(field(&exact, "objects", "key"), ["docs/a.txt"]);
    let exact = ok(&h, "open", json!({"prefix": "docs/a", "exactMatch": true})).await;
    assert_eq!(exact["objects"], json!([]));
    // Descending by name.
    let desc = ok(
        &h,
        "open",
        json!({"with_delimiter": true, "sortBy": {"column": "name", "order": "desc"}}),
    )
    .await;
    assert_eq!(
        field(&desc, "folders", "key"),
        ["Ünï/", "docs/", "a b/"].map(String::from).to_vec()
    );

    // Paging by name: 25 objects, pages of 10, then stable under an insert.
    for i in 0..25 {
        put(&h, As::Service, "open", &format!("page/f{i:02}.txt")).await;
    }
    let want: Vec<String> = (0..25).map(|i| format!("page/f{i:02}.txt")).collect();
    let (keys, pages) = all_pages(
        &h,
        As::Service,
        "open",
        json!({"prefix": "page/", "limit": 10}),
    )
    .await;
    assert_eq!((keys.clone(), pages), (want.clone(), 3));
    let (mut keys, _) = all_pages(
        &h,
        As::Service,
        "open",
        json!({"prefix": "page/", "limit": 7, "sortBy": {"column": "name", "order": "desc"}}),
    )
    .await;
    keys.reverse();
    assert_eq!(keys, want);
    let p1 = ok(&h, "open", json!({"prefix": "page/", "limit": 10})).await;
    assert_eq!(p1["hasNext"], true);
    put(&h, As::Service, "open", "page/f00a.txt").await; // before the cursor
    put(&h, As::Service, "open", "page/f99.txt").await; // after it
    let p2 = ok(
        &h,
        "open",
        json!({"prefix": "page/", "limit": 10, "cursor": p1["nextCursor"]}),
    )
    .await;
    let mut p2_keys = field(&p2, "objects", "key");
    assert_eq!(p2_keys[0], "page/f10.txt", "no repeat, no skip");
    let p3 = ok(
        &h,
        "open",
        json!({"prefix": "page/", "limit": 10, "cursor": p2["nextCursor"]}),
    )
    .await;
    p2_keys.extend(field(&p3, "objects", "key"));
    assert_eq!(p2_keys.last().unwrap(), "page/f99.txt");
    assert_eq!(p2_keys.len(), 16);
    assert_eq!(p3["hasNext"], false);

    // Paging by time: upload order, ties broken by key; folders by their newest object.
    for i in [3, 1, 2, 0] {
        put(&h, As::Service, "open", &format!("time/t{i}.txt")).await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    put(&h, As::Service, "open", "time/dir/old.txt").await;
    let (keys, _) = all_pages(
        &h,
        As::Service,
        "open",
        json!({"prefix": "time/", "limit": 2, "with_delimiter": true, "sortBy": {"column": "created_at"}}),
    )
    .await;
    assert_eq!(
        keys,
        [
            "time/t3.txt",
            "time/t1.txt",
            "time/t2.txt",
            "time/t0.txt",
            "time/dir/"
        ]
        .map(String::from)
        .to_vec()
    );
    let (keys, _) = all_pages(
        &h,
        As::Service,
        "open",
        json!({"prefix": "time/", "limit": 3, "sortBy": {"column": "updated_at", "order": "desc"}}),
    )
    .await;
    assert_eq!(
        keys,
        [
            "time/dir/old.txt",
            "time/t0.txt",
            "time/t2.txt",
            "time/t1.txt",
            "time/t3.txt"
        ]
        .map(String::from)
        .to_vec()
    );

    // Refusals: 400 in the storage shape, 404 for a missing bucket.
    let name_cursor = p1["nextCursor"].clone();
    for body in [
        json!({"prefix": "page/", "cursor": "garbage!"}),
        json!({"prefix": "page/", "cursor": name_cursor, "sortBy": {"column": "created_at"}}),
        json!({"prefix": "other/", "cursor": name_cursor}),
        json!({"sortBy": {"column": "size"}}),
        json!({"sortBy": {"column": "name", "order": "up"}}),
        json!({"noncurrentVersions": "include"}),
        json!({"deleteMarkers": "only"}),
    ] {
        let r = list_v2(&h, As::Service, "open", body.clone()).await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    for prefix in ["/x", "a//b", "../x/y", "a/\u{1}"] {
        let r = list_v2(&h, As::Service, "open", json!({ "prefix": prefix })).await;
        h.assert_error(&r, 400, "InvalidKey");
    }
    let r = list_v2(&h, As::Service, "nope", json!({})).await;
    h.assert_error(&r, 404, "NoSuchBucket");
    let r = list_v2(&h, As::Nobody, "open", json!({})).await;
    assert_eq!(r.0, 401, "{}", r.1);
    // Limits are clamped to 1..=1000.
    let one = ok(&h, "open", json!({"prefix": "page/", "limit": 0})).await;
    assert_eq!(one["objects"].as_array().unwrap().len(), 1);
}

async fn access(h: Arc<H>) {
    // Private bucket: the owner-only rule is applied in SQL, so pages are full
    // pages of what the caller may see.
    for i in 0..6 {
        put(&h, As::User(U1), "priv", &format!("shared/u1-{i}.txt")).await;
        put(&h, As::User(U2), "priv", &format!("shared/u2-{i}.txt")).await;
    }
    let (keys, pages) = all_pages(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "shared/", "limit": 3}),
    )
    .await;
    assert_eq!(pages, 2);
    assert_eq!(
        keys,
        (0..6)
            .map(|i| format!("shared/u1-{i}.txt"))
            .collect::<Vec<_>>()
    );
    let (keys, _) = all_pages(&h, As::User(U2), "priv", json!({"with_delimiter": true})).await;
    assert_eq!(keys, ["shared/"]);
    let (s, anon) = list_v2(&h, As::Anon, "priv", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        anon,
        json!({"hasNext": false, "folders": [], "objects": []})
    );
    let (keys, _) = all_pages(&h, As::Service, "priv", json!({"prefix": "shared/u"})).await;
    assert_eq!(keys.len(), 12);
}

both!(listing, crate::scenario);
both!(access_in_sql, crate::access);
