//! OAuth2 / OIDC sign-in against a fake provider served by the test itself
//! (actix on an ephemeral port): real redirects followed by hand, a real
//! code exchange over HTTP with PKCE S256, userinfo, identity linking, the
//! supabase-js PKCE flow (`?code=` + `grant_type=pkce`) and the bad inputs
//! (state, replay, concurrency, wrong verifier, redirect_to, SSRF config).
//! The generic provider is OpenID Connect: the fake serves discovery, a JWKS
//! (test keys in `tests/support/`) and signs ID tokens, which the tests
//! tamper with (wrong key, audience, expiry, nonce…). Failures after the
//! state is known come back as GoTrue's error redirect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use common::*;
use goforward_auth::AuthConfig;
use goforward_auth::config::OAuthProviderConfig;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "client-1";
const CLIENT_SECRET: &str = "s3cret-of-client-1";

/// How the fake spoils the next ID token (or token response).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Tamper {
    #[default]
    None,
    /// Signed by a key that is not in the JWKS (same `kid`).
    OtherKey,
    WrongAud,
    Expired,
    WrongNonce,
    /// HS256 with a made-up secret.
    Hs256,
    NoIdToken,
    /// ES256 with the EC key of the JWKS (valid).
    Es256,
    /// A 2 MiB token response.
    Huge,
}

/// An issued code: (challenge, redirect_uri, profile, nonce).
type Grant = (String, String, Value, Option<String>);

#[derive(Default)]
struct Fake {
    /// code → its grant
    codes: Mutex<HashMap<String, Grant>>,
    /// The fake's own base URL (its issuer).
    issuer: Mutex<String>,
    tamper: Mutex<Tamper>,
    /// Userinfo requests seen.
    userinfo_calls: Mutex<u32>,
    /// access token → profile
    tokens: Mutex<HashMap<String, Value>>,
    /// The profile the next consent returns.
    profile: Mutex<Value>,
    /// Token requests seen (to prove the exchange happened over HTTP).
    exchanges: Mutex<u32>,
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn fake_authorize(
    fake: web::Data<Fake>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("code_challenge").is_some_and(|c| c.len() == 43)
        && q.get("state").is_some_and(|s| s.len() >= 16);
    if !ok {
        return HttpResponse::BadRequest().body(format!("bad authorize request {q:?}"));
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let redirect_uri = q["redirect_uri"].clone();
    let profile = fake.profile.lock().unwrap().clone();
    fake.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            redirect_uri.clone(),
            profile,
            q.get("nonce").cloned(),
        ),
    );
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    HttpResponse::Found()
        .insert_header(("location", target.to_string()))
        .finish()
}

