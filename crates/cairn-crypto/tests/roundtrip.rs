//! Behaviour: round trips for every scope and for several audiences, epoch
//! rotation, and the one opaque error for every way opening can fail.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use cairn_crypto::audience::MAX_MEMBERS;
use cairn_crypto::keys::SECRET_VERSION;
use cairn_crypto::padding::{bucket, pad, padme, unpad};
use cairn_crypto::payload::{self, PayloadBody};
use cairn_crypto::{
    Audience, AudienceError, AudienceKey, DecryptionFailed, DeviceKeys, ExchangeSecret, FriendSet,
    GrantError, KeyDecodeError, KeyGrant, Keyring, LinkBundle, LinkSecret, MAX_AUDIENCES_PER_POST,
    MAX_PLAINTEXT_LEN, Member, RootKey, SealError, UserDevices, VerifyError, open_grant, open_link,
    open_link_for_code, open_post, seal_grant, seal_link, seal_link_for_code, seal_post,
};
use cairn_wire::limits::MAX_PAYLOAD_LEN;
use cairn_wire::{EnvelopeHeader, Scope, UnsignedEnvelope, UserId};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

struct User {
    root: RootKey,
    exchange: ExchangeSecret,
    device: DeviceKeys,
}

impl User {
    fn new(rng: &mut StdRng) -> Self {
        Self {
            root: RootKey::generate(rng),
            exchange: ExchangeSecret::generate(rng),
            device: DeviceKeys::generate(rng),
        }
    }

    fn id(&self) -> UserId {
        self.root.user_id()
    }

    fn member(&self) -> Member {
        Member {
            user: self.id(),
            exchange_key: self.exchange.public_key(),
        }
    }

    /// The certificate of the user's device.
    fn certificate(&self) -> cairn_wire::DeviceCertificate {
        self.root
            .certify_device(self.device.device_id(), self.device.exchange_key(), 1)
    }

    fn header(&self, seq: u64, scope: Scope) -> EnvelopeHeader {
        EnvelopeHeader::new(
            self.id(),
            self.device.device_id(),
            seq,
            cairn_wire::FIRST_IN_STREAM,
            1_700_000_000_000,
            scope,
        )
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// `member` receives `audience`'s current key from `owner` through a grant.
fn deliver(
    rng: &mut StdRng,
    owner: &User,
    audience: &Audience,
    member: &User,
    keyring: &mut Keyring,
) {
    let header = owner.header(99, Scope::Direct(member.id()));
    let payload = seal_grant(
        rng,
        &header,
        &member.exchange.public_key(),
        &owner.certificate(),
        &[audience.current_grant()],
    )
    .unwrap();
    let grant = open_grant(&header, payload.as_slice(), &member.exchange).unwrap();
    assert!(grant.certified);
    assert!(keyring.insert(owner.id(), grant.keys).is_empty());
}

#[test]
fn round_trip_in_every_scope() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let bob = User::new(&mut rng);
    let mut friends = Audience::new(&mut rng, "close friends").unwrap();
    friends.add_member(bob.member()).unwrap();
    let mut bob_keys = Keyring::new();
    deliver(&mut rng, &alice, &friends, &bob, &mut bob_keys);
    for (seq, scope) in [
        (1, Scope::Private),
        (2, Scope::Friends),
        (3, Scope::Direct(bob.id())),
    ] {
        let header = alice.header(seq, scope);
        let text = format!("hello in {scope}");
        let payload = seal_post(&mut rng, &header, text.as_bytes(), &[friends.target()]).unwrap();
        assert_eq!(
            open_post(&header, payload.as_slice(), &bob_keys).unwrap(),
            text.as_bytes()
        );
        assert_eq!(
            open_post(&header, payload.as_slice(), &friends).unwrap(),
            text.as_bytes()
        );
    }
}

#[test]
fn envelope_round_trip_through_signing() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let private = Audience::new(&mut rng, "private").unwrap();
    let header = alice.header(1, Scope::Private);
    let payload = seal_post(&mut rng, &header, b"note", &[private.target()]).unwrap();
    let envelope = UnsignedEnvelope { header, payload }.sign(alice.device.signing_key());
    let mut devices = UserDevices::new(alice.id());
    let cert = alice
        .root
        .certify_device(alice.device.device_id(), alice.device.exchange_key(), 1);
    devices.certify(&cert).unwrap();
    devices.verify_envelope(&envelope).unwrap();
    assert_eq!(
        cairn_crypto::open_envelope(&envelope, &private).unwrap(),
        b"note"
    );
}

