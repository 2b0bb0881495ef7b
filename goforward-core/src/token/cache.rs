//! A bounded cache of verified tokens (PostgREST keeps one too): a client
//! sends the same API key and access token on every request, so each token
//! pays for one signature check and one claims parse, not one per request.
//!
//! Only tokens that verified are cached, keyed by their full text, and an
//! entry is used only until the token's `exp` (plus the verifier's leeway):
//! a hit means exactly what a fresh verification would have said. The key
//! set is fixed for the life of the process, so no rotation can make a
//! cached answer stale.

use std::{
    hash::{Hash, Hasher},
    sync::Arc,
};

use quick_cache::{Equivalent, sync::Cache};
use serde_json::Value;

use super::{Principal, TokenError};

pub(crate) struct Verified {
    pub(crate) principal: Principal,
    /// Unix time after which the token is expired for the verifier.
    pub(crate) valid_until: i64,
}

/// Verified tokens of one kind (API keys, or access tokens).
pub(crate) struct VerifiedTokens {
    entries: Option<Cache<Box<str>, Arc<Verified>>>,
    leeway_secs: i64,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("capacity", &self.entries.as_ref().map(Cache::capacity))
            .finish()
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; `0` disables caching.
    pub(crate) fn new(capacity: usize, leeway_secs: u64) -> Self {
        Self {
            entries: (capacity > 0).then(|| Cache::new(capacity)),
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
        }
    }

    /// The principal of `token`: from the cache while it is valid, else from `verify`.
    pub(crate) fn get_or_verify(
        &self,
        token: &str,
        verify: impl FnOnce() -> Result<Principal, TokenError>,
    ) -> Result<Principal, TokenError> {
        self.verified(token, verify)
            .map(|verified| verified.principal.clone())
    }

    /// The verified entry of `token` (principal and how long it stays valid).
    pub(crate) fn verified(
        &self,
        token: &str,
        verify: impl FnOnce() -> Result<Principal, TokenError>,
    ) -> Result<Arc<Verified>, TokenError> {
        let fresh = |principal: Principal, valid_until: i64| {
            Arc::new(Verified {
                principal,
                valid_until,
            })
        };
        let Some(entries) = &self.entries else {
            return verify().map(|p| fresh(p, i64::MAX));
        };
        let now = unix_now();
        if let Some(hit) = entries.get(token) {
            if now <= hit.valid_until {
                return Ok(hit);
            }
            entries.remove(token);
        }
        let principal = verify()?;
        // `exp` is required and numeric for every verified token.
        let Some(exp) = principal.claims.get("exp").and_then(Value::as_f64) else {
            return Ok(fresh(principal, i64::MAX));
        };
        let verified = fresh(
            principal,
            (exp.floor() as i64).saturating_add(self.leeway_secs),
        );
        entries.insert(token.into(), verified.clone());
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::{Map, json};

    use super::*;

    fn principal(exp: i64) -> Principal {
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"role": "authenticated", "sub": "u-1", "exp": exp}))
                .unwrap();
        Principal::from_claims(claims).unwrap()
    }

    #[test]
    fn a_valid_token_is_verified_once() {
        let cache = VerifiedTokens::new(16, 0);
        let calls = Cell::new(0);
        let exp = chrono::Utc::now().timestamp() + 600;
        for _ in 0..5 {
            let got = cache.get_or_verify("tok", || {
                calls.set(calls.get() + 1);
                Ok(principal(exp))
            });
            assert_eq!(got.unwrap().user_id.as_deref(), Some("u-1"));
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn failures_are_never_cached() {
        let cache = VerifiedTokens::new(16, 0);
        let calls = Cell::new(0);
        for _ in 0..3 {
            let got = cache.get_or_verify("tok", || {
                calls.set(calls.get() + 1);
                Err(TokenError::InvalidSignature)
            });
            assert!(got.is_err());
        }
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn an_expired_entry_is_verified_again() {
        let cache = VerifiedTokens::new(16, 0);
        let past = chrono::Utc::now().timestamp() - 5;
        cache.get_or_verify("tok", || Ok(principal(past))).unwrap();
        // The entry is past its `exp`: the verifier is asked, and its refusal stands.
        let got = cache.get_or_verify("tok", || Err(TokenError::Expired));
        assert!(matches!(got, Err(TokenError::Expired)));
    }

    #[test]
    fn leeway_extends_validity_as_the_verifier_does() {
        let cache = VerifiedTokens::new(16, 30);
        let just_expired = chrono::Utc::now().timestamp() - 5;
        cache
            .get_or_verify("tok", || Ok(principal(just_expired)))
            .unwrap();
        let got = cache.get_or_verify("tok", || Err(TokenError::Expired));
        assert!(
            got.is_ok(),
            "within the 30 s leeway the verifier would accept it too"
        );
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let cache = VerifiedTokens::new(0, 0);
        let calls = Cell::new(0);
        let exp = chrono::Utc::now().timestamp() + 600;
        for _ in 0..3 {
            cache
                .get_or_verify("tok", || {
                    calls.set(calls.get() + 1);
                    Ok(principal(exp))
                })
                .unwrap();
        }
        assert_eq!(calls.get(), 3);
    }
}

/// Seconds since the Unix epoch: what `exp` is compared with. Cheaper
/// than building a calendar date (`chrono::Utc::now`) on every request.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The raw `apikey` and `Authorization` header values of a request.
#[derive(PartialEq, Eq)]
pub(crate) struct RequestKey {
    apikey: Option<Box<[u8]>>,
    authorization: Option<Box<[u8]>>,
}

/// A borrowed [`RequestKey`], to look one up without copying the headers.
struct RequestKeyRef<'a> {
    apikey: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
}

/// Feeds `state` the length and the last [`HASHED_TAIL`] bytes of a header
/// value. A key or token ends in its signature (random bytes), so its tail
/// tells entries apart as well as the whole value would, at a fraction of
/// the hashing cost; equality still compares every byte.
fn hash_header<H: Hasher>(value: Option<&[u8]>, state: &mut H) {
    match value {
        None => state.write_u8(0),
        Some(bytes) => {
            state.write_usize(bytes.len());
            state.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
        }
    }
}

/// How many trailing bytes of each header value the request cache hashes.
const HASHED_TAIL: usize = 24;

impl Hash for RequestKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_header(self.apikey.as_deref(), state);
        hash_header(self.authorization.as_deref(), state);
    }
}

