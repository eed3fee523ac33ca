//! The folds (notes, friends, audiences, feed, direct messages) take any
//! sequence of records that friends and the user's other devices wrote,
//! in any order, without panicking, and fold them the same whatever the
//! arrival order.
//!
//! Input: records one after another, each as
//! `author (1) | device (1) | scope (1) | seq (1) | time (2) | audience (1) | len (2, BE) | record bytes`.
//! Authors and devices are picked among a few fixed ones (author 0 is the
//! reader), so that records name each other.
#![no_main]

use std::sync::OnceLock;

use cairn_client::fuzzing::{FuzzItem, fold};
use cairn_client::record::Record;
use cairn_crypto::{AudienceId, DeviceKeys, ExchangeSecret, RootKey};
use cairn_wire::{DeviceId, EnvelopeHeader, EnvelopeId, FIRST_IN_STREAM, Scope, UserId};
use libfuzzer_sys::fuzz_target;

const USERS: usize = 3;
const DEVICES: usize = 2;

struct Cast {
    users: [UserId; USERS],
    devices: [[DeviceId; DEVICES]; USERS],
}

fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| {
        let users = std::array::from_fn(|u| RootKey::from_bytes(&[u as u8 + 1; 32]).user_id());
        let devices = std::array::from_fn(|u| {
            std::array::from_fn(|d| {
                let seed = [(u * DEVICES + d) as u8 + 0x40; 32];
                DeviceKeys::from_parts(&seed, ExchangeSecret::from_bytes(&seed)).device_id()
            })
        });
        Cast { users, devices }
    })
}

fn items(mut data: &[u8]) -> Vec<FuzzItem> {
    let cast = cast();
    let mut items = Vec::new();
    while data.len() >= 9 {
        let (head, rest) = data.split_at(9);
        let len = usize::from(u16::from_be_bytes([head[7], head[8]])).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        data = rest;
        let Ok(record) = Record::decode(bytes) else {
            continue;
        };
        let author = usize::from(head[0]) % USERS;
        let device = cast.devices[author][usize::from(head[1]) % DEVICES];
        let scope = match head[2] % 4 {
            0 => Scope::Private,
            1 => Scope::Friends,
            2 => Scope::Direct(cast.users[0]),
            _ => Scope::Direct(cast.users[(author + 1) % USERS]),
        };
        let time = u64::from(u16::from_be_bytes([head[4], head[5]]));
        let header = EnvelopeHeader::new(
            cast.users[author],
            device,
            u64::from(head[3]),
            FIRST_IN_STREAM,
            time,
            scope,
        );
        let id = EnvelopeId::from_bytes([items.len() as u8; 32]);
        let audiences = vec![AudienceId::from_bytes([head[6] % 4; 16])];
        items.push(FuzzItem {
            id,
            header,
            audiences,
            record,
        });
    }
    items
}

fuzz_target!(|data: &[u8]| {
    let _ = fold(cast().users[0], items(data));
});
