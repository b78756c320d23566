//! Trust between sidecar and gateway: the tenant header counts only with the sidecar token.

use serde_json::json;

use crate::common::*;

fn msg(id: &str) -> serde_json::Value {
    json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": format!("check {id} now")}]})
}

/// The placeholder the provider received for the one EC2 id of the request.
fn placeholder(env: &Env) -> String {
    let body = env.last().body_str();
    let i = body.find("AWS_EC2_").expect("masked");
    body[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[tokio::test]
async fn tenant_header_only_from_authenticated_sidecars() {
    std::env::set_var("MG_TEST_SIDECAR_TOKEN", "sidecar-secret-token");
    let env = env_with("sidecar_token_env = \"MG_TEST_SIDECAR_TOKEN\"", "").await;
    let tok = ("x-maskgate-sidecar-token", "sidecar-secret-token");
    // Authenticated: each tenant has its own counters, so both first ids get the same placeholder.
    let r = env
        .post_json(
            "/anthropic/v1/messages",
            &[tok, ("x-maskgate-tenant", "team-a")],
            &msg("i-0aaaaaaaaaaaaaaa1"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = placeholder(&env);
    let rec = env.last();
    assert!(
        rec.headers.get("x-maskgate-sidecar-token").is_none(),
        "token forwarded upstream"
    );
    assert!(
        rec.headers.get("x-maskgate-tenant").is_none(),
        "tenant header forwarded upstream"
    );
    env.post_json(
        "/anthropic/v1/messages",
        &[tok, ("x-maskgate-tenant", "team-b")],
        &msg("i-0bbbbbbbbbbbbbbb1"),
    )
    .await;
    let b = placeholder(&env);
    assert_eq!(a, b, "tenants team-a and team-b share counters");
    // Without the token (or with a wrong one) the header is ignored: both land in the route's tenant.
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-c")],
        &msg("i-0ccccccccccccccc1"),
    )
    .await;
    let c = placeholder(&env);
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-sidecar-token", "wrong"), ("x-maskgate-tenant", "team-d")],
        &msg("i-0ddddddddddddddd1"),
    )
    .await;
    let d = placeholder(&env);
    assert_ne!(c, d, "unauthenticated tenant header was honoured");
    let logs = logs();
    assert!(logs.contains("team-a") && logs.contains("team-b"));
    assert!(
        !logs.contains("team-c") && !logs.contains("team-d"),
        "unauthenticated tenant logged"
    );
}

#[tokio::test]
async fn tenant_header_ignored_without_configured_token() {
    let env = env().await;
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-x")],
        &msg("i-0eeeeeeeeeeeeeee1"),
    )
    .await;
    env.post_json(
        "/anthropic/v1/messages",
        &[("x-maskgate-tenant", "team-y")],
        &msg("i-0fffffffffffffff1"),
    )
    .await;
    assert!(!logs().contains("team-x"));
}

/// A CA: its PEM and an issuer for leaves.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    let pem = p.self_signed(&key).unwrap().pem();
    TestCa {
        pem,
        issuer: rcgen::Issuer::new(p, key),
    }
}

/// A leaf (certificate PEM, key PEM) for `names`, server or client.
fn leaf(ca: &TestCa, names: &[&str], client: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

type TlsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// A TLS client (h2 and HTTP/1.1 by ALPN) trusting `server_ca`, presenting `cert` when given.
fn tls_client(server_ca: &str, cert: Option<&(String, String)>) -> TlsClient {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.as_bytes()).unwrap())
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_all_versions()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

struct MtlsEnv {
    env: Env,
    server_ca: String,
    good: (String, String),
    wrong_ca: (String, String),
    dir: std::path::PathBuf,
}

impl Drop for MtlsEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway with a TLS listener whose `client_ca` signs `good`; `wrong_ca` is signed by another CA.
async fn mtls_env(auth: &str) -> MtlsEnv {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mg-mtls-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let server_ca = test_ca("gateway server CA");
    let (scert, skey) = leaf(&server_ca, &["127.0.0.1"], false);
    let sidecar_ca = test_ca("sidecar client CA");
    let other_ca = test_ca("some other CA");
    let good = leaf(&sidecar_ca, &["sidecar-a"], true);
    let wrong_ca = leaf(&other_ca, &["sidecar-a"], true);
    for (f, c) in [
        ("server.crt", &scert),
        ("server.key", &skey),
        ("client-ca.crt", &sidecar_ca.pem),
    ] {
        std::fs::write(dir.join(f), c).unwrap();
    }
    std::env::set_var("MG_TEST_SIDECAR_TOKEN", "sidecar-secret-token");
    let extra = format!(
        "sidecar_token_env = \"MG_TEST_SIDECAR_TOKEN\"\nsidecar_auth = \"{auth}\"\n[gateway.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{d}/server.crt\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/client-ca.crt\"\n",
        d = dir.display()
    );
    MtlsEnv {
        env: env_with(&extra, "").await,
        server_ca: server_ca.pem,
        good,
        wrong_ca,
        dir,
    }
}

impl MtlsEnv {
    /// POSTs over the TLS listener; returns the placeholder the provider received and the HTTP version used.
    async fn post_tls(
        &self,
        cert: Option<&(String, String)>,
        headers: &[(&str, &str)],
        id: &str,
    ) -> (String, http::Version) {
        let client = tls_client(&self.server_ca, cert);
        let url = format!(
            "https://127.0.0.1:{}/anthropic/v1/messages",
            self.env.gw.tls_addr.expect("TLS listener").port()
        );
        let mut b = http::Request::post(url).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(http_body_util::Full::new(bytes::Bytes::from(msg(id).to_string())))
            .unwrap();
        let r = tokio::time::timeout(std::time::Duration::from_secs(20), client.request(req))
            .await
            .expect("in time")
            .expect("TLS request sent");
        let version = r.version();
        let r = collect(r).await;
        assert_eq!(r.status, 200, "{}", r.text());
        (placeholder(&self.env), version)
    }
}

