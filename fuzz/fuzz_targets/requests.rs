//! The relay's request handling from authenticated sessions, structure-
//! aware and without QUIC: sequences of requests (appends with right and
//! wrong seqs and `prev`s in every scope, hellos with outboxes and
//! cursors, reads, acks, status, and statements signed by the caller's
//! user or by another, in any order) from a few users' devices, each
//! answered by `cairn_relay::handlers::answer`, the function a request
//! stream calls, over a real store. Nothing panics; no answer is
//! `internal` (the disk does not fail here, so one would be a bug); a
//! page holds positions after the one asked for, in order, only for a
//! reader the access rules admit; and at the end the store is consistent,
//! every stream's positions run 1..n and every stream a hello would list
//! is readable.
//!
//! Input: operations of 4 bytes, `kind | a | b | c`.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use cairn_fuzz::{Cast, DEVICES, Template, USERS};
use cairn_relay::access::{can_read, readable_streams};
use cairn_relay::handlers::answer;
use cairn_relay::server::Shared;
use cairn_relay::session::Caller;
use cairn_store::{RedbStore, Store};
use cairn_wire::{
    AppendOutcome, AppendRequest, BoundedVec, Cursor, Envelope, EnvelopeId, ErrorCode,
    FIRST_IN_STREAM, HelloRequest, ReadRequest, Request, Response, StreamId, UserId,
};
use libfuzzer_sys::fuzz_target;

/// Statements are dated from here on (1 Nov 2026), so that none is ahead
/// of the relay's clock and the same input is judged the same way.
const BASE_MS: u64 = 1_793_500_000_000;

fn cast() -> &'static Cast {
    static CAST: OnceLock<Cast> = OnceLock::new();
    CAST.get_or_init(|| Cast::new(10))
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(Template::new)
}

/// What one input's devices wrote so far: each device's next seq, and the
/// last envelope it stored in each stream (its next `prev`).
#[derive(Default)]
struct Written {
    next_seq: HashMap<(usize, usize), u64>,
    last: HashMap<(usize, usize, StreamId), EnvelopeId>,
}

impl Written {
    /// An envelope by `(u, d)`; `c` picks the seq (one behind, one ahead
    /// or the next), the scope and whether `prev` is right.
    fn envelope(&self, u: usize, d: usize, c: u8) -> Envelope {
        let cast = cast();
        let next = self.next_seq.get(&(u, d)).copied().unwrap_or(1);
        let seq = match c >> 6 {
            0 => next.saturating_sub(1).max(1),
            1 => next + 1,
            _ => next,
        };
        let stream = cast.stream(c, u);
        let prev = match c & 0x20 {
            0 => self
                .last
                .get(&(u, d, stream))
                .copied()
                .unwrap_or(FIRST_IN_STREAM),
            _ => FIRST_IN_STREAM,
        };
        cast.envelope(u, d, seq, prev, c)
    }

    fn stored(&mut self, u: usize, d: usize, envelope: &Envelope) {
        let header = envelope.header();
        self.next_seq.insert((u, d), header.seq + 1);
        let stream = StreamId::new(header.author, header.scope);
        self.last.insert((u, d, stream), envelope.id());
    }
}

