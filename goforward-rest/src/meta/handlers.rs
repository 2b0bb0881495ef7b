//! The `/meta/v1` routes.

use actix_web::{HttpResponse, web};
use goforward_core::{Context, Principal, sea_orm::ConnectionTrait, token::Capability};
use serde::Deserialize;
use serde_json::{Value, json};

use super::MetaState;
use super::ddl::{
    self, AlterColumn, Change, CheckSpec, ColumnSpec, CreateTable, ForeignKeySpec, IndexSpec,
};
use super::error::{MetaError, Result};
use super::introspect::Catalog;
use super::store::{self, Record};
use super::{MetaErrorFormat, parse_policy, require};

/// Query flags every change takes.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct Flags {
    /// Return the SQL without running it.
    pub(super) dry_run: bool,
    /// Drop foreign keys pointing at a dropped table.
    pub(super) cascade: bool,
}

pub(super) fn configure(cfg: &mut web::ServiceConfig, ctx: &Context, state: MetaState) {
    cfg.service(
        ctx.api_scope("/meta/v1", "meta", MetaErrorFormat)
            .app_data(web::Data::new(state))
            .route("/tables", web::get().to(list_tables))
            .route("/tables", web::post().to(create_table))
            .route("/views", web::get().to(list_views))
            .route("/relationships", web::get().to(relationships))
            .route("/schemas", web::get().to(schemas))
            .route("/functions", web::get().to(functions))
            .route("/triggers", web::get().to(triggers))
            .route("/tables/{table}/copy", web::post().to(copy_table))
            .route("/tables/{table}", web::get().to(get_table))
            .route("/tables/{table}", web::patch().to(rename_table))
            .route("/tables/{table}", web::delete().to(drop_table))
            .route("/tables/{table}/truncate", web::post().to(truncate))
            .route("/tables/{table}/export", web::get().to(super::data::export))
            .route(
                "/tables/{table}/import",
                web::post().to(super::data::import),
            )
            .route("/tables/{table}/policy", web::put().to(set_policy))
            .route("/tables/{table}/columns", web::post().to(add_column))
            .route(
                "/tables/{table}/columns/{column}",
                web::patch().to(alter_column),
            )
            .route(
                "/tables/{table}/columns/{column}",
                web::delete().to(drop_column),
            )
            .route("/tables/{table}/foreign_keys", web::post().to(add_fk))
            .route(
                "/tables/{table}/foreign_keys/{name}",
                web::delete().to(drop_fk),
            )
            .route("/tables/{table}/checks", web::post().to(add_check))
            .route(
                "/tables/{table}/checks/{name}",
                web::delete().to(drop_check),
            )
            .route("/tables/{table}/indexes", web::post().to(create_index))
            .route("/indexes/{name}", web::delete().to(drop_index))
            .route("/roles", web::get().to(super::roles::list_roles))
            .route("/policies", web::get().to(super::roles::list_policies))
            .route(
                "/tables/{table}/policies",
                web::post().to(super::roles::create_policy),
            )
            .route(
                "/tables/{table}/policies/{name}",
                web::delete().to(super::roles::drop_policy),
            )
            .route("/tables/{table}/rls", web::post().to(super::roles::set_rls))
            .route("/migrations", web::get().to(migrations))
            .route("/migrations/export", web::get().to(export))
            .route("/migrations/{id}/revert", web::post().to(revert))
            .default_service(web::to(not_found)),
    );
}

async fn not_found(p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    Err(MetaError::InvalidRequest("no such endpoint".into()))
}

fn who(p: &Principal) -> String {
    p.user_id
        .as_deref()
        .unwrap_or_else(|| p.role.as_str())
        .to_owned()
}

async fn catalog(state: &MetaState, p: &Principal) -> Result<Catalog> {
    require(p, Capability::ManageTables)?;
    Catalog::load(state.ctx.db()).await
}

/// Reloads this node's REST schema cache and, on PostgreSQL, tells the
/// other nodes (`NOTIFY pgrst, 'reload schema'`, which the REST plugin
/// listens to with its `postgres` feature).
async fn reload(state: &MetaState) -> Result<()> {
    let db = state.ctx.db();
    state.cache.reload(db).await?;
    if db.get_database_backend() == goforward_core::sea_orm::DbBackend::Postgres
        && let Err(e) = db.execute_unprepared("NOTIFY pgrst, 'reload schema'").await
    {
        tracing::warn!(error = %e, "meta: could not notify other nodes of a schema change");
    }
    Ok(())
}

