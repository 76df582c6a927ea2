//! The message bus between ws-edge, state and api, and the public NATS contract.
//!
//! - [`subjects`] builds every subject name (never `format!` a subject elsewhere);
//! - [`events`] holds every payload, with JSON schemas for the public ones;
//! - [`Bus`] wraps the NATS connection: JSON publish/request/subscribe with W3C trace
//!   context carried in message headers, and the subject prefix applied.
//!
//! The services see only [`Bus`] and [`Delivery`], never `async_nats` types, so another
//! transport (an in-process bus for the single binary) can stand behind the same API.
//! This crate must not know about storage or sockets.

pub mod events;
mod local;
pub mod subjects;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use opentelemetry::propagation::{Extractor, Injector};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use async_nats::Subject;
pub use subjects::{Kind, STATE_QUEUE_GROUP, Subjects};

/// How long [`Bus::ping`] (and so [`Bus::flush`]) waits for the broker.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("could not connect to NATS at {url} (set NATS_URL): {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("publish to {subject} failed: {message}")]
    Publish { subject: String, message: String },
    #[error("request to {subject} failed: {message}")]
    Request { subject: String, message: String },
    #[error("no responder on {subject}")]
    NoResponders { subject: String },
    #[error("request to {subject} timed out")]
    Timeout { subject: String },
    #[error("subscribe to {subject} failed: {message}")]
    Subscribe { subject: String, message: String },
    #[error("payload could not be encoded or decoded: {0}")]
    Codec(#[from] serde_json::Error),
}

/// One message received from the bus.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    /// Where to send the answer of a request.
    pub reply: Option<String>,
    /// W3C trace context headers (`traceparent`, `tracestate`) from the sender.
    pub trace_headers: HashMap<String, String>,
}

impl Delivery {
    /// Decodes the JSON payload.
    ///
    /// # Errors
    /// When the payload is not the expected JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// Makes `span` a child of the sender's trace, when the sender sent one.
    pub fn link_span(&self, span: &tracing::Span) {
        if let Some(cx) = self.sender_trace() {
            let _ = span.set_parent(cx);
        }
    }

    /// Links `span` to the sender's trace, when the sender sent one: for work done for many
    /// deliveries at once, which has one parent but belongs to each of their traces.
    pub fn add_link_to(&self, span: &tracing::Span) {
        use opentelemetry::trace::TraceContextExt as _;
        if let Some(cx) = self.sender_trace() {
            let sender = cx.span().span_context().clone();
            if sender.is_valid() {
                span.add_link(sender);
            }
        }
    }

    /// The trace context the sender put in the headers, if any.
    fn sender_trace(&self) -> Option<opentelemetry::Context> {
        if self.trace_headers.is_empty() {
            return None;
        }
        Some(opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(&self.trace_headers))
        }))
    }
}

/// A stream of deliveries from one subscription.
pub type Deliveries = Pin<Box<dyn Stream<Item = Delivery> + Send>>;

/// A connected bus, cheap to clone.
#[derive(Clone)]
pub struct Bus {
    transport: Transport,
    subjects: Subjects,
    /// Counts connections to the broker (the first and every reconnect).
    connections: tokio::sync::watch::Receiver<u64>,
}

#[derive(Clone)]
enum Transport {
    Nats(async_nats::Client),
    /// In-process, for the single binary without `NATS_URL`.
    Local(Arc<local::LocalBus>),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("prefix", &self.subjects.prefix())
            .finish_non_exhaustive()
    }
}

