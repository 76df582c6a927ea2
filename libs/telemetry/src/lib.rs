//! Logs, traces and metrics for every service.
//!
//! - logs: `tracing` to stderr, human-readable or JSON (`LOG_FORMAT=json`), filtered by
//!   `RUST_LOG` (default `info`);
//! - traces: exported over OTLP/HTTP (protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL` says
//!   `http/json`) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the W3C
//!   trace-context propagator is always installed so trace context crosses NATS headers;
//! - metrics: a Prometheus recorder whose text is served at `/metrics` by each service.
//!
//! Nothing here starts a listener; services own their HTTP servers.

pub mod http;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes and stops the trace exporter when dropped.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber for `service` (idempotent: a second call in the same process,
/// as in tests, keeps the first subscriber).
///
/// # Errors
/// When `LOG_FORMAT` or `RUST_LOG` is invalid, or the OTLP exporter cannot be built.
pub fn init(service: &'static str) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(&v).context("invalid RUST_LOG")?,
        _ => EnvFilter::new("info"),
    };
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text" | "") | Err(_) => false,
        Ok(other) => anyhow::bail!("invalid LOG_FORMAT {other:?}: use \"text\" or \"json\""),
    };

    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let protocol = otlp_protocol(
                env_value("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").as_deref(),
                env_value("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref(),
            )?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .build()
                .with_context(|| {
                    format!(
                        "cannot build the OTLP exporter for OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}"
                    )
                })?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
        _ => None,
    };

    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    // Already initialised (several services in one test process): keep the first.
    drop(result);
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    Ok(TelemetryGuard { provider })
}

/// A non-empty environment variable.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The OTLP protocol: the traces-specific variable, else the general one, else
/// `http/protobuf` (the OpenTelemetry default; the exporter crate alone would pick JSON when
/// both encodings are built in). A value this build cannot speak stops the service instead of
/// exporting nothing.
fn otlp_protocol(
    traces: Option<&str>,
    general: Option<&str>,
) -> anyhow::Result<opentelemetry_otlp::Protocol> {
    let (name, value) = match (traces, general) {
        (Some(v), _) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v),
        (None, Some(v)) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
        (None, None) => return Ok(opentelemetry_otlp::Protocol::HttpBinary),
    };
    match value {
        "http/protobuf" => Ok(opentelemetry_otlp::Protocol::HttpBinary),
        "http/json" => Ok(opentelemetry_otlp::Protocol::HttpJson),
        other => anyhow::bail!(
            "invalid {name} {other:?}: use \"http/protobuf\" or \"http/json\" (gRPC is not built in)"
        ),
    }
}

/// Installs the process-wide Prometheus recorder once and returns a handle that renders it.
#[must_use]
pub fn metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder may already be installed in a test process; rendering this
            // handle then shows nothing, which only affects that test process.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Serves `/metrics` (Prometheus text) and `/healthz` on the service's metrics listener until
/// `shutdown` fires. Kept off the public listeners: orchestrators and browsers never see it.
///
/// # Errors
/// When the listener fails.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let handle = metrics();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move { handle.render() }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::otlp_protocol;
    use opentelemetry_otlp::Protocol;

    #[test]
    fn the_otlp_protocol_defaults_to_protobuf_and_the_traces_variable_wins() {
        assert_eq!(otlp_protocol(None, None).ok(), Some(Protocol::HttpBinary));
        assert_eq!(
            otlp_protocol(None, Some("http/json")).ok(),
            Some(Protocol::HttpJson)
        );
        assert_eq!(
            otlp_protocol(Some("http/protobuf"), Some("http/json")).ok(),
            Some(Protocol::HttpBinary)
        );
        let err = otlp_protocol(None, Some("grpc")).expect_err("grpc is not built in");
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
            "{err}"
        );
        let err = otlp_protocol(Some("http"), None).expect_err("not a protocol");
        assert!(
            err.to_string()
                .contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
            "{err}"
        );
    }
}
