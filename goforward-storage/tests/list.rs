//! `POST /object/list/{bucket}` on SQLite and PostgreSQL: folders, paging
//! across folders and files, ordering (byte order of names, timestamps),
//! search, access rules applied in SQL, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{As, H, U1, U2};
use goforward_core::access::{Action, Decision, Policy, Rule};
use goforward_core::filter::{Comparison, Filter, Op};
use goforward_storage::{Bucket, Storage};
use reqwest::Method;
use serde_json::{Value, json};

fn plugin() -> Storage {
    // `meta`: callers list their own objects plus any object whose user
    // metadata says it is shared (a rule on `owner_id` and a JSON path).
    let shared_or_own = Rule::Custom(Arc::new(|who| match &who.user_id {
        Some(uid) => Decision::AllowWhere(Filter::or([
            Filter::eq("owner_id", uid.as_ref()),
            Filter::Cmp(Comparison {
                column: "user_metadata".into(),
                json_path: vec!["visibility".into()],
                op: Op::Eq,
                value: json!("shared"),
            }),
        ])),
        None => Decision::Deny,
    }));
    common::storage(false)
        .bucket(
            Bucket::private("homes")
                .policy(Policy::all(Rule::UserPathPrefix).with(Action::Admin, Rule::Deny)),
        )
        .bucket(
            Bucket::private("meta").policy(
                Policy::all(Rule::Owner("owner".into()))
                    .with(Action::List, shared_or_own.clone())
                    .with(Action::Select, shared_or_own)
                    .with(Action::Admin, Rule::Deny),
            ),
        )
}

async fn put(h: &H, who: As, bucket: &str, name: &str) {
    let (s, r) = h
        .upload(who, bucket, name, name.to_owned(), "text/plain", false)
        .await;
    assert_eq!(s, 200, "{bucket}/{name}: {r}");
}

async fn list(h: &H, who: As, bucket: &str, body: Value) -> (u16, Value) {
    h.send(
        h.req(Method::POST, &format!("/object/list/{bucket}"), who)
            .json(&body),
    )
    .await
}

fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("a list: {items}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn listing(h: Arc<H>) {
    // Uploaded in this order, a few ms apart (distinct timestamps).
    let files = [
        "d/zeta.txt",
        "d/Alpha.txt",
        "d/beta.txt",
        "d/beta/inner.txt",
        "d/sub/one.txt",
        "d/sub/two.txt",
        "d/sub/deep/x.txt",
        "d/_under.txt",
        "d/%pct.txt",
        "d/caf\u{e9}.txt",
        "d/Sub2/x.txt",
        "dx/not-under-d.txt",
        "top.txt",
    ];
    for name in files {
        put(&h, As::User(U1), "priv", name).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let by_name = |order: &str| json!({"prefix": "d", "limit": 100, "offset": 0, "sortBy": {"column": "name", "order": order}});
    let (s, asc) = list(&h, As::User(U1), "priv", by_name("asc")).await;
    assert_eq!(s, 200, "{asc}");
    // Byte order: `%` < `A` < `S` < `_` < `b`…; the file `beta.txt` and the
    // folder `beta` are distinct entries; folders appear once.
    let want = [
        "%pct.txt",
        "Alpha.txt",
        "Sub2",
        "_under.txt",
        "beta",
        "beta.txt",
        "caf\u{e9}.txt",
        "sub",
        "zeta.txt",
    ];
    assert_eq!(names(&asc), want);
    let beta = &asc[4];
    assert!(beta["id"].is_null() && beta["metadata"].is_null() && beta["updated_at"].is_null());
    let file = &asc[5];
    assert_eq!(file["metadata"]["size"], "d/beta.txt".len());
    assert!(file["id"].is_string() && file["created_at"].is_string());
    let (_, desc) = list(&h, As::User(U1), "priv", by_name("desc")).await;
    let mut rev = want.to_vec();
    rev.reverse();
    assert_eq!(names(&desc), rev);
    // A trailing slash, or none, is the same prefix; the root lists top-level entries.
    let (_, slash) = list(&h, As::User(U1), "priv", json!({"prefix": "d/"})).await;
    assert_eq!(names(&slash), want);
    let (_, root) = list(&h, As::User(U1), "priv", json!({"prefix": ""})).await;
    assert_eq!(names(&root), ["d", "dx", "top.txt"]);
    let (_, deep) = list(&h, As::User(U1), "priv", json!({"prefix": "d/sub"})).await;
    assert_eq!(names(&deep), ["deep", "one.txt", "two.txt"]);

    // Pages of 2 put together are the whole listing, in both orders.
    for order in ["asc", "desc"] {
        let mut paged = Vec::new();
        for offset in (0..12).step_by(2) {
            let (s, page) = list(
                &h,
                As::User(U1),
                "priv",
                json!({"prefix": "d", "limit": 2, "offset": offset, "sortBy": {"column": "name", "order": order}}),
            )
            .await;
            assert_eq!(s, 200);
            assert!(page.as_array().unwrap().len() <= 2);
            paged.extend(names(&page));
        }
        let (_, all) = list(&h, As::User(U1), "priv", by_name(order)).await;
        assert_eq!(paged, names(&all), "{order}");
    }

    // By time: files oldest first, then folders by name; descending reverses that.
    let (_, by_time) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "sortBy": {"column": "created_at", "order": "asc"}}),
    )
    .await;
    let files_in_time = [
        "zeta.txt",
        "Alpha.txt",
        "beta.txt",
        "_under.txt",
        "%pct.txt",
        "caf\u{e9}.txt",
    ];
    let folders = ["Sub2", "beta", "sub"];
    let want_time: Vec<&str> = files_in_time
        .iter()
        .chain(folders.iter())
        .copied()
        .collect();
    assert_eq!(names(&by_time), want_time);
    let (_, by_time_desc) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "sortBy": {"column": "updated_at", "order": "desc"}}),
    )
    .await;
    let mut want_desc = want_time.clone();
    want_desc.reverse();
    assert_eq!(names(&by_time_desc), want_desc);
    // An overwrite moves a file to the end by updated_at, not by created_at.
    let (s, _) = h
        .upload(
            As::User(U1),
            "priv",
            "d/zeta.txt",
            "new",
            "text/plain",
            true,
        )
        .await;
    assert_eq!(s, 200);
    let (_, by_updated) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "limit": 6, "sortBy": {"column": "updated_at"}}),
    )
    .await;
    assert_eq!(names(&by_updated).last().unwrap(), "zeta.txt");
    let (_, by_created) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "limit": 1, "sortBy": {"column": "created_at"}}),
    )
    .await;
    assert_eq!(names(&by_created), ["zeta.txt"]);

    // Search: case-insensitive prefix of the entry; LIKE characters are literal.
    let search = |q: &'static str| {
        let h = h.clone();
        async move {
            let (s, r) = list(
                &h,
                As::User(U1),
                "priv",
                json!({"prefix": "d", "search": q}),
            )
            .await;
            assert_eq!(s, 200, "{r}");
            names(&r)
        }
    };
    assert_eq!(search("B").await, ["beta", "beta.txt"]);
    assert_eq!(search("su").await, ["Sub2", "sub"]);
    assert_eq!(search("%").await, ["%pct.txt"]);
    assert_eq!(search("_").await, ["_under.txt"]);
    assert_eq!(search("caf\u{e9}").await, ["caf\u{e9}.txt"]);
    assert!(search("nothing").await.is_empty());
    assert!(search("d/").await.is_empty());
    // A prefix with LIKE characters matches literally.
    put(&h, As::User(U1), "priv", "p%/a.txt").await;
    put(&h, As::User(U1), "priv", "pX/b.txt").await;
    let (_, literal) = list(&h, As::User(U1), "priv", json!({"prefix": "p%"})).await;
    assert_eq!(names(&literal), ["a.txt"]);

    // Paging past the end; limit 0; oversize limit is capped.
    let (s, empty) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "offset": 50}),
    )
    .await;
    assert_eq!((s, empty), (200, json!([])));
    let (s, none) = list(&h, As::User(U1), "priv", json!({"prefix": "d", "limit": 0})).await;
    assert_eq!((s, none), (200, json!([])));
    let (s, capped) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "d", "limit": 100000}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(names(&capped).len(), 9);

    // Refusals, in the storage shape.
    for (body, status, code) in [
        (
            json!({"prefix": "d", "sortBy": {"column": "size"}}),
            400,
            "InvalidRequest",
        ),
        (
            json!({"prefix": "d", "sortBy": {"column": "name", "order": "up"}}),
            400,
            "InvalidRequest",
        ),
        (
            json!({"prefix": "d", "sortBy": {"column": "name; drop table storage_objects"}}),
            400,
            "InvalidRequest",
        ),
        (json!({"prefix": "../x"}), 400, "InvalidKey"),
        (json!({"prefix": "d", "limit": -1}), 400, "InvalidRequest"),
        (json!({"prefix": "d", "offset": "x"}), 400, "InvalidRequest"),
    ] {
        let r = list(&h, As::User(U1), "priv", body.clone()).await;
        h.assert_error(&r, status, code);
    }
    let r = list(&h, As::User(U1), "nobucket", json!({"prefix": ""})).await;
    h.assert_error(&r, 404, "NoSuchBucket");
    let r = list(&h, As::Nobody, "priv", json!({"prefix": ""})).await;
    h.assert_error(&r, 401, "InvalidJWT");
    let (_, still) = list(&h, As::User(U1), "priv", by_name("asc")).await;
    assert_eq!(names(&still), want, "refused requests changed nothing");
}
async fn access_in_sql(h: Arc<H>) {
    // Owner rule (private bucket): each user sees only their rows, and a
    // folder holding only someone else's objects is not shown.
    put(&h, As::User(U1), "priv", "s/mine1.txt").await;
    put(&h, As::User(U2), "priv", "s/theirs.txt").await;
    put(&h, As::User(U2), "priv", "s/only-u2/x.txt").await;
    put(&h, As::User(U1), "priv", "s/both/a.txt").await;
    put(&h, As::User(U2), "priv", "s/both/b.txt").await;
    let (_, u1) = list(&h, As::User(U1), "priv", json!({"prefix": "s"})).await;
    assert_eq!(names(&u1), ["both", "mine1.txt"]);
    let (_, u2) = list(&h, As::User(U2), "priv", json!({"prefix": "s"})).await;
    assert_eq!(names(&u2), ["both", "only-u2", "theirs.txt"]);
    let (_, anon) = list(&h, As::Anon, "priv", json!({"prefix": "s"})).await;
    assert_eq!(anon, json!([]));
    let (_, service) = list(&h, As::Service, "priv", json!({"prefix": "s"})).await;
    assert_eq!(
        names(&service),
        ["both", "mine1.txt", "only-u2", "theirs.txt"]
    );
    // Paging counts only permitted entries.
    let (_, page) = list(
        &h,
        As::User(U2),
        "priv",
        json!({"prefix": "s", "limit": 1, "offset": 2}),
    )
    .await;
    assert_eq!(names(&page), ["theirs.txt"]);

    // Path-prefix rule (`homes/<uid>/…`).
    put(&h, As::User(U1), "homes", &format!("{U1}/a.txt")).await;
    put(&h, As::User(U2), "homes", &format!("{U2}/b.txt")).await;
    let (_, root) = list(&h, As::User(U1), "homes", json!({"prefix": ""})).await;
    assert_eq!(names(&root), [U1]);
    let (_, inside) = list(&h, As::User(U1), "homes", json!({"prefix": U1})).await;
    assert_eq!(names(&inside), ["a.txt"]);
    let (_, other) = list(&h, As::User(U1), "homes", json!({"prefix": U2})).await;
    assert_eq!(other, json!([]));

    // A custom rule on `owner_id` and a JSON path of the user metadata.
    let upload_meta = |who: As, name: &'static str, meta: Value| {
        let h = h.clone();
        async move {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(meta.to_string());
            let (s, r) = h
                .send(
                    h.req(Method::POST, &format!("/object/meta/{name}"), who)
                        .header("content-type", "text/plain")
                        .header("x-metadata", b64)
                        .body(name),
                )
                .await;
            assert_eq!(s, 200, "{r}");
        }
    };
    upload_meta(
        As::User(U1),
        "m/u1-private.txt",
        json!({"visibility": "private"}),
    )
    .await;
    upload_meta(As::User(U2), "m/u2-private.txt", json!({})).await;
    upload_meta(
        As::User(U2),
        "m/u2-shared.txt",
        json!({"visibility": "shared"}),
    )
    .await;
    let (s, u1) = list(&h, As::User(U1), "meta", json!({"prefix": "m"})).await;
    assert_eq!(s, 200, "{u1}");
    assert_eq!(names(&u1), ["u1-private.txt", "u2-shared.txt"]);
    // The listing agrees with what the same rule lets U1 download.
    for (name, status) in [
        ("u1-private.txt", 200),
        ("u2-shared.txt", 200),
        ("u2-private.txt", 400),
    ] {
        let (s, _, _) = h
            .download(As::User(U1), &format!("/object/meta/m/{name}"))
            .await;
        assert_eq!(s == 200, status == 200, "{name}: {s}");
    }
}

