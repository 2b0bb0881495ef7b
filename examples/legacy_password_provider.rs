//! A `CustomAuthProvider` over a legacy password table that the host app
//! already has (`legacy_accounts(login, sha256_hex)`), read with sea-query
//! and bound values; the hash is compared in constant time. On first
//! sign-in the account becomes a normal user (identity `legacy:<login>`).
//!
//! `cargo run --example legacy_password_provider`, then
//! `POST /auth/v1/token?grant_type=password&provider=legacy` with
//! `{"username":"grace","password":"hopper"}` and the printed anon key.
//! `cargo test --example legacy_password_provider` signs in over HTTP on
//! SQLite and PostgreSQL (`GOFORWARD_TEST_DATABASE_URL`).

use actix_web::{App, HttpServer};
use goforward::auth::{Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
use goforward::prelude::*;
use goforward_core::sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use goforward_core::sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Query, Table};

/// Reads `legacy_accounts` in the app's database.
pub struct LegacyTable(pub DatabaseConnection);

fn sha256_hex(text: &str) -> String {
    goforward::auth::crypto::sha256_hex(text.as_bytes())
}

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
        let same = goforward::auth::crypto::ct_eq(&stored, &sha256_hex(&c.password));
        Ok(same.then(|| ProviderIdentity {
            subject: format!("legacy:{}", c.identifier),
            ..Default::default()
        }))
    }
}

/// Creates `legacy_accounts` (if absent) with `grace` / `hopper`.
///
/// # Errors
/// Database errors.
pub async fn seed(db: &DatabaseConnection) -> Result<(), DbErr> {
    let create = Table::create()
        .table(Alias::new("legacy_accounts"))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("login"))
                .string_len(64)
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(Alias::new("sha256_hex"))
                .string_len(64)
                .not_null(),
        )
        .to_owned();
    db.execute(&create).await?;
    let insert = Query::insert()
        .into_table(Alias::new("legacy_accounts"))
        .columns([Alias::new("login"), Alias::new("sha256_hex")])
        .values_panic(["grace".into(), sha256_hex("hopper").into()])
        .on_conflict(
            OnConflict::column(Alias::new("login"))
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load()?;
    let db = goforward_core::db::connect(&config.database).await?;
    seed(&db).await?;
    let gf = GoForward::builder(config)
        .database(db.clone())
        .plugin(Auth::new().provider("legacy", LegacyTable(db)))
        .build()
        .await?;
    let addr = gf.config().server.addr.clone();
    tracing::warn!(
        "anon key: {} — listening on http://{addr}",
        gf.context().signer().api_key("anon", 3600)?
    );
    let app = gf.clone();
    HttpServer::new(move || App::new().configure(app.routes()))
        .bind(&addr)?
        .run()
        .await?;
    gf.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, OnceLock};

    use goforward::auth::{Credentials, CustomAuthProvider, ProviderError, ProviderIdentity};
    use goforward_core::sea_orm::DatabaseConnection;
    use goforward_core::testing::{TestApp, postgres_url_or_skip};
    use serde_json::{Value, json};

    /// The provider over the test app's own database (known only after start).
    #[derive(Clone, Default)]
    struct Late(Arc<OnceLock<super::LegacyTable>>);

    #[async_trait::async_trait]
    impl CustomAuthProvider for Late {
        async fn authenticate(
            &self,
            c: &Credentials,
        ) -> Result<Option<ProviderIdentity>, ProviderError> {
            match self.0.get() {
                Some(table) => table.authenticate(c).await,
                None => Err(ProviderError("not ready".into())),
            }
        }
    }

    async fn app(pg: bool) -> Option<TestApp> {
        if pg && postgres_url_or_skip("legacy_password_provider example").is_none() {
            return None;
        }
        let late = Late::default();
        let auth = goforward::Auth::new()
            .configure(|c| c.bcrypt_cost = 4)
            .provider("legacy", late.clone());
        let app = TestApp::builder()
            .plugin(auth)
            .postgres(pg)
            .start()
            .await
            .unwrap();
        let db: DatabaseConnection = app.db().clone();
        super::seed(&db).await.unwrap();
        super::seed(&db).await.unwrap(); // idempotent
        assert!(late.0.set(super::LegacyTable(db)).is_ok());
        Some(app)
    }

    async fn sign_in(app: &TestApp, body: Value) -> (u16, Value) {
        let res = app
            .client()
            .post(app.url("/auth/v1/token?grant_type=password&provider=legacy"))
            .header("apikey", app.anon_key())
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn legacy_sign_in(pg: bool) {
        let Some(app) = app(pg).await else { return };
        for body in [
            json!({ "username": "grace", "password": "wrong" }),
            json!({ "username": "nobody", "password": "hopper" }),
            json!({ "username": "' OR '1'='1", "password": "hopper" }),
        ] {
            let (status, err) = sign_in(&app, body).await;
            assert_eq!(
                (status, err["code"].as_str()),
                (400, Some("invalid_credentials"))
            );
        }
        let (status, first) =
            sign_in(&app, json!({ "username": "grace", "password": "hopper" })).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["user"]["identities"][0]["provider"], "legacy");
        assert_eq!(first["user"]["identities"][0]["id"], "legacy:grace");
        let (status, again) =
            sign_in(&app, json!({ "username": "grace", "password": "hopper" })).await;
        assert_eq!(status, 200);
        assert_eq!(
            again["user"]["id"], first["user"]["id"],
            "found by identity"
        );
        app.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_sign_in_sqlite() {
        legacy_sign_in(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn legacy_sign_in_postgres() {
        legacy_sign_in(true).await;
    }
}
