//! The wire test vectors in `spec/vectors/`: every valid vector decodes,
//! verifies and re-encodes to the same bytes and id; every invalid vector
//! is refused with its stated error; and the files are exactly what this
//! code generates (run with `CAIRN_REGENERATE_VECTORS=1`, or
//! `cargo xtask vectors`, to rewrite them after a deliberate change).

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use cairn_wire::frames::split_frame;
use cairn_wire::limits::{MAX_ENVELOPE_LEN, MAX_FRAME_LEN, MAX_PAYLOAD_LEN};
use cairn_wire::*;
use serde_json::{Value, json};

#[test]
fn vector_files_match_the_code() {
    for (file, generated) in [
        ("wire-valid.json", valid_vectors()),
        ("wire-invalid.json", invalid_vectors()),
    ] {
        let path = vectors_dir().join(file);
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        if std::env::var_os("CAIRN_REGENERATE_VECTORS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            on_disk == text,
            "{file} differs from what the code generates; run `cargo xtask vectors`"
        );
    }
}

#[test]
fn valid_vectors_decode_verify_and_round_trip() {
    let file = read_vectors("wire-valid.json");
    for v in file["envelopes"].as_array().unwrap() {
        check_valid_envelope(v);
    }
    for v in file["statements"].as_array().unwrap() {
        check_valid_statement(v);
    }
    for v in file["frames"].as_array().unwrap() {
        check_valid_frame(v);
    }
    for v in file["ids"].as_array().unwrap() {
        check_valid_id(v);
    }
}

#[test]
fn invalid_vectors_fail_with_their_stated_error() {
    for v in read_vectors("wire-invalid.json").as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let got = refusal(v["kind"].as_str().unwrap(), &invalid_input(v));
        assert_eq!(got, v["error"].as_str().unwrap(), "invalid vector {name}");
    }
}

// ---- checking -------------------------------------------------------------

fn check_valid_envelope(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let bytes = hex::decode(v["encoding"].as_str().unwrap()).unwrap();
    let env = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(env.encode(), bytes, "{name}: re-encoding");
    assert_eq!(env.id().to_text(), v["id"].as_str().unwrap(), "{name}: id");
    env.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
    let h = env.header();
    assert_eq!(h.author.to_text(), v["author"].as_str().unwrap(), "{name}");
    assert_eq!(h.device.to_text(), v["device"].as_str().unwrap(), "{name}");
    assert_eq!(h.seq, v["seq"].as_u64().unwrap(), "{name}");
    assert_eq!(h.prev.to_text(), v["prev"].as_str().unwrap(), "{name}");
    assert_eq!(
        h.timestamp_ms,
        v["timestamp_ms"].as_u64().unwrap(),
        "{name}"
    );
    assert_eq!(h.scope.to_string(), v["scope"].as_str().unwrap(), "{name}");
    assert_eq!(
        hex::encode(env.payload().as_slice()),
        v["payload"].as_str().unwrap(),
        "{name}"
    );
    let key = SigningKey::from_bytes(&seed(v["device_seed"].as_str().unwrap()));
    let resigned = UnsignedEnvelope {
        header: h.clone(),
        payload: env.payload().clone(),
    }
    .sign(&key);
    assert_eq!(resigned, env, "{name}: Ed25519 signing is deterministic");
}

fn check_valid_statement(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let bytes = hex::decode(v["encoding"].as_str().unwrap()).unwrap();
    let reencoded = match v["kind"].as_str().unwrap() {
        "device_certificate" => reencode_statement::<DeviceCertificateBody>(&bytes),
        "device_revocation" => reencode_statement::<DeviceRevocationBody>(&bytes),
        "friend_grant" => reencode_statement::<FriendGrantBody>(&bytes),
        "friend_revocation" => reencode_statement::<FriendRevocationBody>(&bytes),
        other => panic!("{name}: unknown statement kind {other}"),
    };
    assert_eq!(reencoded, bytes, "{name}");
}

fn reencode_statement<B: Statement>(bytes: &[u8]) -> Vec<u8> {
    let statement = Signed::<B>::decode(bytes).unwrap();
    statement.verify().unwrap();
    statement.encode()
}

