//! Who is calling: [`Principal`], [`Role`], and the actix extractor.

use std::{future::Ready, sync::Arc};

use futures_util::future::{Either, LocalBoxFuture};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest,
    dev::Payload,
    http::header::{self, HeaderName},
    web,
};

/// The header supabase-js sends the project's API key in.
static APIKEY: HeaderName = HeaderName::from_static("apikey");
use serde_json::{Map, Value};

use super::{
    TokenError, TokenVerifier,
    cache::{VerifiedRequests, VerifiedTokens, unix_now},
    opaque::{ApiKeyResolver, ResolvedKeys, Resolvers},
    revoked::RevokedSessions,
};
use crate::bus::SessionsRevoked;
use crate::error::{ApiErrorFormat, Error};

/// The role a token grants, from its `role` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No user: the anon API key, or no token when keys are optional.
    Anon,
    /// A signed-in user.
    Authenticated,
    /// The server's own key: bypasses access control.
    ServiceRole,
    /// Any other role name a host issues.
    Custom(String),
}

impl Role {
    /// Parses a `role` claim.
    pub fn from_claim(role: &str) -> Self {
        match role {
            "anon" => Self::Anon,
            "authenticated" => Self::Authenticated,
            "service_role" => Self::ServiceRole,
            other => Self::Custom(other.to_owned()),
        }
    }

    /// The claim string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Anon => "anon",
            Self::Authenticated => "authenticated",
            Self::ServiceRole => "service_role",
            Self::Custom(name) => name,
        }
    }
}

/// Who is calling, as established from the request's `apikey` header and
/// `Authorization: Bearer` token.
///
/// Use it as an actix extractor; a bad token is answered with 401 in the
/// wire shape of the scope that handles the request.
///
/// ```no_run
/// use actix_web::{HttpResponse, get};
/// use goforward_core::token::Principal;
///
/// #[get("/whoami")]
/// async fn whoami(principal: Principal) -> HttpResponse {
///     HttpResponse::Ok().json(serde_json::json!({
///         "role": principal.role.as_str(),
///         "user_id": principal.user_id,
///     }))
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The role from the token's `role` claim.
    pub role: Role,
    /// The `sub` claim, when the token names a user.
    ///
    /// The text fields are shared (`Arc<str>`), so handing a remembered
    /// principal to each request copies no strings; read them with
    /// `as_deref()`.
    pub user_id: Option<Arc<str>>,
    /// The `session_id` claim (tokens issued by the auth plugin).
    pub session_id: Option<Arc<str>>,
    /// Authenticator assurance level (`aal1`/`aal2`), when present.
    pub aal: Option<Arc<str>>,
    /// All claims of the verified token (empty for keyless anon).
    pub claims: Arc<Map<String, Value>>,
}

impl Principal {
    /// The anonymous principal with no claims.
    pub fn anon() -> Self {
        Self {
            role: Role::Anon,
            user_id: None,
            session_id: None,
            aal: None,
            claims: Arc::new(Map::new()),
        }
    }

    /// A service_role principal with no claims (server-internal calls).
    pub fn service() -> Self {
        Self {
            role: Role::ServiceRole,
            ..Self::anon()
        }
    }

    /// Builds a principal from verified claims.
    ///
    /// # Errors
    /// [`TokenError::MissingClaim`] without a `role`, [`TokenError::InvalidClaim`]
    /// when `role`, `sub`, `session_id` or `aal` are not strings.
    pub fn from_claims(claims: Map<String, Value>) -> Result<Self, TokenError> {
        let role = match claims.get("role") {
            Some(Value::String(r)) if !r.is_empty() => Role::from_claim(r),
            Some(_) => return Err(TokenError::InvalidClaim("role")),
            None => return Err(TokenError::MissingClaim("role")),
        };
        let string_claim = |name: &'static str| match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(Arc::<str>::from(s.as_str()))),
            Some(_) => Err(TokenError::InvalidClaim(name)),
        };
        let user_id = string_claim("sub")?.filter(|s| !s.is_empty());
        let session_id = string_claim("session_id")?;
        let aal = string_claim("aal")?;
        if role == Role::Authenticated && user_id.is_none() {
            return Err(TokenError::MissingClaim("sub"));
        }
        Ok(Self {
            role,
            user_id,
            session_id,
            aal,
            claims: Arc::new(claims),
        })
    }

    /// True for service_role, which bypasses access control.
    pub fn is_service(&self) -> bool {
        self.role == Role::ServiceRole
    }

    /// True for the anonymous role.
    pub fn is_anon(&self) -> bool {
        self.role == Role::Anon
    }
}

