//! The scene every hostile scenario plays in: a relay process, an honest
//! user served at the same time, and a record of exactly what the relay
//! must have stored. The hostile peer itself is the kit's
//! [`cairn_testkit::raw`].
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use cairn_client::Connection;
use cairn_testkit::data::{assert_check_passes, export};
use cairn_testkit::metrics::Metrics;
pub use cairn_testkit::process::resident_bytes;
pub use cairn_testkit::raw::*;
pub use cairn_testkit::{Device, User};
use cairn_wire::*;
use tempfile::TempDir;

use super::{RelayProcess, WAIT};

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
        assert!(relay.is_running(), "the relay process exited");
        let _ = tokio::time::timeout(WAIT, honest.close()).await;
        let status = relay.stop();
        assert!(status.success(), "the relay exited with {status}");
        assert_check_passes(dir.path());
        let exported = export(dir.path());
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

fn sorted(mut items: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    items.sort();
    items
}

/// The value of a metric on the relay's admin listener.
pub async fn metric(relay: &RelayProcess, name: &str) -> f64 {
    Metrics::scrape_async(relay.admin).await.value(name)
}
