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
    /// Capture (iptables and ip6tables REDIRECT) and explicit-proxy listener. `[::]` (the default) takes IPv4 and
    /// IPv6; on a host without IPv6 it falls back to `0.0.0.0`.
    #[serde(default = "d_listen")]
    pub listen: SocketAddr,
    /// `/metrics`, `/health/ready`, `/health/live`.
    #[serde(default = "d_admin")]
    pub admin_listen: SocketAddr,
    /// Base URL of the gateway: `http://host:port`, or `https://host:port` for its TLS listener.
    #[serde(default = "d_gateway")]
    pub gateway: String,
    /// `http://`: talk h2 (prior knowledge, multiplexed) to the gateway instead of pooled HTTP/1.1.
    /// `https://`: h2 is chosen by ALPN when the gateway offers it (it does); `true` insists on h2.
    #[serde(default)]
    pub gateway_http2: bool,
    /// `https://` gateway: PEM CA certificates that sign the gateway's certificate (default: the public
    /// WebPKI roots).
    #[serde(default)]
    pub gateway_ca: Option<PathBuf>,
    /// `https://` gateway: client certificate chain (PEM) and key presented to the gateway (mTLS), which then
    /// trusts this sidecar's tenant without a token when its `tls.client_ca` signed the certificate.
    #[serde(default)]
    pub gateway_client_cert: Option<PathBuf>,
    #[serde(default)]
    pub gateway_client_key: Option<PathBuf>,
    /// The gateway's configuration file: when `intercept` is not set, the hosts of its `[[routes]]` are the
    /// intercept list (`maskgate sidecar --gateway-config` sets it too).
    #[serde(default)]
    pub gateway_config: Option<PathBuf>,
    /// Or the gateway's admin API (`http://host:port`): at start the sidecar reads the route hosts from its
    /// `GET /config` (retrying until `first_byte_timeout_secs` while the gateway comes up).
    #[serde(default)]
    pub gateway_admin: Option<String>,
    /// Bearer token of the gateway's admin API, from this env var (when it has `admin_token_env/_file`) ...
    #[serde(default)]
    pub gateway_admin_token_env: Option<String>,
    /// ... or from this file.
    #[serde(default)]
    pub gateway_admin_token_file: Option<PathBuf>,
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
    /// Hosts whose TLS is terminated and sent to the gateway. Default: the route hosts of `gateway_config`,
    /// else the gateway's default allowlist. An explicit list wins.
    #[serde(default)]
    pub intercept: Option<Vec<String>>,
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
    "[::]:15001".parse().unwrap()
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
/// The gateway's default allowlist (its routes when it runs without a file).
pub fn default_intercept() -> Vec<String> {
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

    /// The intercept list in force: the explicit list, else the gateway config's route hosts, else (with
    /// `gateway_admin`) the route hosts the gateway's admin API reports, else the default.
    pub async fn resolve_intercept(&self) -> Result<Vec<String>, String> {
        let s = &self.sidecar;
        match (&s.intercept, &s.gateway_config, &s.gateway_admin) {
            (None, None, Some(url)) => {
                let token = read_secret(
                    s.gateway_admin_token_env.as_deref(),
                    s.gateway_admin_token_file.as_deref(),
                )
                .map_err(|e| format!("sidecar.gateway_admin_token: {e}"))?;
                let limit = std::time::Duration::from_secs(s.first_byte_timeout_secs);
                admin_route_hosts(url, token.as_deref(), limit).await
            }
            _ => self.intercept_hosts(),
        }
    }

    /// The intercept list in force without asking the network: explicit, else `gateway_config`'s routes, else
    /// the default.
    pub fn intercept_hosts(&self) -> Result<Vec<String>, String> {
        if let Some(l) = &self.sidecar.intercept {
            return Ok(l.clone());
        }
        match &self.sidecar.gateway_config {
            Some(p) => gateway_route_hosts(p),
            None => Ok(default_intercept()),
        }
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
        let https = match g.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("sidecar.gateway: an http://host:port or https://host:port URL".into()),
        };
        if g.authority().is_none() {
            return Err("sidecar.gateway: an http://host:port or https://host:port URL".into());
        }
        if !https && (s.gateway_ca.is_some() || s.gateway_client_cert.is_some() || s.gateway_client_key.is_some()) {
            return Err("sidecar.gateway_ca: TLS settings need an https:// gateway".into());
        }
        if s.gateway_client_cert.is_some() != s.gateway_client_key.is_some() {
            return Err("sidecar.gateway_client_cert: set both gateway_client_cert and gateway_client_key".into());
        }
        if s.token_env.is_some() && s.token_file.is_some() {
            return Err("sidecar.token_env: set either token_env or token_file".into());
        }
        if let Some(t) = &s.tenant {
            if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err("sidecar.tenant: 1 to 128 visible ASCII characters".into());
            }
        }
        for h in s.intercept.iter().flatten() {
            if crate::clienthello::valid_host(h.as_bytes()).is_none() {
                return Err(format!("sidecar.intercept: {h:?} is not a host name"));
            }
        }
        if s.leaf_validity_secs < 600 {
            return Err("sidecar.leaf_validity_secs: at least 600".into());
        }
        if s.gateway_config.is_some() && s.gateway_admin.is_some() {
            return Err("sidecar.gateway_admin: set either gateway_config or gateway_admin".into());
        }
        if let Some(a) = &s.gateway_admin {
            let u: http::Uri = a.parse().map_err(|_| "sidecar.gateway_admin: not a URL".to_string())?;
            if u.scheme_str() != Some("http") || u.authority().is_none() {
                return Err("sidecar.gateway_admin: an http://host:port URL".into());
            }
        }
        if s.gateway_admin_token_env.is_some() && s.gateway_admin_token_file.is_some() {
            return Err("sidecar.gateway_admin_token_env: set either gateway_admin_token_env or _file".into());
        }
        if s.gateway_admin.is_none() {
            self.intercept_hosts()?;
        }
        crate::policy::Matcher::new(&self.egress)?;
        Ok(())
    }
}

