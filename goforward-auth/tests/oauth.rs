//! OAuth2 / OIDC sign-in against a fake provider served by the test itself
//! (actix on an ephemeral port): real redirects followed by hand, a real
//! code exchange over HTTP with PKCE S256, userinfo, identity linking, the
//! supabase-js PKCE flow (`?code=` + `grant_type=pkce`) and the bad inputs
//! (state, replay, concurrency, wrong verifier, redirect_to, SSRF config).
//! The generic provider is OpenID Connect: the fake serves discovery, a JWKS
//! (test keys in `tests/support/`) and signs ID tokens, which the tests
//! tamper with (wrong key, audience, expiry, nonce…). Failures after the
//! state is known come back as GoTrue's error redirect.
//!
//! Sign in with Apple: the fake answers `response_mode=form_post` with the
//! fields Apple's auto-submitting form carries (`code`, `state`, the first
//! time a `user` JSON), which the test POSTs to `/auth/v1/callback` as a
//! form; its token endpoint checks the ES256 client-secret JWT against the
//! team key. The provider's own tokens (`provider_token`,
//! `provider_refresh_token`) come back in the implicit flow's fragment and
//! wait, sealed, with a PKCE flow.
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
    /// The (access, refresh) tokens of each token response, in order.
    issued: Mutex<Vec<(String, Option<String>)>>,
    /// Apple: the client secrets presented (checked ES256 JWTs).
    apple_secrets: Mutex<Vec<String>>,
    /// Apple: subjects that already consented (the `user` field is sent once).
    apple_known: Mutex<Vec<String>>,
}

const APPLE_CLIENT_ID: &str = "com.example.web";
const APPLE_TEAM_ID: &str = "TEAM123456";
const APPLE_KEY_ID: &str = "KEY7654321";

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
    answer_code(&fake, &form)
}

/// The authorization-code grant once the client is authenticated.
fn answer_code(fake: &Fake, form: &HashMap<String, String>) -> HttpResponse {
    let refuse = |e: &str| HttpResponse::BadRequest().json(json!({ "error": e }));
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
    let refresh =
        (profile["x_refresh"] == true).then(|| format!("rt-{}", uuid::Uuid::new_v4().simple()));
    if let Some(refresh) = &refresh {
        answer["refresh_token"] = json!(refresh);
    }
    fake.issued.lock().unwrap().push((access.clone(), refresh));
    // OIDC profiles (with `sub`) come with an ID token.
    if profile.get("sub").is_some() && tamper != Tamper::NoIdToken {
        let issuer = fake.issuer.lock().unwrap().clone();
        let aud = if profile["x_apple"] == true {
            APPLE_CLIENT_ID
        } else {
            CLIENT_ID
        };
        answer["id_token"] = json!(id_token(&issuer, aud, &profile, nonce.as_deref(), tamper));
    }
    if tamper == Tamper::Huge {
        answer["padding"] = json!("x".repeat(2 << 20));
    }
    HttpResponse::Ok().json(answer)
}

/// An ID token for `profile` (its claims minus the fake's own keys).
fn id_token(
    issuer: &str,
    aud: &str,
    profile: &Value,
    nonce: Option<&str>,
    tamper: Tamper,
) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "aud": if tamper == Tamper::WrongAud { "someone-else" } else { aud },
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

/// Apple's authorize endpoint with `response_mode=form_post`: Apple serves
/// an auto-submitting HTML form; the fake answers its action and fields as
/// JSON, which the test posts.
async fn fake_apple_authorize(
    fake: web::Data<Fake>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(APPLE_CLIENT_ID)
        && q.get("response_mode").map(String::as_str) == Some("form_post")
        && q.get("nonce").is_some()
        && q.get("state").is_some_and(|s| s.len() >= 16);
    if !ok {
        return HttpResponse::BadRequest().body(format!("bad authorize request {q:?}"));
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let profile = fake.profile.lock().unwrap().clone();
    fake.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q["redirect_uri"].clone(),
            profile.clone(),
            q.get("nonce").cloned(),
        ),
    );
    let mut fields = json!({ "code": code, "state": q["state"] });
    let sub = profile["sub"].as_str().unwrap_or_default().to_owned();
    let mut known = fake.apple_known.lock().unwrap();
    if !known.contains(&sub) {
        // Only the first consent carries the name.
        known.push(sub);
        fields["user"] = json!(
            json!({
                "name": { "firstName": "Ada", "lastName": "Lovelace" },
                "email": profile["email"],
            })
            .to_string()
        );
    }
    HttpResponse::Ok().json(json!({ "action": q["redirect_uri"], "fields": fields }))
}

