//! JWT verification (and HS256 issuing) with per-key pinned algorithms.
//!
//! Core *verifies* tokens; the auth plugin *issues* them through
//! [`TokenSigner`]. A host that issues its own compatible JWTs can use REST,
//! realtime and storage without the auth plugin.
//!
//! Verification is strict (security checklist item 1): every key has exactly
//! one algorithm, `none` is never accepted, an HS256 secret is never tried
//! against an RS/ES token (or the reverse), `exp` is required and numeric,
//! `nbf` and `iat` are checked with a small leeway, `aud`/`iss` when
//! configured, `kid` is looked up in the local key set only and `jku`/`jwk`/
//! `x5u` header fields are ignored.

mod error;
mod principal;

pub use error::TokenError;
pub use principal::{Authenticator, Principal, Role};

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Algorithms a verification key may be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KeyAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (public key in PEM).
    RS256,
    /// ECDSA P-256 with SHA-256 (public key in PEM).
    ES256,
}

impl KeyAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
        }
    }
}

struct VerifyKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies access tokens and API keys against a local key set.
pub struct TokenVerifier {
    keys: Vec<VerifyKey>,
    audience: Option<HashSet<String>>,
    issuer: Option<HashSet<String>>,
    leeway_secs: u64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|k| (k.kid.clone(), k.alg))
                    .collect::<Vec<_>>(),
            )
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier accepting HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            keys: vec![VerifyKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }],
            audience: None,
            issuer: None,
            leeway_secs: 30,
        }
    }

    /// Adds a public key (PEM) pinned to `alg`, optionally addressed by `kid`.
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] when the PEM does not parse for that algorithm
    /// or when `alg` is HS256 (secrets are not public keys).
    pub fn with_public_key(
        mut self,
        kid: Option<String>,
        alg: KeyAlgorithm,
        pem: &[u8],
    ) -> Result<Self, TokenError> {
        let key = match alg {
            KeyAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem),
            KeyAlgorithm::ES256 => DecodingKey::from_ec_pem(pem),
            KeyAlgorithm::HS256 => return Err(TokenError::InvalidKey),
        }
        .map_err(|_| TokenError::InvalidKey)?;
        self.keys.push(VerifyKey {
            kid,
            alg: alg.jwt(),
            key,
        });
        Ok(self)
    }

    /// Requires the `aud` claim to be one of `audiences`.
    pub fn with_audience(mut self, audiences: impl IntoIterator<Item = String>) -> Self {
        self.audience = Some(audiences.into_iter().collect());
        self
    }

    /// Requires the `iss` claim to be one of `issuers`.
    pub fn with_issuer(mut self, issuers: impl IntoIterator<Item = String>) -> Self {
        self.issuer = Some(issuers.into_iter().collect());
        self
    }

    /// Sets the clock leeway for `exp`, `nbf` and `iat` (default 30 s).
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// Verifies `token` and returns its claims.
    ///
    /// # Errors
    /// A [`TokenError`] naming what failed: malformed, algorithm not allowed,
    /// unknown key, bad signature, expired, not yet valid, or a missing or
    /// invalid claim.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        if token.len() > 8 * 1024 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = self.select_key(&header)?;

        let mut validation = Validation::new(key.alg);
        validation.algorithms = vec![key.alg];
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        match &self.audience {
            Some(aud) => validation.aud = Some(aud.clone()),
            None => validation.validate_aud = false,
        }
        validation.iss = self.issuer.clone();

        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(TokenError::from_jwt)?;
        let claims = data.claims;
        self.check_iat(&claims)?;
        Ok(claims)
    }

    fn select_key(&self, header: &Header) -> Result<&VerifyKey, TokenError> {
        if !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256
        ) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let candidates = self.keys.iter().filter(|k| k.alg == header.alg);
        let found = match &header.kid {
            Some(kid) => candidates
                .into_iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None => candidates
                .into_iter()
                .find(|k| k.kid.is_none())
                .or_else(|| self.keys.iter().find(|k| k.alg == header.alg)),
        };
        match found {
            Some(key) => Ok(key),
            None if self.keys.iter().any(|k| k.alg == header.alg) => Err(TokenError::UnknownKey),
            None => Err(TokenError::AlgorithmNotAllowed),
        }
    }

    fn check_iat(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        match claims.get("iat") {
            None => Ok(()),
            Some(Value::Number(n)) => {
                let iat = n.as_f64().ok_or(TokenError::InvalidClaim("iat"))?;
                let now = chrono::Utc::now().timestamp() as f64;
                if iat > now + self.leeway_secs as f64 {
                    Err(TokenError::InvalidClaim("iat"))
                } else {
                    Ok(())
                }
            }
            Some(_) => Err(TokenError::InvalidClaim("iat")),
        }
    }
}

/// Issues HS256 tokens with the shared secret (used by auth, `goforward keys` and tests).
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(HS256, <redacted>)")
    }
}

impl TokenSigner {
    /// A signer using `secret` (HS256).
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
        }
    }

    /// Signs `claims` (must contain `exp`).
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] if signing fails.
    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .map_err(|_| TokenError::InvalidKey)
    }

    /// Signs a Supabase-style API key: `{"iss":"goforward","role":role,"iat","exp"}`
    /// valid for `valid_for_secs` seconds.
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] if signing fails.
    pub fn api_key(&self, role: &str, valid_for_secs: i64) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        self.sign(&serde_json::json!({
            "iss": "goforward",
            "role": role,
            "iat": now,
            "exp": now + valid_for_secs,
        }))
    }
}