#[test]
fn multi_audience_post_opens_for_each_audience_only() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let (bob, carol, dave) = (
        User::new(&mut rng),
        User::new(&mut rng),
        User::new(&mut rng),
    );
    let mut family = Audience::new(&mut rng, "family").unwrap();
    let mut work = Audience::new(&mut rng, "work").unwrap();
    let other = Audience::new(&mut rng, "other").unwrap();
    family.add_member(bob.member()).unwrap();
    work.add_member(carol.member()).unwrap();
    let (mut bob_keys, mut carol_keys, mut dave_keys) =
        (Keyring::new(), Keyring::new(), Keyring::new());
    deliver(&mut rng, &alice, &family, &bob, &mut bob_keys);
    deliver(&mut rng, &alice, &work, &carol, &mut carol_keys);
    deliver(&mut rng, &alice, &other, &dave, &mut dave_keys);
    let header = alice.header(1, Scope::Friends);
    let payload = seal_post(
        &mut rng,
        &header,
        b"both",
        &[family.target(), work.target()],
    )
    .unwrap();
    assert_eq!(
        open_post(&header, payload.as_slice(), &bob_keys).unwrap(),
        b"both"
    );
    assert_eq!(
        open_post(&header, payload.as_slice(), &carol_keys).unwrap(),
        b"both"
    );
    assert_eq!(
        open_post(&header, payload.as_slice(), &dave_keys),
        Err(DecryptionFailed)
    );
}

#[test]
fn removed_member_cannot_open_later_epochs() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let (bob, carol) = (User::new(&mut rng), User::new(&mut rng));
    let mut audience = Audience::new(&mut rng, "friends").unwrap();
    audience.add_member(bob.member()).unwrap();
    audience.add_member(carol.member()).unwrap();
    let (mut bob_keys, mut carol_keys) = (Keyring::new(), Keyring::new());
    deliver(&mut rng, &alice, &audience, &bob, &mut bob_keys);
    deliver(&mut rng, &alice, &audience, &carol, &mut carol_keys);
    let before = alice.header(1, Scope::Friends);
    let old = seal_post(&mut rng, &before, b"before", &[audience.target()]).unwrap();

    let epoch = audience.remove_member(&mut rng, &bob.id()).unwrap();
    assert_eq!(epoch.0, 1);
    assert!(!audience.is_member(&bob.id()));
    for member in audience.members() {
        assert_eq!(member.user, carol.id());
        deliver(&mut rng, &alice, &audience, &carol, &mut carol_keys);
    }
    let after = alice.header(2, Scope::Friends);
    let new = seal_post(&mut rng, &after, b"after", &[audience.target()]).unwrap();

    assert_eq!(
        open_post(&before, old.as_slice(), &bob_keys).unwrap(),
        b"before"
    );
    assert_eq!(
        open_post(&after, new.as_slice(), &bob_keys),
        Err(DecryptionFailed)
    );
    assert_eq!(
        open_post(&after, new.as_slice(), &carol_keys).unwrap(),
        b"after"
    );
    assert_eq!(
        open_post(&before, old.as_slice(), &audience).unwrap(),
        b"before"
    );
    assert_eq!(
        audience.remove_member(&mut rng, &bob.id()),
        Err(AudienceError::NotAMember)
    );
}