async fn run(data: &[u8]) {
    let cast = cast();
    let template = template();
    let store = template.fresh_store();
    let shared = cairn_relay::fuzzing::shared_on(store, &template.dir()).expect("shared");
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut written = Written::default();
    for op in data.chunks_exact(4).take(64) {
        let (kind, a, b, c) = (op[0], op[1], op[2], op[3]);
        let (u, d) = (usize::from(a) % USERS, usize::from(b) % DEVICES);
        // The cast's devices are real keys.
        let caller = Caller::assumed(cast.users[u].id, cast.devices[u][d].id, ip)
            .expect("a cast device's key");
        // Statements may be signed by another user than the caller's.
        let signer = usize::from(a >> 4) % USERS;
        let subject = usize::from(b >> 4) % USERS;
        let when = BASE_MS + u64::from(c) * 1000;
        let request = match kind % 8 {
            0 | 1 => {
                let count = usize::from(c & 3) + 1;
                let mut envelopes = Vec::with_capacity(count);
                for i in 0..count {
                    let envelope = written.envelope(u, d, c.wrapping_add(i as u8 * 0x40));
                    envelopes.push(envelope);
                }
                let request = Request::Append(AppendRequest {
                    envelopes: BoundedVec::new(envelopes.clone()).expect("a small batch"),
                });
                let response = ask(&shared, &caller, request).await;
                record_stored(&mut written, u, d, &envelopes, &response);
                continue;
            }
            2 => Request::RegisterDevice(cast.certify(signer, subject, d, when)),
            3 => Request::RevokeDevice(cast.revoke(signer, subject, d, when)),
            4 => Request::GrantFriend(cast.grant(signer, subject, when)),
            5 => Request::RevokeFriend(cast.unfriend(signer, subject, when)),
            6 => {
                let stream = cast.stream(c, subject);
                let after = u64::from(c & 7);
                let read = ReadRequest {
                    stream,
                    after,
                    limit: u32::from(c >> 5),
                };
                let response = ask(&shared, &caller, Request::Read(read)).await;
                check_page(&shared, caller.user(), stream, after, &response).await;
                continue;
            }
            _ => match c & 3 {
                0 => Request::Status,
                1 => Request::Ack(Cursor {
                    stream: cast.stream(c >> 2, subject),
                    position: u64::from(c >> 4),
                }),
                _ => {
                    let cursor = Cursor {
                        stream: cast.stream(c >> 2, subject),
                        position: u64::from(c >> 4),
                    };
                    let outbox = match c & 1 {
                        0 => vec![],
                        _ => vec![written.envelope(u, d, c)],
                    };
                    Request::Hello(HelloRequest {
                        cursors: BoundedVec::new(vec![cursor]).expect("one cursor"),
                        outbox: BoundedVec::new(outbox).expect("a small outbox"),
                    })
                }
            },
        };
        ask(&shared, &caller, request).await;
    }
    check_store(&shared).await;
    if let Ok(shared) = Arc::try_unwrap(shared) {
        shared.store.close().await;
    }
}

/// Sends `request` as `caller`; no answer may be `internal`.
async fn ask(shared: &Shared<RedbStore>, caller: &Caller, request: Request) -> Response {
    let response = answer(shared, caller, request).await;
    let internal = match &response {
        Response::Error(error) => error.code == ErrorCode::INTERNAL,
        Response::Appended(outcomes) => outcomes.iter().any(
            |outcome| matches!(outcome, AppendOutcome::Refused(e) if e.code == ErrorCode::INTERNAL),
        ),
        _ => false,
    };
    assert!(
        !internal,
        "an internal error without a failing disk: {response:?}"
    );
    response
}

fn record_stored(
    written: &mut Written,
    u: usize,
    d: usize,
    envelopes: &[Envelope],
    response: &Response,
) {
    let Response::Appended(outcomes) = response else {
        panic!("an append answered {response:?}");
    };
    assert_eq!(outcomes.len(), envelopes.len(), "one outcome per envelope");
    for (envelope, outcome) in envelopes.iter().zip(outcomes.iter()) {
        if matches!(outcome, AppendOutcome::Stored(_)) {
            written.stored(u, d, envelope);
        }
    }
}

/// A page answers only a reader the rules admit, with positions past
/// `after` in order without a gap; a refusal is `forbidden` and only for
/// a reader they do not admit.
async fn check_page(
    shared: &Shared<RedbStore>,
    reader: UserId,
    stream: StreamId,
    after: u64,
    response: &Response,
) {
    let admitted = can_read(&shared.store, reader, stream).await;
    match response {
        Response::Page(page) => {
            assert!(admitted, "a page of a stream the reader may not read");
            let positions: Vec<u64> = page.entries.iter().map(|e| e.position).collect();
            assert!(positions.first().is_none_or(|&p| p > after));
            assert!(
                positions.windows(2).all(|w| w[1] == w[0] + 1),
                "{positions:?}"
            );
        }
        Response::Error(error) => {
            assert_eq!(error.code, ErrorCode::FORBIDDEN, "{error:?}");
            assert!(!admitted, "forbidden to a reader the rules admit");
        }
        other => panic!("a read answered {other:?}"),
    }
}

async fn check_store(shared: &Shared<RedbStore>) {
    let store = &shared.store;
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
    for user in &cast().users {
        let Ok(streams) = readable_streams(store, user.id).await else {
            continue;
        };
        for head in streams {
            assert!(
                can_read(store, user.id, head.stream).await,
                "a hello lists an unreadable stream"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    template().runtime.block_on(run(data));
});
