//! The gateway's TLS listener: server certificate, ALPN `h2`/`http/1.1`, and optional client certificates (mTLS)
//! that authenticate sidecars.
//!
//! A client certificate is asked for but never required, and one that does not verify does not fail the
//! handshake: the connection is then served like any other client's, and the sidecar headers it sends are
//! ignored (the same as a wrong sidecar token). The handshake still checks that the client holds the key of the
//! certificate it presents (the CertificateVerify signature); the chain is checked against `client_ca` right
//! after the handshake, and only a certificate that passes marks the connection as a trusted sidecar.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::config::{load_ca_file, TlsListener};

/// Marks a request that arrived on a TLS connection whose client certificate chains to `gateway.tls.client_ca`.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedClientCert;

pub struct TlsServer {
    pub config: Arc<ServerConfig>,
    /// The real (WebPKI) verifier, applied after the handshake; `None` without `client_ca`.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl TlsServer {
    /// True when the peer presented a certificate that chains to `client_ca` (and proved it holds its key).
    pub fn client_verified(&self, conn: &rustls::ServerConnection) -> bool {
        let (Some(v), Some(chain)) = (&self.verifier, conn.peer_certificates()) else {
            return false;
        };
        let Some((end, rest)) = chain.split_first() else {
            return false;
        };
        v.verify_client_cert(end, rest, UnixTime::now()).is_ok()
    }

    /// True when a client certificate was presented at all.
    pub fn client_presented(conn: &rustls::ServerConnection) -> bool {
        conn.peer_certificates().is_some_and(|c| !c.is_empty())
    }
}

/// Builds the listener's TLS configuration; errors name the key.
pub fn server_config(t: &TlsListener) -> Result<TlsServer, String> {
    let chain: Vec<CertificateDer<'static>> = load_ca_file(&t.cert).map_err(|e| format!("gateway.tls.cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&t.key).map_err(|e| format!("gateway.tls.key: {}: {e}", t.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (wants_cert, verifier) = match &t.client_ca {
        None => (builder.with_no_client_auth(), None),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_ca_file(ca).map_err(|e| format!("gateway.tls.client_ca: {e}"))? {
                roots.add(c).map_err(|e| format!("gateway.tls.client_ca: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("gateway.tls.client_ca: {e}"))?;
            let ask: Arc<dyn ClientCertVerifier> = Arc::new(AskClientCert(v.clone()));
            (builder.with_client_cert_verifier(ask), Some(v))
        }
    };
    let mut cfg = wants_cert
        .with_single_cert(chain, key)
        .map_err(|e| format!("gateway.tls.key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsServer {
        config: Arc::new(cfg),
        verifier,
    })
}

/// Asks for a client certificate, accepts any that the client proves it holds, and leaves the chain check to
/// [`TlsServer::client_verified`].
#[derive(Debug)]
struct AskClientCert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AskClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
