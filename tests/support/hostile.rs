//! A hostile peer speaking raw frames over real QUIC to a relay process,
//! and the scene every hostile scenario plays in: an honest user served at
//! the same time, and a record of exactly what the relay must have stored.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::process::Command;

use cairn_client::Connection;
use cairn_client::connection::{auth_exporter, dial};
use cairn_wire::frames::{FRAME_HEADER_LEN, frame_body_len};
use cairn_wire::*;
use quinn::{ReadExactError, RecvStream};
use tempfile::TempDir;

use super::{Device, RelayProcess, WAIT, now_ms, relay_binary};

/// A user's root key. Seeds differ from [`Device::new_user`]'s, so the two
/// never make the same key.
pub struct User {
    pub root: SigningKey,
    pub id: UserId,
    seed: u16,
}

impl User {
    pub fn new(seed: u16) -> Self {
        let mut root_seed = [0x3c; 32];
        root_seed[..2].copy_from_slice(&seed.to_be_bytes());
        let root = SigningKey::from_bytes(&root_seed);
        let id = UserId::from_bytes(root.verifying_key().to_bytes());
        Self { root, id, seed }
    }

    /// The user's device number `n`, certified by the root key.
    pub fn device(&self, n: u16) -> Device {
        let mut device_seed = [0xc3; 32];
        device_seed[..2].copy_from_slice(&self.seed.to_be_bytes());
        device_seed[2..4].copy_from_slice(&n.to_be_bytes());
        let key = SigningKey::from_bytes(&device_seed);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        Device {
            key,
            user: self.id,
            id,
            certificate: self.certify(id, now_ms()),
        }
    }

    /// A certificate for `device` signed by this user's root key.
    pub fn certify(&self, device: DeviceId, issued_ms: u64) -> DeviceCertificate {
        let body = DeviceCertificateBody::new(
            self.id,
            device,
            ExchangeKey::from_bytes([7; 32]),
            issued_ms,
        );
        DeviceCertificate::sign(body, &self.root)
    }

    pub fn revoke(&self, device: DeviceId) -> DeviceRevocation {
        DeviceRevocation::sign(
            DeviceRevocationBody::new(self.id, device, now_ms()),
            &self.root,
        )
    }

    pub fn grant(&self, friend: UserId) -> FriendGrant {
        FriendGrant::sign(FriendGrantBody::new(self.id, friend, now_ms()), &self.root)
    }
}

/// What came back on a request stream.
#[derive(Debug)]
pub enum Answer {
    /// One whole frame: its body as sent, and what it decodes to.
    Frame { body: Vec<u8>, response: Response },
    /// The stream ended without a frame.
    Finished,
    /// The relay reset the stream.
    Reset,
    /// The connection closed with this code before a frame arrived.
    Closed(ErrorCode),
}

