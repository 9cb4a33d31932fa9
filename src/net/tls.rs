//! TLS for the QUIC transport: TLS 1.3 only, ALPN `harmony/1`, both sides
//! present their self-signed node certificate, and each side accepts the
//! other only if the certificate's public key maps to the node id it expects
//! (a pinned id for the client, the trust list for the server). No CA, no
//! host names, no validity dates: a node's identity *is* its key.
//!
//! The signature of the TLS handshake (CertificateVerify) is still checked,
//! by rustls's own `verify_tls13_signature` with ring's algorithms: that is
//! what proves the peer holds the private key, so a node that only copied a
//! trusted node's certificate fails.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::identity::node_id_of_certificate;
use super::refusals::RefusalLog;
use super::{Identity, TrustList};
use crate::model::NodeId;
use crate::proto::ALPN;

/// The server name a client puts in its ClientHello. Nobody checks it.
pub const SERVER_NAME: &str = "harmony";

/// ring, with only the TLS 1.3 suites, AES-128-GCM first (fastest here, and
/// quinn needs it present for its initial packets).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

fn bad_cert(e: impl std::fmt::Display) -> Error {
    tracing::debug!("unparseable peer certificate: {e}");
    Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn no_tls12() -> Error {
    Error::General("TLS 1.2 is not offered".into())
}

/// The server's verifier of client certificates: the client's node id must
/// be in the trust list, or the list must admit guests (an invite is
/// pending; the server then answers such a client's `Join` only).
#[derive(Debug)]
pub struct TrustedClientVerifier {
    trust: TrustList,
    algorithms: WebPkiSupportedAlgorithms,
    refusals: RefusalLog,
}

impl TrustedClientVerifier {
    /// A verifier that accepts the node ids in `trust`, checking signatures with
    /// `provider`'s algorithms.
    pub fn new(trust: TrustList, provider: &CryptoProvider) -> Self {
        TrustedClientVerifier {
            trust,
            algorithms: provider.signature_verification_algorithms,
            refusals: RefusalLog::new(std::time::Instant::now()),
        }
    }
}

impl ClientCertVerifier for TrustedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let id = node_id_of_certificate(end_entity).map_err(bad_cert)?;
        if self.trust.contains(&id) {
            Ok(ClientCertVerified::assertion())
        } else if self.trust.admits_guests() {
            tracing::info!("node {id} connects as a guest: it may only pair by an invite");
            Ok(ClientCertVerified::assertion())
        } else {
            self.refusals.log(id);
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client's verifier of the server certificate: the server must be the
/// node the client meant to reach. Remembers the id it saw, so a mismatch
/// can be reported with both ids.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: NodeId,
    seen: SeenId,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServerVerifier {
    /// A verifier that accepts only `expected`, checking signatures with `provider`'s
    /// algorithms.
    pub fn new(expected: NodeId, provider: &CryptoProvider) -> Self {
        PinnedServerVerifier {
            expected,
            seen: Arc::default(),
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// The node id the server presented, once the handshake got that far.
    pub fn seen(&self) -> SeenId {
        self.seen.clone()
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let id = node_id_of_certificate(end_entity).map_err(bad_cert)?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
        if id == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls server configuration of a node. Session resumption and 0-RTT
/// are off: every connection runs the full handshake, so the trust list is
/// consulted each time (a resumed session would skip the client verifier,
/// and `peer remove` would not apply to it).
pub fn server_crypto(identity: &Identity, trust: TrustList) -> Result<rustls::ServerConfig, Error> {
    let provider = crypto_provider();
    let verifier = Arc::new(TrustedClientVerifier::new(trust, &provider));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![identity.certificate().clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

/// Where a [`PinnedServerVerifier`] records the node id the server presented.
pub type SeenId = Arc<Mutex<Option<NodeId>>>;

/// The rustls client configuration for one connection to the node `expected`,
/// and a handle on the id the server presented.
pub fn client_crypto(
    identity: &Identity,
    expected: NodeId,
) -> Result<(rustls::ClientConfig, SeenId), Error> {
    let provider = crypto_provider();
    let verifier = PinnedServerVerifier::new(expected, &provider);
    let seen = verifier.seen();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(vec![identity.certificate().clone()], identity.private_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok((config, seen))
}