fn check_valid_frame(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let framed = hex::decode(v["frame"].as_str().unwrap()).unwrap();
    let (body, rest) = split_frame(&framed).unwrap();
    assert!(rest.is_empty(), "{name}");
    let reencoded = match v["kind"].as_str().unwrap() {
        "request" => Request::from_frame(&framed).unwrap().to_frame(),
        "response" => Response::from_frame(&framed).unwrap().to_frame(),
        other => panic!("{name}: unknown frame kind {other}"),
    };
    assert_eq!(reencoded, framed, "{name}");
    assert!(!body.is_empty(), "{name}");
}

fn check_valid_id(v: &Value) {
    let text = v["text"].as_str().unwrap();
    let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
    let parsed: Vec<u8> = match v["kind"].as_str().unwrap() {
        "user_id" => text.parse::<UserId>().unwrap().as_bytes().to_vec(),
        "device_id" => text.parse::<DeviceId>().unwrap().as_bytes().to_vec(),
        "envelope_id" => text.parse::<EnvelopeId>().unwrap().as_bytes().to_vec(),
        "exchange_key" => text.parse::<ExchangeKey>().unwrap().as_bytes().to_vec(),
        "log_id" => text.parse::<LogId>().unwrap().as_bytes().to_vec(),
        "signature" => text.parse::<Signature>().unwrap().as_bytes().to_vec(),
        other => panic!("unknown id kind {other}"),
    };
    assert_eq!(parsed, bytes, "{text}");
}

/// The stable name of the error `input` produces as `kind`, or "accepted".
fn refusal(kind: &str, input: &[u8]) -> String {
    let decoded = match kind {
        "envelope" => Envelope::decode(input)
            .map_err(|e| e.kind().to_owned())
            .and_then(|env| env.verify().map_err(|_| "bad_signature".to_owned())),
        "device_certificate" => DeviceCertificate::decode(input)
            .map_err(|e| e.kind().to_owned())
            .and_then(|c| c.verify().map(drop).map_err(|_| "bad_signature".to_owned())),
        "request_frame" => Request::from_frame(input)
            .map(drop)
            .map_err(|e| frame_error_name(&e)),
        "response_frame" => Response::from_frame(input)
            .map(drop)
            .map_err(|e| frame_error_name(&e)),
        "user_id_text" => {
            let text = std::str::from_utf8(input).unwrap();
            text.parse::<UserId>()
                .map(drop)
                .map_err(|e| id_error_name(&e).to_owned())
        }
        other => panic!("unknown invalid-vector kind {other}"),
    };
    decoded.err().unwrap_or_else(|| "accepted".to_owned())
}