#[test]
fn every_failure_is_the_same_opaque_error() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "a").unwrap();
    let header = alice.header(5, Scope::Friends);
    let payload = seal_post(&mut rng, &header, b"secret words", &[audience.target()]).unwrap();
    let bytes = payload.as_slice();
    let open = |h: &EnvelopeHeader, b: &[u8]| open_post(h, b, &audience);
    assert!(open(&header, bytes).is_ok());

    let non_member = Audience::new(&mut rng, "b").unwrap();
    assert_eq!(
        open_post(&header, bytes, &non_member),
        Err(DecryptionFailed)
    );
    assert_eq!(
        open_post(&header, bytes, &Keyring::new()),
        Err(DecryptionFailed)
    );

    let wrong_headers = [
        alice.header(6, Scope::Friends),
        alice.header(5, Scope::Private),
        alice.header(5, Scope::Direct(alice.id())),
        EnvelopeHeader::new(
            alice.id(),
            alice.device.device_id(),
            5,
            cairn_wire::FIRST_IN_STREAM,
            1,
            Scope::Friends,
        ),
        EnvelopeHeader::new(
            alice.id(),
            DeviceKeys::generate(&mut rng).device_id(),
            5,
            cairn_wire::FIRST_IN_STREAM,
            1_700_000_000_000,
            Scope::Friends,
        ),
    ];
    for wrong in &wrong_headers {
        assert_eq!(open(wrong, bytes), Err(DecryptionFailed));
    }
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(open(&header, &flipped), Err(DecryptionFailed), "bit {bit}");
    }
    for len in 0..bytes.len() {
        assert_eq!(
            open(&header, &bytes[..len]),
            Err(DecryptionFailed),
            "length {len}"
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(open(&header, &longer), Err(DecryptionFailed));
}

#[test]
fn a_wrap_moved_to_another_author_fails() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let mallory = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "a").unwrap();
    let mut keys = Keyring::new();
    assert!(keys.insert(alice.id(), audience.all_grants()).is_empty());
    let header = alice.header(1, Scope::Friends);
    let payload = seal_post(&mut rng, &header, b"x", &[audience.target()]).unwrap();
    let mut replayed = header.clone();
    replayed.author = mallory.id();
    assert_eq!(
        open_post(&replayed, payload.as_slice(), &keys),
        Err(DecryptionFailed)
    );
}

#[test]
fn payload_kinds_do_not_cross() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let bob = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "a").unwrap();
    let header = alice.header(1, Scope::Direct(bob.id()));
    let grant = seal_grant(
        &mut rng,
        &header,
        &bob.exchange.public_key(),
        &alice.certificate(),
        &audience.all_grants(),
    )
    .unwrap();
    assert_eq!(
        open_post(&header, grant.as_slice(), &audience),
        Err(DecryptionFailed)
    );
    assert_eq!(
        open_link(&header, grant.as_slice(), &bob.exchange),
        Err(DecryptionFailed)
    );
    let post = seal_post(&mut rng, &header, b"x", &[audience.target()]).unwrap();
    assert_eq!(
        open_grant(&header, post.as_slice(), &bob.exchange),
        Err(DecryptionFailed)
    );
}

#[test]
fn grant_failures_are_opaque() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let bob = User::new(&mut rng);
    let eve = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "a").unwrap();
    let header = alice.header(1, Scope::Direct(bob.id()));
    let payload = seal_grant(
        &mut rng,
        &header,
        &bob.exchange.public_key(),
        &alice.certificate(),
        &audience.all_grants(),
    )
    .unwrap();
    let bytes = payload.as_slice();
    assert_eq!(
        open_grant(&header, bytes, &bob.exchange).unwrap().keys,
        audience.all_grants()
    );
    assert_eq!(
        open_grant(&header, bytes, &eve.exchange),
        Err(DecryptionFailed)
    );
    assert_eq!(
        open_grant(
            &alice.header(2, Scope::Direct(bob.id())),
            bytes,
            &bob.exchange
        ),
        Err(DecryptionFailed)
    );
    for bit in (0..bytes.len() * 8).step_by(7) {
        let mut flipped = bytes.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            open_grant(&header, &flipped, &bob.exchange),
            Err(DecryptionFailed)
        );
    }
    assert_eq!(
        open_grant(&header, &bytes[..bytes.len() - 1], &bob.exchange),
        Err(DecryptionFailed)
    );
}

