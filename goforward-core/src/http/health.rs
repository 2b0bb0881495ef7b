//! `/health` (liveness) and `/health/ready` (database reachable, migrations applied).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::Readiness;
use crate::plugin::Context;

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn ready(ctx: web::Data<Context>, readiness: web::Data<Readiness>) -> HttpResponse {
    let database = crate::db::ping(ctx.db()).await.is_ok();
    let migrations = readiness.migrations_applied().await;
    let status = if database && migrations {
        "ok"
    } else {
        "unavailable"
    };
    let body =
        json!({ "status": status, "checks": { "database": database, "migrations": migrations } });
    if database && migrations {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig, ctx: &Context) {
    cfg.service(
        web::scope("/health")
            .wrap(ctx.plumbing("health"))
            .route("", web::get().to(live))
            .route("/ready", web::get().to(ready)),
    );
}
