//! `POST /object/list/{bucket}`: direct children of a prefix, folders as
//! pseudo-entries, with search, sorting and paging — all in SQL.
//!
//! One grouped query folds the rows under the prefix into entries (a file, or
//! the first path segment below the prefix for a folder), applies the access
//! decision, the search, the order and the page; a second query loads the
//! rows of the files on that page. Nothing is loaded beyond one page.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use goforward_core::access::{Action, Decision, escape_like};
use goforward_core::filter::{Filter, SqlBackend};
use goforward_core::sea_query::{
    Alias, Condition, Expr, ExprTrait, Func, LikeExpr, Order, Query, SelectStatement,
};
use goforward_core::token::Principal;
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use crate::entity::object;
use crate::error::{Result, StorageError};
use crate::names::{normalize_prefix, validate_bucket_id};
use crate::state::ts;

/// Largest page.
const MAX_LIMIT: u64 = 1500;

/// `sortBy` of a list request.
#[derive(Debug, Deserialize)]
pub(crate) struct SortBy {
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

/// Body of a list request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListBody {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    sort_by: Option<SortBy>,
    #[serde(default)]
    search: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortColumn {
    Name,
    UpdatedAt,
    CreatedAt,
    LastAccessedAt,
}

impl SortColumn {
    fn column(self) -> Option<object::Column> {
        match self {
            SortColumn::Name => None,
            SortColumn::UpdatedAt => Some(object::Column::UpdatedAt),
            SortColumn::CreatedAt => Some(object::Column::CreatedAt),
            SortColumn::LastAccessedAt => Some(object::Column::LastAccessedAt),
        }
    }
}

/// The fields of the object row access rules see ([`crate::state::object_row`]),
/// as columns of `storage_objects` (`owner_id` is `owner`).
fn rule_column(field: &str) -> Option<&'static str> {
    match field {
        "bucket_id" => Some("bucket_id"),
        "name" => Some("name"),
        "owner" | "owner_id" => Some("owner"),
        "metadata" => Some("metadata"),
        "user_metadata" => Some("user_metadata"),
        _ => None,
    }
}

/// `filter` over the object row, rewritten over the columns of `storage_objects`.
pub(super) fn to_table_filter(filter: &Filter) -> Result<Filter> {
    Ok(match filter {
        Filter::True => Filter::True,
        Filter::False => Filter::False,
        Filter::And { filters } => Filter::And {
            filters: filters.iter().map(to_table_filter).collect::<Result<_>>()?,
        },
        Filter::Or { filters } => Filter::Or {
            filters: filters.iter().map(to_table_filter).collect::<Result<_>>()?,
        },
        Filter::Not { filter } => Filter::Not {
            filter: Box::new(to_table_filter(filter)?),
        },
        Filter::Cmp(cmp) => {
            let column = rule_column(&cmp.column).ok_or_else(|| {
                StorageError::Internal(format!(
                    "an access rule for objects refers to `{}`, which objects do not have",
                    cmp.column
                ))
            })?;
            let mut cmp = cmp.clone();
            cmp.column = column.to_owned();
            Filter::Cmp(cmp)
        }
    })
}

/// One entry of a page: its name and whether it is a folder.
#[derive(Debug, FromQueryResult)]
struct EntryRow {
    entry: String,
    folder: i32,
}

/// A folder entry.
fn folder_json(name: &str) -> Value {
    json!({
        "name": name, "id": null, "updated_at": null, "created_at": null,
        "last_accessed_at": null, "metadata": null,
    })
}

/// A file entry.
fn file_json(name: &str, r: &object::Model) -> Value {
    json!({
        "name": name,
        "id": r.id,
        "updated_at": ts(&r.updated_at),
        "created_at": ts(&r.created_at),
        "last_accessed_at": ts(&r.last_accessed_at),
        "metadata": r.metadata,
    })
}

