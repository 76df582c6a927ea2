//! Payloads carried on the bus.
//!
//! The public ones ([`HeartbeatEvent`], [`StatusEvent`], [`DisconnectEvent`]) are a versioned
//! contract for other systems: fields are only ever added, as optional. Their JSON schemas
//! are committed under `docs/schemas/` and checked against these types by a test.

use chrono::{DateTime, Utc};
pub use moolai_protocol::Status;
use moolai_protocol::{
    ClientFrame, DeliveredMessage, Dialect, Provisioning, ServerFrame, UsageEntry,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Published by the edge for every accepted `i_am_alive` on
/// `<prefix>.v1.<org>.<orch>.heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatEvent {
    pub orchestrator_id: String,
    pub organization_id: String,
    /// The socket session that carried the heartbeat.
    pub session_id: String,
    /// When the edge received the frame (the controller's clock, not the client's).
    pub received_at: DateTime<Utc>,
    /// The edge instance holding the socket.
    pub edge_id: String,
    /// Usage reported with the heartbeat, if any (deltas since the previous report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Vec<UsageEntry>>,
}

/// A [`HeartbeatEvent`] borrowing its ids from the socket that received it: the edge
/// publishes one per heartbeat and encodes it without copying them. Encodes as
/// `HeartbeatEvent` does, with `received_at` to the microsecond (what PostgreSQL keeps).
#[derive(Debug, Serialize)]
pub struct HeartbeatEventRef<'a> {
    pub orchestrator_id: &'a str,
    pub organization_id: &'a str,
    pub session_id: &'a str,
    #[serde(serialize_with = "rfc3339_micros")]
    pub received_at: DateTime<Utc>,
    pub edge_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<&'a [UsageEntry]>,
}

fn rfc3339_micros<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match format_rfc3339_micros(at) {
        Some(text) => s.serialize_str(text.as_str()),
        None => s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` written digit by digit (chrono's formatting goes through
/// `fmt` and was a tenth of the edge's work per heartbeat); `None` outside years 0–9999.
fn format_rfc3339_micros(at: &DateTime<Utc>) -> Option<Rfc3339Micros> {
    use chrono::{Datelike, Timelike};
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    // A leap second is carried in the nanoseconds (≥ 1e9): shown as second 60.
    let micros = at.nanosecond() / 1_000;
    put(17, at.second() + micros / 1_000_000, 2);
    put(20, micros % 1_000_000, 6);
    Some(Rfc3339Micros(out))
}

struct Rfc3339Micros([u8; 27]);

impl Rfc3339Micros {
    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Published on `<prefix>.v1.<org>.<orch>.status` whenever an orchestrator's status changes:
/// by state (hello, heartbeat after silence, disconnect, liveness sweep) and by api
/// (independence toggle, deregistration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusEvent {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub status: Status,
    /// The status before this change, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<Status>,
    pub is_independent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<DateTime<Utc>>,
    /// `registered`, `heartbeat`, `disconnected`, `ttl_expired`, `independence_on`,
    /// `independence_off`, `deregistered`.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Published by the edge on `<prefix>.v1.<org>.<orch>.disconnect` when a socket closes
/// (not when the edge itself shuts down: that is not evidence the orchestrator is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DisconnectEvent {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub session_id: String,
    pub edge_id: String,
    /// `client_closed`, `replaced`, `idle_timeout`, `protocol_error`, `too_big`, `rate_limited`,
    /// `slow_consumer`, `write_failed`, `credential_revoked`, `closed_by_controller`.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Request from the edge to state on `<prefix>.rpc.v1.hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloRequest {
    pub orchestrator_id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub features: Option<Value>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub dialect: Dialect,
    /// Token from the upgrade's `Authorization` header or the hello's `auth_token`.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Generated by the edge for this socket; the newest session of an id wins.
    pub session_id: String,
    pub edge_id: String,
    #[serde(default)]
    pub remote_addr: Option<String>,
}

/// State's answer to a hello, sent only after the registration is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HelloReply {
    Accepted {
        provisioning: Provisioning,
        /// Accepted messages not yet delivered to this orchestrator.
        #[serde(default)]
        pending_messages: Vec<DeliveredMessage>,
    },
    Rejected {
        code: String,
        message: String,
    },
}

/// Request from the edge on `<prefix>.v1.<org>.<orch>.frame`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRequest {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub session_id: String,
    pub frame: ClientFrame,
}

/// State's answer to a [`FrameRequest`]: frames to write back to the socket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameReply {
    #[serde(default)]
    pub frames: Vec<ServerFrame>,
}

