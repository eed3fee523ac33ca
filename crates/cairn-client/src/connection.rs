//! An authenticated connection to a relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_wire::frames::{ALPN, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN};
use cairn_wire::{
    AuthOk, AuthRequest, BoundedString, DeviceCertificate, DeviceId, EnrolRequest, ErrorCode,
    Fingerprint, Request, Response, SigningKey, SubscribeRequest, SubscriptionEvent, UserId,
    WireError,
};
use quinn::crypto::rustls::QuicClientConfig;

use crate::frame_io::{FrameReadError, read_frame};
use crate::pin::{MISMATCH, PinnedVerifier, UNTRUSTED};

/// The server name a relay is dialled by when its host name does not
/// matter (a pinned key, an address given as such).
pub const RELAY_NAME: &str = "cairn-relay";

/// How long a connection may stay silent before it is considered dead:
/// `watch` says it is reconnecting within this long of a relay going away
/// without closing (a crash, a lost network).
const IDLE_TIMEOUT: Duration = Duration::from_secs(12);
/// Keep-alive interval, well inside the idle timeout: three are missed
/// before the connection counts as dead.
const KEEP_ALIVE: Duration = Duration::from_secs(4);

/// Connecting or authenticating failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The relay presented a certificate other than the pinned one.
    #[error(
        "the relay's certificate does not match the pinned fingerprint {pin}: \
         this is not the relay you set up, or its certificate changed"
    )]
    FingerprintMismatch {
        /// The pin that was expected.
        pin: Fingerprint,
    },
    /// The home trusts the system's certificate authorities for its
    /// relay, and they do not vouch for the certificate it presented.
    #[error(
        "the relay's certificate is not trusted by this system's certificate authorities \
         for {host}: {reason}"
    )]
    Untrusted {
        /// The host name checked.
        host: String,
        /// What the verifier said.
        reason: String,
    },
    /// No connection could be made (unreachable, refused, timed out).
    #[error("cannot reach the relay at {addr}: {reason}")]
    Unreachable {
        /// Where.
        addr: SocketAddr,
        /// The transport's account.
        reason: String,
    },
    /// The relay refused the device.
    #[error("the relay refused this device: {0}")]
    Refused(WireError),
    /// The relay answered something the protocol does not allow here.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// Setting up TLS failed locally.
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The relay closed the connection with a catalogue code (revoked,
    /// shutting down, misbehaviour...).
    #[error("the relay closed the connection: {0}")]
    Closed(WireError),
    /// The connection is gone.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The answer was not a valid frame.
    #[error("the relay sent an invalid frame: {0}")]
    BadFrame(String),
    /// The stream ended without an answer.
    #[error("the relay closed the stream without answering")]
    NoAnswer,
}

/// An authenticated connection to a relay, as one device.
#[derive(Debug)]
pub struct Connection {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    auth: AuthOk,
}

impl Connection {
    /// Connects to the relay at `addr` pinned to `pin` and authenticates
    /// as the device `device_key` certified by `certificate`.
    pub async fn open(
        addr: SocketAddr,
        pin: Fingerprint,
        device_key: &SigningKey,
        certificate: DeviceCertificate,
        invite: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let relay = (addr, RELAY_NAME);
        Self::open_named(relay, pin, device_key, certificate, invite).await
    }

    /// [`Connection::open`] to the relay at `addr` named `host` (checked
    /// by the system's authorities when `pin` says so).
    pub async fn open_named(
        (addr, host): (SocketAddr, &str),
        pin: Fingerprint,
        device_key: &SigningKey,
        certificate: DeviceCertificate,
        invite: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let (endpoint, connection) = dial_named(addr, host, pin).await?;
        let auth = authenticate(&connection, device_key, certificate, invite).await?;
        Ok(Self {
            endpoint,
            connection,
            auth,
        })
    }

    /// Connects to the relay at `addr` pinned to `pin` as the device
    /// `device_key`, which another device of `user` registered but which
    /// holds no certificate yet; returns the connection, authenticated as
    /// that device, and the certificate the relay holds for it (unchecked:
    /// the caller checks it against the user's root key).
    pub async fn enrol(
        (addr, host): (SocketAddr, &str),
        pin: Fingerprint,
        device_key: &SigningKey,
        user: UserId,
    ) -> Result<(Self, DeviceCertificate), ConnectError> {
        let (endpoint, connection) = dial_named(addr, host, pin).await?;
        let proof = AuthRequest::prove(device_key, &auth_exporter(&connection)?);
        let device = DeviceId::from_bytes(device_key.verifying_key().to_bytes());
        let request = Request::Enrol(EnrolRequest {
            user,
            device,
            proof,
        });
        let enrolment = match first_answer(&connection, &request).await? {
            Response::Enrolled(enrolment) => enrolment,
            other => {
                return Err(ConnectError::Protocol(format!(
                    "unexpected answer {other:?}"
                )));
            }
        };
        let connection = Self {
            endpoint,
            connection,
            auth: enrolment.ok,
        };
        Ok((connection, enrolment.certificate))
    }

