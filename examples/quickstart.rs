//! The quickstart: every plugin on SQLite (or `GOFORWARD_DATABASE_URL`) with
//! no other setup. `cargo run --example quickstart`, then
//! `curl 127.0.0.1:8080/health/ready`. Also the demo app of the client tests and benches.

mod demo;

use actix_web::{App, HttpServer};
use goforward::prelude::*;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> goforward::Result<()> {
    let config = Config::load()?;
    goforward::init_tracing(&config, false);

    let rest = Rest::new().rpc("echo", |call| async move {
        Ok(serde_json::Value::Object(call.args))
    });
    let meta = Meta::for_rest(&rest); // /meta/v1 for admins; SQL runner off unless configured
    let gf = GoForward::builder(config)
        .plugin(Auth::new().configure(|c| {
            c.anonymous_users = true; // signInAnonymously
            c.mfa_totp_enabled = true; // TOTP factors
            c.phone_enabled = true; // SMS codes (to <data_dir>/sms_outbox without a provider)
            c.mailer_autoconfirm = false; // confirmation emails (to <data_dir>/outbox without SMTP)
        }))
        .plugin(rest)
        .plugin(meta)
        .plugin(Realtime::new())
        .plugin(
            Storage::new()
                .bucket(
                    Bucket::public("avatars")
                        .allowed_mime_types(["image/*"])
                        .file_size_limit(5_000_000),
                )
                .bucket(Bucket::private("documents").file_size_limit(50_000_000)),
        )
        .plugin(demo::Demo) // the demo schema: profiles, todos, messages + their policies
        .build()
        .await?;

    let signer = gf.context().signer();
    let addr = gf.config().server.addr.clone();
    tracing::info!("anon key: {}", signer.api_key("anon", 315_360_000)?);
    tracing::info!(
        "service_role key: {}",
        signer.api_key("service_role", 315_360_000)?
    );

    let app = gf.clone();
    let server = HttpServer::new(move || App::new().configure(app.routes()))
        .bind(&addr)?
        .run();
    tracing::info!("goforward quickstart listening on http://{addr}");
    let result = server.await;
    gf.shutdown().await;
    Ok(result?)
}
