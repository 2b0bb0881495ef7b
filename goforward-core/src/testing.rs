//! Test harness (feature `testing`): a real GoForward on an ephemeral port,
//! against SQLite in memory — or a fresh PostgreSQL database per test when
//! `GOFORWARD_TEST_DATABASE_URL` is set — plus token minting.
//!
//! ```no_run
//! use goforward_core::testing::TestApp;
//!
//! # async fn t() -> goforward_core::Result<()> {
//! let app = TestApp::builder().start().await?;
//! let res = app.client().get(app.url("/health/ready")).send().await.expect("request");
//! assert_eq!(res.status(), 200);
//! app.stop().await; // drops the PostgreSQL test database; kept when a test fails before this
//! # Ok(()) }
//! ```

use std::{net::TcpListener, sync::Arc};

use actix_web::{App, HttpServer, dev::ServerHandle, web::ServiceConfig};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::access::AccessControl;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plugin::Plugin;
use crate::token::TokenSigner;
use crate::{GoForward, GoForwardBuilder};

/// The environment variable naming an admin PostgreSQL URL for tests.
pub const TEST_DATABASE_URL_VAR: &str = "GOFORWARD_TEST_DATABASE_URL";
/// The environment variable naming a Redis URL for tests.
pub const TEST_REDIS_URL_VAR: &str = "GOFORWARD_TEST_REDIS_URL";

type ExtraRoutes = Arc<dyn Fn(&mut ServiceConfig) + Send + Sync>;

/// Configures a [`TestApp`].
pub struct TestAppBuilder {
    config: Config,
    plugins: Vec<Box<dyn FnOnce(GoForwardBuilder) -> GoForwardBuilder>>,
    access: Option<Box<dyn FnOnce(GoForwardBuilder) -> GoForwardBuilder>>,
    extra_routes: Option<ExtraRoutes>,
    postgres: Option<bool>,
}

impl std::fmt::Debug for TestAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAppBuilder").finish_non_exhaustive()
    }
}

/// A running test server; stop it with [`TestApp::stop`].
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The app under test.
    pub gf: GoForward,
    server: ServerHandle,
    signer: TokenSigner,
    client: reqwest::Client,
    pg_cleanup: Option<(String, String)>,
    _data_dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// The JWT secret every test app uses.
pub const TEST_JWT_SECRET: &str = "goforward-test-secret-0123456789abcdef0123456789";

/// Whether CI demands every service (`CI=true`): then a missing service fails the test.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The PostgreSQL admin URL for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL_VAR)
        .ok()
        .filter(|s| !s.is_empty())
}

/// The Redis URL for tests; `None` means "skip" (and panics under CI).
///
/// # Panics
/// When `CI=true` and the variable is unset: in CI a missing service is a failure.
#[allow(clippy::panic)]
pub fn redis_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(TEST_REDIS_URL_VAR)
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(url) => Some(url),
        None if ci() => panic!("{test}: {TEST_REDIS_URL_VAR} must be set in CI"),
        None => {
            eprintln!("skipped {test}: {TEST_REDIS_URL_VAR} not set");
            None
        }
    }
}

/// The PostgreSQL URL for tests; `None` means "skip" (and panics under CI).
///
/// # Panics
/// When `CI=true` and the variable is unset.
#[allow(clippy::panic)]
pub fn postgres_url_or_skip(test: &str) -> Option<String> {
    match postgres_url() {
        Some(url) => Some(url),
        None if ci() => panic!("{test}: {TEST_DATABASE_URL_VAR} must be set in CI"),
        None => {
            eprintln!("skipped {test}: {TEST_DATABASE_URL_VAR} not set");
            None
        }
    }
}

/// A fresh PostgreSQL database: `(url of the new database, admin url, name)`.
///
/// # Errors
/// When the admin server is unreachable or the database cannot be created.
pub async fn create_postgres_database(admin_url: &str) -> Result<(String, String)> {
    let name = format!("gf_test_{}", uuid::Uuid::new_v4().simple());
    let admin = crate::db::connect_url(admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .map_err(Error::from_db)?;
    admin.close().await.map_err(Error::from_db)?;
    let mut url = url::Url::parse(admin_url).map_err(|e| Error::Internal(e.to_string()))?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), name))
}

/// Drops a database made by [`create_postgres_database`].
///
/// # Errors
/// When the admin server is unreachable or the drop fails.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    let admin = crate::db::connect_url(admin_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map_err(Error::from_db)?;
    admin.close().await.map_err(Error::from_db)
}