    /// Who the relay says this connection is.
    pub fn auth(&self) -> &AuthOk {
        &self.auth
    }

    /// Sends one request on its own stream and waits for its answer.
    pub async fn request(&self, request: &Request) -> Result<Response, RequestError> {
        request_on(&self.connection, request).await
    }

    /// Starts a subscription; read its events with [`Subscription::next`].
    pub async fn subscribe(&self, request: SubscribeRequest) -> Result<Subscription, RequestError> {
        let (mut send, recv) = self.connection.open_bi().await.map_err(lost)?;
        send.write_all(&Request::Subscribe(request).to_frame())
            .await
            .map_err(lost)?;
        Ok(Subscription { _send: send, recv })
    }

    /// The underlying QUIC connection, for tests that speak raw frames.
    pub fn quic(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Closes the connection and waits until the relay has been told.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}

/// A live subscription's stream of events.
#[derive(Debug)]
pub struct Subscription {
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl Subscription {
    /// The next event; `None` once the relay finished the stream.
    pub async fn next(&mut self) -> Result<Option<SubscriptionEvent>, RequestError> {
        let body = match read_frame(&mut self.recv).await.map_err(frame_error) {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(None),
            // A relay that closes the connection (shutting down, revoked)
            // ends the subscription with that code.
            Err(RequestError::Closed(error)) => return Ok(Some(SubscriptionEvent::End(error))),
            Err(e) => return Err(e),
        };
        match Response::decode(&body).map_err(|e| RequestError::BadFrame(e.to_string()))? {
            Response::Subscription(event) => Ok(Some(event)),
            Response::Error(error) => Ok(Some(SubscriptionEvent::End(error))),
            other => Err(RequestError::BadFrame(format!("unexpected {other:?}"))),
        }
    }
}

/// The relay's refusal carried by a connection close, if it was one.
pub fn closed_by_relay(error: &quinn::ConnectionError) -> Option<WireError> {
    let quinn::ConnectionError::ApplicationClosed(close) = error else {
        return None;
    };
    let code = u16::try_from(close.error_code.into_inner()).unwrap_or(u16::MAX);
    Some(WireError::new(
        ErrorCode(code),
        &String::from_utf8_lossy(&close.reason),
    ))
}

/// Opens a QUIC connection pinned to `pin`, without authenticating.
pub async fn dial(
    addr: SocketAddr,
    pin: Fingerprint,
) -> Result<(quinn::Endpoint, quinn::Connection), ConnectError> {
    dial_named(addr, RELAY_NAME, pin).await
}

/// [`dial`] the relay named `host` at `addr`.
pub async fn dial_named(
    addr: SocketAddr,
    host: &str,
    pin: Fingerprint,
) -> Result<(quinn::Endpoint, quinn::Connection), ConnectError> {
    let unreachable = |reason: String| ConnectError::Unreachable { addr, reason };
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
    .parse()
    .map_err(|_| ConnectError::Tls("bad bind address".into()))?;
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| unreachable(e.to_string()))?;
    endpoint.set_default_client_config(client_config(pin, host)?);
    let connecting = endpoint
        .connect(addr, host)
        .map_err(|e| unreachable(e.to_string()))?;
    match connecting.await {
        Ok(connection) => Ok((endpoint, connection)),
        Err(e) if e.to_string().contains(MISMATCH) => {
            Err(ConnectError::FingerprintMismatch { pin })
        }
        Err(e) if e.to_string().contains(UNTRUSTED) => Err(ConnectError::Untrusted {
            host: host.to_owned(),
            reason: e.to_string().replace(&format!("{UNTRUSTED}: "), ""),
        }),
        Err(e) => Err(unreachable(e.to_string())),
    }
}

/// Sends `request` on a new stream of `connection` and reads one answer.
pub async fn request_on(
    connection: &quinn::Connection,
    request: &Request,
) -> Result<Response, RequestError> {
    let (mut send, mut recv) = connection.open_bi().await.map_err(lost)?;
    send.write_all(&request.to_frame()).await.map_err(lost)?;
    send.finish().map_err(lost)?;
    let body = read_frame(&mut recv)
        .await
        .map_err(frame_error)?
        .ok_or(RequestError::NoAnswer)?;
    Response::decode(&body).map_err(|e| RequestError::BadFrame(e.to_string()))
}

/// The connection's exporter keying material for the auth proof.
pub fn auth_exporter(
    connection: &quinn::Connection,
) -> Result<[u8; AUTH_EXPORTER_LEN], ConnectError> {
    let mut exporter = [0u8; AUTH_EXPORTER_LEN];
    connection
        .export_keying_material(&mut exporter, AUTH_EXPORTER_LABEL, b"")
        .map_err(|_| ConnectError::Tls("cannot export keying material".into()))?;
    Ok(exporter)
}

async fn authenticate(
    connection: &quinn::Connection,
    device_key: &SigningKey,
    certificate: DeviceCertificate,
    invite: Option<&str>,
) -> Result<AuthOk, ConnectError> {
    let proof = AuthRequest::prove(device_key, &auth_exporter(connection)?);
    let invite = invite.map(BoundedString::truncating);
    let request = Request::Authenticate(AuthRequest {
        certificate,
        proof,
        invite,
    });
    match first_answer(connection, &request).await? {
        Response::Authenticated(ok) => Ok(ok),
        other => Err(ConnectError::Protocol(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

/// The answer to the first request of a connection; a refusal, whether
/// answered or closed with, is the relay refusing the device.
async fn first_answer(
    connection: &quinn::Connection,
    request: &Request,
) -> Result<Response, ConnectError> {
    match request_on(connection, request).await {
        Ok(Response::Error(error)) => Err(ConnectError::Refused(error)),
        Ok(answer) => Ok(answer),
        // A relay that refuses by closing (a connection limit, or a close
        // that overtook the error frame) still says why.
        Err(RequestError::Closed(error)) => Err(ConnectError::Refused(error)),
        Err(e) => Err(ConnectError::Protocol(e.to_string())),
    }
}

fn client_config(pin: Fingerprint, host: &str) -> Result<quinn::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedVerifier::for_host(pin, host, provider.clone()).map_err(|reason| {
        ConnectError::Untrusted {
            host: host.to_owned(),
            reason,
        }
    })?;
    let verifier = Arc::new(verifier);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConnectError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(|e| ConnectError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(transport()));
    Ok(config)
}

/// The client's transport: keep-alives and the idle timeout, and nothing
/// the relay could fill that the client never reads. Every stream is the
/// client's own, so the relay may open none (quinn would buffer up to
/// 1.25 MB on each of 100 it let the relay open), and no datagrams (1.25
/// MB more): the relay is not trusted with the client's memory either.
fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport.max_idle_timeout(IDLE_TIMEOUT.try_into().ok());
    transport.max_concurrent_bidi_streams(0u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.datagram_receive_buffer_size(None);
    transport.datagram_send_buffer_size(0);
    transport
}

fn lost(e: impl Into<LostConnection>) -> RequestError {
    match e.into().0 {
        Some(error) => closed_or_lost(&error),
        None => RequestError::ConnectionLost("stream closed".into()),
    }
}

fn closed_or_lost(error: &quinn::ConnectionError) -> RequestError {
    closed_by_relay(error).map_or_else(
        || RequestError::ConnectionLost(error.to_string()),
        RequestError::Closed,
    )
}

fn frame_error(e: FrameReadError) -> RequestError {
    match e {
        FrameReadError::Read(quinn::ReadError::ConnectionLost(error)) => closed_or_lost(&error),
        FrameReadError::Read(e) => RequestError::ConnectionLost(e.to_string()),
        other => RequestError::BadFrame(other.to_string()),
    }
}

/// The connection error behind a stream operation's failure, if any.
struct LostConnection(Option<quinn::ConnectionError>);

impl From<quinn::ConnectionError> for LostConnection {
    fn from(e: quinn::ConnectionError) -> Self {
        Self(Some(e))
    }
}

impl From<quinn::WriteError> for LostConnection {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(e) => Self(Some(e)),
            _ => Self(None),
        }
    }
}

impl From<quinn::ClosedStream> for LostConnection {
    fn from(_: quinn::ClosedStream) -> Self {
        Self(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// quinn keeps its settings private; its `Debug` output is the one
    /// place they can be read back.
    fn setting(transport: &quinn::TransportConfig, name: &str) -> Option<String> {
        let text = format!("{transport:?}");
        let rest = text.split(&format!("{name}: ")).nth(1)?;
        Some(rest.split([',', ' ', '}']).next()?.to_owned())
    }

    #[test]
    fn the_relay_can_open_no_stream_and_send_no_datagram_to_a_client() {
        let transport = transport();
        for (name, value) in [
            ("max_concurrent_bidi_streams", "0"),
            ("max_concurrent_uni_streams", "0"),
            ("datagram_receive_buffer_size", "None"),
        ] {
            assert_eq!(setting(&transport, name).as_deref(), Some(value), "{name}");
        }
    }
}