/// Turns request headers into a [`Principal`]. Built once by
/// [`GoForwardBuilder::build`](crate::GoForwardBuilder::build) and shared by every worker.
#[derive(Debug)]
pub struct Authenticator {
    verifier: TokenVerifier,
    require_apikey: bool,
    api_keys: VerifiedTokens,
    access_tokens: VerifiedTokens,
    requests: VerifiedRequests,
    resolvers: Resolvers,
    opaque_keys: ResolvedKeys,
    revoked: RevokedSessions,
}

/// Verified tokens an [`Authenticator`] remembers by default (`jwt.cache_capacity`).
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 4096;

impl Authenticator {
    /// Creates an authenticator. With `require_apikey`, a request with neither
    /// an `apikey` header nor a bearer token is refused (Supabase gateway
    /// behaviour); without it, such a request is anonymous.
    pub fn new(verifier: TokenVerifier, require_apikey: bool) -> Self {
        Self::with_cache_capacity(verifier, require_apikey, DEFAULT_TOKEN_CACHE_CAPACITY)
    }

    /// As [`Authenticator::new`], remembering up to `capacity` verified access
    /// tokens (and a few API keys) until they expire; `0` verifies every time.
    pub fn with_cache_capacity(
        verifier: TokenVerifier,
        require_apikey: bool,
        capacity: usize,
    ) -> Self {
        let leeway = verifier.leeway_secs;
        Self {
            verifier,
            require_apikey,
            // A project has a handful of API keys; many users' access tokens.
            api_keys: VerifiedTokens::new(capacity.min(64), leeway),
            access_tokens: VerifiedTokens::new(capacity, leeway),
            requests: VerifiedRequests::new(capacity),
            resolvers: Resolvers::default(),
            opaque_keys: ResolvedKeys::new(),
            revoked: RevokedSessions::new(),
        }
    }

    /// Adds a store of opaque API keys (service accounts, a host's own
    /// keys): keys it recognizes are then accepted wherever an `apikey` or
    /// a bearer token is. The first resolver that recognizes a key decides.
    pub fn add_api_key_resolver(&self, resolver: Arc<dyn ApiKeyResolver>) {
        self.resolvers.add(resolver);
    }

    /// Forgets every looked-up opaque key, so a revoked key is refused on
    /// this node from the next request on (other nodes: within
    /// [`OPAQUE_KEY_TTL`](super::OPAQUE_KEY_TTL)).
    pub fn forget_api_keys(&self) {
        self.opaque_keys.clear();
    }

