//! The relay's request handling from authenticated sessions, structure-
//! aware: sequences of valid-looking appends (right and wrong seqs and
//! `prev`s, every scope), statements (certificates, revocations, grants
//! and their withdrawals, in any order and date) and reads, by a few
//! users and devices, against a real store, with the relay's access rules
//! asked after each. Nothing panics, and whatever the sequence, the store
//! stays consistent (`verify`), every stream's positions run 1..n, and
//! what a reader may read is what the rules say.
//!
//! Input: operations of 4 bytes, `kind | a | b | c`.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use cairn_fuzz::{Cast, DEVICES, Template, USERS};
use cairn_relay::access::{can_read, readable_streams};
use cairn_store::{RedbStore, Store};
use cairn_wire::{EnvelopeId, FIRST_IN_STREAM, StreamId, UserId};
use libfuzzer_sys::fuzz_target;

fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| Cast::new(9))
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(Template::new)
}

async fn run(data: &[u8]) {
    let cast = cast();
    let store = template().fresh_store();
    let mut next_seq = [[1u64; DEVICES]; USERS];
    // Each device's last stored envelope per stream, its next `prev`:
    // tracked per input, so that an input's outcome never depends on the
    // inputs run before it.
    let mut last: HashMap<(usize, usize, StreamId), EnvelopeId> = HashMap::new();
    for op in data.chunks_exact(4).take(64) {
        let (kind, a, b, c) = (op[0], op[1], op[2], op[3]);
        let u = usize::from(a) % USERS;
        let d = usize::from(b) % DEVICES;
        let other = usize::from(b) % USERS;
        let when = u64::from(c) * 1000;
        match kind % 8 {
            0 | 1 => {
                let seq = match c >> 6 {
                    0 => next_seq[u][d].saturating_sub(1).max(1),
                    1 => next_seq[u][d] + 1,
                    _ => next_seq[u][d],
                };
                let stream = cast.stream(c, u);
                let prev = match c & 0x20 {
                    0 => last
                        .get(&(u, d, stream))
                        .copied()
                        .unwrap_or(FIRST_IN_STREAM),
                    _ => FIRST_IN_STREAM,
                };
                let envelope = cast.envelope(u, d, seq, prev, c);
                let id = envelope.id();
                if let Ok(outcomes) = store.append(vec![envelope]).await
                    && matches!(outcomes[..], [cairn_store::ItemOutcome::Stored { .. }])
                {
                    next_seq[u][d] = seq + 1;
                    last.insert((u, d, stream), id);
                }
            }
            2 => drop(store.register_device(cast.certify(u, u, d, when)).await),
            3 => drop(store.revoke_device(cast.revoke(u, u, d, when)).await),
            4 => drop(store.grant_friend(cast.grant(u, other, when)).await),
            5 => drop(store.revoke_friend(cast.unfriend(u, other, when)).await),
            6 => {
                let stream = cast.stream(c, u);
                let _ = store
                    .read_stream(stream, u64::from(b), usize::from(c))
                    .await;
            }
            _ => check_access(&store, cast.user(other)).await,
        }
    }
    let report = store.verify().await.expect("verify runs");
    assert!(report.is_ok(), "{:?}", report.problems);
    for head in store.all_streams().await.expect("streams") {
        let read = store
            .read_stream(head.stream, 0, usize::MAX)
            .await
            .expect("a read");
        let positions: Vec<u64> = read.entries.iter().map(|e| e.position).collect();
        assert_eq!(
            positions,
            (1..=head.head).collect::<Vec<_>>(),
            "positions run 1..n"
        );
    }
    store.close().await;
}

/// Every stream `reader` is sent in a hello, it may read.
async fn check_access(store: &RedbStore, reader: UserId) {
    let Ok(streams) = readable_streams(store, reader).await else {
        return;
    };
    for head in streams {
        assert!(
            can_read(store, reader, head.stream).await,
            "a hello carries an unreadable stream"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    template().runtime.block_on(run(data));
});
