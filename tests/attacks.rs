//! The attacks a hostile review demonstrated against a relay process with
//! its default configuration, each replayed here: the attacker gets a
//! catalogued refusal, the victim keeps being served, and the data
//! directory holds exactly what honest requests stored.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use cairn_wire::*;
use support::hostile::*;
use support::{Device, now_ms};

/// Ten years, in milliseconds.
const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Mallory, a user the relay has not seen, and her first device.
fn mallory() -> (User, Device) {
    let user = User::new(66);
    let device = user.device(1);
    (user, device)
}

fn code_of(response: &Response) -> Option<ErrorCode> {
    match response {
        Response::Error(error) => Some(error.code),
        _ => None,
    }
}

/// A request on `victim`'s connection is still answered: it was not
/// closed. (A close happens before the statement that causes it is
/// answered, so by now it would have arrived.)
async fn assert_still_served(victim: &RawConnection, stream: StreamId) {
    assert!(
        matches!(victim.read(stream, 0).await.response(), Response::Page(_)),
        "the victim's connection no longer serves"
    );
    assert!(victim.is_open(), "the victim's connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_disconnect_another_users_device() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    let victim = RawConnection::authenticated(&scene.relay, &scene.laptop).await;
    let private = StreamId::new(scene.alice.id, Scope::Private);
    let laptop = scene.laptop.id;

    // Mallory revokes Alice's laptop as if it were hers, twice.
    let revocation = mallory.revoke(laptop);
    for attempt in ["first", "repeated"] {
        let answer = hostile
            .request(&Request::RevokeDevice(revocation.clone()))
            .await;
        assert_eq!(
            answer.error_code(),
            ErrorCode::UNKNOWN_DEVICE,
            "{attempt} revocation of a device Mallory never certified"
        );
        assert_still_served(&victim, private).await;
    }

    // Mallory certifies Alice's device id as her own, then revokes it:
    // both are her own statements about her own account, and touch no
    // session of Alice's.
    let claimed = mallory.certify(laptop, now_ms());
    let answer = hostile
        .request(&Request::RegisterDevice(claimed.clone()))
        .await;
    assert_eq!(answer.response(), &Response::Done);
    scene.expect_statement(claimed.encode());
    for attempt in ["applied", "unchanged"] {
        let answer = hostile
            .request(&Request::RevokeDevice(revocation.clone()))
            .await;
        assert_eq!(answer.response(), &Response::Done, "{attempt}");
        assert_still_served(&victim, private).await;
    }
    scene.expect_statement(revocation.encode());

    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_wins_over_a_future_dated_certificate() {
    let mut scene = Scene::start().await;
    let alice = &scene.alice;
    let phone = alice.device(2);
    // Ten years ahead: refused outright.
    let far = alice.certify(phone.id, now_ms() + TEN_YEARS_MS);
    let answer = scene.honest_request(Request::RegisterDevice(far)).await;
    assert_eq!(code_of(&answer), Some(ErrorCode::FUTURE_STATEMENT));

    // A minute ahead (within the allowed skew): accepted, and a
    // revocation dated now, before the certificate, still wins.
    let mut skewed = phone.clone();
    skewed.certificate = scene.alice.certify(phone.id, now_ms() + 60_000);
    let answer = scene
        .honest_request(Request::RegisterDevice(skewed.certificate.clone()))
        .await;
    assert_eq!(answer, Response::Done);
    scene.expect_statement(skewed.certificate.encode());
    let connection = RawConnection::authenticated(&scene.relay, &skewed).await;
    let revocation = scene.alice.revoke(phone.id);
    let answer = scene
        .honest_request(Request::RevokeDevice(revocation.clone()))
        .await;
    assert_eq!(answer, Response::Done);
    scene.expect_statement(revocation.encode());
    assert_eq!(connection.closed_with().await, ErrorCode::DEVICE_REVOKED);
    let again = RawConnection::dial(&scene.relay).await;
    let refused = again.request(&again.authenticate_request(&skewed)).await;
    assert_eq!(refused.error_code(), ErrorCode::DEVICE_REVOKED);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_dated_far_ahead_of_the_relays_clock_are_refused() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    // A new user whose first certificate is dated ten years ahead.
    let mut future = device.clone();
    future.certificate = mallory.certify(device.id, now_ms() + TEN_YEARS_MS);
    let raw = RawConnection::dial(&scene.relay).await;
    let answer = raw.request(&raw.authenticate_request(&future)).await;
    assert_eq!(answer.error_code(), ErrorCode::FUTURE_STATEMENT);
    assert_eq!(raw.closed_with().await, ErrorCode::FUTURE_STATEMENT);

    // Grants and friend revocations of a registered user.
    let hostile = scene.newcomer(&device).await;
    let friend = scene.alice.id;
    let ahead = now_ms() + TEN_YEARS_MS;
    let grant = FriendGrant::sign(
        FriendGrantBody::new(mallory.id, friend, ahead),
        &mallory.root,
    );
    let unfriend = FriendRevocation::sign(
        FriendRevocationBody::new(mallory.id, friend, ahead),
        &mallory.root,
    );
    for request in [Request::GrantFriend(grant), Request::RevokeFriend(unfriend)] {
        let answer = hostile.request(&request).await;
        assert_eq!(
            answer.error_code(),
            ErrorCode::FUTURE_STATEMENT,
            "{request:?}"
        );
    }
    // An honest grant and its revocation follow each other as usual.
    let grant = mallory.grant(friend);
    assert_eq!(
        hostile
            .request(&Request::GrantFriend(grant))
            .await
            .response(),
        &Response::Done
    );
    let unfriend = FriendRevocation::sign(
        FriendRevocationBody::new(mallory.id, friend, now_ms() + 1),
        &mallory.root,
    );
    assert_eq!(
        hostile
            .request(&Request::RevokeFriend(unfriend.clone()))
            .await
            .response(),
        &Response::Done
    );
    scene.expect_statement(unfriend.encode());
    scene.finish().await;
}

/// An operator's ban closes the device's connections with its own code,
/// and the CLI says who did it.
#[test]
fn a_banned_device_is_told_it_was_banned_by_the_operator() {
    let relay = cli::Relay::start();
    let home = cli::Home::new();
    home.init(&relay.target, "laptop");
    home.ok(&["note", "add", "before the ban"]);
    let mut watch = home.watch();
    let device = home.device_id();
    relay.operate(&["ban", &device]);
    let (code, message) = watch.exited();
    assert_eq!(code, Some(12), "watch after a ban: {message}");
    assert!(
        message.contains("banned by the relay operator"),
        "{message}"
    );
    let (code, message) = home.fails(&["sync"]);
    assert_eq!(code, 12, "sync after a ban: {message}");
    assert!(
        message.contains("banned by the relay operator"),
        "{message}"
    );
    assert!(!message.contains("revoked"), "{message}");
}

/// A ban written into the list by hand takes effect at `SIGHUP` (or
/// `cairn-relay reload`), without a restart: the device's connections
/// close; `unban` lets it back.
#[test]
fn a_ban_list_edited_by_hand_takes_effect_at_reload_and_unban_lifts_it() {
    let relay = cli::Relay::start();
    let home = cli::Home::new();
    home.init(&relay.target, "laptop");
    home.ok(&["note", "add", "before the ban"]);
    let mut watch = home.watch();
    let device = home.device_id();
    let list = relay.data_dir().join("banned-devices.txt");
    std::fs::write(&list, format!("{device}\n")).unwrap();
    relay.hangup();
    let (code, message) = watch.exited();
    assert_eq!(code, Some(12), "watch after SIGHUP: {message}");
    assert_eq!(relay.admin_get("/healthz").0, 200, "the relay lives on");

    let said = relay.operate(&["unban", &device]);
    assert!(said.contains("unbanned"), "{said}");
    assert!(!std::fs::read_to_string(&list).unwrap().contains(&device));
    home.ok(&["sync"]);

    std::fs::write(&list, format!("{device}\n")).unwrap();
    let reloaded = relay.operate(&["reload"]);
    assert!(reloaded.contains(&device), "{reloaded}");
    assert_eq!(home.fails(&["sync"]).0, 12);
}

/// Sends one raw HTTP/1.1 request to `addr`; the status code and body.
fn http(addr: SocketAddr, request_head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(support::WAIT)).unwrap();
    let request = format!("{request_head}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// A page open in a browser on the relay's host can send simple
/// cross-origin requests to loopback, and read answers once its own host
/// name is rebound to 127.0.0.1. Neither reaches the operator API.
#[test]
fn a_web_page_cannot_use_the_admin_api() {
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let relay = support::RelayProcess::spawn_with_env(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        &[("CAIRN_RELAY_METRICS_LISTEN", &metrics_port.to_string())],
    );
    let admin = relay.admin;
    let device = User::new(5).device(1).id.to_text();
    let ban = format!("POST /admin/devices/{device}/ban HTTP/1.1\r\n");
    // A cross-origin form post, as a page sends it.
    let (status, body) = http(
        admin,
        &format!(
            "{ban}Host: {admin}\r\nOrigin: http://evil.example\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n"
        ),
    );
    assert_eq!(status, 401, "{body}");
    // Reading stats and users through a rebound host name.
    for path in ["/admin/stats", "/admin/users", "/metrics", "/healthz"] {
        let host = format!("evil.example:{}", admin.port());
        let (status, body) = http(admin, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n"));
        assert_eq!(status, 421, "{path}: {body}");
    }
    // With the operator's token, a form post is still refused: changes
    // are JSON only.
    let admin_file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("admin.json")).unwrap())
            .unwrap();
    let token = admin_file["token"].as_str().unwrap();
    let (status, body) = http(
        admin,
        &format!(
            "{ban}Host: {admin}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n"
        ),
    );
    assert_eq!(status, 415, "{body}");
    // What this relay added to its API (removing a user, expiring now,
    // reloading) needs the token too, and a JSON body.
    let user = User::new(7).id.to_text();
    for path in [
        format!("/admin/users/{user}/remove"),
        "/admin/compact".to_owned(),
        "/admin/reload".to_owned(),
    ] {
        let request = format!("POST {path} HTTP/1.1\r\nHost: {admin}\r\n");
        let (status, body) = http(
            admin,
            &format!("{request}Content-Type: application/json\r\n"),
        );
        assert_eq!(status, 401, "{path} without the token: {body}");
        let (status, body) = http(
            admin,
            &format!("{request}Authorization: Bearer {token}\r\nContent-Type: text/plain\r\n"),
        );
        assert_eq!(status, 415, "{path} as a form: {body}");
    }
    assert!(
        !std::fs::read_to_string(dir.path().join("banned-devices.txt"))
            .unwrap_or_default()
            .contains(&device),
        "a refused request banned the device"
    );
    // The operator's own tools: the token, from a file only they read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (status, body) = http(
        admin,
        &format!(
            "GET /admin/stats HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {token}\r\n",
            admin.port()
        ),
    );
    assert_eq!(status, 200, "{body}");
    // The metrics listener serves metrics and health, and no operator API.
    let host = format!("Host: monitoring.example:{}\r\n", metrics_port.port());
    for (path, expected) in [("/metrics", 200), ("/healthz", 200), ("/admin/stats", 404)] {
        let (status, body) = http(metrics_port, &format!("GET {path} HTTP/1.1\r\n{host}"));
        assert_eq!(status, expected, "{path} on the metrics listener: {body}");
    }
}

/// The limits of the default configuration, which the test harness raises
/// for every other scenario.
const DEFAULT_ADDRESS_LIMITS: &[(&str, &str)] = &[
    ("CAIRN_RELAY_LIMITS__CONNECTIONS_PER_IP", "64"),
    ("CAIRN_RELAY_LIMITS__HANDSHAKES_PER_SECOND_PER_IP", "20"),
    ("CAIRN_RELAY_LIMITS__HANDSHAKE_BURST_PER_IP", "64"),
    ("CAIRN_RELAY_LIMITS__REGISTRATIONS_PER_HOUR_PER_IP", "60"),
    ("CAIRN_RELAY_LIMITS__REGISTRATION_BURST_PER_IP", "10"),
];

/// Connections a stranger floods the relay with, none authenticating.
const FLOOD_CONNECTIONS: usize = 64;
/// Bytes the flood tries to push down each stream it may open.
const FLOOD_BYTES_PER_STREAM: usize = 1024 * 1024;
/// What the relay may hold for the whole flood: a few hundred KiB per
/// connection for QUIC's own state, never the megabytes a peer sends.
const FLOOD_RSS_BOUND: u64 = 48 * 1024 * 1024;

/// Opens every stream the relay allows (at most 64). The first, where the
/// relay waits for `Authenticate`, gets three bytes of a length prefix and
/// nothing more, so that the relay keeps waiting; every other one gets as
/// much junk as flow control lets through. Returns the bytes queued and
/// the streams, which stay open while the caller holds them.
async fn flood(quic: quinn::Connection, junk: bytes::Bytes) -> (usize, Vec<quinn::SendStream>) {
    let pause = std::time::Duration::from_millis(300);
    let mut streams = Vec::new();
    while streams.len() < 64 {
        match tokio::time::timeout(pause, quic.open_bi()).await {
            Ok(Ok(stream)) => streams.push(stream),
            _ => break,
        }
    }
    let mut queued = 0;
    let mut open = Vec::new();
    let mut streams = streams.into_iter();
    if let Some((mut first, _recv)) = streams.next() {
        queued += first.write(&[0, 0, 0]).await.unwrap_or(0);
        open.push(first);
    }
    for (mut send, _recv) in streams {
        let mut chunk = junk.clone();
        while !chunk.is_empty() {
            match tokio::time::timeout(pause, send.write(&chunk)).await {
                Ok(Ok(n)) => {
                    queued += n;
                    bytes::Buf::advance(&mut chunk, n);
                }
                _ => break,
            }
        }
        open.push(send);
    }
    (queued, open)
}

/// The highest resident memory of `pid` seen over `period`.
async fn peak_resident_bytes(pid: u32, period: std::time::Duration) -> u64 {
    let until = std::time::Instant::now() + period;
    let mut peak = 0;
    while std::time::Instant::now() < until {
        peak = peak.max(resident_bytes(pid).unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unauthenticated_connections_costs_bounded_memory() {
    let scene = Scene::start_with(DEFAULT_ADDRESS_LIMITS).await;
    let pid = scene.relay.pid();
    let before = resident_bytes(pid).expect("this platform reports resident memory");
    let mut connections = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        connections.push(RawConnection::dial(&scene.relay).await);
    }
    let junk = bytes::Bytes::from(vec![0x41; FLOOD_BYTES_PER_STREAM]);
    let floods: Vec<_> = connections
        .iter()
        .map(|raw| tokio::spawn(flood(raw.quic.clone(), junk.clone())))
        .collect();
    let (mut queued, mut open) = (0, Vec::new());
    for flood in floods {
        let (bytes, streams) = flood.await.unwrap();
        queued += bytes;
        open.push(streams);
    }
    // What the flood queued is still on its way: watch the relay while it
    // arrives.
    let peak = peak_resident_bytes(pid, std::time::Duration::from_secs(3)).await;
    let grown = peak.saturating_sub(before);
    eprintln!(
        "{FLOOD_CONNECTIONS} unauthenticated connections queued {} KiB to send; \
         relay memory peaked {} KiB above where it was",
        queued / 1024,
        grown / 1024
    );
    assert!(
        grown < FLOOD_RSS_BOUND,
        "the relay grew by {grown} bytes for {FLOOD_CONNECTIONS} strangers"
    );
    drop(open);
    drop(connections);
    scene.finish().await;
}

/// QUIC datagrams are the one thing a peer can send that flow control
/// does not bound and cairn never reads: quinn buffers 1.25 MB of them per
/// connection unless the server declines them. The relay declines them,
/// so a stranger before authenticating, and a device after, can park none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_park_datagrams_on_the_relay() {
    let mut scene = Scene::start().await;
    let stranger = RawConnection::dial(&scene.relay).await;
    let (_mallory, device) = mallory();
    let authenticated = scene.newcomer(&device).await;
    for (who, raw) in [("a stranger", &stranger), ("a device", &authenticated)] {
        // The relay's own transport parameters, as its peer received
        // them: no `max_datagram_frame_size`, so a datagram sent anyway
        // is a protocol violation that closes the connection.
        assert_eq!(
            raw.quic.max_datagram_size(),
            None,
            "the relay offers {who} datagrams"
        );
    }
    assert!(stranger.is_open() && authenticated.is_open());
    scene.assert_honest_served().await;
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_from_one_address_are_rate_limited() {
    let mut scene = Scene::start_with(DEFAULT_ADDRESS_LIMITS).await;
    // Alice registered already: one of the burst of ten.
    for seed in 100..109 {
        scene.newcomer(&User::new(seed).device(1)).await;
    }
    let raw = RawConnection::dial(&scene.relay).await;
    let answer = raw
        .request(&raw.authenticate_request(&User::new(109).device(1)))
        .await;
    let Response::Error(error) = answer.response() else {
        panic!("the eleventh registration was admitted: {answer:?}");
    };
    assert_eq!(error.code, ErrorCode::RATE_LIMITED);
    assert!(
        matches!(error.detail, ErrorDetail::RetryAfterMs(ms) if ms > 0),
        "{error:?}"
    );
    assert_eq!(raw.closed_with().await, ErrorCode::RATE_LIMITED);
    assert_eq!(
        metric(&scene.relay, "cairn_registrations_total").await,
        10.0
    );
    assert_eq!(
        metric(&scene.relay, "cairn_registrations_rate_limited_total").await,
        1.0
    );
    // Known users still log in: only new users are limited.
    RawConnection::authenticated(&scene.relay, &User::new(100).device(1)).await;
    scene.finish().await;
}

/// A subscriber that stops reading holds the entries queued for it, never
/// the commits they came in: Mallory's eight stalled subscriptions to her
/// own private stream each get one tiny entry per commit, while the rest of
/// each commit (up to 8 MiB, from her eight devices appending at once) is
/// her friends stream, which none of them reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscribers_do_not_keep_whole_commits_alive() {
    const STALLED: usize = 8;
    const DEVICES: u32 = 8;
    const ROUNDS: u64 = 16;
    const BULK_PER_REQUEST: usize = 16;
    const BULK_PAYLOAD: usize = 60 * 1024;
    const RSS_BOUND: u64 = 48 * 1024 * 1024;
    const FILL: u64 = 40;
    // A small page cache, so that what the database caches of the bulk
    // written does not hide what the subscribers hold.
    let cache = (16 * 1024 * 1024).to_string();
    let mut scene = Scene::start_with(&[("CAIRN_RELAY_STORAGE__CACHE_BYTES", &cache)]).await;
    let (mallory, first) = mallory();
    let control = scene.newcomer(&first).await;
    let mut devices = vec![(first, control)];
    for n in 2..=DEVICES {
        let device = mallory.device(n);
        let answer = devices[0]
            .1
            .request(&Request::RegisterDevice(device.certificate.clone()))
            .await;
        assert_eq!(answer.response(), &Response::Done);
        let connection = RawConnection::authenticated(&scene.relay, &device).await;
        devices.push((device, connection));
    }
    let private = StreamId::new(mallory.id, Scope::Private);
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut subscription = devices[0]
            .1
            .subscribe(SubscribeRequest {
                stream: private,
                after: 0,
            })
            .await;
        assert_eq!(subscription.until_live().await, Vec::<u64>::new());
        stalled.push(subscription);
    }
    // Enough private notes to fill what QUIC lets the relay send down each
    // subscription's stream before its reader reads: from then on, what
    // comes live waits in the relay's queues.
    let fill = vec![0x66; BULK_PAYLOAD];
    let first = &devices[0];
    for seq in 1..=FILL {
        let note = first.0.envelope(seq, Scope::Private, &fill);
        assert!(matches!(
            first.1.append(vec![note]).await[..],
            [AppendOutcome::Stored(_)]
        ));
    }

    let pid = scene.relay.pid();
    let before = resident_bytes(pid).expect("this platform reports resident memory");
    let bulk = vec![0x6d; BULK_PAYLOAD];
    for round in 0..ROUNDS {
        let mut appends = tokio::task::JoinSet::new();
        for (n, (device, connection)) in devices.iter().enumerate() {
            let filled = if n == 0 { FILL } else { 0 };
            let base = filled + round * (1 + BULK_PER_REQUEST as u64);
            let mut envelopes = vec![device.envelope(base + 1, Scope::Private, b"tiny")];
            for i in 0..BULK_PER_REQUEST as u64 {
                envelopes.push(device.envelope(base + 2 + i, Scope::Friends, &bulk));
            }
            let connection = connection.clone();
            appends.spawn(async move { connection.append(envelopes).await });
        }
        for outcomes in appends.join_all().await {
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, AppendOutcome::Stored(_)))
            );
        }
    }
    let after = resident_bytes(pid).unwrap();
    let grown = after.saturating_sub(before);
    let written = ROUNDS * u64::from(DEVICES) * (BULK_PER_REQUEST * BULK_PAYLOAD) as u64;
    eprintln!(
        "{STALLED} stalled subscribers; {} KiB committed; relay memory grew by {} KiB",
        written / 1024,
        grown / 1024
    );
    assert!(
        grown < RSS_BOUND,
        "the relay grew by {grown} bytes while {STALLED} subscribers did not read"
    );
    // When they read again, each gets its stream whole and in order.
    let head = FILL + ROUNDS * u64::from(DEVICES);
    for subscription in &mut stalled {
        assert_eq!(
            subscription.until_position(head).await,
            (1..=head).collect::<Vec<_>>()
        );
    }
    scene.assert_honest_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_their_quota_is_refused_and_the_operator_sees_it() {
    let mut scene = Scene::start_with(&[("CAIRN_RELAY_LIMITS__USER_QUOTA_ENVELOPES", "5")]).await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    let envelopes: Vec<_> = (1..=6)
        .map(|seq| device.envelope(seq, Scope::Private, b"more and more"))
        .collect();
    let outcomes = hostile.append(envelopes.clone()).await;
    for (envelope, outcome) in envelopes.iter().zip(&outcomes).take(5) {
        assert!(matches!(outcome, AppendOutcome::Stored(_)), "{outcome:?}");
        scene.expect_stored(envelope.clone());
    }
    match &outcomes[5] {
        AppendOutcome::Refused(error) => assert_eq!(error.code, ErrorCode::QUOTA_EXCEEDED),
        other => panic!("the sixth envelope was not refused: {other:?}"),
    }
    assert!(hostile.is_open(), "a quota refusal does not close");
    // The operator sees who is at their quota, online.
    let users: serde_json::Value =
        serde_json::from_str(&cli::relay_command(&["users", "--json"], scene.data_dir())).unwrap();
    let entry = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == mallory.id.to_text())
        .unwrap();
    assert_eq!(entry["stored_envelopes"], 5);
    assert_eq!(entry["at_quota"], true);
    let stats: serde_json::Value =
        serde_json::from_str(&cli::relay_command(&["stats", "--json"], scene.data_dir())).unwrap();
    assert_eq!(stats["users_at_quota"], 1);
    assert_eq!(stats["quota"]["envelopes"], 5);
    // Who uses the disk: the user at quota is among the largest.
    assert!(
        stats["largest_users"]
            .to_string()
            .contains(&mallory.id.to_text()),
        "{stats}"
    );
    // And as people read it.
    let table = cli::relay_command(&["users"], scene.data_dir());
    let row = table
        .lines()
        .find(|line| line.starts_with(&mallory.id.to_text()))
        .unwrap_or_else(|| panic!("no row for the user: {table}"));
    assert!(row.trim_end().ends_with("yes"), "at quota: {row}");
    let stats = cli::relay_command(&["stats"], scene.data_dir());
    assert!(stats.contains("at quota)"), "{stats}");
    assert!(stats.contains("5 envelopes"), "{stats}");
    scene.finish().await;
}

