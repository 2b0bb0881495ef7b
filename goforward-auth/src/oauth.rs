//! OAuth2 / OIDC sign-in (the `oauth2` crate): `/authorize` redirects to
//! the provider with PKCE S256 and a random `state` (stored hashed, single
//! use, ≤ 10 minutes); `/callback` exchanges the code, reads the userinfo
//! endpoint (or validates the ID token) and maps `(provider, subject)` to a
//! user. Google, GitHub and Apple are built in; any other provider is
//! generic OIDC.
//!
//! **Apple**: the authorize request asks for `response_mode=form_post`
//! (required by Apple when the `name` or `email` scope is requested), so
//! Apple's answer arrives as a form `POST /callback` (`code`, `state` and,
//! on the first sign-in only, a `user` JSON with the name). The client
//! secret is either configured ready-made or minted per code exchange as
//! an ES256 JWT (`iss` team id, `sub` client id, `aud`
//! `https://appleid.apple.com`, 5 minutes) signed with the team's key. The
//! identity comes from Apple's ID token, validated like any OIDC ID token
//! against Apple's JWKS.
//!
//! **Provider tokens**: the provider's access and refresh tokens are handed
//! to the app once — in the redirect fragment (`provider_token`,
//! `provider_refresh_token`) of the implicit flow, or, in the PKCE flow,
//! kept sealed (AES-256-GCM) with the flow state until the code exchange
//! (see [`crate::pkce`]). They are never stored otherwise.
//!
//! **OIDC**: a provider with an `issuer` (Google's is built in) is an OpenID
//! Connect provider: its endpoints not given in config come from
//! `<issuer>/.well-known/openid-configuration` (fetched on first use,
//! cached; the document's `issuer` must equal the configured one), the
//! authorize request carries a `nonce` derived from the flow's secret PKCE
//! verifier, and the identity comes from the ID token of the token
//! response, validated against the provider's JWKS (RS256 or ES256; `iss`,
//! `aud` = client id, `azp`, `exp` with 60 s leeway, `nonce`). Userinfo is
//! read only to complete a missing email, and only when its `sub` matches.
//!
//! Provider endpoints are fixed by configuration or discovery and checked
//! (SSRF guard): `https` only, no userinfo, no IP literal or `localhost`
//! unless `external_allow_private_endpoints` is set (tests, local identity
//! providers); host names are resolved once and only public addresses are
//! connected to (no DNS rebinding); the HTTP client follows no redirects,
//! times out and reads at most 1 MiB of any answer (discovery, JWKS, token
//! response, userinfo), streaming.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::jwk::JwkSet;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl, basic::BasicClient,
};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::config::OAuthProviderConfig;
use crate::crypto::sha256_hex;
use crate::entity::oauth_state;
use crate::error::{AuthError, Result};
use crate::provider::ProviderIdentity;
use crate::state::AuthState;

/// Longest time between `/authorize` and `/callback`.
pub const STATE_LIFETIME_SECS: i64 = 600;

/// Which userinfo dialect a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google (OIDC userinfo).
    Google,
    /// GitHub (`/user` and `/user/emails`).
    Github,
    /// Any OIDC provider (userinfo `sub`, `email`, `email_verified`).
    Oidc,
    /// Sign in with Apple (form-post callback, ID token, client-secret JWT).
    Apple,
}

/// The audience of Apple's client-secret JWTs.
pub const APPLE_AUDIENCE: &str = "https://appleid.apple.com";
/// Apple's issuer.
const APPLE_ISSUER: &str = "https://appleid.apple.com";
/// Lifetime of a minted Apple client secret.
const APPLE_SECRET_LIFETIME_SECS: i64 = 300;

/// The team key an Apple client secret is minted with.
#[derive(Clone)]
pub struct AppleKey {
    team_id: String,
    key_id: String,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppleKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AppleKey {
    /// An ES256 client-secret JWT for `client_id`, valid 5 minutes.
    ///
    /// # Errors
    /// An internal error when signing fails.
    pub fn client_secret(&self, client_id: &str) -> Result<String> {
        let now = Utc::now().timestamp();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = json!({
            "iss": self.team_id,
            "iat": now,
            "exp": now + APPLE_SECRET_LIFETIME_SECS,
            "aud": APPLE_AUDIENCE,
            "sub": client_id,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Internal(format!("Apple client secret: {e}")))
    }
}

/// The provider's own tokens from a code exchange, handed to the app once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderTokens {
    /// The provider's access token (`provider_token`).
    pub access_token: String,
    /// The provider's refresh token, when it gave one (`provider_refresh_token`).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderTokens(<redacted>)")
    }
}

/// A validated provider, ready to use.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Dialect.
    pub kind: ProviderKind,
    /// Client id.
    pub client_id: String,
    client_secret: SecretString,
    /// Authorization endpoint (`None`: from OIDC discovery).
    pub authorization_endpoint: Option<url::Url>,
    /// Token endpoint (`None`: from OIDC discovery).
    pub token_endpoint: Option<url::Url>,
    /// Userinfo endpoint (`None`: from OIDC discovery, if it names one).
    pub userinfo_endpoint: Option<url::Url>,
    /// JWKS (`None`: from OIDC discovery).
    pub jwks_endpoint: Option<url::Url>,
    /// Apple: the key client secrets are minted with (else `client_secret`).
    pub apple_key: Option<Arc<AppleKey>>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Issuer (recorded as `iss` in the identity data).
    pub issuer: Option<String>,
    /// OpenID Connect state (discovery and keys) when the provider has an
    /// issuer: the identity then comes from a validated ID token.
    pub oidc: Option<Arc<Oidc>>,
}