async fn fake_token(
    fake: web::Data<Fake>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    *fake.exchanges.lock().unwrap() += 1;
    let refuse = |e: &str| HttpResponse::BadRequest().json(json!({ "error": e }));
    // Client authentication: HTTP Basic or the request body.
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let body = form
        .get("client_id")
        .zip(form.get("client_secret"))
        .map(|(i, s)| format!("{i}:{s}"));
    if basic.or(body).as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let Some((challenge, redirect_uri, profile, nonce)) = form
        .get("code")
        .and_then(|c| fake.codes.lock().unwrap().remove(c))
    else {
        return refuse("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&redirect_uri)
        || form.get("code_verifier").map(|v| s256(v)) != Some(challenge)
    {
        return refuse("invalid_grant");
    }
    let access = uuid::Uuid::new_v4().simple().to_string();
    fake.tokens
        .lock()
        .unwrap()
        .insert(access.clone(), profile.clone());
    let tamper = *fake.tamper.lock().unwrap();
    let mut answer = json!({
        "access_token": access, "token_type": "bearer", "expires_in": 3600
    });
    // OIDC profiles (with `sub`) come with an ID token.
    if profile.get("sub").is_some() && tamper != Tamper::NoIdToken {
        let issuer = fake.issuer.lock().unwrap().clone();
        answer["id_token"] = json!(id_token(&issuer, &profile, nonce.as_deref(), tamper));
    }
    if tamper == Tamper::Huge {
        answer["padding"] = json!("x".repeat(2 << 20));
    }
    HttpResponse::Ok().json(answer)
}

/// An ID token for `profile` (its claims minus the fake's own keys).
fn id_token(issuer: &str, profile: &Value, nonce: Option<&str>, tamper: Tamper) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": if tamper == Tamper::WrongAud { "someone-else" } else { CLIENT_ID },
        "iat": now,
        "exp": if tamper == Tamper::Expired { now - 3600 } else { now + 600 },
        "nonce": if tamper == Tamper::WrongNonce { Some("not-the-nonce") } else { nonce },
    });
    for (k, v) in profile.as_object().unwrap() {
        if !k.starts_with("x_") {
            claims[k] = v.clone();
        }
    }
    if profile.get("x_no_email_in_id_token").is_some() {
        claims.as_object_mut().unwrap().remove("email");
        claims.as_object_mut().unwrap().remove("email_verified");
    }
    let rsa = |pem: &str| EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let (alg, kid, key) = match tamper {
        Tamper::Es256 => (
            Algorithm::ES256,
            "test-ec",
            EncodingKey::from_ec_pem(include_bytes!("support/oidc_ec.p8.pem")).unwrap(),
        ),
        Tamper::OtherKey => (
            Algorithm::RS256,
            "test-rsa",
            rsa(include_str!("support/oidc_rsa_other.pem")),
        ),
        Tamper::Hs256 => (
            Algorithm::HS256,
            "test-rsa",
            EncodingKey::from_secret(b"guessable"),
        ),
        _ => (
            Algorithm::RS256,
            "test-rsa",
            rsa(include_str!("support/oidc_rsa.pem")),
        ),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, &claims, &key).unwrap()
}

async fn fake_discovery(fake: web::Data<Fake>) -> HttpResponse {
    let base = fake.issuer.lock().unwrap().clone();
    HttpResponse::Ok().json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    }))
}

async fn fake_jwks() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("support/oidc_jwks.json"))
}

fn bearer_profile(fake: &Fake, req: &HttpRequest) -> Option<Value> {
    let token = req
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .to_owned();
    fake.tokens.lock().unwrap().get(&token).cloned()
}

async fn fake_userinfo(fake: web::Data<Fake>, req: HttpRequest) -> HttpResponse {
    *fake.userinfo_calls.lock().unwrap() += 1;
    match bearer_profile(&fake, &req) {
        Some(p) => HttpResponse::Ok().json(p),
        None => HttpResponse::Unauthorized().finish(),
    }
}

async fn fake_github_user(fake: web::Data<Fake>, req: HttpRequest) -> HttpResponse {
    match bearer_profile(&fake, &req) {
        Some(p) => HttpResponse::Ok().json(json!({
            "id": p["gh_id"], "login": p["login"], "name": p["name"], "email": null
        })),
        None => HttpResponse::Unauthorized().finish(),
    }
}

async fn fake_github_emails(fake: web::Data<Fake>, req: HttpRequest) -> HttpResponse {
    match bearer_profile(&fake, &req) {
        Some(p) => HttpResponse::Ok().json(json!([
            { "email": "unverified@example.org", "primary": false, "verified": false },
            { "email": p["email"], "primary": true, "verified": p["email_verified"] },
        ])),
        None => HttpResponse::Unauthorized().finish(),
    }
}

/// Starts the fake provider; returns its base URL and state.
async fn fake_provider() -> (String, Arc<Fake>) {
    let fake = web::Data::new(Fake::default());
    let data = fake.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/authorize", web::get().to(fake_authorize))
            .route("/token", web::post().to(fake_token))
            .route("/userinfo", web::get().to(fake_userinfo))
            .route(
                "/.well-known/openid-configuration",
                web::get().to(fake_discovery),
            )
            .route("/jwks", web::get().to(fake_jwks))
            .route("/gh/user", web::get().to(fake_github_user))
            .route("/gh/user/emails", web::get().to(fake_github_emails))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    let base = format!("http://127.0.0.1:{port}");
    *fake.issuer.lock().unwrap() = base.clone();
    (base, fake.into_inner())
}