    /// Refuses, from now on, the access tokens of the sessions `event`
    /// names (or, with `session_ids: None`, every token of the user issued
    /// until now) with [`TokenError::SessionRevoked`]. GoForward calls this
    /// for every [`SessionsRevoked`] event on the bus, so a sign-out or a
    /// ban takes effect on every node at once rather than at token expiry.
    ///
    /// ```
    /// use goforward_core::bus::SessionsRevoked;
    /// use goforward_core::token::{Authenticator, TokenError, TokenSigner, TokenVerifier};
    ///
    /// let secret = b"a-test-secret-of-at-least-32-bytes!!";
    /// let auth = Authenticator::new(TokenVerifier::hs256(secret), false);
    /// let now = chrono::Utc::now().timestamp();
    /// let token = TokenSigner::hs256(secret)
    ///     .sign(&serde_json::json!({"role": "authenticated", "sub": "u1",
    ///         "session_id": "s1", "iat": now, "exp": now + 60}))
    ///     .unwrap();
    /// assert!(auth.verify_access_token(&token).is_ok());
    /// auth.revoke_sessions(&SessionsRevoked {
    ///     user_id: "u1".into(),
    ///     session_ids: Some(vec!["s1".into()]),
    ///     reason: "signed_out".into(),
    /// });
    /// assert_eq!(auth.verify_access_token(&token), Err(TokenError::SessionRevoked));
    /// ```
    pub fn revoke_sessions(&self, event: &SessionsRevoked) {
        self.revoked.record(event, unix_now());
    }

    /// Remembers revocations for at least `secs` seconds (default 3600): the
    /// issuer of access tokens sets its longest token lifetime here, so a
    /// revoked session's tokens have all expired by the time it is forgotten.
    pub fn retain_revocations_for(&self, secs: i64) {
        self.revoked.retain_for(secs);
    }

    /// `principal`, unless its session (or its user, as of the token's
    /// `iat`) was revoked.
    fn unless_revoked(&self, principal: Principal) -> Result<Principal, TokenError> {
        self.revoked.check(&principal, unix_now)?;
        Ok(principal)
    }

    fn is_opaque(&self, key: &str) -> bool {
        self.resolvers.for_key(key).is_some()
    }

    /// An opaque key's principal when it was looked up recently.
    fn cached_opaque(&self, key: &str) -> Result<Principal, TokenError> {
        self.opaque_keys.get(key).ok_or(TokenError::LookupRequired)
    }

    /// The verifier (for plugins that receive tokens outside headers, e.g. realtime).
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// Verifies an API key (a JWT whose role is `anon` or `service_role`, or a custom role).
    ///
    /// # Errors
    /// [`TokenError::InvalidApiKey`] when it is not a valid key.
    pub fn verify_api_key(&self, key: &str) -> Result<Principal, TokenError> {
        self.api_keys
            .get_or_verify(key, || self.verify_api_key_uncached(key))
    }

    fn verify_api_key_uncached(&self, key: &str) -> Result<Principal, TokenError> {
        let claims = self
            .verifier
            .verify(key)
            .map_err(|_| TokenError::InvalidApiKey)?;
        let principal = Principal::from_claims(claims).map_err(|_| TokenError::InvalidApiKey)?;
        if principal.role == Role::Authenticated {
            return Err(TokenError::InvalidApiKey);
        }
        Ok(principal)
    }

    /// Verifies an access token (bearer).
    ///
    /// # Errors
    /// The [`TokenError`] explaining why the token was refused.
    pub fn verify_access_token(&self, token: &str) -> Result<Principal, TokenError> {
        self.access_tokens
            .get_or_verify(token, || {
                Principal::from_claims(self.verifier.verify(token)?)
            })
            .and_then(|principal| self.unless_revoked(principal))
    }

