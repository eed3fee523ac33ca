//! Where a cold-sync page's time goes, piece by piece, outside the
//! benchmark proper: raw quinn request/response of the same page size; the
//! relay's chunked page reads (as `read_page` does them) against chunks
//! sized from the entries seen; store reads alone; pipelined `Read`s; and
//! time to first byte by page size. Evidence for `ANALYSIS.md`.
//!
//! `cargo run --release -p cairn-bench --example sync_breakdown`
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]
use cairn_relay::config::{Limits, RelayConfig};
use cairn_store::{RedbStore, StatementOutcome, Store};
use cairn_wire::*;
use std::time::{Duration, Instant};

const N: u64 = 100_000;

#[tokio::main]
async fn main() {
    raw_request_response().await;
    let dir = tempfile::tempdir().unwrap();
    let config = RelayConfig {
        data_dir: dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        limits: Limits {
            requests_per_second_per_user: 1_000_000,
            request_burst_per_user: 1_000_000,
            requests_per_second_per_ip: 1_000_000,
            request_burst_per_ip: 1_000_000,
            ..Limits::default()
        },
        ..RelayConfig::default()
    };
    let store = RedbStore::open(config.database_path()).unwrap();
    let root = SigningKey::from_bytes(&[1; 32]);
    let key = SigningKey::from_bytes(&[2; 32]);
    let user = UserId::from_bytes(root.verifying_key().to_bytes());
    let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
    let cert = DeviceCertificate::sign(
        DeviceCertificateBody::new(user, device, ExchangeKey::from_bytes([3; 32]), 1),
        &root,
    );
    assert_eq!(
        store.register_device(cert.clone()).await.unwrap(),
        StatementOutcome::Applied
    );
    let mut seq = 0;
    let mut prev = FIRST_IN_STREAM;
    while seq < N {
        let batch: Vec<Envelope> = (0..256.min(N - seq))
            .map(|_| {
                seq += 1;
                let envelope = UnsignedEnvelope {
                    header: EnvelopeHeader::new(
                        user,
                        device,
                        seq,
                        prev,
                        1_700_000_000_000 + seq,
                        Scope::Private,
                    ),
                    payload: Payload::new(vec![0xa5; 1024]).unwrap(),
                }
                .sign(&key);
                prev = envelope.id();
                envelope
            })
            .collect();
        store.append(batch).await.unwrap();
    }
    store.close().await;
    let stream = StreamId::new(user, Scope::Private);
    let store = RedbStore::open(config.database_path()).unwrap();
    for fixed in [false, true, false, true] {
        let (t, s0) = (Instant::now(), switches());
        let (mut after, mut pages, mut reads) = (0u64, 0u32, 0u32);
        while after < N {
            // The relay's read_page chunk loop (e87bff6), and the same with chunks
            // sized from the largest entry actually seen.
            let mut budget: usize = 1024 * 1024 - 128 * 1024;
            let mut largest = 65536 + 256;
            let mut seen: Option<usize> = None;
            let mut got = 0usize;
            loop {
                let size = if fixed {
                    seen.unwrap_or(largest)
                } else {
                    largest
                };
                let chunk = (budget / size).clamp(1, 1024).min(4096 - got);
                let read = store.read_stream(stream, after, chunk).await.unwrap();
                reads += 1;
                let more = read.more();
                let max = read
                    .entries
                    .iter()
                    .map(|e| e.envelope.payload().len() + 256)
                    .max()
                    .unwrap_or(0);
                largest = largest.max(max);
                seen = Some(seen.unwrap_or(0).max(max));
                let mut cut = false;
                for e in read.entries {
                    let sz = e.envelope.payload().len() + 256;
                    if sz > budget && got > 0 {
                        cut = true;
                        break;
                    }
                    budget -= sz.min(budget);
                    got += 1;
                    after = e.position;
                }
                if cut || !more || got >= 4096 {
                    break;
                }
            }
            pages += 1;
        }
        println!(
            "relay chunk loop, fixed {fixed}: {pages} pages, {reads} store reads, {:?} ({:?}/page), {} context switches",
            t.elapsed(),
            t.elapsed() / pages,
            switches() - s0
        );
    }
    for round in 0..2 {
        let t = Instant::now();
        let mut after = 0u64;
        let mut pages = 0u32;
        let mut reads = Duration::ZERO;
        while after < N {
            let t0 = Instant::now();
            let a = store.read_stream(stream, after, 13).await.unwrap();
            let b = store
                .read_stream(stream, a.entries.last().unwrap().position, 700)
                .await
                .unwrap();
            reads += t0.elapsed();
            after = b
                .entries
                .last()
                .map_or(a.entries.last().unwrap().position, |e| e.position);
            pages += 1;
        }
        println!(
            "reopened store, round {round}: {pages} pages in {:?}, {:?} per page",
            t.elapsed(),
            reads / pages
        );
    }
    store.close().await;
    let relay = cairn_relay::start(config).await.unwrap();
    let conn = cairn_client::Connection::open(relay.addr, relay.fingerprint, &key, cert, None)
        .await
        .unwrap();
    let conn = std::sync::Arc::new(conn);
    for inflight in [1u64, 2, 4, 8, 4] {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..inflight {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                let mut page = k;
                let mut got = 0usize;
                while page * 700 < N {
                    let request = Request::Read(ReadRequest {
                        stream,
                        after: page * 700,
                        limit: 700,
                    });
                    match conn.request(&request).await.unwrap() {
                        Response::Page(p) => got += p.entries.len(),
                        _ => return 0,
                    }
                    page += inflight;
                }
                got
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        println!(
            "pipelined reads, {inflight} in flight: {total} entries in {:?} ({:.0} MB/s)",
            t.elapsed(),
            116.5 / t.elapsed().as_secs_f64()
        );
    }
    let conn = std::sync::Arc::try_unwrap(conn).unwrap();
    for limit in [1u32, 10, 100, 400, 4096] {
        let mut first_byte = Duration::ZERO;
        let mut total = Duration::ZERO;
        for i in 0..50u64 {
            let request = Request::Read(ReadRequest {
                stream,
                after: i * 700,
                limit,
            });
            let t0 = Instant::now();
            let (mut send, mut recv) = conn.quic().open_bi().await.unwrap();
            send.write_all(&request.to_frame()).await.unwrap();
            send.finish().unwrap();
            let mut header = [0u8; 4];
            recv.read_exact(&mut header).await.unwrap();
            first_byte += t0.elapsed();
            let len = u32::from_be_bytes(header) as usize;
            let mut body = Vec::with_capacity(len);
            while body.len() < len {
                let c = recv
                    .read_chunk(len - body.len(), true)
                    .await
                    .unwrap()
                    .unwrap();
                body.extend_from_slice(&c.bytes);
            }
            total += t0.elapsed();
        }
        println!(
            "read limit {limit}: first byte {:?}, whole {:?}",
            first_byte / 50,
            total / 50
        );
    }
    for mode in ["hello", "read"] {
        let mut position = 0u64;
        let (mut first_byte, mut total, mut decode, mut n) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0u32);
        let started = Instant::now();
        while position < N {
            let request = if mode == "hello" {
                Request::Hello(HelloRequest {
                    cursors: BoundedVec::new(vec![Cursor { stream, position }]).unwrap(),
                    outbox: BoundedVec::empty(),
                })
            } else {
                Request::Read(ReadRequest {
                    stream,
                    after: position,
                    limit: 4096,
                })
            };
            let t0 = Instant::now();
            let (mut send, mut recv) = conn.quic().open_bi().await.unwrap();
            send.write_all(&request.to_frame()).await.unwrap();
            send.finish().unwrap();
            let mut header = [0u8; 4];
            recv.read_exact(&mut header).await.unwrap();
            first_byte += t0.elapsed();
            let len = u32::from_be_bytes(header) as usize;
            let mut body = Vec::with_capacity(len);
            while body.len() < len {
                let c = recv
                    .read_chunk(len - body.len(), true)
                    .await
                    .unwrap()
                    .unwrap();
                body.extend_from_slice(&c.bytes);
            }
            total += t0.elapsed();
            let t1 = Instant::now();
            let response = Response::decode(&body).unwrap();
            decode += t1.elapsed();
            let page = match response {
                Response::Synced(s) => s.pages.into_vec().into_iter().next().unwrap(),
                Response::Page(p) => p,
                _ => return,
            };
            position = page.entries.as_slice().last().unwrap().position;
            n += 1;
        }
        let all = started.elapsed();
        println!(
            "{mode}: {n} pages in {all:?} ({:.0} MB/s): per page first byte {:?}, whole frame {:?}, client decode {:?}",
            116.5 / all.as_secs_f64(),
            first_byte / n,
            total / n,
            decode / n
        );
    }
    conn.close().await;
    relay.shutdown().await;
}