/// Registers a new user's device with `invite`; the relay's answer.
async fn register_with(relay: &support::RelayProcess, seed: u32, invite: &str) -> Response {
    let raw = RawConnection::dial(relay).await;
    let device = User::new(seed).device(1);
    let Request::Authenticate(mut auth) = raw.authenticate_request(&device) else {
        unreachable!("an authenticate request");
    };
    auth.invite = Some(BoundedString::truncating(invite));
    raw.request(&Request::Authenticate(auth))
        .await
        .response()
        .clone()
}

fn refused_registration(answer: &Response) -> bool {
    matches!(answer, Response::Error(e) if e.code == ErrorCode::REGISTRATION_REFUSED)
}

/// Invite codes were reusable shared secrets in the config. Now the
/// operator makes invites that are single-use unless told otherwise, and
/// revokes them, without a restart; configured codes keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_invites_are_spent_once_and_can_be_revoked() {
    let dir = tempfile::TempDir::new().unwrap();
    let relay = support::RelayProcess::spawn_with_env(
        dir.path(),
        "127.0.0.1:0".parse().unwrap(),
        &[
            ("CAIRN_RELAY_REGISTRATION__POLICY", "invite"),
            ("CAIRN_RELAY_REGISTRATION__INVITES", "[\"shared-old-code\"]"),
        ],
    );
    let operate = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&cli::relay_command(args, dir.path())).unwrap()
    };
    let once = operate(&["invite", "create"]);
    let twice = operate(&["invite", "create", "--uses", "2", "--expires", "1h"]);
    let code = |made: &serde_json::Value| made["code"].as_str().unwrap().to_owned();
    assert_eq!(twice["invite"]["uses_left"], 2);
    assert!(twice["invite"]["expires"].is_string());

    assert!(matches!(
        register_with(&relay, 200, &code(&once)).await,
        Response::Authenticated(_)
    ));
    assert!(refused_registration(
        &register_with(&relay, 201, &code(&once)).await
    ));
    for seed in [202, 203] {
        let answer = register_with(&relay, seed, &code(&twice)).await;
        assert!(matches!(answer, Response::Authenticated(_)), "{answer:?}");
    }
    assert!(refused_registration(
        &register_with(&relay, 204, &code(&twice)).await
    ));

    let revoked = operate(&["invite", "create"]);
    let listed = operate(&["invite", "list"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [revoked["invite"]["id"].as_str().unwrap()],
        "used-up invites are gone"
    );
    assert!(
        !listed.to_string().contains(&code(&revoked)),
        "a listing shows no code"
    );
    operate(&["invite", "revoke", ids[0]]);
    assert!(refused_registration(
        &register_with(&relay, 205, &code(&revoked)).await
    ));
    assert_eq!(operate(&["invite", "list"]), serde_json::json!([]));
    // Codes from the configuration are reusable, as before.
    for seed in [206, 207] {
        let answer = register_with(&relay, seed, "shared-old-code").await;
        assert!(matches!(answer, Response::Authenticated(_)), "{answer:?}");
    }
    assert!(refused_registration(
        &register_with(&relay, 208, "a guess").await
    ));
}

