//! Repairs an edge after its connection to NATS came back.
//!
//! Commands are level-triggered: an orchestrator receives its current state on every hello.
//! But a socket that stayed open while its edge was cut off from NATS gets no new hello, and
//! the commands published meanwhile (independence, configuration, a newer session elsewhere,
//! deregistration) are gone. The edge reports what each socket was last told; this answers
//! with the commands each one missed, read from the database in one query per request.

use std::collections::HashMap;

use moolai_bus::Delivery;
use moolai_bus::events::{Command, ResyncCommand, ResyncReply, ResyncRequest, ToldState};
use moolai_protocol::{ConfigUpdate, MonitoringChange, ServerFrame, now_rfc3339};
use moolai_store::Supervision;

use crate::StateContext;

/// Largest request answered (an edge sends its sockets in chunks of this size).
pub const MAX_SOCKETS_PER_REQUEST: usize = 1_000;

/// Close code of a deregistered orchestrator (as the api closes it).
const CLOSE_DEREGISTERED: u16 = 4004;

pub async fn handle(ctx: &StateContext, delivery: Delivery) {
    let request: ResyncRequest = match delivery.json() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable resync request");
            return;
        }
    };
    if request.sockets.len() > MAX_SOCKETS_PER_REQUEST {
        tracing::warn!(
            sockets = request.sockets.len(),
            "resync request too large; ignored"
        );
        return;
    }
    let ids: Vec<String> = request
        .sockets
        .iter()
        .map(|s| s.orchestrator_id.clone())
        .collect();
    let current = match ctx.store.supervision(&ids).await {
        Ok(rows) => rows,
        Err(e) => {
            // No answer: the edge retries the resync later.
            tracing::warn!(error = %e, "resync not answered: the database refused");
            return;
        }
    };
    let commands = missed(&request.sockets, current);
    metrics::counter!("moolai_state_resync_commands_total").increment(commands.len() as u64);
    if let Err(e) = ctx.bus.respond(&delivery, &ResyncReply { commands }).await {
        tracing::warn!(error = %e, "resync reply not sent");
    }
}

/// The commands each socket missed, comparing what it was told with the database.
#[must_use]
pub fn missed(sockets: &[ToldState], current: Vec<Supervision>) -> Vec<ResyncCommand> {
    let current: HashMap<String, Supervision> = current
        .into_iter()
        .map(|s| (s.orchestrator_id.clone(), s))
        .collect();
    let mut out = Vec::new();
    for told in sockets {
        let id = &told.orchestrator_id;
        let command = |command| ResyncCommand {
            orchestrator_id: id.clone(),
            command,
        };
        let Some(now) = current.get(id) else {
            out.push(command(Command::Close {
                code: CLOSE_DEREGISTERED,
                reason: "orchestrator deregistered".into(),
                session_id: Some(told.session_id.clone()),
            }));
            continue;
        };
        if now.session_id.as_deref() != Some(told.session_id.as_str()) {
            // A newer session registered elsewhere: this socket is stale.
            if let Some(newer) = &now.session_id {
                out.push(command(Command::SessionStarted {
                    session_id: newer.clone(),
                }));
            }
            continue;
        }
        if now.is_independent != told.independent {
            let change = MonitoringChange {
                orchestrator_id: id.clone(),
                is_independent: now.is_independent,
                ts: now_rfc3339(),
                reason: Some("operator changed independence".into()),
            };
            let frame = if now.is_independent {
                ServerFrame::StopMonitoring(change)
            } else {
                ServerFrame::ResumeMonitoring(change)
            };
            out.push(command(Command::Send {
                frame,
                message_id: None,
            }));
        }
        if now.config_version > told.config_version {
            out.push(command(Command::Send {
                frame: ServerFrame::ConfigUpdate {
                    data: ConfigUpdate {
                        orchestrator_id: id.clone(),
                        session_config: now.session_config.clone(),
                        config_version: now.config_version,
                        ts: now_rfc3339(),
                    },
                },
                message_id: None,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn told(id: &str, session: &str, independent: bool, version: i64) -> ToldState {
        ToldState {
            orchestrator_id: id.into(),
            session_id: session.into(),
            independent,
            config_version: version,
        }
    }

    fn now(id: &str, session: &str, independent: bool, version: i64) -> Supervision {
        Supervision {
            orchestrator_id: id.into(),
            session_id: Some(session.into()),
            is_independent: independent,
            config_version: version,
            session_config: json!({ "v": version }),
        }
    }

    #[test]
    fn only_what_was_missed_is_sent() {
        let sockets = [
            told("same", "s1", false, 1),
            told("went-independent", "s2", false, 1),
            told("came-back", "s3", true, 1),
            told("new-config", "s4", false, 1),
            told("replaced", "s5", false, 1),
            told("gone", "s6", false, 1),
        ];
        let current = vec![
            now("same", "s1", false, 1),
            now("went-independent", "s2", true, 1),
            now("came-back", "s3", false, 1),
            now("new-config", "s4", false, 3),
            now("replaced", "s5-newer", true, 9),
        ];
        let commands = missed(&sockets, current);
        let summary: Vec<(String, String)> = commands
            .iter()
            .map(|c| {
                let what = match &c.command {
                    Command::Send { frame, .. } => match frame {
                        ServerFrame::StopMonitoring(_) => "stop_monitoring".to_owned(),
                        ServerFrame::ResumeMonitoring(_) => "resume_monitoring".to_owned(),
                        ServerFrame::ConfigUpdate { data } => {
                            format!(
                                "config_update v{} {}",
                                data.config_version, data.session_config
                            )
                        }
                        other => format!("{other:?}"),
                    },
                    Command::SessionStarted { session_id } => {
                        format!("session_started {session_id}")
                    }
                    Command::Close {
                        code, session_id, ..
                    } => {
                        format!("close {code} {}", session_id.as_deref().unwrap_or("-"))
                    }
                };
                (c.orchestrator_id.clone(), what)
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("went-independent", "stop_monitoring"),
            ("came-back", "resume_monitoring"),
            ("new-config", "config_update v3 {\"v\":3}"),
            ("replaced", "session_started s5-newer"),
            ("gone", "close 4004 s6"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(summary, expected);
    }
}