/// Runs (or, with `dry_run`, shows) a change; records it; reloads the REST cache.
pub(super) async fn run(
    state: &MetaState,
    p: &Principal,
    change: Change,
    flags: &Flags,
) -> Result<HttpResponse> {
    if flags.dry_run {
        return Ok(HttpResponse::Ok().json(json!({
            "dry_run": true, "name": change.name, "sql": change.up, "down": change.down,
        })));
    }
    let by = who(p);
    let id = store::apply(
        state.ctx.db(),
        &change.up,
        Record::Apply(&change, Some(&by)),
    )
    .await?;
    reload(state).await?;
    tracing::info!(migration = ?id, name = %change.name, by = %by, "meta: schema change applied");
    Ok(HttpResponse::Ok().json(json!({
        "migration": id, "name": change.name, "sql": change.up, "down": change.down,
    })))
}

async fn list_tables(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let tables: Vec<_> = c.tables.values().filter(|t| t.kind == "table").collect();
    Ok(HttpResponse::Ok().json(tables))
}

async fn list_views(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let views: Vec<_> = c.tables.values().filter(|t| t.kind == "view").collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn relationships(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    Ok(HttpResponse::Ok().json(c.relationships()))
}

async fn schemas(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    Ok(HttpResponse::Ok().json(super::introspect::schemas(state.ctx.db()).await?))
}

async fn functions(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    Ok(HttpResponse::Ok().json(super::introspect::functions(state.ctx.db()).await?))
}

async fn triggers(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    Ok(HttpResponse::Ok().json(super::introspect::triggers(state.ctx.db()).await?))
}

async fn copy_table(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let req: Rename = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::copy_structure(&c, backend, &path.into_inner(), &req.name)?;
    run(&state, &p, change, &flags).await
}

async fn get_table(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let name = path.into_inner();
    let t = c.get(&name).ok_or(MetaError::TableNotFound(name))?;
    Ok(HttpResponse::Ok().json(t))
}

fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| MetaError::InvalidRequest(format!("invalid body: {e}")))
}