/// Every test `spec/threats.md` points at exists, so that the table cannot
/// cite a test that was renamed or removed.
#[test]
fn the_threat_model_points_at_tests_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let table = std::fs::read_to_string(root.join("spec/threats.md")).unwrap();
    let mut cited = 0;
    for reference in table
        .split('`')
        .filter(|s| s.ends_with(".rs") || s.contains(".rs::"))
    {
        let (file, test) = reference.split_once("::").unwrap_or((reference, ""));
        let source = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("spec/threats.md cites {file}: {e}"));
        if !test.is_empty() {
            assert!(
                source.contains(&format!("fn {test}(")),
                "spec/threats.md cites {file}::{test}, which does not exist"
            );
        }
        cited += 1;
    }
    assert!(cited >= 10, "only {cited} tests cited");
}

/// A stranger wrote 100 MiB into a victim's direct stream. Now a direct
/// stream takes envelopes only from users its recipient has granted, and
/// from the recipient's own devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_write_into_anothers_direct_stream() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    let alice = scene.alice.id;
    let spam = device.envelope(1, Scope::Direct(alice), b"unsolicited");
    let outcomes = hostile.append(vec![spam.clone()]).await;
    match &outcomes[..] {
        [AppendOutcome::Refused(error)] => assert_eq!(error.code, ErrorCode::FORBIDDEN),
        other => panic!("a stranger's direct envelope was not refused: {other:?}"),
    }
    // Nothing was stored and no sequence number was used up: once Alice
    // adds Mallory, the same envelope goes in at position 1.
    scene.alice_adds(mallory.id).await;
    let outcomes = hostile.append(vec![spam.clone()]).await;
    assert!(matches!(&outcomes[..], [AppendOutcome::Stored(ack)] if ack.position == 1));
    scene.expect_stored(spam);
    // Alice writes into her own direct stream without anyone's grant.
    scene.publish(Scope::Direct(alice), b"a note to self").await;
    scene.finish().await;
}

