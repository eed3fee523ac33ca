//! A home behind the relay for its own device (`spec/client.md` section
//! 6.3): restored from an older copy, it signs envelopes with seqs (and
//! `prev`s) the relay already holds from this device. The relay refuses
//! the first with `equivocation`, `broken_chain`, or `seq_gap` naming a
//! later seq. Instead of failing every sync, the device adopts the relay's
//! history of itself:
//!
//! 1. it sets aside what it queued: the envelopes leave the outbox and the
//!    store (with their links), and their decrypted items move to
//!    `set_aside`, in one commit;
//! 2. the sync goes on: the relay's envelopes of this device are new to
//!    this home; ingesting them moves its chains and its next seq past
//!    them (`sync.rs`);
//! 3. once the sync is done, each change set aside is written again, in
//!    its order, on top of that history (a note edited or removed by a
//!    later change set aside follows it to its new id), and pushed.
//!
//! A change is written again and only then leaves `set_aside`: a process
//! killed in between writes it twice on its next sync, never loses it.

use std::collections::HashMap;

use cairn_crypto::public::PUBLIC_AUDIENCE;
use cairn_wire::{Envelope, EnvelopeId, ErrorCode, ErrorDetail, FIRST_IN_STREAM, Scope, WireError};

use crate::chain;
use crate::client::Client;
use crate::error::Error;
use crate::local::Batch;
use crate::open::Item;
use crate::record::{NoteOp, RecordBody};

/// Whether the relay's refusal of this device's queued envelope `seq` says
/// that it holds a later history of this device than this home does.
pub(crate) fn relay_is_ahead(seq: u64, refused: &WireError) -> bool {
    match (refused.code, refused.detail) {
        (ErrorCode::EQUIVOCATION | ErrorCode::BROKEN_CHAIN, _) => true,
        (ErrorCode::SEQ_GAP, ErrorDetail::ExpectedSeq(expected)) => expected > seq,
        _ => false,
    }
}

impl Client {
    /// Sets aside everything queued (step 1); how many envelopes.
    pub(crate) fn set_aside_outbox(&self) -> Result<u64, Error> {
        let count = self.set_aside_all(None)?;
        tracing::warn!(
            count,
            "the relay holds a later history of this device (this home was restored from an \
             older copy?); set aside what was queued, to write it again on top"
        );
        Ok(count)
    }

    /// Drops the queued direct envelope `seq`, which the relay refused
    /// (`forbidden`: its recipient no longer accepts this user's direct
    /// envelopes), and sets aside what was queued after it, to be written
    /// again with the seqs it leaves free. What it held (a message, key
    /// grants) is gone: the recipient would never be served it. How many
    /// envelopes were set aside.
    pub(crate) fn drop_undeliverable(&self, seq: u64) -> Result<u64, Error> {
        Ok(self.set_aside_all(Some(seq))?.saturating_sub(1))
    }

    /// Takes everything queued out of the outbox and the store, keeping
    /// the items to write again but `dropped`'s; how many envelopes.
    fn set_aside_all(&self, dropped: Option<u64>) -> Result<u64, Error> {
        let store = self.local.store();
        let queued = store.outbox(usize::MAX, usize::MAX)?;
        let mut batch = Batch::default();
        let mut first_seq = None;
        for (seq, envelope) in &queued {
            first_seq.get_or_insert(*seq);
            self.forget(*seq, envelope, dropped != Some(*seq), &mut batch)?;
        }
        if let Some(seq) = first_seq {
            batch
                .meta
                .push((crate::local::meta::NEXT_SEQ, seq.to_be_bytes().to_vec()));
        }
        store.commit(batch)?;
        Ok(u64::try_from(queued.len()).unwrap_or(u64::MAX))
    }