/// The endpoints of one sign-in, after discovery.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where the browser is sent.
    pub authorization: url::Url,
    /// Where the code is exchanged.
    pub token: url::Url,
    /// Userinfo, if any.
    pub userinfo: Option<url::Url>,
    /// The provider's JWKS (OIDC only).
    pub jwks: Option<url::Url>,
}

/// The OpenID Connect side of a provider: its issuer, the discovery
/// document and the key set, cached.
pub struct Oidc {
    issuer: String,
    allow_private: bool,
    discovery: tokio::sync::Mutex<Option<Arc<Discovery>>>,
    keys: tokio::sync::Mutex<Option<(Instant, Arc<JwkSet>)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// The fields of an OpenID Provider Configuration document that matter here.
#[derive(Debug, Clone, serde::Deserialize)]
struct DiscoveryDoc {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

/// A checked discovery document.
#[derive(Debug)]
struct Discovery {
    authorization: url::Url,
    token: Option<url::Url>,
    userinfo: Option<url::Url>,
    jwks: url::Url,
}

/// How long a key set is trusted before it is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the key set at most this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
/// The largest answer read from a provider (discovery, JWKS, token, userinfo).
pub const MAX_PROVIDER_RESPONSE: usize = 1 << 20;

/// Google's issuer (its ID tokens carry either spelling).
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

fn provider_error(what: &str) -> AuthError {
    AuthError::Internal(format!("OAuth provider: {what}"))
}

impl Oidc {
    fn new(issuer: String, allow_private: bool) -> Self {
        Self {
            issuer,
            allow_private,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
        }
    }

    /// The issuer ID tokens must carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn discovery(&self, http: &reqwest::Client) -> Result<Arc<Discovery>> {
        let mut cached = self.discovery.lock().await;
        if let Some(found) = cached.as_ref() {
            return Ok(found.clone());
        }
        let url = url::Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        ))
        .map_err(|_| provider_error("issuer is not a URL"))?;
        let bytes = fetch(http, &url, None).await.map_err(|what| {
            tracing::warn!(url = %url, what, "OIDC discovery failed");
            provider_error("discovery failed")
        })?;
        let doc: DiscoveryDoc = serde_json::from_slice(&bytes)
            .map_err(|_| provider_error("discovery document is not valid"))?;
        if doc.issuer != self.issuer {
            tracing::warn!(expected = %self.issuer, got = %doc.issuer, "OIDC discovery issuer mismatch");
            return Err(provider_error("discovery issuer mismatch"));
        }
        let checked = |text: &str| -> Result<url::Url> {
            url::Url::parse(text)
                .ok()
                .filter(|u| endpoint_allowed(u, self.allow_private))
                .ok_or_else(|| {
                    tracing::warn!(endpoint = text, "OIDC discovery names a refused endpoint");
                    provider_error("discovery names a refused endpoint")
                })
        };
        let found = Arc::new(Discovery {
            authorization: checked(&doc.authorization_endpoint)?,
            token: doc.token_endpoint.as_deref().map(checked).transpose()?,
            userinfo: doc.userinfo_endpoint.as_deref().map(checked).transpose()?,
            jwks: checked(&doc.jwks_uri)?,
        });
        *cached = Some(found.clone());
        Ok(found)
    }

    /// The key set, fetched again when older than an hour or when `kid` is
    /// unknown (at most every 30 s).
    async fn keys(
        &self,
        http: &reqwest::Client,
        jwks: &url::Url,
        kid: Option<&str>,
    ) -> Result<Arc<JwkSet>> {
        let mut cached = self.keys.lock().await;
        if let Some((at, set)) = cached.as_ref() {
            let fresh = at.elapsed() < JWKS_MAX_AGE;
            let knows = kid.is_none_or(|k| set.find(k).is_some());
            if fresh && (knows || at.elapsed() < JWKS_MIN_REFETCH) {
                return Ok(set.clone());
            }
        }
        let bytes = fetch(http, jwks, None).await.map_err(|what| {
            tracing::warn!(url = %jwks, what, "OIDC JWKS fetch failed");
            provider_error("JWKS fetch failed")
        })?;
        let set: JwkSet =
            serde_json::from_slice(&bytes).map_err(|_| provider_error("JWKS is not valid"))?;
        let set = Arc::new(set);
        *cached = Some((Instant::now(), set.clone()));
        Ok(set)
    }
}

