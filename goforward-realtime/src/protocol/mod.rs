//! Phoenix channel messages: the two serializers realtime-js speaks.
//!
//! - `vsn=1.0.0`: text frames holding a JSON object
//!   `{"join_ref","ref","topic","event","payload"}`.
//! - `vsn=2.0.0`: text frames holding a JSON array
//!   `[join_ref, ref, topic, event, payload]`, plus binary broadcast frames
//!   (kind 3 from the client, kind 4 to the client; see [`binary`]).

pub mod binary;

use serde::Deserialize;
use serde_json::Value;

/// The serializer a socket negotiated with `?vsn=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// JSON objects.
    V1,
    /// JSON arrays and binary broadcasts.
    V2,
}

impl Vsn {
    /// Parses the `vsn` query parameter; absent means 1.0.0 (Phoenix's default).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("1.0.0") => Some(Self::V1),
            Some("2.0.0") => Some(Self::V2),
            Some(_) => None,
        }
    }
}

/// One Phoenix message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The join reference of the channel the message belongs to.
    pub join_ref: Option<String>,
    /// The message reference (replies echo it).
    pub msg_ref: Option<String>,
    /// `phoenix` or `realtime:<channel>`.
    pub topic: String,
    /// `phx_join`, `broadcast`, `heartbeat`, …
    pub event: String,
    /// The payload.
    pub payload: Value,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON, or not the shape of the negotiated serializer.
    #[error("malformed message: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct ObjectFrame {
    #[serde(default)]
    join_ref: Option<RefValue>,
    #[serde(default, rename = "ref")]
    msg_ref: Option<RefValue>,
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
}

/// Refs are strings in realtime-js; other Phoenix clients send integers.
#[derive(Deserialize)]
#[serde(untagged)]
enum RefValue {
    Str(String),
    Num(i64),
}

impl RefValue {
    fn into_string(self) -> String {
        match self {
            Self::Str(s) => s,
            Self::Num(n) => n.to_string(),
        }
    }
}

type ArrayFrame = (Option<RefValue>, Option<RefValue>, String, String, Value);

impl Frame {
    /// Decodes a text frame with serializer `vsn`.
    ///
    /// # Errors
    /// [`DecodeError::Malformed`] when the text is not a message of that serializer.
    pub fn decode_text(vsn: Vsn, text: &str) -> Result<Self, DecodeError> {
        let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
        match vsn {
            Vsn::V1 => {
                let f: ObjectFrame = serde_json::from_str(text).map_err(malformed)?;
                Ok(Self {
                    join_ref: f.join_ref.map(RefValue::into_string),
                    msg_ref: f.msg_ref.map(RefValue::into_string),
                    topic: f.topic,
                    event: f.event,
                    payload: f.payload,
                })
            }
            Vsn::V2 => {
                let (join_ref, msg_ref, topic, event, payload): ArrayFrame =
                    serde_json::from_str(text).map_err(malformed)?;
                Ok(Self {
                    join_ref: join_ref.map(RefValue::into_string),
                    msg_ref: msg_ref.map(RefValue::into_string),
                    topic,
                    event,
                    payload,
                })
            }
        }
    }

    /// Encodes the frame as text for serializer `vsn`.
    pub fn encode(&self, vsn: Vsn) -> String {
        let value = match vsn {
            Vsn::V1 => serde_json::json!({
                "join_ref": self.join_ref,
                "ref": self.msg_ref,
                "topic": self.topic,
                "event": self.event,
                "payload": self.payload,
            }),
            Vsn::V2 => serde_json::json!([
                self.join_ref,
                self.msg_ref,
                self.topic,
                self.event,
                self.payload
            ]),
        };
        value.to_string()
    }

    /// A `phx_reply` to `request` with `status` and `response`.
    pub fn reply(request: &Frame, status: &str, response: Value) -> Self {
        Self {
            join_ref: request.join_ref.clone(),
            msg_ref: request.msg_ref.clone(),
            topic: request.topic.clone(),
            event: "phx_reply".to_owned(),
            payload: serde_json::json!({ "status": status, "response": response }),
        }
    }

    /// A server push on `topic` (no `ref`).
    pub fn push(join_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> Self {
        Self {
            join_ref: join_ref.map(str::to_owned),
            msg_ref: None,
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload,
        }
    }
}

/// Encodes a server push whose payload is already serialized JSON (`raw_payload`),
/// so a fan-out serializes a large payload once.
pub fn encode_raw_push(vsn: Vsn, topic: &str, event: &str, raw_payload: &str) -> String {
    let topic = Value::from(topic).to_string();
    let event = Value::from(event).to_string();
    match vsn {
        Vsn::V1 => format!(
            "{{\"join_ref\":null,\"ref\":null,\"topic\":{topic},\"event\":{event},\"payload\":{raw_payload}}}"
        ),
        Vsn::V2 => format!("[null,null,{topic},{event},{raw_payload}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_both_serializers() {
        let v2 =
            Frame::decode_text(Vsn::V2, r#"["1","2","realtime:a","phx_join",{"x":1}]"#).unwrap();
        assert_eq!(v2.join_ref.as_deref(), Some("1"));
        assert_eq!(v2.msg_ref.as_deref(), Some("2"));
        assert_eq!(v2.payload, json!({"x": 1}));
        let v1 = Frame::decode_text(
            Vsn::V1,
            r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":3}"#,
        )
        .unwrap();
        assert_eq!(v1.msg_ref.as_deref(), Some("3"));
        assert_eq!(v1.join_ref, None);
        assert!(Frame::decode_text(Vsn::V2, r#"{"topic":"x"}"#).is_err());
        assert!(Frame::decode_text(Vsn::V1, "[1,2").is_err());
    }

    #[test]
    fn raw_push_equals_encoded_push() {
        for vsn in [Vsn::V1, Vsn::V2] {
            let frame = Frame::push(None, "realtime:\"q\"", "broadcast", json!({"a": [1]}));
            let raw = encode_raw_push(vsn, &frame.topic, &frame.event, r#"{"a":[1]}"#);
            let a: Value = serde_json::from_str(&raw).unwrap();
            let b: Value = serde_json::from_str(&frame.encode(vsn)).unwrap();
            assert_eq!(a, b);
        }
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(text in ".{0,200}") {
            let _ = Frame::decode_text(Vsn::V1, &text);
            let _ = Frame::decode_text(Vsn::V2, &text);
        }

        #[test]
        fn binary_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = binary::decode_push(&bytes);
        }
    }
}
