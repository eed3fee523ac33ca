//! A peer speaking bad frames: each gets its catalogued refusal, the relay
//! stays up for everyone else, and nothing stored changes.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_wire::*;
use support::*;

/// Sends raw bytes on a new stream of an authenticated connection and
/// returns the answer frame's decoded response, if any.
async fn send_raw(connection: &cairn_client::Connection, bytes: &[u8]) -> Option<Response> {
    let (mut send, mut recv) = connection.quic().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let body = tokio::time::timeout(WAIT, recv.read_to_end(2 * 1024 * 1024))
        .await
        .expect("no answer")
        .ok()?;
    let (frame, _) = frames::split_frame(&body).ok()?;
    Response::decode(frame).ok()
}

#[tokio::test]
async fn garbage_bytes_close_with_malformed_frame_and_others_carry_on() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let device = alice.device(2);
    let honest = relay.connect(&device).await;
    append_one(&honest, device.envelope(1, Scope::Private, b"kept")).await;

    let hostile = relay.connect(&User::new(3).device(4)).await;
    let answer = send_raw(&hostile, &frames::frame(&[0xff, 0x00, 0x13, 0x37])).await;
    assert_eq!(
        answer.map(|r| error_code(&r)),
        Some(ErrorCode::MALFORMED_FRAME)
    );
    assert_closed_with(hostile.quic(), ErrorCode::MALFORMED_FRAME).await;

    // The honest device is unaffected and its data unchanged.
    let stream = StreamId::new(alice.id, Scope::Private);
    assert_eq!(positions(&read(&honest, stream, 0).await), vec![1]);
    assert_eq!(
        append_one(&honest, device.envelope(2, Scope::Private, b"more")).await,
        2
    );
}

#[tokio::test]
async fn an_oversized_length_prefix_closes_with_frame_too_large_before_the_body() {
    let relay = TestRelay::start().await;
    let hostile = relay.connect(&User::new(3).device(4)).await;
    let too_long = u32::try_from(limits::MAX_FRAME_LEN + 1)
        .unwrap()
        .to_be_bytes();
    let answer = send_raw(&hostile, &too_long).await;
    assert_eq!(
        answer.map(|r| error_code(&r)),
        Some(ErrorCode::FRAME_TOO_LARGE)
    );
    assert_closed_with(hostile.quic(), ErrorCode::FRAME_TOO_LARGE).await;
}

#[tokio::test]
async fn a_truncated_frame_changes_nothing() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let device = alice.device(2);
    let connection = relay.connect(&device).await;
    let frame = Request::Append(AppendRequest {
        envelopes: BoundedVec::new(vec![device.envelope(1, Scope::Private, b"cut short")]).unwrap(),
    })
    .to_frame();
    // The stream ends 10 bytes early: no answer, nothing stored.
    assert_eq!(
        send_raw(&connection, &frame[..frame.len() - 10]).await,
        None
    );
    let stream = StreamId::new(alice.id, Scope::Private);
    assert_eq!(
        positions(&read(&connection, stream, 0).await),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn a_second_authenticate_is_an_unexpected_frame() {
    let relay = TestRelay::start().await;
    let device = User::new(1).device(2);
    let connection = relay.connect(&device).await;
    let again = Request::Authenticate(AuthRequest {
        certificate: device.certificate.clone(),
        proof: Signature::from_bytes([0; 64]),
        invite: None,
    });
    let answer = send_raw(&connection, &again.to_frame()).await;
    assert_eq!(
        answer.map(|r| error_code(&r)),
        Some(ErrorCode::UNEXPECTED_FRAME)
    );
    assert_closed_with(connection.quic(), ErrorCode::UNEXPECTED_FRAME).await;
}

#[tokio::test]
async fn requests_over_the_rate_limit_are_refused_with_a_retry_delay() {
    let relay = TestRelay::start_with(|c| {
        c.limits.requests_per_second_per_user = 1;
        c.limits.request_burst_per_user = 3;
    })
    .await;
    let connection = relay.connect(&User::new(1).device(2)).await;
    let mut refused = None;
    for _ in 0..10 {
        if let Response::Error(e) = request(&connection, Request::Status).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("no request was rate limited");
    assert_eq!(refused.code, ErrorCode::RATE_LIMITED);
    assert!(
        matches!(refused.detail, ErrorDetail::RetryAfterMs(ms) if ms > 0 && ms <= 1000),
        "{refused:?}"
    );
}

#[tokio::test]
async fn more_streams_than_allowed_cannot_be_opened() {
    let relay = TestRelay::start_with(|c| c.limits.streams_per_connection = 2).await;
    let alice = User::new(1);
    let connection = relay.connect(&alice.device(2)).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let _first = connection
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    let _second = connection
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    // QUIC flow control holds a third stream until one of the two ends.
    let third = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        connection.request(&Request::Status),
    )
    .await;
    assert!(
        third.is_err(),
        "a third concurrent stream was accepted: {third:?}"
    );
}