#[test]
fn grant_refusals() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let bob = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "a").unwrap();
    let to = bob.exchange.public_key();
    let cert = alice.certificate();
    let direct = alice.header(1, Scope::Direct(bob.id()));
    assert_eq!(
        seal_grant(
            &mut rng,
            &alice.header(1, Scope::Friends),
            &to,
            &cert,
            &audience.all_grants()
        ),
        Err(GrantError::NotDirect)
    );
    assert_eq!(
        seal_grant(&mut rng, &direct, &to, &cert, &[]),
        Err(GrantError::Empty)
    );
    let many = vec![audience.current_grant(); 257];
    assert!(matches!(
        seal_grant(&mut rng, &direct, &to, &cert, &many),
        Err(GrantError::TooManyKeys { .. })
    ));
    let low_order = cairn_wire::ExchangeKey::from_bytes([0; 32]);
    assert_eq!(
        seal_grant(&mut rng, &direct, &low_order, &cert, &audience.all_grants()),
        Err(GrantError::BadRecipientKey)
    );
    // A grant must carry its own device's certificate from its author.
    assert_eq!(
        seal_grant(
            &mut rng,
            &direct,
            &to,
            &bob.certificate(),
            &audience.all_grants()
        ),
        Err(GrantError::WrongCertificate)
    );
    let other_device = DeviceKeys::generate(&mut rng);
    let not_this_device =
        alice
            .root
            .certify_device(other_device.device_id(), other_device.exchange_key(), 1);
    assert_eq!(
        seal_grant(
            &mut rng,
            &direct,
            &to,
            &not_this_device,
            &audience.all_grants()
        ),
        Err(GrantError::WrongCertificate)
    );
}

#[test]
fn device_link_hands_over_the_user() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let new_device = DeviceKeys::generate(&mut rng);
    let mut private = Audience::new(&mut rng, "private").unwrap();
    private.rotate(&mut rng).unwrap();
    let old_note_header = alice.header(1, Scope::Private);
    let old_note = seal_post(&mut rng, &old_note_header, b"old", &[private.target()]).unwrap();

    let cert = alice
        .root
        .certify_device(new_device.device_id(), new_device.exchange_key(), 10);
    let bundle = LinkBundle::new(alice.root.clone(), alice.exchange.clone(), private.clone());
    let header = alice.header(2, Scope::Direct(alice.id()));
    let payload = seal_link(&mut rng, &header, &cert.body().exchange_key, &bundle).unwrap();
    let opened = open_link(&header, payload.as_slice(), new_device.exchange_secret()).unwrap();
    assert_eq!(opened, bundle);
    assert_eq!(opened.user, alice.id());
    assert_eq!(opened.root.as_ref().map(RootKey::user_id), Some(alice.id()));
    assert_eq!(
        open_post(&old_note_header, old_note.as_slice(), &opened.private).unwrap(),
        b"old"
    );

    assert_eq!(
        open_link(&header, payload.as_slice(), alice.device.exchange_secret()),
        Err(DecryptionFailed)
    );
    let mallory = User::new(&mut rng);
    let forged = mallory.header(2, Scope::Direct(alice.id()));
    assert_eq!(
        seal_link(&mut rng, &forged, &new_device.exchange_key(), &bundle),
        Err(GrantError::WrongUser)
    );
    assert_eq!(
        open_link(&forged, payload.as_slice(), new_device.exchange_secret()),
        Err(DecryptionFailed)
    );
}