    /// Establishes the principal from an `apikey` value and an `Authorization` header value.
    ///
    /// # Errors
    /// A [`TokenError`] when a present key or token is invalid, or when both are
    /// absent and keys are required.
    pub fn authenticate(
        &self,
        apikey: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Principal, TokenError> {
        self.authenticate_until(apikey, authorization)
            .and_then(|(principal, _)| self.unless_revoked(principal))
    }

    /// As [`Authenticator::authenticate`], with the Unix time until which
    /// the answer holds when it came from JWTs alone (`None` for opaque keys
    /// and keyless requests, which are not remembered by header).
    fn authenticate_until(
        &self,
        apikey: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(Principal, Option<i64>), TokenError> {
        let bearer = match authorization {
            None => None,
            Some(value) => {
                let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
                if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                    return Err(TokenError::Malformed);
                }
                Some(token.trim())
            }
        };
        match (bearer, apikey.map(str::trim)) {
            // The key must be valid, but the bearer token decides who calls.
            (Some(token), Some(key)) => {
                let key_until = if self.is_opaque(key) {
                    self.cached_opaque(key)?;
                    None
                } else {
                    let verified = self
                        .api_keys
                        .verified(key, || self.verify_api_key_uncached(key))?;
                    Some(verified.valid_until)
                };
                let (principal, token_until) = self.bearer_principal(token)?;
                Ok((principal, key_until.zip(token_until).map(|(k, t)| k.min(t))))
            }
            (Some(token), None) => self.bearer_principal(token),
            (None, Some(key)) if self.is_opaque(key) => Ok((self.cached_opaque(key)?, None)),
            (None, Some(key)) => {
                let verified = self
                    .api_keys
                    .verified(key, || self.verify_api_key_uncached(key))?;
                Ok((verified.principal.clone(), Some(verified.valid_until)))
            }
            (None, None) if self.require_apikey => Err(TokenError::NoApiKey),
            (None, None) => Ok((Principal::anon(), None)),
        }
    }

    fn bearer_principal(&self, token: &str) -> Result<(Principal, Option<i64>), TokenError> {
        if self.is_opaque(token) {
            return Ok((self.cached_opaque(token)?, None));
        }
        let verified = self.access_tokens.verified(token, || {
            Principal::from_claims(self.verifier.verify(token)?)
        })?;
        Ok((verified.principal.clone(), Some(verified.valid_until)))
    }

    /// As [`Authenticator::authenticate`], looking opaque API keys up in the
    /// registered [`ApiKeyResolver`] when they are not remembered.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a refused key or token; the resolver's
    /// error when the key store fails.
    pub async fn authenticate_async(
        &self,
        apikey: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Principal, Error> {
        match self.authenticate(apikey, authorization) {
            Err(TokenError::LookupRequired) => {}
            done => return done.map_err(Error::Unauthorized),
        }
        let bearer = authorization
            .and_then(|value| value.trim().split_once(' '))
            .map(|(_, token)| token.trim());
        for key in [apikey.map(str::trim), bearer].into_iter().flatten() {
            if !self.is_opaque(key) || self.opaque_keys.get(key).is_some() {
                continue;
            }
            let resolver = self
                .resolvers
                .for_key(key)
                .ok_or(TokenError::InvalidApiKey)?;
            match resolver.resolve(key).await? {
                // A service account acts as its role; it is never a user session.
                Some(principal) => self.opaque_keys.insert(key, principal),
                None => return Err(Error::Unauthorized(TokenError::InvalidApiKey)),
            }
        }
        // Everything is remembered now (a key expiring from the cache in
        // between is refused rather than looked up twice).
        self.authenticate(apikey, authorization)
            .map_err(|err| match err {
                TokenError::LookupRequired => Error::Unauthorized(TokenError::InvalidApiKey),
                other => Error::Unauthorized(other),
            })
    }

    /// As [`Authenticator::principal_of`], looking opaque API keys up when needed.
    ///
    /// # Errors
    /// See [`Authenticator::authenticate_async`].
    pub async fn principal_of_async(&self, req: &HttpRequest) -> Result<Principal, Error> {
        match self.principal_of(req) {
            Err(TokenError::LookupRequired) => {}
            done => return done.map_err(Error::Unauthorized),
        }
        let header = |name: &HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .map(str::to_owned)
        };
        let (apikey, authorization) = (header(&APIKEY), header(&header::AUTHORIZATION));
        self.authenticate_async(apikey.as_deref(), authorization.as_deref())
            .await
    }

    /// Establishes the principal of `req` (the answer [`Authenticator::remember_principal_of`]
    /// stored in the request, if any).
    ///
    /// # Errors
    /// See [`Authenticator::authenticate`]; non-UTF-8 header values are malformed.
    pub fn principal_of(&self, req: &HttpRequest) -> Result<Principal, TokenError> {
        if let Some(remembered) = req.extensions().get::<Result<Principal, TokenError>>() {
            return remembered.clone();
        }
        self.resolve(req)
    }

    /// As [`Authenticator::principal_of`], and stores the answer in the
    /// request so later extractors reuse it: for middleware that looks at the
    /// caller before the handler does (the rate limiter keys by user).
    ///
    /// # Errors
    /// See [`Authenticator::principal_of`].
    pub fn remember_principal_of(&self, req: &HttpRequest) -> Result<Principal, TokenError> {
        if let Some(remembered) = req.extensions().get::<Result<Principal, TokenError>>() {
            return remembered.clone();
        }
        let result = self.resolve(req);
        req.extensions_mut().insert(result.clone());
        result
    }

    fn resolve(&self, req: &HttpRequest) -> Result<Principal, TokenError> {
        self.resolve_ignoring_revocations(req)
            .and_then(|principal| self.unless_revoked(principal))
    }

    /// The caller, whether or not their session was revoked since the token
    /// was issued: for routes that check sessions themselves (see
    /// [`SessionsCheckedByRoutes`]).
    fn resolve_ignoring_revocations(&self, req: &HttpRequest) -> Result<Principal, TokenError> {
        let headers = req.headers();
        let apikey = headers.get(&APIKEY).map(|v| v.as_bytes());
        let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if let Some(principal) = self.requests.get(apikey, authorization) {
            return Ok(principal);
        }
        let (principal, valid_until) =
            self.authenticate_until(header_text(apikey)?, header_text(authorization)?)?;
        if let Some(valid_until) = valid_until {
            self.requests
                .insert(apikey, authorization, &principal, valid_until);
        }
        Ok(principal)
    }
}

/// App data marking a scope whose handlers check the caller's session
/// themselves (the auth plugin answers GoTrue's `session_not_found` or
/// `user_banned` for an ended session): there the [`Principal`] extractor
/// yields the token's principal even when its session was revoked, instead
/// of refusing it with [`TokenError::SessionRevoked`].
///
/// ```
/// # use actix_web::web;
/// # use goforward_core::token::SessionsCheckedByRoutes;
/// let scope = web::scope("/auth/v1").app_data(SessionsCheckedByRoutes);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SessionsCheckedByRoutes;

/// A header value as text. `from_utf8` checks long tokens a word at a time;
/// a non-ASCII value that passes it is still no valid key or JWT.
fn header_text(value: Option<&[u8]>) -> Result<Option<&str>, TokenError> {
    value
        .map(|bytes| std::str::from_utf8(bytes).map_err(|_| TokenError::Malformed))
        .transpose()
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    /// Ready at once for JWTs; a lookup for opaque API keys not seen lately.
    type Future = Either<
        Ready<Result<Self, Self::Error>>,
        LocalBoxFuture<'static, Result<Self, Self::Error>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<Authenticator>>() {
            Some(auth) => match auth.principal_of(req) {
                Err(TokenError::LookupRequired) => {
                    let (auth, req) = (auth.clone(), req.clone());
                    return Either::Right(Box::pin(async move {
                        auth.principal_of_async(&req)
                            .await
                            .map_err(|err| ApiErrorFormat::to_actix(&req, err))
                    }));
                }
                Err(TokenError::SessionRevoked)
                    if req.app_data::<SessionsCheckedByRoutes>().is_some() =>
                {
                    auth.resolve_ignoring_revocations(req)
                        .map_err(Error::Unauthorized)
                }
                done => done.map_err(Error::Unauthorized),
            },
            None => Err(Error::Internal(
                "Authenticator is not registered: mount GoForward::routes()".into(),
            )),
        };
        Either::Left(std::future::ready(
            result.map_err(|err| ApiErrorFormat::to_actix(req, err)),
        ))
    }
}
