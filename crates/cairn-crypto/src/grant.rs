//! Key grants and device-link bundles, sealed to an X25519 exchange key
//! with HPKE (RFC 9180), suite DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20-Poly1305, through the `hpke` crate: base mode, except for the
//! bundle that links a new device, sealed in PSK mode under the one-time
//! secret of its link code ([`LinkSecret`]), so that only whoever holds
//! the code can make a bundle the new device accepts.
//!
//! Both travel as envelope payloads. The envelope header is the HPKE
//! associated data, so a sealed message cannot be replayed under another
//! author, device, sequence number or scope; a purpose-specific `info`
//! keeps a grant from opening as a bundle and the reverse. What is granted
//! (audience ids, epochs) is inside the ciphertext: the relay learns only
//! that the author sent the recipient something.

use cairn_wire::codec::{V1, Version};
use cairn_wire::limits::MAX_PAYLOAD_LEN;
use cairn_wire::{
    BoundedBytes, BoundedVec, DeviceCertificate, DeviceId, EnvelopeHeader, ExchangeKey, Payload,
    Scope, UserId,
};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audience::{Audience, KeyGrant};
use crate::error::{DecryptionFailed, GrantError};
use crate::keys::{ExchangeSecret, RootKey};
use crate::payload::{self, HpkeSealed, PayloadBody, SealedPayload};
use crate::secret_codec;

/// HPKE `info` of key grants.
pub const INFO_KEY_GRANT: &str = "cairn/key-grant/v1";
/// HPKE `info` of device-link bundles.
pub const INFO_DEVICE_LINK: &str = "cairn/device-link/v1";
/// HPKE `psk_id` of the link-code secret.
pub const PSK_ID_LINK_CODE: &str = "cairn/link-code/v1";
/// Most keys one grant may carry.
pub const MAX_GRANT_KEYS: usize = 256;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// What a newly linked device needs to act as the user: the user
/// exchange key (to open the keys friends granted), the private audience
/// (to read and write the user's private notes, including client state kept
/// there), and, only for a device trusted with it, the root key (to certify
/// and revoke devices, sign friend grants). A device without the root key
/// cannot speak for the user: revoked, it holds nothing that signs as them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBundle {
    /// The user.
    pub user: UserId,
    /// The user's root key, if this device is trusted with it.
    pub root: Option<RootKey>,
    /// The user exchange key, shared by all the user's devices.
    pub exchange: ExchangeSecret,
    /// The private audience, with every epoch key it holds.
    pub private: Audience,
}

impl LinkBundle {
    /// A bundle that hands over the root key too.
    pub fn new(root: RootKey, exchange: ExchangeSecret, private: Audience) -> Self {
        Self {
            user: root.user_id(),
            root: Some(root),
            exchange,
            private,
        }
    }

    /// A bundle without the root key.
    pub fn without_root(user: UserId, exchange: ExchangeSecret, private: Audience) -> Self {
        Self {
            user,
            root: None,
            exchange,
            private,
        }
    }

