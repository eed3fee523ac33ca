//! cairn-crypto's known-answer vectors in `spec/vectors/crypto/`.
//!
//! Every vector is generated here from fixed keys and fixed "random" bytes
//! (fed through [`FixedRng`]), and the files must be exactly what this code
//! generates, byte for byte. Then each vector is opened again from the
//! file's own data alone. After a deliberate format change, rewrite the
//! files with `CAIRN_REGENERATE_VECTORS=1 cargo test -p cairn-crypto --test vectors`.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use cairn_crypto::padding::bucket;
use cairn_crypto::post::{DOMAIN_POST_CONTENT, DOMAIN_POST_KEY_WRAP};
use cairn_crypto::{
    Audience, AudienceId, AudienceKey, DeviceKeys, Epoch, ExchangeSecret, KeyGrant, Keyring,
    LinkBundle, LinkSecret, RootKey, WrapTarget, open_grant, open_link, open_link_for_code,
    open_post, seal_grant, seal_link, seal_link_for_code, seal_post,
};
use cairn_wire::{EnvelopeHeader, Scope};
use hpke::{Deserializable, OpModeR};
use serde_json::{Value, json};

use common::{FixedRng, pattern, unhex, unhex32, vectors_dir};

const TIMESTAMP_MS: u64 = 1_700_000_000_000;

struct Fixture {
    alice: RootKey,
    alice_device: DeviceKeys,
    alice_exchange: ExchangeSecret,
    bob: RootKey,
    bob_exchange: ExchangeSecret,
}

fn fixture() -> Fixture {
    Fixture {
        alice: RootKey::from_bytes(&pattern(0x01)),
        alice_device: DeviceKeys::from_parts(
            &pattern(0x21),
            ExchangeSecret::from_bytes(&pattern(0x41)),
        ),
        alice_exchange: ExchangeSecret::from_bytes(&pattern(0x61)),
        bob: RootKey::from_bytes(&pattern(0x81)),
        bob_exchange: ExchangeSecret::from_bytes(&pattern(0xa1)),
    }
}

fn header(f: &Fixture, seq: u64, scope: Scope) -> EnvelopeHeader {
    EnvelopeHeader::new(
        f.alice.user_id(),
        f.alice_device.device_id(),
        seq,
        cairn_wire::FIRST_IN_STREAM,
        TIMESTAMP_MS,
        scope,
    )
}

#[test]
fn padding_vectors() {
    let lens = [
        0usize, 1, 62, 63, 64, 100, 1000, 1024, 4096, 10_000, 32_768, 63_487,
    ];
    let cases: Vec<Value> = lens
        .iter()
        .map(|len| json!({ "plaintext_len": len, "padded_len": bucket(*len) }))
        .collect();
    check_file(
        "padding.json",
        &json!({
            "description": "Padmé buckets: padded_len = padme(max(plaintext_len + 1, 64)).",
            "cases": cases,
        }),
    );
}

#[test]
fn key_vectors() {
    let f = fixture();
    let device = &f.alice_device;
    let certificate =
        f.alice
            .certify_device(device.device_id(), device.exchange_key(), TIMESTAMP_MS);
    let announcement = f
        .alice
        .announce_exchange_key(f.alice_exchange.public_key(), TIMESTAMP_MS);
    let audience_key = AudienceKey::from_bytes(&pattern(0xe1));
    check_file(
        "keys.json",
        &json!({
            "description": "Stored secret encodings (version 0x01, kind, bytes), public keys, and root-key statements, from fixed secrets.",
            "root_seed": hex::encode(*f.alice.to_bytes()),
            "user_id": hex::encode(f.alice.user_id().as_bytes()),
            "user_id_text": f.alice.user_id().to_text(),
            "root_key_stored": hex::encode(&*f.alice.encode()),
            "device_signing_seed": hex::encode(pattern::<32>(0x21)),
            "device_exchange_secret": hex::encode(*device.exchange_secret().to_bytes()),
            "device_id": hex::encode(device.device_id().as_bytes()),
            "device_exchange_key": hex::encode(device.exchange_key().as_bytes()),
            "device_keys_stored": hex::encode(&*device.encode()),
            "user_exchange_secret": hex::encode(*f.alice_exchange.to_bytes()),
            "user_exchange_key": hex::encode(f.alice_exchange.public_key().as_bytes()),
            "exchange_secret_stored": hex::encode(&*f.alice_exchange.encode()),
            "audience_key": hex::encode(audience_key.as_bytes()),
            "audience_key_stored": hex::encode(&*audience_key.encode()),
            "issued_ms": TIMESTAMP_MS,
            "device_certificate": hex::encode(certificate.encode()),
            "exchange_key_announcement": hex::encode(announcement.encode()),
        }),
    );
}

