//! Who is calling, and what they may do.
//!
//! The router's guards turn a bearer token into a [`Principal`] in the request extensions and
//! refuse it (403) when its role is below what the route group requires; handlers only ever
//! see the `Principal` and apply its organization scope ([`Principal::scope`]) to what they
//! read and write. Three kinds of bearer token:
//! - login session tokens: 32 random bytes, hex (the seed's login response shape);
//! - API tokens for machines: `moo_api_` + 32 random bytes, hex;
//! - `DEV_BEARER_TOKEN`, a superadmin for compatibility (logged as a warning at start).
//!
//! Only the SHA-256 of a session or API token is stored: they are high-entropy, so a fast hash
//! is enough (there is nothing to brute-force) and the lookup is one index probe. Passwords
//! are different (low entropy): argon2id, see [`crate::password`]. Secrets compared in memory
//! are compared in constant time.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use moolai_store::{Actor, Role};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

pub use moolai_store::{API_TOKEN_PREFIX, ENROLLMENT_TOKEN_PREFIX, ORCHESTRATOR_TOKEN_PREFIX};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A login session; logout deletes it by this hash.
    Session {
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// An API token.
    ApiToken {
        token_id: String,
        token_hash: String,
        expires_at: Option<DateTime<Utc>>,
    },
    /// `DEV_BEARER_TOKEN`.
    DevToken,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, the API token's name, or `dev`.
    pub username: String,
    pub role: Role,
    /// The organizations a scoped role may see (ignored for a superadmin).
    pub organization_ids: Vec<String>,
    pub credential: Credential,
    pub client_addr: Option<String>,
}

impl Credential {
    /// Whether the session or token has expired by `now`.
    #[must_use]
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Session { expires_at, .. } => *expires_at <= now,
            Self::ApiToken { expires_at, .. } => expires_at.is_some_and(|e| e <= now),
            Self::DevToken => false,
        }
    }
}

impl Principal {
    /// Who this is in the audit log: `user:<name>`, `api_token:<id>` or `token:dev`.
    #[must_use]
    pub fn actor(&self) -> Actor {
        let name = match &self.credential {
            Credential::Session { .. } => format!("user:{}", self.username),
            Credential::ApiToken { token_id, .. } => format!("api_token:{token_id}"),
            Credential::DevToken => "token:dev".to_owned(),
        };
        Actor {
            name,
            client_addr: self.client_addr.clone(),
        }
    }

    /// The organizations this caller may see: `None` for every one (superadmin).
    #[must_use]
    pub fn scope(&self) -> Option<&[String]> {
        self.role
            .is_scoped()
            .then_some(self.organization_ids.as_slice())
    }

    /// [`Self::scope`] as an owned list, for store queries.
    #[must_use]
    pub fn scope_owned(&self) -> Option<Vec<String>> {
        self.scope().map(<[String]>::to_vec)
    }

    /// True when `organization_id` is within this caller's scope.
    #[must_use]
    pub fn sees(&self, organization_id: &str) -> bool {
        self.scope()
            .is_none_or(|orgs| orgs.iter().any(|o| o == organization_id))
    }

    /// 403 when an explicit organization filter names an organization outside the scope
    /// (a filter cannot widen what a caller sees; refusing it says nothing about that
    /// organization).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn check_filter(&self, organization_id: Option<&str>) -> Result<(), ApiError> {
        match organization_id {
            Some(org) if !self.sees(org) => Err(ApiError::Forbidden(
                "that organization is outside your scope".into(),
            )),
            _ => Ok(()),
        }
    }

    /// 403 unless this caller's role is at least `role`.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role.at_least(role) {
            Ok(())
        } else {
            Err(forbidden_role(role))
        }
    }
}

fn forbidden_role(role: Role) -> ApiError {
    ApiError::Forbidden(format!("this needs the {} role", role.as_str()))
}

/// Reads the [`Principal`] the guard stored; 401 on a route no guard protects (a wiring bug
/// that must fail closed).
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("authentication required".into()))
    }
}

