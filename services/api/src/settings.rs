//! `ApiSettings`: the api's own environment variables, loaded with `envy` and validated
//! right after loading. Database, NATS and liveness settings come from `moolai-config`.

use std::net::IpAddr;

use moolai_config::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Listed by `moolai-api --help`; the README's configuration table is the full reference.
pub const ENVIRONMENT_HELP: &str = "\
Environment:
  CONTROLLER_HOST          address to listen on (default 0.0.0.0)
  CONTROLLER_PORT          REST API port (default 8765)
  API_METRICS_PORT         Prometheus /metrics port (default 9103)
  DATABASE_URL             postgres:// URL (or DATABASE_HOST/PORT/USER/PASSWORD/NAME)
  DATABASE_MAX_CONNECTIONS connection pool size (default 10)
  NATS_URL                 NATS server (default nats://127.0.0.1:4222)
  NATS_SUBJECT_PREFIX      first token of every subject (default moolai)
  HEARTBEAT_TTL_SEC        seconds of silence before an orchestrator is inactive (default 120)
  HEARTBEAT_INTERVAL_SEC   heartbeat interval asked of orchestrators (default 30)
  MOOLAI_ADMIN_USERNAME    superadmin created (or its password reset) at start
  MOOLAI_ADMIN_PASSWORD    that superadmin's password (at least 12 characters)
  SESSION_TTL_SEC          lifetime of a login session (default 43200)
  DEV_BEARER_TOKEN         static superadmin bearer (compatibility only; logged as a warning)
  CORS_ALLOWED_ORIGINS     comma-separated origins allowed by CORS (default: none)
  API_MAX_BODY_BYTES       largest accepted request body (default 1048576)
  LOGIN_MAX_FAILURES       failed logins per user name before a lockout (default 5)
  LOGIN_MAX_FAILURES_PER_ADDRESS  failed logins per client address before a lockout (default 20)
  LOGIN_LOCKOUT_SEC        lockout length, also the window failures are counted in (default 900)
  TRUST_FORWARDED_FOR      take the client address from X-Forwarded-For (behind a proxy)
  API_REPORT_CACHE_MS      reuse overview/costs answers and list totals this long; status
                           events and writes make them stale (default 1000, 0 = off)
  API_AUTH_CACHE_MS        reuse a resolved token this long; writes through this process
                           forget them all (default 1000, 0 = off)
  API_ROW_CACHE_MB         memory for orchestrator records kept by row version for listing
                           pages (default 128, 0 = off)
  API_FLEET_VIEW_MS        read every orchestrator's version and status facts this often
                           while listings use them, instead of per page (default 1000, 0 = off)
  RUST_LOG, LOG_FORMAT, OTEL_EXPORTER_OTLP_ENDPOINT   logging and tracing";

/// Settings of the api service. Every field is one environment variable (the upper-cased
/// field name); see [`ENVIRONMENT_HELP`].
#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    /// `CONTROLLER_HOST`: the address both listeners bind to.
    #[serde(default = "default_host")]
    pub controller_host: String,
    /// `CONTROLLER_PORT`: the REST API (the seed's port, kept so deployed dashboards work).
    #[serde(default = "default_port")]
    pub controller_port: u16,
    /// `API_METRICS_PORT`: `/metrics` lives on its own listener, never exposed to browsers.
    #[serde(default = "default_metrics_port")]
    pub api_metrics_port: u16,
    /// `DEV_BEARER_TOKEN`: the seed's static token, accepted as a bearer on every route.
    /// Empty means unset.
    #[serde(default)]
    pub dev_bearer_token: Option<SecretString>,
    /// `MOOLAI_ADMIN_USERNAME`: the operator login. Login is disabled while it is unset.
    #[serde(default)]
    pub moolai_admin_username: Option<String>,
    /// `MOOLAI_ADMIN_PASSWORD`: the operator password (never hard-coded anywhere).
    #[serde(default)]
    pub moolai_admin_password: Option<SecretString>,
    /// `SESSION_TTL_SEC`: how long a login session token stays valid.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_sec: u64,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins; unset sends no CORS headers (the
    /// dashboard is normally served from the same origin through nginx).
    #[serde(default)]
    pub cors_allowed_origins: Option<String>,
    /// `API_MAX_BODY_BYTES`: larger request bodies get 413.
    #[serde(default = "default_max_body")]
    pub api_max_body_bytes: usize,
    /// `LOGIN_MAX_FAILURES`: failed logins for one user name (existing or not, so the lockout
    /// tells nothing about which names exist) before it is locked out.
    #[serde(default = "default_login_failures")]
    pub login_max_failures: u32,
    /// `LOGIN_MAX_FAILURES_PER_ADDRESS`: failed logins from one client address (any names)
    /// before it is locked out: slows a spray of many names from one place.
    #[serde(default = "default_login_failures_per_address")]
    pub login_max_failures_per_address: u32,
    /// `LOGIN_LOCKOUT_SEC`: how long a lockout lasts; failures older than this are forgotten.
    #[serde(default = "default_lockout")]
    pub login_lockout_sec: u64,
    /// `TRUST_FORWARDED_FOR`: behind the controller's own reverse proxy, the client address
    /// (audit log, login throttling) is the last `X-Forwarded-For` entry. Off by default: a
    /// client could otherwise choose its own address.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// `API_REPORT_CACHE_MS`: how long an `overview` or `costs` answer, or what is kept of an
    /// orchestrator listing (its total and, when small, its order), is reused (per caller
    /// scope and query) before it is computed again — longer for an answer that took more
    /// than a quarter of it to compute (see `report_cache`). Writes through this process make
    /// it stale at once, and so do status events for what can count their orchestrator
    /// (never `costs`). 0 computes every request.
    #[serde(default = "default_report_cache_ms")]
    pub api_report_cache_ms: u64,
    /// `API_AUTH_CACHE_MS`: how long a token that resolved is reused without a database
    /// lookup; writes through this process forget them all, so a change through another
    /// replica applies here after at most this long. 0 looks every request up.
    #[serde(default = "default_auth_cache_ms")]
    pub api_auth_cache_ms: u64,
    /// `API_ROW_CACHE_MB`: mebibytes of orchestrator records kept as JSON by row version
    /// (see `row_cache`): a listing page reads the rows' versions and in full only the
    /// records not kept at that version. 0 reads every record in full.
    #[serde(default = "default_row_cache_mb")]
    pub api_row_cache_mb: usize,
    /// `API_FLEET_VIEW_MS`: how often, while listings use it, the api reads every
    /// orchestrator's row version and status facts into memory (see `fleet_view`), so a
    /// listing page finds its rows' versions there instead of asking the database. What a page
    /// shows can then be this much older than the database (up to twice, and never after a
    /// write through this process or a status event for the orchestrator). 0 asks the
    /// database for every page.
    #[serde(default = "default_fleet_view_ms")]
    pub api_fleet_view_ms: u64,
}