/// Whoever saw a link code could approve it first and capture the new
/// device. A joining device now names the user it joins and enrols only
/// as a device that user registered: a stranger's approval registers the
/// device under the stranger's own account, which the device never uses.
#[test]
fn a_stranger_who_sees_a_link_code_cannot_capture_the_device() {
    let relay = cli::Relay::start();
    let (laptop, phone, stranger) = (cli::Home::new(), cli::Home::new(), cli::Home::new());
    let user = laptop.init(&relay.target, "laptop");
    let strangers_user = stranger.init(&relay.target, "mallory");
    let joined = phone.json(&[
        "device",
        "join",
        "--user",
        &user,
        "--relay",
        &relay.target.addr,
        "--fingerprint",
        &relay.target.fingerprint,
        "--name",
        "phone",
    ]);
    let code = joined["code"].as_str().unwrap().to_owned();
    stranger.ok(&["device", "approve", &code]);
    let (exit, _) = phone.fails(&["sync"]);
    assert_eq!(
        exit, 10,
        "not approved yet: the stranger's approval did not count"
    );
    laptop.ok(&["device", "approve", &code]);
    assert_eq!(phone.json(&["sync"])["linked"], true);
    let whoami = phone.json(&["whoami"]);
    assert_eq!(whoami["user"], user.as_str());
    assert_ne!(whoami["user"], strangers_user.as_str());
}

