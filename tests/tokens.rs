//! Strict token verification over HTTP (security checklist item 1): every
//! malformed, forged or expired token is a 401 in the calling API's wire
//! shape; valid anon / service / user tokens give the right `Principal`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{app_with_all_plugins, b64, get};
use goforward::token::{KeyAlgorithm, TokenSigner, TokenVerifier};
use serde_json::{Value, json};

const RSA_PUBLIC: &str = include_str!("fixtures/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn unsigned(header: Value, claims: Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

#[tokio::test]
async fn bad_tokens_are_401_in_each_api_shape() {
    let app = app_with_all_plugins().start().await.expect("start");
    let anon = app.anon_key();
    let user = json!({"sub": "4b1c9d1e-0000-4000-8000-000000000001", "role": "authenticated"});
    let with = |extra: Value| {
        let mut claims = user.clone();
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            claims[k] = v;
        }
        claims
    };
    let other_secret = TokenSigner::hs256(b"another-secret-another-secret-another-secret!!");
    let hs_with_pem_as_secret = TokenSigner::hs256(RSA_PUBLIC.as_bytes());

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            app.token(with(json!({"exp": now() - 3600, "iat": now() - 7200}))),
        ),
        (
            "wrong signature",
            other_secret
                .sign(&with(json!({"exp": now() + 600})))
                .unwrap(),
        ),
        (
            "alg none",
            unsigned(
                json!({"alg": "none", "typ": "JWT"}),
                with(json!({"exp": now() + 600})),
                "",
            ),
        ),
        (
            "alg none with sig",
            unsigned(
                json!({"alg": "none"}),
                with(json!({"exp": now() + 600})),
                "c2ln",
            ),
        ),
        (
            "HS256 signed with the public key PEM",
            hs_with_pem_as_secret
                .sign(&with(json!({"exp": now() + 600})))
                .unwrap(),
        ),
        ("RS256 header, HMAC signature", {
            let good = app.token(with(json!({})));
            let sig = good.rsplit('.').next().unwrap().to_owned();
            unsigned(
                json!({"alg": "RS256", "typ": "JWT"}),
                with(json!({"exp": now() + 600})),
                &sig,
            )
        }),
        ("missing role", app.token(json!({"sub": "x"}))),
        ("empty role", app.token(json!({"sub": "x", "role": ""}))),
        (
            "authenticated without sub",
            app.token(json!({"role": "authenticated"})),
        ),
        (
            "missing exp",
            app.signer()
                .sign(&json!({"sub": "x", "role": "authenticated"}))
                .unwrap(),
        ),
        (
            "string exp",
            app.signer()
                .sign(&json!({"sub": "x", "role": "authenticated", "exp": "never"}))
                .unwrap(),
        ),
        ("future nbf", app.token(with(json!({"nbf": now() + 3600})))),
        ("future iat", app.token(with(json!({"iat": now() + 3600})))),
        ("garbage", "not.a.jwt".to_owned()),
        ("two parts", "abc.def".to_owned()),
        ("huge", "a".repeat(10_000)),
        (
            "unknown kid",
            unsigned(
                json!({"alg": "HS256", "kid": "nope"}),
                with(json!({"exp": now() + 600})),
                "abc",
            ),
        ),
        (
            "ES256 header",
            unsigned(
                json!({"alg": "ES256"}),
                with(json!({"exp": now() + 600})),
                "abc",
            ),
        ),
    ];

    for (name, token) in &cases {
        // PostgREST shape.
        let (status, _, body) = get(&app, "/rest/v1/todos", Some(&anon), Some(token)).await;
        assert_eq!(status, 401, "{name}: rest status, body {body}");
        assert!(
            body["code"].as_str().unwrap().starts_with("PGRST30"),
            "{name}: {body}"
        );
        assert!(
            body.get("details").is_some() && body.get("hint").is_some(),
            "{name}: {body}"
        );
        // GoTrue shape.
        let (status, headers, body) =
            get(&app, "/auth/v1/settings", Some(&anon), Some(token)).await;
        assert_eq!(status, 401, "{name}: auth status");
        assert_eq!(body["code"], "bad_jwt", "{name}: {body}");
        assert_eq!(headers["x-supabase-api-version"], "2024-01-01");
        // Storage shape.
        let (status, _, body) = get(&app, "/storage/v1/bucket", Some(&anon), Some(token)).await;
        assert_eq!(status, 401, "{name}: storage status");
        assert_eq!(body["statusCode"], "401", "{name}: {body}");
        // GoForward's own shape; and never a leak of the token.
        let (status, _, body) = get(&app, "/whoami", Some(&anon), Some(token)).await;
        assert_eq!(status, 401, "{name}: whoami");
        assert!(
            body["code"].as_str().unwrap().starts_with("core."),
            "{name}: {body}"
        );
        assert!(
            !body.to_string().contains(token.as_str()) || token.len() < 8,
            "{name}: token echoed"
        );
    }

    // Garbage Authorization headers and a bad apikey.
    for header in ["Basic abc", "Bearer", "Bearer ", "bearer", "Token x"] {
        let res = app
            .client()
            .get(app.url("/whoami"))
            .header("apikey", &anon)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "authorization header {header:?}");
    }
    let (status, _, body) = get(&app, "/whoami", Some("not-a-key"), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("core.invalid_api_key"))
    );
    let (status, _, body) = get(&app, "/rest/v1/todos", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "No API key found in request");
    // A user token is not an API key.
    let (status, _, _) = get(&app, "/whoami", Some(&app.user_token("u1")), None).await;
    assert_eq!(status, 401);

    app.stop().await;
}

