//! Which orchestrator is on which socket of this edge.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use moolai_protocol::ServerFrame;

use crate::socket::Outbound;

/// The way to reach one socket's task.
#[derive(Clone)]
pub struct SocketHandle {
    pub session_id: Arc<str>,
    pub mailbox: Arc<Mailbox>,
}

/// One socket's queue of frames and closes, its kill switch and what it was last told, in
/// one allocation that holds no queue memory while nothing waits in it. (A tokio channel, a
/// cancellation token and a separate `Told` took ~1.2 KiB per idle socket.)
pub struct Mailbox {
    state: Mutex<MailboxState>,
    /// The socket task waiting for the next item.
    waker: AtomicWaker,
    capacity: usize,
    /// What the orchestrator was last told, for the resync after a broker outage.
    pub told: Told,
}

#[derive(Default)]
struct MailboxState {
    queue: VecDeque<Outbound>,
    /// The queue overflowed: the socket is too slow to keep.
    killed: bool,
}

/// What the socket task takes from its mailbox.
#[derive(Debug)]
pub enum Mail {
    Out(Outbound),
    /// The queue overflowed: close the socket (what was queued is dropped).
    Killed,
}

impl Mailbox {
    /// A mailbox holding at most `capacity` items; one more kills the socket.
    #[must_use]
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(MailboxState::default()),
            waker: AtomicWaker::new(),
            capacity: capacity.max(1),
            told: Told::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MailboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `out`; `false` when the queue was full, which kills the socket.
    fn push(&self, out: Outbound) -> bool {
        let accepted = {
            let mut state = self.state();
            if state.killed {
                return true;
            }
            if state.queue.len() >= self.capacity {
                state.killed = true;
                state.queue.clear();
                false
            } else {
                state.queue.push_back(out);
                true
            }
        };
        self.waker.wake();
        accepted
    }

    /// Whether the queue overflowed.
    #[must_use]
    pub fn is_killed(&self) -> bool {
        self.state().killed
    }

    /// The next item; waits while the queue is empty.
    pub fn recv(&self) -> impl Future<Output = Mail> + '_ {
        std::future::poll_fn(move |cx| self.poll_recv(cx))
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Mail> {
        let mut state = self.state();
        if state.killed {
            return Poll::Ready(Mail::Killed);
        }
        if let Some(out) = state.queue.pop_front() {
            return Poll::Ready(Mail::Out(out));
        }
        // Registered under the lock: a push after the check above wakes this waker.
        self.waker.register(cx.waker());
        Poll::Pending
    }
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
        if !self.mailbox.push(out) {
            metrics::counter!("moolai_edge_slow_consumers_total").increment(1);
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

    fn handle(session: &str) -> SocketHandle {
        SocketHandle {
            session_id: session.into(),
            mailbox: Mailbox::new(4),
        }
    }

    #[test]
    fn replaced_socket_cannot_unbind_its_successor() {
        let r = Registry::default();
        let a = handle("s1");
        let b = handle("s2");
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
        let h = handle("s");
        for _ in 0..4 {
            h.send(Outbound::close(1000, String::new(), "x"));
        }
        assert!(!h.mailbox.is_killed());
        h.send(Outbound::close(1000, String::new(), "x"));
        assert!(h.mailbox.is_killed());
    }

    #[tokio::test]
    async fn the_mailbox_hands_items_over_in_order_and_wakes_its_reader() {
        let h = handle("s");
        let reader = {
            let mailbox = h.mailbox.clone();
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..3 {
                    match mailbox.recv().await {
                        Mail::Out(Outbound::Close(c)) => codes.push(c.0),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                codes
            })
        };
        // The reader is parked on an empty mailbox before the first push.
        tokio::task::yield_now().await;
        for code in [4000, 4001, 4002] {
            h.send(Outbound::close(code, String::new(), "x"));
            tokio::task::yield_now().await;
        }
        assert_eq!(reader.await.expect("reader"), vec![4000, 4001, 4002]);

        // Past the capacity the reader is told to close, whatever was queued.
        for _ in 0..5 {
            h.send(Outbound::close(1000, String::new(), "x"));
        }
        assert!(matches!(h.mailbox.recv().await, Mail::Killed));
        assert!(matches!(h.mailbox.recv().await, Mail::Killed));
    }
}