    /// Whether the bundle is the user's own: its root key, if any, is the
    /// named user's.
    fn is_consistent(&self) -> bool {
        self.root
            .as_ref()
            .is_none_or(|root| root.user_id() == self.user)
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        secret_codec::encode(&StoredBundle {
            version: Version,
            user: self.user,
            root: self.root.clone(),
            exchange: self.exchange.clone(),
            private: self.private.clone(),
        })
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecryptionFailed> {
        if let Ok(bundle) =
            secret_codec::decode_version::<StoredBundle>(bytes, MAX_PAYLOAD_LEN, BUNDLE_VERSION)
        {
            let bundle = Self {
                user: bundle.user,
                root: bundle.root,
                exchange: bundle.exchange,
                private: bundle.private,
            };
            return bundle
                .is_consistent()
                .then_some(bundle)
                .ok_or(DecryptionFailed);
        }
        let legacy: LegacyBundle =
            secret_codec::decode(bytes, MAX_PAYLOAD_LEN).map_err(|_| DecryptionFailed)?;
        Ok(Self::new(legacy.root, legacy.exchange, legacy.private))
    }
}

/// The version byte of a bundle's encoding.
const BUNDLE_VERSION: u8 = 2;

/// [`BUNDLE_VERSION`] in an encoding.
type BundleVersion = Version<BUNDLE_VERSION>;

/// A bundle's encoding.
#[derive(Serialize, Deserialize)]
struct StoredBundle {
    version: BundleVersion,
    user: UserId,
    root: Option<RootKey>,
    exchange: ExchangeSecret,
    private: Audience,
}

/// A bundle of the first version, which always held the root key.
#[derive(Serialize, Deserialize)]
struct LegacyBundle {
    version: V1,
    root: RootKey,
    exchange: ExchangeSecret,
    private: Audience,
}

/// The one-time secret of a link code: 32 random bytes, the HPKE PSK of
/// the bundle sealed for that code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct LinkSecret([u8; 32]);

impl LinkSecret {
    /// A fresh secret from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short confirmation both devices show once `user` approved the
    /// device `device` with exchange key `exchange` under this code: six
    /// decimal digits from SHA-256 over a label, the user, the device's
    /// keys and the secret, so that a person comparing the two screens
    /// sees at once whether the device joined the user they meant.
    pub fn confirmation(&self, user: &UserId, device: &DeviceId, exchange: &ExchangeKey) -> u32 {
        use sha2::{Digest, Sha256};
        let [a, b, c, d, ..]: [u8; 32] = Sha256::new()
            .chain_update(CONFIRMATION_LABEL)
            .chain_update(user.as_bytes())
            .chain_update(device.as_bytes())
            .chain_update(exchange.as_bytes())
            .chain_update(self.0)
            .finalize()
            .into();
        u32::from_be_bytes([a, b, c, d]) % 1_000_000
    }
}

/// Domain label of [`LinkSecret::confirmation`].
const CONFIRMATION_LABEL: &[u8] = b"cairn/link-confirmation/v1\0";

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// The plaintext of a key grant as the first version wrote it, without
/// the granting device's certificate. Still opened, so that grants stored
/// before keep their keys; the reader trusts one only from a device it
/// otherwise knows to be the author's ([`OpenedGrant::certified`]).
#[derive(Serialize, Deserialize)]
struct LegacyGrantPlaintext {
    version: V1,
    keys: BoundedVec<KeyGrant, MAX_GRANT_KEYS>,
}

/// The plaintext of a key grant: the keys, and the certificate of the
/// device that sealed them, so that the reader can check, as for every
/// record, that the envelope's device is its author's.
#[derive(Serialize, Deserialize)]
struct GrantPlaintext {
    version: GrantVersion,
    certificate: DeviceCertificate,
    keys: BoundedVec<KeyGrant, MAX_GRANT_KEYS>,
}

/// The version byte of [`GrantPlaintext`].
const GRANT_VERSION: u8 = 2;

/// [`GRANT_VERSION`] in an encoding.
type GrantVersion = Version<GRANT_VERSION>;

/// An opened key grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedGrant {
    /// The keys granted, attributed to the envelope's author.
    pub keys: Vec<KeyGrant>,
    /// Whether the grant carried the sealing device's certificate, checked
    /// against the envelope's author and device. A grant of the first
    /// version did not: trust it only from a device known otherwise to be
    /// the author's.
    pub certified: bool,
}

/// Whether `certificate` shows that `header.device` is a device of
/// `header.author`, signed by the author's root key.
fn certifies(certificate: &DeviceCertificate, header: &EnvelopeHeader) -> bool {
    certificate
        .verify()
        .is_ok_and(|body| body.user == header.author && body.device == header.device)
}

/// Seals audience keys to `recipient` (a member's exchange key) under
/// `header`, which must be a direct envelope's. Draws 32 bytes from `rng`:
/// the HPKE ephemeral key's input keying material.
pub fn seal_grant(
    rng: &mut impl CryptoRng,
    header: &EnvelopeHeader,
    recipient: &ExchangeKey,
    certificate: &DeviceCertificate,
    keys: &[KeyGrant],
) -> Result<Payload, GrantError> {
    if !matches!(header.scope, Scope::Direct(_)) {
        return Err(GrantError::NotDirect);
    }
    if !certifies(certificate, header) {
        return Err(GrantError::WrongCertificate);
    }
    if keys.is_empty() {
        return Err(GrantError::Empty);
    }
    let keys = BoundedVec::new(keys.to_vec()).map_err(|e| GrantError::TooManyKeys {
        count: e.len,
        max: e.max,
    })?;
    let plaintext = secret_codec::encode(&GrantPlaintext {
        version: Version,
        certificate: certificate.clone(),
        keys,
    });
    let sealed = hpke_seal(rng, recipient, INFO_KEY_GRANT, None, header, &plaintext)?;
    to_payload(PayloadBody::Grant(sealed))
}