/// GitHub with explicit endpoints; `oidc` with only the issuer (the rest
/// comes from discovery).
fn provider(base: &str, kind: &str) -> OAuthProviderConfig {
    let github = kind == "github";
    let at = |path: &str| github.then(|| format!("{base}{path}"));
    OAuthProviderConfig {
        kind: Some(kind.to_owned()),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.to_owned().into(),
        authorization_endpoint: at("/authorize"),
        token_endpoint: at("/token"),
        userinfo_endpoint: at("/gh/user"),
        issuer: Some(base.to_owned()),
        scopes: Vec::new(),
        enabled: true,
    }
}

async fn oauth_app(pg: bool, base: &str) -> Option<TestApp> {
    let base = base.to_owned();
    app(pg, move |c: &mut AuthConfig| {
        c.mailer_autoconfirm = true;
        c.external_allow_private_endpoints = true;
        c.external.insert("corp".into(), provider(&base, "oidc"));
        c.external
            .insert("github".into(), provider(&base, "github"));
    })
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response) -> url::Url {
    assert_eq!(res.status().as_u16(), 302, "a redirect");
    url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

/// GoTrue's error redirect: 302 to `expected_target` with `error`,
/// `error_code` (when expected) and `error_description` in the query and the
/// fragment. Returns the query.
fn error_redirect(
    res: &reqwest::Response,
    expected_target: &str,
    error: &str,
    error_code: Option<&str>,
) -> HashMap<String, String> {
    let to = location(res);
    assert_eq!(
        to.as_str().split(['?', '#']).next().unwrap(),
        expected_target,
        "{to}"
    );
    let query: HashMap<String, String> = to.query_pairs().into_owned().collect();
    let frag = fragment(&to);
    for map in [&query, &frag] {
        assert_eq!(map.get("error").map(String::as_str), Some(error), "{to}");
        assert_eq!(
            map.get("error_code").map(String::as_str),
            error_code,
            "{to}"
        );
        assert!(map.contains_key("error_description"), "{to}");
        assert!(!map.contains_key("access_token"), "{to}");
    }
    assert!(frag.contains_key("sb"), "{to}");
    assert_eq!(query["error_description"], frag["error_description"]);
    query
}

async fn error_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].is_string(), "{body}");
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// `/authorize` → provider URL (checked) .
async fn start(app: &TestApp, query: &str) -> reqwest::Response {
    no_redirects()
        .get(app.url(&format!("/auth/v1/authorize?{query}")))
        .send()
        .await
        .unwrap()
}

/// Follows the provider's consent: returns the app callback URL (path and query).
async fn consent(provider_url: &url::Url) -> String {
    let res = no_redirects()
        .get(provider_url.clone())
        .send()
        .await
        .unwrap();
    let back = location(&res);
    assert!(back.path().ends_with("/auth/v1/callback"), "{back}");
    format!("{}?{}", back.path(), back.query().unwrap())
}

async fn callback(app: &TestApp, path_and_query: &str) -> reqwest::Response {
    no_redirects()
        .get(app.url(path_and_query))
        .send()
        .await
        .unwrap()
}

