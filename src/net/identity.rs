//! A node's identity: a self-signed certificate and its private key, made by
//! rcgen at `init`. The [`NodeId`] is derived from the certificate's public key,
//! so the id can be checked against whatever certificate a peer presents.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::model::NodeId;

/// File names inside `.harmony/`.
pub const CERT_FILE: &str = "node.crt";
/// The node's private key, PEM, readable by its owner only.
pub const KEY_FILE: &str = "node.key";

/// Why the node's identity cannot be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key pair or its certificate could not be generated.
    #[error("could not generate a node key: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing a key or certificate file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "write").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A key or certificate file that does not parse: it was damaged or replaced.
    #[error("{path} is not a valid {what}: {reason}; restore it from a backup or re-initialise this location")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it should be ("certificate", "PEM private key").
        what: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// The key and the certificate are from two identities (e.g. restored from two
    /// backups).
    #[error("{key} does not belong to the certificate {cert}; restore both from one backup or re-initialise this location")]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The key file can be read by other users, who could then impersonate this node.
    #[error("{path} is accessible by other users (mode {mode:04o}); a node key must be private: run `chmod 600 {path}`")]
    KeyNotPrivate {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The node key could not sign (its node record).
    #[error("could not sign with the node key: {0}")]
    Sign(String),
    /// A peer's certificate (or ours) that is not an end-entity X.509 certificate, so no
    /// node id can be taken from it.
    #[error("certificate is not a valid X.509 end-entity certificate: {0}")]
    BadCertificate(String),
}

/// The certificate and key this node proves itself with.
pub struct Identity {
    node_id: NodeId,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            node_id: self.node_id,
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Creates a fresh ECDSA P-256 key and a self-signed certificate for it, and
    /// writes them as `node.crt` and `node.key` into `dir`. The key file is
    /// created with mode 0600 from the start, never readable by others even for
    /// an instant.
    pub fn create(dir: &Path) -> Result<Self, IdentityError> {
        let certified = rcgen::generate_simple_self_signed(vec!["harmony-node".to_owned()])?;
        let key_path = dir.join(KEY_FILE);
        write_private(&key_path, certified.signing_key.serialize_pem().as_bytes()).map_err(
            |source| IdentityError::Io {
                action: "write",
                path: key_path,
                source,
            },
        )?;
        let cert_path = dir.join(CERT_FILE);
        fs::write(&cert_path, certified.cert.pem()).map_err(|source| IdentityError::Io {
            action: "write",
            path: cert_path,
            source,
        })?;
        Self::load(dir)
    }

    /// Reads the identity [`Identity::create`] wrote. Refuses, as ssh does, a
    /// key file other users may read (whoever holds the key *is* this node
    /// to every peer), and checks that the key parses and belongs to the
    /// certificate, so that a damaged file is named here rather than failing
    /// every handshake later with a TLS error.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        check_private(&key_path)?;
        let corrupt = |path: &Path, what, reason: String| IdentityError::Corrupt {
            path: path.to_owned(),
            what,
            reason,
        };
        let cert = CertificateDer::from_pem_file(&cert_path)
            .map_err(|e| corrupt(&cert_path, "PEM certificate", pem_reason(e)))?;
        let node_id = node_id_of_certificate(&cert)
            .map_err(|e| corrupt(&cert_path, "certificate", e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from_pem_file(&key_path)
            .map_err(|e| corrupt(&key_path, "PEM private key", pem_reason(e)))?;
        let signer =
            rustls::crypto::ring::sign::any_supported_type(&PrivateKeyDer::Pkcs8(key.clone_key()))
                .map_err(|e| corrupt(&key_path, "private key", e.to_string()))?;
        rustls::sign::CertifiedKey::new(vec![cert.clone()], signer)
            .keys_match()
            .map_err(|_| IdentityError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            })?;
        Ok(Identity { node_id, cert, key })
    }

    /// The node id: a hash of the certificate's public key, so the TLS handshake
    /// proves it.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The certificate presented in every TLS handshake.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// The node's public key (SubjectPublicKeyInfo, DER), whose hash is its
    /// id.
    pub fn public_key(&self) -> Vec<u8> {
        webpki::EndEntityCert::try_from(&self.cert)
            .expect("our certificate parsed when it was loaded")
            .subject_public_key_info()
            .as_ref()
            .to_vec()
    }

    /// Signs `message` with the node key (ECDSA P-256, SHA-256, ASN.1 DER).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let failed = |why: String| IdentityError::Sign(why);
        let key = rustls::crypto::ring::sign::any_supported_type(&self.private_key())
            .map_err(|e| failed(e.to_string()))?;
        let signer = key
            .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
            .ok_or_else(|| failed("the node key is not a P-256 key".to_owned()))?;
        signer.sign(message).map_err(|e| failed(e.to_string()))
    }
}

/// The node id a certificate stands for: blake3 (derive-key mode) of its
/// SubjectPublicKeyInfo. Used both for our own id and to check peers.
pub fn node_id_of_certificate(cert: &CertificateDer<'_>) -> Result<NodeId, IdentityError> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::BadCertificate(format!("{e:?}")))?;
    Ok(NodeId::from_spki_der(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// Why a PEM file does not parse, in words: the parser's own text for a
/// cut-off file lists the missing marker as a byte array.
fn pem_reason(error: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => format!(
            "it is cut short (no `-----END {}-----` line)",
            String::from_utf8_lossy(&end_marker)
        ),
        Error::IllegalSectionStart { line } => format!(
            "its `{}` line is damaged",
            String::from_utf8_lossy(&line).trim()
        ),
        Error::NoItemsFound => "it holds no PEM section of that kind".to_owned(),
        other => other.to_string(),
    }
}

/// The key file must give no access to group or others.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| IdentityError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(IdentityError::KeyNotPrivate {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), IdentityError> {
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