/// Opens a key grant sealed to `secret` under `header`. A grant whose
/// certificate is not the envelope's device's, certified by its author,
/// fails like any other.
pub fn open_grant(
    header: &EnvelopeHeader,
    payload: &[u8],
    secret: &ExchangeSecret,
) -> Result<OpenedGrant, DecryptionFailed> {
    let decoded = payload::decode(payload).map_err(|_| DecryptionFailed)?;
    let PayloadBody::Grant(sealed) = decoded.body() else {
        return Err(DecryptionFailed);
    };
    let plaintext = hpke_open(secret, INFO_KEY_GRANT, None, header, sealed)?;
    let (keys, certified) = match secret_codec::decode_version::<GrantPlaintext>(
        &plaintext,
        MAX_PAYLOAD_LEN,
        GRANT_VERSION,
    ) {
        Ok(grant) if certifies(&grant.certificate, header) => (grant.keys, true),
        Ok(_) => return Err(DecryptionFailed),
        Err(_) => {
            let legacy: LegacyGrantPlaintext =
                secret_codec::decode(&plaintext, MAX_PAYLOAD_LEN).map_err(|_| DecryptionFailed)?;
            (legacy.keys, false)
        }
    };
    if keys.is_empty() {
        return Err(DecryptionFailed);
    }
    Ok(OpenedGrant {
        keys: keys.into_vec(),
        certified,
    })
}

/// Seals a device-link bundle to the new device's exchange key (from its
/// certificate) under `header`, whose author must be the bundle's user.
/// Draws 32 bytes from `rng`, as [`seal_grant`] does.
pub fn seal_link(
    rng: &mut impl CryptoRng,
    header: &EnvelopeHeader,
    new_device: &ExchangeKey,
    bundle: &LinkBundle,
) -> Result<Payload, GrantError> {
    if bundle.user != header.author || !bundle.is_consistent() {
        return Err(GrantError::WrongUser);
    }
    let plaintext = bundle.encode();
    let sealed = hpke_seal(rng, new_device, INFO_DEVICE_LINK, None, header, &plaintext)?;
    to_payload(PayloadBody::Link(sealed))
}

/// Seals the bundle that links a new device, as [`seal_link`] does but in
/// HPKE PSK mode under `code`, the secret of the device's link code: the
/// new device opens it only with that secret, so a bundle from anyone who
/// did not see the code fails to open.
pub fn seal_link_for_code(
    rng: &mut impl CryptoRng,
    header: &EnvelopeHeader,
    new_device: &ExchangeKey,
    code: &LinkSecret,
    bundle: &LinkBundle,
) -> Result<Payload, GrantError> {
    if bundle.user != header.author || !bundle.is_consistent() {
        return Err(GrantError::WrongUser);
    }
    let plaintext = bundle.encode();
    let sealed = hpke_seal(
        rng,
        new_device,
        INFO_DEVICE_LINK,
        Some(code),
        header,
        &plaintext,
    )?;
    to_payload(PayloadBody::Link(sealed))
}

/// Opens a device-link bundle sealed to `secret` (the new device's exchange
/// secret) under `header`. A bundle whose root key is not the header's
/// author fails like any other.
pub fn open_link(
    header: &EnvelopeHeader,
    payload: &[u8],
    secret: &ExchangeSecret,
) -> Result<LinkBundle, DecryptionFailed> {
    open_link_with(header, payload, secret, None)
}

/// Opens a bundle sealed with [`seal_link_for_code`] under `code`. A
/// bundle sealed in base mode, or under another code, fails like any
/// other.
pub fn open_link_for_code(
    header: &EnvelopeHeader,
    payload: &[u8],
    secret: &ExchangeSecret,
    code: &LinkSecret,
) -> Result<LinkBundle, DecryptionFailed> {
    open_link_with(header, payload, secret, Some(code))
}

