//! Self-embeds: a table embedded in itself through a self-referencing
//! foreign key, with PostgREST's rules — naming the table gives the
//! one-to-many side (`reports:employees!manager_id(…)`, the hint naming
//! the referencing column), naming the foreign-key column gives the
//! many-to-one side (`manager:manager_id(…)`), several self-referencing
//! keys without a hint are 300 `PGRST201`. On SQLite and PostgreSQL; each
//! request is one SQL statement (the embedded copy of the table is aliased
//! in its subquery).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{As, get, seed};
use goforward_core::{
    Context, Plugin,
    access::Policy,
    sea_orm::{ConnectionTrait, DbBackend},
    testing::{TestApp, postgres_url_or_skip},
};
use goforward_rest::Rest;
use serde_json::json;

/// `employees` (one self-referencing key, a hidden `salary`) and
/// `organizations` (two: `referee` and `auditor`).
struct Tables;

const SQLITE: &[&str] = &[
    "CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
     manager_id INTEGER REFERENCES employees(id), salary INTEGER)",
    "CREATE TABLE organizations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
     referee INTEGER REFERENCES organizations(id), auditor INTEGER REFERENCES organizations(id))",
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE employees (id BIGINT PRIMARY KEY, name TEXT NOT NULL, \
     manager_id BIGINT REFERENCES employees(id), salary INTEGER)",
    "CREATE TABLE organizations (id BIGINT PRIMARY KEY, name TEXT NOT NULL, \
     referee BIGINT REFERENCES organizations(id), auditor BIGINT REFERENCES organizations(id))",
];

#[async_trait::async_trait]
impl Plugin for Tables {
    fn name(&self) -> &str {
        "self_embed_tables"
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let db = ctx.db();
        let ddl = match db.get_database_backend() {
            DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for stmt in ddl {
            db.execute_unprepared(stmt).await?;
        }
        Ok(())
    }
}

fn rest() -> Rest {
    common::rest()
        .table("employees", Policy::public())
        .table("organizations", Policy::public())
        .hide_columns("employees", ["salary"])
}

async fn start(postgres: bool, test: &str) -> Option<TestApp> {
    if postgres && postgres_url_or_skip(test).is_none() {
        return None;
    }
    Some(
        TestApp::builder()
            .postgres(postgres)
            .plugin(common::Fixture)
            .plugin(Tables)
            .plugin(rest())
            .start()
            .await
            .expect("app starts"),
    )
}

macro_rules! both_here {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(app) = super::start(false, stringify!($name)).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(app) = super::start(true, stringify!($name)).await {
                    super::$name(&app).await;
                    app.stop().await;
                }
            }
        }
    };
}

/// Ada manages Ben and Cy; Ben manages Dee.
async fn staff(app: &TestApp) {
    for row in [
        json!({"id": 1, "name": "Ada", "manager_id": null}),
        json!({"id": 2, "name": "Ben", "manager_id": 1}),
        json!({"id": 3, "name": "Cy", "manager_id": 1}),
        json!({"id": 4, "name": "Dee", "manager_id": 2}),
    ] {
        seed(app, "employees", json!([row])).await;
    }
}

/// Acme referees Beta; Beta referees Gamma; Acme audits both.
async fn orgs(app: &TestApp) {
    for row in [
        json!({"id": 1, "name": "Acme", "referee": null, "auditor": null}),
        json!({"id": 2, "name": "Beta", "referee": 1, "auditor": 1}),
        json!({"id": 3, "name": "Gamma", "referee": 2, "auditor": 1}),
    ] {
        seed(app, "organizations", json!([row])).await;
    }
}

