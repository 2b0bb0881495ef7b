//! `GET /rest/v1/`: an OpenAPI (Swagger 2.0) description of the tables the
//! caller may read, as PostgREST serves it (supabase-js `getOpenApiSpec`).

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{
    Principal,
    access::{Action, Decision},
};
use serde_json::{Map, Value, json};

use super::RestState;
use crate::error::Result;
use crate::query::headers::check_profile;
use crate::schema::{ColumnKind, Table};

fn property(kind: ColumnKind, primary_key: bool, fk: Option<(&str, &str)>) -> Value {
    let mut p = Map::new();
    let ty = match kind {
        ColumnKind::Int => Some("integer"),
        ColumnKind::Float | ColumnKind::Numeric => Some("number"),
        ColumnKind::Bool => Some("boolean"),
        ColumnKind::Json => None,
        _ => Some("string"),
    };
    if let Some(ty) = ty {
        p.insert("type".into(), json!(ty));
    }
    p.insert("format".into(), json!(kind.name()));
    let mut notes = Vec::new();
    if primary_key {
        notes.push("This is a Primary Key.<pk/>".to_owned());
    }
    if let Some((table, column)) = fk {
        notes.push(format!(
            "This is a Foreign Key to `{table}.{column}`.<fk table='{table}' column='{column}'/>"
        ));
    }
    if !notes.is_empty() {
        p.insert(
            "description".into(),
            json!(format!("Note:\n{}", notes.join("\n"))),
        );
    }
    Value::Object(p)
}

fn definition(table: &Table) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for c in &table.columns {
        let fk = table.foreign_keys.iter().find_map(|fk| {
            let i = fk.columns.iter().position(|x| x == &c.name)?;
            Some((
                fk.foreign_table.as_str(),
                fk.foreign_columns.get(i)?.as_str(),
            ))
        });
        properties.insert(c.name.clone(), property(c.kind, c.primary_key, fk));
        if !c.nullable && !c.has_default {
            required.push(json!(c.name));
        }
    }
    json!({ "type": "object", "required": required, "properties": properties })
}

fn operations(name: &str, writable: bool) -> Value {
    let reference = json!({ "$ref": format!("#/definitions/{name}") });
    let mut ops = Map::new();
    ops.insert(
        "get".into(),
        json!({
            "tags": [name],
            "responses": {
                "200": { "description": "OK", "schema": { "type": "array", "items": reference } },
                "206": { "description": "Partial Content" }
            }
        }),
    );
    if writable {
        for (method, status, description) in [
            ("post", "201", "Created"),
            ("patch", "204", "No Content"),
            ("delete", "204", "No Content"),
        ] {
            ops.insert(
                method.into(),
                json!({ "tags": [name], "responses": { status: { "description": description } } }),
            );
        }
    }
    Value::Object(ops)
}

/// The OpenAPI document of the tables the caller may read.
///
/// # Errors
/// 406 `PGRST106` for a schema other than `public`.
pub async fn spec(
    req: HttpRequest,
    state: web::Data<RestState>,
    principal: Principal,
) -> Result<HttpResponse> {
    check_profile(&req, false)?;
    let schema = state.cache.snapshot();
    let mut paths = Map::new();
    let mut definitions = Map::new();
    paths.insert(
        "/".into(),
        json!({ "get": { "tags": ["Introspection"], "summary": "OpenAPI description (this document)",
                         "responses": { "200": { "description": "OK" } } } }),
    );
    let mut names = state.ctx.access().policies().tables();
    names.sort();
    for name in names {
        let Some(table) = schema.table(&name) else {
            continue;
        };
        if state.decide(&principal, Action::Select, &name).await == Decision::Deny {
            continue;
        }
        // Hidden columns and those the caller's role may not read stay out.
        let visible = match state.resolve_as(&name, &principal) {
            Ok(resolved) => (*resolved.visible).clone(),
            Err(_) => continue,
        };
        let mut writable = false;
        for action in [Action::Insert, Action::Update, Action::Delete] {
            if state.decide(&principal, action, &name).await != Decision::Deny {
                writable = true;
            }
        }
        paths.insert(
            format!("/{name}"),
            operations(&name, writable && !table.is_view),
        );
        definitions.insert(name.clone(), definition(&visible));
    }
    let mut functions: Vec<&String> = state
        .functions
        .keys()
        .chain(
            state
                .pg_functions
                .iter()
                .filter(|f| schema.functions.contains_key(f.as_str())),
        )
        .collect();
    functions.sort();
    functions.dedup();
    for name in functions {
        paths.insert(
            format!("/rpc/{name}"),
            json!({
                "post": { "tags": ["(rpc) ".to_owned() + name], "responses": { "200": { "description": "OK" } } },
                "get": { "tags": ["(rpc) ".to_owned() + name], "responses": { "200": { "description": "OK" } } }
            }),
        );
    }
    let doc = json!({
        "swagger": "2.0",
        "info": {
            "title": "GoForward REST API",
            "description": "PostgREST-compatible data API",
            "version": env!("CARGO_PKG_VERSION")
        },
        "basePath": "/rest/v1",
        "schemes": ["http", "https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
    });
    Ok(HttpResponse::Ok()
        .content_type("application/openapi+json; charset=utf-8")
        .body(doc.to_string()))
}