impl ProviderSpec {
    /// The endpoints to use, discovering what config leaves out.
    ///
    /// # Errors
    /// An opaque internal error when discovery fails or names refused
    /// endpoints.
    pub async fn endpoints(&self, http: &reqwest::Client) -> Result<Endpoints> {
        // Discovery only when configuration leaves an endpoint out.
        let complete = self.authorization_endpoint.is_some()
            && self.token_endpoint.is_some()
            && self.jwks_endpoint.is_some();
        let discovered = match &self.oidc {
            Some(oidc) if !complete => Some(oidc.discovery(http).await?),
            _ => None,
        };
        let authorization = self
            .authorization_endpoint
            .clone()
            .or_else(|| discovered.as_ref().map(|d| d.authorization.clone()))
            .ok_or_else(|| provider_error("no authorization endpoint"))?;
        let token = self
            .token_endpoint
            .clone()
            .or_else(|| discovered.as_ref().and_then(|d| d.token.clone()))
            .ok_or_else(|| provider_error("no token endpoint"))?;
        let userinfo = self
            .userinfo_endpoint
            .clone()
            .or_else(|| discovered.as_ref().and_then(|d| d.userinfo.clone()));
        let jwks = self
            .jwks_endpoint
            .clone()
            .or_else(|| discovered.map(|d| d.jwks.clone()));
        Ok(Endpoints {
            authorization,
            token,
            userinfo,
            jwks,
        })
    }

    /// The client secret for a code exchange (Apple: minted from the key).
    ///
    /// # Errors
    /// An internal error when minting fails.
    pub fn client_secret(&self) -> Result<String> {
        match &self.apple_key {
            Some(key) => key.client_secret(&self.client_id),
            None => Ok(self.client_secret.expose_secret().to_owned()),
        }
    }
}

/// Whether a provider endpoint may be called (the SSRF guard).
pub fn endpoint_allowed(url: &url::Url, allow_private: bool) -> bool {
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    if allow_private {
        return matches!(url.scheme(), "http" | "https");
    }
    if url.scheme() != "https" {
        return false;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let lower = bare.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") || lower.ends_with(".local") {
        return false;
    }
    // An IP literal: refuse every one (loopback, private, link-local,
    // metadata addresses…): providers are reached by name.
    bare.parse::<IpAddr>().is_err()
}

impl ProviderSpec {
    /// Validates a configured provider. The error is `(key, value, problem)`
    /// with `key` relative to `auth.external.<name>`.
    ///
    /// # Errors
    /// A missing endpoint for a generic OIDC provider, a malformed or
    /// refused endpoint, an unknown kind, an empty client id.
    pub fn resolve(
        name: &str,
        config: &OAuthProviderConfig,
        allow_private: bool,
    ) -> std::result::Result<Self, (String, String, String)> {
        let fail = |key: &str, value: &str, problem: &str| {
            Err((key.to_owned(), value.to_owned(), problem.to_owned()))
        };
        if !crate::provider::valid_name(name) {
            return fail(
                "",
                name,
                "provider names are [a-z0-9_-], 1 to 64 characters",
            );
        }
        let kind = match config.kind.as_deref().unwrap_or(match name {
            "google" => "google",
            "github" => "github",
            "apple" => "apple",
            _ => "oidc",
        }) {
            "google" => ProviderKind::Google,
            "github" => ProviderKind::Github,
            "apple" => ProviderKind::Apple,
            "oidc" => ProviderKind::Oidc,
            other => return fail("kind", other, "expected google, github, apple or oidc"),
        };
        if config.client_id.trim().is_empty() {
            return fail("client_id", "", "must not be empty");
        }
        let defaults = match kind {
            // Google: endpoints from its discovery document.
            ProviderKind::Google => (None, None, None),
            ProviderKind::Github => (
                Some("https://github.com/login/oauth/authorize"),
                Some("https://github.com/login/oauth/access_token"),
                Some("https://api.github.com/user"),
            ),
            ProviderKind::Oidc => (None, None, None),
            ProviderKind::Apple => (
                Some("https://appleid.apple.com/auth/authorize"),
                Some("https://appleid.apple.com/auth/token"),
                None,
            ),
        };
        let apple_key = match kind {
            ProviderKind::Apple => Self::apple_key(config)
                .map_err(|(key, value, problem)| (key.to_owned(), value, problem.to_owned()))?,
            _ => None,
        };
        let issuer = config
            .issuer
            .clone()
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .or_else(|| match kind {
                ProviderKind::Google => Some(GOOGLE_ISSUER.to_owned()),
                ProviderKind::Apple => Some(APPLE_ISSUER.to_owned()),
                _ => None,
            });
        if let Some(issuer) = &issuer {
            match url::Url::parse(issuer) {
                Ok(parsed)
                    if endpoint_allowed(&parsed, allow_private) && parsed.query().is_none() => {}
                _ => {
                    return fail(
                        "issuer",
                        issuer,
                        "must be an https URL on a public host name, without query (see external_allow_private_endpoints)",
                    );
                }
            }
        }
        // With an issuer, endpoints left out come from discovery.
        let discoverable = issuer.is_some() && kind != ProviderKind::Github;
        let endpoint = |key: &str, given: &Option<String>, default: Option<&str>| {
            let Some(text) = given.as_deref().or(default) else {
                if discoverable {
                    return Ok(None);
                }
                return Err((
                    key.to_owned(),
                    String::new(),
                    "is required for a generic OIDC provider without issuer".to_owned(),
                ));
            };
            let parsed = url::Url::parse(text).map_err(|_| {
                (
                    key.to_owned(),
                    text.to_owned(),
                    "expected an absolute URL".to_owned(),
                )
            })?;
            if !endpoint_allowed(&parsed, allow_private) {
                return Err((
                    key.to_owned(),
                    text.to_owned(),
                    "must be https on a public host name (see external_allow_private_endpoints)"
                        .to_owned(),
                ));
            }
            Ok(Some(parsed))
        };
        let authorization_endpoint = endpoint(
            "authorization_endpoint",
            &config.authorization_endpoint,
            defaults.0,
        )?;
        let token_endpoint = endpoint("token_endpoint", &config.token_endpoint, defaults.1)?;
        let userinfo_endpoint =
            endpoint("userinfo_endpoint", &config.userinfo_endpoint, defaults.2)?;
        let jwks_default =
            (kind == ProviderKind::Apple).then_some("https://appleid.apple.com/auth/keys");
        let jwks_endpoint = match (&config.jwks_uri, jwks_default) {
            (None, None) => None,
            (given, default) => endpoint("jwks_uri", given, default)?,
        };
        let mut scopes = if config.scopes.is_empty() {
            match kind {
                ProviderKind::Github => vec!["read:user".to_owned(), "user:email".to_owned()],
                ProviderKind::Apple => vec!["name".to_owned(), "email".to_owned()],
                _ => vec![
                    "openid".to_owned(),
                    "email".to_owned(),
                    "profile".to_owned(),
                ],
            }
        } else {
            config.scopes.clone()
        };
        let oidc = issuer
            .clone()
            .filter(|_| discoverable)
            .map(|issuer| Arc::new(Oidc::new(issuer, allow_private)));
        if oidc.is_some() && kind != ProviderKind::Apple && !scopes.iter().any(|s| s == "openid") {
            // An ID token is what identifies the user.
            scopes.insert(0, "openid".to_owned());
        }
        Ok(Self {
            kind,
            client_id: config.client_id.trim().to_owned(),
            client_secret: config.client_secret.clone(),
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            jwks_endpoint,
            apple_key,
            scopes,
            issuer,
            oidc,
        })
    }

