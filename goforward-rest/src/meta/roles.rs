//! PostgreSQL roles and row-level security: list roles and policies,
//! create/drop a policy, enable/disable (and force) RLS on a table. Policy
//! and RLS changes are recorded as migrations like every other change.
//!
//! sea-query has no `CREATE POLICY` builder: the statement is assembled
//! here from sea-query-quoted identifiers, a closed set of keywords and the
//! administrator's `USING` / `WITH CHECK` expressions, each parsed as one
//! SQL expression (no `;`, comments or placeholders) and rendered from its
//! parse tree (see [`super::expr`]); every change
//! statement runs as one prepared statement, which PostgreSQL limits to a
//! single command.

use actix_web::{HttpResponse, web};
use goforward_core::{
    Principal,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
    sea_query::{Alias, IntoIden, PostgresQueryBuilder, QuotedBuilder},
    token::Capability,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::MetaState;
use super::ddl::Change;
use super::error::{MetaError, Result};
use super::handlers::{Flags, run};
use super::ident::validate;
use super::introspect::Catalog;
use super::require;

fn postgres_only(state: &MetaState) -> Result<()> {
    if state.ctx.db().get_database_backend() == DbBackend::Postgres {
        Ok(())
    } else {
        Err(MetaError::Unsupported(
            "roles and row-level security are PostgreSQL features".into(),
        ))
    }
}

fn q(name: &str) -> String {
    let mut s = String::new();
    PostgresQueryBuilder.prepare_iden(&Alias::new(name).into_iden(), &mut s);
    s
}

fn stmt(sql: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}

/// `GET /meta/v1/roles`.
pub(super) async fn list_roles(state: web::Data<MetaState>, p: Principal) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    postgres_only(&state)?;
    let rows = state
        .ctx
        .db()
        .query_all_raw(stmt(
            "SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, \
             r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit::int8, \
             r.rolvaliduntil::text, \
             COALESCE((SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m \
               JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), ARRAY[]::text[]) \
             FROM pg_roles r WHERE r.rolname NOT LIKE 'pg\\_%' ORDER BY r.rolname",
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(json!({
            "name": r.try_get_by_index::<String>(0)?,
            "superuser": r.try_get_by_index::<bool>(1)?,
            "inherit": r.try_get_by_index::<bool>(2)?,
            "create_role": r.try_get_by_index::<bool>(3)?,
            "create_db": r.try_get_by_index::<bool>(4)?,
            "can_login": r.try_get_by_index::<bool>(5)?,
            "replication": r.try_get_by_index::<bool>(6)?,
            "bypass_rls": r.try_get_by_index::<bool>(7)?,
            "connection_limit": r.try_get_by_index::<i64>(8)?,
            "valid_until": r.try_get_by_index::<Option<String>>(9)?,
            "member_of": r.try_get_by_index::<Vec<String>>(10)?,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}

/// One policy as `pg_policies` reports it.
#[derive(Debug, Clone)]
struct PolicyRow {
    table: String,
    name: String,
    permissive: bool,
    roles: Vec<String>,
    command: String,
    using: Option<String>,
    with_check: Option<String>,
}

async fn policies(state: &MetaState) -> Result<Vec<PolicyRow>> {
    let rows = state
        .ctx
        .db()
        .query_all_raw(stmt(
            "SELECT tablename::text, policyname::text, permissive = 'PERMISSIVE', \
             roles::text[], cmd::text, qual, with_check FROM pg_policies \
             WHERE schemaname = 'public' ORDER BY tablename, policyname",
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(PolicyRow {
                table: r.try_get_by_index(0)?,
                name: r.try_get_by_index(1)?,
                permissive: r.try_get_by_index(2)?,
                roles: r.try_get_by_index(3)?,
                command: r.try_get_by_index(4)?,
                using: r.try_get_by_index(5)?,
                with_check: r.try_get_by_index(6)?,
            })
        })
        .collect()
}

/// `GET /meta/v1/policies`: RLS state of every table and every policy.
pub(super) async fn list_policies(
    state: web::Data<MetaState>,
    p: Principal,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    postgres_only(&state)?;
    let rows = state
        .ctx
        .db()
        .query_all_raw(stmt(
            "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' \
             AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'goforward\\_%' ORDER BY c.relname",
        ))
        .await?;
    let mut tables = Vec::new();
    for r in rows {
        tables.push(json!({
            "table": r.try_get_by_index::<String>(0)?,
            "rls_enabled": r.try_get_by_index::<bool>(1)?,
            "rls_forced": r.try_get_by_index::<bool>(2)?,
        }));
    }
    let list: Vec<Value> = policies(&state)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "table": p.table, "name": p.name, "command": p.command,
                "permissive": p.permissive, "roles": p.roles,
                "using": p.using, "with_check": p.with_check,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"tables": tables, "policies": list})))
}

/// `POST /meta/v1/tables/{table}/policies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreatePolicy {
    name: String,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    permissive: Option<bool>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    using: Option<String>,
    #[serde(default)]
    with_check: Option<String>,
}

/// An administrator's policy expression: exactly one SQL expression (no
/// `;`, comments or placeholders), rendered from its parse tree by the
/// validator check constraints share ([`super::expr`]).
fn expression(field: &str, e: &str) -> Result<String> {
    super::expr::policy_expression(field, e)
}

