//! Configuration shared by the services, loaded from the environment with `envy`, and the
//! shutdown signal every service waits on.
//!
//! One flat struct per concern (envy mis-parses `#[serde(flatten)]`), validated right after
//! loading; secrets are `SecretString` so `Debug` never prints them. Every variable is
//! documented once, in the README's configuration table. This crate must not connect to
//! anything: services connect eagerly themselves and name the variable when that fails.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid environment: {0}")]
    Env(#[from] envy::Error),
    #[error("invalid value for {var}: {message}")]
    Invalid { var: &'static str, message: String },
}

/// Loads one settings struct from the environment.
///
/// # Errors
/// When a variable has the wrong type.
pub fn load<T: serde::de::DeserializeOwned>() -> Result<T, ConfigError> {
    Ok(envy::from_env::<T>()?)
}

/// PostgreSQL connection: `DATABASE_URL`, or the seed's `DATABASE_HOST/PORT/USER/PASSWORD/NAME`.
#[derive(Deserialize)]
pub struct DatabaseSettings {
    pub database_url: Option<SecretString>,
    #[serde(default = "default_db_host")]
    pub database_host: String,
    #[serde(default = "default_db_port")]
    pub database_port: u16,
    #[serde(default = "default_db_user")]
    pub database_user: String,
    pub database_password: Option<SecretString>,
    #[serde(default = "default_db_name")]
    pub database_name: String,
    /// Connections in this process's pool.
    #[serde(default = "default_db_max_connections")]
    pub database_max_connections: u32,
}

fn default_db_host() -> String {
    "127.0.0.1".into()
}
fn default_db_port() -> u16 {
    5432
}
fn default_db_user() -> String {
    "moolai".into()
}
fn default_db_name() -> String {
    "moolai_controller".into()
}
fn default_db_max_connections() -> u32 {
    10
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.display_url())
            .field("max_connections", &self.database_max_connections)
            .finish()
    }
}

impl DatabaseSettings {
    /// The URL to connect to (contains the password: never log it; use [`Self::display_url`]).
    #[must_use]
    pub fn url(&self) -> String {
        if let Some(url) = &self.database_url {
            return url.expose_secret().to_owned();
        }
        let auth = match &self.database_password {
            Some(p) => format!(
                "{}:{}",
                encode_userinfo(&self.database_user),
                encode_userinfo(p.expose_secret())
            ),
            None => encode_userinfo(&self.database_user),
        };
        format!(
            "postgres://{auth}@{}:{}/{}",
            self.database_host, self.database_port, self.database_name
        )
    }

    /// The URL with any password replaced by `***`, for logs and error messages.
    #[must_use]
    pub fn display_url(&self) -> String {
        mask_password(&self.url())
    }

    /// # Errors
    /// When `DATABASE_URL` is not a `postgres://` or `postgresql://` URL.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                message: format!("expected a postgres:// URL, got {}", mask_password(&url)),
            });
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid {
                var: "DATABASE_MAX_CONNECTIONS",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the password of `scheme://user:password@host` with `***`.
#[must_use]
pub fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// NATS connection and the subject prefix.
#[derive(Debug, Deserialize)]
pub struct NatsSettings {
    #[serde(default = "default_nats_url")]
    pub nats_url: String,
    /// First token(s) of every subject; tests use a unique prefix each.
    #[serde(default = "default_prefix")]
    pub nats_subject_prefix: String,
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_prefix() -> String {
    "moolai".into()
}

/// Liveness rules shared by state and api.
#[derive(Debug, Clone, Deserialize)]
pub struct LivenessSettings {
    /// Seconds after the last processed heartbeat before an orchestrator is inactive.
    #[serde(default = "default_ttl")]
    pub heartbeat_ttl_sec: u64,
    /// Interval the controller asks orchestrators to heartbeat at.
    #[serde(default = "default_interval")]
    pub heartbeat_interval_sec: u64,
}

fn default_ttl() -> u64 {
    120
}
fn default_interval() -> u64 {
    30
}

impl LivenessSettings {
    /// # Errors
    /// When the TTL is zero or shorter than the heartbeat interval.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ttl_sec == 0 || self.heartbeat_interval_sec == 0 {
            return Err(ConfigError::Invalid {
                var: "HEARTBEAT_TTL_SEC",
                message: "HEARTBEAT_TTL_SEC and HEARTBEAT_INTERVAL_SEC must be positive".into(),
            });
        }
        if self.heartbeat_ttl_sec < self.heartbeat_interval_sec {
            return Err(ConfigError::Invalid {
                var: "HEARTBEAT_TTL_SEC",
                message: format!(
                    "{} is shorter than HEARTBEAT_INTERVAL_SEC ({}): every orchestrator would flap",
                    self.heartbeat_ttl_sec, self.heartbeat_interval_sec
                ),
            });
        }
        Ok(())
    }

    #[must_use]
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.heartbeat_ttl_sec)
    }
}

/// `ORCHESTRATOR_AUTH`: how orchestrator sockets authenticate.
///
/// The state service decides (it checks credentials against the database when it handles a
/// hello); the edge reads the same variable only to refuse a hello without any token before
/// asking state, in `token` mode. Set it the same on both: if they differ, the stricter one
/// wins (an `open` edge in front of a `token` state still refuses unauthenticated sockets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrchestratorAuth {
    /// A valid enrollment or orchestrator token is required (the default).
    #[default]
    Token,
    /// Legacy clients without credentials are accepted (migration from the old controller);
    /// a token that is presented must still be valid. Logged loudly at start.
    Open,
}

impl OrchestratorAuth {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Open => "open",
        }
    }
}

/// A token cancelled on SIGINT or SIGTERM.
#[must_use]
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
            () = term => tracing::info!("SIGTERM received, shutting down"),
        }
        trigger.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_password("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(mask_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_password("nats://h:4222"), "nats://h:4222");
    }

    #[test]
    fn builds_url_from_seed_variables() {
        let s = DatabaseSettings {
            database_url: None,
            database_host: "postgres".into(),
            database_port: 5432,
            database_user: "moolai".into(),
            database_password: Some(SecretString::from("p@ss word")),
            database_name: "moolai_controller".into(),
            database_max_connections: 5,
        };
        assert_eq!(
            s.url(),
            "postgres://moolai:p%40ss%20word@postgres:5432/moolai_controller"
        );
        assert!(!format!("{s:?}").contains("p%40ss"));
        assert!(s.validate().is_ok());
    }
}
