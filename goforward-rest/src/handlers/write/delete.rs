//! `DELETE /rest/v1/{table}`: delete the rows matching the filters.

use super::*;

/// Deletes the rows matching the filters.
///
/// # Errors
/// Every [`RestError`] a delete can meet; nothing is deleted then.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<RestState>,
    table: web::Path<String>,
    principal: Principal,
) -> Result<HttpResponse> {
    let c = common(&req, &state, &table, &principal, false).await?;
    let full = Arc::clone(&c.resolved.table);
    let target = Target {
        table: &full,
        visible: &c.resolved.visible,
        backend: c.resolved.backend,
        alias: None,
    };
    let cols = target.select_list(c.query.select.as_deref())?;
    if c.query.filters.is_empty() {
        return Err(RestError::RequiresWhere { verb: "DELETE" });
    }
    let delete_decision = state.decide(&principal, Action::Delete, &table).await;
    let select_decision = state.decide(&principal, Action::Select, &table).await;
    let delete_policy = decision_cond(&delete_decision);
    let rows = candidates(
        &state,
        &target,
        &c.query,
        &[delete_policy.clone(), decision_cond(&select_decision)],
    )
    .await?;
    c.prefer.check_affected(rows.len())?;
    let events: Vec<RecordEvent> = rows
        .into_iter()
        .map(|old| {
            RecordEvent::new("public", full.name.clone(), old.clone())
                .with_principal(principal.clone())
                .with_old_record(old)
        })
        .collect();

    let slot = Slot::default();
    let exec_slot = slot.clone();
    let exec_table = Arc::clone(&full);
    let backend = c.resolved.backend;
    let write = write_fn(move |tx, mut event: RecordEvent| {
        let slot = exec_slot.clone();
        let table = Arc::clone(&exec_table);
        let policy = delete_policy.clone();
        Box::pin(async move {
            let target = Target {
                table: &table,
                visible: &table,
                backend,
                alias: None,
            };
            let old = event.old_record.clone().unwrap_or(Value::Null);
            let cond = row_cond(&target, &old, policy.as_ref()).map_err(|err| slot.fail(err))?;
            let stmt = build::delete(&target, cond);
            let row = tx
                .query_one_raw(tx.get_database_backend().build(&stmt))
                .await
                .map_err(goforward_core::Error::Database)?;
            let deleted = returned(&table, backend, row)?;
            if deleted.is_null() {
                event.old_record = None;
            } else {
                event.old_record = Some(deleted.clone());
            }
            event.record = deleted;
            Ok(event)
        })
    });
    let written = execute(
        &state,
        RecordAction::Delete,
        events,
        c.rollback,
        &c.settings,
        write,
    )
    .await
    .map_err(|e| state.timeout_error(slot.take(e)))?;
    let rows: Vec<Value> = written.into_iter().map(|e| e.record).collect();
    let range = total_range(&c.prefer, rows.len(), false);
    let body = representation(&rows, &select_decision, &cols);
    respond(
        &c,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        range,
        body,
        &cols,
    )
}
