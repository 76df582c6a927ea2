//! Who is calling: bearer authentication of the operator routes.
//!
//! This is a seam the security feature will replace: the middleware turns a bearer token (a
//! login session token, or `DEV_BEARER_TOKEN`) into a [`Principal`] in the request
//! extensions, and handlers only ever see the `Principal`. Session tokens are 32 random
//! bytes, hex; only their SHA-256 is stored. Secrets are compared in constant time.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use moolai_store::Actor;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// The only role a login grants today.
pub const SUPERADMIN: &str = "superadmin";

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A login session; logout deletes it by this hash.
    Session {
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// `DEV_BEARER_TOKEN`.
    DevToken,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub role: String,
    pub credential: Credential,
    pub client_addr: Option<String>,
}

impl Principal {
    /// Who this is in the audit log: `user:<name>` or `token:dev`.
    #[must_use]
    pub fn actor(&self) -> Actor {
        let name = match self.credential {
            Credential::Session { .. } => format!("user:{}", self.username),
            Credential::DevToken => "token:dev".to_owned(),
        };
        Actor {
            name,
            client_addr: self.client_addr.clone(),
        }
    }
}

/// Reads the [`Principal`] the middleware stored; 401 on a route the middleware does not
/// guard (a wiring bug that must fail closed).
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

/// The caller's address (from the listener's `ConnectInfo`), when known.
#[derive(Debug, Clone, Default)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr(parts)))
    }
}

fn client_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// Middleware of the bearer-only routes.
pub async fn require_bearer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate_then(&state, request, next, false).await
}

/// Middleware of the live event stream: also accepts `?access_token=`, because a browser's
/// `EventSource` cannot set headers.
pub async fn require_bearer_or_query(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    authenticate_then(&state, request, next, true).await
}

async fn authenticate_then(
    state: &AppState,
    request: Request,
    next: Next,
    allow_query: bool,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let token = match bearer_token(&parts, allow_query) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match authenticate(state, &token, client_addr(&parts)).await {
        Ok(principal) => {
            tracing::Span::current().record("actor", principal.actor().name.as_str());
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

/// Resolves a presented token to a [`Principal`].
///
/// # Errors
/// 401 when the token is unknown or expired; 503 when the session store is unreachable.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    client_addr: Option<String>,
) -> Result<Principal, ApiError> {
    if let Some(dev) = &state.settings.dev_bearer_token
        && secrets_equal(token, dev.expose_secret())
    {
        return Ok(Principal {
            username: "dev".to_owned(),
            role: SUPERADMIN.to_owned(),
            credential: Credential::DevToken,
            client_addr,
        });
    }
    // Anything that is not a session token's shape cannot match one: no database trip.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::Unauthorized("invalid or expired token".into()));
    }
    let token_hash = hash_token(token);
    let session = state
        .store
        .session_by_token_hash(&token_hash)
        .await?
        .filter(|s| s.expires_at > Utc::now())
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
    Ok(Principal {
        username: session.username,
        role: session.role.as_str().to_owned(),
        credential: Credential::Session {
            token_hash,
            expires_at: session.expires_at,
        },
        client_addr,
    })
}

/// A new session token: 32 random bytes, hex.
#[must_use]
pub fn new_session_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a token, hex: what the store keeps.
#[must_use]
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
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

    #[test]
    fn actors() {
        let p = Principal {
            username: "ops".into(),
            role: SUPERADMIN.into(),
            credential: Credential::DevToken,
            client_addr: Some("10.0.0.1".into()),
        };
        assert_eq!(p.actor().name, "token:dev");
        let p = Principal {
            credential: Credential::Session {
                token_hash: "h".into(),
                expires_at: Utc::now(),
            },
            ..p
        };
        assert_eq!(p.actor().name, "user:ops");
        assert_eq!(p.actor().client_addr.as_deref(), Some("10.0.0.1"));
    }
}
