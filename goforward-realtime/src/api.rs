//! `POST /realtime/v1/api/broadcast` (batch) and
//! `POST /realtime/v1/api/broadcast/{topic}/events/{event}` (single, `channel.httpSend`).

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use goforward_core::Principal;
use goforward_core::access::{Action, Resource};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{RealtimeError, Result};
use crate::hub::BroadcastMsg;
use crate::state::RealtimeState;

#[derive(Debug, Deserialize)]
struct Batch {
    messages: Vec<BatchMessage>,
}

#[derive(Debug, Deserialize)]
struct BatchMessage {
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    private: bool,
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 255 {
        return Err(RealtimeError::Invalid(format!(
            "`{what}` must be 1 to 255 bytes"
        )));
    }
    Ok(())
}

/// Checks that `principal` may broadcast on channel `name`.
async fn authorize(
    state: &RealtimeState,
    principal: &Principal,
    name: &str,
    private: bool,
) -> Result<()> {
    if !private {
        if state.config.private_only {
            return Err(RealtimeError::Forbidden(name.to_owned()));
        }
        return Ok(());
    }
    let decision = state
        .ctx
        .access()
        .decide(
            principal,
            &Action::Broadcast,
            &Resource::Channel { topic: name },
        )
        .await;
    if decision.is_allowed() {
        Ok(())
    } else {
        Err(RealtimeError::Forbidden(name.to_owned()))
    }
}

/// Batch broadcast: every message is validated and authorized before any is sent; 202 with an empty body.
pub(crate) async fn batch(
    principal: Principal,
    state: web::Data<RealtimeState>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let batch: Batch = serde_json::from_value(body.into_inner())
        .map_err(|e| RealtimeError::Invalid(format!("invalid broadcast body: {e}")))?;
    if batch.messages.is_empty() {
        return Err(RealtimeError::Invalid("`messages` is empty".into()));
    }
    if batch.messages.len() > state.config.max_batch_messages {
        return Err(RealtimeError::Invalid(format!(
            "at most {} messages per request",
            state.config.max_batch_messages
        )));
    }
    for m in &batch.messages {
        check_name("topic", &m.topic)?;
        check_name("event", &m.event)?;
    }
    for m in &batch.messages {
        authorize(&state, &principal, &m.topic, m.private).await?;
    }
    for m in batch.messages {
        let msg = BroadcastMsg {
            topic: format!("realtime:{}", m.topic),
            event: m.event,
            payload: m.payload,
            binary: None,
            from_binary: false,
            sender: None,
            id: None,
        };
        state.hub.publish_broadcast(&msg).await?;
    }
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize)]
pub(crate) struct SingleQuery {
    #[serde(default)]
    private: bool,
    #[serde(default)]
    persist: Option<bool>,
    #[serde(default, rename = "persist[ttl]")]
    persist_ttl: Option<u64>,
}

/// Single broadcast (`channel.httpSend`): JSON body, or raw bytes with `application/octet-stream`.
pub(crate) async fn single(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<RealtimeState>,
    path: web::Path<(String, String)>,
    query: web::Query<SingleQuery>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let (topic, event) = path.into_inner();
    check_name("topic", &topic)?;
    check_name("event", &event)?;
    if body.len() > state.config.max_message_bytes {
        return Err(RealtimeError::Invalid(format!(
            "payload larger than {} bytes",
            state.config.max_message_bytes
        )));
    }
    let binary = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/octet-stream"));
    let (payload, raw) = if binary {
        (
            Value::Null,
            Some(base64::engine::general_purpose::STANDARD.encode(&body)),
        )
    } else if body.is_empty() {
        (Value::Object(Default::default()), None)
    } else {
        let v = serde_json::from_slice::<Value>(&body)
            .map_err(|e| RealtimeError::Invalid(format!("invalid JSON payload: {e}")))?;
        (v, None)
    };
    authorize(&state, &principal, &topic, query.private).await?;
    let full_topic = format!("realtime:{topic}");
    let mut id = None;
    let persist = query.persist == Some(true) || query.persist_ttl.is_some();
    if let (true, true, Some(store), None) = (persist, query.private, &state.store, &raw) {
        id = Some(
            store
                .save(&full_topic, &event, &payload, query.persist_ttl)
                .await?,
        );
    }
    let msg = BroadcastMsg {
        topic: full_topic,
        event,
        payload,
        binary: raw,
        from_binary: binary,
        sender: None,
        id,
    };
    state.hub.publish_broadcast(&msg).await?;
    Ok(HttpResponse::Accepted().finish())
}
