//! Writing: every change is an envelope signed by this device with its
//! next sequence number, queued in the outbox together with its decrypted
//! item in one commit, so a change succeeds offline and is pushed by the
//! next sync.

use cairn_crypto::{KeyGrant, LinkBundle, WrapTarget, os};
use cairn_wire::{
    Envelope, EnvelopeHeader, EnvelopeId, ExchangeKey, FIRST_IN_STREAM, Payload, Scope, StreamId,
    UnsignedEnvelope, UserId,
};

use crate::chain;
use crate::client::{Client, now_ms};
use crate::error::Error;
use crate::link::LinkCode;
use crate::local::{Batch, meta};
use crate::open::Item;
use crate::record::{MAX_RECORD_LEN, Record, RecordBody};

impl Client {
    /// Appends a record sealed to the private audience.
    pub(crate) fn append_private(&mut self, body: RecordBody) -> Result<EnvelopeId, Error> {
        let private = self.identity.linked()?.private.clone();
        self.append_record(Scope::Private, &[private.target()], body)
    }

    /// Appends a record sealed to `targets` under `scope`.
    pub(crate) fn append_record(
        &mut self,
        scope: Scope,
        targets: &[WrapTarget<'_>],
        body: RecordBody,
    ) -> Result<EnvelopeId, Error> {
        let mut record = Record::new(self.identity.linked()?.certificate.clone(), body);
        if scope == Scope::Private {
            let room = MAX_RECORD_LEN.saturating_sub(record.encode().len());
            record.seen = chain::heads(self.local.store(), &self.device(), room)?;
        }
        let plaintext = zeroize::Zeroizing::new(record.encode());
        let audiences = targets.iter().map(|t| t.audience).collect();
        let envelope = self.sign(scope, |header| {
            os::seal_post(header, &plaintext, targets).map_err(Error::from)
        })?;
        let item = Item::new(envelope.id(), envelope.header().clone(), audiences, record);
        self.append(&envelope, Some(&item))
    }

    /// Appends audience keys sealed to `member`'s exchange key.
    pub(crate) fn append_grant(
        &mut self,
        member: UserId,
        exchange_key: &ExchangeKey,
        keys: &[KeyGrant],
    ) -> Result<EnvelopeId, Error> {
        let certificate = self.identity.linked()?.certificate.clone();
        let envelope = self.sign(Scope::Direct(member), |header| {
            os::seal_grant(header, exchange_key, &certificate, keys).map_err(Error::from)
        })?;
        self.append(&envelope, None)
    }

    /// Appends the user's working keys (exchange secret, private audience;
    /// never the root key) sealed to a linked device's exchange key: how
    /// the remaining devices learn the keys that replace a revoked
    /// device's.
    pub(crate) fn append_link(
        &mut self,
        recipient: UserId,
        device_key: &ExchangeKey,
    ) -> Result<EnvelopeId, Error> {
        let linked = self.identity.linked()?;
        let bundle =
            LinkBundle::without_root(linked.user, linked.exchange.clone(), linked.private.clone());
        let envelope = self.sign(Scope::Direct(recipient), |header| {
            os::seal_link(header, device_key, &bundle).map_err(Error::from)
        })?;
        self.append(&envelope, None)
    }

    /// Appends the user's keys for a new device, sealed to its exchange
    /// key under its link code's secret, in the user's own direct stream;
    /// the root key only if `with_root`.
    pub(crate) fn append_link_for_code(
        &mut self,
        code: &LinkCode,
        with_root: bool,
    ) -> Result<EnvelopeId, Error> {
        let linked = self.identity.linked()?;
        let root = match with_root {
            true => Some(linked.root()?.clone()),
            false => None,
        };
        let bundle = LinkBundle {
            user: linked.user,
            root,
            exchange: linked.exchange.clone(),
            private: linked.private.clone(),
        };
        let me = self.user()?;
        let envelope = self.sign(Scope::Direct(me), |header| {
            os::seal_link_for_code(header, &code.exchange_key, &code.secret, &bundle)
                .map_err(Error::from)
        })?;
        self.append(&envelope, None)
    }

    /// Signs the next envelope of this device with the payload `seal`
    /// makes for its header.
    fn sign(
        &self,
        scope: Scope,
        seal: impl FnOnce(&EnvelopeHeader) -> Result<Payload, Error>,
    ) -> Result<Envelope, Error> {
        self.check_not_revoked()?;
        let user = self.user()?;
        let seq = self.local.store().next_seq()?;
        let prev = self
            .local
            .store()
            .chain_head(&StreamId::new(user, scope))?
            .unwrap_or(FIRST_IN_STREAM);
        let header = EnvelopeHeader::new(user, self.device(), seq, prev, now_ms(), scope);
        let payload = seal(&header)?;
        Ok(UnsignedEnvelope { header, payload }.sign(self.identity.device.signing_key()))
    }

    /// Queues a signed envelope (and its decrypted item) in one commit,
    /// with the device's next sequence number.
    fn append(&mut self, envelope: &Envelope, item: Option<&Item>) -> Result<EnvelopeId, Error> {
        let id = envelope.id();
        let seq = envelope.header().seq;
        let bytes = envelope.encode();
        let mut batch = Batch::default();
        batch.outbox_add.push((seq, bytes.clone()));
        batch.envelopes.push((id, bytes));
        let header = envelope.header();
        batch.seqs.push((header.device, header.seq, id));
        batch.chains.push((header.stream(), id));
        batch.links.push((
            chain::link_key(&header.device, &header.stream(), &header.prev),
            id,
        ));
        batch
            .meta
            .push((meta::NEXT_SEQ, seq.saturating_add(1).to_be_bytes().to_vec()));
        if let Some(item) = item {
            self.local.save_item(item, &mut batch)?;
        }
        self.local.store().commit(batch)?;
        Ok(id)
    }
}