/// How long a request waits for its answer unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Bus {
    /// Connects eagerly (failing fast with the URL in the error), then reconnects by itself
    /// forever if the connection drops later.
    ///
    /// # Errors
    /// [`BusError::Connect`] when NATS cannot be reached within a few seconds.
    pub async fn connect(url: &str, subjects: Subjects, name: &str) -> Result<Self, BusError> {
        let (counter, connections) = tokio::sync::watch::channel(0_u64);
        let counter = Arc::new(counter);
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(DEFAULT_REQUEST_TIMEOUT))
            // Heartbeat bursts: a larger client-side buffer than the default 2048 messages.
            .client_capacity(65_536)
            .subscription_capacity(262_144)
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connected");
                            counter.send_modify(|n| *n += 1);
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                        other => tracing::info!(event = %other, "NATS event"),
                    }
                }
            });
        let client = options
            .connect(url)
            .await
            .map_err(|source| BusError::Connect {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            transport: Transport::Nats(client),
            subjects,
            connections,
        })
    }

    /// An in-process bus: every `Bus` cloned from it sees the same subscriptions. Nothing
    /// outside the process can subscribe.
    #[must_use]
    pub fn in_process(subjects: Subjects) -> Self {
        Self {
            transport: Transport::Local(Arc::default()),
            subjects,
            // Never reconnects: the sender is gone at once.
            connections: tokio::sync::watch::channel(0).1,
        }
    }

    /// `nats` or `in-process`, for logs and health output.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.transport {
            Transport::Nats(_) => "nats",
            Transport::Local(_) => "in-process",
        }
    }

    /// Changes each time the connection to the broker is established again after this call
    /// (a broker restart or network cut ends every subscription's server-side state and drops
    /// what was published meanwhile: holders of level-triggered state repair it then). Closed
    /// for the in-process bus, which never reconnects.
    #[must_use]
    pub fn reconnections(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut rx = self.connections.clone();
        rx.mark_unchanged();
        rx
    }

    #[must_use]
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// True while the connection to the broker is up.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        match &self.transport {
            Transport::Nats(c) => c.connection_state() == async_nats::connection::State::Connected,
            Transport::Local(_) => true,
        }
    }

    /// Round-trip to the broker; used by health checks and after subscribing.
    ///
    /// The client's own flush only says the commands left the socket. This sends a message to
    /// a private inbox and waits for it to come back: the broker handles one connection's
    /// commands in order, so when it answers, it has also registered every subscription and
    /// received every message this handle sent before.
    ///
    /// # Errors
    /// When the broker does not answer within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), BusError> {
        let Transport::Nats(c) = &self.transport else {
            return Ok(());
        };
        let failed = |message: String| BusError::Publish {
            subject: "(ping)".into(),
            message,
        };
        let inbox = c.new_inbox();
        let mut echo = c
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
        c.publish(inbox, Bytes::new())
            .await
            .map_err(|e| failed(e.to_string()))?;
        c.flush().await.map_err(|e| failed(e.to_string()))?;
        match tokio::time::timeout(PING_TIMEOUT, echo.next()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(failed("the connection closed".into())),
            Err(_) => Err(failed(format!(
                "no answer from the broker within {PING_TIMEOUT:?}"
            ))),
        }
    }

    /// Publishes a JSON payload with the current trace context in its headers. The subject
    /// is borrowed: a socket publishes to its own subjects per frame without copying them.
    ///
    /// # Errors
    /// When the payload cannot be encoded or the client's outgoing buffer is gone.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        subject: impl AsRef<str>,
        value: &T,
    ) -> Result<(), BusError> {
        let payload = Bytes::from(serde_json::to_vec(value)?);
        self.publish_bytes(subject.as_ref(), payload).await
    }

    /// Publishes raw bytes (already-encoded JSON) with trace headers.
    ///
    /// # Errors
    /// When the client's outgoing buffer is gone.
    pub async fn publish_bytes(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        // One copy of the subject, into the client's own bytes.
        self.publish_outgoing(Outgoing::new(Subject::from(subject), payload))
            .await
    }

    /// Publishes a message prepared elsewhere (see [`Outgoing`]) with the trace context it
    /// captured.
    ///
    /// # Errors
    /// When the client's outgoing buffer is gone.
    pub async fn publish_outgoing(&self, message: Outgoing) -> Result<(), BusError> {
        let Outgoing {
            subject,
            payload,
            trace,
        } = message;
        let client = match &self.transport {
            Transport::Nats(c) => c,
            Transport::Local(local) => {
                local.publish(Delivery {
                    subject: subject.to_string(),
                    payload,
                    reply: None,
                    trace_headers: trace,
                });
                return Ok(());
            }
        };
        // The subject is shared bytes: the clone is a reference count, kept for the error.
        let result = match headers_from(&trace) {
            Some(h) => {
                client
                    .publish_with_headers(subject.clone(), h, payload)
                    .await
            }
            None => client.publish(subject.clone(), payload).await,
        };
        result.map_err(|e| BusError::Publish {
            subject: subject.to_string(),
            message: e.to_string(),
        })
    }

    /// Sends a JSON request and decodes the JSON answer.
    ///
    /// # Errors
    /// Timeout, no responders, or an undecodable answer.
    pub async fn request<T: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        subject: String,
        value: &T,
        timeout: Duration,
    ) -> Result<R, BusError> {
        let payload = Bytes::from(serde_json::to_vec(value)?);
        let client = match &self.transport {
            Transport::Nats(c) => c,
            Transport::Local(local) => {
                let (inbox, answer) = local.inbox();
                let delivered = local.publish(Delivery {
                    subject: subject.clone(),
                    payload,
                    reply: Some(inbox.clone()),
                    trace_headers: trace_context(),
                });
                if delivered == 0 {
                    local.forget_inbox(&inbox);
                    return Err(BusError::NoResponders { subject });
                }
                let message = match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(m)) => m,
                    _ => {
                        local.forget_inbox(&inbox);
                        return Err(BusError::Timeout { subject });
                    }
                };
                return Ok(serde_json::from_slice(&message.payload)?);
            }
        };
        let mut request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        if let Some(h) = trace_headers() {
            request = request.headers(h);
        }
        let message = client
            .send_request(subject.clone(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => BusError::NoResponders {
                    subject: subject.clone(),
                },
                async_nats::RequestErrorKind::TimedOut => BusError::Timeout {
                    subject: subject.clone(),
                },
                _ => BusError::Request {
                    subject: subject.clone(),
                    message: e.to_string(),
                },
            })?;
        Ok(serde_json::from_slice(&message.payload)?)
    }

    /// Answers a request delivery with a JSON payload. A delivery without a reply subject
    /// (a plain publish) is answered by nobody.
    ///
    /// # Errors
    /// When the answer cannot be published.
    pub async fn respond<T: Serialize + ?Sized>(
        &self,
        delivery: &Delivery,
        value: &T,
    ) -> Result<(), BusError> {
        match &delivery.reply {
            Some(reply) => self.publish(reply, value).await,
            None => Ok(()),
        }
    }

    /// Subscribes to a subject (wildcards allowed).
    ///
    /// # Errors
    /// When the subscription cannot be registered.
    pub async fn subscribe(&self, subject: String) -> Result<Deliveries, BusError> {
        let client = match &self.transport {
            Transport::Nats(c) => c,
            Transport::Local(local) => return Ok(receiver_stream(local.subscribe(&subject, None))),
        };
        let sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| BusError::Subscribe {
                subject,
                message: e.to_string(),
            })?;
        Ok(Box::pin(sub.map(to_delivery)))
    }

    /// Subscribes as one member of a queue group: each message goes to one member.
    ///
    /// # Errors
    /// When the subscription cannot be registered.
    pub async fn queue_subscribe(
        &self,
        subject: String,
        group: &str,
    ) -> Result<Deliveries, BusError> {
        let client = match &self.transport {
            Transport::Nats(c) => c,
            Transport::Local(local) => {
                return Ok(receiver_stream(local.subscribe(&subject, Some(group))));
            }
        };
        let sub = client
            .queue_subscribe(subject.clone(), group.to_owned())
            .await
            .map_err(|e| BusError::Subscribe {
                subject,
                message: e.to_string(),
            })?;
        Ok(Box::pin(sub.map(to_delivery)))
    }

    /// Waits until the broker has everything published and every subscription made so far.
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.ping().await
    }
}