/// The page query: the rows of `bucket` under `prefix` that `decision`
/// permits, folded into entries (`entry`, `folder` 0/1), searched, ordered, paged.
#[allow(clippy::too_many_arguments)]
fn page_query(
    backend: SqlBackend,
    bucket: &str,
    prefix: &str,
    decision: &Decision,
    search: &str,
    column: SortColumn,
    descending: bool,
    limit: u64,
    offset: u64,
) -> Result<SelectStatement> {
    let name = || Expr::col(object::Column::Name);
    // 1-based position where the part below the prefix starts (characters).
    let start = i32::try_from(prefix.chars().count())
        .map_err(|_| StorageError::InvalidRequest("prefix too long".into()))?
        + 1;
    let rest = || Func::cust(Alias::new("substr")).arg(name()).arg(start);
    let find = match backend {
        SqlBackend::Sqlite => "instr",
        SqlBackend::Postgres => "strpos",
    };
    let slash = || Func::cust(Alias::new(find)).arg(rest()).arg("/");
    let entry = Expr::case(
        Expr::expr(slash()).gt(0i32),
        Func::cust(Alias::new("substr"))
            .arg(rest())
            .arg(1i32)
            .arg(Expr::expr(slash()).sub(1i32)),
    )
    .finally(rest());
    let folder = Expr::case(Expr::expr(slash()).gt(0i32), 1i32).finally(0i32);

    let mut rows = Condition::all()
        .add(Expr::col(object::Column::BucketId).eq(bucket))
        .add(name().like(LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\')));
    match decision {
        Decision::Allow => {}
        Decision::Deny => rows = rows.add(Expr::cust("1 = 0")),
        Decision::AllowWhere(filter) => {
            let condition = to_table_filter(filter)?
                .to_condition(backend)
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            rows = rows.add(condition);
        }
    }
    let mut inner = Query::select();
    inner
        .expr_as(entry, Alias::new("entry"))
        .expr_as(folder, Alias::new("folder"))
        .columns([
            object::Column::UpdatedAt,
            object::Column::CreatedAt,
            object::Column::LastAccessedAt,
        ])
        .from(object::Entity)
        .cond_where(rows);

    let t = Alias::new("t");
    let entry_col = || Expr::col((t.clone(), Alias::new("entry")));
    let folder_col = || Expr::col((t.clone(), Alias::new("folder")));
    let mut page = Query::select();
    page.expr_as(entry_col(), Alias::new("entry"))
        .expr_as(folder_col(), Alias::new("folder"))
        .from_subquery(inner.to_owned(), t.clone())
        .group_by_columns([
            (t.clone(), Alias::new("entry")),
            (t.clone(), Alias::new("folder")),
        ]);
    if !search.is_empty() {
        let pattern = format!("{}%", escape_like(&search.to_lowercase()));
        page.and_where(
            Expr::expr(Func::lower(entry_col())).like(LikeExpr::new(pattern).escape('\\')),
        );
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    // Names in byte order on both backends (PostgreSQL's default collation is
    // locale-aware): the fixed fragment below holds no client input.
    let by_name = || match backend {
        SqlBackend::Sqlite => entry_col(),
        SqlBackend::Postgres => Expr::cust("\"t\".\"entry\" COLLATE \"C\""),
    };
    match column.column() {
        None => {
            page.order_by_expr(by_name(), order.clone())
                .order_by_expr(folder_col(), order);
        }
        Some(ts_column) => {
            // Files by time, then folders (no timestamps) by name; reversed when descending.
            page.order_by_expr(folder_col(), order.clone())
                .order_by_expr(
                    Expr::case(
                        folder_col().eq(0i32),
                        Func::max(Expr::col((t.clone(), ts_column))),
                    )
                    .into(),
                    order.clone(),
                )
                .order_by_expr(by_name(), order);
        }
    }
    page.limit(limit).offset(offset);
    Ok(page.to_owned())
}

/// Lists the direct children of `prefix` the caller may list.
pub(crate) async fn list(
    state: State,
    who: Principal,
    bucket: web::Path<String>,
    body: web::Json<ListBody>,
) -> Result<HttpResponse> {
    validate_bucket_id(&bucket)?;
    state.bucket(&bucket).await?;
    let prefix = normalize_prefix(body.prefix.as_deref().unwrap_or_default())?;
    let limit = std::cmp::min(body.limit.unwrap_or(100), MAX_LIMIT);
    let offset = body.offset.unwrap_or(0);
    let sort = body.sort_by.as_ref();
    let column = match sort.and_then(|s| s.column.as_deref()).unwrap_or("name") {
        "name" => SortColumn::Name,
        "updated_at" => SortColumn::UpdatedAt,
        "created_at" => SortColumn::CreatedAt,
        "last_accessed_at" => SortColumn::LastAccessedAt,
        other => {
            return Err(StorageError::InvalidRequest(format!(
                "sortBy.column {other:?}: expected name, updated_at, created_at or last_accessed_at"
            )));
        }
    };
    let descending = match sort
        .and_then(|s| s.order.as_deref())
        .unwrap_or("asc")
        .to_ascii_lowercase()
        .as_str()
    {
        "asc" => false,
        "desc" => true,
        other => {
            return Err(StorageError::InvalidRequest(format!(
                "sortBy.order {other:?}: expected asc or desc"
            )));
        }
    };
    let search = body.search.as_deref().unwrap_or_default();

    let decision = state
        .decide(&who, Action::List, &bucket, &prefix, None, None)
        .await;
    if !decision.is_allowed() || limit == 0 {
        return Ok(HttpResponse::Ok().json(Vec::<Value>::new()));
    }
    let db_backend = state.db.get_database_backend();
    let backend =
        SqlBackend::try_from(db_backend).map_err(|e| StorageError::Internal(e.to_string()))?;
    let query = page_query(
        backend, &bucket, &prefix, &decision, search, column, descending, limit, offset,
    )?;
    let entries = EntryRow::find_by_statement(db_backend.build(&query))
        .all(&state.db)
        .await?;

    let files: Vec<String> = entries
        .iter()
        .filter(|e| e.folder == 0)
        .map(|e| format!("{prefix}{}", e.entry))
        .collect();
    let mut rows: HashMap<String, object::Model> = if files.is_empty() {
        HashMap::new()
    } else {
        object::Entity::find()
            .filter(object::Column::BucketId.eq(bucket.as_str()))
            .filter(object::Column::Name.is_in(files))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect()
    };
    let page: Vec<Value> = entries
        .iter()
        .filter_map(|e| {
            if e.folder != 0 {
                return Some(folder_json(&e.entry));
            }
            // A file deleted between the two queries is left out.
            rows.remove(&format!("{prefix}{}", e.entry))
                .map(|r| file_json(&e.entry, &r))
        })
        .collect();
    Ok(HttpResponse::Ok().json(page))
}
