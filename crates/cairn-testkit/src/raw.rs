//! A peer that speaks raw frames over real QUIC to a relay: it writes
//! whatever bytes a test likes and reads answers frame by frame; and the
//! client library's connection, with bounded waits, for the honest side.

use std::net::SocketAddr;

use cairn_client::Connection;
use cairn_client::connection::{auth_exporter, dial};
use cairn_wire::frames::{FRAME_HEADER_LEN, frame_body_len};
use cairn_wire::*;
use quinn::{ReadExactError, RecvStream};

use crate::{Device, RelayProcess, WAIT};

/// What came back on a request stream.
#[derive(Debug)]
pub enum Answer {
    /// One whole frame: its body as sent, and what it decodes to.
    Frame {
        /// The frame body as sent.
        body: Vec<u8>,
        /// What it decodes to.
        response: Response,
    },
    /// The stream ended without a frame.
    Finished,
    /// The relay reset the stream.
    Reset,
    /// The connection closed with this code before a frame arrived.
    Closed(ErrorCode),
}

impl Answer {
    /// The decoded frame.
    pub fn response(&self) -> &Response {
        match self {
            Self::Frame { response, .. } => response,
            other => panic!("expected an answer frame, got {other:?}"),
        }
    }

    /// The code of an error frame.
    pub fn error_code(&self) -> ErrorCode {
        match self.response() {
            Response::Error(error) => error.code,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    /// The answer frame's exact bytes.
    pub fn body(&self) -> &[u8] {
        match self {
            Self::Frame { body, .. } => body,
            other => panic!("expected an answer frame, got {other:?}"),
        }
    }

    /// The outcomes of an append.
    pub fn outcomes(&self) -> &[AppendOutcome] {
        match self.response() {
            Response::Appended(outcomes) => outcomes.as_slice(),
            other => panic!("expected append outcomes, got {other:?}"),
        }
    }

    /// The positions of a page.
    pub fn positions(&self) -> Vec<u64> {
        match self.response() {
            Response::Page(page) => page.entries.iter().map(|e| e.position).collect(),
            other => panic!("expected a page, got {other:?}"),
        }
    }
}

/// Reads the next frame of a stream the relay writes, bounded by [`WAIT`].
pub async fn read_answer(recv: &mut RecvStream) -> Answer {
    tokio::time::timeout(WAIT, read_frame(recv))
        .await
        .expect("the relay neither answered nor ended the stream")
}

async fn read_frame(recv: &mut RecvStream) -> Answer {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Answer::Finished,
        Err(ReadExactError::FinishedEarly(n)) => panic!("the relay sent {n} bytes of a prefix"),
        Err(ReadExactError::ReadError(e)) => return stream_failure(e),
    }
    let len = frame_body_len(header).expect("the relay sent an oversized frame");
    let mut body = vec![0; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(n)) => panic!("the relay cut a frame at {n} bytes"),
        Err(ReadExactError::ReadError(e)) => return stream_failure(e),
    }
    let response = Response::decode(&body).expect("the relay sent an invalid frame");
    Answer::Frame { body, response }
}

fn stream_failure(error: quinn::ReadError) -> Answer {
    match error {
        quinn::ReadError::Reset(_) => Answer::Reset,
        quinn::ReadError::ConnectionLost(lost) => {
            Answer::Closed(close_code(&lost).unwrap_or_else(|| panic!("connection lost: {lost}")))
        }
        other => panic!("stream failed: {other}"),
    }
}

/// The catalogue code of an application close.
pub fn close_code(error: &quinn::ConnectionError) -> Option<ErrorCode> {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => Some(ErrorCode(
            u16::try_from(close.error_code.into_inner()).unwrap(),
        )),
        _ => None,
    }
}

/// A QUIC connection to a relay on which the test writes whatever bytes it
/// likes.
#[derive(Debug, Clone)]
pub struct RawConnection {
    _endpoint: quinn::Endpoint,
    /// The QUIC connection.
    pub quic: quinn::Connection,
}