    /// Apple's client authentication: a ready-made `client_secret`, or
    /// `team_id` + `key_id` + `private_key` (an EC P-256 PKCS#8 PEM).
    fn apple_key(
        config: &OAuthProviderConfig,
    ) -> std::result::Result<Option<Arc<AppleKey>>, (&'static str, String, &'static str)> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let team_id = given(&config.team_id);
        let key_id = given(&config.key_id);
        let pem = config
            .private_key
            .as_ref()
            .map(|k| k.expose_secret().trim().to_owned())
            .filter(|k| !k.is_empty());
        let has_secret = !config.client_secret.expose_secret().trim().is_empty();
        match (team_id, key_id, pem) {
            (None, None, None) if has_secret => Ok(None),
            (None, None, None) => Err((
                "client_secret",
                String::new(),
                "Apple needs client_secret, or team_id, key_id and private_key",
            )),
            (Some(team_id), Some(key_id), Some(pem)) => {
                if has_secret {
                    return Err((
                        "client_secret",
                        String::new(),
                        "give either client_secret or team_id/key_id/private_key, not both",
                    ));
                }
                let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| {
                    (
                        "private_key",
                        String::new(),
                        "expected the PKCS#8 PEM of an EC P-256 key (Apple's .p8 file)",
                    )
                })?;
                Ok(Some(Arc::new(AppleKey {
                    team_id,
                    key_id,
                    key,
                })))
            }
            (team_id, key_id, _) => {
                let missing = if team_id.is_none() {
                    "team_id"
                } else if key_id.is_none() {
                    "key_id"
                } else {
                    "private_key"
                };
                Err((
                    missing,
                    String::new(),
                    "team_id, key_id and private_key go together",
                ))
            }
        }
    }
}

/// The enabled providers of a config (invalid ones were refused by
/// [`AuthConfig::validate`](crate::AuthConfig::validate)).
pub fn providers(config: &crate::AuthConfig) -> BTreeMap<String, ProviderSpec> {
    config
        .external
        .iter()
        .filter(|(_, c)| c.enabled)
        .filter_map(|(name, c)| {
            ProviderSpec::resolve(name, c, config.external_allow_private_endpoints)
                .ok()
                .map(|spec| (name.clone(), spec))
        })
        .collect()
}

/// Whether `ip` is a public unicast address (not loopback, private,
/// link-local, CGNAT, metadata, documentation, benchmarking, multicast,
/// unspecified or reserved; IPv4-mapped IPv6 judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || (first == 0x0064 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// Resolves provider host names once and keeps only public addresses, so
/// the connection goes to a vetted IP (no DNS rebinding to internal hosts).
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> =
                found.filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{} resolves to no public address", name.as_str()).into();
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client towards providers: no redirects, short timeouts, and —
/// unless `allow_private` — connections only to public addresses.
pub fn http_client(allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent("goforward-auth");
    if !allow_private {
        builder = builder.dns_resolver(std::sync::Arc::new(PublicOnlyResolver));
    }
    builder.build().unwrap_or_default()
}

