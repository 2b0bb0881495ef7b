//! Refreshes rotated together in one batch (concurrent requests share the
//! batch's statements): bad tokens in a batch do not disturb the good ones,
//! copies of one token in a batch converge on one child, and every session
//! of a batch keeps its own family, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};

use common::*;

async fn session(app: &goforward_core::testing::TestApp) -> serde_json::Value {
    let res = sign_up(app, &email(), "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

fn rt(v: &serde_json::Value) -> String {
    v["refresh_token"].as_str().unwrap().to_owned()
}

/// Good tokens, an unknown token and a token reused after the interval,
/// all at once: the good ones rotate, the unknown one is refused, the
/// reused one ends its own family only.
async fn bad_tokens_do_not_disturb_a_batch(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.refresh_token_reuse_interval_secs = 0;
    })
    .await
    else {
        return;
    };
    let mut good = Vec::new();
    let mut users = Vec::new();
    for _ in 0..12 {
        let s = session(&app).await;
        users.push(s["user"]["id"].as_str().unwrap().to_owned());
        good.push(rt(&s));
    }
    // A token rotated earlier, presented again after the (zero) interval.
    let victim = session(&app).await;
    let stale = rt(&victim);
    let victim_child = refresh(&app, &stale).await;
    assert_eq!(victim_child.status, 200, "{}", victim_child.body);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let mut tokens = good.clone();
    tokens.insert(5, "not-a-refresh-token".to_owned());
    tokens.insert(9, stale.clone());
    let results = futures_util::future::join_all(tokens.iter().map(|t| refresh(&app, t))).await;
    let mut children = Vec::new();
    for (token, res) in tokens.iter().zip(&results) {
        if token == "not-a-refresh-token" {
            res.assert_error(400, "refresh_token_not_found");
        } else if *token == stale {
            res.assert_error(400, "refresh_token_already_used");
        } else {
            assert_eq!(res.status, 200, "{}", res.body);
            children.push(res.body.clone());
        }
    }
    assert_eq!(children.len(), good.len());
    // Each good session got its own child, with its own user and claims.
    let distinct: HashSet<String> = children.iter().map(rt).collect();
    assert_eq!(distinct.len(), good.len());
    for (child, (user, parent)) in children.iter().zip(users.iter().zip(&good)) {
        assert_ne!(&rt(child), parent);
        assert_eq!(child["user"]["id"], user.as_str());
        assert_eq!(child["user"]["identities"][0]["user_id"], user.as_str());
        let claims = claims(child["access_token"].as_str().unwrap());
        assert_eq!(claims["sub"], user.as_str());
        assert_eq!(claims["aal"], "aal1");
    }
    // The reused family is gone (its latest child too); the others live on.
    refresh(&app, &rt(&victim_child.body))
        .await
        .assert_error(400, "refresh_token_not_found");
    let next: Vec<String> = children.iter().map(rt).collect();
    let again = futures_util::future::join_all(next.iter().map(|t| refresh(&app, t))).await;
    for res in &again {
        assert_eq!(res.status, 200, "{}", res.body);
    }
    assert_eq!(count(&app, "auth_sessions").await, 12);
    app.stop().await;
}
both!(bad_tokens, bad_tokens_do_not_disturb_a_batch);

/// Ten tokens, each presented five times at once: one child per token,
/// every copy gets it, and nothing else is written.
async fn copies_in_a_batch_share_one_child(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let mut parents = Vec::new();
    for _ in 0..10 {
        parents.push(rt(&session(&app).await));
    }
    let requests: Vec<&String> = parents.iter().flat_map(|p| [p; 5]).collect();
    let results = futures_util::future::join_all(requests.iter().map(|t| refresh(&app, t))).await;
    let mut children: HashMap<&String, HashSet<String>> = HashMap::new();
    for (parent, res) in requests.iter().zip(&results) {
        assert_eq!(res.status, 200, "{}", res.body);
        children.entry(*parent).or_default().insert(rt(&res.body));
    }
    assert_eq!(children.len(), 10);
    for set in children.values() {
        assert_eq!(set.len(), 1, "one child per token");
    }
    // Ten parents and ten children.
    assert_eq!(count(&app, "auth_refresh_tokens").await, 20);
    for set in children.values() {
        let child = set.iter().next().unwrap();
        assert_eq!(refresh(&app, child).await.status, 200);
    }
    app.stop().await;
}
both!(copies, copies_in_a_batch_share_one_child);

/// Batches keep rotating: many rounds of concurrent refreshes of distinct
/// families, each round's children refreshed in the next.
async fn rounds_of_concurrent_rotations(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let first = session(&app).await;
    let email = first["user"]["email"].as_str().unwrap().to_owned();
    let mut tokens = vec![rt(&first)];
    for _ in 0..7 {
        let res = sign_in(&app, &email, "correct horse").await;
        assert_eq!(res.status, 200, "{}", res.body);
        tokens.push(rt(&res.body));
    }
    let mut seen: HashSet<String> = tokens.iter().cloned().collect();
    for _ in 0..5 {
        let results = futures_util::future::join_all(tokens.iter().map(|t| refresh(&app, t))).await;
        tokens = results
            .iter()
            .map(|res| {
                assert_eq!(res.status, 200, "{}", res.body);
                rt(&res.body)
            })
            .collect();
        for t in &tokens {
            assert!(seen.insert(t.clone()), "a fresh child every round");
        }
    }
    // 8 families × (1 + 5 rotations).
    assert_eq!(count(&app, "auth_refresh_tokens").await, 48);
    assert_eq!(count(&app, "auth_sessions").await, 8);
    app.stop().await;
}
both!(rounds, rounds_of_concurrent_rotations);
