//! Sidecar configuration (TOML). Every key has a default; `maskgate sidecar` runs with no file at all once a CA
//! exists at the default paths.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::policy::EgressPolicy;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sidecar: SidecarSection,
    #[serde(default)]
    pub egress: EgressPolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarSection {
    /// Capture (iptables REDIRECT) and explicit-proxy listener.
    #[serde(default = "d_listen")]
    pub listen: SocketAddr,
    /// `/metrics`, `/health/ready`, `/health/live`.
    #[serde(default = "d_admin")]
    pub admin_listen: SocketAddr,
    /// Base URL of the gateway (`http://host:port`).
    #[serde(default = "d_gateway")]
    pub gateway: String,
    /// Talk h2 (prior knowledge, multiplexed) to the gateway instead of pooled HTTP/1.1.
    #[serde(default)]
    pub gateway_http2: bool,
    /// Tenant sent to the gateway (`x-maskgate-tenant`); honoured there only with the sidecar token.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Shared sidecar token (`x-maskgate-sidecar-token`), read from this env var ...
    #[serde(default)]
    pub token_env: Option<String>,
    /// ... or from this file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The CA that signs the leaf certificates (`maskgate ca init`).
    #[serde(default = "d_ca_cert")]
    pub ca_cert: PathBuf,
    #[serde(default = "d_ca_key")]
    pub ca_key: PathBuf,
    /// Lifetime of minted leaf certificates, in seconds (renewed at 80 %).
    #[serde(default = "d_leaf")]
    pub leaf_validity_secs: u64,
    /// Hosts whose TLS is terminated and sent to the gateway (default: the gateway's default allowlist).
    #[serde(default = "d_intercept")]
    pub intercept: Vec<String>,
    /// Connect plus first response byte from the gateway, in seconds (streams may then run longer).
    #[serde(default = "d_first_byte")]
    pub first_byte_timeout_secs: u64,
    /// Time allowed to the client to send its first bytes (ClientHello, request head).
    #[serde(default = "d_sniff")]
    pub sniff_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests and tunnels.
    #[serde(default = "d_grace")]
    pub shutdown_grace_secs: u64,
}

impl Default for SidecarSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

fn d_listen() -> SocketAddr {
    "0.0.0.0:15001".parse().unwrap()
}
fn d_admin() -> SocketAddr {
    "127.0.0.1:15000".parse().unwrap()
}
fn d_gateway() -> String {
    "http://127.0.0.1:8000".into()
}
fn d_ca_cert() -> PathBuf {
    "/etc/maskgate/ca/ca.crt".into()
}
fn d_ca_key() -> PathBuf {
    "/etc/maskgate/ca/ca.key".into()
}
fn d_leaf() -> u64 {
    24 * 3600
}
fn d_intercept() -> Vec<String> {
    [
        "api.anthropic.com",
        "api.openai.com",
        "generativelanguage.googleapis.com",
    ]
    .map(String::from)
    .to_vec()
}
fn d_first_byte() -> u64 {
    30
}
fn d_sniff() -> u64 {
    10
}
fn d_grace() -> u64 {
    30
}

impl Config {
    pub fn from_toml(s: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(s).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    pub fn load(path: Option<&std::path::Path>) -> Result<Config, String> {
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let s = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Config::from_toml(&s).map_err(|e| format!("{}: {e}", p.display()))
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let s = &self.sidecar;
        let g: http::Uri = s
            .gateway
            .parse()
            .map_err(|_| "sidecar.gateway: not a URL".to_string())?;
        if g.scheme_str() != Some("http") || g.authority().is_none() {
            return Err("sidecar.gateway: an http://host:port URL".into());
        }
        if s.token_env.is_some() && s.token_file.is_some() {
            return Err("sidecar.token_env: set either token_env or token_file".into());
        }
        if let Some(t) = &s.tenant {
            if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("sidecar.tenant: 1 to 128 visible ASCII characters".into());
            }
        }
        for h in &s.intercept {
            if crate::clienthello::valid_host(h.as_bytes()).is_none() {
                return Err(format!("sidecar.intercept: {h:?} is not a host name"));
            }
        }
        if s.leaf_validity_secs < 600 {
            return Err("sidecar.leaf_validity_secs: at least 600".into());
        }
        crate::policy::Matcher::new(&self.egress)?;
        Ok(())
    }
}

/// A secret from an env var or a file (trimmed).
pub fn read_secret(env: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let v = match (env, file) {
        (Some(e), _) => std::env::var(e).map_err(|_| format!("environment variable {e} is not set"))?,
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
        (None, None) => return Ok(None),
    };
    let v = v.trim().to_string();
    if v.is_empty() {
        return Err("the sidecar token is empty".into());
    }
    Ok(Some(v))
}
