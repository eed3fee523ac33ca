//! What the operator of a relay can see: after notes and friend posts
//! carrying distinctive markers, neither the relay's database, nor a backup
//! or an export of it, nor a capture of its traffic holds a marker, an
//! audience epoch key or a post's content key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_crypto::payload::{self, KeyWrap, PayloadBody};
use cairn_crypto::{AudienceKey, KeyGrant, KeyLookup, Keyring};
use cairn_wire::{Envelope, UserId};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cli::{Home, Relay, Target, link};
use serde_json::Value;
use tempfile::TempDir;

const NOTE_MARKER: &str = "zq-note-marker-7f3a9c0b";
const EDIT_MARKER: &str = "zq-edit-marker-1e6d2f48";
const POST_MARKER: &str = "zq-post-marker-41d2e8aa";
const ROTATED_MARKER: &str = "zq-rotated-marker-93b7c5d1";

/// How long a proxy socket blocks before checking whether to stop.
const POLL: Duration = Duration::from_millis(50);

/// Datagrams as the proxy forwarded them.
#[derive(Default)]
struct Capture {
    to_relay: Vec<Vec<u8>>,
    to_clients: Vec<Vec<u8>>,
}

/// A loopback UDP forwarder between clients and a relay that records
/// every datagram both ways. Each client address gets its own upstream
/// socket, so the relay sees one peer per client, as without the proxy.
struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    capture: Arc<Mutex<Capture>>,
    front: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    fn start(relay: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(POLL)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let capture = Arc::new(Mutex::new(Capture::default()));
        let addr = socket.local_addr().unwrap();
        let (stop_front, capture_front) = (stop.clone(), capture.clone());
        let front =
            std::thread::spawn(move || forward_front(&socket, relay, &stop_front, &capture_front));
        Self {
            addr,
            stop,
            capture,
            front: Some(front),
        }
    }

    /// Stops forwarding; returns what was captured.
    fn finish(mut self) -> Capture {
        self.stop.store(true, Ordering::Relaxed);
        let upstreams = self.front.take().unwrap().join().unwrap();
        for upstream in upstreams {
            upstream.join().unwrap();
        }
        std::mem::take(&mut *self.capture.lock().unwrap())
    }
}

/// Client to relay: one upstream socket (and its return thread) per
/// client address. Returns the return threads once stopped.
fn forward_front(
    socket: &UdpSocket,
    relay: SocketAddr,
    stop: &Arc<AtomicBool>,
    capture: &Arc<Mutex<Capture>>,
) -> Vec<JoinHandle<()>> {
    let mut upstreams: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut threads = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, client)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let datagram = &buffer[..len];
        capture.lock().unwrap().to_relay.push(datagram.to_vec());
        let upstream = upstreams.entry(client).or_insert_with(|| {
            let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
            upstream.connect(relay).unwrap();
            upstream.set_read_timeout(Some(POLL)).unwrap();
            let back = (upstream.try_clone().unwrap(), socket.try_clone().unwrap());
            let (stop, capture) = (stop.clone(), capture.clone());
            threads.push(std::thread::spawn(move || {
                forward_back(&back.0, &back.1, client, &stop, &capture);
            }));
            upstream
        });
        let _ = upstream.send(datagram);
    }
    threads
}

/// Relay to one client.
fn forward_back(
    upstream: &UdpSocket,
    front: &UdpSocket,
    client: SocketAddr,
    stop: &AtomicBool,
    capture: &Mutex<Capture>,
) {
    let mut buffer = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok(len) = upstream.recv(&mut buffer) else {
            continue;
        };
        capture
            .lock()
            .unwrap()
            .to_clients
            .push(buffer[..len].to_vec());
        let _ = front.send_to(&buffer[..len], client);
    }
}

/// The post key of `wrap`, unwrapped as `spec/crypto.md` describes it
/// (XChaCha20-Poly1305 under the epoch key; associated data: domain, zero
/// byte, audience id, epoch big-endian, header encoding). The tag check
/// proves the key right.
fn unwrap_post_key(key: &AudienceKey, wrap: &KeyWrap, envelope: &Envelope) -> Option<[u8; 32]> {
    let mut ad = b"cairn/post-key-wrap/v1\0".to_vec();
    ad.extend_from_slice(wrap.audience.as_bytes());
    ad.extend_from_slice(&wrap.epoch.0.to_be_bytes());
    ad.extend_from_slice(&envelope.header().encode());
    let mut post_key = wrap.wrapped_key;
    XChaCha20Poly1305::new(&(*key.as_bytes()).into())
        .decrypt_inout_detached(
            &XNonce::from(wrap.nonce),
            &ad,
            post_key.as_mut_slice().into(),
            &wrap.tag.into(),
        )
        .ok()?;
    Some(post_key)
}

/// The envelopes of an export file.
fn exported_envelopes(export: &[u8]) -> Vec<Envelope> {
    std::str::from_utf8(export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["type"] == "envelope")
        .map(|line| Envelope::decode(&hex::decode(line["hex"].as_str().unwrap()).unwrap()).unwrap())
        .collect()
}

