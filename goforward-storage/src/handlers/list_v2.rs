//! `POST /object/list-v2/{bucket}` (storage-js `listV2`): objects under a
//! string prefix, flat or grouped into folders at the next `/`
//! (`with_delimiter`), paged by an opaque cursor, in SQL on both backends.
//!
//! One grouped query folds the permitted rows under the prefix into keys (the
//! object's name, or with `with_delimiter` the name cut after the first `/`
//! below the prefix: a folder), orders them by key (byte order) or by time
//! (the newest row of a folder), then key, and continues after the cursor's
//! position (keyset paging: no `OFFSET`, stable under inserts); a second query
//! loads the rows of the objects on the page.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use goforward_core::access::{Action, Decision, escape_like};
use goforward_core::filter::SqlBackend;
use goforward_core::sea_query::{
    Alias, Condition, Expr, ExprTrait, Func, LikeExpr, Order, Query, SelectStatement, SimpleExpr,
};
use goforward_core::token::Principal;
use sea_orm::{ColumnTrait, EntityTrait, FromQueryResult, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;

use super::State;
use super::list::to_table_filter;
use crate::entity::object;
use crate::error::{Result, StorageError};
use crate::names::{MAX_NAME_BYTES, normalize_prefix, validate_bucket_id};
use crate::state::ts;

/// Largest page (and the default).
const MAX_LIMIT: u64 = 1000;

/// `sortBy` of a `listV2` request.
#[derive(Debug, Deserialize)]
pub(crate) struct SortByV2 {
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

/// Body of a `listV2` request (fields as storage-js sends them; others are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct ListV2Body {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    with_delimiter: Option<bool>,
    #[serde(default, rename = "sortBy")]
    sort_by: Option<SortByV2>,
    #[serde(default, rename = "noncurrentVersions")]
    noncurrent_versions: Option<String>,
    #[serde(default, rename = "deleteMarkers")]
    delete_markers: Option<String>,
    #[serde(default, rename = "exactMatch")]
    exact_match: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SortV2 {
    Name,
    UpdatedAt,
    CreatedAt,
}

impl SortV2 {
    fn column(self) -> Option<object::Column> {
        match self {
            SortV2::Name => None,
            SortV2::UpdatedAt => Some(object::Column::UpdatedAt),
            SortV2::CreatedAt => Some(object::Column::CreatedAt),
        }
    }
}

/// What a cursor carries: the position of the last entry of the previous page
/// and the order it was taken in (a cursor cannot be reused with another order).
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// Sort column.
    s: SortV2,
    /// Descending.
    d: bool,
    /// Whether folders were grouped.
    w: bool,
    /// The prefix.
    p: String,
    /// Key of the last entry.
    k: String,
    /// Its sort time (time orders only).
    #[serde(default)]
    t: Option<DateTime<Utc>>,
}

impl Cursor {
    fn encode(&self) -> Result<String> {
        let json =
            serde_json::to_vec(self).map_err(|e| StorageError::Internal(format!("cursor: {e}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(raw: &str) -> Result<Self> {
        let bad = || StorageError::InvalidRequest("cursor is not valid".into());
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// One entry of a page.
#[derive(Debug, FromQueryResult)]
struct KeyRow {
    key: String,
    folder: i32,
    sort_ts: Option<DateTime<Utc>>,
}

/// Validates a `listV2` prefix: any string prefix of object names. The part up
/// to its last `/` must be a valid folder path; the partial last segment may
/// hold no control character or backslash. Returned NFC-normalised.
fn validate_prefix(raw: &str) -> Result<String> {
    let bad = |why: &str| StorageError::InvalidKey(format!("Invalid prefix: {why}"));
    if raw.len() > MAX_NAME_BYTES {
        return Err(bad("too long"));
    }
    let (folder, partial) = match raw.rfind('/') {
        Some(i) => (&raw[..=i], &raw[i + 1..]),
        None => ("", raw),
    };
    let mut out = if folder.is_empty() {
        String::new()
    } else {
        if folder.starts_with('/') || folder.contains("//") {
            return Err(bad("empty path segment"));
        }
        normalize_prefix(folder)?
    };
    if partial.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad("control character or backslash"));
    }
    out.extend(partial.nfc());
    Ok(out)
}

/// The page query: the permitted rows of `bucket` whose name starts with
/// `prefix` (equals it with `exact`), as keys (grouped at the next `/` with
/// `delimited`), after `cursor`, ordered, `limit` rows.
#[allow(clippy::too_many_arguments)]
fn page_query(
    backend: SqlBackend,
    bucket: &str,
    prefix: &str,
    exact: bool,
    delimited: bool,
    decision: &Decision,
    sort: SortV2,
    descending: bool,
    cursor: Option<&Cursor>,
    limit: u64,
) -> Result<SelectStatement> {
    let name = || Expr::col(object::Column::Name);
    let prefix_chars = i32::try_from(prefix.chars().count())
        .map_err(|_| StorageError::InvalidRequest("prefix too long".into()))?;
    let find = match backend {
        SqlBackend::Sqlite => "instr",
        SqlBackend::Postgres => "strpos",
    };
    let rest = || {
        Func::cust(Alias::new("substr"))
            .arg(name())
            .arg(prefix_chars + 1)
    };
    let slash = || Func::cust(Alias::new(find)).arg(rest()).arg("/");
    let (key, folder): (SimpleExpr, SimpleExpr) = if delimited && !exact {
        (
            Expr::case(
                Expr::expr(slash()).gt(0i32),
                Func::cust(Alias::new("substr"))
                    .arg(name())
                    .arg(1i32)
                    .arg(Expr::expr(slash()).add(prefix_chars)),
            )
            .finally(name())
            .into(),
            Expr::case(Expr::expr(slash()).gt(0i32), 1i32)
                .finally(0i32)
                .into(),
        )
    } else {
        (name(), Expr::val(0i32))
    };

    let mut rows = Condition::all().add(Expr::col(object::Column::BucketId).eq(bucket));
    rows = if exact {
        rows.add(name().eq(prefix))
    } else {
        rows.add(name().like(LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\')))
    };
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
    let ts_column = sort.column().unwrap_or(object::Column::UpdatedAt);
    let mut inner = Query::select();
    inner
        .expr_as(key, Alias::new("key"))
        .expr_as(folder, Alias::new("folder"))
        .expr_as(Expr::col(ts_column), Alias::new("ts"))
        .from(object::Entity)
        .cond_where(rows);

    let t = Alias::new("t");
    let key_col = || Expr::col((t.clone(), Alias::new("key")));
    let folder_col = || Expr::col((t.clone(), Alias::new("folder")));
    let sort_ts = || Func::max(Expr::col((t.clone(), Alias::new("ts"))));
    // Keys in byte order on both backends (PostgreSQL's default collation is
    // locale-aware): fixed fragment, no client input.
    let by_key = || -> SimpleExpr {
        match backend {
            SqlBackend::Sqlite => key_col(),
            SqlBackend::Postgres => Expr::cust("\"t\".\"key\" COLLATE \"C\""),
        }
    };
    let mut page = Query::select();
    page.expr_as(key_col(), Alias::new("key"))
        .expr_as(folder_col(), Alias::new("folder"))
        .expr_as(sort_ts(), Alias::new("sort_ts"))
        .from_subquery(inner.to_owned(), t.clone())
        .group_by_columns([
            (t.clone(), Alias::new("key")),
            (t.clone(), Alias::new("folder")),
        ]);
    let after = |e: SimpleExpr, v: Value| -> SimpleExpr {
        match v {
            Value::String(s) if descending => e.lt(s),
            Value::String(s) => e.gt(s),
            _ => Expr::cust("1 = 0"),
        }
    };
    if let Some(c) = cursor {
        match (sort.column(), c.t) {
            (None, _) => {
                page.and_where(after(by_key(), Value::String(c.k.clone())));
            }
            (Some(_), Some(at)) => {
                let beyond = if descending {
                    Expr::expr(sort_ts()).lt(at)
                } else {
                    Expr::expr(sort_ts()).gt(at)
                };
                page.cond_having(
                    Condition::any().add(beyond).add(
                        Condition::all()
                            .add(Expr::expr(sort_ts()).eq(at))
                            .add(after(by_key(), Value::String(c.k.clone()))),
                    ),
                );
            }
            (Some(_), None) => {
                return Err(StorageError::InvalidRequest("cursor is not valid".into()));
            }
        }
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    if sort.column().is_some() {
        page.order_by_expr(sort_ts().into(), order.clone());
    }
    page.order_by_expr(by_key(), order).limit(limit);
    Ok(page.to_owned())
}

/// `POST /object/list-v2/{bucket}` → `{hasNext, nextCursor?, folders, objects}`.
pub(crate) async fn list_v2(
    state: State,
    who: Principal,
    bucket: web::Path<String>,
    body: web::Json<ListV2Body>,
) -> Result<HttpResponse> {
    validate_bucket_id(&bucket)?;
    state.bucket(&bucket).await?;
    let prefix = validate_prefix(body.prefix.as_deref().unwrap_or_default())?;
    for (field, value) in [
        ("noncurrentVersions", &body.noncurrent_versions),
        ("deleteMarkers", &body.delete_markers),
    ] {
        if value.as_deref().is_some_and(|v| v != "exclude") {
            return Err(StorageError::InvalidRequest(format!(
                "{field}: only \"exclude\" is supported (kept versions are listed by /object/versions)"
            )));
        }
    }
    let limit = body.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let delimited = body.with_delimiter.unwrap_or(false);
    let exact = body.exact_match.unwrap_or(false);
    let sort = body.sort_by.as_ref();
    let column = match sort.and_then(|s| s.column.as_deref()).unwrap_or("name") {
        "name" => SortV2::Name,
        "updated_at" => SortV2::UpdatedAt,
        "created_at" => SortV2::CreatedAt,
        other => {
            return Err(StorageError::InvalidRequest(format!(
                "sortBy.column {other:?}: expected name, updated_at or created_at"
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
    let cursor = match body.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(raw) => {
            let c = Cursor::decode(raw)?;
            if c.s != column || c.d != descending || c.w != delimited || c.p != prefix {
                return Err(StorageError::InvalidRequest(
                    "cursor belongs to another listing (prefix, sortBy or with_delimiter changed)"
                        .into(),
                ));
            }
            Some(c)
        }
        None => None,
    };

    let decision = state
        .decide(&who, Action::List, &bucket, &prefix, None, None)
        .await;
    let empty = || json!({"hasNext": false, "folders": [], "objects": []});
    if !decision.is_allowed() {
        return Ok(HttpResponse::Ok().json(empty()));
    }
    let db_backend = state.db.get_database_backend();
    let backend =
        SqlBackend::try_from(db_backend).map_err(|e| StorageError::Internal(e.to_string()))?;
    let query = page_query(
        backend,
        &bucket,
        &prefix,
        exact,
        delimited,
        &decision,
        column,
        descending,
        cursor.as_ref(),
        limit + 1,
    )?;
    let mut entries = KeyRow::find_by_statement(db_backend.build(&query))
        .all(&state.db)
        .await?;
    let has_next = entries.len() as u64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = match (has_next, entries.last()) {
        (true, Some(last)) => Some(
            Cursor {
                s: column,
                d: descending,
                w: delimited,
                p: prefix.clone(),
                k: last.key.clone(),
                t: column.column().and(last.sort_ts),
            }
            .encode()?,
        ),
        _ => None,
    };

    let files: Vec<String> = entries
        .iter()
        .filter(|e| e.folder == 0)
        .map(|e| e.key.clone())
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
    // Names are relative to the folder the prefix is in.
    let base = prefix.rfind('/').map_or(0, |i| i + 1);
    let relative = |key: &str| key.get(base..).unwrap_or(key).to_owned();
    let mut folders = Vec::new();
    let mut objects = Vec::new();
    for e in &entries {
        if e.folder != 0 {
            folders.push(json!({
                "name": relative(e.key.trim_end_matches('/')),
                "key": e.key,
            }));
        } else if let Some(r) = rows.remove(&e.key) {
            // (A file deleted between the two queries is left out.)
            objects.push(json!({
                "name": relative(&e.key),
                "key": e.key,
                "id": r.id,
                "version": r.version,
                "updated_at": ts(&r.updated_at),
                "created_at": ts(&r.created_at),
                "last_accessed_at": ts(&r.last_accessed_at),
                "metadata": r.metadata,
                "user_metadata": r.user_metadata,
            }));
        }
    }
    let mut out = json!({"hasNext": has_next, "folders": folders, "objects": objects});
    if let (Some(c), Some(o)) = (next_cursor, out.as_object_mut()) {
        o.insert("nextCursor".into(), json!(c));
    }
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(validate_prefix("").unwrap(), "");
        assert_eq!(validate_prefix("fo").unwrap(), "fo");
        assert_eq!(validate_prefix("a/b/").unwrap(), "a/b/");
        assert_eq!(validate_prefix("a/b/c").unwrap(), "a/b/c");
        assert_eq!(validate_prefix("a/.hid").unwrap(), "a/.hid");
        for bad in ["/a", "a//b", "../x/", "a/../b", "a/\u{0}", "a\\b", "a/b\n"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(validate_prefix(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            s: SortV2::UpdatedAt,
            d: true,
            w: false,
            p: "x/".into(),
            k: "x/y".into(),
            t: Some(Utc::now()),
        };
        let back = Cursor::decode(&c.encode().unwrap()).unwrap();
        assert_eq!((back.k, back.t), (c.k, c.t));
        assert!(Cursor::decode("not a cursor!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
    }
}