/// A stranger's unilateral grant put their posts into a victim's sync and
/// feed. A hello now carries the friends streams of users the reader has
/// added back, and no one else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_unilateral_grant_does_not_reach_the_victims_sync() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    let alice = scene.alice.id;
    let grant = mallory.grant(alice);
    assert_eq!(
        hostile
            .request(&Request::GrantFriend(grant.clone()))
            .await
            .response(),
        &Response::Done
    );
    let post = device.envelope(1, Scope::Friends, b"buy my stuff");
    assert!(matches!(
        &hostile.append(vec![post.clone()]).await[..],
        [AppendOutcome::Stored(_)]
    ));
    scene.expect_stored(post);
    let strangers_streams = |response: Response| -> usize {
        let Response::Synced(synced) = response else {
            panic!("hello answered {response:?}");
        };
        synced
            .pages
            .iter()
            .filter(|page| page.stream.owner == mallory.id)
            .count()
    };
    let hello = Request::Hello(HelloRequest::default());
    assert_eq!(
        strangers_streams(scene.honest_request(hello.clone()).await),
        0
    );
    // Once Alice adds Mallory, Mallory's friends stream comes with it.
    scene.alice_adds(mallory.id).await;
    scene.expect_statement(grant.encode());
    assert_eq!(strangers_streams(scene.honest_request(hello).await), 1);
    scene.finish().await;
}

