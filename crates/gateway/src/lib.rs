//! maskgate's gateway role (Kong's in the seed design): a dynamic router in front of the LLM providers that masks
//! AWS identifiers in every request, restores them in every response (streamed or not), injects the provider
//! credentials, applies rate limits, and serves an admin API with health, metrics and config reload.

pub mod admin;
pub mod body;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod mock;
pub mod proxy;
pub mod ratelimit;
pub mod server;
pub mod state;
pub mod tls;
pub mod upstream;

pub use config::{Config, ConfigError};
pub use server::{check_config, run, start, GatewayHandle};
pub use state::Shared;

/// Installs the JSON log subscriber (stdout; `RUST_LOG` filters, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init();
}
