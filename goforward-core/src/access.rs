//! Access control: one rule, three transports.
//!
//! An [`AccessControl`] decides, for a [`Principal`], an [`Action`] and a
//! [`Resource`], whether to [`Decision::Allow`], [`Decision::Deny`] or
//! [`Decision::AllowWhere`] a [`Filter`]. REST ANDs the filter into its SQL
//! (and checks rows it writes against it), realtime evaluates it on each
//! changed row, storage applies it to object metadata.
//!
//! The default implementation, [`PolicyAccessControl`], is driven by
//! per-table, per-bucket and per-channel [`Policy`]s that plugins register in
//! the [`PolicyRegistry`]. `service_role` always bypasses (see [`Access`]).
//!
//! ```
//! use goforward_core::access::{Action, Decision, Policy, PolicyAccessControl, PolicyRegistry, Resource, AccessControl};
//! use goforward_core::token::Principal;
//! # tokio_test_block_on(async {
//! let registry = PolicyRegistry::default();
//! registry.set_table("todos", Policy::owner("user_id"));
//! let rules = PolicyAccessControl::new(registry.into());
//! let anon = Principal::anon();
//! assert_eq!(rules.decide(&anon, &Action::Select, &Resource::table("todos")).await, Decision::Deny);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
//! # }
//! ```

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use crate::filter::{Filter, Op};
use crate::token::{Principal, Role};

/// What the principal wants to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Read rows / download objects / receive channel events.
    Select,
    /// Create rows.
    Insert,
    /// Change rows.
    Update,
    /// Remove rows or objects.
    Delete,
    /// Upload (create or replace) an object.
    Upload,
    /// List objects in a bucket.
    List,
    /// Join a channel.
    Join,
    /// Send a broadcast message on a channel.
    Broadcast,
    /// Track presence on a channel.
    Presence,
    /// Administrative operations (bucket management, schema changes).
    Admin,
    /// Anything a third-party plugin defines.
    Custom(String),
}

/// What the action is applied to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Resource<'a> {
    /// A database table (or view) exposed through REST.
    Table {
        /// Schema name (`public` on PostgreSQL, `main` on SQLite).
        schema: &'a str,
        /// Table name.
        name: &'a str,
    },
    /// A storage bucket as a whole.
    Bucket {
        /// Bucket id.
        id: &'a str,
    },
    /// One storage object.
    Object {
        /// Bucket id.
        bucket: &'a str,
        /// Object path inside the bucket.
        path: &'a str,
        /// Owner user id recorded at upload.
        owner: Option<&'a str>,
        /// User metadata.
        metadata: Option<&'a Value>,
    },
    /// A realtime channel topic.
    Channel {
        /// Topic, e.g. `room:1`.
        topic: &'a str,
    },
    /// A resource defined by a third-party plugin.
    Custom {
        /// Kind, e.g. `webhook`.
        kind: &'a str,
        /// Name.
        name: &'a str,
    },
}

impl<'a> Resource<'a> {
    /// A table in the default schema.
    pub fn table(name: &'a str) -> Self {
        Self::Table {
            schema: "public",
            name,
        }
    }

    fn key(&self) -> Option<(Kind, &'a str)> {
        match *self {
            Self::Table { name, .. } => Some((Kind::Table, name)),
            Self::Bucket { id } => Some((Kind::Bucket, id)),
            Self::Object { bucket, .. } => Some((Kind::Bucket, bucket)),
            Self::Channel { topic } => Some((Kind::Channel, topic)),
            Self::Custom { .. } => None,
        }
    }
}

/// The outcome of an access decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Allowed without restriction.
    Allow,
    /// Refused.
    Deny,
    /// Allowed for the rows / objects / events matching the filter only.
    AllowWhere(Filter),
}

impl Decision {
    /// True unless [`Decision::Deny`].
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Decision::Deny)
    }

    /// Whether `row` may be touched under this decision.
    pub fn permits(&self, row: &Value) -> bool {
        match self {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::AllowWhere(filter) => filter.matches(row),
        }
    }
}

