//! A TCP load balancer, standing in for the one in front of the edges (and the apis) in a
//! deployment: round-robin over the backends, skipping one that refuses the connection. When a
//! backend dies, the connections through it end, as they would behind a real balancer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Balancer {
    pub port: u16,
    backends: Arc<Mutex<Vec<u16>>>,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Listens on a free port of 127.0.0.1 and forwards to `backends` (ports of 127.0.0.1).
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(backends: Vec<u16>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let backends = Arc::new(Mutex::new(backends));
        let next = Arc::new(AtomicUsize::new(0));
        let list = backends.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let list = list.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let ports = list.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    if ports.is_empty() {
                        return;
                    }
                    let first = next.fetch_add(1, Ordering::Relaxed);
                    for k in 0..ports.len() {
                        let port = ports[(first + k) % ports.len()];
                        if let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                            let _ = inbound.set_nodelay(true);
                            let _ = outbound.set_nodelay(true);
                            splice(inbound, outbound).await;
                            return;
                        }
                    }
                    // Every backend refused: the client sees its connection closed.
                });
            }
        });
        Ok(Self {
            port,
            backends,
            task,
        })
    }

    /// Replaces the backend list (new connections only).
    pub fn set_backends(&self, ports: Vec<u16>) {
        *self.backends.lock().unwrap_or_else(PoisonError::into_inner) = ports;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side ends, then closes both (a dead backend's connections end
/// for the client too, instead of lingering half-open).
async fn splice(mut a: TcpStream, mut b: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}
