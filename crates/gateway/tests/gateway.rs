//! Gateway integration tests over real sockets: gateway, mock provider and clients on 127.0.0.1.
//! One test binary; the modules group the tests.

#[path = "gateway/common.rs"]
mod common;

#[path = "gateway/admin.rs"]
mod admin;
#[path = "gateway/errors.rs"]
mod errors;
#[path = "gateway/formats.rs"]
mod formats;
#[path = "gateway/redis.rs"]
mod redis;
#[path = "gateway/sdk.rs"]
mod sdk;
#[path = "gateway/sidecar_trust.rs"]
mod sidecar_trust;
#[path = "gateway/transport.rs"]
mod transport;
