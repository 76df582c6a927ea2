//! Which orchestrator is on which socket of this edge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moolai_protocol::ServerFrame;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::socket::Outbound;

/// The way to reach one socket's task.
#[derive(Clone)]
pub struct SocketHandle {
    pub session_id: Arc<str>,
    pub tx: mpsc::Sender<Outbound>,
    /// Cancelled when the socket must close but its queue is full (slow consumer).
    pub kill: CancellationToken,
    /// What the orchestrator was last told, for the resync after a broker outage.
    pub told: Arc<Told>,
}

/// The level-triggered state an orchestrator was last sent on its socket: independence and
/// configuration version. After the edge's connection to the broker comes back, commands
/// published meanwhile are lost; state compares this with the database and sends what is
/// missing.
#[derive(Debug, Default)]
pub struct Told {
    independent: AtomicBool,
    config_version: AtomicI64,
}

impl Told {
    /// Notes a frame written to the socket.
    pub fn record(&self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Provisioning { data } => {
                self.independent
                    .store(data.is_independent, Ordering::Relaxed);
                self.config_version
                    .fetch_max(data.config_version, Ordering::Relaxed);
            }
            ServerFrame::StopMonitoring(_) => self.independent.store(true, Ordering::Relaxed),
            ServerFrame::ResumeMonitoring(_) => self.independent.store(false, Ordering::Relaxed),
            ServerFrame::ConfigUpdate { data } => {
                self.config_version
                    .fetch_max(data.config_version, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    #[must_use]
    pub fn independent(&self) -> bool {
        self.independent.load(Ordering::Relaxed)
    }

    #[must_use]
    pub fn config_version(&self) -> i64 {
        self.config_version.load(Ordering::Relaxed)
    }
}

impl SocketHandle {
    /// Queues a frame or close for the socket; a socket whose queue is full is too slow to
    /// keep and is closed instead of buffering without bound.
    pub fn send(&self, out: Outbound) {
        match self.tx.try_send(out) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("moolai_edge_slow_consumers_total").increment(1);
                self.kill.cancel();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Orchestrator id → socket, for the sockets of this edge. Touched on connect, disconnect and
/// command delivery only, never per heartbeat, so one mutex is enough.
#[derive(Default)]
pub struct Registry {
    sockets: Mutex<HashMap<String, SocketHandle>>,
    /// Sockets whose hello state is committing: frames for their orchestrator queue on them
    /// until they are bound, so a command published between the commit and the binding is
    /// not lost.
    pending: Mutex<HashMap<String, Vec<SocketHandle>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SocketHandle>> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Binds `id` to a new socket, returning the socket it replaces on this edge.
    pub fn insert(&self, id: &str, handle: SocketHandle) -> Option<SocketHandle> {
        let previous = self.lock().insert(id.to_owned(), handle);
        metrics::gauge!("moolai_edge_registered_sockets").set(self.len() as f64);
        previous
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<SocketHandle> {
        self.lock().get(id).cloned()
    }

    /// Unbinds `id` only if it is still bound to `session_id` (a replaced socket must not
    /// unbind its successor).
    pub fn remove_if_current(&self, id: &str, session_id: &str) {
        let mut map = self.lock();
        if map.get(id).is_some_and(|h| &*h.session_id == session_id) {
            map.remove(id);
        }
        let len = map.len();
        drop(map);
        metrics::gauge!("moolai_edge_registered_sockets").set(len as f64);
    }

    /// Adds a socket whose hello is being committed (frames for it queue on it until it is bound).
    pub fn add_pending(&self, id: &str, handle: SocketHandle) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .push(handle);
    }

    /// Removes a pending socket (its hello was answered, either way).
    pub fn remove_pending(&self, id: &str, session_id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = pending.get_mut(id) {
            list.retain(|h| &*h.session_id != session_id);
            if list.is_empty() {
                pending.remove(id);
            }
        }
    }

    /// Sockets of `id` whose hello is being committed.
    #[must_use]
    pub fn pending(&self, id: &str) -> Vec<SocketHandle> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every (orchestrator, socket) of this edge right now.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(String, SocketHandle)> {
        self.lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(session: &str) -> (SocketHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(4);
        (
            SocketHandle {
                session_id: session.into(),
                tx,
                kill: CancellationToken::new(),
                told: Arc::default(),
            },
            rx,
        )
    }

    #[test]
    fn replaced_socket_cannot_unbind_its_successor() {
        let r = Registry::default();
        let (a, _ra) = handle("s1");
        let (b, _rb) = handle("s2");
        assert!(r.insert("orch", a).is_none());
        let old = r.insert("orch", b).expect("replaced");
        assert_eq!(&*old.session_id, "s1");
        r.remove_if_current("orch", "s1");
        assert_eq!(
            r.get("orch").map(|h| h.session_id.to_string()),
            Some("s2".into())
        );
        r.remove_if_current("orch", "s2");
        assert!(r.is_empty());
    }

    #[test]
    fn full_queue_kills_the_socket() {
        let (h, _rx) = handle("s");
        for _ in 0..4 {
            h.send(Outbound::close(1000, String::new(), "x"));
        }
        assert!(!h.kill.is_cancelled());
        h.send(Outbound::close(1000, String::new(), "x"));
        assert!(h.kill.is_cancelled());
    }
}