impl RawConnection {
    /// Connects to a relay process (pinned), without authenticating.
    pub async fn dial(relay: &RelayProcess) -> Self {
        Self::dial_to(relay.addr, relay.fingerprint).await
    }

    /// Connects to `addr` pinned to `fingerprint`, without authenticating.
    pub async fn dial_to(addr: SocketAddr, fingerprint: Fingerprint) -> Self {
        let (endpoint, quic) = tokio::time::timeout(WAIT, dial(addr, fingerprint))
            .await
            .expect("dial timed out")
            .unwrap();
        Self {
            _endpoint: endpoint,
            quic,
        }
    }

    /// Connects and authenticates as `device`, which must be admitted.
    pub async fn authenticated(relay: &RelayProcess, device: &Device) -> Self {
        Self::authenticated_to(relay.addr, relay.fingerprint, device).await
    }

    /// Like [`RawConnection::authenticated`], to any relay.
    pub async fn authenticated_to(
        addr: SocketAddr,
        fingerprint: Fingerprint,
        device: &Device,
    ) -> Self {
        let raw = Self::dial_to(addr, fingerprint).await;
        match raw
            .request(&raw.authenticate_request(device))
            .await
            .response()
        {
            Response::Authenticated(ok) => assert_eq!(ok.device, device.id),
            other => panic!("authentication refused: {other:?}"),
        }
        raw
    }

    /// An honest proof by `key` over this connection's keying material.
    pub fn proof(&self, key: &SigningKey) -> Signature {
        AuthRequest::prove(key, &auth_exporter(&self.quic).unwrap())
    }

    /// The authenticate request `device` would send on this connection.
    pub fn authenticate_request(&self, device: &Device) -> Request {
        Request::Authenticate(AuthRequest {
            certificate: device.certificate.clone(),
            proof: self.proof(&device.key),
            invite: None,
        })
    }

    /// Sends a request frame on a new stream and reads the answer.
    pub async fn request(&self, request: &Request) -> Answer {
        self.send(&request.to_frame()).await
    }

    /// Sends `bytes` on a new stream, finishes it, and reads the answer.
    pub async fn send(&self, bytes: &[u8]) -> Answer {
        let (mut send, mut recv) = self.open().await;
        send.write_all(bytes).await.unwrap();
        send.finish().unwrap();
        read_answer(&mut recv).await
    }

    /// Sends `bytes` on a new stream that stays open while the answer is
    /// read: whatever the relay answers, it answered without more bytes.
    pub async fn send_unfinished(&self, bytes: &[u8]) -> Answer {
        let (mut send, mut recv) = self.open().await;
        send.write_all(bytes).await.unwrap();
        let answer = read_answer(&mut recv).await;
        drop(send);
        answer
    }

    /// Starts a subscription and reads its events one by one.
    pub async fn subscribe(&self, request: SubscribeRequest) -> RawSubscription {
        let (mut send, recv) = self.open().await;
        send.write_all(&Request::Subscribe(request).to_frame())
            .await
            .unwrap();
        RawSubscription { _send: send, recv }
    }

    /// Appends and returns the outcomes.
    pub async fn append(&self, envelopes: Vec<Envelope>) -> Vec<AppendOutcome> {
        self.request(&append_request(envelopes))
            .await
            .outcomes()
            .to_vec()
    }

    /// Reads a page of `stream` after `after`.
    pub async fn read(&self, stream: StreamId, after: u64) -> Answer {
        self.request(&Request::Read(ReadRequest {
            stream,
            after,
            limit: 4096,
        }))
        .await
    }

    /// Waits (bounded) until the relay closes the connection; its code.
    pub async fn closed_with(&self) -> ErrorCode {
        let reason = tokio::time::timeout(WAIT, self.quic.closed())
            .await
            .expect("the relay did not close the connection");
        close_code(&reason).unwrap_or_else(|| panic!("expected an application close, got {reason}"))
    }

    /// Whether the connection is still up.
    pub fn is_open(&self) -> bool {
        self.quic.close_reason().is_none()
    }