/// A command for the edge holding an orchestrator's socket, on `<prefix>.v1.<org>.<orch>.cmd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
// Commands are decoded and consumed one at a time; boxing the frame would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Write a frame. With `message_id`, the edge reports the delivery afterwards.
    Send {
        frame: ServerFrame,
        #[serde(default)]
        message_id: Option<String>,
    },
    /// A newer session was registered: edges holding any other session of this id close it.
    SessionStarted { session_id: String },
    /// Close the socket (deregistration, revoked credentials). With `session_id`, only that
    /// session's socket closes (a newer one of the same orchestrator, registered with another
    /// credential, stays).
    Close {
        code: u16,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
}

/// What one socket's orchestrator was last told, in a [`ResyncRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToldState {
    pub orchestrator_id: String,
    pub session_id: String,
    pub independent: bool,
    pub config_version: i64,
}

/// Asked by an edge of state on `<prefix>.rpc.v1.resync` after its connection to NATS came
/// back (internal): commands published while it was cut off are lost, so it reports what its
/// sockets were last told and state answers with what they missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncRequest {
    pub sockets: Vec<ToldState>,
}

/// State's answer to a [`ResyncRequest`]: the commands to apply, only for sockets that missed
/// something (a newer session elsewhere, deregistration, independence, configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncReply {
    pub commands: Vec<ResyncCommand>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncCommand {
    pub orchestrator_id: String,
    pub command: Command,
}

/// Published by the edge on `<prefix>.v1.<org>.<orch>.delivery` after writing an accepted
/// message to the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryEvent {
    pub orchestrator_id: String,
    pub organization_id: String,
    pub message_id: String,
    pub session_id: String,
    pub at: DateTime<Utc>,
}

/// JSON schemas of the public events, keyed by the file name under `docs/schemas/`.
#[must_use]
pub fn public_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "heartbeat.json",
            serde_json::to_value(schemars::schema_for!(HeartbeatEvent)).unwrap_or_default(),
        ),
        (
            "status.json",
            serde_json::to_value(schemars::schema_for!(StatusEvent)).unwrap_or_default(),
        ),
        (
            "disconnect.json",
            serde_json::to_value(schemars::schema_for!(DisconnectEvent)).unwrap_or_default(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, SecondsFormat, TimeDelta, TimeZone};

    #[test]
    fn the_borrowed_heartbeat_encodes_as_the_event() {
        let at = Utc
            .with_ymd_and_hms(2026, 2, 28, 23, 59, 59)
            .single()
            .expect("valid")
            + TimeDelta::nanoseconds(123_456_789);
        let usage = vec![UsageEntry {
            model: Some("m\"1".into()),
            requests: 2,
            input_tokens: 10,
            output_tokens: 5,
            cost: 0.25,
        }];
        for usage in [None, Some(usage.as_slice())] {
            let borrowed = HeartbeatEventRef {
                orchestrator_id: "orch-\u{e9}",
                organization_id: "org \"a\"",
                session_id: "s-1",
                received_at: at,
                edge_id: "edge-1",
                usage,
            };
            let text = serde_json::to_string(&borrowed).expect("encode");
            let decoded: HeartbeatEvent = serde_json::from_str(&text).expect("decode");
            let owned = HeartbeatEvent {
                orchestrator_id: "orch-\u{e9}".into(),
                organization_id: "org \"a\"".into(),
                session_id: "s-1".into(),
                received_at: at - TimeDelta::nanoseconds(789),
                edge_id: "edge-1".into(),
                usage: usage.map(<[UsageEntry]>::to_vec),
            };
            assert_eq!(decoded, owned);
            assert_eq!(
                text,
                serde_json::to_string(&owned).expect("encode owned"),
                "same fields, same order"
            );
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut at = Utc
            .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        // Every 7 h 13 min 17.000123456 s for ~70 years: every month, day and leap year.
        while at.year() < 2040 {
            let ours = format_rfc3339_micros(&at).expect("in range");
            assert_eq!(
                ours.as_str(),
                at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "{at:?}"
            );
            at += TimeDelta::nanoseconds(26_000_000_000_000 + 17_000_123_456);
        }
        for edge in [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59),
        ] {
            let edge = edge.single().expect("valid");
            let ours = format_rfc3339_micros(&edge).expect("in range");
            assert_eq!(
                ours.as_str(),
                edge.to_rfc3339_opts(SecondsFormat::Micros, true)
            );
        }
        let before = Utc
            .with_ymd_and_hms(-1, 12, 31, 0, 0, 0)
            .single()
            .expect("valid");
        assert!(format_rfc3339_micros(&before).is_none());
        // Out of range falls back to chrono's own text.
        let text = serde_json::to_string(&HeartbeatEventRef {
            orchestrator_id: "o",
            organization_id: "g",
            session_id: "s",
            received_at: before,
            edge_id: "e",
            usage: None,
        })
        .expect("encode");
        assert!(
            text.contains(&before.to_rfc3339_opts(SecondsFormat::Micros, true)),
            "{text}"
        );
    }
}