fn callback_url(state: &AuthState) -> Result<RedirectUrl> {
    RedirectUrl::new(format!("{}/auth/v1/callback", state.external_url))
        .map_err(|e| AuthError::Internal(format!("callback URL: {e}")))
}

/// Starts a sign-in: stores the flow and returns the provider URL.
///
/// # Errors
/// `validation_failed` for an unknown provider, a refused `redirect_to` or
/// a bad client PKCE challenge; database errors.
pub async fn authorize(
    state: &AuthState,
    provider: &str,
    redirect_to: Option<&str>,
    client_challenge: Option<crate::pkce::Challenge>,
    extra_scopes: Option<&str>,
) -> Result<url::Url> {
    let Some(spec) = state.oauth.get(provider) else {
        return Err(AuthError::Validation(
            "Unsupported provider: provider is not enabled".into(),
        ));
    };
    let redirect_to = match redirect_to.map(str::trim).filter(|r| !r.is_empty()) {
        Some(target) if state.redirects.allows(target) => target.to_owned(),
        Some(_) => {
            return Err(AuthError::Validation(
                "redirect_to is not an allowed redirect URL".into(),
            ));
        }
        None => state.redirects.site_url().to_string(),
    };
    let endpoints = spec.endpoints(&state.oauth_http).await?;
    let client = BasicClient::new(ClientId::new(spec.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorization))
        .set_redirect_uri(callback_url(state)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    if spec.oidc.is_some() {
        request = request.add_extra_param("nonce", nonce_for(verifier.secret()));
    }
    for scope in &spec.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let mut requested: Vec<&str> = spec.scopes.iter().map(String::as_str).collect();
    for scope in extra_scopes.unwrap_or_default().split([' ', ',']) {
        let scope = scope.trim();
        if !scope.is_empty() && scope.len() <= 128 && !requested.contains(&scope) {
            request = request.add_scope(Scope::new(scope.to_owned()));
            requested.push(scope);
        }
    }
    if spec.kind == ProviderKind::Apple && requested.iter().any(|s| *s == "name" || *s == "email") {
        // Apple answers these scopes only by form POST to the callback.
        request = request.add_extra_param("response_mode", "form_post");
    }
    let (url, csrf) = request.url();
    let now = Utc::now();
    // Forget abandoned flows.
    oauth_state::Entity::delete_many()
        .filter(
            oauth_state::Column::CreatedAt.lt(now - chrono::Duration::seconds(STATE_LIFETIME_SECS)),
        )
        .exec(&state.db)
        .await?;
    oauth_state::ActiveModel::from(oauth_state::Model {
        id: uuid::Uuid::new_v4().to_string(),
        state_hash: sha256_hex(csrf.secret().as_bytes()),
        provider: provider.to_owned(),
        pkce_verifier: verifier.secret().clone(),
        redirect_to,
        code_challenge: client_challenge.as_ref().map(|c| c.challenge.clone()),
        code_challenge_method: client_challenge.map(|c| c.method),
        created_at: now,
    })
    .insert(&state.db)
    .await?;
    Ok(url)
}

/// Consumes the flow named by `state_param` (single use, even under
/// concurrency).
///
/// # Errors
/// `bad_oauth_state` when unknown, already used or older than 10 minutes.
pub async fn take_flow(state: &AuthState, state_param: Option<&str>) -> Result<oauth_state::Model> {
    let Some(param) = state_param
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return Err(AuthError::BadOAuthState(
            "OAuth callback with missing state".into(),
        ));
    };
    let flow = oauth_state::Entity::find()
        .filter(oauth_state::Column::StateHash.eq(sha256_hex(param.as_bytes())))
        .one(&state.db)
        .await?
        .ok_or_else(|| AuthError::BadOAuthState("OAuth state is invalid or was used".into()))?;
    let taken = oauth_state::Entity::delete_by_id(flow.id.clone())
        .exec(&state.db)
        .await?
        .rows_affected;
    if taken != 1 {
        return Err(AuthError::BadOAuthState(
            "OAuth state is invalid or was used".into(),
        ));
    }
    if flow.created_at + chrono::Duration::seconds(STATE_LIFETIME_SECS) <= Utc::now() {
        return Err(AuthError::BadOAuthState("OAuth state has expired".into()));
    }
    Ok(flow)
}

/// Exchanges the provider's code (with our PKCE verifier) and reads the
/// user's identity; returns it with the provider's tokens. `apple_user` is
/// the `user` form field Apple posts on a first sign-in (its name), already
/// checked by [`apple_user_name`].
///
/// # Errors
/// `bad_oauth_callback` when the provider refuses the code or answers
/// something unusable.
pub async fn identity(
    state: &AuthState,
    flow: &oauth_state::Model,
    code: &str,
    apple_name: Option<&str>,
) -> Result<(ProviderIdentity, ProviderTokens)> {
    let spec = state.oauth.get(&flow.provider).ok_or_else(|| {
        AuthError::Validation("Unsupported provider: provider is not enabled".into())
    })?;
    let endpoints = spec.endpoints(&state.oauth_http).await?;
    let client: ExchangeClient = oauth2::Client::new(ClientId::new(spec.client_id.clone()))
        .set_client_secret(ClientSecret::new(spec.client_secret()?))
        .set_redirect_uri(callback_url(state)?)
        .set_auth_type(match spec.kind {
            ProviderKind::Github | ProviderKind::Apple => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        });
    let client = client.set_token_uri(TokenUrl::from_url(endpoints.token.clone()));
    let http = |request: oauth2::HttpRequest| capped_call(&state.oauth_http, request);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %flow.provider, error = %e, "OAuth code exchange failed");
            AuthError::BadOAuthCallback("Unable to exchange external code".into())
        })?;
    let access = token.access_token().secret();
    let tokens = ProviderTokens {
        access_token: access.clone(),
        refresh_token: token
            .refresh_token()
            .map(|t| t.secret().clone())
            .filter(|t| !t.is_empty()),
    };
    identity_of(state, spec, &endpoints, flow, &token, apple_name)
        .await
        .map(|identity| (identity, tokens))
}