/// Apple's token endpoint: the client secret must be an ES256 JWT from the
/// team key (`kid`, `iss` team, `sub` client, `aud` Apple, short-lived).
async fn fake_apple_token(
    fake: web::Data<Fake>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    *fake.exchanges.lock().unwrap() += 1;
    let invalid = || HttpResponse::BadRequest().json(json!({ "error": "invalid_client" }));
    let (Some(client_id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) else {
        return invalid();
    };
    let keys: JwkSet = serde_json::from_str(include_str!("support/oidc_jwks.json")).unwrap();
    let key = DecodingKey::from_jwk(keys.find("test-ec").unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://appleid.apple.com"]);
    validation.set_issuer(&[APPLE_TEAM_ID]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let Ok(header) = decode_header(secret) else {
        return invalid();
    };
    let Ok(data) = decode::<Value>(secret, &key, &validation) else {
        return invalid();
    };
    if client_id != APPLE_CLIENT_ID
        || header.kid.as_deref() != Some(APPLE_KEY_ID)
        || data.claims["sub"] != APPLE_CLIENT_ID
    {
        return invalid();
    }
    fake.apple_secrets.lock().unwrap().push(secret.clone());
    answer_code(&fake, &form)
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
            .route("/apple/authorize", web::get().to(fake_apple_authorize))
            .route("/apple/token", web::post().to(fake_apple_token))
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
        team_id: None,
        key_id: None,
        private_key: None,
        jwks_uri: None,
    }
}

/// Sign in with Apple pointed at the fake: the client secret minted from
/// the team key (or, with `ready`, this ready-made one).
fn apple_provider(base: &str, ready: Option<&str>) -> OAuthProviderConfig {
    let mut p = provider(base, "apple");
    p.client_id = APPLE_CLIENT_ID.into();
    p.authorization_endpoint = Some(format!("{base}/apple/authorize"));
    p.token_endpoint = Some(format!("{base}/apple/token"));
    p.userinfo_endpoint = None;
    p.jwks_uri = Some(format!("{base}/jwks"));
    match ready {
        Some(secret) => p.client_secret = secret.to_owned().into(),
        None => {
            p.client_secret = String::new().into();
            p.team_id = Some(APPLE_TEAM_ID.into());
            p.key_id = Some(APPLE_KEY_ID.into());
            p.private_key = Some(include_str!("support/oidc_ec.p8.pem").to_owned().into());
        }
    }
    p
}

/// A client secret as Apple's docs have one generate it (valid an hour).
fn ready_apple_secret() -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(APPLE_KEY_ID.into());
    encode(
        &header,
        &json!({
            "iss": APPLE_TEAM_ID, "iat": now, "exp": now + 3600,
            "aud": "https://appleid.apple.com", "sub": APPLE_CLIENT_ID,
        }),
        &EncodingKey::from_ec_pem(include_bytes!("support/oidc_ec.p8.pem")).unwrap(),
    )
    .unwrap()
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
    // GoTrue hands the provider's own token over in the fragment; this
    // provider gave no refresh token.
    let (provider_access, _) = fake.issued.lock().unwrap().last().cloned().unwrap();
    assert_eq!(frag["provider_token"], provider_access);
    assert!(!frag.contains_key("provider_refresh_token"));
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
        "gh_id": 4242, "login": "ada", "name": "Ada", "email": email, "email_verified": true,
        "x_refresh": true
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
    // The provider's tokens wait with the flow, sealed, until the exchange.
    let (provider_access, provider_refresh) = fake.issued.lock().unwrap().last().cloned().unwrap();
    let sealed = sealed_provider_tokens(&app).await;
    assert_eq!(sealed.len(), 1);
    let (access_col, refresh_col) = &sealed[0];
    let (access_col, refresh_col) = (access_col.clone().unwrap(), refresh_col.clone().unwrap());
    assert!(!access_col.contains(&provider_access), "sealed at rest");
    assert!(!refresh_col.contains(provider_refresh.as_deref().unwrap()));
    let exchange = |verifier: &str| {
        let body = json!({ "auth_code": code, "code_verifier": verifier });
        let app = &app;
        async move { post(app, "/token?grant_type=pkce", &body, None).await }
    };
    exchange("a-wrong-verifier-that-is-also-long-enough-0123456789xyz")
        .await
        .assert_error(400, "bad_code_verifier");
    // A wrong verifier leaves the flow (and its tokens) in place.
    assert_eq!(sealed_provider_tokens(&app).await.len(), 1);
    let session = exchange(verifier).await;
    assert_eq!(session.status, 200, "{}", session.body);
    // Consumed with the flow: nothing of the provider's tokens remains.
    assert!(sealed_provider_tokens(&app).await.is_empty());
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

/// The sealed provider-token columns of every PKCE flow.
async fn sealed_provider_tokens(app: &TestApp) -> Vec<(Option<String>, Option<String>)> {
    use goforward_core::sea_orm::ConnectionTrait;
    use goforward_core::sea_query::{Alias, Query};
    let stmt = Query::select()
        .column(Alias::new("provider_access_token"))
        .column(Alias::new("provider_refresh_token"))
        .from(Alias::new("auth_flow_state"))
        .to_owned();
    app.db()
        .query_all(&stmt)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get::<Option<String>>("", "provider_access_token")
                    .unwrap(),
                row.try_get::<Option<String>>("", "provider_refresh_token")
                    .unwrap(),
            )
        })
        .collect()
}