struct PostCase {
    name: &'static str,
    seq: u64,
    scope: Scope,
    plaintext: Vec<u8>,
    targets: Vec<(AudienceId, Epoch, AudienceKey)>,
}

fn post_cases(f: &Fixture) -> Vec<PostCase> {
    let private = (
        AudienceId::from_bytes(pattern(0xc1)),
        Epoch(0),
        AudienceKey::from_bytes(&pattern(0xe1)),
    );
    let friends = (
        AudienceId::from_bytes(pattern(0xd1)),
        Epoch(3),
        AudienceKey::from_bytes(&pattern(0xf1)),
    );
    let family = (
        AudienceId::from_bytes(pattern(0x91)),
        Epoch(300),
        AudienceKey::from_bytes(&pattern(0x71)),
    );
    vec![
        PostCase {
            name: "private scope, private audience, empty plaintext",
            seq: 1,
            scope: Scope::Private,
            plaintext: vec![],
            targets: vec![private],
        },
        PostCase {
            name: "friends scope, one audience",
            seq: 2,
            scope: Scope::Friends,
            plaintext: b"Hello, close friends.".to_vec(),
            targets: vec![friends.clone()],
        },
        PostCase {
            name: "friends scope, two audiences",
            seq: 3,
            scope: Scope::Friends,
            plaintext: (0..100).collect(),
            targets: vec![friends, family],
        },
        PostCase {
            name: "direct scope",
            seq: 4,
            scope: Scope::Direct(f.bob.user_id()),
            plaintext: b"hi bob".to_vec(),
            targets: vec![(
                AudienceId::from_bytes(pattern(0x31)),
                Epoch(1),
                AudienceKey::from_bytes(&pattern(0x51)),
            )],
        },
    ]
}

#[test]
fn post_vectors() {
    let f = fixture();
    let cases: Vec<Value> = post_cases(&f)
        .into_iter()
        .enumerate()
        .map(|(i, case)| post_vector(&f, i as u8, case))
        .collect();
    let doc = json!({
        "description": "Sealed posts. The generator yields post_key, then content_nonce, then one wrap nonce per target, in order.",
        "cases": cases,
    });
    check_file("posts.json", &doc);
    open_posts_from_file();
}

