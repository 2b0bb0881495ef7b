//! Why a token was refused.

/// Why a token or API key was refused. Every variant maps to HTTP 401.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Neither an `apikey` header nor a bearer token, and the server requires one.
    #[error("No API key found in request")]
    NoApiKey,
    /// The token is not a well-formed JWT (or is too long).
    #[error("invalid JWT: unable to parse")]
    Malformed,
    /// The header names an algorithm that no configured key is pinned to (including `none`).
    #[error("invalid JWT: algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header's `kid` is not in the local key set.
    #[error("invalid JWT: unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid JWT: signature verification failed")]
    InvalidSignature,
    /// `exp` is in the past.
    #[error("JWT expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("JWT not yet valid")]
    NotYetValid,
    /// A required claim is absent.
    #[error("invalid JWT: missing claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or value.
    #[error("invalid JWT: invalid claim `{0}`")]
    InvalidClaim(&'static str),
    /// The `apikey` header holds no valid key.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// A configured key could not be loaded or used.
    #[error("invalid key material")]
    InvalidKey,
    /// An opaque API key must be looked up in its store first: the sync
    /// paths answer this; [`Authenticator::authenticate_async`](super::Authenticator::authenticate_async)
    /// and the [`Principal`](super::Principal) extractor never do.
    #[error("Invalid API key")]
    LookupRequired,
    /// The token's session ended (sign-out, ban, deletion, revocation)
    /// before the token expired; see [`crate::bus::SessionsRevoked`].
    #[error("session has been revoked")]
    SessionRevoked,
}

impl TokenError {
    /// Stable machine code (`core.*`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoApiKey => "core.no_api_key",
            Self::Malformed => "core.jwt_malformed",
            Self::AlgorithmNotAllowed => "core.jwt_algorithm_not_allowed",
            Self::UnknownKey => "core.jwt_unknown_key",
            Self::InvalidSignature => "core.jwt_invalid_signature",
            Self::Expired => "core.jwt_expired",
            Self::NotYetValid => "core.jwt_not_yet_valid",
            Self::MissingClaim(_) => "core.jwt_missing_claim",
            Self::InvalidClaim(_) => "core.jwt_invalid_claim",
            Self::InvalidApiKey => "core.invalid_api_key",
            Self::InvalidKey => "core.invalid_key",
            Self::LookupRequired => "core.invalid_api_key",
            Self::SessionRevoked => "core.session_revoked",
        }
    }

    pub(crate) fn from_jwt(err: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::InvalidSignature => Self::InvalidSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm => Self::AlgorithmNotAllowed,
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => Self::MissingClaim("exp"),
            ErrorKind::MissingRequiredClaim(_) => Self::MissingClaim("aud/iss"),
            ErrorKind::InvalidClaimFormat(c) if c == "exp" => Self::InvalidClaim("exp"),
            ErrorKind::InvalidClaimFormat(c) if c == "nbf" => Self::InvalidClaim("nbf"),
            ErrorKind::InvalidClaimFormat(_) => Self::InvalidClaim("format"),
            ErrorKind::InvalidAudience => Self::InvalidClaim("aud"),
            ErrorKind::InvalidIssuer => Self::InvalidClaim("iss"),
            ErrorKind::InvalidSubject => Self::InvalidClaim("sub"),
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => Self::InvalidSignature,
            _ => Self::Malformed,
        }
    }
}
