//! Two `CustomAuthProvider`s on one server:
//!
//! - `directory`: an LDAP-style directory (here an in-process map of
//!   `uid → (password, mail)`; a real one would bind against the server);
//! - `legacy`: a legacy password table in the app's own database
//!   (`legacy_accounts(login, sha256_hex)`), read with sea-query.
//!
//! `cargo run -p goforward-auth --example custom_providers`, then
//! `POST /auth/v1/token?grant_type=password&provider=directory` with
//! `{"username":"ada","password":"lovelace"}` (and the anon key printed at
//! start), or plain `signInWithPassword({email:"ada@example.com", password:"lovelace"})`.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;

use actix_web::{App, HttpServer};
use goforward_auth::{Auth, Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection};
use goforward_core::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use goforward_core::{Config, GoForward};
use sha2::{Digest, Sha256};

struct Directory(HashMap<String, (String, String)>);

#[async_trait::async_trait]
impl CustomAuthProvider for Directory {
    async fn authenticate(
        &self,
        c: &Credentials,
    ) -> Result<Option<ProviderIdentity>, ProviderError> {
        let uid = c.identifier.split('@').next().unwrap_or_default();
        Ok(match self.0.get(uid) {
            Some((password, mail)) if *password == c.password => Some(ProviderIdentity {
                subject: format!("uid={uid},ou=people,dc=example,dc=com"),
                email: Some(mail.clone()),
                email_verified: true,
                ..Default::default()
            }),
            _ => None,
        })
    }
}

struct LegacyTable(DatabaseConnection);

#[async_trait::async_trait]
impl CustomAuthProvider for LegacyTable {
    async fn authenticate(
        &self,
        c: &Credentials,
    ) -> Result<Option<ProviderIdentity>, ProviderError> {
        let query = Query::select()
            .column(Alias::new("sha256_hex"))
            .from(Alias::new("legacy_accounts"))
            .and_where(Expr::col(Alias::new("login")).eq(c.identifier.as_str()))
            .to_owned();
        let row = self
            .0
            .query_one(&query)
            .await
            .map_err(|e| ProviderError(e.to_string()))?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row
            .try_get("", "sha256_hex")
            .map_err(|e| ProviderError(e.to_string()))?;
        let given = sha256_hex(&c.password);
        let same: bool = subtle::ConstantTimeEq::ct_eq(stored.as_bytes(), given.as_bytes()).into();
        Ok(same.then(|| ProviderIdentity {
            subject: format!("legacy:{}", c.identifier),
            email: None,
            ..Default::default()
        }))
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        data_dir: std::env::temp_dir().join("goforward-custom-providers"),
        ..Config::default()
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        config.data_dir.join("app.db").display()
    );
    let db = goforward_core::db::connect_url(&url).await?;

    // The legacy table (owned by the host app): login "grace", password "hopper".
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS legacy_accounts (login TEXT PRIMARY KEY, sha256_hex TEXT NOT NULL)",
    )
    .await?;
    let seed = Query::insert()
        .into_table(Alias::new("legacy_accounts"))
        .columns([Alias::new("login"), Alias::new("sha256_hex")])
        .values_panic(["grace".into(), sha256_hex("hopper").into()])
        .on_conflict(
            OnConflict::column(Alias::new("login"))
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    db.execute(&seed).await?;

    let directory = Directory(
        [(
            "ada".to_owned(),
            ("lovelace".to_owned(), "ada@example.com".to_owned()),
        )]
        .into_iter()
        .collect(),
    );
    let gf = GoForward::builder(config)
        .database(db.clone())
        .plugin(
            Auth::new()
                .configure(|c| c.mailer_autoconfirm = true)
                .provider("directory", directory)
                .provider("legacy", LegacyTable(db)),
        )
        .build()
        .await?;
    let addr = gf.config().server.addr.clone();
    println!("anon key: {}", gf.context().signer().api_key("anon", 3600)?);
    println!("listening on http://{addr}");
    let app = gf.clone();
    HttpServer::new(move || App::new().configure(app.routes()))
        .bind(&addr)?
        .run()
        .await?;
    gf.shutdown().await;
    Ok(())
}
