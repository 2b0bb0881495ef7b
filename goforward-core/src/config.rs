//! Typed configuration. Loaded at the edge (the facade's `Config::load`, the
//! CLI) from defaults < `goforward.toml|yaml` < `GOFORWARD_*` environment;
//! library crates only ever receive this typed value.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole GoForward configuration.
///
/// Core sections are typed; every other top-level section (e.g. `[auth]`,
/// `[storage]`) is kept as JSON in [`Config::sections`] and read by the plugin
/// of the same name with [`Config::section`]. A section no plugin claims is
/// refused at `build()`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Database settings.
    pub database: DatabaseConfig,
    /// Directory for the SQLite file, the generated JWT secret, local files and outboxes.
    pub data_dir: PathBuf,
    /// Token verification settings.
    pub jwt: JwtConfig,
    /// Redis (multi-node event bus); optional.
    pub redis: RedisConfig,
    /// Public URL of the site (redirect target for email links).
    pub site_url: String,
    /// `tracing` filter directive, e.g. `info,goforward=debug`.
    pub log: String,
    /// Plugin sections, by plugin name.
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            data_dir: PathBuf::from("./goforward_data"),
            jwt: JwtConfig::default(),
            redis: RedisConfig::default(),
            site_url: "http://localhost:3000".to_owned(),
            log: "info".to_owned(),
            sections: BTreeMap::new(),
        }
    }
}

/// HTTP server and plumbing settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address, `host:port` (default `127.0.0.1:8080`).
    pub addr: String,
    /// Maximum JSON body size in bytes (default 2 MiB).
    pub json_limit: usize,
    /// Refuse requests with neither `apikey` nor bearer token (Supabase gateway behaviour).
    pub require_apikey: bool,
    /// CORS settings.
    pub cors: CorsConfig,
    /// Default rate limit.
    pub rate_limit: RateLimitConfig,
    /// Proxies whose `X-Forwarded-For` is trusted for the client IP.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".to_owned(),
            json_limit: 2 * 1024 * 1024,
            require_apikey: true,
            cors: CorsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            trusted_proxies: Vec::new(),
            shutdown_timeout_secs: 10,
        }
    }
}

impl ServerConfig {
    /// The listen address as a string usable with `HttpServer::bind`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// CORS settings (actix-cors).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins; `["*"]` allows any origin (without credentials).
    pub allowed_origins: Vec<String>,
    /// Preflight cache seconds.
    pub max_age_secs: usize,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: vec!["*".to_owned()],
            max_age_secs: 3600,
        }
    }
}

/// Token-bucket rate limit keyed by principal (user id) or client IP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Whether the default limiter is on.
    pub enabled: bool,
    /// Sustained requests per second per key.
    pub per_second: u32,
    /// Burst size per key.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_second: 100,
            burst: 200,
        }
    }
}

/// Database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:…` or `postgres://…`; default a SQLite file in the data dir.
    pub url: Option<String>,
    /// Pool maximum.
    pub max_connections: u32,
    /// Pool minimum.
    pub min_connections: u32,
    /// Pool acquire timeout (ms): past it, requests get a fast 503.
    pub acquire_timeout_ms: u64,
    /// Connect timeout (ms).
    pub connect_timeout_ms: u64,
    /// Statement timeout (ms, PostgreSQL); 0 disables.
    pub statement_timeout_ms: u64,
    /// Apply pending migrations in `build()`.
    pub auto_migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            min_connections: 1,
            acquire_timeout_ms: 3000,
            connect_timeout_ms: 5000,
            statement_timeout_ms: 30_000,
            auto_migrate: true,
        }
    }
}

/// Token settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 secret (≥ 32 bytes). Without one, a secret is generated once
    /// and persisted as `<data_dir>/jwt_secret`.
    #[serde(serialize_with = "serialize_redacted")]
    pub secret: Option<SecretString>,
    /// Key id written into the header of tokens signed with `secret`, so
    /// the secret can be rotated: set a new `secret` and `kid`, move the old
    /// pair to `previous_secrets`, and tokens issued before keep verifying
    /// until they expire.
    pub kid: Option<String>,
    /// Earlier HS256 secrets still accepted for verification (never used to sign).
    pub previous_secrets: Vec<PreviousSecretConfig>,
    /// Additional asymmetric verification keys.
    pub public_keys: Vec<PublicKeyConfig>,
    /// Accepted `aud` values; empty = `aud` not checked.
    pub audience: Vec<String>,
    /// Accepted `iss` values; empty = `iss` not checked.
    pub issuer: Vec<String>,
    /// Clock leeway in seconds.
    pub leeway_secs: u64,
    /// Verified tokens remembered until they expire, so repeated requests
    /// with the same token skip the signature check; `0` disables.
    pub cache_capacity: usize,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: None,
            kid: None,
            previous_secrets: Vec::new(),
            public_keys: Vec::new(),
            audience: Vec::new(),
            issuer: Vec::new(),
            leeway_secs: 30,
            cache_capacity: crate::token::DEFAULT_TOKEN_CACHE_CAPACITY,
        }
    }
}

