//! Opaque API keys (service accounts): keys that are not JWTs and can only
//! be checked against a store, which a plugin (the auth plugin) provides by
//! registering an [`ApiKeyResolver`] with the
//! [`Authenticator`](super::Authenticator).
//!
//! A looked-up key is remembered for a few seconds so a busy service account
//! does not cost one database query per request; revoking a key calls
//! [`Authenticator::forget_api_keys`](super::Authenticator::forget_api_keys)
//! on the node that revoked it, and other nodes stop accepting it within
//! [`OPAQUE_KEY_TTL`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use quick_cache::sync::Cache;

use super::Principal;

/// How long a looked-up opaque key is accepted without asking the store again.
pub const OPAQUE_KEY_TTL: Duration = Duration::from_secs(5);

/// Looks up opaque API keys. Registered once, by the plugin that issues them.
///
/// ```
/// use goforward_core::{Principal, token::ApiKeyResolver};
///
/// struct OneKey;
///
/// #[async_trait::async_trait]
/// impl ApiKeyResolver for OneKey {
///     fn recognizes(&self, key: &str) -> bool {
///         key.starts_with("gf_sa_")
///     }
///     async fn resolve(&self, key: &str) -> goforward_core::Result<Option<Principal>> {
///         // A real resolver hashes `key` and looks the hash up.
///         Ok((key == "gf_sa_demo").then(Principal::service))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait ApiKeyResolver: Send + Sync + 'static {
    /// Whether `key` has this resolver's shape (a cheap prefix check: keys
    /// that are not recognized are verified as JWTs).
    fn recognizes(&self, key: &str) -> bool;

    /// The principal the key stands for; `Ok(None)` when it is unknown,
    /// revoked or expired.
    ///
    /// # Errors
    /// A storage failure (answered as 503, not as an invalid key).
    async fn resolve(&self, key: &str) -> crate::Result<Option<Principal>>;
}

/// Opaque keys recently resolved, each until its deadline.
pub(crate) struct ResolvedKeys {
    entries: Cache<Box<str>, (Principal, Instant)>,
}

impl std::fmt::Debug for ResolvedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedKeys")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl ResolvedKeys {
    pub(crate) fn new() -> Self {
        Self {
            entries: Cache::new(1024),
        }
    }

    /// The principal of a key resolved less than [`OPAQUE_KEY_TTL`] ago.
    pub(crate) fn get(&self, key: &str) -> Option<Principal> {
        match self.entries.get(key) {
            Some((principal, deadline)) if Instant::now() < deadline => Some(principal),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn insert(&self, key: &str, principal: Principal) {
        self.entries
            .insert(key.into(), (principal, Instant::now() + OPAQUE_KEY_TTL));
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}

/// The resolvers of an authenticator: added at start, read on every
/// request that carries a key no cache knows.
#[derive(Default)]
pub(crate) struct Resolvers(std::sync::RwLock<Vec<Arc<dyn ApiKeyResolver>>>);

impl std::fmt::Debug for Resolvers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.read().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("Resolvers").field("count", &count).finish()
    }
}

impl Resolvers {
    /// The first resolver that recognizes `key`.
    pub(crate) fn for_key(&self, key: &str) -> Option<Arc<dyn ApiKeyResolver>> {
        let resolvers = self.0.read().ok()?;
        resolvers.iter().find(|r| r.recognizes(key)).cloned()
    }

    pub(crate) fn add(&self, resolver: Arc<dyn ApiKeyResolver>) {
        if let Ok(mut resolvers) = self.0.write() {
            resolvers.push(resolver);
        }
    }
}