both_here!(both_sides_of_a_self_reference);
async fn both_sides_of_a_self_reference(app: &TestApp) {
    staff(app).await;
    // Many-to-one through the column, one-to-many through the table with
    // the column as hint, in one request.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,manager:manager_id(name),reports:employees!manager_id(name)\
         &order=id&reports.order=id",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([
            {"name": "Ada", "manager": null, "reports": [{"name": "Ben"}, {"name": "Cy"}]},
            {"name": "Ben", "manager": {"name": "Ada"}, "reports": [{"name": "Dee"}]},
            {"name": "Cy", "manager": {"name": "Ada"}, "reports": []},
            {"name": "Dee", "manager": {"name": "Ben"}, "reports": []},
        ])
    );
    // One self-referencing key: the table name alone is the one-to-many
    // side (no ambiguity), and the constraint name works as a hint too.
    for path in [
        "/employees?select=name,employees(name)&id=eq.2",
        "/employees?select=name,employees!employees_manager_id_fkey(name)&id=eq.2",
    ] {
        let r = get(app, As::Anon, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(
            r.json,
            json!([{"name": "Ben", "employees": [{"name": "Dee"}]}]),
            "{path}"
        );
    }
}

both_here!(nested_filtered_and_spread_self_embeds);
async fn nested_filtered_and_spread_self_embeds(app: &TestApp) {
    staff(app).await;
    // Two levels down: reports of reports.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,reports:employees(name,reports:employees(name))&id=eq.1&reports.order=name",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ada", "reports": [
            {"name": "Ben", "reports": [{"name": "Dee"}]},
            {"name": "Cy", "reports": []},
        ]}])
    );
    // Two levels up: the manager's manager.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,manager:manager_id(name,manager:manager_id(name))&id=eq.4",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Dee", "manager": {"name": "Ben", "manager": {"name": "Ada"}}}])
    );
    // !inner and a filter on the embedded copy.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,manager:manager_id!inner(name)&manager.name=eq.Ada&order=id",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ben", "manager": {"name": "Ada"}}, {"name": "Cy", "manager": {"name": "Ada"}}])
    );
    // Order and limit inside the one-to-many side.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,reports:employees(name)&id=eq.1&reports.order=name.desc&reports.limit=1",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ada", "reports": [{"name": "Cy"}]}])
    );
    // A filter on the one-to-many side keeps every parent.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,reports:employees(name)&reports.name=eq.Dee&order=id&limit=2",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ada", "reports": []}, {"name": "Ben", "reports": [{"name": "Dee"}]}])
    );
    // Spread of the many-to-one side.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,...manager_id(boss:name)&id=eq.2",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "Ben", "boss": "Ada"}]));
    // Hidden columns stay hidden in the embedded copy.
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,reports:employees(*)&id=eq.2",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Ben", "reports": [{"id": 4, "name": "Dee", "manager_id": 2}]}])
    );
    let r = get(
        app,
        As::Anon,
        "/employees?select=name,reports:employees(salary)&id=eq.2",
    )
    .await;
    r.assert_error(400, "42703");
}

both_here!(several_self_references);
async fn several_self_references(app: &TestApp) {
    orgs(app).await;
    // No hint with two self-referencing keys: ambiguous, as in PostgREST.
    get(
        app,
        As::Anon,
        "/organizations?select=name,organizations(name)&id=eq.1",
    )
    .await
    .assert_error(300, "PGRST201");
    // The referencing column as hint picks the one-to-many side of that key.
    let r = get(
        app,
        As::Anon,
        "/organizations?select=name,refereeds:organizations!referee(name),\
         auditees:organizations!auditor(name)&id=eq.1&auditees.order=id",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Acme", "refereeds": [{"name": "Beta"}],
                "auditees": [{"name": "Beta"}, {"name": "Gamma"}]}])
    );
    // The columns as targets: the many-to-one sides.
    let r = get(
        app,
        As::Anon,
        "/organizations?select=name,referee(name),auditor(name)&id=eq.3",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "Gamma", "referee": {"name": "Beta"}, "auditor": {"name": "Acme"}}])
    );
    // The constraint name as hint.
    let r = get(
        app,
        As::Anon,
        "/organizations?select=name,organizations!organizations_auditor_fkey(name)&id=eq.2",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "Beta", "organizations": []}]));
    // Hints that match nothing, a column target with a hint, a column that
    // is no foreign key: 400 PGRST200.
    for path in [
        "/organizations?select=name,organizations!nope(name)",
        "/organizations?select=name,organizations!name(name)",
        "/organizations?select=name,referee!auditor(name)",
        "/organizations?select=name,name(name)",
    ] {
        get(app, As::Anon, path).await.assert_error(400, "PGRST200");
    }
}
