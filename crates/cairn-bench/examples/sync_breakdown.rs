//! Temporary: where a cold-sync page's time goes, without QUIC.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
use cairn_store::{RedbStore, StatementOutcome, Store};
use cairn_wire::*;
use std::time::Instant;

const N: u64 = 100_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("r.redb")).unwrap();
    let root = SigningKey::from_bytes(&[1; 32]);
    let key = SigningKey::from_bytes(&[2; 32]);
    let user = UserId::from_bytes(root.verifying_key().to_bytes());
    let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
    let cert = DeviceCertificate::sign(
        DeviceCertificateBody::new(user, device, ExchangeKey::from_bytes([3; 32]), 1),
        &root,
    );
    assert_eq!(
        store.register_device(cert).await.unwrap(),
        StatementOutcome::Applied
    );
    let mut seq = 0;
    while seq < N {
        let batch: Vec<Envelope> = (0..256.min(N - seq))
            .map(|_| {
                seq += 1;
                UnsignedEnvelope {
                    header: EnvelopeHeader::new(
                        user,
                        device,
                        seq,
                        1_700_000_000_000 + seq,
                        Scope::Private,
                    ),
                    payload: Payload::new(vec![0xa5; 1024]).unwrap(),
                }
                .sign(&key)
            })
            .collect();
        store.append(batch).await.unwrap();
    }
    let stream = StreamId::new(user, Scope::Private);
    for limit in [4096usize, 716, 4096, 716] {
        let t = Instant::now();
        let mut after = 0;
        let mut pages = 0;
        while after < N {
            let read = store.read_stream(stream, after, limit).await.unwrap();
            let keep = read.entries.len().min(716);
            after += keep as u64;
            pages += 1;
        }
        println!(
            "read_stream limit {limit}: {pages} pages of 716 in {:?} ({:?}/page)",
            t.elapsed(),
            t.elapsed() / pages
        );
    }
    // encode + decode of one page
    let read = store.read_stream(stream, 0, 716).await.unwrap();
    let page = StreamPage {
        stream,
        entries: BoundedVec::new(read.entries).unwrap(),
        more: true,
    };
    let response = Response::Synced(SyncResponse {
        acks: BoundedVec::empty(),
        pages: BoundedVec::new(vec![page]).unwrap(),
        more: true,
    });
    let t = Instant::now();
    let mut frame = Vec::new();
    for _ in 0..140 {
        frame = response.to_frame();
    }
    println!(
        "encode 140 pages: {:?} ({} bytes each)",
        t.elapsed(),
        frame.len()
    );
    let t = Instant::now();
    for _ in 0..140 {
        let _ = Response::decode(&frame[4..]).unwrap();
    }
    println!("decode 140 pages: {:?}", t.elapsed());
    let t = Instant::now();
    for _ in 0..140 {
        let _ = response.clone();
    }
    println!("clone 140 pages: {:?}", t.elapsed());
    store.close().await;
}
