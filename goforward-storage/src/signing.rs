//! Signed URL tokens: HMAC-SHA256 over `(scope, bucket, object name, expiry,
//! owner, upsert)`, JWT-shaped (`header.payload.signature`, base64url) so
//! clients treat them as Supabase tokens, verified in constant time.
//!
//! The key is derived from the configured secret with a purpose label, so a
//! signed-URL token is never a valid access token and vice versa.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Result, StorageError};

type HmacSha256 = Hmac<Sha256>;

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `GET /object/sign/{bucket}/{path}`.
    Download,
    /// `PUT /object/upload/sign/{bucket}/{path}`.
    Upload,
}

/// The signed claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `"<bucket>/<name>"`.
    pub url: String,
    /// Download or upload.
    pub scope: Scope,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Upload tokens: the owner recorded for the uploaded object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Upload tokens: whether an existing object may be replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upsert: bool,
    /// Download tokens of image transformations (`/render/image/sign/…`): the
    /// options the signer fixed (`width`, `height`, `resize`, `quality`, `format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<std::collections::BTreeMap<String, String>>,
}

/// Signs and verifies signed-URL tokens.
///
/// Tokens carry the `kid` of the key that signed them; keys can rotate
/// without breaking links already handed out (see [`UrlSigner::with_previous`]).
#[derive(Clone)]
pub struct UrlSigner {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

#[derive(Clone)]
struct SigningKey {
    kid: Option<String>,
    key: Vec<u8>,
}

impl SigningKey {
    fn derive(kid: Option<String>, secret: &[u8]) -> Result<Self> {
        let mut mac = keyed(secret)?;
        mac.update(b"goforward-storage/signed-url/v1");
        Ok(Self {
            kid,
            key: mac.finalize().into_bytes().to_vec(),
        })
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kid: Option<String>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// Derives the signing key from `secret`.
    ///
    /// # Errors
    /// [`StorageError::Internal`] if the MAC cannot be keyed (HMAC accepts any key length).
    pub fn new(secret: &[u8]) -> Result<Self> {
        Ok(Self {
            current: SigningKey::derive(None, secret)?,
            previous: Vec::new(),
        })
    }

    /// Derives the signing key from `secret`, naming it `kid` in the tokens it signs.
    ///
    /// # Errors
    /// As [`UrlSigner::new`].
    pub fn with_kid(kid: Option<String>, secret: &[u8]) -> Result<Self> {
        Ok(Self {
            current: SigningKey::derive(kid, secret)?,
            previous: Vec::new(),
        })
    }

    /// Also accepts tokens signed with a previous secret (rotation).
    ///
    /// # Errors
    /// As [`UrlSigner::new`].
    pub fn with_previous(mut self, kid: Option<String>, secret: &[u8]) -> Result<Self> {
        self.previous.push(SigningKey::derive(kid, secret)?);
        Ok(self)
    }

    /// Signs `claims`.
    ///
    /// # Errors
    /// [`StorageError::Internal`] if the claims cannot be serialised.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let payload =
            serde_json::to_vec(claims).map_err(|e| StorageError::Internal(e.to_string()))?;
        let header = match &self.current.kid {
            Some(kid) => serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
            None => serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = keyed(&self.current.key)?;
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(format!("{signing_input}.{sig}"))
    }

    /// Verifies `token` for `scope` on `bucket/name` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`StorageError::InvalidSignature`] when the token is malformed, its
    /// signature does not match (checked in constant time), it expired, or
    /// it was issued for another scope or object.
    pub fn verify(
        &self,
        token: &str,
        scope: Scope,
        bucket: &str,
        name: &str,
        now: i64,
    ) -> Result<Claims> {
        let invalid = |m: &str| StorageError::InvalidSignature(m.to_owned());
        let (signing_input, sig) = token
            .rsplit_once('.')
            .ok_or_else(|| invalid("invalid signature"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| invalid("invalid signature"))?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or_else(|| invalid("invalid signature"))?;
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| invalid("invalid signature"))?;
        let mut verified = false;
        for key in std::iter::once(&self.current).chain(&self.previous) {
            if header.kid.is_some() && key.kid != header.kid {
                continue;
            }
            let mut mac = keyed(&key.key)?;
            mac.update(signing_input.as_bytes());
            // `verify_slice` compares in constant time.
            if mac.verify_slice(&sig).is_ok() {
                verified = true;
                break;
            }
        }
        if !verified {
            return Err(invalid("invalid signature"));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| invalid("invalid signature"))?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| invalid("invalid signature"))?;
        if claims.exp <= now {
            return Err(invalid("jwt expired"));
        }
        if claims.scope != scope {
            return Err(invalid("the token was not issued for this operation"));
        }
        if claims.url != format!("{bucket}/{name}") {
            return Err(invalid("the token was not issued for this object"));
        }
        Ok(claims)
    }
}

fn keyed(key: &[u8]) -> Result<HmacSha256> {
    HmacSha256::new_from_slice(key).map_err(|e| StorageError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: Scope, exp: i64) -> Claims {
        Claims {
            url: "b/a.txt".into(),
            scope,
            exp,
            owner: None,
            upsert: false,
            transform: None,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let s = UrlSigner::new(b"secret-secret-secret-secret-secret").unwrap();
        let t = s.sign(&claims(Scope::Download, 100)).unwrap();
        assert!(s.verify(&t, Scope::Download, "b", "a.txt", 50).is_ok());
        // expired
        assert!(s.verify(&t, Scope::Download, "b", "a.txt", 100).is_err());
        // wrong scope: a download token cannot upload
        assert!(s.verify(&t, Scope::Upload, "b", "a.txt", 50).is_err());
        // wrong object
        assert!(s.verify(&t, Scope::Download, "b", "other.txt", 50).is_err());
        // another key
        let other = UrlSigner::new(b"another-secret-another-secret-xx").unwrap();
        assert!(other.verify(&t, Scope::Download, "b", "a.txt", 50).is_err());
        // tampered payload
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Scope::Download, 10_000)).unwrap());
        parts[1] = &forged;
        assert!(
            s.verify(&parts.join("."), Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
        assert!(
            s.verify("garbage", Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
    }

    #[test]
    fn rotation_by_kid() {
        let old_secret = b"old-secret-old-secret-old-secret-x";
        let new_secret = b"new-secret-new-secret-new-secret-x";
        let old = UrlSigner::with_kid(Some("k1".into()), old_secret).unwrap();
        let token = old.sign(&claims(Scope::Download, 100)).unwrap();
        let new = UrlSigner::with_kid(Some("k2".into()), new_secret)
            .unwrap()
            .with_previous(Some("k1".into()), old_secret)
            .unwrap();
        assert!(
            new.verify(&token, Scope::Download, "b", "a.txt", 50)
                .is_ok()
        );
        let fresh = new.sign(&claims(Scope::Download, 100)).unwrap();
        assert!(
            new.verify(&fresh, Scope::Download, "b", "a.txt", 50)
                .is_ok()
        );
        assert!(
            old.verify(&fresh, Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
        // Without the previous key the old token is refused.
        let only_new = UrlSigner::with_kid(Some("k2".into()), new_secret).unwrap();
        assert!(
            only_new
                .verify(&token, Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
    }
}