fn frame_error_name(e: &FrameError) -> String {
    match e {
        FrameError::TooLarge { .. } => "frame_too_large".to_owned(),
        FrameError::Truncated => "truncated".to_owned(),
        FrameError::Decode(d) => d.kind().to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn id_error_name(e: &IdParseError) -> &'static str {
    match e {
        IdParseError::Invalid { .. } => "invalid_text",
        IdParseError::WrongPrefix { .. } => "wrong_prefix",
        IdParseError::WrongLength { .. } => "wrong_length",
        _ => "unknown",
    }
}

fn invalid_input(v: &Value) -> Vec<u8> {
    let mut bytes = match (v.get("hex"), v.get("text")) {
        (Some(h), _) => hex::decode(h.as_str().unwrap()).unwrap(),
        (_, Some(t)) => t.as_str().unwrap().as_bytes().to_vec(),
        _ => panic!("invalid vector without input"),
    };
    let zeros = v.get("append_zeros").and_then(Value::as_u64).unwrap_or(0);
    bytes.resize(bytes.len() + usize::try_from(zeros).unwrap(), 0);
    bytes
}

// ---- generating -------------------------------------------------------------

const ROOT_SEED: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DEVICE_SEED: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const FRIEND_ROOT_SEED: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const EXCHANGE_KEY: [u8; 32] = [0x44; 32];
const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn valid_vectors() -> Value {
    json!({
        "description": "Valid cairn wire encodings. Keys are Ed25519 seeds (RFC 8032 secret keys); all integers are decimal; byte strings are lowercase hex; ids use their Bech32m text form.",
        "envelopes": envelope_cases().iter().map(envelope_vector).collect::<Vec<_>>(),
        "statements": statement_vectors(),
        "frames": frame_vectors(),
        "ids": id_vectors(),
    })
}

struct EnvelopeCase {
    name: &'static str,
    seq: u64,
    timestamp_ms: u64,
    scope: Scope,
    payload: Vec<u8>,
}

/// A vector envelope's `prev`: none for a device's first envelope, a fixed
/// id for the others (the vectors stand alone; they do not chain).
fn prev_of(case: &EnvelopeCase) -> EnvelopeId {
    match case.seq {
        1 => FIRST_IN_STREAM,
        _ => EnvelopeId::from_bytes([0x77; 32]),
    }
}

fn envelope_cases() -> Vec<EnvelopeCase> {
    let friend = user_of(FRIEND_ROOT_SEED);
    vec![
        EnvelopeCase {
            name: "private_empty_payload",
            seq: 1,
            timestamp_ms: T0,
            scope: Scope::Private,
            payload: vec![],
        },
        EnvelopeCase {
            name: "friends_short_payload",
            seq: 2,
            timestamp_ms: T0 + 1,
            scope: Scope::Friends,
            payload: b"opaque".to_vec(),
        },
        EnvelopeCase {
            name: "direct_300_byte_payload",
            seq: 3,
            timestamp_ms: T0 + 2,
            scope: Scope::Direct(friend),
            payload: (0..300u16).map(|i| (i % 251) as u8).collect(),
        },
        EnvelopeCase {
            name: "largest_seq_and_timestamp",
            seq: u64::MAX,
            timestamp_ms: u64::MAX,
            scope: Scope::Private,
            payload: vec![0xff; 3],
        },
        EnvelopeCase {
            name: "largest_payload",
            seq: 5,
            timestamp_ms: T0 + 4,
            scope: Scope::Friends,
            payload: vec![0xab; MAX_PAYLOAD_LEN],
        },
    ]
}

fn envelope_of(case: &EnvelopeCase) -> Envelope {
    let key = SigningKey::from_bytes(&seed(DEVICE_SEED));
    let header = EnvelopeHeader::new(
        user_of(ROOT_SEED),
        device_of(DEVICE_SEED),
        case.seq,
        prev_of(case),
        case.timestamp_ms,
        case.scope,
    );
    UnsignedEnvelope {
        header,
        payload: Payload::new(case.payload.clone()).unwrap(),
    }
    .sign(&key)
}

fn envelope_vector(case: &EnvelopeCase) -> Value {
    let env = envelope_of(case);
    let mut v = json!({
        "name": case.name,
        "device_seed": DEVICE_SEED,
        "author": env.header().author.to_text(),
        "device": env.header().device.to_text(),
        "seq": case.seq,
        "prev": prev_of(case).to_text(),
        "timestamp_ms": case.timestamp_ms,
        "scope": case.scope.to_string(),
        "payload": hex::encode(&case.payload),
        "signature": hex::encode(env.signature().as_bytes()),
        "encoding": hex::encode(env.encode()),
        "id": env.id().to_text(),
    });
    // The signing input is shown for the small cases; for the largest it
    // would only repeat the encoding.
    if case.payload.len() <= 1024 {
        v["signing_input"] = json!(hex::encode(signing_input_of(&env)));
    }
    v
}

fn signing_input_of(env: &Envelope) -> Vec<u8> {
    let body = UnsignedEnvelope {
        header: env.header().clone(),
        payload: env.payload().clone(),
    }
    .signing_body();
    signing::signing_input(signing::DOMAIN_ENVELOPE, &body)
}

fn statement_vectors() -> Vec<Value> {
    let (user, device, friend) = (
        user_of(ROOT_SEED),
        device_of(DEVICE_SEED),
        user_of(FRIEND_ROOT_SEED),
    );
    let root = SigningKey::from_bytes(&seed(ROOT_SEED));
    let statement = |name: &str, kind: &str, encoding: Vec<u8>| json!({ "name": name, "kind": kind, "signer_seed": ROOT_SEED, "encoding": hex::encode(encoding) });
    vec![
        statement(
            "device_certificate",
            "device_certificate",
            certificate().encode(),
        ),
        statement(
            "device_revocation",
            "device_revocation",
            DeviceRevocation::sign(DeviceRevocationBody::new(user, device, T0 + 10), &root)
                .encode(),
        ),
        statement(
            "friend_grant",
            "friend_grant",
            FriendGrant::sign(FriendGrantBody::new(user, friend, T0 + 20), &root).encode(),
        ),
        statement(
            "friend_revocation",
            "friend_revocation",
            FriendRevocation::sign(FriendRevocationBody::new(user, friend, T0 + 30), &root)
                .encode(),
        ),
    ]
}

fn certificate() -> DeviceCertificate {
    let root = SigningKey::from_bytes(&seed(ROOT_SEED));
    let body = DeviceCertificateBody::new(
        user_of(ROOT_SEED),
        device_of(DEVICE_SEED),
        ExchangeKey::from_bytes(EXCHANGE_KEY),
        T0,
    );
    DeviceCertificate::sign(body, &root)
}

fn frame_vectors() -> Vec<Value> {
    let requests = request_cases()
        .into_iter()
        .map(|(name, r)| frame_vector(name, "request", r.to_frame()));
    let responses = response_cases()
        .into_iter()
        .map(|(name, r)| frame_vector(name, "response", r.to_frame()));
    requests.chain(responses).collect()
}

fn frame_vector(name: &str, kind: &str, frame: Vec<u8>) -> Value {
    json!({ "name": name, "kind": kind, "frame": hex::encode(frame) })
}

fn request_cases() -> Vec<(&'static str, Request)> {
    let device_key = SigningKey::from_bytes(&seed(DEVICE_SEED));
    let stream = StreamId::new(user_of(ROOT_SEED), Scope::Private);
    let envs = envelope_cases()
        .iter()
        .take(2)
        .map(envelope_of)
        .collect::<Vec<_>>();
    vec![
        (
            "authenticate",
            Request::Authenticate(AuthRequest {
                certificate: certificate(),
                proof: AuthRequest::prove(&device_key, &[0x55; 32]),
                invite: Some(BoundedString::new("invite-42".to_owned()).unwrap()),
            }),
        ),
        (
            "hello",
            Request::Hello(HelloRequest {
                cursors: BoundedVec::new(vec![Cursor {
                    stream,
                    position: 7,
                }])
                .unwrap(),
                outbox: BoundedVec::new(envs.clone()).unwrap(),
            }),
        ),
        (
            "append",
            Request::Append(AppendRequest {
                envelopes: BoundedVec::new(envs).unwrap(),
            }),
        ),
        (
            "read",
            Request::Read(ReadRequest {
                stream,
                after: 300,
                limit: 100,
            }),
        ),
        (
            "subscribe",
            Request::Subscribe(SubscribeRequest { stream, after: 0 }),
        ),
        (
            "ack",
            Request::Ack(Cursor {
                stream,
                position: 12,
            }),
        ),
        ("register_device", Request::RegisterDevice(certificate())),
        ("status", Request::Status),
        (
            "enrol",
            Request::Enrol(EnrolRequest {
                user: user_of(ROOT_SEED),
                device: device_of(DEVICE_SEED),
                proof: AuthRequest::prove(&device_key, &[0x55; 32]),
            }),
        ),
    ]
}

fn response_cases() -> Vec<(&'static str, Response)> {
    let stream = StreamId::new(user_of(ROOT_SEED), Scope::Friends);
    let env = envelope_of(&envelope_cases()[1]);
    let ack = AppendAck {
        id: env.id(),
        position: 1,
    };
    let entry = Entry {
        position: 1,
        envelope: env,
    };
    let gap = WireError::new(ErrorCode::SEQ_GAP, "expected seq 3")
        .with_detail(ErrorDetail::ExpectedSeq(3));
    let expired = Expired {
        through: 2,
        heads: BoundedVec::new(vec![ExpiredHead {
            device: device_of(DEVICE_SEED),
            seq: 2,
            id: EnvelopeId::from_bytes([0xe2; 32]),
        }])
        .unwrap(),
    };
    vec![
        (
            "authenticated",
            Response::Authenticated(AuthOk {
                user: user_of(ROOT_SEED),
                device: device_of(DEVICE_SEED),
                registered: true,
                log: LogId::from_bytes([0x1c; 16]),
            }),
        ),
        (
            "enrolled",
            Response::Enrolled(Box::new(Enrolment {
                ok: AuthOk {
                    user: user_of(ROOT_SEED),
                    device: device_of(DEVICE_SEED),
                    registered: false,
                    log: LogId::from_bytes([0x1c; 16]),
                },
                certificate: certificate(),
            })),
        ),
        (
            "appended",
            Response::Appended(
                BoundedVec::new(vec![
                    AppendOutcome::Stored(ack),
                    AppendOutcome::Duplicate(ack),
                    AppendOutcome::Refused(gap),
                ])
                .unwrap(),
            ),
        ),
        (
            "page",
            Response::Page(StreamPage {
                stream,
                entries: BoundedVec::new(vec![entry.clone()]).unwrap(),
                more: false,
                expired: None,
            }),
        ),
        (
            "page_past_expired",
            Response::Page(StreamPage {
                stream,
                entries: BoundedVec::new(vec![Entry {
                    position: 3,
                    envelope: entry.envelope.clone(),
                }])
                .unwrap(),
                more: false,
                expired: Some(Box::new(expired.clone())),
            }),
        ),
        (
            "subscription_expired",
            Response::Subscription(SubscriptionEvent::Expired(expired)),
        ),
        (
            "subscription_entries",
            Response::Subscription(SubscriptionEvent::Entries(
                BoundedVec::new(vec![entry]).unwrap(),
            )),
        ),
        (
            "subscription_live",
            Response::Subscription(SubscriptionEvent::Live { position: 1 }),
        ),
        ("done", Response::Done),
        (
            "error_forbidden",
            Response::Error(WireError::new(ErrorCode::FORBIDDEN, "forbidden")),
        ),
        (
            "error_rate_limited",
            Response::Error(
                WireError::new(ErrorCode::RATE_LIMITED, "slow down")
                    .with_detail(ErrorDetail::RetryAfterMs(250)),
            ),
        ),
    ]
}

fn id_vectors() -> Vec<Value> {
    let env = envelope_of(&envelope_cases()[0]);
    let id = |kind: &str, bytes: &[u8], text: String| json!({ "kind": kind, "hex": hex::encode(bytes), "text": text });
    vec![
        id(
            "user_id",
            user_of(ROOT_SEED).as_bytes(),
            user_of(ROOT_SEED).to_text(),
        ),
        id(
            "device_id",
            device_of(DEVICE_SEED).as_bytes(),
            device_of(DEVICE_SEED).to_text(),
        ),
        id("envelope_id", env.id().as_bytes(), env.id().to_text()),
        id(
            "exchange_key",
            &EXCHANGE_KEY,
            ExchangeKey::from_bytes(EXCHANGE_KEY).to_text(),
        ),
        id(
            "log_id",
            &[0x1c; 16],
            LogId::from_bytes([0x1c; 16]).to_text(),
        ),
        id(
            "signature",
            env.signature().as_bytes(),
            env.signature().to_text(),
        ),
    ]
}

fn invalid_vectors() -> Value {
    let good = envelope_of(&envelope_cases()[1]).encode();
    let seq_at = 1 + 32 + 32; // version, author, device; then seq, prev
    let mut cases = vec![
        invalid("envelope_empty", "envelope", &[], "malformed"),
        invalid(
            "envelope_unknown_version",
            "envelope",
            &with_byte(&good, 0, 1),
            "unsupported_version",
        ),
        invalid(
            "envelope_truncated",
            "envelope",
            &good[..good.len() - 1],
            "malformed",
        ),
        invalid(
            "envelope_trailing_byte",
            "envelope",
            &[good.as_slice(), &[0]].concat(),
            "trailing_bytes",
        ),
        invalid(
            "envelope_overlong_seq_varint",
            "envelope",
            &[&good[..seq_at], &[0x82, 0x00], &good[seq_at + 1..]].concat(),
            "non_canonical",
        ),
        invalid(
            "envelope_unknown_scope_tag",
            "envelope",
            &with_byte(&good, seq_at + 1 + 32 + 6, 3),
            "malformed",
        ),
        invalid(
            "envelope_flipped_payload_bit",
            "envelope",
            &flip_payload_bit(&good),
            "bad_signature",
        ),
        invalid(
            "envelope_signed_by_other_key",
            "envelope",
            &resigned_by_friend(),
            "bad_signature",
        ),
        invalid(
            "certificate_forged_signature",
            "device_certificate",
            &forged_certificate(),
            "bad_signature",
        ),
        invalid(
            "request_unknown_variant",
            "request_frame",
            &frame_of(&[12]),
            "malformed",
        ),
        invalid(
            "request_truncated_frame",
            "request_frame",
            &Request::Status.to_frame()[..4],
            "truncated",
        ),
        invalid(
            "request_frame_trailing_bytes",
            "request_frame",
            &frame_of(&[10, 0]),
            "trailing_bytes",
        ),
        invalid(
            "request_frame_over_limit",
            "request_frame",
            &(u32::try_from(MAX_FRAME_LEN).unwrap() + 1).to_be_bytes(),
            "frame_too_large",
        ),
        invalid(
            "request_batch_count_over_limit",
            "request_frame",
            &frame_of(&[2, 0x81, 0x02]),
            "malformed",
        ),
        invalid(
            "response_unknown_variant",
            "response_frame",
            &frame_of(&[9]),
            "malformed",
        ),
        invalid(
            "user_id_typo",
            "user_id_text",
            typo(&user_of(ROOT_SEED).to_text()).as_bytes(),
            "invalid_text",
        ),
        invalid(
            "user_id_given_a_device_id",
            "user_id_text",
            device_of(DEVICE_SEED).to_text().as_bytes(),
            "wrong_prefix",
        ),
    ];
    cases.push(oversized_payload(&good));
    cases.push(oversized_envelope());
    Value::Array(cases)
}

fn invalid(name: &str, kind: &str, input: &[u8], error: &str) -> Value {
    if kind.ends_with("_text") {
        return json!({ "name": name, "kind": kind, "text": std::str::from_utf8(input).unwrap(), "error": error });
    }
    json!({ "name": name, "kind": kind, "hex": hex::encode(input), "error": error })
}

/// A payload length prefix one over the limit, with that many bytes present.
fn oversized_payload(good: &[u8]) -> Value {
    let header_len = 1 + 32 + 32 + 1 + 32 + 6 + 1; // the friends_short_payload header
    let mut prefix = good[..header_len].to_vec();
    prefix.extend_from_slice(&[0x81, 0x80, 0x04]); // varint 65537
    let mut v = invalid(
        "envelope_payload_over_limit",
        "envelope",
        &prefix,
        "malformed",
    );
    v["append_zeros"] = json!(MAX_PAYLOAD_LEN + 1 + 64);
    v
}

/// An input longer than any envelope may be, refused before parsing.
fn oversized_envelope() -> Value {
    let mut v = invalid("envelope_over_limit", "envelope", &[2], "too_large");
    v["append_zeros"] = json!(MAX_ENVELOPE_LEN);
    v
}

fn with_byte(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] = value;
    out
}

