//! A rustls verifier that accepts exactly the relay whose public key the
//! user pinned (SHA-256 of the certificate's SubjectPublicKeyInfo), with
//! whatever certificate it presents for that key, so a renewal with the
//! same key keeps working. A pin of a whole certificate (how cairn pinned
//! before) is still accepted for that certificate. The handshake signature
//! is checked, so only the holder of the key passes.
//!
//! A home set up without a pin trusts the system's certificate
//! authorities for its relay's host name instead (a relay with a
//! CA-issued certificate, renewed with new keys as CAs like); its "pin" is
//! then [`Fingerprint::of_relay_name`] of that host, which no key matches.

use std::sync::Arc;

use cairn_wire::Fingerprint;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Why the pinned verifier refused a certificate; kept so that the
/// connection error can say "fingerprint mismatch" precisely.
pub const MISMATCH: &str = "cairn: relay certificate fingerprint does not match the pin";
/// Why a relay's certificate was refused by the system's authorities.
pub const UNTRUSTED: &str = "cairn: relay certificate not trusted by the system";

/// Accepts exactly the pinned certificate, or a certificate the system's
/// authorities vouch for the host; checks handshake signatures.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
    authorities: Option<Arc<WebPkiServerVerifier>>,
}

impl PinnedVerifier {
    /// A verifier for `pin`, checking signatures with `provider`.
    pub fn new(pin: Fingerprint, provider: Arc<CryptoProvider>) -> Self {
        Self {
            pin,
            provider,
            authorities: None,
        }
    }

    /// A verifier for a relay named `host`: the system's authorities if
    /// `pin` says so ([`Fingerprint::of_relay_name`] of `host`), else the
    /// pinned key.
    pub fn for_host(
        pin: Fingerprint,
        host: &str,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let mut verifier = Self::new(pin, provider.clone());
        if pin == Fingerprint::of_relay_name(host) {
            let roots = Arc::new(system_roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| e.to_string())?;
            verifier.authorities = Some(webpki);
        }
        Ok(verifier)
    }
}

/// The system's certificate authorities (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured, as by OpenSSL).
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(ToString::to_string);
        return Err(format!(
            "no certificate authorities found on this system{}",
            why.map(|e| format!(" ({e})")).unwrap_or_default()
        ));
    }
    Ok(roots)
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
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(authorities) = &self.authorities {
            return authorities
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| Error::General(format!("{UNTRUSTED}: {e}")));
        }
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