impl TestApp {
    /// Starts configuring a test app.
    pub fn builder() -> TestAppBuilder {
        let mut config = Config::default();
        config.jwt.secret = Some(SecretString::from(TEST_JWT_SECRET));
        config.server.rate_limit.enabled = false;
        TestAppBuilder {
            config,
            plugins: Vec::new(),
            access: None,
            extra_routes: None,
            postgres: None,
        }
    }

    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A reqwest client (no redirects followed).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The signer (test secret).
    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// An anon API key.
    ///
    /// # Panics
    /// Never in practice: signing with an HMAC secret cannot fail.
    pub fn anon_key(&self) -> String {
        self.signer.api_key("anon", 3600).unwrap_or_default()
    }

    /// A service_role API key.
    pub fn service_key(&self) -> String {
        self.signer
            .api_key("service_role", 3600)
            .unwrap_or_default()
    }

    /// An access token for user `user_id` (role `authenticated`, aal1, one hour).
    pub fn user_token(&self, user_id: &str) -> String {
        self.token(json!({ "sub": user_id, "role": "authenticated", "aud": "authenticated", "aal": "aal1" }))
    }

    /// Signs `claims`, adding `iat`, `exp` (one hour) and a `session_id` when missing.
    pub fn token(&self, mut claims: Value) -> String {
        let now = chrono::Utc::now().timestamp();
        if let Some(map) = claims.as_object_mut() {
            map.entry("iat").or_insert(json!(now));
            map.entry("exp").or_insert(json!(now + 3600));
            map.entry("session_id")
                .or_insert(json!(uuid::Uuid::new_v4().to_string()));
        }
        self.signer.sign(&claims).unwrap_or_default()
    }

    /// The app's database connection.
    pub fn db(&self) -> &DatabaseConnection {
        self.gf.context().db()
    }

    /// Stops the server and the app, and drops the PostgreSQL test database.
    pub async fn stop(self) {
        self.server.stop(true).await;
        self.gf.shutdown().await;
        let _ = self.gf.context().db().close_by_ref().await;
        if let Some((admin, name)) = &self.pg_cleanup
            && let Err(err) = drop_postgres_database(admin, name).await
        {
            eprintln!("could not drop test database {name}: {err}");
        }
    }
}

impl TestAppBuilder {
    /// Adds a plugin.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Box::new(move |b| b.plugin(plugin)));
        self
    }

    /// Installs a custom access control.
    pub fn access_control(mut self, access: impl AccessControl) -> Self {
        self.access = Some(Box::new(move |b| b.access_control(access)));
        self
    }

    /// Changes the config before start.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Mounts extra host routes next to GoForward's.
    pub fn routes(mut self, f: impl Fn(&mut ServiceConfig) + Send + Sync + 'static) -> Self {
        self.extra_routes = Some(Arc::new(f));
        self
    }

    /// Forces SQLite (`false`) or PostgreSQL (`true`); default: PostgreSQL
    /// when `GOFORWARD_TEST_DATABASE_URL` is set.
    pub fn postgres(mut self, on: bool) -> Self {
        self.postgres = Some(on);
        self
    }

    /// Builds the app and serves it on `127.0.0.1:<ephemeral>`.
    ///
    /// # Errors
    /// Build errors, or when the listener cannot bind.
    pub async fn start(mut self) -> Result<TestApp> {
        let data_dir = tempfile::tempdir()?;
        self.config.data_dir = data_dir.path().to_path_buf();
        let pg_admin = match self.postgres {
            Some(false) => None,
            Some(true) => Some(
                postgres_url()
                    .ok_or_else(|| Error::config(TEST_DATABASE_URL_VAR, "", "not set"))?,
            ),
            None => postgres_url(),
        };
        let mut pg_cleanup = None;
        match &pg_admin {
            Some(admin) => {
                let (url, name) = create_postgres_database(admin).await?;
                self.config.database.url = Some(url);
                pg_cleanup = Some((admin.clone(), name));
            }
            None if self.config.database.url.is_none() => {
                self.config.database.url = Some("sqlite::memory:".to_owned())
            }
            None => {}
        }

        let mut builder = GoForward::builder(self.config);
        for add in self.plugins {
            builder = add(builder);
        }
        if let Some(add) = self.access {
            builder = add(builder);
        }
        let gf = builder.build().await?;

        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let app = gf.clone();
        let extra = self.extra_routes.clone();
        let server = HttpServer::new(move || {
            let extra = extra.clone();
            App::new().configure(app.routes()).configure(move |cfg| {
                if let Some(extra) = &extra {
                    extra(cfg);
                }
            })
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(TestApp {
            base_url: format!("http://{addr}"),
            gf,
            server: handle,
            signer: TokenSigner::hs256(TEST_JWT_SECRET.as_bytes()),
            client,
            pg_cleanup,
            _data_dir: data_dir,
        })
    }
}
