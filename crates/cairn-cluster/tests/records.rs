//! Known-answer vectors of the log's records (`spec/cluster.md` section 2),
//! in `spec/vectors/cluster/records.json`: one per record variant, built
//! from fixed keys. The file must be exactly what this code generates;
//! each vector decodes from the file's bytes to the record it names and
//! re-encodes to them, and the invalid ones are refused. The fuzz target
//! `log_record` is seeded from this file. After a deliberate format
//! change, rewrite it with
//! `CAIRN_REGENERATE_VECTORS=1 cargo test -p cairn-cluster --test records`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use cairn_cluster::MAX_RECORD_LEN;
use cairn_cluster::record::{Body, InviteRecord, LogRecord, Origin, StatementRecord};
use cairn_testkit::User;
use cairn_wire::{BoundedVec, Cursor, LogId, Scope, StreamId};
use serde_json::{Value, json};

const AT_MS: u64 = 1_793_500_000_000;

/// Every kind of record, named.
fn records() -> Vec<(&'static str, LogRecord)> {
    let alice = User::in_domain(50, 0);
    let bob = User::in_domain(50, 1);
    let phone = alice.device(1);
    let origin = Origin {
        process: 0x0123_4567_89ab_cdef,
        request: 42,
    };
    let record = |body| LogRecord { origin, body };
    let envelopes = vec![
        phone.envelope(1, Scope::Private, b"a note"),
        phone.envelope(2, Scope::Friends, b"a post"),
    ];
    vec![
        (
            "genesis",
            LogRecord {
                origin: Origin {
                    process: 0,
                    request: 0,
                },
                body: Body::Genesis {
                    log: LogId::from_bytes([0x11; 16]),
                    schema: 4,
                },
            },
        ),
        (
            "append",
            record(Body::Append {
                envelopes: BoundedVec::new(envelopes).unwrap(),
                quota_bytes: 1 << 30,
                quota_envelopes: 1_000_000,
            }),
        ),
        (
            "certificate",
            record(Body::Statement(StatementRecord::Certificate(
                alice.certify(phone.id, AT_MS),
            ))),
        ),
        (
            "device_revocation",
            record(Body::Statement(StatementRecord::DeviceRevocation(
                alice.revoke_at(phone.id, AT_MS),
            ))),
        ),
        (
            "grant",
            record(Body::Statement(StatementRecord::Grant(
                alice.grant_at(bob.id, AT_MS),
            ))),
        ),
        (
            "friend_revocation",
            record(Body::Statement(StatementRecord::FriendRevocation(
                alice.unfriend_at(bob.id, AT_MS),
            ))),
        ),
        (
            "ack",
            record(Body::Ack {
                device: phone.id,
                cursor: Cursor {
                    stream: StreamId::new(alice.id, Scope::Friends),
                    position: 7,
                },
            }),
        ),
        (
            "remove_user",
            record(Body::RemoveUser {
                user: bob.id,
                at_ms: AT_MS,
            }),
        ),
        (
            "expire",
            record(Body::Expire {
                friends_before_ms: Some(AT_MS - 86_400_000),
                direct_before_ms: None,
                budget: 10_000,
            }),
        ),
        (
            "ban",
            record(Body::Ban {
                device: phone.id,
                at_ms: AT_MS,
            }),
        ),
        ("unban", record(Body::Unban(phone.id))),
        (
            "invite_create",
            record(Body::Invite(InviteRecord::Create {
                id: [0x22; 32],
                uses_left: 3,
                expires_ms: AT_MS + 604_800_000,
                created_ms: AT_MS,
            })),
        ),
        (
            "invite_revoke",
            record(Body::Invite(InviteRecord::Revoke([0x22; 32]))),
        ),
        (
            "invite_redeem",
            record(Body::Invite(InviteRecord::Redeem {
                id: [0x22; 32],
                at_ms: AT_MS,
            })),
        ),
    ]
}

/// Byte strings that are no record, each with why.
fn invalid(valid: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut trailing = valid.to_vec();
    trailing.push(0);
    let mut unknown_variant = valid.to_vec();
    // origin: two one-byte varints (0, 0) in the genesis vector, then the
    // variant: 9 is past the last one.
    unknown_variant[2] = 9;
    vec![
        ("empty", vec![]),
        ("trailing byte", trailing),
        ("unknown variant", unknown_variant),
        ("truncated", valid[..valid.len() - 1].to_vec()),
        ("too large", vec![0; MAX_RECORD_LEN + 1]),
    ]
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/cluster/records.json")
}

#[test]
fn record_vectors_match_the_code_and_decode_to_themselves() {
    let made = records();
    let genesis = made[0].1.encode();
    let valid: Vec<Value> = made
        .iter()
        .map(|(name, record)| json!({ "name": name, "hex": hex::encode(record.encode()) }))
        .collect();
    let refused: Vec<Value> = invalid(&genesis)
        .iter()
        .filter(|(name, _)| *name != "too large")
        .map(|(name, bytes)| json!({ "name": name, "hex": hex::encode(bytes) }))
        .collect();
    let doc = json!({
        "description": "Canonical postcard encodings of the records of a cluster's log \
                        (spec/cluster.md section 2), one per variant, built from fixed keys; \
                        and byte strings that are no record.",
        "records": valid,
        "invalid": refused,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = vectors_path();
    if std::env::var("CAIRN_REGENERATE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "records.json differs from what the code generates; if the change is deliberate, \
         run with CAIRN_REGENERATE_VECTORS=1"
    );
    let file: Value = serde_json::from_str(&on_disk).unwrap();
    for ((name, record), vector) in made.iter().zip(file["records"].as_array().unwrap()) {
        let bytes = hex::decode(vector["hex"].as_str().unwrap()).unwrap();
        let decoded = LogRecord::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&decoded, record, "{name}");
        assert_eq!(decoded.encode(), bytes, "{name}");
        // Every record makes a store write.
        let _ = decoded.body.to_write();
    }
}

#[test]
fn what_is_no_record_is_refused() {
    let genesis = records()[0].1.encode();
    for (name, bytes) in invalid(&genesis) {
        assert!(LogRecord::decode(&bytes).is_err(), "{name} decoded");
    }
}