    /// Opens a request stream, waiting (bounded) for stream credit.
    pub async fn open(&self) -> (quinn::SendStream, RecvStream) {
        tokio::time::timeout(WAIT, self.quic.open_bi())
            .await
            .expect("no stream credit")
            .unwrap()
    }
}

/// A subscription read frame by frame, or not at all.
#[derive(Debug)]
pub struct RawSubscription {
    _send: quinn::SendStream,
    /// The stream the relay writes events to.
    pub recv: RecvStream,
}

impl RawSubscription {
    /// The next frame.
    pub async fn next(&mut self) -> Answer {
        read_answer(&mut self.recv).await
    }

    /// Reads until the backlog is over; returns its positions.
    pub async fn until_live(&mut self) -> Vec<u64> {
        let mut positions = Vec::new();
        loop {
            match self.next().await.response() {
                Response::Subscription(SubscriptionEvent::Entries(entries)) => {
                    positions.extend(entries.iter().map(|e| e.position))
                }
                Response::Subscription(SubscriptionEvent::Live { position }) => {
                    assert_eq!(Some(position), positions.last().or(Some(&0)));
                    return positions;
                }
                other => panic!("unexpected subscription event {other:?}"),
            }
        }
    }

    /// Reads entries until `last` has arrived; returns their positions.
    pub async fn until_position(&mut self, last: u64) -> Vec<u64> {
        let mut positions = Vec::new();
        while positions.last().is_none_or(|p| *p < last) {
            match self.next().await.response() {
                Response::Subscription(SubscriptionEvent::Entries(entries)) => {
                    positions.extend(entries.iter().map(|e| e.position))
                }
                Response::Subscription(SubscriptionEvent::Live { .. }) => {}
                other => panic!("unexpected subscription event {other:?}"),
            }
        }
        positions
    }
}

/// An append request.
pub fn append_request(envelopes: Vec<Envelope>) -> Request {
    Request::Append(AppendRequest {
        envelopes: BoundedVec::new(envelopes).unwrap(),
    })
}

/// Connects through the client library as `device` (bounded).
pub async fn connect(relay: &RelayProcess, device: &Device) -> Connection {
    connect_to(relay.addr, relay.fingerprint, device).await
}

/// Connects through the client library to any relay (bounded).
pub async fn connect_to(addr: SocketAddr, fingerprint: Fingerprint, device: &Device) -> Connection {
    try_connect_to(addr, fingerprint, device, None)
        .await
        .unwrap()
}

/// Connects with an optional invite; the relay's refusal, or a connect that
/// takes longer than [`WAIT`], is returned as an error.
pub async fn try_connect_to(
    addr: SocketAddr,
    fingerprint: Fingerprint,
    device: &Device,
    invite: Option<&str>,
) -> Result<Connection, cairn_client::ConnectError> {
    let open = Connection::open(
        addr,
        fingerprint,
        &device.key,
        device.certificate.clone(),
        invite,
    );
    match tokio::time::timeout(WAIT, open).await {
        Ok(result) => result,
        Err(_) => Err(cairn_client::ConnectError::Protocol(
            "connect timed out".into(),
        )),
    }
}

/// Sends a request on the client library's connection (bounded).
pub async fn request(connection: &Connection, request: &Request) -> Response {
    tokio::time::timeout(WAIT, connection.request(request))
        .await
        .expect("request timed out")
        .unwrap()
}

/// Every envelope id of a stream, in position order, which must be gap-free.
pub async fn read_ids(connection: &Connection, stream: StreamId) -> Vec<EnvelopeId> {
    let mut ids = Vec::new();
    loop {
        let after = u64::try_from(ids.len()).unwrap();
        let answer = request(
            connection,
            &Request::Read(ReadRequest {
                stream,
                after,
                limit: 4096,
            }),
        )
        .await;
        let Response::Page(page) = answer else {
            panic!("read answered with {answer:?}");
        };
        for (expected, entry) in (after + 1..).zip(page.entries.iter()) {
            assert_eq!(entry.position, expected, "a gap in {stream:?}");
            ids.push(entry.envelope.id());
        }
        if !page.more {
            return ids;
        }
    }
}