fn post_vector(f: &Fixture, i: u8, case: PostCase) -> Value {
    let header = header(f, case.seq, case.scope);
    let post_key: [u8; 32] = pattern(0x10 + i * 0x20);
    let content_nonce: [u8; 24] = pattern(0x80 + i);
    let wrap_nonces: Vec<[u8; 24]> = (0..case.targets.len())
        .map(|w| pattern(0x40 + 0x10 * w as u8 + i))
        .collect();
    let mut parts: Vec<&[u8]> = vec![&post_key, &content_nonce];
    parts.extend(wrap_nonces.iter().map(|n| n.as_slice()));
    let mut rng = FixedRng::new(&parts);
    let targets: Vec<WrapTarget<'_>> = case
        .targets
        .iter()
        .map(|(audience, epoch, key)| WrapTarget {
            audience: *audience,
            epoch: *epoch,
            key,
        })
        .collect();
    let payload = seal_post(&mut rng, &header, &case.plaintext, &targets).unwrap();
    assert!(rng.is_exhausted());
    let header_bytes = header.encode();
    json!({
        "name": case.name,
        "header": header_json(&header),
        "header_encoding": hex::encode(&header_bytes),
        "plaintext": hex::encode(&case.plaintext),
        "padded_len": bucket(case.plaintext.len()),
        "targets": case.targets.iter().map(|(a, e, k)| json!({
            "audience": hex::encode(a.as_bytes()), "epoch": e.0, "key": hex::encode(k.as_bytes()),
        })).collect::<Vec<_>>(),
        "post_key": hex::encode(post_key),
        "content_nonce": hex::encode(content_nonce),
        "wrap_nonces": wrap_nonces.iter().map(hex::encode).collect::<Vec<_>>(),
        "content_associated_data": hex::encode(ad(DOMAIN_POST_CONTENT, &[], &header_bytes)),
        "wrap_associated_data": case.targets.iter().map(|(a, e, _)| {
            let binding = [a.as_bytes().as_slice(), &e.0.to_be_bytes()].concat();
            hex::encode(ad(DOMAIN_POST_KEY_WRAP, &binding, &header_bytes))
        }).collect::<Vec<_>>(),
        "payload": hex::encode(payload.as_slice()),
    })
}

fn open_posts_from_file() {
    let doc = read_file("posts.json");
    for case in doc["cases"].as_array().unwrap() {
        let header = header_from(case);
        let mut keyring = Keyring::new();
        for t in case["targets"].as_array().unwrap() {
            let mut only = Keyring::new();
            let grant = grant_from(t);
            assert!(only.insert(header.author, [grant.clone()]).is_empty());
            assert!(keyring.insert(header.author, [grant]).is_empty());
            let opened =
                open_post(&header, &unhex(case["payload"].as_str().unwrap()), &only).unwrap();
            assert_eq!(hex::encode(opened), case["plaintext"].as_str().unwrap());
        }
    }
}

