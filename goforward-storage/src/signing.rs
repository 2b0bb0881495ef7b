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

/// The token header. Only what [`UrlSigner::sign`] writes is accepted: `alg`
/// must be `HS256` (algorithm pinned, never taken from the token), `typ`
/// `JWT` when present, `kid` a string when present; any other member refuses
/// the token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// The only algorithm signed-URL tokens are signed and verified with.
const ALG: &str = "HS256";

/// Shortest accepted signing secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

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

    /// The signer of the `storage` section: `signing_secret` with
    /// `signing_kid`, plus `previous_signing_secrets` for verification; without
    /// `signing_secret`, derived from `jwt.secret` with `jwt.kid` and
    /// `jwt.previous_secrets` (core validated those).
    ///
    /// # Errors
    /// [`goforward_core::Error::Config`] naming the key: a secret shorter than
    /// [`MIN_SECRET_LEN`] bytes, a malformed `kid` (1–128 printable ASCII
    /// characters without spaces), two keys with the same `kid` (at most one
    /// without), `signing_kid` or previous secrets without `signing_secret`,
    /// or neither `signing_secret` nor `jwt.secret`.
    pub fn from_config(
        config: &crate::config::StorageConfig,
        jwt: &goforward_core::config::JwtConfig,
    ) -> std::result::Result<Self, goforward_core::Error> {
        use goforward_core::Error;
        use secrecy::ExposeSecret;
        let internal = |e: StorageError| Error::Internal(e.to_string());
        let Some(secret) = &config.signing_secret else {
            if let Some(kid) = &config.signing_kid {
                return Err(Error::config(
                    "storage.signing_kid",
                    kid.clone(),
                    "needs storage.signing_secret",
                ));
            }
            if !config.previous_signing_secrets.is_empty() {
                return Err(Error::config(
                    "storage.previous_signing_secrets",
                    "<redacted>",
                    "needs storage.signing_secret",
                ));
            }
            let Some(secret) = &jwt.secret else {
                return Err(Error::config(
                    "storage.signing_secret",
                    "",
                    "required when no jwt.secret is configured",
                ));
            };
            let mut signer = Self::with_kid(jwt.kid.clone(), secret.expose_secret().as_bytes())
                .map_err(internal)?;
            for previous in &jwt.previous_secrets {
                signer = signer
                    .with_previous(
                        previous.kid.clone(),
                        previous.secret.expose_secret().as_bytes(),
                    )
                    .map_err(internal)?;
            }
            return Ok(signer);
        };
        let keys =
            std::iter::once((
                "storage.signing_secret".to_owned(),
                "storage.signing_kid".to_owned(),
                secret,
                config.signing_kid.as_ref(),
            ))
            .chain(config.previous_signing_secrets.iter().enumerate().map(
                |(i, p)| {
                    (
                        format!("storage.previous_signing_secrets[{i}].secret"),
                        format!("storage.previous_signing_secrets[{i}].kid"),
                        &p.secret,
                        p.kid.as_ref(),
                    )
                },
            ));
        let mut seen = std::collections::HashSet::new();
        for (secret_key, kid_key, secret, kid) in keys {
            if secret.expose_secret().len() < MIN_SECRET_LEN {
                return Err(Error::config(
                    secret_key,
                    "<redacted>",
                    format!("must be at least {MIN_SECRET_LEN} bytes"),
                ));
            }
            if let Some(kid) = kid {
                let well_formed = !kid.is_empty()
                    && kid.len() <= 128
                    && kid.chars().all(|c| c.is_ascii_graphic());
                if !well_formed {
                    return Err(Error::config(
                        kid_key,
                        kid.clone(),
                        "1 to 128 printable ASCII characters without spaces",
                    ));
                }
            }
            if !seen.insert(kid) {
                return Err(Error::config(
                    kid_key,
                    kid.cloned().unwrap_or_default(),
                    "must be unique among the signing keys (at most one key without a kid)",
                ));
            }
        }
        let mut signer = Self::with_kid(
            config.signing_kid.clone(),
            secret.expose_secret().as_bytes(),
        )
        .map_err(internal)?;
        for previous in &config.previous_signing_secrets {
            signer = signer
                .with_previous(
                    previous.kid.clone(),
                    previous.secret.expose_secret().as_bytes(),
                )
                .map_err(internal)?;
        }
        Ok(signer)
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
            Some(kid) => serde_json::json!({"alg": ALG, "typ": "JWT", "kid": kid}),
            None => serde_json::json!({"alg": ALG, "typ": "JWT"}),
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
        if header.alg != ALG || header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(invalid("invalid signature"));
        }
        // The key is chosen by `kid` alone (a token without one: the key without
        // one), never by trying keys until one matches: an unknown or removed
        // `kid` is refused, and a token signed with one key but naming another
        // fails that other key's check. Kids are unique in the storage section;
        // with keys derived from `jwt` several keys may lack a kid, and each is
        // checked — the number of checks depends on the public header only.
        let mut verified = false;
        for key in std::iter::once(&self.current).chain(&self.previous) {
            if key.kid != header.kid {
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
        // A token naming another key than the one that signed it is refused,
        // and so is one naming a kid no key has, or none at all.
        let (header, rest) = token.split_once('.').unwrap();
        let mut claimed: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(claimed["kid"], "k1");
        for kid in [
            serde_json::json!("k2"),
            serde_json::json!("k9"),
            serde_json::Value::Null,
        ] {
            claimed["kid"] = kid;
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(claimed.to_string()));
            assert!(
                new.verify(&forged, Scope::Download, "b", "a.txt", 50)
                    .is_err()
            );
        }
        // Without the previous key the old token is refused.
        let only_new = UrlSigner::with_kid(Some("k2".into()), new_secret).unwrap();
        assert!(
            only_new
                .verify(&token, Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
    }

    /// Re-signs `claims` under `header` with `secret`'s key, as an attacker who
    /// knows the key could not but a confused verifier might accept.
    fn with_header(secret: &[u8], header: &serde_json::Value, exp: i64) -> String {
        let key = SigningKey::derive(None, secret).unwrap();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Scope::Download, exp)).unwrap())
        );
        let mut mac = keyed(&key.key).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn algorithm_pinned() {
        let secret = b"secret-secret-secret-secret-secret";
        let s = UrlSigner::new(secret).unwrap();
        let good = with_header(
            secret,
            &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            100,
        );
        assert!(s.verify(&good, Scope::Download, "b", "a.txt", 50).is_ok());
        for header in [
            serde_json::json!({"alg": "none", "typ": "JWT"}),
            serde_json::json!({"alg": "HS512", "typ": "JWT"}),
            serde_json::json!({"alg": "hs256", "typ": "JWT"}),
            serde_json::json!({"typ": "JWT"}),
            serde_json::json!({"alg": "HS256", "typ": "JWS"}),
            serde_json::json!({"alg": "HS256", "kid": 1}),
            serde_json::json!({"alg": "HS256", "crit": ["exp"]}),
        ] {
            let t = with_header(secret, &header, 100);
            assert!(
                s.verify(&t, Scope::Download, "b", "a.txt", 50).is_err(),
                "{header}"
            );
        }
        // `alg: none` with an empty signature.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Scope::Download, 100)).unwrap())
        );
        assert!(
            s.verify(&unsigned, Scope::Download, "b", "a.txt", 50)
                .is_err()
        );
    }

    fn config(section: serde_json::Value) -> crate::config::StorageConfig {
        serde_json::from_value(section).unwrap()
    }

    #[test]
    fn keys_from_config() {
        let jwt = goforward_core::config::JwtConfig::default();
        let long = "s".repeat(32);
        let other = "t".repeat(32);
        let third = "u".repeat(32);
        let ok = UrlSigner::from_config(
            &config(serde_json::json!({
                "signing_secret": long, "signing_kid": "k2",
                "previous_signing_secrets": [{"kid": "k1", "secret": other}, {"secret": third}]
            })),
            &jwt,
        )
        .unwrap();
        assert_eq!(ok.current.kid.as_deref(), Some("k2"));
        assert_eq!(ok.previous.len(), 2);
        for (section, key) in [
            (
                serde_json::json!({"signing_secret": "short"}),
                "storage.signing_secret",
            ),
            (
                serde_json::json!({"signing_secret": long, "signing_kid": "k 1"}),
                "storage.signing_kid",
            ),
            (
                serde_json::json!({"signing_secret": long, "signing_kid": ""}),
                "storage.signing_kid",
            ),
            (
                serde_json::json!({"signing_secret": long, "signing_kid": "k1",
                    "previous_signing_secrets": [{"kid": "k1", "secret": other}]}),
                "storage.previous_signing_secrets[0].kid",
            ),
            (
                serde_json::json!({"signing_secret": long,
                    "previous_signing_secrets": [{"secret": other}]}),
                "storage.previous_signing_secrets[0].kid",
            ),
            (
                serde_json::json!({"signing_secret": long, "signing_kid": "k2",
                    "previous_signing_secrets": [{"kid": "k1", "secret": "short"}]}),
                "storage.previous_signing_secrets[0].secret",
            ),
            (
                serde_json::json!({"signing_kid": "k1"}),
                "storage.signing_kid",
            ),
            (
                serde_json::json!({"previous_signing_secrets": [{"kid": "k1", "secret": other}]}),
                "storage.previous_signing_secrets",
            ),
            (serde_json::json!({}), "storage.signing_secret"),
        ] {
            let err = UrlSigner::from_config(&config(section.clone()), &jwt).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{section}: {err}"
            );
        }
        assert!(
            serde_json::from_value::<crate::config::StorageConfig>(serde_json::json!({
                "previous_signing_secrets": [{"kid": "k1", "secret": other, "alg": "HS256"}]
            }))
            .is_err()
        );
    }
}
