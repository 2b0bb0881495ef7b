//! `redirect_to` allow-listing (no open redirects).
//!
//! A target is allowed when, stripped of query and fragment, it has the
//! same origin as the site URL or matches an entry of `uri_allow_list`
//! (exact, or a glob where `*` matches within one path segment or host
//! label and `**` matches anything). Userinfo, backslashes, non-http(s)
//! schemes and IP literals other than loopback are refused outright.
//! Refused targets fall back to the site URL, as GoTrue does.

use std::net::IpAddr;

/// Decides where email links and redirects may point.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    site_url: url::Url,
    allow: Vec<String>,
}

impl RedirectPolicy {
    /// A policy allowing `site_url`'s origin and the `allow` patterns.
    pub fn new(site_url: url::Url, allow: Vec<String>) -> Self {
        Self { site_url, allow }
    }

    /// The site URL (the fallback).
    pub fn site_url(&self) -> &url::Url {
        &self.site_url
    }

    /// Whether `target` is allowed.
    pub fn allows(&self, target: &str) -> bool {
        if target.contains('\\') || target.starts_with("//") || target.len() > 2048 {
            return false;
        }
        let Ok(url) = url::Url::parse(target) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare_host.parse::<IpAddr>()
            && !ip.is_loopback()
        {
            return false;
        }
        if url.origin() == self.site_url.origin() {
            return true;
        }
        let mut stripped = url.clone();
        stripped.set_query(None);
        stripped.set_fragment(None);
        let candidate = stripped.as_str();
        self.allow.iter().any(|pattern| {
            pattern == candidate
                || pattern.trim_end_matches('/') == candidate.trim_end_matches('/')
                || glob(pattern.as_bytes(), candidate.as_bytes())
        })
    }

    /// `target` when allowed, else the site URL.
    pub fn resolve(&self, target: Option<&str>) -> String {
        match target.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if self.allows(t) => t.to_owned(),
            _ => self.site_url.as_str().to_owned(),
        }
    }
}

/// `*` matches any run without `/` or `.`; `**` matches any run.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') if pattern.get(1) == Some(&b'*') => {
            let rest = &pattern[2..];
            (0..=text.len()).any(|i| glob(rest, &text[i..]))
        }
        Some(b'*') => {
            let rest = &pattern[1..];
            let mut i = 0;
            loop {
                if glob(rest, &text[i..]) {
                    return true;
                }
                match text.get(i) {
                    Some(b'/') | Some(b'.') | None => return false,
                    Some(_) => i += 1,
                }
            }
        }
        Some(c) => text.first() == Some(c) && glob(&pattern[1..], &text[1..]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> RedirectPolicy {
        RedirectPolicy::new(
            url::Url::parse("http://localhost:3000").unwrap(),
            vec![
                "https://app.example.com/**".into(),
                "https://*.preview.example.com/callback".into(),
            ],
        )
    }

    #[test]
    fn allowed_targets() {
        let p = policy();
        for ok in [
            "http://localhost:3000",
            "http://localhost:3000/welcome?x=1#y",
            "https://app.example.com/a/b",
            "https://app.example.com/",
            "https://pr-1.preview.example.com/callback",
            "https://pr-1.preview.example.com/callback?next=/",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
    }

    #[test]
    fn refused_targets() {
        let p = policy();
        for bad in [
            "https://evil.com",
            "https://evil.com/https://app.example.com/",
            "https://app.example.com.evil.com/",
            "https://user@app.example.com/",
            "https://app.example.com\\@evil.com/",
            "//evil.com",
            "javascript:alert(1)",
            "http://10.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001.evil/",
            "https://a.b.preview.example.com/callback",
            "https://x.preview.example.com/callback/more",
            "ftp://app.example.com/",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        assert_eq!(
            p.resolve(Some("https://evil.com")),
            "http://localhost:3000/"
        );
    }
}
