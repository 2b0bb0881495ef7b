//! `POST /object/list/{bucket}`: direct children of a prefix, folders as
//! pseudo-entries, with search, sorting and paging.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use goforward_core::access::{Action, escape_like};
use goforward_core::sea_query::{Expr, ExprTrait, LikeExpr};
use goforward_core::token::Principal;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::objects::row_json;
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

/// One entry: a file (its row) or a folder (name only).
struct Entry<'a> {
    name: String,
    row: Option<&'a object::Model>,
}

impl Entry<'_> {
    fn key(&self, column: SortColumn) -> Option<chrono::DateTime<chrono::Utc>> {
        self.row.map(|r| match column {
            SortColumn::UpdatedAt => r.updated_at,
            SortColumn::CreatedAt => r.created_at,
            SortColumn::LastAccessedAt | SortColumn::Name => r.last_accessed_at,
        })
    }

    fn json(&self) -> Value {
        match self.row {
            None => json!({
                "name": self.name, "id": null, "updated_at": null, "created_at": null,
                "last_accessed_at": null, "metadata": null,
            }),
            Some(r) => json!({
                "name": self.name,
                "id": r.id,
                "updated_at": ts(&r.updated_at),
                "created_at": ts(&r.created_at),
                "last_accessed_at": ts(&r.last_accessed_at),
                "metadata": r.metadata,
            }),
        }
    }
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
    let search = body.search.as_deref().unwrap_or_default().to_lowercase();

    let rule = state
        .decide(&who, Action::List, &bucket, &prefix, None, None)
        .await;
    if !rule.is_allowed() {
        return Ok(HttpResponse::Ok().json(Vec::<Value>::new()));
    }
    let pattern = format!("{}%", escape_like(&prefix));
    let rows = object::Entity::find()
        .filter(object::Column::BucketId.eq(bucket.as_str()))
        .filter(Expr::col(object::Column::Name).like(LikeExpr::new(pattern).escape('\\')))
        .all(&state.db)
        .await?;

    // Folders are deduplicated by name; files keep their row.
    let mut entries: BTreeMap<String, Entry<'_>> = BTreeMap::new();
    for row in &rows {
        let Some(rest) = row.name.strip_prefix(prefix.as_str()) else {
            continue; // LIKE is case-insensitive on SQLite
        };
        if !rule.permits(&row_json(row)) {
            continue;
        }
        let (child, is_folder) = match rest.split_once('/') {
            Some((folder, _)) => (folder, true),
            None => (rest, false),
        };
        if !child.to_lowercase().starts_with(&search) {
            continue;
        }
        if is_folder {
            entries.entry(format!("{child}/")).or_insert(Entry {
                name: child.to_owned(),
                row: None,
            });
        } else {
            entries.insert(
                child.to_owned(),
                Entry {
                    name: child.to_owned(),
                    row: Some(row),
                },
            );
        }
    }
    let mut list: Vec<Entry<'_>> = entries.into_values().collect();
    match column {
        SortColumn::Name => list.sort_by(|a, b| a.name.cmp(&b.name)),
        // Folders (no timestamps) sort last ascending, as PostgreSQL orders NULLs.
        c => list.sort_by(|a, b| match (a.key(c), b.key(c)) {
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.name.cmp(&b.name)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.name.cmp(&b.name),
        }),
    }
    if descending {
        list.reverse();
    }
    let page: Vec<Value> = list
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(Entry::json)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}