/// The identity behind an exchanged token.
async fn identity_of(
    state: &AuthState,
    spec: &ProviderSpec,
    endpoints: &Endpoints,
    flow: &oauth_state::Model,
    token: &oauth2::StandardTokenResponse<IdTokenFields, oauth2::basic::BasicTokenType>,
    apple_name: Option<&str>,
) -> Result<ProviderIdentity> {
    let access = token.access_token().secret();
    if let Some(oidc) = &spec.oidc {
        let id_token = token
            .extra_fields()
            .id_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AuthError::BadOAuthCallback("The provider returned no ID token".into())
            })?;
        let jwks = endpoints
            .jwks
            .as_ref()
            .ok_or_else(|| provider_error("no JWKS"))?;
        let keys_for = |kid: Option<String>| async move {
            oidc.keys(&state.oauth_http, jwks, kid.as_deref()).await
        };
        let claims = validate_id_token(
            id_token,
            &IdTokenExpectations {
                issuer: oidc.issuer(),
                client_id: &spec.client_id,
                nonce: &nonce_for(&flow.pkce_verifier),
            },
            keys_for,
        )
        .await?;
        let mut info = Value::Object(claims);
        if let Some(name) = apple_name.filter(|_| spec.kind == ProviderKind::Apple) {
            // Apple puts no name in its ID token: the first sign-in's form has it.
            info["name"] = json!(name);
        }
        if info["email"].as_str().is_none()
            && let Some(userinfo) = &endpoints.userinfo
        {
            // OIDC Core 5.3.2: userinfo counts only when its `sub` matches.
            let extra = get_json(state, userinfo, access).await?;
            if extra["sub"] == info["sub"] {
                for key in [
                    "email",
                    "email_verified",
                    "name",
                    "picture",
                    "preferred_username",
                ] {
                    if info[key].is_null() && !extra[key].is_null() {
                        info[key] = extra[key].clone();
                    }
                }
            }
        }
        return identity_from_claims(spec, &info);
    }
    let userinfo_endpoint = endpoints
        .userinfo
        .clone()
        .ok_or_else(|| provider_error("no userinfo endpoint"))?;
    let info = get_json(state, &userinfo_endpoint, access).await?;
    if spec.kind != ProviderKind::Github {
        return identity_from_claims(spec, &info);
    }
    let mut metadata = Map::new();
    let subject = match &info["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    // Only an address GitHub marks verified counts as verified.
    let emails_url = userinfo_endpoint
        .join("user/emails")
        .ok()
        .filter(|_| userinfo_endpoint.path().ends_with("/user"));
    let mut email = None;
    if let Some(url) = emails_url {
        let list = get_json(state, &url, access).await.unwrap_or(Value::Null);
        email = list.as_array().and_then(|all| {
            all.iter()
                .find(|e| e["primary"] == true && e["verified"] == true)
                .and_then(|e| e["email"].as_str().map(str::to_owned))
        });
    }
    for (from, to) in [
        ("login", "user_name"),
        ("name", "full_name"),
        ("avatar_url", "avatar_url"),
    ] {
        if let Some(v) = info[from].as_str() {
            metadata.insert(to.into(), json!(v));
        }
    }
    let verified = email.is_some();
    finish_identity(spec, subject, email, verified, metadata)
}

/// Checks the `user` field Apple posts on a first sign-in
/// (`{"name":{"firstName":…,"lastName":…},"email":…}`) and returns the
/// full name it carries, if any.
///
/// # Errors
/// `bad_oauth_callback` when it is not such a JSON object.
pub fn apple_user_name(raw: &str) -> Result<Option<String>> {
    let bad = || AuthError::BadOAuthCallback("Invalid user data in the OAuth callback".into());
    if raw.len() > 4096 {
        return Err(bad());
    }
    let value: Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let Value::Object(fields) = &value else {
        return Err(bad());
    };
    let name = match fields.get("name") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(name)) => name,
        Some(_) => return Err(bad()),
    };
    let mut parts = Vec::new();
    for key in ["firstName", "lastName"] {
        match name.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(part)) => {
                let part = part.trim();
                if part.chars().any(char::is_control) || part.len() > 256 {
                    return Err(bad());
                }
                if !part.is_empty() {
                    parts.push(part.to_owned());
                }
            }
            Some(_) => return Err(bad()),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join(" ")))
}

