//! Known-answer vectors of the records clients seal into posts
//! (`spec/client.md` section 3), in `spec/vectors/client/records.json`.
//!
//! Every record is built here from fixed keys and fixed "random" bytes,
//! and the file must be exactly what this code generates. Each vector is
//! then decoded from the file's own bytes and must re-encode to them. The
//! fuzz target `record` is seeded from this file. After a deliberate
//! format change, rewrite it with
//! `CAIRN_REGENERATE_VECTORS=1 cargo test -p cairn-client --test records`.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::convert::Infallible;
use std::path::PathBuf;

use cairn_client::record::{FriendOp, Head, NoteOp, Record, RecordBody};
use cairn_crypto::{Audience, DeviceKeys, ExchangeSecret, Member, RootKey};
use cairn_wire::{BoundedVec, EnvelopeId};
use rand_core::{TryCryptoRng, TryRng};
use serde_json::{Value, json};

const TIMESTAMP_MS: u64 = 1_700_000_000_000;

/// Hands out 0, 1, 2, ... as its "random" bytes: every audience id and key
/// in the vectors is fixed.
struct CountingRng(u8);

impl TryRng for CountingRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for byte in dst {
            *byte = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

impl TryCryptoRng for CountingRng {}

fn pattern(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// Every kind of record, named.
fn records() -> Vec<(&'static str, Record)> {
    let alice = RootKey::from_bytes(&pattern(0x01));
    let device = DeviceKeys::from_parts(&pattern(0x21), ExchangeSecret::from_bytes(&pattern(0x41)));
    let bob = RootKey::from_bytes(&pattern(0x81));
    let bob_exchange = ExchangeSecret::from_bytes(&pattern(0xa1)).public_key();
    let certificate = alice.certify_device(device.device_id(), device.exchange_key(), TIMESTAMP_MS);
    let note = EnvelopeId::from_bytes(pattern(0xc1));
    let mut audience = Audience::new(&mut CountingRng(0), "close").unwrap();
    audience
        .add_member(Member {
            user: bob.user_id(),
            exchange_key: bob_exchange,
        })
        .unwrap();
    let record = |body| Record::new(certificate.clone(), body);
    let mut with_heads = record(RecordBody::Note(NoteOp::Add {
        text: "seen".into(),
    }));
    with_heads.seen = BoundedVec::new(vec![Head {
        device: DeviceKeys::from_parts(&pattern(0x31), ExchangeSecret::from_bytes(&pattern(0x51)))
            .device_id(),
        seq: 7,
        id: EnvelopeId::from_bytes(pattern(0xd1)),
    }])
    .unwrap();
    vec![
        (
            "note_add",
            record(RecordBody::Note(NoteOp::Add {
                text: "buy milk".into(),
            })),
        ),
        (
            "note_edit",
            record(RecordBody::Note(NoteOp::Edit {
                target: note,
                text: "buy oat milk".into(),
            })),
        ),
        (
            "note_remove",
            record(RecordBody::Note(NoteOp::Remove { target: note })),
        ),
        (
            "post",
            record(RecordBody::Post {
                text: "hello friends".into(),
            }),
        ),
        (
            "friend_add",
            record(RecordBody::Friend(FriendOp::Add {
                name: "bob".into(),
                user: bob.user_id(),
            })),
        ),
        (
            "friend_remove",
            record(RecordBody::Friend(FriendOp::Remove {
                user: bob.user_id(),
            })),
        ),
        ("audience", record(RecordBody::Audience(audience.clone()))),
        (
            "exchange_key",
            record(RecordBody::ExchangeKey(alice.announce_exchange_key(
                ExchangeSecret::from_bytes(&pattern(0x61)).public_key(),
                TIMESTAMP_MS,
            ))),
        ),
        (
            "device",
            record(RecordBody::Device {
                certificate: certificate.clone(),
                name: "laptop".into(),
            }),
        ),
        (
            "device_revoked",
            record(RecordBody::DeviceRevoked {
                revocation: alice.revoke_device(device.device_id(), TIMESTAMP_MS + 1),
                last_seq: 41,
            }),
        ),
        (
            "message",
            record(RecordBody::Message {
                text: "lunch?".into(),
            }),
        ),
        (
            "audience_deleted",
            record(RecordBody::AudienceDeleted {
                audience: audience.id(),
            }),
        ),
        ("note_add_with_heads", with_heads),
    ]
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/client/records.json")
}

#[test]
fn record_vectors_match_the_code_and_decode_to_themselves() {
    let made = records();
    let vectors: Vec<Value> = made
        .iter()
        .map(|(name, record)| json!({ "name": name, "hex": hex::encode(record.encode()) }))
        .collect();
    let doc = json!({
        "description": "Canonical postcard encodings of client records (spec/client.md section 3), \
                        one per RecordBody variant, built from fixed keys.",
        "records": vectors,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = vectors_path();
    if std::env::var("CAIRN_REGENERATE_VECTORS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
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
        let decoded = Record::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&decoded, record, "{name}");
        assert_eq!(decoded.encode(), bytes, "{name}");
    }
}

fn texts_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/client/texts.json")
}

/// What users paste or scan (`spec/client.md` sections 5 and 7): a link
/// code and a recovery code, from fixed keys; the fuzz target
/// `client_text` is seeded from this file.
#[test]
fn text_vectors_match_the_code_and_parse_to_themselves() {
    use std::str::FromStr;

    use cairn_client::{LinkCode, RecoveryCode};
    use cairn_crypto::LinkSecret;
    use cairn_wire::Fingerprint;

    let device = DeviceKeys::from_parts(&pattern(0x21), ExchangeSecret::from_bytes(&pattern(0x41)));
    let relay = Fingerprint::from_bytes(pattern(0x71));
    let link = LinkCode::new(
        &device,
        TIMESTAMP_MS,
        LinkSecret::from_bytes(pattern(0x91)),
        &relay,
        "phone",
    );
    let recovery = RecoveryCode::from_str(
        &bech32::encode::<bech32::Bech32m>(
            bech32::Hrp::parse("cairnroot").unwrap(),
            &pattern(0x01),
        )
        .unwrap(),
    )
    .unwrap();
    let doc = json!({
        "description": "Texts users paste or scan: a link code (spec/client.md section 5) for \
                        device keys 0x21../0x41.., relay fingerprint 0x71.., secret 0x91.., \
                        name \"phone\"; the recovery code of root key 0x01..; the relay fingerprint.",
        "link_code": link.to_string(),
        "recovery_code": recovery.reveal().unwrap().as_str(),
        "fingerprint": relay.to_string(),
    });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = texts_path();
    if std::env::var("CAIRN_REGENERATE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "texts.json differs from what the code generates; if the change is deliberate, \
         run with CAIRN_REGENERATE_VECTORS=1"
    );
    let file: Value = serde_json::from_str(&on_disk).unwrap();
    let link_text = file["link_code"].as_str().unwrap();
    assert_eq!(
        LinkCode::from_str(link_text).unwrap().to_string(),
        link_text
    );
    assert_eq!(
        LinkCode::from_str(&link_text.to_uppercase())
            .unwrap()
            .to_string(),
        link_text,
        "a QR code carries it upper case"
    );
    let recovery_text = file["recovery_code"].as_str().unwrap();
    assert_eq!(
        RecoveryCode::from_str(recovery_text)
            .unwrap()
            .reveal()
            .unwrap()
            .as_str(),
        recovery_text
    );
    let fingerprint = file["fingerprint"].as_str().unwrap();
    assert_eq!(
        Fingerprint::from_str(fingerprint).unwrap().to_string(),
        fingerprint
    );
}
