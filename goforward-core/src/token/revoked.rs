//! Sessions that ended before their access tokens expire.
//!
//! An access token stays cryptographically valid until its `exp`, so on its
//! own a sign-out, a ban or a deleted account would leave the holder with
//! working tokens for up to the token lifetime. Every node records the
//! [`SessionsRevoked`] events it sees on the bus (its own and, through Redis,
//! other nodes'), and the [`Authenticator`](super::Authenticator) refuses
//! tokens of those sessions (or, for a user-wide revocation, tokens of that
//! user issued at or before it) with [`TokenError::SessionRevoked`].
//!
//! A revocation is remembered for the retention window — the longest
//! access-token lifetime, raised by whoever issues tokens through
//! [`Authenticator::retain_revocations_for`](super::Authenticator::retain_revocations_for)
//! — after which every token it concerns has expired anyway.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
};

use super::{Principal, TokenError};
use crate::bus::SessionsRevoked;

/// Default retention: GoTrue's default access-token lifetime (one hour).
pub(crate) const DEFAULT_RETENTION_SECS: i64 = 3600;

#[derive(Default)]
struct Entries {
    /// Session id → unix time after which the entry may be forgotten.
    sessions: HashMap<Box<str>, i64>,
    /// User id → (revoked at, forget after): tokens issued at or before
    /// `revoked at` are refused.
    users: HashMap<Box<str>, (i64, i64)>,
    /// Entry count after the last prune: the next prune waits until the
    /// maps have doubled, so pruning costs O(1) per insert amortised.
    pruned_len: usize,
}

impl Entries {
    fn len(&self) -> usize {
        self.sessions.len() + self.users.len()
    }

    fn prune(&mut self, now: i64) {
        self.sessions.retain(|_, forget_after| *forget_after > now);
        self.users
            .retain(|_, (_, forget_after)| *forget_after > now);
        self.pruned_len = self.len();
    }
}

/// The revocations one node knows of.
pub(crate) struct RevokedSessions {
    /// Whether any entry exists: the per-request check is one atomic load
    /// while nothing was revoked.
    any: AtomicBool,
    retention_secs: AtomicI64,
    entries: RwLock<Entries>,
}

impl std::fmt::Debug for RevokedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.debug_struct("RevokedSessions")
            .field("sessions", &entries.sessions.len())
            .field("users", &entries.users.len())
            .field(
                "retention_secs",
                &self.retention_secs.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl RevokedSessions {
    pub(crate) fn new() -> Self {
        Self {
            any: AtomicBool::new(false),
            retention_secs: AtomicI64::new(DEFAULT_RETENTION_SECS),
            entries: RwLock::new(Entries::default()),
        }
    }

    /// Keeps revocations at least `secs` seconds (the longest token lifetime).
    pub(crate) fn retain_for(&self, secs: i64) {
        self.retention_secs.fetch_max(secs, Ordering::Relaxed);
    }

    /// Records `event`, received at unix time `now`.
    pub(crate) fn record(&self, event: &SessionsRevoked, now: i64) {
        let forget_after = now.saturating_add(self.retention_secs.load(Ordering::Relaxed));
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &event.session_ids {
            Some(ids) => {
                for id in ids {
                    entries.sessions.insert(id.as_str().into(), forget_after);
                }
            }
            None => {
                entries
                    .users
                    .insert(event.user_id.as_str().into(), (now, forget_after));
            }
        }
        if entries.len() > entries.pruned_len.saturating_mul(2).max(1024) {
            entries.prune(now);
        }
        self.any.store(entries.len() > 0, Ordering::Release);
    }

    /// Refuses `principal` when its session, or its user as of the token's
    /// `iat`, was revoked.
    /// `now` is called only when something was revoked.
    pub(crate) fn check(
        &self,
        principal: &Principal,
        now: impl FnOnce() -> i64,
    ) -> Result<(), TokenError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(user_id) = principal.user_id.as_deref() else {
            return Ok(());
        };
        let now = now();
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(session_id) = principal.session_id.as_deref()
            && entries
                .sessions
                .get(session_id)
                .is_some_and(|forget_after| *forget_after > now)
        {
            return Err(TokenError::SessionRevoked);
        }
        if let Some((revoked_at, forget_after)) = entries.users.get(user_id)
            && *forget_after > now
        {
            // A token without `iat` cannot show it was issued afterwards.
            let issued_at = principal
                .claims
                .get("iat")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(f64::MIN);
            if issued_at <= *revoked_at as f64 {
                return Err(TokenError::SessionRevoked);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user_token(user: &str, session: &str, iat: i64) -> Principal {
        let claims =
            json!({"role": "authenticated", "sub": user, "session_id": session, "iat": iat});
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        Principal::from_claims(claims).unwrap()
    }

    fn revoked(user: &str, sessions: Option<&[&str]>) -> SessionsRevoked {
        SessionsRevoked {
            user_id: user.into(),
            session_ids: sessions.map(|ids| ids.iter().map(|s| (*s).to_owned()).collect()),
            reason: "test".into(),
        }
    }

    #[test]
    fn a_revoked_session_is_refused_and_others_are_not() {
        let set = RevokedSessions::new();
        set.record(&revoked("u1", Some(&["s1"])), 1_000);
        assert_eq!(
            set.check(&user_token("u1", "s1", 900), || 1_001),
            Err(TokenError::SessionRevoked)
        );
        assert_eq!(set.check(&user_token("u1", "s2", 900), || 1_001), Ok(()));
        assert_eq!(set.check(&Principal::service(), || 1_001), Ok(()));
    }

    #[test]
    fn a_user_wide_revocation_spares_tokens_issued_afterwards() {
        let set = RevokedSessions::new();
        set.record(&revoked("u1", None), 1_000);
        assert_eq!(
            set.check(&user_token("u1", "any", 1_000), || 1_001),
            Err(TokenError::SessionRevoked)
        );
        assert_eq!(set.check(&user_token("u1", "new", 1_001), || 1_002), Ok(()));
        assert_eq!(set.check(&user_token("u2", "any", 900), || 1_002), Ok(()));
    }

    #[test]
    fn revocations_are_forgotten_after_the_retention_window() {
        let set = RevokedSessions::new();
        set.retain_for(60);
        set.retain_for(10); // never lowered
        set.record(&revoked("u1", Some(&["s1"])), 1_000);
        let token = user_token("u1", "s1", 990);
        assert!(
            set.check(&token, || 1_000 + DEFAULT_RETENTION_SECS - 1)
                .is_err()
        );
        assert_eq!(set.check(&token, || 1_000 + DEFAULT_RETENTION_SECS), Ok(()));
    }

    #[test]
    fn pruning_keeps_the_map_bounded_by_live_entries() {
        let set = RevokedSessions::new();
        for i in 0..5_000 {
            let id = format!("s{i}");
            set.record(&revoked("u", Some(&[id.as_str()])), i);
        }
        let len = set.entries.read().unwrap().len();
        assert!(len <= 5_000, "{len}");
        // Far in the future every earlier entry has expired: once the map
        // has doubled since the last prune, they are dropped.
        for i in 0..4_000 {
            let id = format!("late{i}");
            set.record(&revoked("u", Some(&[id.as_str()])), 1_000_000 + i);
        }
        let len = set.entries.read().unwrap().len();
        assert!(len <= 4_000, "old entries were not pruned: {len}");
    }
}
