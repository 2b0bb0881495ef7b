//! OAuth2 / OIDC sign-in (the `oauth2` crate): `/authorize` redirects to
//! the provider with PKCE S256 and a random `state` (stored hashed, single
//! use, ≤ 10 minutes); `/callback` exchanges the code, reads the userinfo
//! endpoint and maps `(provider, subject)` to a user. Google and GitHub are
//! built in; any other provider is generic OIDC with explicit endpoints.
//!
//! Provider endpoints are fixed by configuration and checked once (SSRF
//! guard): `https` only, no userinfo, no IP literal or `localhost` unless
//! `external_allow_private_endpoints` is set (tests, local identity
//! providers); host names are resolved once and only public addresses are
//! connected to (no DNS rebinding); the HTTP client follows no redirects,
//! times out and reads at most 1 MiB of userinfo.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
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
}

/// A validated provider, ready to use.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Dialect.
    pub kind: ProviderKind,
    /// Client id.
    pub client_id: String,
    client_secret: SecretString,
    /// Authorization endpoint.
    pub authorization_endpoint: url::Url,
    /// Token endpoint.
    pub token_endpoint: url::Url,
    /// Userinfo endpoint.
    pub userinfo_endpoint: url::Url,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Issuer (recorded as `iss` in the identity data).
    pub issuer: Option<String>,
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
            _ => "oidc",
        }) {
            "google" => ProviderKind::Google,
            "github" => ProviderKind::Github,
            "oidc" => ProviderKind::Oidc,
            other => return fail("kind", other, "expected google, github or oidc"),
        };
        if config.client_id.trim().is_empty() {
            return fail("client_id", "", "must not be empty");
        }
        let defaults = match kind {
            ProviderKind::Google => (
                Some("https://accounts.google.com/o/oauth2/v2/auth"),
                Some("https://oauth2.googleapis.com/token"),
                Some("https://openidconnect.googleapis.com/v1/userinfo"),
            ),
            ProviderKind::Github => (
                Some("https://github.com/login/oauth/authorize"),
                Some("https://github.com/login/oauth/access_token"),
                Some("https://api.github.com/user"),
            ),
            ProviderKind::Oidc => (None, None, None),
        };
        let endpoint = |key: &str, given: &Option<String>, default: Option<&str>| {
            let Some(text) = given.as_deref().or(default) else {
                return Err((
                    key.to_owned(),
                    String::new(),
                    "is required for a generic OIDC provider".to_owned(),
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
            Ok(parsed)
        };
        let authorization_endpoint = endpoint(
            "authorization_endpoint",
            &config.authorization_endpoint,
            defaults.0,
        )?;
        let token_endpoint = endpoint("token_endpoint", &config.token_endpoint, defaults.1)?;
        let userinfo_endpoint =
            endpoint("userinfo_endpoint", &config.userinfo_endpoint, defaults.2)?;
        let scopes = if config.scopes.is_empty() {
            match kind {
                ProviderKind::Github => vec!["read:user".to_owned(), "user:email".to_owned()],
                _ => vec![
                    "openid".to_owned(),
                    "email".to_owned(),
                    "profile".to_owned(),
                ],
            }
        } else {
            config.scopes.clone()
        };
        Ok(Self {
            kind,
            client_id: config.client_id.trim().to_owned(),
            client_secret: config.client_secret.clone(),
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            scopes,
            issuer: config.issuer.clone(),
        })
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
    let client = BasicClient::new(ClientId::new(spec.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(spec.authorization_endpoint.clone()))
        .set_redirect_uri(callback_url(state)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in &spec.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    for scope in extra_scopes.unwrap_or_default().split([' ', ',']) {
        let scope = scope.trim();
        if !scope.is_empty() && scope.len() <= 128 && !spec.scopes.iter().any(|s| s == scope) {
            request = request.add_scope(Scope::new(scope.to_owned()));
        }
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
/// user's identity.
///
/// # Errors
/// `bad_oauth_callback` when the provider refuses the code or answers
/// something unusable.
pub async fn identity(
    state: &AuthState,
    flow: &oauth_state::Model,
    code: &str,
) -> Result<ProviderIdentity> {
    let spec = state.oauth.get(&flow.provider).ok_or_else(|| {
        AuthError::Validation("Unsupported provider: provider is not enabled".into())
    })?;
    let mut client = BasicClient::new(ClientId::new(spec.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            spec.client_secret.expose_secret().to_owned(),
        ))
        .set_token_uri(TokenUrl::from_url(spec.token_endpoint.clone()))
        .set_redirect_uri(callback_url(state)?);
    if spec.kind == ProviderKind::Github {
        client = client.set_auth_type(AuthType::RequestBody);
    }
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
        .request_async(&state.oauth_http)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %flow.provider, error = %e, "OAuth code exchange failed");
            AuthError::BadOAuthCallback("Unable to exchange external code".into())
        })?;
    let access = token.access_token().secret();
    let info = get_json(state, &spec.userinfo_endpoint, access).await?;
    let mut metadata = Map::new();
    let (subject, email, verified) = match spec.kind {
        ProviderKind::Github => {
            let subject = match &info["id"] {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => String::new(),
            };
            // Only an address GitHub marks verified counts as verified.
            let emails_url = spec
                .userinfo_endpoint
                .join("user/emails")
                .ok()
                .filter(|_| spec.userinfo_endpoint.path().ends_with("/user"));
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
            (subject, email, verified)
        }
        ProviderKind::Google | ProviderKind::Oidc => {
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
            (subject, email, verified)
        }
    };
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

async fn get_json(state: &AuthState, url: &url::Url, access: &str) -> Result<Value> {
    let failed = |what: &str| {
        tracing::warn!(url = %url, what, "OAuth userinfo request failed");
        AuthError::BadOAuthCallback("Error getting user profile from external provider".into())
    };
    let res = state
        .oauth_http
        .get(url.clone())
        .bearer_auth(access)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|_| failed("send"))?;
    if !res.status().is_success() {
        return Err(failed("status"));
    }
    if res.content_length().is_some_and(|n| n > 1 << 20) {
        return Err(failed("too large"));
    }
    let bytes = res.bytes().await.map_err(|_| failed("body"))?;
    if bytes.len() > 1 << 20 {
        return Err(failed("too large"));
    }
    serde_json::from_slice(&bytes).map_err(|_| failed("json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