/// The caller's address: the peer of the TCP connection, or with `TRUST_FORWARDED_FOR` the
/// last `X-Forwarded-For` entry (the one the controller's own reverse proxy appended).
#[derive(Debug, Clone, Default)]
pub struct ClientAddr(pub Option<String>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr(parts, state.settings.trust_forwarded_for)))
    }
}

fn client_addr(parts: &Parts, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for && let Some(addr) = forwarded_for(&parts.headers) {
        return Some(addr);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The rightmost address of `X-Forwarded-For` (earlier entries are whatever the client sent).
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())?;
    last.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

/// What a route group requires: a minimum role, and whether `?access_token=` is accepted
/// (the event stream: a browser's `EventSource` cannot set headers).
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub min_role: Role,
    pub allow_query: bool,
}

/// Middleware of every protected route group: 401 without a valid token, 403 when the role
/// is below the group's.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let token = match bearer_token(&parts, guard.allow_query) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let addr = client_addr(&parts, guard.state.settings.trust_forwarded_for);
    match authenticate(&guard.state, &token, addr).await {
        Ok(principal) => {
            tracing::Span::current().record("actor", principal.actor().name.as_str());
            if !principal.role.at_least(guard.min_role) {
                return forbidden_role(guard.min_role).into_response();
            }
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct AccessTokenQuery {
    access_token: Option<String>,
}

fn bearer_token(parts: &Parts, allow_query: bool) -> Result<String, ApiError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| {
            ApiError::Unauthorized("expected Authorization: Bearer <token>".into())
        })?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::Unauthorized(
                "expected Authorization: Bearer <token>".into(),
            ));
        }
        return Ok(token.to_owned());
    }
    if allow_query {
        let query = axum::extract::Query::<AccessTokenQuery>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::Unauthorized("malformed access_token".into()))?;
        if let Some(token) = query.0.access_token.filter(|t| !t.is_empty()) {
            return Ok(token);
        }
    }
    Err(ApiError::Unauthorized("missing bearer token".into()))
}

fn is_hex_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves a presented token to a [`Principal`].
///
/// # Errors
/// 401 when the token is unknown, revoked or expired; 503 when the store is unreachable.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    client_addr: Option<String>,
) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or expired token".into());
    if let Some(dev) = &state.settings.dev_bearer_token
        && secrets_equal(token, dev.expose_secret())
    {
        return Ok(Principal {
            username: "dev".to_owned(),
            role: Role::Superadmin,
            organization_ids: Vec::new(),
            credential: Credential::DevToken,
            client_addr,
        });
    }
    // Anything not of a token's shape cannot match one: no database trip.
    let api_token = match token.strip_prefix(API_TOKEN_PREFIX) {
        Some(secret) if is_hex_token(secret) => true,
        None if is_hex_token(token) => false,
        _ => return Err(invalid()),
    };
    let token_hash = hash_token(token);
    if let Some(principal) = state.auth_cache.get(&token_hash) {
        return Ok(Principal {
            client_addr,
            ..principal
        });
    }
    let lookup = state.auth_cache.start_lookup();
    let principal = if api_token {
        let record = state
            .store
            .api_token_by_hash(&token_hash)
            .await?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(invalid)?;
        Principal {
            username: record.name,
            role: record.role,
            organization_ids: record.organization_ids,
            credential: Credential::ApiToken {
                token_id: record.token_id,
                token_hash: token_hash.clone(),
                expires_at: record.expires_at,
            },
            client_addr,
        }
    } else {
        let session = state
            .store
            .session_by_token_hash(&token_hash)
            .await?
            .ok_or_else(invalid)?;
        Principal {
            username: session.username,
            role: session.role,
            organization_ids: session.organization_ids,
            credential: Credential::Session {
                token_hash: token_hash.clone(),
                expires_at: session.expires_at,
            },
            client_addr,
        }
    };
    if principal.credential.expired(Utc::now()) {
        return Err(invalid());
    }
    state.auth_cache.remember(&token_hash, &principal, lookup);
    Ok(principal)
}