/// The identity in OIDC claims (a validated ID token, or userinfo).
fn identity_from_claims(spec: &ProviderSpec, info: &Value) -> Result<ProviderIdentity> {
    let mut metadata = Map::new();
    let subject = info["sub"].as_str().unwrap_or_default().to_owned();
    let verified = match &info["email_verified"] {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    };
    for (from, to) in [
        ("name", "full_name"),
        ("name", "name"),
        ("picture", "avatar_url"),
        ("preferred_username", "user_name"),
    ] {
        if let Some(v) = info[from].as_str() {
            metadata.insert(to.into(), json!(v));
        }
    }
    let email = info["email"].as_str().map(str::to_owned);
    finish_identity(spec, subject, email, verified, metadata)
}

fn finish_identity(
    spec: &ProviderSpec,
    subject: String,
    email: Option<String>,
    verified: bool,
    mut metadata: Map<String, Value>,
) -> Result<ProviderIdentity> {
    if subject.is_empty() || subject.len() > 255 {
        return Err(AuthError::BadOAuthCallback(
            "The provider returned no user id".into(),
        ));
    }
    metadata.insert("provider_id".into(), json!(subject));
    if let Some(iss) = &spec.issuer {
        metadata.insert("iss".into(), json!(iss));
    }
    Ok(ProviderIdentity {
        subject,
        email,
        email_verified: verified,
        user_metadata: metadata,
        app_metadata: Map::new(),
    })
}

/// The `nonce` sent to an OIDC provider for a flow: derived from the flow's
/// secret PKCE verifier (stored server-side only), so it is unguessable,
/// unique per flow and needs no extra column.
pub fn nonce_for(pkce_verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"goforward-oidc-nonce:")
        .chain_update(pkce_verifier.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The token response, with the ID token of OIDC providers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IdTokenFields {
    /// The ID token (a JWT), when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

type ExchangeClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::StandardTokenResponse<IdTokenFields, oauth2::basic::BasicTokenType>,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
>;

/// What an ID token must say.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenExpectations<'a> {
    /// `iss`.
    pub issuer: &'a str,
    /// `aud` (and `azp` when present).
    pub client_id: &'a str,
    /// `nonce`.
    pub nonce: &'a str,
}

/// Validates an ID token: RS256 or ES256 signature by a key of the set
/// `keys_for(kid)` returns, `iss`, `aud`, `azp`, `exp` (60 s leeway), `sub`
/// and `nonce`. Returns its claims.
///
/// # Errors
/// `bad_oauth_callback` naming what failed; the key set's own errors.
pub async fn validate_id_token<F, Fut>(
    token: &str,
    expect: &IdTokenExpectations<'_>,
    keys_for: F,
) -> Result<Map<String, Value>>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Arc<JwkSet>>>,
{
    use jsonwebtoken::errors::ErrorKind;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let refused = |why: &str| AuthError::BadOAuthCallback(format!("Invalid ID token: {why}"));
    if token.len() > 64 * 1024 {
        return Err(refused("too large"));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed"))?;
    let (family_ok, key_alg): (fn(&AlgorithmParameters) -> bool, KeyAlgorithm) = match header.alg {
        Algorithm::RS256 => (
            |p| matches!(p, AlgorithmParameters::RSA(_)),
            KeyAlgorithm::RS256,
        ),
        Algorithm::ES256 => (
            |p| matches!(p, AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256),
            KeyAlgorithm::ES256,
        ),
        _ => return Err(refused("unsupported signing algorithm")),
    };
    let keys = keys_for(header.kid.clone()).await?;
    let candidates: Vec<_> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter(|k| family_ok(&k.algorithm))
        .filter(|k| k.common.key_algorithm.is_none_or(|a| a == key_alg))
        .filter(|k| {
            !matches!(
                k.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            )
        })
        .take(8)
        .collect();
    if candidates.is_empty() {
        return Err(refused("no matching key"));
    }
    let mut validation = Validation::new(header.alg);
    let mut issuers = vec![expect.issuer.to_owned()];
    if expect.issuer == GOOGLE_ISSUER {
        issuers.push("accounts.google.com".to_owned());
    }
    validation.set_issuer(&issuers);
    validation.set_audience(&[expect.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 60;
    let mut last = refused("signature does not verify");
    let mut claims = None;
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => {
                last = match e.kind() {
                    ErrorKind::InvalidSignature => refused("signature does not verify"),
                    ErrorKind::ExpiredSignature => refused("expired"),
                    ErrorKind::ImmatureSignature => refused("not valid yet"),
                    ErrorKind::InvalidAudience => refused("audience is not this client"),
                    ErrorKind::InvalidIssuer => refused("issuer does not match"),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        refused(&format!("missing claim {claim}"))
                    }
                    _ => refused("malformed"),
                };
                // Claim errors are the same with any key: stop there.
                if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                    return Err(last);
                }
            }
        }
    }
    let Some(claims) = claims else {
        return Err(last);
    };
    // A token for several audiences must name us as the authorized party.
    let many_audiences = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp != expect.client_id => {
            return Err(refused("authorized party is not this client"));
        }
        None if many_audiences => return Err(refused("authorized party missing")),
        _ => {}
    }
    let nonce_ok = claims
        .get("nonce")
        .and_then(Value::as_str)
        .is_some_and(|n| crate::crypto::ct_eq(n, expect.nonce));
    if !nonce_ok {
        return Err(refused("nonce does not match"));
    }
    Ok(claims)
}

