//! Trace context crosses NATS in message headers: a message published inside a traced span
//! carries `traceparent`, and a span on the receiving side linked to it joins the same trace.

use futures::StreamExt;
use moolai_bus::{Bus, Subjects};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn publish_carries_traceparent_and_the_receiver_joins_the_trace() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let url =
        std::env::var("MOOLAI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let prefix = format!("trace{}", uuid::Uuid::new_v4().simple());
    let bus = Bus::connect(&url, Subjects::new(&prefix).expect("prefix"), "trace-test")
        .await
        .expect("nats");
    let subject = format!("{prefix}.probe");
    let mut sub = bus.subscribe(subject.clone()).await.expect("sub");
    bus.flush().await.expect("flush");

    let span = tracing::info_span!("edge_side");
    let sent_trace = span.context().span().span_context().trace_id();
    bus.publish(subject.clone(), &serde_json::json!({"x": 1}))
        .instrument(span)
        .await
        .expect("publish");

    let delivery = next(&mut sub).await;
    assert_in_trace(&delivery, sent_trace);

    let receiving = tracing::info_span!("state_side");
    delivery.link_span(&receiving);
    assert_eq!(
        receiving.context().span().span_context().trace_id(),
        sent_trace
    );

    // A message prepared inside the span and published later from elsewhere (as the edge's
    // heartbeat task does) carries the span's trace.
    let prepared = tracing::info_span!("socket_side");
    let prepared_trace = prepared.context().span().span_context().trace_id();
    let outgoing = prepared.in_scope(|| {
        moolai_bus::Outgoing::new(
            moolai_bus::Subject::from(subject.as_str()),
            bytes::Bytes::from_static(b"{}"),
        )
    });
    bus.publish_outgoing(outgoing).await.expect("publish");
    assert_in_trace(&next(&mut sub).await, prepared_trace);

    // Outside any span, no headers are sent.
    bus.publish(subject, &serde_json::json!({"x": 2}))
        .await
        .expect("publish");
    assert!(next(&mut sub).await.trace_headers.is_empty());
}

async fn next(sub: &mut moolai_bus::Deliveries) -> moolai_bus::Delivery {
    tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .expect("delivered")
        .expect("message")
}

/// The delivery's `traceparent` header names `trace`.
fn assert_in_trace(delivery: &moolai_bus::Delivery, trace: opentelemetry::trace::TraceId) {
    let traceparent = delivery
        .trace_headers
        .get("traceparent")
        .expect("traceparent header");
    assert!(
        traceparent.contains(&trace.to_string()),
        "{traceparent} vs {trace}"
    );
}