async fn many_rows(h: Arc<H>) {
    // 2 000 files and 300 folders (two files each) under one prefix, written
    // straight to the metadata table (listing reads no bytes).
    use goforward_core::sea_orm::{ActiveValue::Set, EntityTrait};
    use goforward_storage::entity::object;
    let now = chrono::Utc::now();
    let mut paths: Vec<String> = (0..2000).map(|i| format!("big/file{i:04}.txt")).collect();
    for i in 0..300 {
        paths.push(format!("big/dir{i:03}/a.txt"));
        paths.push(format!("big/dir{i:03}/b.txt"));
    }
    for batch in paths.chunks(400) {
        object::Entity::insert_many(batch.iter().map(|name| object::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            bucket_id: Set("priv".into()),
            name: Set(name.clone()),
            owner: Set(Some(U1.into())),
            metadata: Set(json!({"size": 1, "mimetype": "text/plain"})),
            user_metadata: Set(None),
            version: Set(uuid::Uuid::new_v4()),
            created_at: Set(now),
            updated_at: Set(now),
            last_accessed_at: Set(now),
        }))
        .exec(h.app.db())
        .await
        .unwrap();
    }
    // The page size is capped at 1 500.
    let (s, capped) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "big", "limit": 5000}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(capped.as_array().unwrap().len(), 1500);
    // Pages of 1 000 cover every entry once, in order: 300 folders then 2 000 files.
    let mut all = Vec::new();
    for offset in [0, 1000, 2000, 3000] {
        let (s, page) = list(
            &h,
            As::User(U1),
            "priv",
            json!({"prefix": "big/", "limit": 1000, "offset": offset}),
        )
        .await;
        assert_eq!(s, 200);
        all.extend(names(&page));
    }
    assert_eq!(all.len(), 2300);
    let mut want: Vec<String> = (0..300).map(|i| format!("dir{i:03}")).collect();
    want.extend((0..2000).map(|i| format!("file{i:04}.txt")));
    assert_eq!(all, want);
    // Search narrows in SQL before paging.
    let (_, found) = list(
        &h,
        As::User(U1),
        "priv",
        json!({"prefix": "big", "search": "FILE19", "limit": 1000}),
    )
    .await;
    assert_eq!(names(&found).len(), 100);
    // Another user sees none of it.
    let (_, other) = list(&h, As::User(U2), "priv", json!({"prefix": "big"})).await;
    assert_eq!(other, json!([]));
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_rows() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "many_rows (sqlite)",
            crate::many_rows,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "listing (sqlite)",
            crate::listing,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn access_in_sql() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "access_in_sql (sqlite)",
            crate::access_in_sql,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_rows() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "many_rows (postgres)",
            crate::many_rows,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "listing (postgres)",
            crate::listing,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn access_in_sql() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "access_in_sql (postgres)",
            crate::access_in_sql,
        )
        .await;
    }
}