async fn create_table(
    state: web::Data<MetaState>,
    p: Principal,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let req: CreateTable = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let policy = req.policy.as_deref().map(parse_policy).transpose()?;
    if let Some(col) = req.policy.as_deref().and_then(|s| s.strip_prefix("owner:"))
        && !req.columns.iter().any(|c| c.name == col)
    {
        return Err(MetaError::ColumnNotFound {
            table: req.name.clone(),
            column: col.to_owned(),
        });
    }
    let change = ddl::create_table(&c, backend, &req)?;
    let response = run(&state, &p, change, &flags).await?;
    if !flags.dry_run
        && let (Some(policy), Some(name)) = (policy, req.policy.as_deref())
    {
        store::save_policy(state.ctx.db(), &req.name, name).await?;
        state.ctx.access().policies().set_table(&req.name, policy);
        super::announce_policies(&state.ctx, &req.name).await;
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_table(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let req: Rename = body(json.into_inner())?;
    let table = path.into_inner();
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::rename_table(&c, backend, &table, &req.name)?;
    let response = run(&state, &p, change, &flags).await?;
    if !flags.dry_run
        && let Some((_, policy)) = store::policies(state.ctx.db())
            .await?
            .into_iter()
            .find(|(t, _)| *t == table)
    {
        store::save_policy(state.ctx.db(), &req.name, &policy).await?;
        state
            .ctx
            .access()
            .policies()
            .set_table(&req.name, parse_policy(&policy)?);
        super::announce_policies(&state.ctx, &req.name).await;
    }
    Ok(response)
}

async fn drop_table(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::drop_table(&c, backend, &path.into_inner(), flags.cascade)?;
    run(&state, &p, change, &flags).await
}

async fn truncate(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let backend = state.ctx.db().get_database_backend();
    let sql = ddl::truncate(&c, backend, &path.into_inner())?;
    if flags.dry_run {
        return Ok(HttpResponse::Ok().json(json!({"dry_run": true, "sql": [sql]})));
    }
    store::apply(state.ctx.db(), std::slice::from_ref(&sql), Record::Nothing).await?;
    Ok(HttpResponse::Ok().json(json!({"sql": [sql]})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPolicy {
    policy: String,
}

async fn set_policy(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let req: SetPolicy = body(json.into_inner())?;
    let table = path.into_inner();
    let t = c
        .get(&table)
        .ok_or_else(|| MetaError::TableNotFound(table.clone()))?;
    let policy = parse_policy(&req.policy)?;
    if let Some(col) = req.policy.strip_prefix("owner:")
        && t.column(col).is_none()
    {
        return Err(MetaError::ColumnNotFound {
            table: table.clone(),
            column: col.to_owned(),
        });
    }
    store::save_policy(state.ctx.db(), &table, &req.policy).await?;
    state.ctx.access().policies().set_table(&table, policy);
    super::announce_policies(&state.ctx, &table).await;
    Ok(HttpResponse::Ok().json(json!({"table": table, "policy": req.policy})))
}

async fn add_column(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let spec: ColumnSpec = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::add_column(&c, backend, &path.into_inner(), &spec)?;
    run(&state, &p, change, &flags).await
}

async fn alter_column(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let req: AlterColumn = body(json.into_inner())?;
    let (table, column) = path.into_inner();
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::alter_column(&c, backend, &table, &column, &req)?;
    run(&state, &p, change, &flags).await
}

async fn drop_column(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let (table, column) = path.into_inner();
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::drop_column(&c, backend, &table, &column)?;
    run(&state, &p, change, &flags).await
}

async fn add_fk(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let spec: ForeignKeySpec = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::add_foreign_key(&c, backend, &path.into_inner(), &spec)?;
    run(&state, &p, change, &flags).await
}

async fn drop_fk(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let (table, name) = path.into_inner();
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::drop_foreign_key(&c, backend, &table, &name)?;
    run(&state, &p, change, &flags).await
}

async fn add_check(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let spec: CheckSpec = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::add_check(&c, backend, &path.into_inner(), &spec)?;
    run(&state, &p, change, &flags).await
}

async fn drop_check(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let (table, name) = path.into_inner();
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::drop_check(&c, backend, &table, &name)?;
    run(&state, &p, change, &flags).await
}

async fn create_index(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    json: web::Json<Value>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let spec: IndexSpec = body(json.into_inner())?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::create_index(&c, backend, &path.into_inner(), &spec)?;
    run(&state, &p, change, &flags).await
}

async fn drop_index(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    let c = catalog(&state, &p).await?;
    let backend = state.ctx.db().get_database_backend();
    let change = ddl::drop_index_change(&c, backend, &path.into_inner())?;
    run(&state, &p, change, &flags).await
}

async fn migrations(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    Ok(HttpResponse::Ok().json(store::list(state.ctx.db()).await?))
}

/// `GET /meta/v1/migrations/export?format=sql|sea_orm`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
}

/// A Rust raw string literal holding `s` (enough `#`s to never close early).
fn raw_literal(s: &str) -> String {
    let mut hashes = 1;
    while s.contains(&format!("\"{}", "#".repeat(hashes))) {
        hashes += 1;
    }
    let h = "#".repeat(hashes);
    format!("r{h}\"{s}\"{h}")
}

/// A sea-orm-migration file running `up` / `down` statements.
fn sea_orm_file(m: &store::Migration) -> String {
    let body = |stmts: &[String]| {
        let mut out = String::from("        let db = manager.get_connection();\n");
        for st in stmts {
            out.push_str(&format!(
                "        db.execute_unprepared({}).await?;\n",
                raw_literal(st)
            ));
        }
        out.push_str("        Ok(())\n");
        out
    };
    let down = match &m.down {
        Some(d) => body(d),
        None => "        Err(DbErr::Migration(\"irreversible\".into()))\n".to_owned(),
    };
    format!(
        "//! GoForward meta migration {id}: {name} (applied {at}).\n\n\
         use sea_orm_migration::prelude::*;\n\n\
         #[derive(DeriveMigrationName)]\n\
         pub struct Migration;\n\n\
         #[async_trait::async_trait]\n\
         impl MigrationTrait for Migration {{\n\
         \x20   async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {{\n{up}    }}\n\n\
         \x20   async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {{\n{down}    }}\n\
         }}\n",
        id = m.id,
        name = m.name,
        at = m.applied_at,
        up = body(&m.up),
    )
}

/// Applied (not reverted) migrations as files: plain SQL
/// (`NNNN_name.up.sql` / `.down.sql`, default) or sea-orm-migration
/// (`mYYYYMMDD_HHMMSS_NNNN_name.rs`).
async fn export(
    state: web::Data<MetaState>,
    p: Principal,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    let sea_orm = match q.format.as_deref() {
        None | Some("sql") => false,
        Some("sea_orm") => true,
        Some(_) => {
            return Err(MetaError::InvalidRequest(
                "format: `sql` or `sea_orm`".into(),
            ));
        }
    };
    let mut files = Vec::new();
    for m in store::list(state.ctx.db()).await? {
        if m.reverted_at.is_some() {
            continue;
        }
        if sea_orm {
            let stamp: String = m
                .applied_at
                .chars()
                .filter(char::is_ascii_digit)
                .take(14)
                .collect();
            let (date, time) = stamp.split_at(stamp.len().min(8));
            files.push(json!({
                "name": format!("m{date}_{time}_{:04}_{}.rs", m.id, sanitize(&m.name)),
                "content": sea_orm_file(&m),
            }));
            continue;
        }
        let stem = format!("{:04}_{}", m.id, sanitize(&m.name));
        let script = |stmts: &[String]| {
            let mut s = format!("-- GoForward meta migration {}: {}\n", m.id, m.name);
            for st in stmts {
                s.push_str(st);
                s.push_str(";\n");
            }
            s
        };
        files.push(json!({"name": format!("{stem}.up.sql"), "content": script(&m.up)}));
        if let Some(down) = &m.down {
            files.push(json!({"name": format!("{stem}.down.sql"), "content": script(down)}));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "files": files })))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

async fn revert(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<i64>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    let id = path.into_inner();
    let applied: Vec<_> = store::list(state.ctx.db())
        .await?
        .into_iter()
        .filter(|m| m.reverted_at.is_none())
        .collect();
    let latest = applied.last().map(|m| m.id);
    let m = applied
        .iter()
        .find(|m| m.id == id)
        .ok_or(MetaError::MigrationNotFound(id))?;
    if let Some(latest) = latest
        && latest != id
    {
        return Err(MetaError::NotLatest { latest });
    }
    let down = m
        .down
        .clone()
        .ok_or_else(|| MetaError::Unsupported("this migration cannot be reverted".into()))?;
    if flags.dry_run {
        return Ok(HttpResponse::Ok().json(json!({"dry_run": true, "sql": down})));
    }
    store::apply(state.ctx.db(), &down, Record::Revert(id)).await?;
    reload(&state).await?;
    tracing::info!(migration = id, by = %who(&p), "meta: migration reverted");
    Ok(HttpResponse::Ok().json(json!({"reverted": id, "sql": down})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_literals_never_close_early() {
        assert_eq!(raw_literal("a"), "r#\"a\"#");
        assert_eq!(raw_literal("x \"# y"), "r##\"x \"# y\"##");
    }

    #[test]
    fn sea_orm_files_are_rust_migrations() {
        let m = store::Migration {
            id: 1,
            name: "create_table_t".into(),
            up: vec!["CREATE TABLE \"t\" ( \"a\" text )".into()],
            down: Some(vec!["DROP TABLE \"t\"".into()]),
            applied_by: None,
            applied_at: "2026-11-24T09:45:12.000Z".into(),
            reverted_at: None,
        };
        assert_eq!(
            sea_orm_file(&m),
            "//! GoForward meta migration 1: create_table_t (applied 2026-11-24T09:45:12.000Z).\n\n\
             use sea_orm_migration::prelude::*;\n\n\
             #[derive(DeriveMigrationName)]\n\
             pub struct Migration;\n\n\
             #[async_trait::async_trait]\n\
             impl MigrationTrait for Migration {\n    \
             async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {\n        \
             let db = manager.get_connection();\n        \
             db.execute_unprepared(r#\"CREATE TABLE \"t\" ( \"a\" text )\"#).await?;\n        \
             Ok(())\n    }\n\n    \
             async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {\n        \
             let db = manager.get_connection();\n        \
             db.execute_unprepared(r#\"DROP TABLE \"t\"\"#).await?;\n        \
             Ok(())\n    }\n}\n"
        );
    }
}