fn fragment(url: &url::Url) -> HashMap<String, String> {
    url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn implicit_flow(pg: bool) {
    let (base, fake) = fake_provider().await;
    let Some(app) = oauth_app(pg, &base).await else {
        return;
    };
    *fake.profile.lock().unwrap() = json!({
        "sub": "corp-123", "email": "Ada@Example.com", "email_verified": true, "name": "Ada"
    });
    let settings = get(&app, "/settings", None).await;
    assert_eq!(settings.body["external"]["corp"], true);
    assert_eq!(settings.body["external"]["github"], true);

    // Bad starts: nothing stored.
    for (query, code) in [
        ("provider=nope", "validation_failed"),
        ("", "validation_failed"),
        (
            "provider=corp&redirect_to=https://evil.example.net/cb",
            "validation_failed",
        ),
        (
            "provider=corp&redirect_to=javascript:alert(1)",
            "validation_failed",
        ),
        (
            "provider=corp&code_challenge=short&code_challenge_method=s256",
            "validation_failed",
        ),
    ] {
        let (status, got) = error_of(start(&app, query).await).await;
        assert_eq!((status, got.as_str()), (400, code), "{query}");
    }
    assert_eq!(count(&app, "auth_oauth_state").await, 0);

    let res = start(
        &app,
        "provider=corp&redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome",
    )
    .await;
    let to_provider = location(&res);
    assert!(
        to_provider
            .as_str()
            .starts_with(&format!("{base}/authorize?"))
    );
    let params: HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["scope"].contains("openid"));
    // OIDC: a nonce per flow, bound into the ID token.
    assert_eq!(params["nonce"].len(), 43);
    assert_eq!(count(&app, "auth_oauth_state").await, 1);
    // The state is stored hashed only.
    let stored: Vec<String> = {
        use goforward_auth::entity::oauth_state;
        use goforward_core::sea_orm::EntityTrait;
        oauth_state::Entity::find()
            .all(app.db())
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.state_hash)
            .collect()
    };
    assert!(!stored.contains(&params["state"]));

    let back = consent(&to_provider).await;
    // A forged state: refused, nothing created, the real flow still pending.
    let users_before = count(&app, "auth_users").await;
    let forged = back.replace(&params["state"], "forged-state-value-0123456789");
    let (status, code) = error_of(callback(&app, &forged).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_oauth_state"));
    let no_state = back.split("&state=").next().unwrap().to_owned();
    let (status, code) = error_of(callback(&app, &no_state).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_oauth_state"));
    assert_eq!(count(&app, "auth_users").await, users_before);

    // The real callback: 302 to redirect_to with the session in the fragment.
    let res = callback(&app, &back).await;
    let done = location(&res);
    assert_eq!(
        done.as_str().split('#').next().unwrap(),
        "https://app.example.com/welcome"
    );
    let frag = fragment(&done);
    assert_eq!(frag["token_type"], "bearer");
    assert!(frag["refresh_token"].len() >= 20);
    let access = frag["access_token"].clone();
    let user = get(&app, "/user", Some(&access)).await;
    assert_eq!(user.status, 200, "{}", user.body);
    assert_eq!(user.body["email"], "ada@example.com");
    assert!(user.body["email_confirmed_at"].is_string());
    assert_eq!(user.body["identities"][0]["provider"], "corp");
    assert_eq!(user.body["app_metadata"]["provider"], "corp");
    assert_eq!(claims(&access)["amr"][0]["method"], "oauth");
    assert_eq!(*fake.exchanges.lock().unwrap(), 1);
    // The identity came from the ID token: userinfo was not needed.
    assert_eq!(*fake.userinfo_calls.lock().unwrap(), 0);

    // Replaying the callback (same state and code): refused, nothing new.
    let users = count(&app, "auth_users").await;
    let sessions = count(&app, "auth_sessions").await;
    let (status, code) = error_of(callback(&app, &back).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_oauth_state"));
    assert_eq!(count(&app, "auth_sessions").await, sessions);

    // Same identity again: the same user, no new account.
    let to_provider = location(&start(&app, "provider=corp").await);
    let res = callback(&app, &consent(&to_provider).await).await;
    let again = location(&res);
    assert_eq!(
        again.as_str().split('#').next().unwrap(),
        "http://localhost:3000/",
        "no redirect_to: the site URL"
    );
    let access2 = fragment(&again)["access_token"].clone();
    assert_eq!(claims(&access2)["sub"], claims(&access)["sub"]);
    assert_eq!(count(&app, "auth_users").await, users);

    // Concurrent callbacks with one state: exactly one wins.
    let to_provider = location(&start(&app, "provider=corp").await);
    let back = consent(&to_provider).await;
    let attempts = futures_util::future::join_all((0..6).map(|_| callback(&app, &back))).await;
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 302).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        5,
        "{statuses:?}"
    );

    // A valid state with a code the provider never issued.
    let to_provider = location(&start(&app, "provider=corp").await);
    let state = to_provider
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let users = count(&app, "auth_users").await;
    let res = callback(
        &app,
        &format!("/auth/v1/callback?code=never-issued&state={state}"),
    )
    .await;
    let q = error_redirect(
        &res,
        "http://localhost:3000/",
        "invalid_request",
        Some("bad_oauth_callback"),
    );
    assert_eq!(q["error_description"], "Unable to exchange external code");
    // The provider's own refusal.
    // (redirect_to kept, its query too.)
    let to_provider = location(
        &start(
            &app,
            "provider=corp&redirect_to=https%3A%2F%2Fapp.example.com%2Fback%3Ftab%3D2",
        )
        .await,
    );
    let state = to_provider
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let res = callback(
        &app,
        &format!(
            "/auth/v1/callback?error=access_denied&error_description=The+user+said+no&state={state}"
        ),
    )
    .await;
    // GoTrue relays the provider's error and description, without error_code.
    let q = error_redirect(&res, "https://app.example.com/back", "access_denied", None);
    assert_eq!(q["error_description"], "The user said no");
    assert_eq!(q["tab"], "2");
    assert_eq!(count(&app, "auth_users").await, users);
    // The flow was used up by the error.
    let (status, code) =
        error_of(callback(&app, &format!("/auth/v1/callback?code=x&state={state}")).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_oauth_state"));
    app.stop().await;
}
both!(oauth_implicit, implicit_flow);

/// One OIDC sign-in through the fake with `tamper`; returns the callback's
/// answer.
async fn oidc_round(app: &TestApp, fake: &Fake, tamper: Tamper) -> reqwest::Response {
    *fake.tamper.lock().unwrap() = tamper;
    let to_provider = location(
        &start(
            app,
            "provider=corp&redirect_to=https%3A%2F%2Fapp.example.com%2Fcb",
        )
        .await,
    );
    callback(app, &consent(&to_provider).await).await
}

async fn id_token_validation(pg: bool) {
    let (base, fake) = fake_provider().await;
    let Some(app) = oauth_app(pg, &base).await else {
        return;
    };
    *fake.profile.lock().unwrap() = json!({
        "sub": "oidc-1", "email": "grace@example.com", "email_verified": true, "name": "Grace"
    });
    // Each spoiled token: GoTrue's error redirect to redirect_to, no user,
    // no session.
    for (tamper, why) in [
        (Tamper::OtherKey, "signature does not verify"),
        (Tamper::Hs256, "unsupported signing algorithm"),
        (Tamper::WrongAud, "audience is not this client"),
        (Tamper::Expired, "expired"),
        (Tamper::WrongNonce, "nonce does not match"),
        (Tamper::NoIdToken, "no ID token"),
        (Tamper::Huge, "Unable to exchange external code"),
    ] {
        let users = count(&app, "auth_users").await;
        let sessions = count(&app, "auth_sessions").await;
        let res = oidc_round(&app, &fake, tamper).await;
        let q = error_redirect(
            &res,
            "https://app.example.com/cb",
            "invalid_request",
            Some("bad_oauth_callback"),
        );
        assert!(
            q["error_description"].contains(why),
            "{tamper:?}: {}",
            q["error_description"]
        );
        assert_eq!(count(&app, "auth_users").await, users, "{tamper:?}");
        assert_eq!(count(&app, "auth_sessions").await, sessions, "{tamper:?}");
    }
    // The valid RS256 token signs in.
    let done = location(&oidc_round(&app, &fake, Tamper::None).await);
    let access = fragment(&done)["access_token"].clone();
    let user = get(&app, "/user", Some(&access)).await;
    assert_eq!(user.body["email"], "grace@example.com");
    assert_eq!(user.body["user_metadata"]["full_name"], "Grace");
    assert_eq!(user.body["user_metadata"]["iss"], base.as_str());
    // ES256 (the JWKS's EC key) as well: the same user.
    let done = location(&oidc_round(&app, &fake, Tamper::Es256).await);
    let access2 = fragment(&done)["access_token"].clone();
    assert_eq!(claims(&access2)["sub"], claims(&access)["sub"]);
    assert_eq!(*fake.userinfo_calls.lock().unwrap(), 0);
    // An ID token without email: userinfo (same `sub`) completes it.
    *fake.profile.lock().unwrap() = json!({
        "sub": "oidc-2", "email": "hopper@example.com", "email_verified": true,
        "x_no_email_in_id_token": true
    });
    let done = location(&oidc_round(&app, &fake, Tamper::None).await);
    let access = fragment(&done)["access_token"].clone();
    assert_eq!(
        get(&app, "/user", Some(&access)).await.body["email"],
        "hopper@example.com"
    );
    assert_eq!(*fake.userinfo_calls.lock().unwrap(), 1);
    app.stop().await;
}
both!(oauth_id_token, id_token_validation);

async fn pkce_and_linking(pg: bool) {
    let (base, fake) = fake_provider().await;
    let Some(app) = oauth_app(pg, &base).await else {
        return;
    };
    // A confirmed password account with the address the provider verifies.
    let email = email();
    let local = sign_up(&app, &email, "correct horse").await;
    assert_eq!(local.status, 200, "{}", local.body);
    let local_id = local.body["user"]["id"].as_str().unwrap().to_owned();

    // supabase-js PKCE: code_challenge on /authorize, ?code= back, grant_type=pkce.
    *fake.profile.lock().unwrap() = json!({
        "gh_id": 4242, "login": "ada", "name": "Ada", "email": email, "email_verified": true
    });
    let verifier = "a-client-side-code-verifier-that-is-long-enough-0123456789";
    let to_provider = location(
        &start(
            &app,
            &format!(
                "provider=github&redirect_to=https%3A%2F%2Fapp.example.com%2Fcb&code_challenge={}&code_challenge_method=s256",
                s256(verifier)
            ),
        )
        .await,
    );
    let res = callback(&app, &consent(&to_provider).await).await;
    let back = location(&res);
    assert_eq!(back.path(), "/cb");
    assert!(back.fragment().is_none(), "no tokens in the URL");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let exchange = |verifier: &str| {
        let body = json!({ "auth_code": code, "code_verifier": verifier });
        let app = &app;
        async move { post(app, "/token?grant_type=pkce", &body, None).await }
    };
    exchange("a-wrong-verifier-that-is-also-long-enough-0123456789xyz")
        .await
        .assert_error(400, "bad_code_verifier");
    let session = exchange(verifier).await;
    assert_eq!(session.status, 200, "{}", session.body);
    // Linked by verified email to the existing account.
    assert_eq!(session.body["user"]["id"], local_id.as_str());
    let providers: Vec<&str> = session.body["user"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert!(
        providers.contains(&"github") && providers.contains(&"email"),
        "{providers:?}"
    );
    exchange(verifier)
        .await
        .assert_error(404, "flow_state_not_found");

    // An unverified address matching an account: no link, nothing created.
    let other = common::email();
    assert_eq!(sign_up(&app, &other, "correct horse").await.status, 200);
    *fake.profile.lock().unwrap() = json!({
        "sub": "corp-evil", "email": other, "email_verified": false
    });
    let users = count(&app, "auth_users").await;
    let identities = count(&app, "auth_identities").await;
    let to_provider = location(&start(&app, "provider=corp").await);
    let res = callback(&app, &consent(&to_provider).await).await;
    error_redirect(
        &res,
        "http://localhost:3000/",
        "server_error",
        Some("email_exists"),
    );
    assert_eq!(count(&app, "auth_users").await, users);
    assert_eq!(count(&app, "auth_identities").await, identities);
    app.stop().await;
}
both!(oauth_pkce_linking, pkce_and_linking);

async fn signup_disabled(pg: bool) {
    let (base, fake) = fake_provider().await;
    let base2 = base.clone();
    let Some(app) = app(pg, move |c: &mut AuthConfig| {
        c.disable_signup = true;
        c.external_allow_private_endpoints = true;
        c.external.insert("corp".into(), provider(&base2, "oidc"));
    })
    .await
    else {
        return;
    };
    // A new identity with an unknown address: refused, nothing created.
    *fake.profile.lock().unwrap() = json!({
        "sub": "corp-new", "email": "newcomer@example.com", "email_verified": true
    });
    let users = count(&app, "auth_users").await;
    let to_provider = location(&start(&app, "provider=corp").await);
    let res = callback(&app, &consent(&to_provider).await).await;
    error_redirect(
        &res,
        "http://localhost:3000/",
        "access_denied",
        Some("signup_disabled"),
    );
    assert_eq!(count(&app, "auth_users").await, users);
    // Linking to an existing confirmed account still works.
    let email = email();
    let res = post(
        &app,
        "/admin/users",
        &json!({ "email": email, "password": "correct horse", "email_confirm": true }),
        Some(&app.service_key()),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    *fake.profile.lock().unwrap() = json!({
        "sub": "corp-known", "email": email, "email_verified": true
    });
    let to_provider = location(&start(&app, "provider=corp").await);
    let done = location(&callback(&app, &consent(&to_provider).await).await);
    let access = fragment(&done)["access_token"].clone();
    assert_eq!(claims(&access)["sub"], res.body["id"]);
    app.stop().await;
}
both!(oauth_signup_disabled, signup_disabled);

#[test]
fn ssrf_guard_on_provider_endpoints() {
    let with = |endpoint: &str, allow: bool| {
        let mut c = AuthConfig {
            external_allow_private_endpoints: allow,
            ..AuthConfig::default()
        };
        let mut p = provider("https://idp.example.com", "oidc");
        p.token_endpoint = Some(endpoint.to_owned());
        c.external.insert("corp".into(), p);
        c.validate()
    };
    assert!(with("https://idp.example.com/token", false).is_ok());
    for bad in [
        "http://idp.example.com/token",
        "file:///etc/passwd",
        "gopher://idp.example.com/",
        "https://127.0.0.1/token",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/token",
        "https://10.0.0.8/token",
        "https://localhost/token",
        "https://user:pw@idp.example.com/token",
        "not a url",
    ] {
        let err = with(bad, false).expect_err(bad).to_string();
        assert!(err.contains("auth.external.corp.token_endpoint"), "{err}");
    }
    // The test flag admits loopback over http, never other schemes.
    assert!(with("http://127.0.0.1:9/token", true).is_ok());
    assert!(with("file:///etc/passwd", true).is_err());
    // Generic OIDC needs an issuer (discovery) or explicit endpoints.
    let mut c = AuthConfig::default();
    let mut p = provider("https://idp.example.com", "oidc");
    p.issuer = None;
    c.external.insert("corp".into(), p);
    assert!(c.validate().is_err());
    let mut c = AuthConfig::default();
    c.external
        .insert("corp".into(), provider("https://idp.example.com", "oidc"));
    assert!(c.validate().is_ok());
    // The issuer passes the same guard as endpoints.
    for bad in [
        "http://idp.example.com",
        "https://127.0.0.1",
        "https://localhost",
    ] {
        let mut c = AuthConfig::default();
        c.external.insert("corp".into(), provider(bad, "oidc"));
        let err = c.validate().expect_err(bad).to_string();
        assert!(err.contains("auth.external.corp.issuer"), "{err}");
    }
    // Unknown kinds are refused.
    let mut c = AuthConfig::default();
    c.external
        .insert("corp".into(), provider("https://idp.example.com", "saml"));
    assert!(c.validate().is_err());
}