#[test]
fn a_bundle_sealed_for_a_link_code_opens_only_with_that_code() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let new_device = DeviceKeys::generate(&mut rng);
    let private = Audience::new(&mut rng, "private").unwrap();
    let bundle = LinkBundle::new(alice.root.clone(), alice.exchange.clone(), private);
    let header = alice.header(2, Scope::Direct(alice.id()));
    let (code, other_code) = (
        LinkSecret::generate(&mut rng),
        LinkSecret::generate(&mut rng),
    );
    let to = new_device.exchange_key();
    let secret = new_device.exchange_secret();

    let sealed = seal_link_for_code(&mut rng, &header, &to, &code, &bundle).unwrap();
    assert_eq!(
        open_link_for_code(&header, sealed.as_slice(), secret, &code).unwrap(),
        bundle
    );
    assert_eq!(
        open_link_for_code(&header, sealed.as_slice(), secret, &other_code),
        Err(DecryptionFailed),
        "another code"
    );
    assert_eq!(
        open_link(&header, sealed.as_slice(), secret),
        Err(DecryptionFailed),
        "no code"
    );
    // Someone who knows the new device's public key but not the code can
    // seal a bundle in base mode only: it does not open as a code's.
    let without_code = seal_link(&mut rng, &header, &to, &bundle).unwrap();
    assert_eq!(
        open_link_for_code(&header, without_code.as_slice(), secret, &code),
        Err(DecryptionFailed)
    );
    assert_eq!(format!("{code:?}"), "LinkSecret(..)");
}

#[test]
fn seal_refusals() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let a = Audience::new(&mut rng, "a").unwrap();
    let header = alice.header(1, Scope::Friends);
    assert_eq!(
        seal_post(&mut rng, &header, b"x", &[]),
        Err(SealError::NoAudience)
    );
    assert_eq!(
        seal_post(&mut rng, &header, b"x", &[a.target(), a.target()]),
        Err(SealError::DuplicateAudience)
    );
    let audiences: Vec<_> = (0..=MAX_AUDIENCES_PER_POST)
        .map(|_| Audience::new(&mut rng, "").unwrap())
        .collect();
    let targets: Vec<_> = audiences.iter().map(Audience::target).collect();
    assert!(matches!(
        seal_post(&mut rng, &header, b"x", &targets),
        Err(SealError::TooManyAudiences { .. })
    ));
    let too_long = vec![7u8; MAX_PLAINTEXT_LEN + 1];
    assert_eq!(
        seal_post(&mut rng, &header, &too_long, &[a.target()]),
        Err(SealError::TooLong {
            len: MAX_PLAINTEXT_LEN + 1,
            max: MAX_PLAINTEXT_LEN
        })
    );
}

#[test]
fn the_longest_plaintext_fits_with_the_most_audiences_at_the_largest_epoch() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let header = EnvelopeHeader::new(
        alice.id(),
        alice.device.device_id(),
        u64::MAX,
        cairn_wire::FIRST_IN_STREAM,
        u64::MAX,
        Scope::Direct(alice.id()),
    );
    let keys: Vec<_> = (0..MAX_AUDIENCES_PER_POST)
        .map(|_| AudienceKey::generate(&mut rng))
        .collect();
    let targets: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| cairn_crypto::WrapTarget {
            audience: cairn_crypto::AudienceId::from_bytes([i as u8; 16]),
            epoch: cairn_crypto::Epoch(u32::MAX),
            key,
        })
        .collect();
    let plaintext = vec![0xabu8; MAX_PLAINTEXT_LEN];
    let payload = seal_post(&mut rng, &header, &plaintext, &targets).unwrap();
    assert!(payload.len() <= MAX_PAYLOAD_LEN);
    let mut keyring = Keyring::new();
    for t in &targets {
        let conflicts = keyring.insert(
            alice.id(),
            [KeyGrant {
                audience: t.audience,
                epoch: t.epoch,
                key: t.key.clone(),
            }],
        );
        assert!(conflicts.is_empty());
    }
    assert_eq!(
        open_post(&header, payload.as_slice(), &keyring).unwrap(),
        plaintext
    );
}

#[test]
fn sizes_are_bucketed() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let a = Audience::new(&mut rng, "a").unwrap();
    let header = alice.header(1, Scope::Friends);
    let sizes: Vec<usize> = [0usize, 1, 30, 62]
        .iter()
        .map(|n| {
            seal_post(&mut rng, &header, &vec![1; *n], &[a.target()])
                .unwrap()
                .len()
        })
        .collect();
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    let decoded = payload::decode(
        seal_post(&mut rng, &header, &[1; 1000], &[a.target()])
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let PayloadBody::Post(post) = decoded.body() else {
        panic!("not a post")
    };
    assert_eq!(post.ciphertext.len(), bucket(1000) + 16);
}

