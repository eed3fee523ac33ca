//! Entry points for cairn's fuzz targets (`fuzz/`), behind the `fuzzing`
//! feature: the folds that turn records written by friends and by the
//! user's other devices into what the user sees. Records reach the folds
//! only after their envelope verified and their certificate vouched for
//! the signing device, but their bodies are the writer's to choose, so
//! every fold must take any sequence of them without panicking.

use std::collections::HashSet;

use cairn_crypto::AudienceId;
use cairn_wire::{EnvelopeHeader, EnvelopeId, UserId};

use crate::open::Item;
use crate::record::Record;
use crate::state::State;

/// One record as the fuzzer delivers it: its envelope's id, header and
/// the audiences its post was sealed to.
#[derive(Debug, Clone)]
pub struct FuzzItem {
    /// The envelope's id.
    pub id: EnvelopeId,
    /// Its header.
    pub header: EnvelopeHeader,
    /// The audiences the post was sealed to.
    pub audiences: Vec<AudienceId>,
    /// What it said.
    pub record: Record,
}

/// Folds `items` as user `me` would and renders every view the CLI shows;
/// returns how many entries the views hold. Also checks that the fold
/// does not depend on the order items arrive in (it panics if it does:
/// that is the finding).
pub fn fold(me: UserId, items: Vec<FuzzItem>) -> usize {
    // What the sync takes in: one envelope per id, and one per device and
    // seq (a device that signs two is a history break, refused before any
    // fold, `chain.rs`).
    let mut ids = HashSet::new();
    let mut seqs = HashSet::new();
    let items: Vec<Item> = items
        .into_iter()
        .filter(|i| {
            ids.insert(i.id) && seqs.insert((i.header.author, i.header.device, i.header.seq))
        })
        .map(|i| Item::new(i.id, i.header, i.audiences, i.record))
        .collect();
    let mut reversed = items.clone();
    reversed.reverse();
    let state = State::fold(me, items);
    let again = State::fold(me, reversed);
    assert_eq!(state.notes, again.notes, "notes depend on arrival order");
    assert_eq!(
        state.feed.len(),
        again.feed.len(),
        "the feed depends on arrival order"
    );
    state.audience_views(me).len()
        + state.friend_views().len()
        + state.notes.len()
        + state.feed.len()
        + state.messages.len()
}