/// Decides what a principal may do. Hosts implement it for custom rules and
/// install it with `GoForward::builder(..).access_control(..)`.
///
/// ```
/// use goforward_core::access::{AccessControl, Action, Decision, Resource};
/// use goforward_core::token::Principal;
///
/// struct RoomMembers;
///
/// #[async_trait::async_trait]
/// impl AccessControl for RoomMembers {
///     async fn decide(&self, who: &Principal, action: &Action, what: &Resource<'_>) -> Decision {
///         match what {
///             Resource::Channel { topic } if topic.starts_with("room:") && who.user_id.is_some() => Decision::Allow,
///             _ => Decision::Deny,
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait AccessControl: Send + Sync + 'static {
    /// Decides `action` on `resource` for `principal`.
    async fn decide(
        &self,
        principal: &Principal,
        action: &Action,
        resource: &Resource<'_>,
    ) -> Decision;
}

/// One rule of a [`Policy`].
#[derive(Clone)]
#[non_exhaustive]
pub enum Rule {
    /// Nobody (but service_role).
    Deny,
    /// Everyone, anon included.
    Public,
    /// Any signed-in user.
    Authenticated,
    /// Principals with one of these roles.
    Roles(Vec<Role>),
    /// Rows/objects whose `column` equals the caller's user id.
    Owner(String),
    /// Objects whose path starts with `<user id>/` (storage `avatars/{uid}/…`).
    UserPathPrefix,
    /// A host-written function.
    Custom(Arc<dyn Fn(&Principal) -> Decision + Send + Sync>),
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Deny => f.write_str("Deny"),
            Rule::Public => f.write_str("Public"),
            Rule::Authenticated => f.write_str("Authenticated"),
            Rule::Roles(r) => f.debug_tuple("Roles").field(r).finish(),
            Rule::Owner(c) => f.debug_tuple("Owner").field(c).finish(),
            Rule::UserPathPrefix => f.write_str("UserPathPrefix"),
            Rule::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Rule {
    /// Evaluates the rule for `principal`.
    pub fn decide(&self, principal: &Principal) -> Decision {
        match self {
            Rule::Deny => Decision::Deny,
            Rule::Public => Decision::Allow,
            Rule::Authenticated if principal.user_id.is_some() && !principal.is_anon() => {
                Decision::Allow
            }
            Rule::Authenticated => Decision::Deny,
            Rule::Roles(roles) if roles.contains(&principal.role) => Decision::Allow,
            Rule::Roles(_) => Decision::Deny,
            Rule::Owner(column) => match &principal.user_id {
                Some(uid) => Decision::AllowWhere(Filter::eq(column.clone(), uid.as_ref())),
                None => Decision::Deny,
            },
            Rule::UserPathPrefix => match &principal.user_id {
                Some(uid) => Decision::AllowWhere(Filter::cmp(
                    "name",
                    Op::Like,
                    format!("{}/%", escape_like(uid)),
                )),
                None => Decision::Deny,
            },
            Rule::Custom(f) => f(principal),
        }
    }
}

/// Escapes `%`, `_` and `\` so a value matches literally inside a LIKE pattern.
pub fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Per-action rules for one table, bucket or channel.
///
/// An action without its own rule falls back to the default rule.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<Action, Rule>,
    default: Rule,
}

/// A policy for a table.
pub type TablePolicy = Policy;
/// A policy for a bucket.
pub type BucketPolicy = Policy;
/// A policy for a channel.
pub type ChannelPolicy = Policy;

impl Policy {
    /// Every action uses `rule`.
    pub fn all(rule: Rule) -> Self {
        Self {
            rules: HashMap::new(),
            default: rule,
        }
    }

    /// Nobody but service_role.
    pub fn deny_all() -> Self {
        Self::all(Rule::Deny)
    }

    /// Everyone may do everything (use for demo data only).
    pub fn public() -> Self {
        Self::all(Rule::Public)
    }

    /// Everyone may read; nothing else.
    pub fn public_read() -> Self {
        Self::deny_all().with(Action::Select, Rule::Public)
    }