/// Performs one oauth2 request through the guarded client, reading at most
/// [`MAX_PROVIDER_RESPONSE`] bytes of the answer.
async fn capped_call(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> std::result::Result<oauth2::HttpResponse, FetchError> {
    let request = reqwest::Request::try_from(request).map_err(|_| FetchError("request"))?;
    let res = http
        .execute(request)
        .await
        .map_err(|_| FetchError("send"))?;
    let mut builder = oauth2::http::Response::builder().status(res.status().as_u16());
    for (name, value) in res.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let body = read_capped(res).await.map_err(FetchError)?;
    builder.body(body).map_err(|_| FetchError("response"))
}

/// Why a provider request failed (logged, never shown).
#[derive(Debug, thiserror::Error)]
#[error("provider request failed: {0}")]
struct FetchError(&'static str);

/// Reads a body chunk by chunk, refusing more than [`MAX_PROVIDER_RESPONSE`].
async fn read_capped(mut res: reqwest::Response) -> std::result::Result<Vec<u8>, &'static str> {
    if res
        .content_length()
        .is_some_and(|n| n > MAX_PROVIDER_RESPONSE as u64)
    {
        return Err("too large");
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|_| "body")? {
        if body.len() + chunk.len() > MAX_PROVIDER_RESPONSE {
            return Err("too large");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs `url` (optionally with a bearer) and returns the capped body of a
/// successful answer.
async fn fetch(
    http: &reqwest::Client,
    url: &url::Url,
    bearer: Option<&str>,
) -> std::result::Result<Vec<u8>, &'static str> {
    let mut req = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.map_err(|_| "send")?;
    if !res.status().is_success() {
        return Err("status");
    }
    read_capped(res).await
}

async fn get_json(state: &AuthState, url: &url::Url, access: &str) -> Result<Value> {
    let failed = |what: &str| {
        tracing::warn!(url = %url, what, "OAuth userinfo request failed");
        AuthError::BadOAuthCallback("Error getting user profile from external provider".into())
    };
    let bytes = fetch(&state.oauth_http, url, Some(access))
        .await
        .map_err(failed)?;
    serde_json::from_slice(&bytes).map_err(|_| failed("json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn apple_user_field() {
        let full = r#"{"name":{"firstName":" Ada ","lastName":"Lovelace"},"email":"a@b.co"}"#;
        assert_eq!(
            apple_user_name(full).unwrap().as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            apple_user_name(r#"{"name":{"firstName":"Ada"}}"#)
                .unwrap()
                .as_deref(),
            Some("Ada")
        );
        assert_eq!(apple_user_name(r#"{"email":"a@b.co"}"#).unwrap(), None);
        assert_eq!(apple_user_name(r#"{"name":{}}"#).unwrap(), None);
        for bad in [
            "",
            "{",
            "[]",
            r#"{"name":"Ada"}"#,
            r#"{"name":{"firstName":1}}"#,
            "{\"name\":{\"firstName\":\"A\\u0000\"}}",
        ] {
            assert!(apple_user_name(bad).is_err(), "{bad}");
        }
        assert!(apple_user_name(&format!("{{\"pad\":\"{}\"}}", "x".repeat(5000))).is_err());
    }

    #[test]
    fn apple_client_secret_is_a_short_lived_es256_jwt() {
        let pem = include_str!("../tests/support/oidc_ec.p8.pem");
        let config = OAuthProviderConfig {
            kind: Some("apple".into()),
            client_id: "com.example.web".into(),
            client_secret: String::new().into(),
            team_id: Some("TEAM".into()),
            key_id: Some("KID".into()),
            private_key: Some(pem.to_owned().into()),
            jwks_uri: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            issuer: None,
            scopes: Vec::new(),
            enabled: true,
        };
        let spec = ProviderSpec::resolve("apple", &config, false).unwrap();
        assert_eq!(spec.kind, ProviderKind::Apple);
        assert_eq!(spec.scopes, ["name", "email"]);
        assert_eq!(
            spec.jwks_endpoint.as_ref().unwrap().as_str(),
            "https://appleid.apple.com/auth/keys"
        );
        let secret = spec.client_secret().unwrap();
        let header = jsonwebtoken::decode_header(&secret).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KID"));
        use base64::Engine;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(secret.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "TEAM");
        assert_eq!(claims["sub"], "com.example.web");
        assert_eq!(claims["aud"], APPLE_AUDIENCE);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            APPLE_SECRET_LIFETIME_SECS
        );
    }

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn the_client_refuses_names_resolving_to_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // `localhost.` passes a naive name check but resolves to loopback.
        let err = http_client(false)
            .get(format!("http://localhost.:{port}/userinfo"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect() || err.is_request(), "{err:?}");
        // The test flag lets it through (the listener accepts the connection).
        let accept = tokio::spawn(async move { listener.accept().await.is_ok() });
        let _ = http_client(true)
            .get(format!("http://127.0.0.1:{port}/userinfo"))
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(accept.await.unwrap());
    }
}
