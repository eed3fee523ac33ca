//! A rustls verifier that accepts exactly the relay whose public key the
//! user pinned (SHA-256 of the certificate's SubjectPublicKeyInfo), with
//! whatever certificate it presents for that key, so a renewal with the
//! same key keeps working. A pin of a whole certificate (how cairn pinned
//! before) is still accepted for that certificate. The handshake signature
//! is checked, so only the holder of the key passes.

use std::sync::Arc;

use cairn_wire::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Why the pinned verifier refused a certificate; kept so that the
/// connection error can say "fingerprint mismatch" precisely.
pub const MISMATCH: &str = "cairn: relay certificate fingerprint does not match the pin";

/// Accepts exactly the pinned certificate; checks handshake signatures.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// A verifier for `pin`, checking signatures with `provider`.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }
}

/// The pin of the public key a certificate holds; `None` if it does not
/// parse as an X.509 certificate.
pub fn key_fingerprint(certificate: &CertificateDer<'_>) -> Option<Fingerprint> {
    let parsed = webpki::EndEntityCert::try_from(certificate).ok()?;
    Some(Fingerprint::of_public_key(
        parsed.subject_public_key_info().as_ref(),
    ))
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let key = key_fingerprint(end_entity);
        if key == Some(self.pin) || Fingerprint::of_certificate(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(MISMATCH.to_owned()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