/// Statements cost the relay a row each: a user may certify at most 256
/// devices (what a status answer lists) and keep at most 4096 friend
/// records, so a stranger cannot grow the registry without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_grow_the_registry_without_bound() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    // Device 1 is registered; devices 2..=256 fill the registry.
    for n in 2..=256u32 {
        let certificate = mallory.device(n).certificate;
        let answer = hostile
            .request(&Request::RegisterDevice(certificate.clone()))
            .await;
        assert_eq!(answer.response(), &Response::Done, "device {n}");
        scene.expect_statement(certificate.encode());
    }
    let one_more = mallory.device(257).certificate;
    let answer = hostile.request(&Request::RegisterDevice(one_more)).await;
    assert_eq!(answer.error_code(), ErrorCode::QUOTA_EXCEEDED);
    assert!(hostile.is_open(), "a refused statement does not close");
    scene.finish().await;
}

/// Writes into a stopped relay's database that `granter` added `grantee`,
/// as whoever holds the file can: the store takes statements as already
/// verified, so the signature is junk.
fn forge_grant(data_dir: &std::path::Path, granter: &str, grantee: &str) {
    use cairn_store::Store;
    let body = FriendGrantBody::new(granter.parse().unwrap(), grantee.parse().unwrap(), now_ms());
    let forged = FriendGrant::from_parts(body, Signature::from_bytes([7; 64]));
    assert!(forged.verify().is_err(), "the grant is a forgery");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = cairn_store::RedbStore::open(data_dir.join("relay.redb")).unwrap();
        store.grant_friend(forged).await.unwrap();
    });
}