/// The content keys of every post in `envelopes` that `keys` open, with
/// each post's plaintext.
fn post_keys(envelopes: &[Envelope], keys: &Keyring) -> Vec<([u8; 32], Vec<u8>)> {
    let mut out = Vec::new();
    for envelope in envelopes {
        let decoded = payload::decode(envelope.payload().as_slice()).unwrap();
        let PayloadBody::Post(post) = decoded.body() else {
            continue;
        };
        let author = envelope.header().author;
        let unwrapped = post.wraps.iter().find_map(|wrap| {
            let key = keys.audience_key(&author, &wrap.audience, wrap.epoch)?;
            unwrap_post_key(key, wrap, envelope)
        });
        if let Some(post_key) = unwrapped {
            let plaintext = cairn_crypto::open_envelope(envelope, keys).unwrap();
            out.push((post_key, plaintext));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether `artifact` holds `secret` raw or hex-encoded (the export
/// format is hex).
fn leaks(artifact: &[u8], secret: &[u8]) -> bool {
    contains(artifact, secret) || contains(artifact, hex::encode(secret).as_bytes())
}

/// Alice (two devices) and bob, friends, through `target`: notes with
/// markers, and posts to two audiences, one rotated after removing bob.
fn scenario(relay: &Relay, target: &Target) -> (Home, Home) {
    let (alice, phone, bob) = (Home::new(), Home::new(), Home::new());
    let a = alice.init(target, "alice");
    link(target, &alice, &phone, "phone");
    let b = bob.init(target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    let note = alice.json(&["note", "add", &format!("{NOTE_MARKER} in a note")]);
    phone.ok(&["sync"]);
    let id = note["id"].as_str().unwrap();
    phone.ok(&["note", "edit", id, &format!("{EDIT_MARKER} in an edit")]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);
    alice.ok(&["audience", "create", "family", "--member", "bob"]);
    alice.ok(&["post", "--to", "close", &format!("{POST_MARKER} to close")]);
    alice.ok(&["audience", "remove", "family", "bob"]);
    alice.ok(&[
        "post",
        "--to",
        "family",
        &format!("{ROTATED_MARKER} after rotation"),
    ]);
    for home in [&alice, &phone, &bob] {
        home.ok(&["sync"]);
    }
    assert_eq!(relay.admin_get("/healthz").0, 200);
    (alice, bob)
}

#[test]
fn the_relay_s_files_and_traffic_hold_no_plaintext_and_no_key() {
    let mut relay = Relay::start();
    let proxy = Proxy::start(relay.addr);
    let target = Target {
        addr: proxy.addr.to_string(),
        fingerprint: relay.target.fingerprint.clone(),
    };
    let (alice, bob) = scenario(&relay, &target);

    // The markers are there on the clients' side.
    let notes = alice.json(&["note", "list"]).to_string();
    assert!(notes.contains(EDIT_MARKER), "{notes}");
    let feed = bob.json(&["feed"]).to_string();
    assert!(feed.contains(POST_MARKER), "{feed}");
    assert!(!feed.contains(ROTATED_MARKER), "bob was removed: {feed}");

    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    let admin = relay.admin.to_string();
    relay.operate(&[
        "backup",
        "--admin-listen",
        &admin,
        "--out",
        backup.to_str().unwrap(),
    ]);
    relay.terminate();
    let capture = proxy.finish();
    let export = out.path().join("relay.export");
    relay.operate(&["export", "--out", export.to_str().unwrap()]);

    let database = std::fs::read(relay.data_dir().join("relay.redb")).unwrap();
    let backup = std::fs::read(&backup).unwrap();
    let export = std::fs::read(&export).unwrap();
    let traffic: Vec<u8> = capture
        .to_relay
        .iter()
        .chain(&capture.to_clients)
        .flatten()
        .copied()
        .collect();
    assert!(
        capture.to_relay.len() > 100 && capture.to_clients.len() > 100,
        "the proxy carried the clients' traffic"
    );
    let artifacts = [
        ("database", &database),
        ("backup", &backup),
        ("export", &export),
        ("traffic", &traffic),
    ];

    // The searches can succeed: the relay's files do hold alice's user id.
    let alice_id: UserId = alice.json(&["whoami"])["user"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (name, artifact) in &artifacts[..3] {
        assert!(
            leaks(artifact, alice_id.as_bytes()),
            "{name} names alice's user"
        );
    }

    // The keys, from the clients' own state.
    let bob_id: UserId = bob.json(&["whoami"])["user"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut keys = Keyring::new();
    let mut grants: Vec<(UserId, KeyGrant)> = Vec::new();
    for (owner, home) in [(alice_id, &alice), (bob_id, &bob)] {
        let own = home.client().own_audience_keys().unwrap();
        keys.insert(owner, own.iter().cloned());
        grants.extend(own.into_iter().map(|grant| (owner, grant)));
    }
    // alice: private, close, family at epochs 0 and 1; bob: private.
    assert_eq!(keys.len(), 5);
    let contents = post_keys(&exported_envelopes(&export), &keys);
    let markers = [NOTE_MARKER, EDIT_MARKER, POST_MARKER, ROTATED_MARKER];
    for marker in markers {
        assert!(
            contents
                .iter()
                .any(|(_, plain)| contains(plain, marker.as_bytes())),
            "the export holds {marker}, encrypted"
        );
    }

    let mut secrets: Vec<(String, Vec<u8>)> = markers
        .iter()
        .map(|m| (format!("marker {m}"), m.as_bytes().to_vec()))
        .collect();
    for (owner, grant) in &grants {
        let name = format!("epoch key {owner:?}/{}/{}", grant.audience, grant.epoch);
        secrets.push((name, grant.key.as_bytes().to_vec()));
    }
    for (i, (post_key, _)) in contents.iter().enumerate() {
        secrets.push((format!("content key of post {i}"), post_key.to_vec()));
    }
    for (name, artifact) in &artifacts {
        for (secret_name, secret) in &secrets {
            assert!(
                !leaks(artifact, secret),
                "the {name} holds the {secret_name}"
            );
        }
    }
    // Nor does alice's own store hold them in the clear.
    let store = std::fs::read(alice.path().join(cairn_client::STORE_FILE)).unwrap();
    for (secret_name, secret) in &secrets {
        assert!(
            !contains(&store, secret),
            "alice's store holds the {secret_name} in the clear"
        );
    }
}