fn receiver_stream(mut rx: tokio::sync::mpsc::Receiver<Delivery>) -> Deliveries {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn to_delivery(m: async_nats::Message) -> Delivery {
    let mut trace_headers = HashMap::new();
    if let Some(h) = &m.headers {
        for key in ["traceparent", "tracestate"] {
            if let Some(v) = h.get(key) {
                trace_headers.insert(key.to_owned(), v.as_str().to_owned());
            }
        }
    }
    Delivery {
        subject: m.subject.to_string(),
        payload: m.payload,
        reply: m.reply.map(|r| r.to_string()),
        trace_headers,
    }
}

/// Trace context of the current span as NATS headers; `None` when there is no sampled trace
/// (the common case without an OTLP exporter), so untraced messages carry no headers.
fn trace_headers() -> Option<async_nats::HeaderMap> {
    headers_from(&trace_context())
}

fn headers_from(map: &HashMap<String, String>) -> Option<async_nats::HeaderMap> {
    if map.is_empty() {
        return None;
    }
    let mut headers = async_nats::HeaderMap::new();
    for (k, v) in map {
        headers.insert(k.as_str(), v.as_str());
    }
    Some(headers)
}

/// A message to publish later, from another task: its subject (shared bytes, cheap to clone,
/// so a socket builds its subjects once), its payload, and the trace context of the span it
/// was made in (empty outside a sampled trace).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub subject: Subject,
    pub payload: Bytes,
    trace: HashMap<String, String>,
}

impl Outgoing {
    /// Captures the current span's trace context with the message.
    #[must_use]
    pub fn new(subject: Subject, payload: Bytes) -> Self {
        Self {
            subject,
            payload,
            trace: trace_context(),
        }
    }
}

/// W3C trace context of the current span (empty outside a sampled trace).
fn trace_context() -> HashMap<String, String> {
    let mut map = HashMap::new();
    // The current span's id without cloning the span, and its OpenTelemetry context only when
    // the subscriber has the OpenTelemetry layer: without it (no exporter) a heartbeat publish
    // pays for neither the span's reference count nor the propagator's lock.
    let cx = tracing::dispatcher::get_default(|d| {
        d.current_span()
            .id()
            .and_then(|id| tracing_opentelemetry::get_otel_context(id, d))
    });
    if let Some(cx) = cx {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut HeaderInjector(&mut map));
        });
    }
    map
}

struct HeaderInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
