//! Random tokens, OTPs, hashes and constant-time comparison.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `n` bytes from the OS-seeded CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(bytes.as_mut_slice());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A numeric OTP of `len` digits from the CSPRNG.
pub fn otp(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The stored hash of an email OTP (also the link's `token_hash`):
/// hex SHA-256 of the lower-cased address followed by the code.
pub fn otp_hash(relates_to: &str, otp: &str) -> String {
    sha256_hex(format!("{}{}", relates_to.to_lowercase(), otp).as_bytes())
}

/// Constant-time equality of two strings.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Derives refresh-token children: the child of a token is an HMAC of the
/// token under a server key, so a client presenting a just-rotated token
/// within the reuse interval gets the very same child back (the token
/// itself is never stored, only its hash).
///
/// It also carries the queue of refreshes waiting for a batch (see
/// `rotation.rs`): one per server, like the key.
#[derive(Clone)]
pub struct RefreshKey {
    mac: Hmac<Sha256>,
    pub(crate) rotations: std::sync::Arc<crate::rotation::Queue>,
}

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey(<redacted>)")
    }
}

impl RefreshKey {
    /// Derives the key from the server's JWT secret.
    ///
    /// # Errors
    /// Never in practice (HMAC takes keys of any length); an empty secret is refused.
    pub fn from_secret(secret: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        if secret.is_empty() {
            return Err(hmac::digest::InvalidLength);
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)?;
        mac.update(b"goforward-auth/refresh-token/v1");
        let derived = mac.finalize().into_bytes();
        Ok(Self {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&derived)?,
            rotations: std::sync::Arc::default(),
        })
    }

    /// The child token of `token`.
    pub fn child(&self, token: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn otp_has_digits_only() {
        for _ in 0..100 {
            let code = otp(6);
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn children_are_deterministic_and_distinct() {
        let key = RefreshKey::from_secret(b"secret-secret-secret-secret-secret").unwrap();
        let other = RefreshKey::from_secret(b"another-secret-another-secret-xx").unwrap();
        assert_eq!(key.child("abc"), key.child("abc"));
        assert_ne!(key.child("abc"), key.child("abd"));
        assert_ne!(key.child("abc"), other.child("abc"));
    }

    #[test]
    fn sha256_hex_is_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_compares() {
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
