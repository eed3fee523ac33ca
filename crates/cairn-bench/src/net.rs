//! QUIC on both sides of the baselines: a bare quinn server with the
//! relay's TLS set-up (rustls with ring, TLS 1.3 only, ALPN `cairn/1`, a
//! self-signed ECDSA P-256 certificate from rcgen), and client endpoints
//! configured like `cairn-client`'s (pinned certificate, same keep-alive
//! and idle timeout), one endpoint shared by many connections when a
//! scenario needs thousands of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cairn_client::connection::{auth_exporter, request_on};
use cairn_client::pin::PinnedVerifier;
use cairn_relay::config::Limits;
use cairn_wire::frames::ALPN;
use cairn_wire::{AuthRequest, Fingerprint, Request, Response};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::ident::Device;

/// The client's keep-alive and idle timeout, as in `cairn-client`.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bidirectional streams a bare server lets each connection open, as the
/// relay's benchmark configuration does.
pub const STREAMS_PER_CONNECTION: u32 = 1024;

/// How a bare server sets up its connections' transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BareTransport {
    /// As the scenarios configure the relay ([`STREAMS_PER_CONNECTION`]
    /// streams): the baseline of the throughput scenarios.
    Bench,
    /// quinn's defaults.
    QuinnDefault,
    /// What an authenticated connection gets from a relay with its
    /// default limits (streams, windows, no datagrams).
    RelayDefault,
}

impl BareTransport {
    fn config(self) -> quinn::TransportConfig {
        match self {
            Self::Bench => {
                let mut transport = quinn::TransportConfig::default();
                transport.max_concurrent_bidi_streams(STREAMS_PER_CONNECTION.into());
                transport.max_concurrent_uni_streams(0u32.into());
                transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
                transport
            }
            Self::QuinnDefault => {
                let mut transport = quinn::TransportConfig::default();
                transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
                transport
            }
            Self::RelayDefault => cairn_relay::server::authenticated_transport(&Limits::default()),
        }
    }
}

/// A bare quinn server endpoint on loopback, set up as the scenarios set
/// up the relay, and the pin of its certificate.
pub fn bare_server() -> Result<(quinn::Endpoint, Fingerprint)> {
    bare_server_with(BareTransport::Bench)
}

/// A bare quinn server endpoint on loopback with `transport`, and the pin
/// of its certificate.
pub fn bare_server_with(transport: BareTransport) -> Result<(quinn::Endpoint, Fingerprint)> {
    let names = vec!["cairn-relay".to_owned(), "localhost".to_owned()];
    let generated =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    let der = CertificateDer::from(generated.cert.der().to_vec());
    let pin = Fingerprint::of_certificate(&der);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![der], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    server.transport_config(Arc::new(transport.config()));
    let endpoint = quinn::Endpoint::server(server, loopback())?;
    Ok((endpoint, pin))
}

/// A client endpoint on loopback whose connections pin `pin`.
pub fn client_endpoint(pin: Fingerprint) -> Result<quinn::Endpoint> {
    let mut endpoint = quinn::Endpoint::client(loopback())?;
    endpoint.set_default_client_config(client_config(pin)?);
    Ok(endpoint)
}

/// Connects `endpoint` to `addr` (QUIC and TLS handshake only).
pub async fn connect(endpoint: &quinn::Endpoint, addr: SocketAddr) -> Result<quinn::Connection> {
    Ok(endpoint.connect(addr, "cairn-relay")?.await?)
}

/// Connects and authenticates as `device`, the way `cairn-client` does,
/// but on a shared endpoint.
pub async fn connect_authenticated(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    device: &Device,
) -> Result<quinn::Connection> {
    let connection = connect(endpoint, addr).await?;
    let exporter = auth_exporter(&connection)?;
    let request = Request::Authenticate(AuthRequest {
        certificate: device.certificate.clone(),
        proof: AuthRequest::prove(&device.key, &exporter),
        invite: None,
    });
    match request_on(&connection, &request).await? {
        Response::Authenticated(_) => Ok(connection),
        Response::Error(error) => bail!("authentication refused: {error:?}"),
        other => Err(anyhow!("unexpected answer to authenticate: {other:?}")),
    }
}

/// A bare server's side: completes each handshake and holds the
/// connection until the client closes it.
pub async fn accept_and_hold(server: quinn::Endpoint) {
    while let Some(incoming) = server.accept().await {
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                connection.closed().await;
            }
        });
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn client_config(pin: Fingerprint) -> Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The client's own verifier, so that both sides do the same handshake
    // work as a real client.
    let verifier = Arc::new(PinnedVerifier::new(pin, provider.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // `cairn-client` builds a new TLS configuration for every connection,
    // so it never resumes a session: every handshake here is a full one too.
    tls.resumption = rustls::client::Resumption::disabled();
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}