#[test]
fn padme_examples() {
    assert_eq!(
        [padme(0), padme(1), padme(2), padme(64), padme(65)],
        [0, 1, 2, 64, 72]
    );
    assert_eq!(
        [padme(1000), padme(1025), padme(32769), padme(63488)],
        [1024, 1088, 34816, 63488]
    );
    assert_eq!(bucket(0), 64);
    assert_eq!(bucket(63), 64);
    assert_eq!(bucket(64), 72);
}

proptest! {
    #[test]
    fn padding_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let padded = pad(&data);
        prop_assert_eq!(padded.len(), bucket(data.len()));
        prop_assert!(padded.len() - data.len() <= data.len() / 8 + 64);
        prop_assert_eq!(unpad(&padded), Some(data.as_slice()));
    }

    #[test]
    fn unpad_is_total(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = unpad(&data);
    }

    #[test]
    fn payload_decode_is_total(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = payload::decode(&data);
    }

    #[test]
    fn posts_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let alice = User::new(&mut rng);
        let a = Audience::new(&mut rng, "a").unwrap();
        let header = alice.header(seed, Scope::Friends);
        let payload = seal_post(&mut rng, &header, &data, &[a.target()]).unwrap();
        prop_assert_eq!(payload::decode(payload.as_slice()).unwrap().encode(), payload.as_slice());
        prop_assert_eq!(open_post(&header, payload.as_slice(), &a).unwrap(), data);
    }
}

#[test]
fn secrets_store_versioned_and_never_print() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let root = alice.root.encode();
    assert_eq!(&root[..2], &[SECRET_VERSION, 0x01]);
    assert_eq!(RootKey::decode(&root).unwrap(), alice.root);
    assert_eq!(
        DeviceKeys::decode(&alice.device.encode())
            .unwrap()
            .device_id(),
        alice.device.device_id()
    );
    assert_eq!(
        ExchangeSecret::decode(&alice.exchange.encode()).unwrap(),
        alice.exchange
    );
    let key = AudienceKey::generate(&mut rng);
    assert_eq!(AudienceKey::decode(&key.encode()).unwrap(), key);
    assert_eq!(
        ExchangeSecret::decode(&root),
        Err(KeyDecodeError::WrongKind {
            expected: "exchange secret"
        })
    );
    let mut v2 = root.to_vec();
    v2[0] = 2;
    assert!(matches!(
        RootKey::decode(&v2),
        Err(KeyDecodeError::Malformed(
            cairn_wire::DecodeError::UnsupportedVersion(2)
        ))
    ));
    assert!(RootKey::decode(&root[..20]).is_err());

    let seed_hex = hex::encode(*alice.root.to_bytes());
    let mut audience = Audience::new(&mut rng, "family").unwrap();
    audience.add_member(alice.member()).unwrap();
    let key_hex = hex::encode(audience.current_key().as_bytes());
    let bundle = LinkBundle::new(alice.root.clone(), alice.exchange.clone(), audience.clone());
    for printed in [
        format!("{:?}", alice.root),
        format!("{:?}", alice.device),
        format!("{:?}", alice.exchange),
        format!("{audience:?}"),
        format!("{bundle:?}"),
        format!("{:?}", audience.current_grant()),
    ] {
        assert!(printed.contains("redacted"), "{printed}");
        assert!(!printed.contains(&seed_hex) && !printed.contains(&key_hex));
    }
}

#[test]
fn audience_and_keyring_state_round_trip() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let mut audience = Audience::new(&mut rng, "close friends").unwrap();
    audience.add_member(alice.member()).unwrap();
    audience.rotate(&mut rng).unwrap();
    let encoded = audience.encode();
    assert_eq!(encoded[0], 1);
    assert_eq!(Audience::decode(&encoded).unwrap(), audience);
    let mut keyring = Keyring::new();
    assert!(keyring.insert_audience(alice.id(), &audience).is_empty());
    assert_eq!(keyring.len(), 2);
    assert_eq!(Keyring::decode(&keyring.encode()).unwrap(), keyring);
    assert!(Audience::decode(&encoded[..encoded.len() - 1]).is_err());
    assert!(matches!(
        Audience::new(&mut rng, &"x".repeat(129)),
        Err(AudienceError::NameTooLong { .. })
    ));
    assert_eq!(MAX_MEMBERS, 10_000);
}

