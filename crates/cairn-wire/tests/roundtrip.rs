//! Property tests: every wire type round-trips through its canonical
//! encoding, text forms round-trip and catch typos, and decoders are total.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cairn_wire::limits::{MAX_BATCH, MAX_ENVELOPE_LEN, MAX_PAYLOAD_LEN};
use cairn_wire::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn user() -> impl Strategy<Value = UserId> {
    any::<[u8; 32]>().prop_map(UserId::from_bytes)
}

fn device() -> impl Strategy<Value = DeviceId> {
    any::<[u8; 32]>().prop_map(DeviceId::from_bytes)
}

fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature::from_bytes(s)
    })
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Private),
        Just(Scope::Friends),
        user().prop_map(Scope::Direct)
    ]
}

fn stream() -> impl Strategy<Value = StreamId> {
    (user(), scope()).prop_map(|(owner, scope)| StreamId::new(owner, scope))
}

fn cursor() -> impl Strategy<Value = Cursor> {
    (stream(), any::<u64>()).prop_map(|(stream, position)| Cursor { stream, position })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (
        user(),
        device(),
        any::<u64>(),
        any::<u64>(),
        scope(),
        vec(any::<u8>(), 0..600),
        signature(),
    )
        .prop_map(|(author, device, seq, ts, scope, payload, sig)| {
            let header = EnvelopeHeader::new(author, device, seq, FIRST_IN_STREAM, ts, scope);
            UnsignedEnvelope {
                header,
                payload: Payload::new(payload).unwrap(),
            }
            .with_signature(sig)
        })
}

fn certificate() -> impl Strategy<Value = DeviceCertificate> {
    (
        user(),
        device(),
        any::<[u8; 32]>(),
        any::<u64>(),
        signature(),
    )
        .prop_map(|(u, d, x, t, s)| {
            DeviceCertificate::from_parts(
                DeviceCertificateBody::new(u, d, ExchangeKey::from_bytes(x), t),
                s,
            )
        })
}

fn wire_error() -> impl Strategy<Value = WireError> {
    let detail = prop_oneof![
        Just(ErrorDetail::None),
        any::<u64>().prop_map(ErrorDetail::ExpectedSeq),
        any::<u64>().prop_map(ErrorDetail::RetryAfterMs),
    ];
    (any::<u16>(), ".{0,80}", detail)
        .prop_map(|(code, msg, detail)| WireError::new(ErrorCode(code), &msg).with_detail(detail))
}

fn entries() -> impl Strategy<Value = BoundedVec<Entry, { limits::MAX_PAGE_ENTRIES }>> {
    vec(
        (any::<u64>(), envelope()).prop_map(|(position, envelope)| Entry { position, envelope }),
        0..4,
    )
    .prop_map(|e| BoundedVec::new(e).unwrap())
}

fn envelopes() -> impl Strategy<Value = BoundedVec<Envelope, MAX_BATCH>> {
    vec(envelope(), 0..4).prop_map(|e| BoundedVec::new(e).unwrap())
}