#[tokio::test]
async fn valid_tokens_give_the_right_principal() {
    let app = app_with_all_plugins().start().await.expect("start");
    let anon = app.anon_key();

    let (status, _, body) = get(&app, "/whoami", Some(&anon), None).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("anon")));
    assert!(body["user_id"].is_null());

    // supabase-js sends the key as the bearer when signed out.
    let (_, _, body) = get(&app, "/whoami", Some(&anon), Some(&anon)).await;
    assert_eq!(body["role"], "anon");

    let service = app.service_key();
    let (_, _, body) = get(&app, "/whoami", Some(&service), Some(&service)).await;
    assert_eq!(body["role"], "service_role");

    let token = app
        .token(json!({"sub": "u-42", "role": "authenticated", "aal": "aal2", "session_id": "s-1"}));
    let (status, _, body) = get(&app, "/whoami", Some(&anon), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"role": "authenticated", "user_id": "u-42", "session_id": "s-1", "aal": "aal2"})
    );

    let custom = app.token(json!({"sub": "u-7", "role": "editor"}));
    let (_, _, body) = get(&app, "/whoami", Some(&anon), Some(&custom)).await;
    assert_eq!(body["role"], "editor");
    app.stop().await;
}

#[test]
fn rs256_keys_are_pinned_to_their_algorithm() {
    let verifier = TokenVerifier::hs256(b"0123456789abcdef0123456789abcdef")
        .with_public_key(
            Some("rsa-1".into()),
            KeyAlgorithm::RS256,
            RSA_PUBLIC.as_bytes(),
        )
        .unwrap();
    let claims = json!({"sub": "u", "role": "authenticated", "exp": now() + 600});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let good = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_eq!(verifier.verify(&good).unwrap()["sub"], "u");

    header.kid = Some("unknown".into());
    let unknown_kid = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert!(verifier.verify(&unknown_kid).is_err());

    // HS/RS confusion: the public key used as an HMAC secret is refused.
    let forged = TokenSigner::hs256(RSA_PUBLIC.as_bytes())
        .sign(&claims)
        .unwrap();
    assert!(verifier.verify(&forged).is_err());
}

#[test]
fn random_bytes_never_verify_and_never_panic() {
    let verifier = TokenVerifier::hs256(b"0123456789abcdef0123456789abcdef");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400 {
        let token: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"abcXYZ012._-=+/ {}\"\0"[(seed % 20) as usize] as char
            })
            .collect();
        assert!(verifier.verify(&token).is_err());
    }
}

/// Checklist item 32: the HS256 secret rotates without downtime. The current
/// secret signs with its `kid`; retired secrets keep verifying the tokens
/// they signed (by `kid`, or tried in turn when a token has none); a `kid`
/// never selects another key's secret.
#[tokio::test]
async fn hs256_secret_rotates_by_kid() {
    use goforward::core::config::PreviousSecretConfig;
    const RETIRED: &[u8] = b"retired-secret-retired-secret-retired!!";
    const LEGACY: &[u8] = b"legacy-secret-without-kid-legacy-secret!";
    let app = app_with_all_plugins()
        .config(|c| {
            c.jwt.kid = Some("2026-11".into());
            c.jwt.previous_secrets = vec![
                PreviousSecretConfig {
                    kid: Some("2026-10".into()),
                    secret: std::str::from_utf8(RETIRED).unwrap().to_owned().into(),
                },
                PreviousSecretConfig {
                    kid: None,
                    secret: std::str::from_utf8(LEGACY).unwrap().to_owned().into(),
                },
            ];
        })
        .start()
        .await
        .expect("start");
    let anon = app.anon_key();
    let claims = json!({"sub": "u-rot", "role": "authenticated", "exp": now() + 600});

    // Issued by the app itself: the header names the current key.
    let current = app.gf.context().signer().sign(&claims).unwrap();
    let header = jsonwebtoken::decode_header(&current).unwrap();
    assert_eq!(header.kid.as_deref(), Some("2026-11"));

    let retired = TokenSigner::hs256(RETIRED).with_kid("2026-10");
    let accepted = [
        ("current, kid", current),
        ("current, no kid", app.token(claims.clone())),
        ("retired, kid", retired.sign(&claims).unwrap()),
        (
            "retired, no kid",
            TokenSigner::hs256(RETIRED).sign(&claims).unwrap(),
        ),
        (
            "legacy, no kid",
            TokenSigner::hs256(LEGACY).sign(&claims).unwrap(),
        ),
    ];
    for (name, token) in accepted {
        let (status, _, body) = get(&app, "/whoami", Some(&anon), Some(&token)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["user_id"], "u-rot", "{name}");
    }

    let unknown = TokenSigner::hs256(b"never-configured-never-configured-!!!");
    let refused = [
        (
            "retired secret under the current kid",
            TokenSigner::hs256(RETIRED)
                .with_kid("2026-11")
                .sign(&claims)
                .unwrap(),
        ),
        (
            "legacy secret under a retired kid",
            TokenSigner::hs256(LEGACY)
                .with_kid("2026-10")
                .sign(&claims)
                .unwrap(),
        ),
        (
            "unknown kid",
            retired.clone().with_kid("2099-01").sign(&claims).unwrap(),
        ),
        ("unknown secret, no kid", unknown.sign(&claims).unwrap()),
        (
            "unknown secret, current kid",
            unknown.with_kid("2026-11").sign(&claims).unwrap(),
        ),
        (
            "retired but expired",
            retired
                .sign(&json!({"sub": "u-rot", "role": "authenticated", "exp": now() - 3600}))
                .unwrap(),
        ),
    ];
    for (name, token) in refused {
        let (status, _, body) = get(&app, "/whoami", Some(&anon), Some(&token)).await;
        assert_eq!(status, 401, "{name}: {body}");
    }
    app.stop().await;
}