#[test]
fn grant_and_link_vectors() {
    let f = fixture();
    let grant_header = header(&f, 5, Scope::Direct(f.bob.user_id()));
    let keys = vec![
        KeyGrant {
            audience: AudienceId::from_bytes(pattern(0xd1)),
            epoch: Epoch(2),
            key: AudienceKey::from_bytes(&pattern(0x11)),
        },
        KeyGrant {
            audience: AudienceId::from_bytes(pattern(0xd1)),
            epoch: Epoch(3),
            key: AudienceKey::from_bytes(&pattern(0xf1)),
        },
    ];
    let ikm_grant: [u8; 32] = pattern(0x5a);
    let recipient = f.bob_exchange.public_key();
    let granter = f.alice.certify_device(
        f.alice_device.device_id(),
        f.alice_device.exchange_key(),
        TIMESTAMP_MS,
    );
    let grant = seal_grant(
        &mut FixedRng::new(&[&ikm_grant]),
        &grant_header,
        &recipient,
        &granter,
        &keys,
    )
    .unwrap();

    let mut private = Audience::new(
        &mut FixedRng::new(&[&pattern::<16>(0xc1), &pattern::<32>(0xe1)]),
        "private",
    )
    .unwrap();
    private
        .rotate(&mut FixedRng::new(&[&pattern::<32>(0x33)]))
        .unwrap();
    let new_device =
        DeviceKeys::from_parts(&pattern(0x99), ExchangeSecret::from_bytes(&pattern(0xb9)));
    let link_header = header(&f, 6, Scope::Direct(f.alice.user_id()));
    let bundle = LinkBundle::new(f.alice.clone(), f.alice_exchange.clone(), private);
    let ikm_link: [u8; 32] = pattern(0x6b);
    let link = seal_link(
        &mut FixedRng::new(&[&ikm_link]),
        &link_header,
        &new_device.exchange_key(),
        &bundle,
    )
    .unwrap();
    let code = LinkSecret::from_bytes(pattern(0x7c));
    let ikm_code_link: [u8; 32] = pattern(0x6c);
    let code_link = seal_link_for_code(
        &mut FixedRng::new(&[&ikm_code_link]),
        &link_header,
        &new_device.exchange_key(),
        &code,
        &bundle,
    )
    .unwrap();

    let doc = json!({
        "description": "HPKE base mode (link_for_code: PSK mode, psk = the link code's secret), DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; the generator yields ikmE, from which the ephemeral key is DeriveKeyPair(ikmE). aad = header encoding. A grant's plaintext is postcard(GrantPlaintext { version 0x02, certificate of the sealing device, keys }).",
        "grant": {
            "header": header_json(&grant_header),
            "header_encoding": hex::encode(grant_header.encode()),
            "info": hex::encode(cairn_crypto::grant::INFO_KEY_GRANT),
            "recipient_secret": hex::encode(*f.bob_exchange.to_bytes()),
            "recipient_exchange_key": hex::encode(recipient.as_bytes()),
            "keys": keys.iter().map(|k| json!({
                "audience": hex::encode(k.audience.as_bytes()), "epoch": k.epoch.0, "key": hex::encode(k.key.as_bytes()),
            })).collect::<Vec<_>>(),
            "ikmE": hex::encode(ikm_grant),
            "plaintext": hex::encode(hpke_plaintext(grant.as_slice(), &f.bob_exchange, cairn_crypto::grant::INFO_KEY_GRANT, None, &grant_header)),
            "payload": hex::encode(grant.as_slice()),
        },
        "link": {
            "header": header_json(&link_header),
            "header_encoding": hex::encode(link_header.encode()),
            "info": hex::encode(cairn_crypto::grant::INFO_DEVICE_LINK),
            "recipient_secret": hex::encode(*new_device.exchange_secret().to_bytes()),
            "recipient_exchange_key": hex::encode(new_device.exchange_key().as_bytes()),
            "ikmE": hex::encode(ikm_link),
            "plaintext": hex::encode(hpke_plaintext(link.as_slice(), new_device.exchange_secret(), cairn_crypto::grant::INFO_DEVICE_LINK, None, &link_header)),
            "payload": hex::encode(link.as_slice()),
        },
        "link_for_code": {
            "header": header_json(&link_header),
            "header_encoding": hex::encode(link_header.encode()),
            "info": hex::encode(cairn_crypto::grant::INFO_DEVICE_LINK),
            "psk": hex::encode(code.as_bytes()),
            "psk_id": hex::encode(cairn_crypto::grant::PSK_ID_LINK_CODE),
            "recipient_secret": hex::encode(*new_device.exchange_secret().to_bytes()),
            "recipient_exchange_key": hex::encode(new_device.exchange_key().as_bytes()),
            "ikmE": hex::encode(ikm_code_link),
            "plaintext": hex::encode(hpke_plaintext(code_link.as_slice(), new_device.exchange_secret(), cairn_crypto::grant::INFO_DEVICE_LINK, Some(&code), &link_header)),
            "payload": hex::encode(code_link.as_slice()),
        },
    });
    check_file("grants.json", &doc);
    open_grants_from_file(&bundle);
}

