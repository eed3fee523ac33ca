//! Why envelopes held do not open, counted for the reader: a post sealed
//! to a later epoch of an audience whose earlier keys the user holds (they
//! were removed from it, or its new key has not reached them yet), and a
//! post sealed only to audiences the user holds no key of (not shared with
//! them, or the key has not arrived). Told apart from the wraps' audience
//! ids and epochs, which the relay sees too; nothing is decrypted.

use cairn_crypto::Keyring;
use cairn_crypto::payload::{self, PayloadBody};
use cairn_wire::Envelope;

use crate::client::Client;
use crate::error::Error;

/// Waiting envelopes read at a time.
const PAGE: usize = 256;

/// Why the envelopes held do not open yet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unopened {
    /// Posts sealed to a later epoch of an audience whose earlier keys
    /// this user holds: removed from it, or its new key has not arrived.
    pub later_epoch: u64,
    /// Posts sealed only to audiences this user holds no key of: not
    /// shared with this user, or the key has not arrived.
    pub no_key: u64,
}

/// Why one envelope does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    LaterEpoch,
    NoKey,
    /// Not a post (a grant or bundle waiting for its sender to be vouched
    /// for), or not decodable.
    Other,
}

fn why(envelope: &Envelope, keyring: &Keyring) -> Why {
    let Ok(decoded) = payload::decode(envelope.payload().as_slice()) else {
        return Why::Other;
    };
    let PayloadBody::Post(post) = decoded.body() else {
        return Why::Other;
    };
    let author = envelope.header().author;
    let held_before = post.wraps.iter().any(|wrap| {
        keyring
            .latest_epoch(&author, &wrap.audience)
            .is_some_and(|held| held < wrap.epoch)
    });
    if held_before {
        Why::LaterEpoch
    } else {
        Why::NoKey
    }
}

impl Client {
    /// Counts why the envelopes waiting for keys do not open with
    /// `keyring`, a page at a time.
    pub(crate) fn unopened(&self, keyring: &Keyring) -> Result<Unopened, Error> {
        let mut counts = Unopened::default();
        let mut after = None;
        loop {
            let page = self.local.store().pending_page(after, PAGE)?;
            let Some(last) = page.last() else {
                return Ok(counts);
            };
            after = Some(last.id());
            for envelope in &page {
                match why(envelope, keyring) {
                    Why::LaterEpoch => counts.later_epoch += 1,
                    Why::NoKey => counts.no_key += 1,
                    Why::Other => {}
                }
            }
        }
    }
}
