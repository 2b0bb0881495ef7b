//! Rate limits (governor token buckets) keyed by principal or client IP,
//! with per-route-group quotas that plugins declare.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use actix_web::HttpRequest;
use governor::{DefaultKeyedRateLimiter, clock::Clock};

use crate::config::RateLimitConfig;

/// A token-bucket quota: one request replenished every `period`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    period: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `n` requests per second sustained, bursts of `burst`.
    pub fn per_second(n: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            period: Duration::from_secs(1) / n.get(),
            burst,
        }
    }

    /// `n` requests per `window` (e.g. 30 per 5 minutes), all usable at once.
    pub fn per_window(n: NonZeroU32, window: Duration) -> Self {
        Self {
            period: window / n.get(),
            burst: n,
        }
    }

    fn governor(self) -> Option<governor::Quota> {
        governor::Quota::with_period(self.period).map(|q| q.allow_burst(self.burst))
    }
}

pub(crate) type Limiter = DefaultKeyedRateLimiter<String>;

/// Takes one token for `key` from `limiter`; `Err(seconds to wait)` when exhausted.
pub(crate) fn take(limiter: &Limiter, key: &String) -> Result<(), u64> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        wait.as_secs().max(1)
    })
}

/// Rate-limit groups: a group without its own quota uses the default one
/// (from `server.rate_limit`), with its own counters.
#[derive(Debug)]
pub struct RateLimits {
    default: Option<Quota>,
    groups: RwLock<HashMap<String, Option<Arc<Limiter>>>>,
    trusted_proxies: Vec<IpAddr>,
}

impl RateLimits {
    /// Builds the registry from the server config.
    pub fn new(config: &RateLimitConfig, trusted_proxies: Vec<IpAddr>) -> Self {
        let default = match (
            config.enabled,
            NonZeroU32::new(config.per_second),
            NonZeroU32::new(config.burst),
        ) {
            (true, Some(n), Some(burst)) => Some(Quota::per_second(n, burst)),
            _ => None,
        };
        let mut groups = HashMap::new();
        // Probes and scrapers must never be throttled.
        groups.insert("health".to_owned(), None);
        groups.insert("metrics".to_owned(), None);
        Self {
            default,
            groups: RwLock::new(groups),
            trusted_proxies,
        }
    }

    /// Declares `group`'s quota (`None` = unlimited), replacing any earlier one.
    /// Call it from [`Plugin::start`](crate::Plugin::start): each scope
    /// resolves its group's limiter once, when its routes are built.
    pub fn declare(&self, group: &str, quota: Option<Quota>) {
        let limiter = quota
            .and_then(Quota::governor)
            .map(|q| Arc::new(Limiter::keyed(q)));
        if let Ok(mut groups) = self.groups.write() {
            groups.insert(group.to_owned(), limiter);
        }
    }

    /// The limiter of `group` (created with the default quota on first use);
    /// `None` when the group is unlimited.
    pub(crate) fn limiter(&self, group: &str) -> Option<Arc<Limiter>> {
        if let Ok(groups) = self.groups.read()
            && let Some(found) = groups.get(group)
        {
            return found.clone();
        }
        let limiter = self
            .default
            .and_then(Quota::governor)
            .map(|q| Arc::new(Limiter::keyed(q)));
        if let Ok(mut groups) = self.groups.write() {
            return groups.entry(group.to_owned()).or_insert(limiter).clone();
        }
        None
    }

    /// Takes one token for the key `key()` computes in `group`; `Err(seconds)`
    /// when exhausted. `key` runs only when the group is limited.
    pub fn check(&self, group: &str, key: impl FnOnce() -> String) -> Result<(), u64> {
        match self.limiter(group) {
            Some(limiter) => take(&limiter, &key()),
            None => Ok(()),
        }
    }

    /// Drops idle keys so memory stays bounded (called periodically).
    pub fn retain_recent(&self) {
        if let Ok(groups) = self.groups.read() {
            for limiter in groups.values().flatten() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// The client IP of `req`: the peer address, or — only when the peer is
    /// a trusted proxy — the right-most untrusted `X-Forwarded-For` entry.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        ClientIp::of(req, &self.trusted_proxies)
    }
}

/// Client IP resolution honouring only trusted proxies.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl ClientIp {
    /// See [`RateLimits::client_ip`].
    pub fn of(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
        let peer = req.peer_addr().map(|a| a.ip())?;
        if !trusted.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        forwarded
            .split(',')
            .rev()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .find(|ip| !trusted.contains(ip))
            .or(Some(peer))
    }
}