/// Whether the credential a long-lived request (the event stream) was opened with still
/// works: a logout, a change to the user (role, organizations, password, disabled), its
/// deletion, or a revoked or expired API token ends it. A store error counts as still valid
/// (a database blip must not cut every dashboard); the next check decides.
pub async fn still_valid(state: &AppState, credential: &Credential) -> bool {
    if credential.expired(Utc::now()) {
        return false;
    }
    match credential {
        Credential::DevToken => true,
        Credential::Session { token_hash, .. } => !matches!(
            state.store.session_by_token_hash(token_hash).await,
            Ok(None)
        ),
        Credential::ApiToken { token_hash, .. } => {
            !matches!(state.store.api_token_by_hash(token_hash).await, Ok(None))
        }
    }
}

/// 32 random bytes, hex.
fn random_hex() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new session token: 32 random bytes, hex.
#[must_use]
pub fn new_session_token() -> String {
    random_hex()
}

/// A new token of a kind: its prefix, then 32 random bytes, hex (e.g. `moo_enr_…`).
#[must_use]
pub fn new_prefixed_token(prefix: &str) -> String {
    format!("{prefix}{}", random_hex())
}

/// SHA-256 of a token, hex: what the store keeps (see [`moolai_store::token_hash`]).
#[must_use]
pub fn hash_token(token: &str) -> String {
    moolai_store::token_hash(token)
}

/// Constant-time equality that also hides the length: both sides are hashed first.
#[must_use]
pub fn secrets_equal(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hashed() {
        let a = new_session_token();
        let b = new_session_token();
        assert_eq!(a.len(), 64);
        assert!(is_hex_token(&a));
        assert_ne!(a, b);
        let api = new_prefixed_token(API_TOKEN_PREFIX);
        assert!(api.starts_with("moo_api_"));
        assert!(is_hex_token(&api[API_TOKEN_PREFIX.len()..]));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("s3cret", "s3cret"));
        assert!(!secrets_equal("s3cret", "s3cre"));
        assert!(!secrets_equal("", "s3cret"));
    }

    fn principal(role: Role, orgs: &[&str], credential: Credential) -> Principal {
        Principal {
            username: "ops".into(),
            role,
            organization_ids: orgs.iter().map(|o| (*o).to_owned()).collect(),
            credential,
            client_addr: Some("10.0.0.1".into()),
        }
    }

    #[test]
    fn actors_and_scopes() {
        let dev = principal(Role::Superadmin, &["ignored"], Credential::DevToken);
        assert_eq!(dev.actor().name, "token:dev");
        assert_eq!(dev.scope(), None);
        assert!(dev.sees("anything"));
        assert!(dev.check_filter(Some("anything")).is_ok());

        let session = Credential::Session {
            token_hash: "h".into(),
            expires_at: Utc::now(),
        };
        let viewer = principal(Role::Viewer, &["org-a"], session);
        assert_eq!(viewer.actor().name, "user:ops");
        assert_eq!(viewer.actor().client_addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(viewer.scope(), Some(&["org-a".to_owned()][..]));
        assert!(viewer.sees("org-a") && !viewer.sees("org-b"));
        assert!(viewer.check_filter(None).is_ok());
        assert!(matches!(
            viewer.check_filter(Some("org-b")),
            Err(ApiError::Forbidden(_))
        ));
        assert!(viewer.require(Role::Viewer).is_ok());
        assert!(viewer.require(Role::OrgAdmin).is_err());

        let machine = principal(
            Role::OrgAdmin,
            &[],
            Credential::ApiToken {
                token_id: "apt_1".into(),
                token_hash: "h".into(),
                expires_at: None,
            },
        );
        assert_eq!(machine.actor().name, "api_token:apt_1");
        assert_eq!(machine.scope(), Some(&[][..]));
        assert!(!machine.sees("org-a"));
    }

    #[test]
    fn forwarded_for_takes_the_last_valid_address() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.4".parse().unwrap(),
        );
        assert_eq!(forwarded_for(&headers).as_deref(), Some("198.51.100.4"));
        headers.insert("x-forwarded-for", "evil".parse().unwrap());
        assert_eq!(forwarded_for(&headers), None);
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}