/// The route hosts of a gateway configuration file (its `[[routes]] host` keys; the gateway's default routes when
/// the file has none). Only the routes are read here: the gateway itself validates the rest of its file.
pub fn gateway_route_hosts(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("sidecar.gateway_config: {}: {e}", path.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("sidecar.gateway_config: {}: {}", path.display(), e.message()))?;
    let Some(routes) = doc.get("routes") else {
        return Ok(default_intercept());
    };
    let routes = routes
        .as_array()
        .ok_or_else(|| format!("sidecar.gateway_config: {}: routes is not a list", path.display()))?;
    let mut hosts = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let h = r
            .get("host")
            .and_then(|h| h.as_str())
            .ok_or_else(|| format!("sidecar.gateway_config: {}: routes[{i}].host missing", path.display()))?;
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        if crate::clienthello::valid_host(h.as_bytes()).is_none() {
            return Err(format!(
                "sidecar.gateway_config: {}: routes[{i}].host is not a host name",
                path.display()
            ));
        }
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        return Err(format!("sidecar.gateway_config: {}: no route", path.display()));
    }
    Ok(hosts)
}

/// Route hosts from a running gateway's admin API (`GET /config`), retried until `limit` has passed.
pub async fn admin_route_hosts(
    base: &str,
    token: Option<&str>,
    limit: std::time::Duration,
) -> Result<Vec<String>, String> {
    use http_body_util::BodyExt;
    let url = format!("{}/config", base.trim_end_matches('/'));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let deadline = tokio::time::Instant::now() + limit;
    let last_err = loop {
        let mut req = http::Request::get(&url);
        if let Some(t) = token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(http_body_util::Empty::new())
            .map_err(|_| "sidecar.gateway_admin: not a URL".to_string())?;
        let err = match tokio::time::timeout(std::time::Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(r)) if r.status() == http::StatusCode::OK => {
                let body = tokio::time::timeout(std::time::Duration::from_secs(5), r.into_body().collect())
                    .await
                    .map_err(|_| "sidecar.gateway_admin: /config body timed out".to_string())?
                    .map_err(|e| format!("sidecar.gateway_admin: {e}"))?
                    .to_bytes();
                return hosts_from_config_json(&body);
            }
            // A refusal (401, 404) will not change by retrying.
            Ok(Ok(r)) if r.status().is_client_error() => {
                return Err(format!("sidecar.gateway_admin: GET /config answered {}", r.status()))
            }
            Ok(Ok(r)) => format!("GET /config answered {}", r.status()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".into(),
        };
        if tokio::time::Instant::now() >= deadline {
            break err;
        }
        tracing::warn!(error = %err, "gateway admin API not reachable yet; retrying");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    Err(format!("sidecar.gateway_admin: {url}: {last_err}"))
}

/// `routes[].host` of the gateway's `GET /config` answer.
fn hosts_from_config_json(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("sidecar.gateway_admin: /config is not JSON: {e}"))?;
    let routes = v
        .get("routes")
        .and_then(|r| r.as_array())
        .ok_or("sidecar.gateway_admin: /config has no routes")?;
    let mut hosts = Vec::new();
    for r in routes {
        let h = r
            .get("host")
            .and_then(|h| h.as_str())
            .ok_or("sidecar.gateway_admin: a route without host")?;
        let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
        if crate::clienthello::valid_host(h.as_bytes()).is_none() {
            return Err("sidecar.gateway_admin: a route host is not a host name".into());
        }
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        return Err("sidecar.gateway_admin: no route".into());
    }
    Ok(hosts)
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
        return Err("the secret is empty".into());
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercept_list_defaults_to_the_gateway_routes() {
        let dir = std::env::temp_dir().join(format!("mg-sc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gw = dir.join("gateway.toml");
        std::fs::write(
            &gw,
            "[gateway]\nlisten = \"127.0.0.1:8000\"\n[[routes]]\nhost = \"LLM.Corp.Example\"\nupstream = \"https://x\"\n\
             [[routes]]\nhost = \"api.openai.com\"\nupstream = \"https://api.openai.com\"\n",
        )
        .unwrap();
        let with =
            |extra: &str| Config::from_toml(&format!("[sidecar]\ngateway_config = \"{}\"\n{extra}", gw.display()));
        // The gateway's route hosts, lower-cased.
        assert_eq!(
            with("").unwrap().intercept_hosts().unwrap(),
            ["llm.corp.example", "api.openai.com"]
        );
        // An explicit list wins.
        assert_eq!(
            with("intercept = [\"api.anthropic.com\"]")
                .unwrap()
                .intercept_hosts()
                .unwrap(),
            ["api.anthropic.com"]
        );
        // No gateway config: the gateway's default allowlist.
        assert_eq!(Config::default().intercept_hosts().unwrap(), default_intercept());
        // A gateway file without routes: the gateway's defaults too.
        std::fs::write(&gw, "[gateway]\n").unwrap();
        assert_eq!(with("").unwrap().intercept_hosts().unwrap(), default_intercept());
        // Errors name the key.
        std::fs::write(&gw, "[[routes]]\nupstream = \"https://x\"\n").unwrap();
        assert!(with("").unwrap_err().contains("sidecar.gateway_config"));
        std::fs::remove_file(&gw).unwrap();
        assert!(with("").unwrap_err().contains("sidecar.gateway_config"));
        std::fs::remove_dir_all(&dir).unwrap();
        // TLS settings need https, a client cert needs its key.
        assert!(Config::from_toml("[sidecar]\ngateway_ca = \"/x\"").is_err());
        assert!(Config::from_toml("[sidecar]\ngateway = \"https://gw:8443\"\ngateway_client_cert = \"/x\"").is_err());
        assert!(Config::from_toml("[sidecar]\ngateway = \"ftp://gw\"").is_err());
    }
}
