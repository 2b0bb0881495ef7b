//! `GET` / `HEAD /rest/v1/{table}`.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use goforward_core::{
    Principal,
    access::Action,
    filter::SqlBackend,
    sea_orm::{ConnectionTrait, Statement},
};

use super::{RestState, decision_cond, with_range};
use crate::error::{RestError, Result};
use crate::output;
use crate::plan::{Decode, Target, read};
use crate::query::{Accept, RangeHeader, headers::check_profile, parse_query};

/// Reads rows.
///
/// # Errors
/// Every [`RestError`] a read can meet.
pub async fn get(
    req: HttpRequest,
    state: web::Data<RestState>,
    table: web::Path<String>,
    principal: Principal,
) -> Result<HttpResponse> {
    check_profile(&req, false)?;
    let accept = Accept::from_request(&req)?;
    let resolved = state.resolve_as(&table, &principal)?;
    let query = parse_query(req.query_string(), &state.limits)?;
    if !state.aggregates
        && query
            .select
            .as_deref()
            .is_some_and(crate::query::select::has_aggregate)
    {
        return Err(RestError::AggregatesDisabled);
    }
    let mut prefer = crate::query::Prefer::from_request(&req);
    prefer.check()?;
    if let Some(tx) = prefer.tx {
        // A read has nothing to roll back: the preference holds when allowed.
        let (_, allowed) = state.tx_end.rollback(Some(tx));
        let item = if tx { "tx=rollback" } else { "tx=commit" };
        prefer.settle(item.to_owned(), allowed)?;
    }
    let zone = match prefer.timezone.clone() {
        None => None,
        Some(zone) => {
            let known =
                resolved.backend == SqlBackend::Postgres && timezone_exists(&state, &zone).await?;
            prefer.settle(format!("timezone={zone}"), known)?;
            known.then_some(zone)
        }
    };
    let range = RangeHeader::from_request(&req)?;
    let target = Target {
        table: &resolved.table,
        visible: &resolved.visible,
        backend: resolved.backend,
        alias: None,
    };
    let decision = state.decide(&principal, Action::Select, &table).await;
    let mut embeds = state.embeds(&principal, query.select.as_deref()).await;
    if !query.embedded.is_empty() {
        let mut known = Vec::new();
        if let Some(items) = query.select.as_deref() {
            crate::plan::embed::paths(items, &[], &mut known);
        }
        if let Some(path) = query.embedded.keys().find(|p| !known.contains(p)) {
            return Err(RestError::parse(
                format!("failed to parse parameter ({}.…)", path.join(".")),
                "filters and modifiers apply to embedded resources named in select",
            ));
        }
        embeds.modifiers = query.embedded.clone();
    }
    // The default select list comes planned (and rendered) per table.
    let star = match query.select.as_deref() {
        None | Some([crate::query::SelectItem::Star]) if query.embedded.is_empty() => {
            state.star_list(&resolved)
        }
        _ => None,
    };
    let planned;
    let cols: &[crate::plan::OutCol] = match &star {
        Some(list) => &list.cols,
        None => {
            planned = target.select_list_with(query.select.as_deref(), &embeds)?;
            &planned
        }
    };
    let list_sql = star.as_deref().map(|list| list.sql.as_str());
    let policy = decision_cond(&decision);
    let mut cond = read::where_cond(&target, &query.filters, policy.as_ref())?;
    for inner in cols.iter().filter_map(|c| c.inner.clone()) {
        cond = cond.add(inner);
    }

    if query.limit.is_some_and(|l| l > state.max_rows) {
        return Err(RestError::TooComplex(format!(
            "limit exceeds the maximum of {} rows",
            state.max_rows
        )));
    }
    let offset = query.offset.or(range.map(|r| r.first)).unwrap_or(0);
    let mut limit = query.limit.unwrap_or(state.max_rows);
    if let Some(RangeHeader {
        first,
        last: Some(last),
    }) = range
    {
        limit = limit.min(last - first + 1);
    }
    limit = limit.min(state.max_rows);

    let db = state.ctx.db();
    let backend = db.get_database_backend();
    // SQLite gets its bounds as literals (see `read::with_literal_bounds`).
    let literal_bounds = resolved.backend == SqlBackend::Sqlite;
    let stmt = if literal_bounds {
        read::select_listed(&target, cols, list_sql, cond.clone(), &query.order, None, 0)?
    } else {
        read::select_listed(
            &target,
            cols,
            list_sql,
            cond.clone(),
            &query.order,
            Some(limit),
            offset,
        )?
    };
    let count_stmt = match (prefer.count, cols.iter().any(|c| c.aggregate)) {
        (false, _) => None,
        (true, false) => Some(backend.build(&read::count(&target, cond))),
        // With aggregates the total is the number of groups.
        (true, true) => Some(backend.build(&read::count_rows(read::select(
            &target,
            cols,
            cond,
            &[],
            None,
            0,
        )?))),
    };
    let settings = match resolved.backend {
        SqlBackend::Postgres => state.pg_settings(&principal, zone.as_deref())?,
        _ => Vec::new(),
    };
    let bounded = super::scope::bounded_lookup(&resolved.visible, &query.filters, cols);
    let built = match literal_bounds {
        true => read::with_literal_bounds(backend.build(&stmt), limit, offset),
        false => backend.build(&stmt),
    };
    let (rows, total) = super::scope::read(&state, &settings, bounded, built, count_stmt).await?;
    let decodes: Vec<_> = cols
        .iter()
        .map(|c| match c.decode {
            Decode::Timestamptz if zone.is_some() => Decode::TimestamptzZoned,
            d => d,
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut row =
            read::decode_row(row, &decodes, resolved.backend).map_err(RestError::from_db)?;
        for (value, col) in row.iter_mut().zip(cols) {
            if let Some(shape) = &col.shape {
                *value =
                    shape.normalize_in(std::mem::take(value), resolved.backend, zone.is_some());
            }
        }
        values.push(row);
    }

    if let Some(total) = total
        && offset > 0
        && offset >= total
        && values.is_empty()
    {
        return Err(RestError::InvalidRange {
            details: format!(
                "An offset of {offset} was requested, but there are only {total} rows."
            ),
        });
    }
    let total_text = total.map_or("*".to_owned(), |t| t.to_string());
    let content_range = if values.is_empty() {
        format!("*/{total_text}")
    } else {
        format!("{offset}-{}/{total_text}", offset + values.len() as u64 - 1)
    };
    let partial = total.is_some_and(|t| (values.len() as u64) < t);
    let status = if partial && accept != Accept::Object {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let listed;
    let names: &[String] = match &star {
        Some(list) => &list.names,
        None => {
            listed = cols.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            &listed
        }
    };
    let (body, content_type) = match accept {
        Accept::Object => {
            if values.len() != 1 {
                return Err(RestError::Singular { rows: values.len() });
            }
            (
                output::object(names, &values[0]),
                "application/vnd.pgrst.object+json; charset=utf-8",
            )
        }
        Accept::Csv => (output::csv(names, &values), "text/csv; charset=utf-8"),
        Accept::Json => (
            output::array(names, &values),
            "application/json; charset=utf-8",
        ),
    };
    let mut res = with_range(status, content_range);
    res.content_type(content_type);
    if !prefer.applied.is_empty() {
        res.insert_header(("Preference-Applied", prefer.applied.join(", ")));
    }
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(res.finish());
    }
    Ok(res.body(body))
}

/// Whether PostgreSQL knows the time zone `zone` (`pg_timezone_names`).
pub(super) async fn timezone_exists(state: &RestState, zone: &str) -> Result<bool> {
    if state
        .known_zones
        .read()
        .is_ok_and(|known| known.contains(zone))
    {
        return Ok(true);
    }
    let db = state.ctx.db();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT 1 FROM pg_timezone_names WHERE name = $1",
            [zone.to_owned().into()],
        ))
        .await
        .map_err(RestError::from_db)?;
    if row.is_some()
        && let Ok(mut known) = state.known_zones.write()
    {
        // Real zone names only (a few hundred), so the set stays small.
        known.insert(zone.to_owned());
    }
    Ok(row.is_some())
}
