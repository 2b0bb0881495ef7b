//! `PATCH /rest/v1/{table}`: update the rows matching the filters.

use super::*;

/// Updates the rows matching the filters.
///
/// # Errors
/// Every [`RestError`] an update can meet; nothing is written then.
pub async fn patch(
    req: HttpRequest,
    state: web::Data<RestState>,
    table: web::Path<String>,
    principal: Principal,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let c = common(&req, &state, &table, &principal, true).await?;
    let body = read_body(&state, payload).await?;
    let full = Arc::clone(&c.resolved.table);
    let target = Target {
        table: &full,
        visible: &c.resolved.visible,
        backend: c.resolved.backend,
        alias: None,
    };
    let cols = representation_columns(&state, &principal, &c, &target).await?;
    let Value::Object(patch) = body_json(&body)? else {
        return Err(RestError::InvalidBody("Expected a JSON object".into()));
    };
    for k in patch.keys() {
        if target.visible.column(k).is_none() {
            return Err(RestError::BodyColumnNotFound {
                table: full.name.clone(),
                column: k.chars().take(63).collect(),
            });
        }
    }
    state.check_writable(&principal, &full.name, patch.keys())?;
    coerce_record(&target, &patch)?;
    if c.query.filters.is_empty() {
        return Err(RestError::RequiresWhere { verb: "UPDATE" });
    }
    let anon = anonymous(&principal);
    let update_decision = state.decide(&principal, Action::Update, &table).await;
    let select_decision = state.decide(&principal, Action::Select, &table).await;
    let update_policy = decision_cond(&update_decision);
    let rows = candidates(
        &state,
        &target,
        &c.query,
        &[update_policy.clone(), decision_cond(&select_decision)],
    )
    .await?;

    c.prefer.check_affected(rows.len())?;
    let mut events = Vec::with_capacity(rows.len());
    for old in rows {
        let mut merged = old.clone();
        if let Value::Object(m) = &mut merged {
            for (k, v) in &patch {
                m.insert(k.clone(), v.clone());
            }
        }
        if !update_decision.permits(&merged) {
            return Err(RestError::PolicyViolation {
                table: full.name.clone(),
                anonymous: anon,
            });
        }
        events.push(
            RecordEvent::new("public", full.name.clone(), Value::Object(patch.clone()))
                .with_principal(principal.clone())
                .with_old_record(old),
        );
    }

    let slot = Slot::default();
    let exec_slot = slot.clone();
    let exec_table = Arc::clone(&full);
    let backend = c.resolved.backend;
    let decision = update_decision.clone();
    let write = write_fn(move |tx, mut event: RecordEvent| {
        let slot = exec_slot.clone();
        let table = Arc::clone(&exec_table);
        let decision = decision.clone();
        Box::pin(async move {
            let target = Target {
                table: &table,
                visible: &table,
                backend,
                alias: None,
            };
            let set = match &event.record {
                Value::Object(m) => m.clone(),
                _ => {
                    return Err(
                        slot.fail(RestError::InvalidBody("a hook replaced the record".into()))
                    );
                }
            };
            let old = event.old_record.clone().unwrap_or(Value::Null);
            let mut merged = old.clone();
            if let Value::Object(m) = &mut merged {
                for (k, v) in &set {
                    m.insert(k.clone(), v.clone());
                }
            }
            if !decision.permits(&merged) {
                return Err(slot.fail(RestError::PolicyViolation {
                    table: table.name.clone(),
                    anonymous: anon,
                }));
            }
            let coerced = coerce_record(&target, &set).map_err(|err| slot.fail(err))?;
            let cond = row_cond(&target, &old, decision_cond(&decision).as_ref())
                .map_err(|err| slot.fail(err))?;
            if coerced.is_empty() {
                event.record = old;
                return Ok(event);
            }
            let stmt = build::update(&target, &coerced, cond);
            let row = tx
                .query_one_raw(tx.get_database_backend().build(&stmt))
                .await
                .map_err(goforward_core::Error::Database)?;
            event.record = returned(&table, backend, row)?;
            Ok(event)
        })
    });
    let written = execute(
        &state,
        RecordAction::Update,
        events,
        c.rollback,
        &c.settings,
        write,
    )
    .await
    .map_err(|e| state.timeout_error(slot.take(e)))?;
    let rows: Vec<Value> = written.into_iter().map(|e| e.record).collect();
    let range = total_range(&c.prefer, rows.len(), true);
    let body = body_rows(&state, &target, &c, &cols, &rows, &select_decision).await?;
    respond(
        &c,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        range,
        body,
        &cols,
    )
}
