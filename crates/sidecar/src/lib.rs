//! maskgate sidecar (Envoy's role): transparent capture and explicit proxy, TLS interception with a local CA,
//! egress policy, forwarding to the gateway. Also the `ca` and `iptables` helpers of the CLI.

pub mod ca;
pub mod clienthello;
pub mod config;
pub mod iptables;
pub mod policy;
pub mod server;

pub use config::Config;
pub use server::{run, start, SidecarHandle};