fn flip_payload_bit(good: &[u8]) -> Vec<u8> {
    let mut out = good.to_vec();
    let at = out.len() - 64 - 1; // last payload byte
    out[at] ^= 0x01;
    out
}

fn resigned_by_friend() -> Vec<u8> {
    let env = envelope_of(&envelope_cases()[1]);
    let other = SigningKey::from_bytes(&seed(FRIEND_ROOT_SEED));
    UnsignedEnvelope {
        header: env.header().clone(),
        payload: env.payload().clone(),
    }
    .sign(&other)
    .encode()
}

fn forged_certificate() -> Vec<u8> {
    let body = certificate().body().clone();
    let other = SigningKey::from_bytes(&seed(FRIEND_ROOT_SEED));
    let forged = DeviceCertificate::sign(body.clone(), &other);
    DeviceCertificate::from_parts(body, *forged.signature()).encode()
}

fn frame_of(body: &[u8]) -> Vec<u8> {
    frames::frame(body)
}

/// Changes one character of the data part, keeping the alphabet.
fn typo(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'q' { 'p' } else { 'q' };
    chars.into_iter().collect()
}

// ---- helpers ----------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

fn read_vectors(file: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn seed(hex_seed: &str) -> [u8; 32] {
    hex::decode(hex_seed).unwrap().try_into().unwrap()
}

fn user_of(hex_seed: &str) -> UserId {
    UserId::from_bytes(
        SigningKey::from_bytes(&seed(hex_seed))
            .verifying_key()
            .to_bytes(),
    )
}

fn device_of(hex_seed: &str) -> DeviceId {
    DeviceId::from_bytes(
        SigningKey::from_bytes(&seed(hex_seed))
            .verifying_key()
            .to_bytes(),
    )
}