fn open_grants_from_file(bundle: &LinkBundle) {
    let doc = read_file("grants.json");
    let g = &doc["grant"];
    let secret = ExchangeSecret::from_bytes(&unhex32(g["recipient_secret"].as_str().unwrap()));
    let opened = open_grant(
        &header_from(g),
        &unhex(g["payload"].as_str().unwrap()),
        &secret,
    )
    .unwrap();
    let expected: Vec<KeyGrant> = g["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(grant_from)
        .collect();
    assert_eq!(opened.keys, expected);
    assert!(
        opened.certified,
        "the grant carries its device's certificate"
    );
    let l = &doc["link"];
    let secret = ExchangeSecret::from_bytes(&unhex32(l["recipient_secret"].as_str().unwrap()));
    let opened = open_link(
        &header_from(l),
        &unhex(l["payload"].as_str().unwrap()),
        &secret,
    )
    .unwrap();
    assert_eq!(&opened, bundle);
    let c = &doc["link_for_code"];
    let secret = ExchangeSecret::from_bytes(&unhex32(c["recipient_secret"].as_str().unwrap()));
    let code = LinkSecret::from_bytes(unhex32(c["psk"].as_str().unwrap()));
    let opened = open_link_for_code(
        &header_from(c),
        &unhex(c["payload"].as_str().unwrap()),
        &secret,
        &code,
    )
    .unwrap();
    assert_eq!(&opened, bundle);
}

/// The HPKE plaintext, opened with the `hpke` crate directly, so the file
/// shows the grant and bundle encodings too.
fn hpke_plaintext(
    payload: &[u8],
    secret: &ExchangeSecret,
    info: &str,
    code: Option<&LinkSecret>,
    header: &EnvelopeHeader,
) -> Vec<u8> {
    type K = hpke::kem::X25519HkdfSha256;
    let decoded = cairn_crypto::payload::decode(payload).unwrap();
    let sealed = match decoded.body() {
        cairn_crypto::PayloadBody::Grant(s) | cairn_crypto::PayloadBody::Link(s) => s,
        cairn_crypto::PayloadBody::Post(_) => panic!("not sealed"),
    };
    let sk = <K as hpke::Kem>::PrivateKey::from_bytes(&*secret.to_bytes()).unwrap();
    let enc = <K as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).unwrap();
    let psk = code.map(|c| {
        hpke::PskBundle::new(
            c.as_bytes(),
            cairn_crypto::grant::PSK_ID_LINK_CODE.as_bytes(),
        )
        .unwrap()
    });
    let mode = psk.map_or(OpModeR::Base, OpModeR::Psk);
    hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, K>(
        &mode,
        &sk,
        &enc,
        info.as_bytes(),
        sealed.ciphertext.as_slice(),
        &header.encode(),
    )
    .unwrap()
}

fn header_json(header: &EnvelopeHeader) -> Value {
    let scope = match header.scope {
        Scope::Private => json!("private"),
        Scope::Friends => json!("friends"),
        Scope::Direct(user) => json!({ "direct": hex::encode(user.as_bytes()) }),
    };
    json!({
        "author": hex::encode(header.author.as_bytes()),
        "device": hex::encode(header.device.as_bytes()),
        "seq": header.seq,
        "timestamp_ms": header.timestamp_ms,
        "scope": scope,
    })
}

fn header_from(case: &Value) -> EnvelopeHeader {
    let bytes = unhex(case["header_encoding"].as_str().unwrap());
    let header: EnvelopeHeader = cairn_wire::codec::decode(&bytes, 256).unwrap();
    assert_eq!(header_json(&header), case["header"]);
    header
}

fn grant_from(t: &Value) -> KeyGrant {
    KeyGrant {
        audience: AudienceId::from_bytes(
            unhex(t["audience"].as_str().unwrap()).try_into().unwrap(),
        ),
        epoch: Epoch(t["epoch"].as_u64().unwrap() as u32),
        key: AudienceKey::from_bytes(&unhex32(t["key"].as_str().unwrap())),
    }
}

fn ad(domain: &str, binding: &[u8], header: &[u8]) -> Vec<u8> {
    [domain.as_bytes(), &[0], binding, header].concat()
}