/// A retired HS256 secret, accepted for verification during a rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecretConfig {
    /// The `kid` tokens signed with this secret carry, if they carry one.
    pub kid: Option<String>,
    /// The secret (≥ 32 bytes).
    #[serde(serialize_with = "serialize_redacted_required")]
    pub secret: SecretString,
}

/// One asymmetric public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// Key id matched against the token header's `kid`.
    pub kid: Option<String>,
    /// `RS256` or `ES256`.
    pub alg: crate::token::KeyAlgorithm,
    /// The PEM text of the public key.
    pub pem: String,
}

/// Redis settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port`; unset = single node, in-process bus.
    pub url: Option<String>,
    /// Pub/sub channel name shared by the nodes of one app.
    pub channel: Option<String>,
}

/// A copy of a config section fit for an error message: the values of
/// keys that name a secret (password, secret, token, key, credentials…)
/// are replaced, at any depth.
fn redacted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "key", "credential", "dsn"];
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(name, inner)| {
                    let lower = name.to_ascii_lowercase();
                    let shown = if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                        Value::String("<redacted>".into())
                    } else {
                        redacted(inner)
                    };
                    (name.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// Minimum length of the HS256 secret in bytes.
pub const MIN_SECRET_LEN: usize = 32;

impl Config {
    /// Checks every value and fills derived defaults (database URL from the
    /// data dir). Errors name the key, the value and what is allowed.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid value.
    pub fn validate(&mut self) -> Result<()> {
        let addr = &self.server.addr;
        if addr.parse::<SocketAddr>().is_err() {
            let problem = match addr.rsplit_once(':') {
                Some((_, port)) if port.parse::<u16>().is_err() => {
                    "port must be a number from 0 to 65535"
                }
                Some(_) => "expected host:port with an IP address, e.g. 127.0.0.1:8080",
                None => "expected host:port, e.g. 127.0.0.1:8080",
            };
            return Err(Error::config("server.addr", addr.clone(), problem));
        }
        if self.server.json_limit == 0 || self.server.json_limit > 64 * 1024 * 1024 {
            return Err(Error::config(
                "server.json_limit",
                self.server.json_limit.to_string(),
                "must be between 1 byte and 64 MiB",
            ));
        }
        if self.server.rate_limit.enabled
            && (self.server.rate_limit.per_second == 0 || self.server.rate_limit.burst == 0)
        {
            return Err(Error::config(
                "server.rate_limit",
                format!("{:?}", self.server.rate_limit),
                "per_second and burst must be at least 1 when enabled",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::config("data_dir", "", "must not be empty"));
        }
        let url = match self.database.url.take() {
            Some(url) if !url.trim().is_empty() => url,
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("goforward.db").display()
            ),
        };
        crate::db::Backend::from_url(&url)?;
        self.database.url = Some(url);
        if self.database.max_connections == 0 {
            return Err(Error::config(
                "database.max_connections",
                "0",
                "must be at least 1",
            ));
        }
        if let Some(secret) = &self.jwt.secret
            && secret.expose_secret().len() < MIN_SECRET_LEN
        {
            return Err(Error::config(
                "jwt.secret",
                "<redacted>",
                format!("must be at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        self.validate_jwt_keys()?;
        if let Some(url) = &self.redis.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(Error::config(
                "redis.url",
                crate::db::redact_url(url),
                "expected redis:// or rediss://",
            ));
        }
        if url::Url::parse(&self.site_url).is_err() {
            return Err(Error::config(
                "site_url",
                self.site_url.clone(),
                "expected an absolute URL, e.g. http://localhost:3000",
            ));
        }
        Ok(())
    }

    /// Reads the plugin section `name` into `T` (`T::default()` when absent).
    ///
    /// # Errors
    /// [`Error::Config`] naming the section when it does not match `T`.
    pub fn section<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        match self.sections.get(name) {
            None => Ok(T::default()),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| Error::config(name, redacted(value).to_string(), e.to_string())),
        }
    }

    /// The resolved database URL (after [`Config::validate`]).
    pub fn database_url(&self) -> &str {
        self.database.url.as_deref().unwrap_or_default()
    }

    /// Rotation keys: every secret long enough, every `kid` well-formed and
    /// unique across the HS256 secrets and the public keys.
    fn validate_jwt_keys(&self) -> Result<()> {
        for (i, previous) in self.jwt.previous_secrets.iter().enumerate() {
            if previous.secret.expose_secret().len() < MIN_SECRET_LEN {
                return Err(Error::config(
                    format!("jwt.previous_secrets[{i}].secret"),
                    "<redacted>",
                    format!("must be at least {MIN_SECRET_LEN} bytes"),
                ));
            }
        }
        let kids = std::iter::once(("jwt.kid".to_owned(), self.jwt.kid.as_ref()))
            .chain(
                self.jwt
                    .previous_secrets
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("jwt.previous_secrets[{i}].kid"), k.kid.as_ref())),
            )
            .chain(
                self.jwt
                    .public_keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("jwt.public_keys[{i}].kid"), k.kid.as_ref())),
            );
        let mut seen = std::collections::HashSet::new();
        for (key, kid) in kids {
            let Some(kid) = kid else { continue };
            let well_formed =
                !kid.is_empty() && kid.len() <= 128 && kid.chars().all(|c| c.is_ascii_graphic());
            if !well_formed {
                return Err(Error::config(
                    key,
                    kid.clone(),
                    "1 to 128 printable ASCII characters without spaces",
                ));
            }
            if !seen.insert(kid.as_str()) {
                return Err(Error::config(
                    key,
                    kid.clone(),
                    "must be unique among the JWT keys",
                ));
            }
        }
        Ok(())
    }

    /// The signer for issued tokens: the resolved secret (see
    /// [`Config::resolve_jwt_secret`]) with `jwt.kid` in every header.
    ///
    /// # Errors
    /// As [`Config::resolve_jwt_secret`].
    pub fn token_signer(&mut self) -> Result<crate::token::TokenSigner> {
        let secret = self.resolve_jwt_secret()?;
        let signer = crate::token::TokenSigner::hs256(secret.expose_secret().as_bytes());
        Ok(match &self.jwt.kid {
            Some(kid) => signer.with_kid(kid.clone()),
            None => signer,
        })
    }

    /// Resolves the JWT secret: the configured one, or the one persisted in
    /// the data dir, or a new random one written there (with a warning).
    ///
    /// # Errors
    /// [`Error::Io`] when the data dir cannot be read or written.
    pub fn resolve_jwt_secret(&mut self) -> Result<SecretString> {
        if let Some(secret) = &self.jwt.secret {
            return Ok(secret.clone());
        }
        let path = self.data_dir.join("jwt_secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= MIN_SECRET_LEN => text.trim().to_owned(),
            Ok(_) => {
                return Err(Error::config(
                    "jwt.secret",
                    path.display().to_string(),
                    format!("persisted secret is shorter than {MIN_SECRET_LEN} bytes"),
                ));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)?;
                let secret = random_secret();
                write_private(&path, &secret)?;
                tracing::warn!(
                    path = %path.display(),
                    "no GOFORWARD_JWT_SECRET set: generated a random secret and saved it; set one explicitly in production"
                );
                secret
            }
            Err(err) => return Err(err.into()),
        };
        let secret = SecretString::from(secret);
        self.jwt.secret = Some(secret.clone());
        Ok(secret)
    }
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 48] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &std::path::Path, content: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn serialize_redacted_required<S: serde::Serializer>(
    _secret: &SecretString,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str("<redacted>")
}

fn serialize_redacted<S: serde::Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Smtp {
        host: String,
        password: String,
    }

    #[test]
    fn a_bad_section_is_named_without_its_secrets() {
        let mut config = Config::default();
        config.sections.insert(
            "mail".into(),
            serde_json::json!({
                "host": "smtp.example.com", "password": "smtpsecret", "tyop": 1,
                "nested": [{"api_key": "k-123", "smtp_password": "p2"}],
            }),
        );
        let err = config.section::<Smtp>("mail").unwrap_err().to_string();
        assert!(err.contains("`mail`") && err.contains("tyop"), "{err}");
        assert!(err.contains("smtp.example.com"), "{err}");
        for secret in ["smtpsecret", "k-123", "p2"] {
            assert!(!err.contains(secret), "{secret} leaked: {err}");
        }
    }
}
