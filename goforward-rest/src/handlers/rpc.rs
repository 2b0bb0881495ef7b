//! `POST|GET|HEAD /rest/v1/rpc/{name}`: functions the host registered with
//! [`Rest::rpc`](crate::Rest::rpc) (on SQLite and PostgreSQL alike).

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use actix_web::{HttpRequest, HttpResponse, http::Method, web};
use goforward_core::{Principal, sea_orm::DatabaseConnection};
use serde_json::{Map, Value};

use super::RestState;
use crate::error::{RestError, Result};
use crate::query::{Accept, Prefer, headers::Return};

/// One call of a registered function.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct RpcCall {
    /// Who calls (the handler decides what they may do).
    pub principal: Principal,
    /// Named arguments: the JSON body of a POST, or the query parameters
    /// (as strings) of a GET.
    pub args: Map<String, Value>,
    /// The database.
    pub db: DatabaseConnection,
    /// `true` for GET / HEAD: the handler should not write.
    pub read_only: bool,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Value>> + Send>>;

/// A registered function.
pub type RpcHandler = Arc<dyn Fn(RpcCall) -> BoxFuture + Send + Sync>;

/// Wraps an async function as an [`RpcHandler`].
pub fn handler<F, Fut>(f: F) -> RpcHandler
where
    F: Fn(RpcCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value>> + Send + 'static,
{
    Arc::new(move |call| Box::pin(f(call)))
}

/// The registered functions by name.
pub type Functions = Arc<HashMap<String, RpcHandler>>;

fn not_found(name: &str) -> RestError {
    RestError::FunctionNotFound(name.chars().take(63).collect())
}

/// Calls a registered function; `null` answers 204, anything else 200 with JSON.
///
/// # Errors
/// 404 `PGRST202` for unknown functions, 400 `PGRST102` for a body that is
/// not a JSON object, and whatever the function returns.
pub async fn call(
    req: HttpRequest,
    state: web::Data<RestState>,
    name: web::Path<String>,
    principal: Principal,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let handler = state.functions.get(name.as_str()).cloned();
    let pg_function = match handler {
        Some(_) => None,
        None if state.pg_functions.contains(name.as_str()) => Some(
            state
                .cache
                .snapshot()
                .functions
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| not_found(&name))?,
        ),
        None => return Err(not_found(&name)),
    };
    let accept = Accept::from_request(&req)?;
    let mut prefer = Prefer::from_request(&req);
    prefer.check()?;
    prefer.settle_unsupported()?;
    let read_only = req.method() == Method::GET || req.method() == Method::HEAD;
    let body = super::write::read_body(&state, payload).await?;
    let args = if read_only {
        let mut args = Map::new();
        let raw = req.query_string();
        if raw.len() > state.limits.max_query_len {
            return Err(RestError::TooComplex(format!(
                "the query string exceeds {} bytes",
                state.limits.max_query_len
            )));
        }
        for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
            args.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        args
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(RestError::InvalidBody(
                    "Expected a JSON object of named arguments".into(),
                ));
            }
        }
    };
    let result = match (handler, pg_function) {
        (Some(handler), _) => {
            let run = handler(RpcCall {
                principal,
                args,
                db: state.ctx.db().clone(),
                read_only,
            });
            // A Rust function past the statement timeout is dropped at its
            // next await (a transaction it holds rolls back on drop).
            match state.statement_timeout {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(result) => result.map_err(|e| state.timeout_error(e))?,
                    Err(_) => {
                        return Err(RestError::StatementTimeout {
                            limit_ms: state.timeout_ms(),
                        });
                    }
                },
                None => run.await?,
            }
        }
        (None, Some(function)) => call_pg(&state, &function, &principal, args, read_only).await?,
        (None, None) => return Err(not_found(&name)),
    };
    if result.is_null() {
        return Ok(HttpResponse::NoContent().finish());
    }
    let result = match (accept, result) {
        (Accept::Object, Value::Array(mut items)) => {
            if items.len() != 1 {
                return Err(RestError::Singular { rows: items.len() });
            }
            items.remove(0)
        }
        (Accept::Csv, _) => {
            return Err(RestError::NotAcceptable("text/csv".into()));
        }
        (_, v) => v,
    };
    if req.method() == Method::HEAD
        || prefer.return_ == Return::Minimal && prefer.applied.iter().any(|a| a == "return=minimal")
    {
        return Ok(HttpResponse::Ok().finish());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(result.to_string()))
}

