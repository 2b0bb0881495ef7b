//! The events carried by the bus and the envelope around each of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One published event with its routing metadata.
///
/// Subscribers receive envelopes as `Arc<Envelope>`: one allocation is shared
/// by every subscriber on a node. On the Redis bus the envelope is what
/// travels between nodes, serialized as JSON:
///
/// ```json
/// {"id": "…", "origin": "…", "published_at": "2025-01-01T00:00:00Z",
///  "event": {"kind": "custom", "name": "ping", "payload": {}}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this publication (random v4).
    pub id: Uuid,
    /// Node id of the bus that published the event ([`EventBus::node_id`](super::EventBus::node_id)).
    pub origin: Uuid,
    /// When the event was published (the publishing node's clock).
    pub published_at: DateTime<Utc>,
    /// The event itself.
    pub event: Event,
}

impl Envelope {
    /// Wraps `event` in a fresh envelope: new id, `origin`, published now.
    pub fn new(origin: Uuid, event: Event) -> Self {
        Self {
            id: Uuid::new_v4(),
            origin,
            published_at: Utc::now(),
            event,
        }
    }
}

/// Something that happened, announced to every subscriber on every node.
///
/// Serialized with an internal `kind` tag in snake case, e.g.
/// `{"kind": "user_signed_in", "user_id": "…", "email": null, "phone": null, "provider": "email"}`.
/// Publishers should announce only what has been committed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A row of a table was inserted, updated or deleted.
    RecordChanged(RecordChanged),
    /// A user account was created.
    UserSignedUp(UserEvent),
    /// A user signed in (a new session was issued).
    UserSignedIn(UserEvent),
    /// Sessions of a user ended before their tokens expire (sign-out,
    /// password change, ban, deletion): holders of long-lived connections
    /// (realtime sockets) must drop them.
    SessionsRevoked(SessionsRevoked),
    /// A storage object was written.
    ObjectUploaded(ObjectEvent),
    /// A storage object was removed.
    ObjectDeleted(ObjectEvent),
    /// An application- or plugin-defined event.
    Custom {
        /// The event's name; [`Event::name`] returns it. Namespace it, e.g. `billing.invoice_paid`.
        name: String,
        /// Free-form payload.
        payload: serde_json::Value,
    },
}

impl Event {
    /// The event's name: its `kind` tag (`"record_changed"`, `"user_signed_up"`,
    /// `"user_signed_in"`, `"sessions_revoked"`, `"object_uploaded"`,
    /// `"object_deleted"`), or the
    /// custom name for [`Event::Custom`].
    pub fn name(&self) -> &str {
        match self {
            Self::RecordChanged(_) => "record_changed",
            Self::UserSignedUp(_) => "user_signed_up",
            Self::UserSignedIn(_) => "user_signed_in",
            Self::SessionsRevoked(_) => "sessions_revoked",
            Self::ObjectUploaded(_) => "object_uploaded",
            Self::ObjectDeleted(_) => "object_deleted",
            Self::Custom { name, .. } => name,
        }
    }

    /// Builds an [`Event::Custom`].
    pub fn custom(name: impl Into<String>, payload: serde_json::Value) -> Self {
        Self::Custom {
            name: name.into(),
            payload,
        }
    }
}

impl From<RecordChanged> for Event {
    fn from(change: RecordChanged) -> Self {
        Self::RecordChanged(change)
    }
}

/// A committed change to one row, in the shape of Supabase realtime's
/// `postgres_changes` payload.
///
/// The change kind is serialized as `"type"` (as Supabase realtime spells it;
/// `"kind"` is taken by the [`Event`] tag).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordChanged {
    /// Schema of the table (`"public"`, or `"main"` on SQLite).
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Insert, update or delete.
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    /// The row after the change (`None` for deletes).
    pub record: Option<serde_json::Value>,
    /// The row before the change, when known (updates and deletes).
    pub old_record: Option<serde_json::Value>,
    /// When the transaction committed.
    pub commit_timestamp: DateTime<Utc>,
}

/// The kind of a row change; serialized `"INSERT"`, `"UPDATE"`, `"DELETE"`
/// (Supabase realtime spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    /// A row was inserted.
    Insert,
    /// A row was updated.
    Update,
    /// A row was deleted.
    Delete,
}

impl ChangeKind {
    /// The wire spelling: `"INSERT"`, `"UPDATE"` or `"DELETE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who signed up or signed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserEvent {
    /// The user's id.
    pub user_id: String,
    /// The user's email, if any.
    pub email: Option<String>,
    /// The user's phone number, if any.
    pub phone: Option<String>,
    /// How they authenticated (`"email"`, `"phone"`, an OAuth provider, a custom provider name).
    pub provider: String,
}

/// Sessions that ended early. An access token names its session in the
/// `session_id` claim; a connection authenticated by a token of one of
/// these sessions (or of the user, when `session_ids` is `None`) must close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionsRevoked {
    /// The user whose sessions ended.
    pub user_id: String,
    /// The sessions that ended; `None` means every session of the user.
    pub session_ids: Option<Vec<String>>,
    /// Why, for logs and clients: `"signed_out"`, `"password_changed"`,
    /// `"banned"`, `"deleted"`, `"revoked"`, …
    pub reason: String,
}

impl SessionsRevoked {
    /// Whether a connection of `user_id` authenticated in `session_id` is concerned.
    ///
    /// ```
    /// use goforward_core::bus::SessionsRevoked;
    /// let all = SessionsRevoked { user_id: "u".into(), session_ids: None, reason: "banned".into() };
    /// assert!(all.concerns("u", Some("s1")) && all.concerns("u", None));
    /// let one = SessionsRevoked { session_ids: Some(vec!["s1".into()]), ..all };
    /// assert!(one.concerns("u", Some("s1")) && !one.concerns("u", Some("s2")));
    /// assert!(!one.concerns("v", Some("s1")));
    /// ```
    pub fn concerns(&self, user_id: &str, session_id: Option<&str>) -> bool {
        self.user_id == user_id
            && match (&self.session_ids, session_id) {
                (None, _) => true,
                (Some(ids), Some(id)) => ids.iter().any(|s| s == id),
                (Some(_), None) => false,
            }
    }
}

/// A storage object that was written or removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectEvent {
    /// Bucket id.
    pub bucket: String,
    /// Object path inside the bucket.
    pub path: String,
    /// Owner's user id, if the object has one.
    pub owner: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// MIME type, when known.
    pub content_type: Option<String>,
}