    /// Any signed-in user may do everything.
    pub fn authenticated() -> Self {
        Self::all(Rule::Authenticated)
    }

    /// Signed-in users see and change only rows whose `column` is their id.
    pub fn owner(column: impl Into<String>) -> Self {
        Self::all(Rule::Owner(column.into()))
    }

    /// Sets the rule for one action.
    pub fn with(mut self, action: Action, rule: Rule) -> Self {
        self.rules.insert(action, rule);
        self
    }

    /// The rule for `action`.
    pub fn rule(&self, action: &Action) -> &Rule {
        self.rules.get(action).unwrap_or(&self.default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Table,
    Bucket,
    Channel,
}

/// The policies registered by plugins and the host.
#[derive(Debug, Default)]
pub struct PolicyRegistry {
    policies: std::sync::RwLock<HashMap<(Kind, String), Policy>>,
    channel_default: std::sync::RwLock<Option<Policy>>,
    hidden: std::sync::RwLock<HashMap<String, Vec<String>>>,
}

impl PolicyRegistry {
    fn set(&self, kind: Kind, name: &str, policy: Policy) {
        if let Ok(mut map) = self.policies.write() {
            map.insert((kind, name.to_owned()), policy);
        }
    }

    /// Sets the policy of table `name`.
    pub fn set_table(&self, name: &str, policy: Policy) {
        self.set(Kind::Table, name, policy);
    }

    /// Sets the policy of bucket `id`.
    pub fn set_bucket(&self, id: &str, policy: Policy) {
        self.set(Kind::Bucket, id, policy);
    }

    /// Sets the policy of channel `topic`.
    pub fn set_channel(&self, topic: &str, policy: Policy) {
        self.set(Kind::Channel, topic, policy);
    }

    /// Declares columns of table `name` that no client may see, select,
    /// filter or order by: REST leaves them out of every response and
    /// realtime out of every change (replacing an earlier list).
    pub fn set_hidden_columns<I, S>(&self, name: &str, columns: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Ok(mut map) = self.hidden.write() {
            map.insert(
                name.to_owned(),
                columns.into_iter().map(Into::into).collect(),
            );
        }
    }

    /// The hidden columns of table `name` (empty when none were declared).
    pub fn hidden_columns(&self, name: &str) -> Vec<String> {
        self.hidden
            .read()
            .ok()
            .and_then(|map| map.get(name).cloned())
            .unwrap_or_default()
    }

    /// Sets the policy of every channel without its own.
    pub fn set_channel_default(&self, policy: Policy) {
        if let Ok(mut slot) = self.channel_default.write() {
            *slot = Some(policy);
        }
    }

    /// True when the table has a policy (i.e. is exposed).
    pub fn has_table(&self, name: &str) -> bool {
        self.policies
            .read()
            .map(|m| m.contains_key(&(Kind::Table, name.to_owned())))
            .unwrap_or(false)
    }

    /// The names of every table with a policy.
    pub fn tables(&self) -> Vec<String> {
        self.policies
            .read()
            .map(|m| {
                m.keys()
                    .filter(|(k, _)| *k == Kind::Table)
                    .map(|(_, n)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn decide(&self, principal: &Principal, action: &Action, resource: &Resource<'_>) -> Decision {
        let Some((kind, name)) = resource.key() else {
            return Decision::Deny;
        };
        let Ok(map) = self.policies.read() else {
            return Decision::Deny;
        };
        match map.get(&(kind, name.to_owned())) {
            Some(policy) => policy.rule(action).decide(principal),
            None if kind == Kind::Channel => match self.channel_default.read() {
                Ok(slot) => slot
                    .as_ref()
                    .map_or(Decision::Deny, |p| p.rule(action).decide(principal)),
                Err(_) => Decision::Deny,
            },
            None => Decision::Deny,
        }
    }
}

/// The default [`AccessControl`]: registered policies; anything without a policy is denied.
#[derive(Debug, Clone)]
pub struct PolicyAccessControl {
    registry: Arc<PolicyRegistry>,
}

impl PolicyAccessControl {
    /// Uses `registry`.
    pub fn new(registry: Arc<PolicyRegistry>) -> Self {
        Self { registry }
    }
}

#[async_trait::async_trait]
impl AccessControl for PolicyAccessControl {
    async fn decide(
        &self,
        principal: &Principal,
        action: &Action,
        resource: &Resource<'_>,
    ) -> Decision {
        self.registry.decide(principal, action, resource)
    }
}

/// The access control plugins call: service_role bypasses, everything else
/// goes to the installed [`AccessControl`].
#[derive(Clone)]
pub struct Access {
    inner: Arc<dyn AccessControl>,
    policies: Arc<PolicyRegistry>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Access {
    /// Wraps `inner`; `policies` is the registry plugins write to.
    pub fn new(inner: Arc<dyn AccessControl>, policies: Arc<PolicyRegistry>) -> Self {
        Self { inner, policies }
    }

    /// Decides; `service_role` is always allowed.
    pub async fn decide(
        &self,
        principal: &Principal,
        action: &Action,
        resource: &Resource<'_>,
    ) -> Decision {
        if principal.is_service() {
            return Decision::Allow;
        }
        self.inner.decide(principal, action, resource).await
    }

    /// The policy registry (plugins register their tables, buckets, channels here).
    pub fn policies(&self) -> &Arc<PolicyRegistry> {
        &self.policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str) -> Principal {
        let claims = json!({"role": "authenticated", "sub": id})
            .as_object()
            .cloned()
            .unwrap();
        Principal::from_claims(claims).unwrap()
    }

    #[tokio::test]
    async fn owner_policy_filters_by_user_and_denies_anon() {
        let registry = Arc::new(PolicyRegistry::default());
        registry.set_table("todos", Policy::owner("user_id"));
        let access = Access::new(
            Arc::new(PolicyAccessControl::new(registry.clone())),
            registry,
        );
        let todos = Resource::table("todos");
        assert_eq!(
            access
                .decide(&Principal::anon(), &Action::Select, &todos)
                .await,
            Decision::Deny
        );
        let d = access.decide(&user("u1"), &Action::Update, &todos).await;
        assert!(d.permits(&json!({"user_id": "u1"})));
        assert!(!d.permits(&json!({"user_id": "u2"})));
        assert_eq!(
            access
                .decide(&Principal::service(), &Action::Delete, &todos)
                .await,
            Decision::Allow
        );
        assert_eq!(
            access
                .decide(&user("u1"), &Action::Select, &Resource::table("secret"))
                .await,
            Decision::Deny
        );
    }

    #[tokio::test]
    async fn per_action_rules_and_channel_default() {
        let registry = Arc::new(PolicyRegistry::default());
        registry.set_table(
            "profiles",
            Policy::owner("id").with(Action::Select, Rule::Public),
        );
        registry.set_channel_default(Policy::authenticated());
        let rules = PolicyAccessControl::new(registry);
        let anon = Principal::anon();
        assert_eq!(
            rules
                .decide(&anon, &Action::Select, &Resource::table("profiles"))
                .await,
            Decision::Allow
        );
        assert_eq!(
            rules
                .decide(&anon, &Action::Insert, &Resource::table("profiles"))
                .await,
            Decision::Deny
        );
        assert_eq!(
            rules
                .decide(&anon, &Action::Join, &Resource::Channel { topic: "room:1" })
                .await,
            Decision::Deny
        );
        assert_eq!(
            rules
                .decide(
                    &user("u"),
                    &Action::Join,
                    &Resource::Channel { topic: "room:1" }
                )
                .await,
            Decision::Allow
        );
    }

    #[test]
    fn path_prefix_is_like_escaped() {
        let d = Rule::UserPathPrefix.decide(&user("a_b"));
        assert!(d.permits(&json!({"name": "a_b/x.png"})));
        assert!(!d.permits(&json!({"name": "axb/x.png"})));
    }
}
