//! `POST /rest/v1/{table}`: insert and upsert.

use super::*;

/// Inserts (or upserts) rows.
///
/// # Errors
/// Every [`RestError`] an insert can meet; nothing is written then.
pub async fn post(
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
    let objects: Vec<Map<String, Value>> = match body_json(&body)? {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                _ => Err(RestError::InvalidBody(
                    "All array items must be JSON objects".into(),
                )),
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(RestError::InvalidBody(
                "Expected a JSON object or array".into(),
            ));
        }
    };
    let anon = anonymous(&principal);
    let insert_decision = state.decide(&principal, Action::Insert, &table).await;
    if insert_decision == Decision::Deny {
        return Err(RestError::PolicyViolation {
            table: full.name.clone(),
            anonymous: anon,
        });
    }
    let select_decision = state.decide(&principal, Action::Select, &table).await;

    // The column set: `columns=`, else the keys of the objects.
    let column_set: Vec<String> = match &c.query.columns {
        Some(list) => list.clone(),
        None => {
            let mut keys: Vec<String> = Vec::new();
            for o in &objects {
                for k in o.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            keys
        }
    };
    for name in &column_set {
        if target.visible.column(name).is_none() {
            return Err(RestError::BodyColumnNotFound {
                table: full.name.clone(),
                column: name.chars().take(63).collect(),
            });
        }
    }
    state.check_writable(&principal, &full.name, &column_set)?;
    let required = required_values(&insert_decision);

    let mut events = Vec::with_capacity(objects.len());
    for object in &objects {
        let mut record = Map::new();
        for name in &column_set {
            match object.get(name) {
                Some(v) => {
                    record.insert(name.clone(), v.clone());
                }
                None if c.prefer.missing_default || c.query.columns.is_none() => {}
                None => {
                    record.insert(name.clone(), Value::Null);
                }
            }
        }
        for (col, v) in &required {
            record.entry(col.clone()).or_insert_with(|| v.clone());
        }
        // Validate now, before any hook or SQL runs.
        coerce_record(&target, &record)?;
        for col in &full.columns {
            if !col.nullable && !col.has_default && !record.contains_key(&col.name) {
                return Err(RestError::NotNullViolation {
                    table: full.name.clone(),
                    column: col.name.clone(),
                });
            }
        }
        let row = Value::Object(record);
        if !insert_decision.permits(&row) {
            return Err(RestError::PolicyViolation {
                table: full.name.clone(),
                anonymous: anon,
            });
        }
        events.push(
            RecordEvent::new("public", full.name.clone(), row).with_principal(principal.clone()),
        );
    }
    c.prefer.check_affected(events.len())?;
    if events.is_empty() {
        let range = total_range(&c.prefer, 0, false);
        return respond(
            &c,
            StatusCode::CREATED,
            StatusCode::CREATED,
            range,
            Vec::new(),
            &cols,
        );
    }

    let upsert = match c.prefer.resolution {
        None => None,
        Some(resolution) => {
            let on_conflict = match &c.query.on_conflict {
                Some(list) => list
                    .iter()
                    .map(|n| target.column(n).map(|col| col.name.clone()))
                    .collect::<Result<Vec<_>>>()?,
                None => full.primary_key.clone(),
            };
            if on_conflict.is_empty() {
                return Err(RestError::Unsupported(
                    "upsert needs on_conflict or a primary key".into(),
                ));
            }
            // The conflict target must be a key: the primary key or a unique constraint.
            let same = |key: &[String]| {
                key.len() == on_conflict.len() && key.iter().all(|k| on_conflict.contains(k))
            };
            if !same(&full.primary_key) && !full.unique.iter().any(|u| same(u)) {
                return Err(RestError::NoConflictKey);
            }
            let update_decision = state.decide(&principal, Action::Update, &table).await;
            let guard = match decision_cond(&update_decision) {
                None => None,
                Some(cond) => Some(target.render_in(&cond, true)?),
            };
            Some(build::Upsert {
                on_conflict,
                resolution,
                guard,
            })
        }
    };

    let slot = Slot::default();
    let exec_slot = slot.clone();
    let exec_table = Arc::clone(&full);
    let backend = c.resolved.backend;
    let anon_exec = anon;
    let write = write_fn(move |tx, mut event: RecordEvent| {
        let slot = exec_slot.clone();
        let table = Arc::clone(&exec_table);
        let upsert = upsert.clone();
        Box::pin(async move {
            let target = Target {
                table: &table,
                visible: &table,
                backend,
                alias: None,
            };
            let record = match &event.record {
                Value::Object(m) => m.clone(),
                _ => {
                    return Err(
                        slot.fail(RestError::InvalidBody("a hook replaced the record".into()))
                    );
                }
            };
            let coerced = coerce_record(&target, &record).map_err(|err| slot.fail(err))?;
            let stmt =
                build::insert(&target, &coerced, upsert.as_ref()).map_err(|err| slot.fail(err))?;
            let row = tx
                .query_one_raw(tx.get_database_backend().build(&stmt))
                .await
                .map_err(goforward_core::Error::Database)?;
            let merged_nothing = row.is_none()
                && upsert
                    .as_ref()
                    .is_some_and(|u| u.resolution == Resolution::MergeDuplicates);
            if merged_nothing {
                return Err(slot.fail(RestError::PolicyViolation {
                    table: table.name.clone(),
                    anonymous: anon_exec,
                }));
            }
            event.record = returned(&table, backend, row)?;
            Ok(event)
        })
    });
    let written = execute(
        &state,
        RecordAction::Create,
        events,
        c.rollback,
        &c.settings,
        write,
    )
    .await
    .map_err(|e| state.timeout_error(slot.take(e)))?;

    let rows: Vec<Value> = written.into_iter().map(|e| e.record).collect();
    let range = total_range(&c.prefer, rows.len(), false);
    let body = body_rows(&state, &target, &c, &cols, &rows, &select_decision).await?;
    let mut res = respond(
        &c,
        StatusCode::CREATED,
        StatusCode::CREATED,
        range,
        body,
        &cols,
    )?;
    if c.prefer.return_ == Return::HeadersOnly
        && let [row] = rows.as_slice()
        && !full.primary_key.is_empty()
    {
        let location = full
            .primary_key
            .iter()
            .map(|k| {
                let v = match row.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                format!(
                    "{k}=eq.{}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        if let Ok(value) =
            actix_web::http::header::HeaderValue::from_str(&format!("/{}?{location}", full.name))
        {
            res.headers_mut()
                .insert(actix_web::http::header::LOCATION, value);
        }
    }
    Ok(res)
}