fn create_sql(p: &PolicyRow) -> String {
    let mut sql = format!(
        "CREATE POLICY {} ON {} AS {} FOR {} TO {}",
        q(&p.name),
        q(&p.table),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.command,
        p.roles
            .iter()
            .map(|r| if r == "public" {
                "PUBLIC".to_owned()
            } else {
                q(r)
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(u) = &p.using {
        sql.push_str(&format!(" USING ({u})"));
    }
    if let Some(c) = &p.with_check {
        sql.push_str(&format!(" WITH CHECK ({c})"));
    }
    sql
}

fn drop_sql(table: &str, name: &str) -> String {
    format!("DROP POLICY {} ON {}", q(name), q(table))
}

async fn role_names(state: &MetaState) -> Result<Vec<String>> {
    let rows = state
        .ctx
        .db()
        .query_all_raw(stmt("SELECT rolname::text FROM pg_roles"))
        .await?;
    rows.into_iter()
        .map(|r| Ok(r.try_get_by_index(0)?))
        .collect()
}

pub(super) async fn create_policy(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    postgres_only(&state)?;
    let req: CreatePolicy = serde_json::from_value(body.into_inner())
        .map_err(|e| MetaError::InvalidRequest(format!("invalid body: {e}")))?;
    let table = path.into_inner();
    Catalog::load(state.ctx.db()).await?.table(&table)?;
    let name = validate(&req.name)?.to_owned();
    if policies(&state)
        .await?
        .iter()
        .any(|x| x.table == table && x.name == name)
    {
        return Err(MetaError::AlreadyExists(format!("policy {name:?}")));
    }
    let command = match req.command.as_deref().unwrap_or("all") {
        c @ ("all" | "select" | "insert" | "update" | "delete") => c.to_uppercase(),
        _ => {
            return Err(MetaError::InvalidRequest(
                "command: all, select, insert, update or delete".into(),
            ));
        }
    };
    let known = role_names(&state).await?;
    let roles = req.roles.unwrap_or_else(|| vec!["public".into()]);
    if roles.is_empty() {
        return Err(MetaError::InvalidRequest("roles must not be empty".into()));
    }
    for r in &roles {
        if r != "public" && !known.contains(r) {
            return Err(MetaError::InvalidRequest(format!("unknown role {r:?}")));
        }
    }
    if req.using.is_none() && req.with_check.is_none() {
        return Err(MetaError::InvalidRequest(
            "give `using`, `with_check` or both".into(),
        ));
    }
    let row = PolicyRow {
        table: table.clone(),
        name: name.clone(),
        permissive: req.permissive.unwrap_or(true),
        roles,
        command,
        using: req
            .using
            .as_deref()
            .map(|e| expression("using", e))
            .transpose()?,
        with_check: req
            .with_check
            .as_deref()
            .map(|e| expression("with_check", e))
            .transpose()?,
    };
    let change = Change {
        name: format!("create_policy_{table}_{name}"),
        up: vec![create_sql(&row)],
        down: Some(vec![drop_sql(&table, &name)]),
    };
    run(&state, &p, change, &flags).await
}

pub(super) async fn drop_policy(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<(String, String)>,
    flags: web::Query<Flags>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    postgres_only(&state)?;
    let (table, name) = path.into_inner();
    let row = policies(&state)
        .await?
        .into_iter()
        .find(|x| x.table == table && x.name == name)
        .ok_or_else(|| MetaError::ConstraintNotFound {
            kind: "policy",
            name: name.clone(),
        })?;
    let change = Change {
        name: format!("drop_policy_{table}_{name}"),
        up: vec![drop_sql(&table, &name)],
        down: Some(vec![create_sql(&row)]),
    };
    run(&state, &p, change, &flags).await
}

/// `POST /meta/v1/tables/{table}/rls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRls {
    enabled: bool,
    #[serde(default)]
    force: Option<bool>,
}

pub(super) async fn set_rls(
    state: web::Data<MetaState>,
    p: Principal,
    path: web::Path<String>,
    flags: web::Query<Flags>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    require(&p, Capability::ManageTables)?;
    postgres_only(&state)?;
    let req: SetRls = serde_json::from_value(body.into_inner())
        .map_err(|e| MetaError::InvalidRequest(format!("invalid body: {e}")))?;
    let table = path.into_inner();
    Catalog::load(state.ctx.db()).await?.table(&table)?;
    let row = state
        .ctx
        .db()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1",
            [table.clone().into()],
        ))
        .await?
        .ok_or_else(|| MetaError::TableNotFound(table.clone()))?;
    let (enabled, forced): (bool, bool) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    let t = q(&table);
    let rls = |on: bool| {
        format!(
            "ALTER TABLE {t} {} ROW LEVEL SECURITY",
            if on { "ENABLE" } else { "DISABLE" }
        )
    };
    let force = |on: bool| {
        format!(
            "ALTER TABLE {t} {}FORCE ROW LEVEL SECURITY",
            if on { "" } else { "NO " }
        )
    };
    let mut up = vec![rls(req.enabled)];
    let mut down = vec![rls(enabled)];
    if let Some(f) = req.force {
        up.push(force(f));
        down.insert(0, force(forced));
    }
    let change = Change {
        name: format!(
            "{}_rls_{table}",
            if req.enabled { "enable" } else { "disable" }
        ),
        up,
        down: Some(down),
    };
    run(&state, &p, change, &flags).await
}