impl Answer {
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
#[derive(Clone)]
pub struct RawConnection {
    _endpoint: quinn::Endpoint,
    pub quic: quinn::Connection,
}

impl RawConnection {
    /// Connects (pinned), without authenticating.
    pub async fn dial(relay: &RelayProcess) -> Self {
        let (endpoint, quic) = tokio::time::timeout(WAIT, dial(relay.addr, relay.fingerprint))
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
        let raw = Self::dial(relay).await;
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
pub struct RawSubscription {
    _send: quinn::SendStream,
    pub recv: RecvStream,
}

impl RawSubscription {
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

pub fn append_request(envelopes: Vec<Envelope>) -> Request {
    Request::Append(AppendRequest {
        envelopes: BoundedVec::new(envelopes).unwrap(),
    })
}

/// A relay process, an honest user (Alice, on her laptop, through the
/// client library) using it throughout, and what it must have stored.
pub struct Scene {
    pub relay: RelayProcess,
    dir: TempDir,
    pub alice: User,
    pub laptop: Device,
    pub honest: Connection,
    next_seq: u64,
    streams: BTreeMap<StreamId, Vec<Envelope>>,
    statements: Vec<Vec<u8>>,
}

impl Scene {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the relay with extra configuration variables; Alice connects
    /// and writes a note and a post.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new().unwrap();
        let relay = RelayProcess::spawn_with_env(dir.path(), "127.0.0.1:0".parse().unwrap(), env);
        let alice = User::new(1);
        let laptop = alice.device(1);
        let honest = connect(&relay, &laptop).await;
        let mut scene = Self {
            relay,
            dir,
            alice,
            laptop,
            honest,
            next_seq: 1,
            streams: BTreeMap::new(),
            statements: Vec::new(),
        };
        scene.expect_statement(scene.laptop.certificate.encode());
        scene.publish(Scope::Private, b"alice's note").await;
        scene.publish(Scope::Friends, b"alice's post").await;
        scene
    }

    /// Alice adds `friend` (grants them her friends stream, and lets them
    /// write to her); the grant must be applied.
    pub async fn alice_adds(&mut self, friend: UserId) {
        let grant = self.alice.grant(friend);
        let answer = self
            .honest_request(Request::GrantFriend(grant.clone()))
            .await;
        assert_eq!(answer, Response::Done, "alice's grant");
        self.expect_statement(grant.encode());
    }

    /// The relay's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Alice appends one envelope; it must be stored at the next position.
    pub async fn publish(&mut self, scope: Scope, payload: &[u8]) -> u64 {
        self.publish_batch(scope, &[payload]).await
    }

    /// Alice appends envelopes in one request; each must be stored at the
    /// next position. Returns the last one.
    pub async fn publish_batch(&mut self, scope: Scope, payloads: &[&[u8]]) -> u64 {
        let envelopes: Vec<Envelope> = payloads
            .iter()
            .map(|payload| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.laptop.envelope(seq, scope, payload)
            })
            .collect();
        let request = append_request(envelopes.clone());
        let answer = tokio::time::timeout(WAIT, self.honest.request(&request))
            .await
            .expect("the relay did not acknowledge an honest append in time")
            .unwrap();
        let Response::Appended(outcomes) = answer else {
            panic!("honest append answered with {answer:?}");
        };
        let mut last = 0;
        for (envelope, outcome) in envelopes.into_iter().zip(outcomes.as_slice()) {
            let expected = self.expect_stored(envelope.clone());
            match outcome {
                AppendOutcome::Stored(ack) => {
                    assert_eq!((ack.position, ack.id), (expected, envelope.id()))
                }
                other => panic!("honest append refused: {other:?}"),
            }
            last = expected;
        }
        last
    }

    /// Records an envelope someone had stored; returns the position it must
    /// have.
    pub fn expect_stored(&mut self, envelope: Envelope) -> u64 {
        let stream = self.streams.entry(envelope.stream()).or_default();
        stream.push(envelope);
        u64::try_from(stream.len()).unwrap()
    }

    /// Records a statement someone had applied.
    pub fn expect_statement(&mut self, encoding: Vec<u8>) {
        self.statements.push(encoding);
    }

    /// The head position Alice's stream `scope` must have.
    pub fn head(&self, scope: Scope) -> u64 {
        let stream = StreamId::new(self.alice.id, scope);
        self.streams
            .get(&stream)
            .map_or(0, |s| u64::try_from(s.len()).unwrap())
    }

    /// A request by Alice's laptop, through the client library.
    pub async fn honest_request(&self, request: Request) -> Response {
        tokio::time::timeout(WAIT, self.honest.request(&request))
            .await
            .expect("an honest request timed out")
            .unwrap()
    }

    /// Authenticates `device` of a user the relay has not seen, which
    /// registers that user; returns the connection.
    pub async fn newcomer(&mut self, device: &Device) -> RawConnection {
        let raw = RawConnection::authenticated(&self.relay, device).await;
        self.expect_statement(device.certificate.encode());
        raw
    }

    /// Alice is served as before: each of her streams reads back exactly as
    /// stored, and a new note is stored at the next position.
    pub async fn assert_honest_served(&mut self) {
        let own: Vec<StreamId> = self
            .streams
            .keys()
            .filter(|s| s.owner == self.alice.id)
            .copied()
            .collect();
        for stream in own {
            let stored = read_ids(&self.honest, stream).await;
            let expected: Vec<EnvelopeId> =
                self.streams[&stream].iter().map(Envelope::id).collect();
            assert_eq!(stored, expected, "alice's stream {stream:?} changed");
        }
        self.publish(Scope::Private, b"still served").await;
    }

    /// Checks that the relay is still up and serving Alice, stops it
    /// gracefully, and checks the data directory: consistent, and holding
    /// exactly the expected statements and envelopes at their positions.
    pub async fn finish(mut self) {
        self.assert_honest_served().await;
        let Self {
            mut relay,
            dir,
            honest,
            streams,
            statements,
            ..
        } = self;
        assert!(
            relay.child.try_wait().unwrap().is_none(),
            "the relay process exited"
        );
        let _ = tokio::time::timeout(WAIT, honest.close()).await;
        let status = relay.stop();
        assert!(status.success(), "the relay exited with {status}");
        assert_check_passes(&dir);
        let exported = export(&dir);
        assert_eq!(
            sorted(exported.statements),
            sorted(statements),
            "stored statements differ from those applied"
        );
        let expected: BTreeMap<StreamId, Vec<Vec<u8>>> = streams
            .into_iter()
            .map(|(stream, envelopes)| (stream, envelopes.iter().map(Envelope::encode).collect()))
            .collect();
        assert_eq!(
            exported.streams, expected,
            "stored envelopes differ from those acknowledged"
        );
    }
}

/// Connects through the client library.
pub async fn connect(relay: &RelayProcess, device: &Device) -> Connection {
    let open = Connection::open(
        relay.addr,
        relay.fingerprint,
        &device.key,
        device.certificate.clone(),
        None,
    );
    tokio::time::timeout(WAIT, open)
        .await
        .expect("connect timed out")
        .unwrap()
}

/// Every envelope id of a stream, in position order, which must be gap-free.
pub async fn read_ids(connection: &Connection, stream: StreamId) -> Vec<EnvelopeId> {
    let mut ids = Vec::new();
    loop {
        let after = u64::try_from(ids.len()).unwrap();
        let request = Request::Read(ReadRequest {
            stream,
            after,
            limit: 4096,
        });
        let answer = tokio::time::timeout(WAIT, connection.request(&request))
            .await
            .expect("read timed out")
            .unwrap();
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

fn assert_check_passes(dir: &TempDir) {
    let check = Command::new(relay_binary())
        .arg("check")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "cairn-relay check failed: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// What `cairn-relay export` found in a data directory.
struct Exported {
    statements: Vec<Vec<u8>>,
    streams: BTreeMap<StreamId, Vec<Vec<u8>>>,
}

fn export(dir: &TempDir) -> Exported {
    let output = Command::new(relay_binary())
        .args(["export", "--out", "-", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cairn-relay export failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut exported = Exported {
        statements: Vec::new(),
        streams: BTreeMap::new(),
    };
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = || hex::decode(line["hex"].as_str().unwrap()).unwrap();
        match line["type"].as_str().unwrap() {
            "statement" => exported.statements.push(bytes()),
            "envelope" => {
                let encoding = bytes();
                let stream = Envelope::decode(&encoding).unwrap().stream();
                let entries = exported.streams.entry(stream).or_default();
                entries.push(encoding);
                assert_eq!(
                    line["position"].as_u64(),
                    Some(u64::try_from(entries.len()).unwrap()),
                    "export positions of {stream:?} are not consecutive"
                );
            }
            "header" | "end" => {}
            other => panic!("unknown export line type {other}"),
        }
    }
    exported
}

fn sorted(mut items: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    items.sort();
    items
}

/// The value of an unlabelled metric on the relay's admin listener.
pub async fn metric(relay: &RelayProcess, name: &str) -> f64 {
    let url = format!("http://{}/metrics", relay.admin);
    let text = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(WAIT))
            .build()
            .into();
        agent
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    text.lines()
        .filter_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0.0)
}

/// The resident memory of a process, where the platform tells.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