fn open_link_with(
    header: &EnvelopeHeader,
    payload: &[u8],
    secret: &ExchangeSecret,
    code: Option<&LinkSecret>,
) -> Result<LinkBundle, DecryptionFailed> {
    let decoded = payload::decode(payload).map_err(|_| DecryptionFailed)?;
    let PayloadBody::Link(sealed) = decoded.body() else {
        return Err(DecryptionFailed);
    };
    let plaintext = hpke_open(secret, INFO_DEVICE_LINK, code, header, sealed)?;
    let bundle = LinkBundle::decode(&plaintext)?;
    if bundle.user != header.author {
        return Err(DecryptionFailed);
    }
    Ok(bundle)
}

/// The HPKE PSK bundle of a link code's secret.
fn psk_of(code: &LinkSecret) -> Result<hpke::PskBundle<'_>, hpke::HpkeError> {
    hpke::PskBundle::new(code.as_bytes(), PSK_ID_LINK_CODE.as_bytes())
}

fn hpke_seal(
    rng: &mut impl CryptoRng,
    recipient: &ExchangeKey,
    info: &str,
    code: Option<&LinkSecret>,
    header: &EnvelopeHeader,
    plaintext: &[u8],
) -> Result<HpkeSealed, GrantError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|_| GrantError::BadRecipientKey)?;
    let mode = match code {
        Some(code) => OpModeS::Psk(psk_of(code).map_err(|_| GrantError::BadRecipientKey)?),
        None => OpModeS::Base,
    };
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
        &mode,
        &public,
        info.as_bytes(),
        plaintext,
        &header.encode(),
        rng,
    )
    .map_err(|_| GrantError::BadRecipientKey)?;
    let len = ciphertext.len();
    let ciphertext = BoundedBytes::new(ciphertext).map_err(|_| GrantError::TooLarge {
        len,
        max: MAX_PAYLOAD_LEN,
    })?;
    Ok(HpkeSealed {
        enc: enc.to_bytes().into(),
        ciphertext,
    })
}

fn hpke_open(
    secret: &ExchangeSecret,
    info: &str,
    code: Option<&LinkSecret>,
    header: &EnvelopeHeader,
    sealed: &HpkeSealed,
) -> Result<Zeroizing<Vec<u8>>, DecryptionFailed> {
    let mode = match code {
        Some(code) => OpModeR::Psk(psk_of(code).map_err(|_| DecryptionFailed)?),
        None => OpModeR::Base,
    };
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.as_bytes())
        .map_err(|_| DecryptionFailed)?;
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).map_err(|_| DecryptionFailed)?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &mode,
        &private,
        &enc,
        info.as_bytes(),
        sealed.ciphertext.as_slice(),
        &header.encode(),
    )
    .map(Zeroizing::new)
    .map_err(|_| DecryptionFailed)
}