fn expired() -> impl Strategy<Value = Expired> {
    let head =
        (device(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(device, seq, id)| ExpiredHead {
            device,
            seq,
            id: EnvelopeId::from_bytes(id),
        });
    (any::<u64>(), vec(head, 0..4)).prop_map(|(through, heads)| Expired {
        through,
        heads: BoundedVec::new(heads).unwrap(),
    })
}

fn page() -> impl Strategy<Value = StreamPage> {
    (
        stream(),
        entries(),
        any::<bool>(),
        proptest::option::of(expired()),
    )
        .prop_map(|(stream, entries, more, expired)| StreamPage {
            stream,
            entries,
            more,
            expired: expired.map(Box::new),
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            certificate(),
            signature(),
            proptest::option::of("[a-z0-9-]{0,40}")
        )
            .prop_map(|(certificate, proof, invite)| {
                Request::Authenticate(AuthRequest {
                    certificate,
                    proof,
                    invite: invite.map(|i| BoundedString::new(i).unwrap()),
                })
            }),
        (vec(cursor(), 0..4), envelopes()).prop_map(|(c, outbox)| Request::Hello(HelloRequest {
            cursors: BoundedVec::new(c).unwrap(),
            outbox
        })),
        envelopes().prop_map(|envelopes| Request::Append(AppendRequest { envelopes })),
        (stream(), any::<u64>(), any::<u32>()).prop_map(|(stream, after, limit)| Request::Read(
            ReadRequest {
                stream,
                after,
                limit
            }
        )),
        (stream(), any::<u64>())
            .prop_map(|(stream, after)| Request::Subscribe(SubscribeRequest { stream, after })),
        cursor().prop_map(Request::Ack),
        certificate().prop_map(Request::RegisterDevice),
        (user(), device(), any::<u64>(), signature()).prop_map(|(u, d, t, s)| {
            Request::RevokeDevice(DeviceRevocation::from_parts(
                DeviceRevocationBody::new(u, d, t),
                s,
            ))
        }),
        (user(), user(), any::<u64>(), signature()).prop_map(|(a, b, t, s)| Request::GrantFriend(
            FriendGrant::from_parts(FriendGrantBody::new(a, b, t), s)
        )),
        (user(), user(), any::<u64>(), signature()).prop_map(|(a, b, t, s)| Request::RevokeFriend(
            FriendRevocation::from_parts(FriendRevocationBody::new(a, b, t), s)
        )),
        Just(Request::Status),
    ]
}

fn outcome() -> impl Strategy<Value = AppendOutcome> {
    let ack = (any::<[u8; 32]>(), any::<u64>()).prop_map(|(id, position)| AppendAck {
        id: EnvelopeId::from_bytes(id),
        position,
    });
    prop_oneof![
        ack.clone().prop_map(AppendOutcome::Stored),
        ack.prop_map(AppendOutcome::Duplicate),
        wire_error().prop_map(AppendOutcome::Refused),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let device_status = (device(), any::<bool>(), any::<u64>(), vec(cursor(), 0..3)).prop_map(
        |(device, revoked, last_seq, acked)| DeviceStatus {
            device,
            revoked,
            last_seq,
            acked: BoundedVec::new(acked).unwrap(),
        },
    );
    prop_oneof![
        (user(), device(), any::<bool>(), any::<[u8; 16]>()).prop_map(
            |(user, device, registered, log)| {
                Response::Authenticated(AuthOk {
                    user,
                    device,
                    registered,
                    log: LogId::from_bytes(log),
                })
            }
        ),
        (vec(outcome(), 0..4), vec(page(), 0..3), any::<bool>()).prop_map(|(acks, pages, more)| {
            Response::Synced(SyncResponse {
                acks: BoundedVec::new(acks).unwrap(),
                pages: BoundedVec::new(pages).unwrap(),
                more,
            })
        }),
        vec(outcome(), 0..4).prop_map(|o| Response::Appended(BoundedVec::new(o).unwrap())),
        page().prop_map(Response::Page),
        entries().prop_map(|e| Response::Subscription(SubscriptionEvent::Entries(e))),
        any::<u64>()
            .prop_map(|position| Response::Subscription(SubscriptionEvent::Live { position })),
        wire_error().prop_map(|e| Response::Subscription(SubscriptionEvent::End(e))),
        expired().prop_map(|e| Response::Subscription(SubscriptionEvent::Expired(e))),
        Just(Response::Done),
        vec(device_status, 0..3).prop_map(|d| Response::Status(StatusResponse {
            devices: BoundedVec::new(d).unwrap()
        })),
        wire_error().prop_map(Response::Error),
    ]
}

proptest! {
    /// Up to 4 varied entries, and up to 300 copies of one (a count past
    /// one varint byte).
    #[test]
    fn a_live_entries_frame_made_from_entries_encoded_once_is_that_frame(
        varied in entries(),
        copies in 0usize..300,
        position in any::<u64>(),
        env in envelope(),
    ) {
        let same = vec![Entry { position, envelope: env }; copies];
        for list in [varied.into_iter().collect::<Vec<_>>(), same] {
            let encoded: Vec<Vec<u8>> = list
                .iter()
                .map(|e| frames::encode_entry(e.position, &e.envelope))
                .collect();
            for (entry, encoding) in list.iter().zip(&encoded) {
                let stored = entry.envelope.encode();
                prop_assert_eq!(&frames::entry_encoding(entry.position, &stored), encoding);
            }
            let len = encoded.iter().map(Vec::len).sum();
            let mut frame = frames::live_entries_frame_header(list.len(), len).unwrap();
            encoded.iter().for_each(|e| frame.extend_from_slice(e));
            let event = SubscriptionEvent::Entries(BoundedVec::new(list).unwrap());
            prop_assert_eq!(frame, Response::Subscription(event).to_frame());
        }
    }

    #[test]
    fn envelopes_round_trip(env in envelope()) {
        let bytes = env.encode();
        prop_assert!(bytes.len() <= MAX_ENVELOPE_LEN);
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), env.clone());
        prop_assert_eq!(Envelope::id_of_encoding(&bytes), env.id());
    }

    #[test]
    fn headers_round_trip_alone(env in envelope()) {
        let bytes = env.header().encode();
        prop_assert!(bytes.len() <= limits::MAX_HEADER_LEN);
        prop_assert_eq!(&EnvelopeHeader::decode(&bytes).unwrap(), env.header());
    }

    #[test]
    fn statements_round_trip(cert in certificate()) {
        prop_assert_eq!(DeviceCertificate::decode(&cert.encode()).unwrap(), cert);
    }

    #[test]
    fn requests_round_trip(req in request()) {
        let frame = req.to_frame();
        prop_assert_eq!(Request::from_frame(&frame).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let frame = resp.to_frame();
        prop_assert_eq!(Response::from_frame(&frame).unwrap(), resp);
    }

    #[test]
    fn ids_round_trip_through_text(bytes in any::<[u8; 32]>()) {
        let user = UserId::from_bytes(bytes);
        prop_assert_eq!(user.to_text().parse::<UserId>().unwrap(), user);
        let device = DeviceId::from_bytes(bytes);
        prop_assert_eq!(device.to_text().parse::<DeviceId>().unwrap(), device);
        let id = EnvelopeId::from_bytes(bytes);
        prop_assert_eq!(id.to_text().parse::<EnvelopeId>().unwrap(), id);
        let key = ExchangeKey::from_bytes(bytes);
        prop_assert_eq!(key.to_text().parse::<ExchangeKey>().unwrap(), key);
    }

    #[test]
    fn signatures_round_trip_through_text(sig in signature()) {
        prop_assert_eq!(sig.to_text().parse::<Signature>().unwrap(), sig);
    }

    #[test]
    fn one_character_typos_are_rejected(bytes in any::<[u8; 32]>(), at in 3usize..58, with in 0usize..32) {
        const ALPHABET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let text = UserId::from_bytes(bytes).to_text();
        let mut typo = text.clone().into_bytes();
        prop_assume!(typo[at] != ALPHABET[with]);
        typo[at] = ALPHABET[with];
        let typo = String::from_utf8(typo).unwrap();
        prop_assert!(typo.parse::<UserId>().is_err(), "{} accepted as {}", typo, text);
    }

    #[test]
    fn decoders_are_total(bytes in vec(any::<u8>(), 0..512)) {
        // Whatever the bytes, decoding returns; and success means canonical.
        if let Ok(env) = Envelope::decode(&bytes) { prop_assert_eq!(env.encode(), bytes.clone()); }
        if let Ok(req) = Request::decode(&bytes) { prop_assert_eq!(req.encode(), bytes.clone()); }
        if let Ok(resp) = Response::decode(&bytes) { prop_assert_eq!(resp.encode(), bytes.clone()); }
        if let Ok(cert) = DeviceCertificate::decode(&bytes) { prop_assert_eq!(cert.encode(), bytes); }
    }
}

#[test]
fn payload_limit_is_enforced_on_construction() {
    assert!(Payload::new(vec![0; MAX_PAYLOAD_LEN]).is_ok());
    assert_eq!(
        Payload::new(vec![0; MAX_PAYLOAD_LEN + 1]).unwrap_err(),
        TooLong {
            len: MAX_PAYLOAD_LEN + 1,
            max: MAX_PAYLOAD_LEN
        }
    );
}

#[test]
fn a_full_batch_of_largest_envelopes_is_refused_by_the_frame_limit() {
    let env = UnsignedEnvelope {
        header: EnvelopeHeader::new(
            UserId::from_bytes([1; 32]),
            DeviceId::from_bytes([2; 32]),
            1,
            FIRST_IN_STREAM,
            1,
            Scope::Private,
        ),
        payload: Payload::new(vec![7; MAX_PAYLOAD_LEN]).unwrap(),
    }
    .with_signature(Signature::from_bytes([0; 64]));
    let batch = BoundedVec::<_, MAX_BATCH>::new(vec![env; 17]).unwrap();
    let body = Request::Append(AppendRequest { envelopes: batch }).encode();
    assert_eq!(Request::decode(&body).unwrap_err().kind(), "too_large");
}

#[test]
fn the_largest_authenticate_frame_fits_the_pre_authentication_limit() {
    let certificate = DeviceCertificate::from_parts(
        DeviceCertificateBody::new(
            UserId::from_bytes([0xff; 32]),
            DeviceId::from_bytes([0xff; 32]),
            ExchangeKey::from_bytes([0xff; 32]),
            u64::MAX,
        ),
        Signature::from_bytes([0xff; 64]),
    );
    let invite = "x".repeat(limits::MAX_INVITE_LEN);
    let request = Request::Authenticate(AuthRequest {
        certificate,
        proof: Signature::from_bytes([0xff; 64]),
        invite: Some(BoundedString::truncating(&invite)),
    });
    let len = request.encode().len();
    assert!(
        len <= limits::MAX_AUTH_FRAME_LEN,
        "{len} > {}",
        limits::MAX_AUTH_FRAME_LEN
    );
}

#[test]
fn bounded_vec_refuses_more_items_than_its_limit() {
    // Three items announced and present, for a field that allows two.
    let bytes = [3u8, 1, 2, 3];
    let err = postcard::from_bytes::<BoundedVec<u8, 2>>(&bytes).unwrap_err();
    assert_eq!(err, postcard::Error::SerdeDeCustom);
    assert!(postcard::from_bytes::<BoundedVec<u8, 3>>(&bytes).is_ok());
}

#[test]
fn bounded_string_truncates_at_a_character_boundary() {
    let s = BoundedString::<4>::truncating("aéé");
    assert_eq!(s.as_str(), "aé");
}

#[test]
fn unknown_error_codes_decode_and_name_themselves_unknown() {
    let err = WireError::new(ErrorCode(999), "from the future");
    let back = Response::decode(&Response::Error(err.clone()).encode()).unwrap();
    assert_eq!(back, Response::Error(err));
    assert_eq!(ErrorCode(999).name(), "unknown");
    assert_eq!(ErrorCode::SEQ_GAP.name(), "seq_gap");
}

#[test]
fn no_live_entries_frame_header_past_a_frames_limits() {
    let most = limits::MAX_PAGE_ENTRIES;
    assert!(frames::live_entries_frame_header(most, 1000).is_some());
    assert!(frames::live_entries_frame_header(most + 1, 1000).is_none());
    assert!(frames::live_entries_frame_header(1, limits::MAX_FRAME_LEN).is_none());
    assert!(frames::live_entries_frame_header(1, usize::MAX).is_none());
}

#[test]
fn an_envelope_checked_with_its_devices_decoded_key_verifies_as_it_does_alone() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
    let header = EnvelopeHeader::new(
        UserId::from_bytes([1; 32]),
        device,
        1,
        FIRST_IN_STREAM,
        0,
        Scope::Private,
    );
    let envelope = UnsignedEnvelope {
        header,
        payload: Payload::new(b"a note".to_vec()).unwrap(),
    }
    .sign(&key);
    let decoded = PublicKey::from_bytes(device.as_bytes()).unwrap();
    assert_eq!(envelope.verify(), Ok(()));
    assert_eq!(envelope.verify_by(&decoded), Ok(()));

    // Another device's key, even one that signed the same body, is refused.
    let other = SigningKey::from_bytes(&[8; 32]);
    let other_key = PublicKey::from_bytes(&other.verifying_key().to_bytes()).unwrap();
    assert_eq!(envelope.verify_by(&other_key), Err(BadSignature));

    // A tampered payload fails both ways.
    let tampered = UnsignedEnvelope {
        header: envelope.header().clone(),
        payload: Payload::new(b"a nose".to_vec()).unwrap(),
    }
    .with_signature(*envelope.signature());
    assert_eq!(tampered.verify(), Err(BadSignature));
    assert_eq!(tampered.verify_by(&decoded), Err(BadSignature));
}