fn read_file(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join("crypto").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn vault_vectors() {
    use cairn_crypto::vault::{DataKey, KdfCost, LABEL_DATA_KEY, Passphrase};
    let passphrase = "correct horse battery staple";
    let (data_key, salt, wrap_nonce, item_nonce): ([u8; 32], [u8; 16], [u8; 24], [u8; 24]) =
        (pattern(0x11), pattern(0x31), pattern(0x51), pattern(0x71));
    let mut rng = FixedRng::new(&[&data_key, &salt, &wrap_nonce, &item_nonce]);
    let cost = KdfCost::INSECURE_MINIMUM;
    let (key, header) =
        DataKey::create(&mut rng, &Passphrase::new(passphrase.into()), cost).unwrap();
    let label = "cairn/local/item/v1";
    let plaintext = b"a decrypted item";
    let sealed = key.seal(&mut rng, label, plaintext).unwrap();
    assert!(rng.is_exhausted());
    check_file(
        "vault.json",
        &json!({
            "description": "Secrets at rest. header = postcard(VaultHeader { version 0x01, salt, m_cost, t_cost, p_cost, wrapped }); kek = Argon2id v0x13(passphrase, salt, m_cost KiB, t_cost, p_cost, 32 bytes); wrapped = nonce || XChaCha20-Poly1305(kek, nonce, data_key, aad = label_data_key); a sealed value = nonce || XChaCha20-Poly1305(data_key, nonce, plaintext, aad = label). The generator yields data_key, salt, the wrap nonce, then the item nonce.",
            "passphrase": passphrase,
            "data_key": hex::encode(data_key),
            "salt": hex::encode(salt),
            "m_cost": cost.m_cost,
            "t_cost": cost.t_cost,
            "p_cost": cost.p_cost,
            "label_data_key": LABEL_DATA_KEY,
            "wrap_nonce": hex::encode(wrap_nonce),
            "header": hex::encode(&header),
            "item": {
                "label": label,
                "nonce": hex::encode(item_nonce),
                "plaintext": hex::encode(plaintext),
                "sealed": hex::encode(&sealed),
            },
        }),
    );
    // Opened again from the file's data alone.
    let doc = read_file("vault.json");
    let header = unhex(doc["header"].as_str().unwrap());
    let key = DataKey::unlock(
        &header,
        &Passphrase::new(doc["passphrase"].as_str().unwrap().into()),
    )
    .unwrap();
    let item = &doc["item"];
    let opened = key
        .open(
            item["label"].as_str().unwrap(),
            &unhex(item["sealed"].as_str().unwrap()),
        )
        .unwrap();
    assert_eq!(
        opened.as_slice(),
        unhex(item["plaintext"].as_str().unwrap()).as_slice()
    );
    assert!(DataKey::unlock(&header, &Passphrase::new("wrong".into())).is_err());
}

#[test]
fn public_audience_vectors() {
    use cairn_crypto::public::{DOMAIN_PUBLIC_AUDIENCE, PUBLIC_AUDIENCE, public_audience_key};
    let f = fixture();
    let authors = [f.alice.user_id(), f.bob.user_id()];
    let cases: Vec<Value> = authors
        .iter()
        .map(|author| {
            json!({
                "author": hex::encode(author.as_bytes()),
                "key": hex::encode(public_audience_key(author).as_bytes()),
            })
        })
        .collect();
    check_file(
        "public-audience.json",
        &json!({
            "description": "The public audience: id 16 zero bytes, epoch 0, key = SHA-256(domain || 0x00 || author user id).",
            "domain": DOMAIN_PUBLIC_AUDIENCE,
            "audience": hex::encode(PUBLIC_AUDIENCE.as_bytes()),
            "cases": cases,
        }),
    );
}

/// Compares `doc` with the file byte for byte, or rewrites the file when
/// `CAIRN_REGENERATE_VECTORS=1`.
fn check_file(name: &str, doc: &Value) {
    let path = vectors_dir().join("crypto").join(name);
    let text = serde_json::to_string_pretty(doc).unwrap() + "\n";
    if std::env::var("CAIRN_REGENERATE_VECTORS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{name} differs from what the code generates; if the change is deliberate, run with CAIRN_REGENERATE_VECTORS=1"
    );
}
