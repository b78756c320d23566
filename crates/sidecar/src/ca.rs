//! The local certificate authority: `maskgate ca init` / `ca env`, and minting leaf certificates per SNI.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

pub const CERT_FILE: &str = "ca.crt";
pub const KEY_FILE: &str = "ca.key";
pub const BUNDLE_FILE: &str = "bundle.pem";

/// System trust stores, first found wins (Debian/Ubuntu/Alpine, RHEL/Fedora, openSUSE, macOS/BSD).
pub const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Writes a new CA (`ca.crt`, `ca.key` with mode 0600) into `dir`. Refuses to overwrite unless `force`.
pub fn init(dir: &Path, force: bool) -> Result<(PathBuf, PathBuf), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    if !force && (cert_path.exists() || key_path.exists()) {
        return Err(format!(
            "{} already holds a CA (use --force to replace it)",
            dir.display()
        ));
    }
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, "maskgate sidecar CA");
    params.distinguished_name.push(DnType::OrganizationName, "maskgate");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    // The key first (never world-readable, not even briefly).
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| format!("{}: {e}", key_path.display()))?;
    fs::write(&cert_path, cert.pem()).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    Ok((cert_path, key_path))
}

/// Writes a secret (a private key, a mappings file with originals): a new file, readable by its owner only from
/// the start (never world-readable, not even briefly; an old file, whatever its mode, is replaced, not reused).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// Writes `bundle.pem` (system roots + the CA) into `dir` and returns the environment lines to print.
pub fn env(dir: &Path, system_bundle: Option<&Path>) -> Result<String, String> {
    let cert_path = dir.join(CERT_FILE);
    let ca = fs::read_to_string(&cert_path).map_err(|e| {
        format!(
            "{}: {e} (run `maskgate ca init --dir {}` first)",
            cert_path.display(),
            dir.display()
        )
    })?;
    let sys = match system_bundle {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("no system CA bundle found (install ca-certificates, or pass --system-bundle FILE)")?,
    };
    let mut roots = fs::read_to_string(&sys).map_err(|e| format!("{}: {e}", sys.display()))?;
    if !roots.ends_with('\n') {
        roots.push('\n');
    }
    roots.push_str(&ca);
    let bundle = dir.join(BUNDLE_FILE);
    fs::write(&bundle, roots).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let abs = |p: &Path| {
        fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let (b, c) = (abs(&bundle), abs(&cert_path));
    Ok(format!(
        "export SSL_CERT_FILE={b}\nexport REQUESTS_CA_BUNDLE={b}\nexport CURL_CA_BUNDLE={b}\nexport NODE_EXTRA_CA_CERTS={c}\n"
    ))
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (the gateway's TLS listener).
    Server,
    /// A TLS client (a sidecar authenticating to the gateway with mTLS).
    Client,
}

/// `maskgate ca issue`: a certificate signed by the CA in `dir` for `names` (DNS names or IP addresses; the
/// first is also the common name), written as `out/<stem>.crt` (leaf then CA) and `out/<stem>.key` (0600).
pub fn issue(
    dir: &Path,
    names: &[String],
    usage: Usage,
    out: &Path,
    stem: &str,
    days: u32,
) -> Result<(PathBuf, PathBuf), String> {
    let (ca_cert, ca_key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let cert_pem = fs::read_to_string(&ca_cert).map_err(|e| format!("{}: {e}", ca_cert.display()))?;
    let key_pem = fs::read_to_string(&ca_key).map_err(|e| format!("{}: {e}", ca_key.display()))?;
    let ca_kp = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, ca_kp).map_err(|e| format!("{}: {e}", ca_cert.display()))?;
    let first = names.first().ok_or("at least one --name")?;
    if days == 0 {
        return Err("--days: at least 1".into());
    }
    let mut params = CertificateParams::new(names.to_vec()).map_err(|e| format!("--name: {e}"))?;
    params.distinguished_name.push(DnType::CommonName, first.as_str());
    params.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let t = time::OffsetDateTime::now_utc();
    params.not_before = t - time::Duration::minutes(5);
    params.not_after = t + time::Duration::days(days.into());
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let leaf = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (crt_path, key_path) = (out.join(format!("{stem}.crt")), out.join(format!("{stem}.key")));
    write_private(&key_path, key.serialize_pem().as_bytes()).map_err(|e| format!("{}: {e}", key_path.display()))?;
    fs::write(&crt_path, format!("{}{}", leaf.pem(), cert_pem)).map_err(|e| format!("{}: {e}", crt_path.display()))?;
    Ok((crt_path, key_path))
}

/// Mints and caches leaf certificates for the SNIs the sidecar terminates.
pub struct Minter {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    validity: Duration,
    cache: Mutex<HashMap<String, (Arc<ServerConfig>, Instant)>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    pub minted: std::sync::atomic::AtomicU64,
}

/// Most cached leaves; beyond it the cache is cleared (the intercept list is short, so this never happens in
/// practice).
const CACHE_MAX: usize = 1024;

impl Minter {
    pub fn load(cert: &Path, key: &Path, validity: Duration) -> Result<Minter, String> {
        let cert_pem = fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let key_pem = fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| format!("{}: {e}", cert.display()))?;
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        Ok(Minter {
            issuer,
            ca_der,
            validity,
            cache: Mutex::new(HashMap::new()),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            minted: Default::default(),
        })
    }

    /// A server config presenting a leaf for `host` (cached until shortly before the leaf expires).
    pub fn config_for(&self, host: &str) -> Result<Arc<ServerConfig>, String> {
        let now = Instant::now();
        if let Some((c, until)) = self.cache.lock().unwrap().get(host) {
            if *until > now {
                return Ok(c.clone());
            }
        }
        let mut params = CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let t = time::OffsetDateTime::now_utc();
        params.not_before = t - time::Duration::minutes(5);
        params.not_after = t + time::Duration::try_from(self.validity).map_err(|e| e.to_string())?;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let leaf = params.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        let chain = vec![leaf.der().clone(), self.ca_der.clone()];
        let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, pk)
            .map_err(|e| e.to_string())?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        self.minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        // Renew at 80 % of the validity.
        cache.insert(host.to_string(), (cfg.clone(), now + self.validity.mul_f32(0.8)));
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_env_and_mint() {
        let dir = std::env::temp_dir().join(format!("mg-ca-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (c, k) = init(&dir, false).unwrap();
        assert_eq!(fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(init(&dir, false).is_err(), "no silent overwrite");
        let sys = dir.join("sys.pem");
        fs::write(&sys, "SYSTEM\n").unwrap();
        let out = env(&dir, Some(&sys)).unwrap();
        for v in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "CURL_CA_BUNDLE",
        ] {
            assert!(out.contains(&format!("export {v}=")), "{out}");
        }
        let bundle = fs::read_to_string(dir.join(BUNDLE_FILE)).unwrap();
        assert!(bundle.starts_with("SYSTEM\n") && bundle.contains("BEGIN CERTIFICATE"));
        let m = Minter::load(&c, &k, Duration::from_secs(3600)).unwrap();
        let a = m.config_for("api.anthropic.com").unwrap();
        let b = m.config_for("api.anthropic.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "cached");
        m.config_for("api.openai.com").unwrap();
        assert_eq!(m.minted.load(std::sync::atomic::Ordering::Relaxed), 2);
        let (crt, key) = issue(
            &dir,
            &["gw.test".into(), "10.1.2.3".into()],
            Usage::Client,
            &dir,
            "sc",
            30,
        )
        .unwrap();
        assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_to_string(&crt).unwrap().matches("BEGIN CERTIFICATE").count(),
            2
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
