//! The relay's TLS identity: a configured PEM certificate and key, or a
//! self-signed ECDSA P-256 certificate created in the data directory on
//! first start and reused after.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_wire::Fingerprint;
use cairn_wire::frames::ALPN;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::RelayConfig;

/// The certificate chain and key the relay serves.
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Loading or creating the TLS identity failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file held no usable certificate or key.
    #[error("{path}: {reason}")]
    BadPem {
        /// Which file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate could not be generated.
    #[error("generating the self-signed certificate failed: {0}")]
    Generate(String),
    /// rustls refused the certificate or key.
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

/// File names of the self-signed identity inside the data directory.
pub const SELF_SIGNED_CERT: &str = "relay-cert.pem";
/// The key's file name beside it.
pub const SELF_SIGNED_KEY: &str = "relay-key.pem";

/// Where the certificate and key the relay serves are: the `[tls]` files,
/// or the self-signed pair in the data directory.
pub fn identity_paths(config: &RelayConfig) -> (PathBuf, PathBuf) {
    match &config.tls {
        Some(files) => (files.cert.clone(), files.key.clone()),
        None => (
            config.data_dir.join(SELF_SIGNED_CERT),
            config.data_dir.join(SELF_SIGNED_KEY),
        ),
    }
}

impl TlsIdentity {
    /// The configured identity, or the self-signed one in the data
    /// directory, created if missing.
    pub fn load_or_create(config: &RelayConfig) -> Result<Self, TlsError> {
        match &config.tls {
            Some(files) => Self::from_pem_files(&files.cert, &files.key),
            None => Self::self_signed(&config.data_dir),
        }
    }

    /// The identity the relay would serve, without creating anything.
    pub fn load_existing(config: &RelayConfig) -> Result<Self, TlsError> {
        let (cert, key) = identity_paths(config);
        Self::from_pem_files(&cert, &key)
    }

    /// The fingerprint clients pin: SHA-256 of the end-entity
    /// certificate's public key (SubjectPublicKeyInfo), which a renewal
    /// with the same key keeps.
    pub fn fingerprint(&self) -> Result<Fingerprint, TlsError> {
        let end_entity = self
            .chain
            .first()
            .ok_or_else(|| TlsError::Rustls("no certificate".into()))?;
        let parsed = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| TlsError::Rustls(format!("the certificate does not parse: {e}")))?;
        Ok(Fingerprint::of_public_key(
            parsed.subject_public_key_info().as_ref(),
        ))
    }

    /// A QUIC server crypto configuration speaking ALPN `cairn/1`, TLS 1.3 only.
    pub fn quic_server_config(&self) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Rustls(e.to_string()))
    }

    fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let bad = |path: &Path, reason: String| TlsError::BadPem {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate in file".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        Ok(Self {
            chain,
            key: key_der,
        })
    }

    fn self_signed(data_dir: &Path) -> Result<Self, TlsError> {
        let (cert, key) = (
            data_dir.join(SELF_SIGNED_CERT),
            data_dir.join(SELF_SIGNED_KEY),
        );
        if !cert.exists() || !key.exists() {
            create_self_signed(&cert, &key)?;
        }
        Self::from_pem_files(&cert, &key)
    }
}

fn create_self_signed(cert: &Path, key: &Path) -> Result<(), TlsError> {
    // rcgen's default key is ECDSA P-256 with SHA-256.
    let names = vec!["cairn-relay".to_owned(), "localhost".to_owned()];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(cert, generated.cert.pem()).map_err(|source| TlsError::Io {
        path: cert.to_owned(),
        source,
    })
}

/// Writes a new file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