#[test]
fn device_certificates_and_revocation() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let mallory = User::new(&mut rng);
    let phone = DeviceKeys::generate(&mut rng);
    let mut devices = UserDevices::new(alice.id());
    let cert = alice
        .root
        .certify_device(phone.device_id(), phone.exchange_key(), 100);
    devices.certify(&cert).unwrap();
    assert_eq!(
        devices.device(&phone.device_id()).unwrap().exchange_key,
        phone.exchange_key()
    );
    let forged = mallory
        .root
        .certify_device(phone.device_id(), phone.exchange_key(), 100);
    assert_eq!(devices.certify(&forged), Err(VerifyError::WrongUser));
    assert_eq!(
        devices.device(&alice.device.device_id()),
        Err(VerifyError::UnknownDevice)
    );

    let header = EnvelopeHeader::new(
        alice.id(),
        phone.device_id(),
        1,
        cairn_wire::FIRST_IN_STREAM,
        1,
        Scope::Private,
    );
    let payload = cairn_wire::Payload::new(vec![1, 2, 3]).unwrap();
    let envelope = UnsignedEnvelope { header, payload }.sign(phone.signing_key());
    devices.verify_envelope(&envelope).unwrap();

    devices
        .revoke(&alice.root.revoke_device(phone.device_id(), 200))
        .unwrap();
    assert_eq!(
        devices.device(&phone.device_id()),
        Err(VerifyError::Revoked)
    );
    assert_eq!(
        devices.verify_envelope(&envelope),
        Err(VerifyError::Revoked)
    );
    let recertified = alice
        .root
        .certify_device(phone.device_id(), phone.exchange_key(), 300);
    assert_eq!(devices.certify(&recertified), Err(VerifyError::Revoked));
    assert_eq!(devices.active().count(), 0);

    let tampered =
        cairn_wire::DeviceCertificate::from_parts(cert.body().clone(), *forged.signature());
    assert_eq!(
        UserDevices::new(alice.id()).certify(&tampered),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn friend_grants_latest_wins_and_revocation_wins_ties() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let bob = User::new(&mut rng);
    let mut friends = FriendSet::new(alice.id());
    friends
        .grant(&alice.root.grant_friend(bob.id(), 10))
        .unwrap();
    assert!(friends.is_friend(&bob.id()));
    friends
        .revoke(&alice.root.revoke_friend(bob.id(), 10))
        .unwrap();
    assert!(!friends.is_friend(&bob.id()));
    friends
        .grant(&alice.root.grant_friend(bob.id(), 5))
        .unwrap();
    assert!(!friends.is_friend(&bob.id()));
    friends
        .grant(&alice.root.grant_friend(bob.id(), 11))
        .unwrap();
    assert_eq!(friends.friends().collect::<Vec<_>>(), vec![&bob.id()]);
    assert_eq!(
        friends.grant(&bob.root.grant_friend(alice.id(), 1)),
        Err(VerifyError::WrongUser)
    );
}

#[test]
fn exchange_key_announcement_verifies() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let announcement = alice
        .root
        .announce_exchange_key(alice.exchange.public_key(), 1);
    let decoded = cairn_crypto::ExchangeKeyAnnouncement::decode(&announcement.encode()).unwrap();
    let body = cairn_crypto::identity::verify_statement(&decoded, &alice.id()).unwrap();
    assert_eq!(body.exchange_key, alice.exchange.public_key());
}

