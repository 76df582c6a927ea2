//! Heartbeats leave the edge through one task, in bursts.
//!
//! Every socket task used to hand its heartbeat to the NATS client itself; the client's writer
//! then ran after every few of them, so at tens of thousands of heartbeats a second the edge
//! wrote to NATS (and NATS woke up to read) every ~8 messages. Here socket tasks queue their
//! heartbeats, and one task takes what has queued, lets the runtime go once around its ready
//! sockets (which queue more), and hands the whole burst to the client at once: under load the
//! writes to NATS get larger and fewer; when idle a heartbeat waits only for that one yield.
//!
//! The queue is bounded: when it is full, socket tasks wait to queue (and so stop reading
//! their sockets), as they waited on the client's own bounded buffer before. A socket's
//! heartbeats keep their order (one queue, one task); its other events (disconnect, frames,
//! deliveries) go to the bus directly, so its last heartbeat may reach NATS after its
//! disconnect (state never moves `last_seen` back nor revives a disconnected orchestrator
//! for it). A panic while publishing one message loses that message, not the task.

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use moolai_bus::{Bus, Outgoing};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Heartbeats queued at most; past it socket tasks wait.
const QUEUE: usize = 16_384;
/// Most heartbeats handed to the client in one burst.
const BURST: usize = 2_048;

enum Item {
    Message(Outgoing),
    /// Answered once everything queued before it was handed to the client.
    Flushed(oneshot::Sender<()>),
}

/// The queue into the heartbeat task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Item>,
}

impl Publisher {
    /// Starts the task publishing through `bus`. It ends when every `Publisher` is dropped.
    #[must_use]
    pub fn start(bus: Bus) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, tokio::spawn(run(bus, rx)))
    }

    /// Queues a message, waiting for room. `false` when the task is gone (shutdown).
    pub async fn publish(&self, message: Outgoing) -> bool {
        self.tx.send(Item::Message(message)).await.is_ok()
    }

    /// Returns once every message queued before this call was handed to the bus client (or
    /// the task is gone).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Item::Flushed(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn run(bus: Bus, mut rx: mpsc::Receiver<Item>) {
    let bursts = metrics::counter!("moolai_edge_publish_bursts_total");
    let burst_messages = metrics::counter!("moolai_edge_publish_burst_messages_total");
    let mut burst = Vec::with_capacity(BURST);
    loop {
        if rx.recv_many(&mut burst, BURST).await == 0 {
            return;
        }
        // Once around the runtime: the sockets ready now queue their heartbeats too.
        tokio::task::yield_now().await;
        while burst.len() < BURST {
            match rx.try_recv() {
                Ok(item) => burst.push(item),
                Err(_) => break,
            }
        }
        bursts.increment(1);
        burst_messages.increment(burst.len() as u64);
        for item in burst.drain(..) {
            match item {
                Item::Message(message) => {
                    match AssertUnwindSafe(bus.publish_outgoing(message))
                        .catch_unwind()
                        .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(error = %e, "heartbeat not published"),
                        Err(_) => tracing::error!("publishing a heartbeat panicked; it is lost"),
                    }
                }
                Item::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Publisher;
    use futures::StreamExt;
    use moolai_bus::{Bus, Outgoing, Subject, Subjects};
    use std::time::Duration;

    /// Run on one thread: the publisher then runs only when the senders pause (every coop
    /// budget), so messages are still queued when `flush` is called and the abort after it
    /// would lose them.
    async fn check_order_and_flush(bus: Bus, subject: &str) {
        let mut deliveries = bus.subscribe(subject.to_owned()).await.expect("subscribe");
        bus.flush().await.expect("subscription registered");
        let (publisher, task) = Publisher::start(bus.clone());
        let subject = Subject::from(subject);
        // More than one burst, from several tasks at once, each task's messages in order.
        let mut senders = Vec::new();
        for task in 0..4u32 {
            let publisher = publisher.clone();
            let subject = subject.clone();
            senders.push(tokio::spawn(async move {
                for i in 0..1_500u32 {
                    let payload = format!("{task}:{i}").into_bytes().into();
                    assert!(
                        publisher
                            .publish(Outgoing::new(subject.clone(), payload))
                            .await
                    );
                }
            }));
        }
        for s in senders {
            s.await.expect("sender");
        }
        // Everything queued before the flush was handed to the bus by the time it returns:
        // stopping the task right after loses nothing.
        publisher.flush().await;
        task.abort();
        bus.flush().await.expect("flush");
        let mut next = [0u32; 4];
        for _ in 0..6_000 {
            let d = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
                .await
                .expect("every message delivered")
                .expect("stream open");
            let text = String::from_utf8(d.payload.to_vec()).expect("utf-8");
            let (task, i) = text.split_once(':').expect("task:i");
            let task: usize = task.parse().expect("task");
            assert_eq!(
                i.parse::<u32>().expect("i"),
                next[task],
                "order of task {task}"
            );
            next[task] += 1;
        }
        assert_eq!(next, [1_500; 4]);

        let (publisher, task) = Publisher::start(bus);
        drop(publisher);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends with its last publisher")
            .expect("no panic");
    }

    #[tokio::test]
    async fn bursts_keep_each_senders_order_and_flush_hands_over_everything_in_process() {
        let bus = Bus::in_process(Subjects::new("pubtest").expect("prefix"));
        check_order_and_flush(bus, "pubtest.v1.org.orch.heartbeat").await;
    }

    #[tokio::test]
    async fn bursts_keep_each_senders_order_and_flush_hands_over_everything_over_nats() {
        let url = std::env::var("MOOLAI_TEST_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let prefix = format!("pub{}", uuid::Uuid::new_v4().simple());
        let bus = Bus::connect(
            &url,
            Subjects::new(&prefix).expect("prefix"),
            "publisher-test",
        )
        .await
        .expect("nats");
        check_order_and_flush(bus, &format!("{prefix}.v1.org.orch.heartbeat")).await;
    }
}
