//! Sealed payloads as friends and the user's devices send them (posts,
//! key grants, link bundles) decode totally and re-encode canonically,
//! and opening them with the keys of `spec/vectors/crypto/` either
//! succeeds or fails cleanly: the plaintexts inside (grants, bundles,
//! records) are parsed as untrusted too.
//!
//! Input: `header length (2, BE) | header encoding | payload`; the seeds
//! are the vectors' headers and payloads, which open.
#![no_main]

use cairn_crypto::audience::KeyLookup;
use cairn_crypto::{
    AudienceId, AudienceKey, Epoch, ExchangeSecret, LinkSecret, open_grant, open_link,
    open_link_for_code, open_post, payload,
};
use cairn_wire::{EnvelopeHeader, UserId};
use libfuzzer_sys::fuzz_target;

fn pattern(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// The audience keys of the post vectors, for any audience and epoch.
struct VectorKeys(Vec<AudienceKey>);

impl KeyLookup for VectorKeys {
    fn audience_key(&self, _: &UserId, _: &AudienceId, _: Epoch) -> Option<&AudienceKey> {
        self.0.first()
    }

    fn audience_keys(&self, _: &UserId, _: &AudienceId, _: Epoch) -> Vec<&AudienceKey> {
        self.0.iter().collect()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (header, sealed) = rest.split_at(len);
    let Ok(header) = EnvelopeHeader::decode(header) else {
        return;
    };
    let Ok(decoded) = payload::decode(sealed) else {
        return;
    };
    assert_eq!(decoded.encode(), sealed);
    let keys = VectorKeys(
        [0xe1, 0xf1, 0x71, 0x51]
            .map(|start| AudienceKey::from_bytes(&pattern(start)))
            .into(),
    );
    let _ = open_post(&header, sealed, &keys);
    let _ = open_grant(&header, sealed, &ExchangeSecret::from_bytes(&pattern(0xa1)));
    let link = ExchangeSecret::from_bytes(&pattern(0xb9));
    let _ = open_link(&header, sealed, &link);
    let _ = open_link_for_code(
        &header,
        sealed,
        &link,
        &LinkSecret::from_bytes(pattern(0x7c)),
    );
});