fn to_payload(body: PayloadBody) -> Result<Payload, GrantError> {
    SealedPayload::new(body)
        .to_payload()
        .map_err(|len| GrantError::TooLarge {
            len,
            max: MAX_PAYLOAD_LEN,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audience::Audience;
    use crate::keys::DeviceKeys;
    use crate::os;

    struct Granter {
        root: RootKey,
        device: DeviceKeys,
    }

    impl Granter {
        fn new() -> Self {
            Self {
                root: RootKey::generate(&mut os::rng()),
                device: DeviceKeys::generate(&mut os::rng()),
            }
        }

        fn certificate(&self) -> DeviceCertificate {
            self.root
                .certify_device(self.device.device_id(), self.device.exchange_key(), 1)
        }

        fn header(&self, to: UserId) -> EnvelopeHeader {
            EnvelopeHeader::new(
                self.root.user_id(),
                self.device.device_id(),
                1,
                cairn_wire::FIRST_IN_STREAM,
                1,
                Scope::Direct(to),
            )
        }
    }

    /// Seals `plaintext` as a grant payload, bypassing [`seal_grant`]'s
    /// checks, as a forger or an older client would.
    fn sealed(header: &EnvelopeHeader, to: &ExchangeSecret, plaintext: &[u8]) -> Payload {
        let sealed = hpke_seal(
            &mut os::rng(),
            &to.public_key(),
            INFO_KEY_GRANT,
            None,
            header,
            plaintext,
        )
        .unwrap();
        to_payload(PayloadBody::Grant(sealed)).unwrap()
    }

    #[test]
    fn a_grant_is_trusted_only_with_its_own_devices_certificate() {
        let (alice, bob) = (Granter::new(), ExchangeSecret::generate(&mut os::rng()));
        let keys = Audience::new(&mut os::rng(), "a").unwrap().all_grants();
        let header = alice.header(UserId::from_bytes([9; 32]));
        let bounded = || BoundedVec::new(keys.clone()).unwrap();

        let honest = seal_grant(
            &mut os::rng(),
            &header,
            &bob.public_key(),
            &alice.certificate(),
            &keys,
        )
        .unwrap();
        let opened = open_grant(&header, honest.as_slice(), &bob).unwrap();
        assert!(opened.certified);
        assert_eq!(opened.keys, keys);

        // Another user's certificate, or another device's of the same user:
        // the grant does not open.
        let mallory = Granter::new();
        for certificate in [mallory.certificate(), {
            let other = DeviceKeys::generate(&mut os::rng());
            alice
                .root
                .certify_device(other.device_id(), other.exchange_key(), 1)
        }] {
            let forged = secret_codec::encode(&GrantPlaintext {
                version: Version,
                certificate,
                keys: bounded(),
            });
            let payload = sealed(&header, &bob, &forged);
            assert_eq!(
                open_grant(&header, payload.as_slice(), &bob),
                Err(DecryptionFailed)
            );
        }

        // A grant of the first version opens, marked as not certified.
        let legacy = secret_codec::encode(&LegacyGrantPlaintext {
            version: V1,
            keys: bounded(),
        });
        let payload = sealed(&header, &bob, &legacy);
        let opened = open_grant(&header, payload.as_slice(), &bob).unwrap();
        assert!(!opened.certified);
        assert_eq!(opened.keys, keys);
    }

    #[test]
    fn a_bundle_without_the_root_key_links_and_an_older_bundle_still_opens() {
        let alice = Granter::new();
        let device = DeviceKeys::generate(&mut os::rng());
        let private = Audience::new(&mut os::rng(), "private").unwrap();
        let exchange = ExchangeSecret::generate(&mut os::rng());
        let user = alice.root.user_id();
        let header = alice.header(user);
        let secret = device.exchange_secret();

        let member = LinkBundle::without_root(user, exchange.clone(), private.clone());
        let payload = seal_link(&mut os::rng(), &header, &device.exchange_key(), &member).unwrap();
        let opened = open_link(&header, payload.as_slice(), secret).unwrap();
        assert_eq!(opened, member);
        assert!(opened.root.is_none());

        // A bundle naming the user but holding another user's root key is
        // refused both ways.
        let mixed = LinkBundle {
            root: Some(Granter::new().root),
            ..member.clone()
        };
        assert_eq!(
            seal_link(&mut os::rng(), &header, &device.exchange_key(), &mixed),
            Err(GrantError::WrongUser)
        );
        let forged = hpke_seal(
            &mut os::rng(),
            &device.exchange_key(),
            INFO_DEVICE_LINK,
            None,
            &header,
            &mixed.encode(),
        )
        .unwrap();
        let forged = to_payload(PayloadBody::Link(forged)).unwrap();
        assert_eq!(
            open_link(&header, forged.as_slice(), secret),
            Err(DecryptionFailed)
        );

        // The first version always held the root key.
        let legacy = secret_codec::encode(&LegacyBundle {
            version: V1,
            root: alice.root.clone(),
            exchange: exchange.clone(),
            private: private.clone(),
        });
        let sealed = hpke_seal(
            &mut os::rng(),
            &device.exchange_key(),
            INFO_DEVICE_LINK,
            None,
            &header,
            &legacy,
        )
        .unwrap();
        let sealed = to_payload(PayloadBody::Link(sealed)).unwrap();
        let opened = open_link(&header, sealed.as_slice(), secret).unwrap();
        assert_eq!(
            opened,
            LinkBundle::new(alice.root.clone(), exchange, private)
        );
    }
}