    /// Queues the removal of one queued envelope, keeping its item aside
    /// if `keep`.
    fn forget(
        &self,
        seq: u64,
        envelope: &Envelope,
        keep: bool,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        let id = envelope.id();
        let header = envelope.header();
        let stream = header.stream();
        batch.outbox_remove.push(seq);
        batch.forget.envelopes.push(id);
        batch.forget.seqs.push((header.device, header.seq));
        batch
            .forget
            .links
            .push(chain::link_key(&header.device, &stream, &header.prev));
        // The chain goes back to before the first envelope set aside.
        if !batch.forget.chains.iter().any(|(s, _)| *s == stream) {
            let before = (header.prev != FIRST_IN_STREAM).then_some(header.prev);
            batch.forget.chains.push((stream, before));
        }
        if !keep {
            return Ok(());
        }
        if let Some(sealed) = self.local.store().sealed_item(&id)? {
            batch
                .set_aside_add
                .push((seq, [id.as_bytes().as_slice(), &sealed].concat()));
        }
        Ok(())
    }

    /// An envelope of this device that this home did not hold (step 2):
    /// the relay's history of this device goes on past this home's, so its
    /// chain in that stream and its next seq move past it.
    pub(crate) fn adopt_own(
        &self,
        envelope: &Envelope,
        id: EnvelopeId,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        let header = envelope.header();
        batch.chains.push((header.stream(), id));
        let queued_next = batch
            .meta
            .iter()
            .rev()
            .find(|(key, _)| *key == crate::local::meta::NEXT_SEQ)
            .and_then(|(_, v)| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes);
        let next = queued_next.unwrap_or(self.local.store().next_seq()?);
        if header.seq >= next {
            let after = header.seq.saturating_add(1).to_be_bytes().to_vec();
            batch.meta.push((crate::local::meta::NEXT_SEQ, after));
        }
        Ok(())
    }

    /// Writes again what was set aside (step 3); how many changes.
    pub(crate) fn write_again(&mut self) -> Result<u64, Error> {
        let mut moved: HashMap<EnvelopeId, EnvelopeId> = HashMap::new();
        let mut written = 0;
        for (seq, item) in self.local.set_aside()? {
            if let Some(new) = self.rewrite(&item, &moved)? {
                moved.insert(item.id, new);
                written += 1;
            }
            let mut batch = Batch::default();
            batch.set_aside_remove.push(seq);
            self.local.store().commit(batch)?;
        }
        Ok(written)
    }

    /// One change written again, sealed as before: to the private
    /// audience, the public one, or the audiences of a post (at their
    /// current epoch). `None` for what cannot be (a post to an audience
    /// since deleted).
    fn rewrite(
        &mut self,
        item: &Item,
        moved: &HashMap<EnvelopeId, EnvelopeId>,
    ) -> Result<Option<EnvelopeId>, Error> {
        let body = follow_moved(item.record.body.clone(), moved);
        match item.header.scope {
            Scope::Private => self.append_private(body).map(Some),
            Scope::Friends if item.audiences == [PUBLIC_AUDIENCE] => {
                self.append_public(body)?;
                Ok(None)
            }
            Scope::Friends => {
                let state = self.state()?;
                let audiences: Vec<_> = item
                    .audiences
                    .iter()
                    .filter_map(|id| state.audiences.get(id))
                    .cloned()
                    .collect();
                if audiences.is_empty() {
                    return Ok(None);
                }
                let targets: Vec<_> = audiences.iter().map(|a| a.target()).collect();
                self.append_record(Scope::Friends, &targets, body).map(Some)
            }
            // A message is sealed again for its friend's direct audience;
            // other direct envelopes hold key material made for their
            // moment and are not.
            Scope::Direct(to) => match body {
                RecordBody::Message { text } => self.reseal_message(to, text),
                _ => Ok(None),
            },
        }
    }
}

/// A note operation that names a change set aside names its new id.
fn follow_moved(body: RecordBody, moved: &HashMap<EnvelopeId, EnvelopeId>) -> RecordBody {
    let follow = |id: EnvelopeId| moved.get(&id).copied().unwrap_or(id);
    match body {
        RecordBody::Note(NoteOp::Edit { target, text }) => RecordBody::Note(NoteOp::Edit {
            target: follow(target),
            text,
        }),
        RecordBody::Note(NoteOp::Remove { target }) => RecordBody::Note(NoteOp::Remove {
            target: follow(target),
        }),
        other => other,
    }
}
