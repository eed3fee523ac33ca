//! What the operator of a relay can see: after notes and friend posts
//! carrying distinctive markers, neither the relay's database, nor a backup
//! or an export of it, nor its log at the most verbose level, nor its
//! metrics hold a marker, an audience epoch key or a post's content key.
//! (The traffic itself is QUIC, encrypted packet by packet: what the relay
//! learns from it is what it stores, logs and counts.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cairn_crypto::payload::{self, KeyWrap, PayloadBody};
use cairn_crypto::{AudienceKey, KeyGrant, KeyLookup, Keyring};
use cairn_wire::{Envelope, UserId};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use cli::{Home, Relay, Target, link};

/// The relay logs everything it can: its own crates at trace level.
const VERBOSE: &str = "debug,cairn_relay=trace,cairn_store=trace";
use serde_json::Value;
use tempfile::TempDir;

const NOTE_MARKER: &str = "zq-note-marker-7f3a9c0b";
const EDIT_MARKER: &str = "zq-edit-marker-1e6d2f48";
const POST_MARKER: &str = "zq-post-marker-41d2e8aa";
const ROTATED_MARKER: &str = "zq-rotated-marker-93b7c5d1";

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
fn the_relay_s_files_logs_and_metrics_hold_no_plaintext_and_no_key() {
    let mut relay = Relay::start_with_env(&[("RUST_LOG", VERBOSE)]);
    let target = relay.target.clone();
    let (alice, bob) = scenario(&relay, &target);

    // The markers are there on the clients' side.
    let notes = alice.json(&["note", "list"]).to_string();
    assert!(notes.contains(EDIT_MARKER), "{notes}");
    let feed = bob.json(&["feed"]).to_string();
    assert!(feed.contains(POST_MARKER), "{feed}");
    assert!(!feed.contains(ROTATED_MARKER), "bob was removed: {feed}");

    let out = TempDir::new().unwrap();
    let backup = out.path().join("relay.backup");
    relay.operate(&["backup", "--out", backup.to_str().unwrap()]);
    let (status, metrics) = relay.admin_get("/metrics");
    assert_eq!(status, 200);
    let log = relay.log();
    relay.terminate();
    let export = out.path().join("relay.export");
    relay.operate(&["export", "--out", export.to_str().unwrap()]);

    let database = std::fs::read(relay.data_dir().join("relay.redb")).unwrap();
    let backup = std::fs::read(&backup).unwrap();
    let export = std::fs::read(&export).unwrap();
    assert!(
        log.lines().count() > 10 && log.contains(&target.fingerprint),
        "the relay logged verbosely: {} lines",
        log.lines().count()
    );
    let (log, metrics) = (log.into_bytes(), metrics.into_bytes());
    let artifacts = [
        ("database", &database),
        ("backup", &backup),
        ("export", &export),
        ("log", &log),
        ("metrics", &metrics),
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
        assert!(keys.insert(owner, own.iter().cloned()).is_empty());
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

/// `cairn-relay ARGS...` on `relay`'s data directory; the exit code and
/// stdout and stderr together.
fn operate_status(relay: &Relay, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(support::relay_binary())
        .args(args)
        .arg("--data-dir")
        .arg(relay.data_dir())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

/// The operator removes a user: refused while their device is connected,
/// forced then; their data goes, their devices are disconnected and
/// refused, their friend carries on, and `check` stays clean. Offline, a
/// stopped relay's database is changed the same way.
#[test]
fn a_user_removed_by_the_operator_loses_their_data_and_is_refused() {
    let mut relay = Relay::start();
    let (alice, bob) = scenario(&relay, &relay.target);
    let alice_id = alice.json(&["whoami"])["user"].as_str().unwrap().to_owned();
    let users = |relay: &Relay| relay.operate(&["users", "--json"]);
    assert!(users(&relay).contains(&alice_id));
    // Live: connected and authenticated.
    let mut watch = alice.watch();
    let (code, refused) = operate_status(&relay, &["user", "remove", &alice_id]);
    assert_ne!(code, 0, "removed while connected: {refused}");
    assert!(refused.contains("--force"), "{refused}");
    assert!(users(&relay).contains(&alice_id), "nothing was removed");

    let said = relay.operate(&["user", "remove", &alice_id, "--force"]);
    assert!(said.contains(&format!("removed {alice_id}")), "{said}");
    assert!(said.contains("1 disconnected"), "{said}");
    let (code, message) = watch.exited();
    assert_eq!(code, Some(12), "{message}");
    assert!(message.contains("removed from the relay"), "{message}");
    assert!(message.contains("cairn relay set"), "the hint: {message}");
    let (code, message) = alice.fails(&["sync"]);
    assert_eq!(code, 12, "{message}");
    assert!(!users(&relay).contains(&alice_id), "{}", users(&relay));
    let again = relay.operate(&["user", "remove", &alice_id]);
    assert!(again.contains("removed before"), "{again}");
    bob.ok(&["sync"]);
    assert!(relay.log().contains("user removed by the operator"));

    let carol = Home::new();
    let carol_id = carol.init(&relay.target, "carol");
    carol.ok(&["note", "add", "soon gone"]);
    relay.terminate();
    let offline = relay.operate(&["user", "remove", &carol_id]);
    assert!(
        offline.contains("removed") && offline.contains("0 disconnected"),
        "{offline}"
    );
    let checked = relay.operate(&["check"]);
    assert!(checked.contains("database is consistent"), "{checked}");
    relay.restart();
    assert_eq!(carol.fails(&["sync"]).0, 12);
    bob.ok(&["sync"]);
}
