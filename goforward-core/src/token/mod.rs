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

mod admin;
mod cache;
mod error;
mod opaque;
mod principal;
mod revoked;

pub use admin::{AdminRole, Capability};
pub use error::TokenError;
pub use opaque::{ApiKeyResolver, OPAQUE_KEY_TTL};
pub use principal::{
    Authenticator, DEFAULT_TOKEN_CACHE_CAPACITY, Principal, Role, SessionsCheckedByRoutes,
};

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
    /// A verifier accepting HS256 tokens signed with `secret` (no `kid`).
    pub fn hs256(secret: &[u8]) -> Self {
        Self::empty().with_secret(None, secret)
    }

    /// A verifier with no key at all: add keys with [`TokenVerifier::with_secret`]
    /// and [`TokenVerifier::with_public_key`]; until then every token fails.
    pub fn empty() -> Self {
        Self {
            keys: Vec::new(),
            audience: None,
            issuer: None,
            leeway_secs: 30,
        }
    }

    /// Adds an HS256 secret, optionally addressed by `kid`. Several secrets
    /// make a rotation: the current one (which signs) plus retired ones that
    /// still verify tokens issued before the switch.
    ///
    /// ```
    /// use goforward_core::token::{TokenSigner, TokenVerifier};
    ///
    /// let old = TokenSigner::hs256(b"old-secret-old-secret-old-secret-!!").with_kid("2026-10");
    /// let new = TokenSigner::hs256(b"new-secret-new-secret-new-secret-!!").with_kid("2026-11");
    /// let verifier = TokenVerifier::empty()
    ///     .with_secret(Some("2026-11".into()), b"new-secret-new-secret-new-secret-!!")
    ///     .with_secret(Some("2026-10".into()), b"old-secret-old-secret-old-secret-!!");
    /// for signer in [old, new] {
    ///     let token = signer.api_key("anon", 60).unwrap();
    ///     assert!(verifier.verify(&token).is_ok());
    /// }
    /// ```
    pub fn with_secret(mut self, kid: Option<String>, secret: &[u8]) -> Self {
        self.keys.push(VerifyKey {
            kid,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        });
        self
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
        let mut candidates = self.candidate_keys(&header)?.into_iter().peekable();
        while let Some(key) = candidates.next() {
            match self.verify_with(token, key) {
                // Without a `kid`, a rotation's other secrets may still match.
                Err(TokenError::InvalidSignature) if candidates.peek().is_some() => {}
                result => return result,
            }
        }
        Err(TokenError::UnknownKey)
    }

    fn verify_with(&self, token: &str, key: &VerifyKey) -> Result<Map<String, Value>, TokenError> {
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

    /// The keys a token may be verified with: the one its `kid` names, or
    /// (no `kid`) every key of its algorithm, key-id-less ones first. Only
    /// keys pinned to the header's algorithm are ever candidates.
    fn candidate_keys(&self, header: &Header) -> Result<Vec<&VerifyKey>, TokenError> {
        if !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::ES256
        ) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let mut same_alg: Vec<&VerifyKey> =
            self.keys.iter().filter(|k| k.alg == header.alg).collect();
        if same_alg.is_empty() {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        match &header.kid {
            Some(kid) => {
                same_alg.retain(|k| k.kid.as_deref() == Some(kid.as_str()));
                same_alg.truncate(1);
            }
            None => same_alg.sort_by_key(|k| k.kid.is_some()),
        }
        if same_alg.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        Ok(same_alg)
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
    kid: Option<String>,
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
            kid: None,
        }
    }

    /// Writes `kid` into the header of every token this signer issues, so
    /// verifiers pick the right secret during a rotation (`jwt.kid`).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Signs `claims` (must contain `exp`).
    ///
    /// # Errors
    /// [`TokenError::InvalidKey`] if signing fails.
    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|_| TokenError::InvalidKey)
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