#[tokio::test]
async fn mtls_client_certificate_authenticates_the_sidecar() {
    let m = mtls_env("mtls").await;
    // A certificate from client_ca: the tenant header is honoured (two tenants, two first placeholders), over h2.
    let (a, v) = m
        .post_tls(
            Some(&m.good),
            &[("x-maskgate-tenant", "mtls-team-a")],
            "i-000c0ffee00001111",
        )
        .await;
    assert_eq!(v, http::Version::HTTP_2, "ALPN h2 on the TLS listener");
    let (b, _) = m
        .post_tls(
            Some(&m.good),
            &[("x-maskgate-tenant", "mtls-team-b")],
            "i-000c0ffee00002222",
        )
        .await;
    assert_eq!(a, b, "mTLS-authenticated tenants were not honoured");
    let rec = m.env.last();
    assert!(rec.headers.get("x-maskgate-tenant").is_none());
    // A certificate from another CA, or none: served, but the header is ignored (route tenant for both).
    let (c, _) = m
        .post_tls(
            Some(&m.wrong_ca),
            &[("x-maskgate-tenant", "mtls-team-c")],
            "i-000c0ffee00003333",
        )
        .await;
    let (d, _) = m
        .post_tls(
            Some(&m.wrong_ca),
            &[("x-maskgate-tenant", "mtls-team-d")],
            "i-000c0ffee00004444",
        )
        .await;
    assert_ne!(c, d, "a client certificate from another CA was trusted");
    let (e, _) = m
        .post_tls(None, &[("x-maskgate-tenant", "mtls-team-e")], "i-000c0ffee00005555")
        .await;
    let (f, _) = m
        .post_tls(None, &[("x-maskgate-tenant", "mtls-team-f")], "i-000c0ffee00006666")
        .await;
    assert_ne!(e, f, "a TLS client without certificate was trusted");
    // sidecar_auth = "mtls": the token alone (plain listener) does not authenticate.
    let tok = ("x-maskgate-sidecar-token", "sidecar-secret-token");
    m.env
        .post_json(
            "/anthropic/v1/messages",
            &[tok, ("x-maskgate-tenant", "mtls-team-g")],
            &msg("i-000c0ffee00007777"),
        )
        .await;
    let g = placeholder(&m.env);
    m.env
        .post_json(
            "/anthropic/v1/messages",
            &[tok, ("x-maskgate-tenant", "mtls-team-h")],
            &msg("i-000c0ffee00008888"),
        )
        .await;
    let h = placeholder(&m.env);
    assert_ne!(g, h, "the token authenticated although sidecar_auth = \"mtls\"");
    let logs = logs();
    assert!(logs.contains("mtls-team-a") && logs.contains("mtls-team-b"));
    for t in [
        "mtls-team-c",
        "mtls-team-d",
        "mtls-team-e",
        "mtls-team-f",
        "mtls-team-g",
        "mtls-team-h",
    ] {
        assert!(!logs.contains(t), "unauthenticated tenant {t} logged");
    }
}

#[tokio::test]
async fn sidecar_auth_modes_token_and_either() {
    // "token": a valid client certificate alone does not authenticate; the token (over TLS too) does.
    let m = mtls_env("token").await;
    let (a, _) = m
        .post_tls(
            Some(&m.good),
            &[("x-maskgate-tenant", "tok-team-a")],
            "i-000c0ffee00009999",
        )
        .await;
    let (b, _) = m
        .post_tls(
            Some(&m.good),
            &[("x-maskgate-tenant", "tok-team-b")],
            "i-000c0ffee0000aaaa",
        )
        .await;
    assert_ne!(a, b, "the certificate authenticated although sidecar_auth = \"token\"");
    let tok = ("x-maskgate-sidecar-token", "sidecar-secret-token");
    let (c, _) = m
        .post_tls(None, &[tok, ("x-maskgate-tenant", "tok-team-c")], "i-000c0ffee0000bbbb")
        .await;
    let (d, _) = m
        .post_tls(None, &[tok, ("x-maskgate-tenant", "tok-team-d")], "i-000c0ffee0000cccc")
        .await;
    assert_eq!(c, d, "the token over TLS did not authenticate");
    // "either": the certificate or the token.
    let m = mtls_env("either").await;
    let (e, _) = m
        .post_tls(
            Some(&m.good),
            &[("x-maskgate-tenant", "either-team-e")],
            "i-000c0ffee0000dddd",
        )
        .await;
    let r = m
        .env
        .post_json(
            "/anthropic/v1/messages",
            &[tok, ("x-maskgate-tenant", "either-team-f")],
            &msg("i-000c0ffee0000eeee"),
        )
        .await;
    assert_eq!(r.status, 200);
    let f = placeholder(&m.env);
    assert_eq!(e, f, "either: certificate and token tenants not both honoured");
}

#[test]
fn sidecar_auth_needs_its_material() {
    let cfg = |extra: &str| maskgate_gateway::Config::from_toml(&format!("[gateway]\n{extra}\n"));
    let e = cfg("sidecar_auth = \"mtls\"").unwrap_err().to_string();
    assert!(e.contains("gateway.sidecar_auth"), "{e}");
    let e = cfg("sidecar_auth = \"token\"").unwrap_err().to_string();
    assert!(e.contains("gateway.sidecar_auth"), "{e}");
    let e = cfg("[gateway.tls]\nlisten = \"127.0.0.1:0\"\ncert = \"/nonexistent.crt\"\nkey = \"/nonexistent.key\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("gateway.tls.cert"), "{e}");
}
