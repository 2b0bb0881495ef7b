//! The V2 serializer's binary broadcast frames (`lib/serializer.ts`, `v2_serializer.ex`).
//!
//! Client → server "user broadcast push" (kind 3):
//! `u8 kind=3 | u8 len(join_ref) | u8 len(ref) | u8 len(topic) | u8 len(event) | u8 len(metadata) | u8 encoding`
//! then those strings, then the payload. Server → client "user broadcast" (kind 4):
//! `u8 kind=4 | u8 len(topic) | u8 len(event) | u8 len(metadata) | u8 encoding`, the
//! strings, then the payload. Encoding 0 is raw bytes, 1 is JSON.

use super::DecodeError;

/// Kind byte of a client broadcast push.
pub const KIND_USER_BROADCAST_PUSH: u8 = 3;
/// Kind byte of a server user broadcast.
pub const KIND_USER_BROADCAST: u8 = 4;

/// How a binary broadcast's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Raw bytes (`ArrayBuffer` on the client).
    Binary,
    /// UTF-8 JSON.
    Json,
}

/// A decoded kind-3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastPush {
    /// Channel join ref (empty string means none).
    pub join_ref: String,
    /// Message ref (empty string means none).
    pub msg_ref: String,
    /// Full topic (`realtime:<name>`).
    pub topic: String,
    /// The user event name.
    pub event: String,
    /// JSON metadata (`{"persist":…}`) or empty.
    pub metadata: String,
    /// Payload encoding.
    pub encoding: Encoding,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], DecodeError> {
    let end = at
        .checked_add(len)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| DecodeError::Malformed("binary frame is truncated".into()))?;
    let out = &bytes[*at..end];
    *at = end;
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| DecodeError::Malformed("binary frame header is not UTF-8".into()))
}

/// Decodes a client binary frame (only kind 3 is defined client → server).
///
/// # Errors
/// [`DecodeError::Malformed`] for another kind, a truncated frame, non-UTF-8 strings or an unknown encoding.
pub fn decode_push(bytes: &[u8]) -> Result<BroadcastPush, DecodeError> {
    let mut at = 0;
    let header = take(bytes, &mut at, 7)?;
    if header[0] != KIND_USER_BROADCAST_PUSH {
        return Err(DecodeError::Malformed(format!(
            "unsupported binary message kind {}",
            header[0]
        )));
    }
    let encoding = match header[6] {
        0 => Encoding::Binary,
        1 => Encoding::Json,
        other => {
            return Err(DecodeError::Malformed(format!(
                "unknown payload encoding {other}"
            )));
        }
    };
    let join_ref = utf8(take(bytes, &mut at, usize::from(header[1]))?)?;
    let msg_ref = utf8(take(bytes, &mut at, usize::from(header[2]))?)?;
    let topic = utf8(take(bytes, &mut at, usize::from(header[3]))?)?;
    let event = utf8(take(bytes, &mut at, usize::from(header[4]))?)?;
    let metadata = utf8(take(bytes, &mut at, usize::from(header[5]))?)?;
    Ok(BroadcastPush {
        join_ref,
        msg_ref,
        topic,
        event,
        metadata,
        encoding,
        payload: bytes[at..].to_vec(),
    })
}

/// Encodes a kind-4 server broadcast; `None` when a header string exceeds 255 bytes
/// (the caller then sends the JSON text form).
pub fn encode_broadcast(
    topic: &str,
    event: &str,
    metadata: &str,
    encoding: Encoding,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let len = |s: &str| u8::try_from(s.len()).ok();
    let (t, e, m) = (len(topic)?, len(event)?, len(metadata)?);
    let mut out =
        Vec::with_capacity(5 + topic.len() + event.len() + metadata.len() + payload.len());
    out.extend_from_slice(&[
        KIND_USER_BROADCAST,
        t,
        e,
        m,
        match encoding {
            Encoding::Binary => 0,
            Encoding::Json => 1,
        },
    ]);
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_client_push() {
        let mut frame = vec![3, 1, 1, 10, 2, 0, 1];
        frame.extend_from_slice(b"12realtime:aev{\"x\":1}");
        let push = decode_push(&frame).unwrap();
        assert_eq!(push.join_ref, "1");
        assert_eq!(push.msg_ref, "2");
        assert_eq!(push.topic, "realtime:a");
        assert_eq!(push.event, "ev");
        assert_eq!(push.encoding, Encoding::Json);
        assert_eq!(push.payload, b"{\"x\":1}");
        assert!(decode_push(&frame[..10]).is_err());
        assert!(decode_push(&[4, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_push(&[3, 0, 0, 0, 0, 0, 7]).is_err());
    }

    #[test]
    fn encodes_a_server_broadcast() {
        let out = encode_broadcast("realtime:a", "ev", "", Encoding::Binary, &[1, 2]).unwrap();
        assert_eq!(&out[..5], &[4, 10, 2, 0, 0]);
        assert_eq!(&out[5..], b"realtime:aev\x01\x02");
        assert!(encode_broadcast(&"x".repeat(256), "e", "", Encoding::Json, b"{}").is_none());
    }
}