fn switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let status =
            std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// A bare quinn server answering each request stream with 835 KB, one request at a time.
async fn raw_request_response() {
    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    use std::sync::Arc;
    let generated = rcgen::generate_simple_self_signed(vec!["cairn-relay".to_owned()]).unwrap();
    let der = rustls_pki_types::CertificateDer::from(generated.cert.der().to_vec());
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    tls.alpn_protocols = vec![b"x".to_vec()];
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap())),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = server.accept().await.unwrap().await.unwrap();
        let page = vec![0x5au8; 835_000];
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let mut b = [0u8; 1];
            recv.read_exact(&mut b).await.unwrap();
            send.write_all(&page).await.unwrap();
            send.finish().unwrap();
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let mut ctls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ctls.alpn_protocols = vec![b"x".to_vec()];
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(ctls).unwrap(),
    )));
    let conn = client.connect(addr, "cairn-relay").unwrap().await.unwrap();
    let s0 = switches();
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..140 {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&[1]).await.unwrap();
        send.finish().unwrap();
        while let Some(c) = recv.read_chunk(usize::MAX, true).await.unwrap() {
            bytes += c.bytes.len();
        }
    }
    println!(
        "raw request/response: {bytes} bytes in {:?} ({:.0} MB/s), {} context switches",
        t.elapsed(),
        bytes as f64 / 1e6 / t.elapsed().as_secs_f64(),
        switches() - s0
    );
}