/// A relay (or whoever holds its database) could route a stranger's posts
/// and key grants to a user by pretending the user had added them. The
/// client reads only its own user's streams and those of users it added:
/// it ignores the stranger's envelopes (not shown, not stored, not kept
/// waiting for keys) and leaves their cursors where they were, so that
/// adding the stranger later reads everything.
#[test]
fn a_relay_that_invents_consent_cannot_put_a_strangers_posts_in_a_feed() {
    let mut relay = cli::Relay::start();
    let (bob, mallory) = (cli::Home::new(), cli::Home::new());
    let bob_id = bob.init(&relay.target, "bob");
    let mallory_id = mallory.init(&relay.target, "mallory");
    mallory.ok(&["friend", "add", &bob_id, "--name", "bob"]);
    relay.terminate();
    forge_grant(relay.data_dir(), &bob_id, &mallory_id);
    relay.restart();
    // Believing Bob added her, the relay shows Mallory Bob's exchange key
    // and takes her key grant into Bob's direct stream.
    mallory.ok(&["audience", "create", "fans", "--member", "bob"]);
    mallory.ok(&["post", "--to", "fans", "buy my stuff"]);
    mallory.ok(&["audience", "create", "inner"]);
    mallory.ok(&["post", "--to", "inner", "sealed to nobody Bob knows"]);
    mallory.ok(&["sync"]);

    let report = bob.json(&["sync"]);
    assert!(
        report["ignored"].as_u64().unwrap() >= 3,
        "the relay did send Mallory's envelopes: {report}"
    );
    assert_eq!(report["waiting"], 0, "nothing of Mallory's waits for keys");
    assert!(
        bob.feed_texts().is_empty(),
        "Mallory's post reached the feed"
    );
    let again = bob.json(&["sync"]);
    assert_eq!(again["pulled"], 0, "{again}");
    assert_eq!(
        again["ignored"], report["ignored"],
        "still ignored: {again}"
    );

    // Once Bob does add Mallory, everything she sent is read from where
    // it was.
    bob.ok(&["friend", "add", &mallory_id, "--name", "mallory"]);
    let report = bob.json(&["sync"]);
    assert_eq!(report["ignored"], 0, "{report}");
    assert_eq!(bob.feed_texts(), ["buy my stuff"]);
    assert_eq!(report["waiting"], 1, "the post to `inner` waits: {report}");
}
