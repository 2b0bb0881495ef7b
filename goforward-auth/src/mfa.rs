//! TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits, ±1 step), secret
//! encryption at rest (AES-256-GCM) and enrollment QR codes.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;
use sha2::Sha256;

use crate::crypto::ct_eq;

/// Length of a TOTP step in seconds.
pub const STEP_SECS: i64 = 30;
/// Digits of a TOTP code.
pub const DIGITS: u32 = 6;

/// A fresh 160-bit TOTP secret.
pub fn new_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 20];
    rand::rng().fill(bytes.as_mut_slice());
    bytes
}

/// RFC 4648 base32 without padding (what authenticator apps expect).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The TOTP code of `secret` at time step `step`.
pub fn code_at(secret: &[u8], step: i64) -> String {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    format!("{:06}", binary % 10u32.pow(DIGITS))
}

/// The time step of a unix time.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// Checks `code` against the steps around `now` (±1); returns the matching
/// step. Every candidate is compared in constant time.
pub fn verify(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        if ct_eq(&code_at(secret, step), code) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…` for authenticator apps.
pub fn uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let label = format!("{issuer}:{account}");
    let label: String = url::form_urlencoded::byte_serialize(label.as_bytes()).collect();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("secret", secret_b32)
        .append_pair("issuer", issuer)
        .append_pair("algorithm", "SHA1")
        .append_pair("digits", "6")
        .append_pair("period", "30")
        .finish();
    format!("otpauth://totp/{}?{query}", label.replace('+', "%20"))
}

/// The QR code of `text` as an SVG document.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// Encrypts MFA secrets at rest with AES-256-GCM under a key derived from
/// the server secret; the factor id is bound as associated data.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    /// Derives the key from the server's JWT secret.
    ///
    /// # Errors
    /// An empty secret.
    pub fn from_secret(secret: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        if secret.is_empty() {
            return Err(hmac::digest::InvalidLength);
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)?;
        mac.update(b"goforward-auth/mfa-secret/v1");
        let key = mac.finalize().into_bytes();
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| hmac::digest::InvalidLength)?;
        Ok(Self { cipher })
    }

    /// Encrypts `plain` bound to `context` (the factor id).
    pub fn seal(&self, plain: &[u8], context: &str) -> Option<String> {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Decrypts what [`SecretBox::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA1, secret "12345678901234567890", 8 digits → last 6.
        let secret = b"12345678901234567890";
        for (time, expected8) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(code_at(secret, step_of(time)), expected8[2..]);
        }
    }

    #[test]
    fn verify_window_and_format() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let code = code_at(&secret, step_of(now));
        assert_eq!(verify(&secret, &code, now), Some(step_of(now)));
        assert_eq!(verify(&secret, &code, now + 30), Some(step_of(now)));
        assert_eq!(verify(&secret, &code, now + 95), None);
        assert_eq!(verify(&secret, "12345", now), None);
        assert_eq!(verify(&secret, "abcdef", now), None);
    }

    #[test]
    fn base32_encoding() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn seal_open_bound_to_context() {
        let b = SecretBox::from_secret(b"some-server-secret-some-server-secret").unwrap();
        let sealed = b.seal(b"totp-secret", "factor-1").unwrap();
        assert_eq!(b.open(&sealed, "factor-1").unwrap(), b"totp-secret");
        assert!(b.open(&sealed, "factor-2").is_none());
        assert!(b.open("garbage", "factor-1").is_none());
        let other = SecretBox::from_secret(b"another-server-secret-xxxxxxxxxxxx").unwrap();
        assert!(other.open(&sealed, "factor-1").is_none());
    }

    #[test]
    fn qr_and_uri() {
        let u = uri("GoForward", "a@b.co", "MZXW6YTBOI");
        assert!(
            u.starts_with("otpauth://totp/GoForward%3Aa%40b.co?secret=MZXW6YTBOI&issuer=GoForward")
        );
        assert!(qr_svg(&u).unwrap().starts_with("<?xml"));
    }
}