/// A key store that knows one service-account key and counts its lookups.
struct CountingKeys {
    lookups: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl goforward::token::ApiKeyResolver for CountingKeys {
    fn recognizes(&self, key: &str) -> bool {
        key.starts_with("gf_sa_")
    }
    async fn resolve(&self, key: &str) -> goforward::Result<Option<goforward::Principal>> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let claims = json!({"role": "reporter", "sub": "sa-1"});
        Ok((key == "gf_sa_valid")
            .then(|| goforward::Principal::from_claims(claims.as_object().cloned().unwrap()))
            .transpose()
            .expect("claims"))
    }
}

struct KeysPlugin(std::sync::Arc<CountingKeys>);

#[async_trait::async_trait]
impl goforward::Plugin for KeysPlugin {
    fn name(&self) -> &str {
        "keys"
    }
    async fn start(&self, ctx: &goforward::Context) -> goforward::Result<()> {
        ctx.authenticator().add_api_key_resolver(self.0.clone());
        Ok(())
    }
}

#[tokio::test]
async fn opaque_api_keys_are_looked_up_by_the_registered_resolver() {
    use std::sync::atomic::Ordering::SeqCst;
    let keys = std::sync::Arc::new(CountingKeys { lookups: 0.into() });
    // Not the auth plugin: its own resolver claims the `gf_sa_` prefix too.
    let app = goforward::testing::TestApp::builder()
        .plugin(KeysPlugin(keys.clone()))
        .routes(|cfg| {
            cfg.route(
                "/whoami",
                actix_web::web::get().to(|p: goforward::Principal| async move {
                    actix_web::HttpResponse::Ok()
                        .json(json!({"role": p.role.as_str(), "user_id": p.user_id}))
                }),
            );
        })
        .start()
        .await
        .expect("start");
    let anon = app.anon_key();

    // As the bearer (with the anon key), and alone as the apikey.
    let (status, _, body) = get(&app, "/whoami", Some(&anon), Some("gf_sa_valid")).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("reporter")));
    assert_eq!(body["user_id"], "sa-1");
    let (status, _, body) = get(&app, "/whoami", Some("gf_sa_valid"), None).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("reporter")));
    // The second use came from the short-lived cache.
    assert_eq!(keys.lookups.load(SeqCst), 1);

    // Unknown keys are 401 in each position, and never cached.
    for (apikey, bearer) in [
        (Some(anon.as_str()), Some("gf_sa_unknown")),
        (Some("gf_sa_unknown"), None),
        (Some("gf_sa_unknown"), Some("gf_sa_valid")),
    ] {
        let (status, _, body) = get(&app, "/whoami", apikey, bearer).await;
        assert_eq!(status, 401, "{apikey:?} {bearer:?}: {body}");
    }
    let before = keys.lookups.load(SeqCst);
    get(&app, "/whoami", Some("gf_sa_unknown"), None).await;
    assert_eq!(keys.lookups.load(SeqCst), before + 1);

    // Forgetting (what revocation does) makes the next request ask again.
    app.gf.context().authenticator().forget_api_keys();
    let (status, _, _) = get(&app, "/whoami", Some("gf_sa_valid"), None).await;
    assert_eq!(status, 200);
    assert_eq!(keys.lookups.load(SeqCst), before + 2);
    app.stop().await;
}