/// Calls an exposed PostgreSQL function in one transaction (read-only for
/// GET / HEAD) with `request.jwt.claims` set, as PostgREST does, so the
/// function can check the caller (`current_setting('request.jwt.claims', true)`).
pub(crate) async fn call_pg(
    state: &RestState,
    function: &crate::schema::Function,
    principal: &Principal,
    mut args: Map<String, Value>,
    read_only: bool,
) -> Result<Value> {
    use goforward_core::sea_orm::{ConnectionTrait, TransactionTrait};
    use goforward_core::sea_query::{Alias, Expr, Func, Query};

    let not_found = || RestError::FunctionNotFound(function.name.clone());
    let mut call_args = Vec::new();
    for (name, ty, has_default) in &function.args {
        match args.remove(name) {
            Some(value) => {
                let bound = match value {
                    Value::Null => Expr::cust("NULL"),
                    Value::String(s) => Expr::val(s),
                    other => Expr::val(other.to_string()),
                };
                // Name and type come from the catalog; the value is bound.
                let template = format!("\"{}\" => CAST($1 AS {ty})", name.replace('"', "\"\""));
                call_args.push(Expr::cust_with_exprs(template, [bound]));
            }
            None if *has_default => {}
            None => return Err(not_found()),
        }
    }
    if !args.is_empty() {
        return Err(not_found());
    }
    let call = Func::cust(Alias::new(function.name.as_str())).args(call_args);
    let stmt = if function.returns_set {
        Query::select()
            .expr(Expr::cust(
                "CAST(COALESCE(json_agg(\"gf_rows\"), json_build_array()) AS text)",
            ))
            .from_function(call, Alias::new("gf_rows"))
            .to_owned()
    } else if function.returns_void {
        Query::select().expr(Expr::from(call)).to_owned()
    } else {
        Query::select()
            .expr(Expr::cust_with_exprs(
                "CAST(to_json($1) AS text)",
                [Expr::from(call)],
            ))
            .to_owned()
    };

    let db = state.ctx.db();
    let backend = db.get_database_backend();
    let settings_tx = async {
        let tx = db.begin().await.map_err(RestError::from_db)?;
        if read_only {
            tx.execute_unprepared("SET TRANSACTION READ ONLY")
                .await
                .map_err(RestError::from_db)?;
        }
        // The caller's claims always (the function checks them), plus the
        // statement timeout and, in native RLS mode, the caller's role.
        let mut settings = state.pg_settings(principal, None)?;
        if !settings
            .iter()
            .any(|(name, _)| *name == "request.jwt.claims")
        {
            let claims = Value::Object((*principal.claims).clone()).to_string();
            settings.push(("request.jwt.claims", claims));
        }
        super::scope::apply(&tx, &settings).await?;
        let result = if function.returns_void {
            tx.execute_raw(backend.build(&stmt))
                .await
                .map_err(RestError::from_db)?;
            Value::Null
        } else {
            let row = tx
                .query_one_raw(backend.build(&stmt))
                .await
                .map_err(RestError::from_db)?;
            let text: Option<String> = match row {
                Some(r) => r.try_get_by_index(0).map_err(RestError::from_db)?,
                None => None,
            };
            text.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null)
        };
        tx.commit().await.map_err(RestError::from_db)?;
        Ok(result)
    };
    settings_tx.await.map_err(|e| state.timeout_error(e))
}