fn default_host() -> String {
    "0.0.0.0".into()
}
fn default_port() -> u16 {
    8765
}
fn default_metrics_port() -> u16 {
    9103
}
fn default_session_ttl() -> u64 {
    43_200
}
fn default_max_body() -> usize {
    1_048_576
}
fn default_login_failures() -> u32 {
    5
}
fn default_login_failures_per_address() -> u32 {
    20
}
fn default_lockout() -> u64 {
    900
}
fn default_report_cache_ms() -> u64 {
    1000
}
fn default_row_cache_mb() -> usize {
    128
}
fn default_fleet_view_ms() -> u64 {
    1000
}
fn default_auth_cache_ms() -> u64 {
    1000
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            controller_host: default_host(),
            controller_port: default_port(),
            api_metrics_port: default_metrics_port(),
            dev_bearer_token: None,
            moolai_admin_username: None,
            moolai_admin_password: None,
            session_ttl_sec: default_session_ttl(),
            cors_allowed_origins: None,
            api_max_body_bytes: default_max_body(),
            login_max_failures: default_login_failures(),
            login_max_failures_per_address: default_login_failures_per_address(),
            login_lockout_sec: default_lockout(),
            trust_forwarded_for: false,
            api_report_cache_ms: default_report_cache_ms(),
            api_auth_cache_ms: default_auth_cache_ms(),
            api_row_cache_mb: default_row_cache_mb(),
            api_fleet_view_ms: default_fleet_view_ms(),
        }
    }
}