/// Follows Apple's consent: the form it would auto-submit, as
/// `(action URL, fields)`.
async fn apple_consent(provider_url: &url::Url) -> (url::Url, HashMap<String, String>) {
    let res = no_redirects()
        .get(provider_url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.text().await);
    let page: Value = res.json().await.unwrap();
    let action = url::Url::parse(page["action"].as_str().unwrap()).unwrap();
    assert!(action.path().ends_with("/auth/v1/callback"), "{action}");
    let fields = page["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (action, fields)
}

/// POSTs a raw body to `/auth/v1/callback` (no `apikey`: a browser form).
async fn post_callback(
    app: &TestApp,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = no_redirects().post(app.url("/auth/v1/callback")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

fn form_body(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish().into_bytes()
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

async fn apple_form_post(pg: bool) {
    let (base, fake) = fake_provider().await;
    let base2 = base.clone();
    let ready = ready_apple_secret();
    let ready2 = ready.clone();
    let Some(app) = app(pg, move |c: &mut AuthConfig| {
        c.mailer_autoconfirm = true;
        c.external_allow_private_endpoints = true;
        c.external
            .insert("apple".into(), apple_provider(&base2, None));
        c.external
            .insert("apple_ready".into(), apple_provider(&base2, Some(&ready2)));
    })
    .await
    else {
        return;
    };
    let settings = get(&app, "/settings", None).await;
    assert_eq!(settings.body["external"]["apple"], true);
    *fake.profile.lock().unwrap() = json!({
        "sub": "001234.apple.5678", "email": "ada@privaterelay.appleid.com",
        "email_verified": "true", "is_private_email": "true",
        "x_apple": true, "x_refresh": true
    });

    // The authorize URL asks for form_post, Apple's scopes, a nonce.
    let to_provider = location(
        &start(
            &app,
            "provider=apple&redirect_to=https%3A%2F%2Fapp.example.com%2Fapple",
        )
        .await,
    );
    assert!(
        to_provider
            .as_str()
            .starts_with(&format!("{base}/apple/authorize?"))
    );
    let params: HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert_eq!(params["response_mode"], "form_post");
    assert_eq!(params["scope"], "name email");
    assert_eq!(params["client_id"], APPLE_CLIENT_ID);
    assert_eq!(params["nonce"].len(), 43);
    let (action, fields) = apple_consent(&to_provider).await;
    assert!(
        fields.contains_key("user"),
        "the first consent names the user"
    );
    let state = fields["state"].clone();
    let code = fields["code"].clone();

    // Bad form bodies: GoTrue-shaped JSON errors, the flow still pending,
    // nothing created, the code not spent.
    let users = count(&app, "auth_users").await;
    let exchanges = *fake.exchanges.lock().unwrap();
    let big = "x".repeat(70 * 1024);
    let bad: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            Some("application/json"),
            json!({ "code": code, "state": state })
                .to_string()
                .into_bytes(),
            400,
            "bad_oauth_callback",
        ),
        (
            None,
            form_body(&[("code", &code), ("state", &state)]),
            400,
            "bad_oauth_callback",
        ),
        (
            FORM,
            form_body(&[
                ("code", &code),
                ("state", &state),
                ("state", "other-state-0123456789"),
            ]),
            400,
            "bad_oauth_callback",
        ),
        (
            FORM,
            [b"code=abc&state=".as_slice(), &[0xff, 0xfe, 0xfd]].concat(),
            400,
            "bad_oauth_callback",
        ),
        (
            FORM,
            form_body(&[("code", &code), ("state", &state), ("padding", &big)]),
            413,
            "request_too_large",
        ),
        (FORM, form_body(&[("code", &code)]), 400, "bad_oauth_state"),
        (
            FORM,
            form_body(&[("code", &code), ("state", "forged-state-value-0123456789")]),
            400,
            "bad_oauth_state",
        ),
    ];
    for (content_type, body, status, code) in bad {
        let res = post_callback(&app, content_type, body).await;
        let (got_status, got) = error_of(res).await;
        assert_eq!(
            (got_status, got.as_str()),
            (status, code),
            "{content_type:?}"
        );
        assert_eq!(count(&app, "auth_oauth_state").await, 1);
    }
    assert_eq!(count(&app, "auth_users").await, users);
    assert_eq!(*fake.exchanges.lock().unwrap(), exchanges);

    // The real form POST (plus Apple's extra fields, ignored): signed in,
    // the provider's tokens in the fragment, the name from `user`.
    let mut body: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    body.push(("id_token", "ignored-copy"));
    let res = no_redirects()
        // The action names the configured external URL; post to the test server.
        .post(app.url(action.path()))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(form_body(&body))
        .send()
        .await
        .unwrap();
    let done = location(&res);
    assert_eq!(
        done.as_str().split('#').next().unwrap(),
        "https://app.example.com/apple"
    );
    let frag = fragment(&done);
    let (provider_access, provider_refresh) = fake.issued.lock().unwrap().last().cloned().unwrap();
    assert_eq!(frag["provider_token"], provider_access);
    assert_eq!(
        frag.get("provider_refresh_token"),
        provider_refresh.as_ref()
    );
    let access = frag["access_token"].clone();
    let me = get(&app, "/user", Some(&access)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["email"], "ada@privaterelay.appleid.com");
    assert!(me.body["email_confirmed_at"].is_string());
    assert_eq!(me.body["user_metadata"]["full_name"], "Ada Lovelace");
    assert_eq!(me.body["identities"][0]["provider"], "apple");
    assert_eq!(me.body["app_metadata"]["provider"], "apple");
    // The client secret was minted from the team key (checked by the fake).
    assert_eq!(fake.apple_secrets.lock().unwrap().len(), 1);

    // Replaying Apple's POST: the state is spent.
    let (status, got) = error_of(post_callback(&app, FORM, form_body(&body)).await).await;
    assert_eq!((status, got.as_str()), (400, "bad_oauth_state"));

    // Signing in again (no `user` field any more): the same account.
    let to_provider = location(&start(&app, "provider=apple").await);
    let (_, fields) = apple_consent(&to_provider).await;
    assert!(!fields.contains_key("user"));
    let body: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let again = location(&post_callback(&app, FORM, form_body(&body)).await);
    let access2 = fragment(&again)["access_token"].clone();
    assert_eq!(claims(&access2)["sub"], claims(&access)["sub"]);

    // A malformed `user` with a valid state: GoTrue's error redirect, no
    // account, the provider's code not spent.
    *fake.profile.lock().unwrap() = json!({
        "sub": "001234.apple.9999", "email": "grace@example.org",
        "email_verified": "true", "x_apple": true
    });
    let users = count(&app, "auth_users").await;
    let exchanges = *fake.exchanges.lock().unwrap();
    for user in [
        "{not json",
        "[1,2]",
        r#"{"name":"Grace Hopper"}"#,
        r#"{"name":{"firstName":42}}"#,
    ] {
        let to_provider = location(
            &start(
                &app,
                "provider=apple&redirect_to=https%3A%2F%2Fapp.example.com%2Fapple",
            )
            .await,
        );
        let (_, fields) = apple_consent(&to_provider).await;
        let res = post_callback(
            &app,
            FORM,
            form_body(&[
                ("code", &fields["code"]),
                ("state", &fields["state"]),
                ("user", user),
            ]),
        )
        .await;
        error_redirect(
            &res,
            "https://app.example.com/apple",
            "invalid_request",
            Some("bad_oauth_callback"),
        );
    }
    assert_eq!(count(&app, "auth_users").await, users);
    assert_eq!(*fake.exchanges.lock().unwrap(), exchanges);

    // The user cancels at Apple: its error relayed in the redirect.
    let to_provider = location(&start(&app, "provider=apple").await);
    let (_, fields) = apple_consent(&to_provider).await;
    let res = post_callback(
        &app,
        FORM,
        form_body(&[
            ("state", &fields["state"]),
            ("error", "user_cancelled_authorize"),
        ]),
    )
    .await;
    let to = location(&res);
    let query: HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(query["error"], "user_cancelled_authorize", "{to}");
    assert_eq!(fragment(&to)["error"], "user_cancelled_authorize", "{to}");
    assert!(!fragment(&to).contains_key("access_token"), "{to}");
    assert_eq!(count(&app, "auth_users").await, users);

    // PKCE with the ready-made client secret: ?code= back, the provider's
    // tokens sealed with the flow until the exchange.
    let verifier = "an-apple-pkce-code-verifier-that-is-long-enough-0123456789";
    let to_provider = location(
        &start(
            &app,
            &format!(
                "provider=apple_ready&redirect_to=https%3A%2F%2Fapp.example.com%2Fapple&code_challenge={}&code_challenge_method=s256",
                s256(verifier)
            ),
        )
        .await,
    );
    let (_, fields) = apple_consent(&to_provider).await;
    let body: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let back = location(&post_callback(&app, FORM, form_body(&body)).await);
    assert_eq!(back.path(), "/apple");
    assert!(back.fragment().is_none(), "no tokens in the URL");
    assert_eq!(fake.apple_secrets.lock().unwrap().last().unwrap(), &ready);
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let sealed = sealed_provider_tokens(&app).await;
    assert_eq!(sealed.len(), 1);
    assert!(
        sealed[0].0.is_some() && sealed[0].1.is_none(),
        "no refresh token given"
    );
    let session = post(
        &app,
        "/token?grant_type=pkce",
        &json!({ "auth_code": code, "code_verifier": verifier }),
        None,
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(session.body["user"]["email"], "grace@example.org");
    assert!(sealed_provider_tokens(&app).await.is_empty());

    // An abandoned PKCE flow's tokens go once its code can no longer be
    // redeemed (swept when the next OAuth PKCE flow is issued).
    let pkce_round = || async {
        let to_provider = location(
            &start(
                &app,
                &format!(
                    "provider=apple_ready&code_challenge={}&code_challenge_method=s256",
                    s256(verifier)
                ),
            )
            .await,
        );
        let (_, fields) = apple_consent(&to_provider).await;
        let body: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        location(&post_callback(&app, FORM, form_body(&body)).await);
    };
    pkce_round().await;
    {
        use goforward_auth::entity::flow_state;
        use goforward_core::sea_orm::{EntityTrait, sea_query::Expr};
        flow_state::Entity::update_many()
            .col_expr(
                flow_state::Column::AuthCodeIssuedAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::hours(2)),
            )
            .exec(app.db())
            .await
            .unwrap();
    }
    pkce_round().await;
    assert_eq!(sealed_provider_tokens(&app).await.len(), 1);
    app.stop().await;
}
both!(oauth_apple_form_post, apple_form_post);

/// `POST /token?grant_type=pkce` returns the provider's tokens an OAuth
/// flow kept (supabase-js `session.provider_token`).
async fn pkce_provider_tokens(pg: bool) {
    let (base, fake) = fake_provider().await;
    let Some(app) = oauth_app(pg, &base).await else {
        return;
    };
    *fake.profile.lock().unwrap() = json!({
        "sub": "corp-pkce", "email": "pkce@example.com", "email_verified": true, "x_refresh": true
    });
    let verifier = "a-client-side-code-verifier-that-is-long-enough-9876543210";
    let to_provider = location(
        &start(
            &app,
            &format!(
                "provider=corp&code_challenge={}&code_challenge_method=s256",
                s256(verifier)
            ),
        )
        .await,
    );
    let back = location(&callback(&app, &consent(&to_provider).await).await);
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let session = post(
        &app,
        "/token?grant_type=pkce",
        &json!({ "auth_code": code, "code_verifier": verifier }),
        None,
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    let (access, refresh) = fake.issued.lock().unwrap().last().cloned().unwrap();
    assert_eq!(session.body["provider_token"], access.as_str());
    assert_eq!(
        session.body["provider_refresh_token"],
        refresh.unwrap().as_str()
    );
    app.stop().await;
}

mod oauth_pkce_provider_tokens {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::pkce_provider_tokens(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::pkce_provider_tokens(true).await;
    }
}

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
    // Apple: a ready client secret, or the team key — not neither, not
    // both, not half of it, not a key that is no P-256 PKCS#8 PEM.
    let apple = |f: &dyn Fn(&mut OAuthProviderConfig)| {
        let mut c = AuthConfig::default();
        let mut p = apple_provider("https://appleid.example.com", None);
        f(&mut p);
        c.external.insert("apple".into(), p);
        c.validate().map_err(|e| e.to_string())
    };
    assert!(apple(&|_| {}).is_ok());
    assert!(
        apple(&|p| {
            p.team_id = None;
            p.key_id = None;
            p.private_key = None;
            p.client_secret = "ready".to_owned().into();
        })
        .is_ok()
    );
    for (tweak, key) in [
        (
            Box::new(|p: &mut OAuthProviderConfig| {
                p.team_id = None;
                p.key_id = None;
                p.private_key = None;
            }) as Box<dyn Fn(&mut OAuthProviderConfig)>,
            "auth.external.apple.client_secret",
        ),
        (
            Box::new(|p: &mut OAuthProviderConfig| p.client_secret = "ready".to_owned().into()),
            "auth.external.apple.client_secret",
        ),
        (
            Box::new(|p: &mut OAuthProviderConfig| p.key_id = None),
            "auth.external.apple.key_id",
        ),
        (
            Box::new(|p: &mut OAuthProviderConfig| {
                p.private_key = Some(include_str!("support/oidc_rsa.pem").to_owned().into());
            }),
            "auth.external.apple.private_key",
        ),
        (
            Box::new(|p: &mut OAuthProviderConfig| {
                p.jwks_uri = Some("https://127.0.0.1/keys".into())
            }),
            "auth.external.apple.jwks_uri",
        ),
    ] {
        let err = apple(&*tweak).expect_err(key);
        assert!(err.contains(key), "{err}");
    }
    // Unknown kinds are refused.
    let mut c = AuthConfig::default();
    c.external
        .insert("corp".into(), provider("https://idp.example.com", "saml"));
    assert!(c.validate().is_err());
}