// Must hash exactly as `RequestKey` does.
impl Hash for RequestKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_header(self.apikey, state);
        hash_header(self.authorization, state);
    }
}

impl Equivalent<RequestKey> for RequestKeyRef<'_> {
    fn equivalent(&self, key: &RequestKey) -> bool {
        self.apikey == key.apikey.as_deref() && self.authorization == key.authorization.as_deref()
    }
}

/// Whole answers by request headers: a client sends the same `apikey` and
/// `Authorization` pair on every request, so one lookup of the raw header
/// bytes (no UTF-8 check, no parsing, one hash) replaces verifying the key
/// and the token separately. An entry is made only from an answer in which
/// both verified, and is used until the earlier of their expiries: a hit
/// means exactly what the full path would have said.
pub(crate) struct VerifiedRequests {
    entries: Option<Cache<RequestKey, Arc<Verified>>>,
}

impl std::fmt::Debug for VerifiedRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedRequests")
            .field("capacity", &self.entries.as_ref().map(Cache::capacity))
            .finish()
    }
}

impl VerifiedRequests {
    /// At most `capacity` header pairs; `0` disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: (capacity > 0).then(|| Cache::new(capacity)),
        }
    }

    /// The principal these headers verified to, while still valid.
    pub(crate) fn get(
        &self,
        apikey: Option<&[u8]>,
        authorization: Option<&[u8]>,
    ) -> Option<Principal> {
        let entries = self.entries.as_ref()?;
        let key = RequestKeyRef {
            apikey,
            authorization,
        };
        let hit = entries.get(&key)?;
        if unix_now() <= hit.valid_until {
            return Some(hit.principal.clone());
        }
        entries.remove(&key);
        None
    }

    /// Remembers a verified answer until `valid_until` (Unix seconds).
    pub(crate) fn insert(
        &self,
        apikey: Option<&[u8]>,
        authorization: Option<&[u8]>,
        principal: &Principal,
        valid_until: i64,
    ) {
        if let Some(entries) = &self.entries {
            let key = RequestKey {
                apikey: apikey.map(Into::into),
                authorization: authorization.map(Into::into),
            };
            let verified = Verified {
                principal: principal.clone(),
                valid_until,
            };
            entries.insert(key, Arc::new(verified));
        }
    }
}

#[cfg(test)]
mod request_tests {
    use serde_json::{Map, json};

    use super::*;

    fn principal() -> Principal {
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"role": "authenticated", "sub": "u-1"})).unwrap();
        Principal::from_claims(claims).unwrap()
    }

    #[test]
    fn a_pair_is_found_only_by_both_exact_headers_and_only_until_it_expires() {
        let cache = VerifiedRequests::new(16);
        let later = chrono::Utc::now().timestamp() + 60;
        cache.insert(Some(b"key"), Some(b"Bearer t"), &principal(), later);
        assert!(cache.get(Some(b"key"), Some(b"Bearer t")).is_some());
        for (apikey, authorization) in [
            (Some(&b"key"[..]), None),
            (None, Some(&b"Bearer t"[..])),
            (Some(b"key"), Some(b"Bearer t ")),
            (Some(b"ke"), Some(b"yBearer t")),
        ] {
            assert!(cache.get(apikey, authorization).is_none());
        }
        let past = chrono::Utc::now().timestamp() - 1;
        cache.insert(Some(b"old"), None, &principal(), past);
        assert!(cache.get(Some(b"old"), None).is_none());
        assert!(VerifiedRequests::new(0).get(Some(b"key"), None).is_none());
    }
}
