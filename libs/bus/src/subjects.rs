//! Every NATS subject name the controller uses, built in one place.
//!
//! Per-orchestrator subjects carry the organization and the orchestrator as tokens
//! (`<prefix>.v1.<org>.<orch>.<kind>`), so a tenant can be filtered or permissioned by
//! subject. Ids are validated by the protocol crate before they get here, so they never
//! contain `.`, `*`, `>` or whitespace.

/// Queue group shared by every state replica.
pub const STATE_QUEUE_GROUP: &str = "moolai-state";

/// The kinds of per-orchestrator subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Public: one message per processed `i_am_alive`, published by the edge.
    Heartbeat,
    /// Public: status transitions (active / inactive / independent), published by state and api.
    Status,
    /// Internal request-reply: frames other than heartbeats, answered by state after commit.
    Frame,
    /// Public: a socket closed (published by the edge, consumed by state).
    Disconnect,
    /// Internal: an accepted message was written to the orchestrator's socket.
    Delivery,
    /// Internal: commands for the edge holding the orchestrator's socket.
    Command,
}

impl Kind {
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::Status => "status",
            Self::Frame => "frame",
            Self::Disconnect => "disconnect",
            Self::Delivery => "delivery",
            Self::Command => "cmd",
        }
    }

    fn from_token(t: &str) -> Option<Self> {
        Some(match t {
            "heartbeat" => Self::Heartbeat,
            "status" => Self::Status,
            "frame" => Self::Frame,
            "disconnect" => Self::Disconnect,
            "delivery" => Self::Delivery,
            "cmd" => Self::Command,
            _ => return None,
        })
    }
}

/// Builds subject names under one prefix (default `moolai`; tests use a unique one each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid NATS subject prefix {0:?}: use dot-separated tokens of letters, digits, '_' and '-'"
)]
pub struct InvalidPrefix(String);

impl Subjects {
    /// # Errors
    /// When the prefix has empty tokens, wildcards or whitespace.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let ok = !prefix.is_empty()
            && prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if ok {
            Ok(Self {
                prefix: prefix.to_owned(),
            })
        } else {
            Err(InvalidPrefix(prefix.to_owned()))
        }
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>.v1.<org>.<orch>.<kind>`
    #[must_use]
    pub fn orchestrator(&self, kind: Kind, org: &str, orch: &str) -> String {
        format!("{}.v1.{org}.{orch}.{}", self.prefix, kind.token())
    }

    /// `<prefix>.v1.*.*.<kind>`: every orchestrator of every organization.
    #[must_use]
    pub fn all(&self, kind: Kind) -> String {
        format!("{}.v1.*.*.{}", self.prefix, kind.token())
    }

    /// `<prefix>.v1.<org>.*.<kind>`: every orchestrator of one organization.
    #[must_use]
    pub fn organization(&self, kind: Kind, org: &str) -> String {
        format!("{}.v1.{org}.*.{}", self.prefix, kind.token())
    }

    /// Request-reply subject of the hello, answered by state after it committed the registration.
    #[must_use]
    pub fn hello(&self) -> String {
        format!("{}.rpc.v1.hello", self.prefix)
    }

    /// Request-reply subject an edge asks state on after its connection to NATS came back:
    /// which commands its sockets missed (internal).
    #[must_use]
    pub fn resync(&self) -> String {
        format!("{}.rpc.v1.resync", self.prefix)
    }

    /// Splits a per-orchestrator subject into (organization, orchestrator, kind).
    #[must_use]
    pub fn parse<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str, Kind)> {
        let rest = subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".v1.")?;
        let mut parts = rest.split('.');
        let (org, orch, kind) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some((org, orch, Kind::from_token(kind)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses() {
        let s = Subjects::new("moolai").unwrap();
        let subj = s.orchestrator(Kind::Heartbeat, "org-1", "orch-001");
        assert_eq!(subj, "moolai.v1.org-1.orch-001.heartbeat");
        assert_eq!(s.parse(&subj), Some(("org-1", "orch-001", Kind::Heartbeat)));
        assert_eq!(s.all(Kind::Status), "moolai.v1.*.*.status");
        assert_eq!(s.organization(Kind::Status, "o"), "moolai.v1.o.*.status");
        assert_eq!(s.hello(), "moolai.rpc.v1.hello");
        assert_eq!(s.parse("moolai.v1.a.b.c.heartbeat"), None);
        assert_eq!(s.parse("other.v1.a.b.heartbeat"), None);
        assert_eq!(s.parse("moolai.v1.a.b.nope"), None);
    }

    #[test]
    fn prefixes() {
        assert!(Subjects::new("test.abc-1").is_ok());
        for bad in ["", "a..b", "a.*", "a b", "a.>"] {
            assert!(Subjects::new(bad).is_err(), "{bad}");
        }
    }
}
