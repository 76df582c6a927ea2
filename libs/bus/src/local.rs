//! An in-process stand-in for NATS, for the single-binary mode: the same subjects, wildcards
//! (`*` one token, `>` the rest), queue groups (each message to one member, round robin) and
//! request-reply (inbox subjects, "no responders" when nobody listens) that the services rely
//! on. Like NATS core, delivery is at most once: a subscriber whose buffer is full loses the
//! message (counted in `moolai_bus_local_dropped_total`) instead of blocking the publisher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::Delivery;

/// Messages buffered per subscription before new ones are dropped.
const SUBSCRIPTION_CAPACITY: usize = 262_144;

struct Subscription {
    id: u64,
    pattern: Vec<String>,
    group: Option<String>,
    tx: mpsc::Sender<Delivery>,
}

#[derive(Default)]
pub(crate) struct LocalBus {
    subscriptions: Mutex<Vec<Subscription>>,
    /// Pending requests by inbox subject.
    inboxes: Mutex<HashMap<String, oneshot::Sender<Delivery>>>,
    next_id: AtomicU64,
    /// Round-robin cursor for queue groups.
    cursor: AtomicUsize,
}

/// True when `subject` matches the NATS-style `pattern`.
pub(crate) fn matches(pattern: &[String], subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for (i, p) in pattern.iter().enumerate() {
        if p == ">" {
            // `>` needs at least one more token and must be last.
            return i == pattern.len() - 1 && tokens.next().is_some();
        }
        match tokens.next() {
            Some(t) if p == "*" || p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

impl LocalBus {
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        pattern: &str,
        group: Option<&str>,
    ) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Subscription {
                id,
                pattern: pattern.split('.').map(str::to_owned).collect(),
                group: group.map(str::to_owned),
                tx,
            });
        rx
    }

    /// Routes one message; returns how many subscribers received it.
    pub(crate) fn publish(&self, delivery: Delivery) -> usize {
        if let Some(tx) = self
            .inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&delivery.subject)
        {
            let _ = tx.send(delivery);
            return 1;
        }
        let mut subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Forget subscriptions whose receiver was dropped.
        subs.retain(|s| !s.tx.is_closed());
        let mut plain = Vec::new();
        let mut groups: HashMap<&str, Vec<&Subscription>> = HashMap::new();
        for s in subs
            .iter()
            .filter(|s| matches(&s.pattern, &delivery.subject))
        {
            match &s.group {
                Some(g) => groups.entry(g.as_str()).or_default().push(s),
                None => plain.push(s),
            }
        }
        let mut targets: Vec<&Subscription> = plain;
        for members in groups.values() {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % members.len();
            targets.push(members[i]);
        }
        let mut delivered = 0;
        for s in targets {
            match s.tx.try_send(delivery.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!("moolai_bus_local_dropped_total").increment(1);
                    tracing::debug!(subscription = s.id, subject = %delivery.subject, "slow subscriber: message dropped");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        delivered
    }

    /// Registers an inbox for one answer.
    pub(crate) fn inbox(&self) -> (String, oneshot::Receiver<Delivery>) {
        let subject = format!("_INBOX.{}", uuid::Uuid::new_v4().simple());
        let (tx, rx) = oneshot::channel();
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subject.clone(), tx);
        (subject, rx)
    }

    pub(crate) fn forget_inbox(&self, subject: &str) {
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn wildcards() {
        assert!(matches(&p("a.*.c"), "a.b.c"));
        assert!(!matches(&p("a.*.c"), "a.b.d"));
        assert!(!matches(&p("a.*"), "a.b.c"));
        assert!(matches(&p("a.>"), "a.b.c"));
        assert!(!matches(&p("a.>"), "a"));
        assert!(matches(&p("a.b"), "a.b"));
        assert!(!matches(&p("a.b"), "a.b.c"));
        assert!(matches(&p("m.v1.*.*.heartbeat"), "m.v1.o.x.heartbeat"));
    }
}