/// Shortest and longest accepted session lifetime.
const SESSION_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;
/// Bodies are small JSON documents; anything below this cannot hold a session config.
const MIN_BODY_BYTES: usize = 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

impl ApiSettings {
    /// Loads from the environment and validates.
    ///
    /// # Errors
    /// When a variable has the wrong type or an invalid value.
    pub fn from_env() -> Result<Self, ConfigError> {
        let settings: Self = moolai_config::load()?;
        let settings = settings.normalized();
        settings.validate()?;
        Ok(settings)
    }

    /// Empty strings mean "unset" (compose files often pass `VAR=` through).
    #[must_use]
    pub fn normalized(mut self) -> Self {
        if self
            .dev_bearer_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().is_empty())
        {
            self.dev_bearer_token = None;
        }
        if self
            .moolai_admin_username
            .as_ref()
            .is_some_and(|u| u.trim().is_empty())
        {
            self.moolai_admin_username = None;
        }
        if self
            .moolai_admin_password
            .as_ref()
            .is_some_and(|p| p.expose_secret().is_empty())
        {
            self.moolai_admin_password = None;
        }
        if self
            .cors_allowed_origins
            .as_ref()
            .is_some_and(|o| o.trim().is_empty())
        {
            self.cors_allowed_origins = None;
        }
        self
    }

    /// # Errors
    /// The first rule broken, naming its variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |var: &'static str, message: String| ConfigError::Invalid { var, message };
        if self.controller_host.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "CONTROLLER_HOST",
                format!("{:?} is not an IP address", self.controller_host),
            ));
        }
        if self.controller_port != 0 && self.controller_port == self.api_metrics_port {
            return Err(invalid(
                "API_METRICS_PORT",
                format!(
                    "must differ from CONTROLLER_PORT ({})",
                    self.controller_port
                ),
            ));
        }
        if !SESSION_TTL_RANGE.contains(&self.session_ttl_sec) {
            return Err(invalid(
                "SESSION_TTL_SEC",
                format!(
                    "must be between {} and {} seconds",
                    SESSION_TTL_RANGE.start(),
                    SESSION_TTL_RANGE.end()
                ),
            ));
        }
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&self.api_max_body_bytes) {
            return Err(invalid(
                "API_MAX_BODY_BYTES",
                format!("must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES}"),
            ));
        }
        match (&self.moolai_admin_username, &self.moolai_admin_password) {
            (Some(_), None) => {
                return Err(invalid(
                    "MOOLAI_ADMIN_PASSWORD",
                    "must be set when MOOLAI_ADMIN_USERNAME is set".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "MOOLAI_ADMIN_USERNAME",
                    "must be set when MOOLAI_ADMIN_PASSWORD is set".into(),
                ));
            }
            (Some(user), Some(_)) if crate::validation::username(user).is_err() => {
                return Err(invalid(
                    "MOOLAI_ADMIN_USERNAME",
                    "must be 1 to 64 characters: letters, digits, '.', '_', '-' or '@'".into(),
                ));
            }
            (Some(_), Some(password))
                if crate::validation::password(password.expose_secret()).is_err() =>
            {
                return Err(invalid(
                    "MOOLAI_ADMIN_PASSWORD",
                    format!(
                        "must be {} to {} characters",
                        crate::password::MIN_PASSWORD_LEN,
                        crate::password::MAX_PASSWORD_LEN
                    ),
                ));
            }
            _ => {}
        }
        if self.login_max_failures == 0 || self.login_max_failures_per_address == 0 {
            return Err(invalid(
                "LOGIN_MAX_FAILURES",
                "LOGIN_MAX_FAILURES and LOGIN_MAX_FAILURES_PER_ADDRESS must be at least 1".into(),
            ));
        }
        if self.api_report_cache_ms > 60_000 {
            return Err(invalid(
                "API_REPORT_CACHE_MS",
                "must be between 0 and 60000 milliseconds".into(),
            ));
        }
        if self.api_fleet_view_ms > 60_000 {
            return Err(invalid(
                "API_FLEET_VIEW_MS",
                "must be between 0 and 60000 milliseconds".into(),
            ));
        }
        if self.api_row_cache_mb > 65_536 {
            return Err(invalid(
                "API_ROW_CACHE_MB",
                "must be between 0 and 65536 (MiB)".into(),
            ));
        }
        if self.api_auth_cache_ms > 10_000 {
            return Err(invalid(
                "API_AUTH_CACHE_MS",
                "must be between 0 and 10000 milliseconds".into(),
            ));
        }
        if !(1..=86_400).contains(&self.login_lockout_sec) {
            return Err(invalid(
                "LOGIN_LOCKOUT_SEC",
                "must be between 1 and 86400 seconds".into(),
            ));
        }
        if self.dev_bearer_token.as_ref().is_some_and(|t| {
            t.expose_secret()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err(invalid(
                "DEV_BEARER_TOKEN",
                "must not contain whitespace or control characters".into(),
            ));
        }
        for origin in self.cors_origins() {
            // `*` is allowed because the API never allows credentials cross-origin (bearer
            // headers, no cookies): a wildcard with credentials is what browsers forbid.
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && http::HeaderValue::from_str(&origin).is_ok());
            if !ok {
                return Err(invalid(
                    "CORS_ALLOWED_ORIGINS",
                    format!(
                        "{origin:?} is not an origin: use scheme://host[:port] without a path, or *"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The superadmin credential seeded at start, when both halves are configured.
    #[must_use]
    pub fn admin_credential(&self) -> Option<(&str, &SecretString)> {
        match (&self.moolai_admin_username, &self.moolai_admin_password) {
            (Some(u), Some(p)) => Some((u.as_str(), p)),
            _ => None,
        }
    }

    /// `CORS_ALLOWED_ORIGINS` split on commas, trimmed, empty entries dropped.
    #[must_use]
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = ApiSettings::default();
        assert!(s.validate().is_ok());
        assert_eq!(s.controller_port, 8765);
        assert_eq!(s.api_metrics_port, 9103);
        assert_eq!(s.session_ttl_sec, 43_200);
        assert_eq!(s.api_max_body_bytes, 1_048_576);
        assert!(s.admin_credential().is_none());
        assert!(s.cors_origins().is_empty());
    }

    #[test]
    fn rejects_half_a_credential_and_bad_origins() {
        let s = ApiSettings {
            moolai_admin_username: Some("ops".into()),
            ..ApiSettings::default()
        };
        assert!(matches!(
            s.validate(),
            Err(ConfigError::Invalid {
                var: "MOOLAI_ADMIN_PASSWORD",
                ..
            })
        ));
        let s = ApiSettings {
            cors_allowed_origins: Some("https://a.example, ftp://b".into()),
            ..ApiSettings::default()
        };
        assert!(matches!(
            s.validate(),
            Err(ConfigError::Invalid {
                var: "CORS_ALLOWED_ORIGINS",
                ..
            })
        ));
        let s = ApiSettings {
            cors_allowed_origins: Some("https://a.example, http://localhost:5173".into()),
            ..ApiSettings::default()
        };
        assert_eq!(
            s.cors_origins(),
            vec!["https://a.example", "http://localhost:5173"]
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn cache_sizes_are_bounded() {
        for (s, var) in [
            (
                ApiSettings {
                    api_row_cache_mb: 65_537,
                    ..ApiSettings::default()
                },
                "API_ROW_CACHE_MB",
            ),
            (
                ApiSettings {
                    api_report_cache_ms: 60_001,
                    ..ApiSettings::default()
                },
                "API_REPORT_CACHE_MS",
            ),
            (
                ApiSettings {
                    api_fleet_view_ms: 60_001,
                    ..ApiSettings::default()
                },
                "API_FLEET_VIEW_MS",
            ),
        ] {
            assert!(
                matches!(s.validate(), Err(ConfigError::Invalid { var: v, .. }) if v == var),
                "{var}"
            );
        }
        let off = ApiSettings {
            api_row_cache_mb: 0,
            ..ApiSettings::default()
        };
        assert!(off.validate().is_ok());
        assert_eq!(ApiSettings::default().api_row_cache_mb, 128);
    }

    #[test]
    fn empty_values_mean_unset() {
        let s = ApiSettings {
            dev_bearer_token: Some(SecretString::from("")),
            moolai_admin_username: Some(" ".into()),
            ..ApiSettings::default()
        }
        .normalized();
        assert!(s.dev_bearer_token.is_none());
        assert!(s.moolai_admin_username.is_none());
        assert!(s.validate().is_ok());
    }
}