#[test]
fn a_held_key_is_never_replaced_and_a_different_one_is_reported() {
    use cairn_crypto::{AudienceId, AudienceKey, Epoch, KeyLookup};
    let owner = UserId::from_bytes([9; 32]);
    let grant = |byte: u8| KeyGrant {
        audience: AudienceId::from_bytes([1; 16]),
        epoch: Epoch(3),
        key: AudienceKey::from_bytes(&[byte; 32]),
    };
    let mut keyring = Keyring::new();
    assert!(keyring.insert(owner, [grant(1)]).is_empty());
    assert!(
        keyring.insert(owner, [grant(1)]).is_empty(),
        "the same key again is fine"
    );
    let conflicts = keyring.insert(owner, [grant(2)]);
    assert_eq!(conflicts.len(), 1);
    assert_eq!((conflicts[0].owner, conflicts[0].epoch), (owner, Epoch(3)));
    let held = keyring
        .audience_key(&owner, &AudienceId::from_bytes([1; 16]), Epoch(3))
        .unwrap();
    assert_eq!(held.as_bytes(), &[1; 32], "the first key stays");
}

#[test]
fn two_keys_made_for_one_epoch_at_once_both_open_their_posts() {
    let mut rng = rng();
    let alice = User::new(&mut rng);
    let audience = Audience::new(&mut rng, "fam").unwrap();
    // Two of Alice's devices rotate at once: the same next epoch, two keys.
    let (mut laptop, mut phone) = (audience.clone(), audience);
    laptop.rotate(&mut rng).unwrap();
    phone.rotate(&mut rng).unwrap();
    assert_eq!(laptop.epoch(), phone.epoch());
    let mut keyring = Keyring::new();
    assert!(
        keyring
            .insert(alice.id(), [laptop.current_grant()])
            .is_empty()
    );
    let conflicts = keyring.insert(alice.id(), [phone.current_grant()]);
    assert_eq!(conflicts.len(), 1, "reported");
    for (seq, side) in [(1, &laptop), (2, &phone)] {
        let header = alice.header(seq, Scope::Friends);
        let post = seal_post(&mut rng, &header, b"hi", &[side.target()]).unwrap();
        assert_eq!(
            open_post(&header, post.as_slice(), &keyring).unwrap(),
            b"hi"
        );
    }
    let stored = Keyring::decode(&keyring.encode()).unwrap();
    assert_eq!(stored, keyring, "alternates are stored");

    // A friend offering key after key for one slot grows it no further
    // than MAX_ALTERNATE_KEYS: the keyring stays bounded.
    let before = keyring.encode().len();
    for byte in 0..20u8 {
        let mut grant = laptop.current_grant();
        grant.key = AudienceKey::from_bytes(&[byte; 32]);
        let _ = keyring.insert(alice.id(), [grant]);
    }
    let slot =
        cairn_crypto::KeyLookup::audience_keys(&keyring, &alice.id(), &laptop.id(), laptop.epoch());
    assert_eq!(slot.len(), 1 + cairn_crypto::audience::MAX_ALTERNATE_KEYS);
    assert!(keyring.encode().len() <= before + 3 * 32 + 8);
}

#[test]
fn the_latest_epoch_held_is_per_owner_and_audience() {
    use cairn_crypto::{AudienceId, AudienceKey, Epoch};
    let (owner, other) = (UserId::from_bytes([9; 32]), UserId::from_bytes([8; 32]));
    let (a, b) = (
        AudienceId::from_bytes([1; 16]),
        AudienceId::from_bytes([2; 16]),
    );
    let grant = |audience, epoch| KeyGrant {
        audience,
        epoch: Epoch(epoch),
        key: AudienceKey::from_bytes(&[7; 32]),
    };
    let mut keyring = Keyring::new();
    assert!(
        keyring
            .insert(owner, [grant(a, 0), grant(a, 4), grant(b, 9)])
            .is_empty()
    );
    assert!(keyring.insert(other, [grant(a, 12)]).is_empty());
    assert_eq!(keyring.latest_epoch(&owner, &a), Some(Epoch(4)));
    assert_eq!(keyring.latest_epoch(&owner, &b), Some(Epoch(9)));
    assert_eq!(keyring.latest_epoch(&other, &b), None);
}
