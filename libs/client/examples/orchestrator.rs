//! A minimal orchestrator: connects to a controller, prints every event, reports a message
//! and some usage once connected, and closes cleanly on Ctrl-C.
//!
//! ```text
//! cargo run -p moolai-client --example orchestrator -- [url] [orchestrator-id] [hld|deployed]
//! ```
//!
//! Defaults: `ws://127.0.0.1:8766/ws`, `orch-example`, `deployed`. Set `MOOLAI_TOKEN` to send
//! a bearer token.

use moolai_client::moolai_protocol::UsageEntry;
use moolai_client::{Client, ClientConfig, ClientEvent, Dialect};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8766/ws".into());
    let id = args.next().unwrap_or_else(|| "orch-example".into());
    let dialect = match args.next().as_deref() {
        Some("hld") => Dialect::Hld,
        _ => Dialect::Deployed,
    };

    let mut config = ClientConfig::new(url, id, dialect);
    config.auth_token = std::env::var("MOOLAI_TOKEN").ok().map(Into::into);
    if let Some(metadata) = json!({
        "name": "Example orchestrator",
        "location": "localhost",
        "version": env!("CARGO_PKG_VERSION"),
        "features": {"cache": true},
    })
    .as_object()
    {
        config.metadata = metadata.clone();
    }

    let client = Client::spawn(config)?;
    let mut events = client.events();
    let mut reported = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                println!("closing");
                let why = client.shutdown().await;
                println!("stopped: {why}");
                return Ok(());
            }
            event = events.recv() => match event {
                Ok(ClientEvent::Stopped { why }) => {
                    println!("stopped: {why}");
                    return Ok(());
                }
                Ok(event) => {
                    println!("{event:?}");
                    if matches!(event, ClientEvent::Connected { .. }) && !reported {
                        reported = true;
                        client.send_message("monitoring", "example orchestrator started").await?;
                        client
                            .report_usage(vec![UsageEntry {
                                model: Some("example-model".into()),
                                requests: 1,
                                input_tokens: 10,
                                output_tokens: 5,
                                cost: 0.0001,
                            }])
                            .await?;
                        println!("status: {:?}", client.request_status().await);
                    }
                }
                Err(RecvError::Lagged(n)) => println!("(missed {n} events)"),
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}
