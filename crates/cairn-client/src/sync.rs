//! The sync engine: push the outbox and pull what is new with hello
//! requests until the relay has nothing more (a long backlog of one stream
//! comes through a subscription up to its live marker, page after page
//! without a round trip each), committing each step
//! locally in one transaction (envelopes, decrypted items, cursors, and
//! the removal of acknowledged outbox entries together). An interrupted
//! sync resumes from the last committed step: the relay answers an
//! envelope it already has with `Duplicate`, and the client skips
//! envelopes it already holds, so nothing is lost or doubled.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cairn_wire::limits::{MAX_BATCH, MAX_CURSORS};
use cairn_wire::{
    AppendOutcome, BoundedVec, Cursor, Envelope, EnvelopeId, ErrorCode, ErrorDetail, Expired,
    HelloRequest, Request, Response, Scope, StreamId, StreamPage, SubscribeRequest,
    SubscriptionEvent, SyncResponse, UserId, WireError,
};

use crate::chain::HistoryBreak;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::Error;
use crate::identity::LinkState;
use crate::link::Confirmation;
use crate::local::Batch;
use crate::open::{Item, KeyState, Opened};
use crate::reach::Options;
use crate::record::RecordBody;
use crate::relog::Relogged;
use crate::rounds::{Answered, Next, Rounds};
use crate::unopened::Unopened;
use crate::{adopt, chain};

/// Bytes of envelopes one hello pushes at most, well inside the frame.
const OUTBOX_BYTES: usize = 768 * 1024;
/// Hellos one sync makes at most (each pulls up to a frame).
const MAX_ROUNDS: usize = 100_000;
/// Most envelopes kept waiting for keys; see [`Client::keep_waiting`].
const MAX_PENDING: u64 = 10_000;
/// Waiting envelopes read at a time.
const PENDING_PAGE: usize = 256;
/// Most passes over the waiting envelopes after keys arrive.
const RETRY_PASSES: usize = 4;
/// Longest a push waits for a relay that failed to answer a moment ago
/// (at most [`Options::push_wait`]).
const RECENTLY_DOWN_CONNECT: Duration = Duration::from_millis(300);
/// Longest wait a `rate_limited` answer can impose before a retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Told how a sync is going, e.g. to draw a progress bar.
pub trait Progress {
    /// `pushed` envelopes were acknowledged, `pulled` received so far.
    fn update(&mut self, pushed: u64, pulled: u64, more: bool);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: u64, _: u64, _: bool) {}
}

/// What a sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Envelopes pushed and acknowledged.
    pub pushed: u64,
    /// New envelopes received.
    pub pulled: u64,
    /// New items decrypted.
    pub items: u64,
    /// Envelopes still in the outbox.
    pub queued: u64,
    /// Envelopes the relay sent from users this user has not added, and
    /// which were ignored. An honest relay sends none.
    pub ignored: u64,
    /// Envelopes held that do not open yet, waiting for keys.
    pub waiting: u64,
    /// Why posts among them do not open.
    pub unopened: Unopened,
    /// Envelopes this device sent before and sent again, because the
    /// relay had lost them (restored from a backup).
    pub resent: u64,
    /// Envelopes of friends' and direct streams that the relay no longer
    /// serves (expired by its retention policy, or their author removed)
    /// and this device had not read.
    pub expired: u64,
    /// What following a new relay log did, when the relay's log changed
    /// since the last sync (restored from a backup).
    pub relogged: Option<Relogged>,
    /// Envelopes this home had queued on a history of this device the
    /// relay had moved past (restored from an older copy), set aside.
    pub set_aside: u64,
    /// The changes among them written again on top of the relay's history.
    pub rewritten: u64,
    /// Whether the relay said it is out of storage space: what is queued
    /// stays queued (nothing more was sent after that), and the sync
    /// pulled what was new all the same.
    pub relay_full: bool,
    /// Direct envelopes (messages, key grants) the relay refused because
    /// their recipient no longer accepts this user's (they removed this
    /// user as a friend): dropped, and what was queued after them written
    /// again.
    pub undeliverable: u64,
    /// Whether this sync completed the device's link.
    pub linked: bool,
    /// Then, the confirmation the approving device showed too.
    pub confirmation: Option<Confirmation>,
}

/// What one ingest step produced.
#[derive(Debug, Default)]
pub(crate) struct Ingested {
    /// Entries that moved a cursor.
    pub accepted: u64,
    /// New envelopes among them.
    pub pulled: u64,
    pub items: Vec<Item>,
    /// Entries of streams by users this user has not added.
    pub ignored: u64,
    /// Positions past the cursors the relay no longer serves.
    pub expired: u64,
    /// Those streams, with the last position their page carried: their
    /// cursors did not move.
    pub ignored_streams: HashMap<StreamId, u64>,
}

impl Client {
    /// Pushes the outbox and pulls everything new, reconnecting with
    /// backoff if the connection drops. On a device waiting for approval,
    /// first completes the link.
    pub async fn sync(&mut self, progress: &mut dyn Progress) -> Result<SyncReport, Error> {
        let mut outcome = self.sync_recorded(progress).await;
        // Why held posts do not open is for the person who asked to sync;
        // a push after each change does not pay for counting it.
        if let Ok(report) = &mut outcome
            && report.waiting > 0
        {
            report.unopened = self.unopened(&self.key_state()?.keyring)?;
        }
        outcome
    }

    /// `cairn sync --from-scratch`: reads every stream this home follows
    /// again from position 0, as a new device would, and syncs. Every
    /// envelope the relay serves is checked against what the home holds
    /// (each device's chain, `spec/client.md` section 6.2), and whatever
    /// the home lacks (lost from its store, or skipped by a fault) is
    /// taken in, so the folds are rebuilt from the whole log. Envelopes it
    /// holds already are not opened twice. A sync cut short leaves the
    /// cursors where it got to; the next sync goes on from there.
    pub async fn sync_from_scratch(
        &mut self,
        progress: &mut dyn Progress,
    ) -> Result<SyncReport, Error> {
        let rewound = self
            .local
            .store()
            .cursors()?
            .into_iter()
            .map(|cursor| (cursor.stream, 0))
            .collect();
        self.local.store().commit(Batch {
            rewound,
            ..Batch::default()
        })?;
        self.sync(progress).await
    }

    /// [`Client::sync_once`], with how it went recorded for `status`.
    async fn sync_recorded(&mut self, progress: &mut dyn Progress) -> Result<SyncReport, Error> {
        let outcome = self.sync_once(progress).await;
        // What `status` shows without the network; failing to record it
        // must not turn a completed sync into a failure.
        if let Err(e) = self.record_contact(outcome.as_ref().map(|_| ())) {
            tracing::warn!(error = %e, "could not record how the sync went");
        }
        outcome
    }

    async fn sync_once(&mut self, progress: &mut dyn Progress) -> Result<SyncReport, Error> {
        let confirmation = match self.identity.state {
            LinkState::Pending(_) => {
                let offer = self.link_offer().await?;
                let confirmation = offer.confirmation;
                self.accept_link(offer)?;
                Some(confirmation)
            }
            LinkState::Linked(_) => None,
        };
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            self.local.store().release();
            let connection = self.connect().await?;
            let outcome = self.sync_and_rekey(&connection, progress).await;
            connection.close().await;
            match outcome {
                Err(Error::Request(e)) if attempt < self.options.attempts => {
                    tracing::debug!(error = %e, "sync interrupted; resuming");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Ok(mut report) => {
                    report.linked = confirmation.is_some();
                    report.confirmation = confirmation;
                    return Ok(report);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// [`Client::sync_on`], then, if what arrived changed a member's key
    /// or forked an audience, rekeys the
    /// audiences concerned and pushes that too.
    async fn sync_and_rekey(
        &mut self,
        connection: &Connection,
        progress: &mut dyn Progress,
    ) -> Result<SyncReport, Error> {
        let relogged = self.follow_relay_log(connection).await?;
        let mut report = self.sync_on(connection, progress).await?;
        report.relogged = relogged;
        // What a home behind the relay set aside goes on top of the
        // relay's history, now that this device holds it.
        if !self.local.store().set_aside()?.is_empty() {
            report.rewritten = self.write_again()?;
            let pushed = self.sync_on(connection, progress).await?;
            report.pushed += pushed.pushed;
            report.queued = pushed.queued;
            report.relay_full |= pushed.relay_full;
            report.undeliverable += pushed.undeliverable;
        }
        // Only what arrived can change a member's key or fork an audience.
        if report.items > 0 && self.rekey_audiences()? {
            let pushed = self.sync_on(connection, progress).await?;
            report.pushed += pushed.pushed;
            report.queued = pushed.queued;
            report.relay_full |= pushed.relay_full;
            report.undeliverable += pushed.undeliverable;
        }
        Ok(report)
    }

    /// Pushes what is queued if the relay can be reached quickly; `None`
    /// when it cannot (the work stays queued for the next sync).
    /// Within [`crate::RETRY_AFTER`] of the relay failing to answer, the
    /// try is cut short ([`RECENTLY_DOWN_CONNECT`]): a relay that is back
    /// answers in time, one still away costs the change well under a
    /// second.
    pub async fn push(&mut self) -> Result<Option<SyncReport>, Error> {
        let limit = match self.recently_unreachable()? {
            true => self.options.push_wait.min(RECENTLY_DOWN_CONNECT),
            false => self.options.push_wait,
        };
        let quick = Options {
            attempts: 1,
            connect_timeout: self.options.connect_timeout.min(limit),
            ..self.options.clone()
        };
        let usual = std::mem::replace(&mut self.options, quick);
        let outcome = self.sync_recorded(&mut NoProgress).await;
        self.options = usual;
        match outcome {
            Ok(report) => Ok(Some(report)),
            Err(e) if e.is_unreachable() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Hello rounds on one connection until nothing is left either way:
    /// the driver of [`Rounds`], which decides.
    pub(crate) async fn sync_on(
        &mut self,
        connection: &Connection,
        progress: &mut dyn Progress,
    ) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        self.run_rounds(connection, progress, &mut report).await?;
        if self.own_history()?.is_err() {
            // A device's envelopes in two streams can cross a hello that
            // reads one stream before the other: one more pass settles it.
            self.run_rounds(connection, progress, &mut report).await?;
            if let Err(broken) = self.own_history()? {
                return Err(Error::History(Box::new(broken)));
            }
        }
        report.queued = self.local.store().outbox_len()?;
        report.waiting = self.local.store().pending_len()?;
        if report.ignored > 0 {
            tracing::warn!(
                ignored = report.ignored,
                "the relay sent envelopes from users this user has not added; they were ignored"
            );
        }
        Ok(report)
    }

    /// Whether what this device holds of its user's devices is whole and
    /// agrees with what the others said they held (`chain.rs`).
    fn own_history(&self) -> Result<Result<(), HistoryBreak>, Error> {
        let user = self.user()?;
        match chain::check_seqs(self.local.store(), user)? {
            Ok(()) => chain::check_claims(self.local.store(), user),
            broken => Ok(broken),
        }
    }

    /// The hellos, catch-ups and acknowledgement of one pass, as
    /// [`Rounds`] decides them.
    async fn run_rounds(
        &mut self,
        connection: &Connection,
        progress: &mut dyn Progress,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        let mut keys = self.key_state()?;
        let mut known = self.local.store().known_ids()?;
        let mut rounds = Rounds::new(MAX_ROUNDS);
        loop {
            match rounds.poll() {
                Next::Hello => {
                    let (answered, more) = self
                        .hello_round(connection, &mut keys, &mut known, &mut rounds, report)
                        .await?;
                    progress.update(report.pushed, report.pulled, more);
                    rounds.answered(answered).map_err(Error::Refused)?;
                }
                Next::CatchUp { stream, after } => {
                    self.pull_backlog(connection, stream, after, &mut keys, &mut known, report)
                        .await?;
                    progress.update(report.pushed, report.pulled, true);
                    rounds.caught_up();
                }
                Next::Acknowledge => {
                    self.acknowledge(connection).await;
                    rounds.acknowledged();
                }
                Next::Done => return Ok(()),
            }
        }
    }

    /// One hello: pushes a slice of the outbox, settles the
    /// acknowledgements and ingests the pages, committing both locally in
    /// one transaction. What it came to, and whether the relay has more.
    async fn hello_round(
        &mut self,
        connection: &Connection,
        keys: &mut KeyState,
        known: &mut HashSet<EnvelopeId>,
        rounds: &mut Rounds,
        report: &mut SyncReport,
    ) -> Result<(Answered, bool), Error> {
        // A relay out of space takes nothing more in this sync; it still
        // serves what is new.
        let outbox = match report.relay_full {
            true => Vec::new(),
            false => self.local.store().outbox(MAX_BATCH, OUTBOX_BYTES)?,
        };
        let cursors = rounds.hello_cursors(self.local.store().cursors()?, |s| {
            keys.added.reads_from(&s.owner)
        });
        let synced = self.hello(connection, &outbox, cursors).await?;
        let mut batch = Batch::default();
        let (pushed, mut refusal) = settle(&outbox, &synced.acks, &mut batch)?;
        if refusal
            .as_ref()
            .is_some_and(|(_, e)| e.code == ErrorCode::STORAGE_FULL)
        {
            tracing::warn!("the relay is out of storage space; what is queued stays queued");
            report.relay_full = true;
            refusal = None;
        }
        if let Some((seq, refused)) = &refusal
            && let Some(to) = undeliverable(&outbox, *seq, refused, self.user()?)
        {
            // As below: this answer's pages are read again by the next
            // hello.
            self.local.store().commit(batch)?;
            report.pushed += pushed;
            report.undeliverable += 1;
            let requeued = self.drop_undeliverable(*seq)?;
            tracing::warn!(
                recipient = %to,
                "the relay refused a direct envelope: its recipient no longer accepts yours \
                 (they removed you as a friend); dropped it"
            );
            let answered = Answered {
                pushed,
                requeued: requeued.saturating_add(1),
                more: true,
                ..Answered::default()
            };
            return Ok((answered, true));
        }
        if let Some((seq, refused)) = &refusal
            && adopt::relay_is_ahead(*seq, refused)
            && report.set_aside == 0
        {
            // This answer's pages are read again by the next hello, once
            // this home's conflicting history is out of the way.
            self.local.store().commit(batch)?;
            report.pushed += pushed;
            report.set_aside = self.set_aside_outbox()?;
            let answered = Answered {
                pushed,
                requeued: report.set_aside,
                more: true,
                ..Answered::default()
            };
            return Ok((answered, true));
        }
        let resent_before = report.resent;
        let refusal = match refusal {
            Some((seq, refused)) => self
                .resend_lost(seq, &refused, &mut batch, report)?
                .map(|refused| explain(seq, &refused)),
            None => None,
        };
        let requeued = report.resent - resent_before;
        let mut behind = streams_behind(synced.pages.as_slice());
        let more = synced.more;
        let ingested = self.ingest(keys, known, synced.pages.into_vec(), &mut batch)?;
        self.local.store().commit(batch)?;
        behind.retain(|(stream, _)| !ingested.ignored_streams.contains_key(stream));
        report.pushed += pushed;
        report.pulled += ingested.pulled;
        report.ignored += ingested.ignored;
        report.expired += ingested.expired;
        report.items += u64::try_from(ingested.items.len()).unwrap_or(u64::MAX);
        let answered = Answered {
            pushed,
            requeued,
            accepted: ingested.accepted,
            passed_over: ingested.ignored,
            passed_over_streams: ingested.ignored_streams.into_iter().collect(),
            behind,
            more,
            outbox_left: self.local.store().outbox_len()?,
            refusal,
        };
        Ok((answered, more))
    }

    /// Pulls the rest of a long backlog of one stream through a
    /// subscription, up to its live marker: the relay sends page after page
    /// without waiting for a request per page, so reading storage, the
    /// network and decrypting here overlap. The hello loop stays the source
    /// of truth: if the subscription ends early (access withdrawn, too many
    /// subscriptions, the connection going), the next hello carries on from
    /// the cursors committed so far.
    async fn pull_backlog(
        &mut self,
        connection: &Connection,
        stream: StreamId,
        after: u64,
        keys: &mut KeyState,
        known: &mut HashSet<EnvelopeId>,
        report: &mut SyncReport,
    ) -> Result<(), Error> {
        let mut subscription = connection
            .subscribe(SubscribeRequest { stream, after })
            .await?;
        loop {
            let page = match subscription.next().await? {
                Some(SubscriptionEvent::Entries(entries)) => StreamPage {
                    stream,
                    entries,
                    more: true,
                    expired: None,
                },
                Some(SubscriptionEvent::Expired(expired)) => StreamPage {
                    stream,
                    entries: BoundedVec::default(),
                    more: true,
                    expired: Some(Box::new(expired)),
                },
                Some(SubscriptionEvent::Live { .. }) => return Ok(()),
                Some(SubscriptionEvent::End(end)) => {
                    tracing::debug!(error = %end, "catch-up subscription ended early");
                    return Ok(());
                }
                None => return Ok(()),
            };
            let mut batch = Batch::default();
            let ingested = self.ingest(keys, known, vec![page], &mut batch)?;
            self.local.store().commit(batch)?;
            report.pulled += ingested.pulled;
            report.ignored += ingested.ignored;
            report.expired += ingested.expired;
            report.items += u64::try_from(ingested.items.len()).unwrap_or(u64::MAX);
            if !ingested.ignored_streams.is_empty() {
                return Ok(());
            }
        }
    }

    /// One hello with `cursors` (from [`Rounds::hello_cursors`]), retried
    /// after the delay a `rate_limited` answer asks for.
    async fn hello(
        &self,
        connection: &Connection,
        outbox: &[(u64, Envelope)],
        mut cursors: Vec<Cursor>,
    ) -> Result<SyncResponse, Error> {
        cursors.truncate(MAX_CURSORS);
        self.local.store().release();
        let envelopes = outbox.iter().map(|(_, e)| e.clone()).collect();
        let request = Request::Hello(HelloRequest {
            cursors: BoundedVec::new(cursors).map_err(|_| Error::Invalid("cursors".into()))?,
            outbox: BoundedVec::new(envelopes).map_err(|_| Error::Invalid("outbox".into()))?,
        });
        loop {
            match connection.request(&request).await? {
                Response::Synced(synced) => return Ok(synced),
                Response::Error(e) => match retry_after(&e) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(Error::Refused(e)),
                },
                other => return Err(Error::Protocol(format!("hello answered {other:?}"))),
            }
        }
    }

    /// Opens pulled entries, queueing their effects in `batch`, and retries
    /// envelopes that were waiting for keys when new keys arrive.
    ///
    /// The user's own streams go first, so that a friend another device
    /// added counts for that friend's streams in the same answer. A page
    /// of a stream by a user not added is ignored whole and its cursor
    /// stays put (see [`crate::added`]).
    pub(crate) fn ingest(
        &mut self,
        keys: &mut KeyState,
        known: &mut HashSet<EnvelopeId>,
        mut pages: Vec<StreamPage>,
        batch: &mut Batch,
    ) -> Result<Ingested, Error> {
        let mut ingested = Ingested::default();
        let mut waiting = Vec::new();
        let mut keys_changed = false;
        pages.sort_by_key(|page| page.stream.owner != keys.me);
        for page in pages {
            let stream = page.stream;
            if !keys.added.reads_from(&stream.owner) {
                ingested.ignored += u64::try_from(page.entries.len()).unwrap_or(u64::MAX);
                if let Some(last) = page.entries.as_slice().last() {
                    ingested.ignored_streams.insert(stream, last.position);
                }
                continue;
            }
            ingested.accepted += u64::try_from(page.entries.len()).unwrap_or(u64::MAX);
            if let Some(expired) = &page.expired {
                self.note_expired(stream, expired, known, batch, &mut ingested)?;
            }
            for entry in page.entries.into_vec() {
                batch.cursors.push((stream, entry.position));
                let envelope = entry.envelope;
                let id = envelope.id();
                if envelope.stream() != stream || !known.insert(id) {
                    continue;
                }
                ingested.pulled += 1;
                if envelope.header().author == keys.me {
                    batch
                        .seqs
                        .push((envelope.header().device, envelope.header().seq, id));
                }
                if envelope.header().device == self.device() {
                    self.adopt_own(&envelope, id, batch)?;
                }
                batch.envelopes.push((id, envelope.encode()));
                keys_changed |= self.apply(keys, &envelope, batch, &mut ingested, &mut waiting)?;
            }
        }
        if keys_changed {
            self.retry_waiting(keys, batch, &mut ingested, waiting)?;
            self.local.save_keyring(&keys.grants, batch)?;
        } else {
            self.keep_waiting(&waiting, batch)?;
        }
        // Nothing of a step whose history breaks is committed: its cursors
        // stay, and every sync says so again until the relay serves it.
        if let Err(broken) = chain::check(self.local.store(), &ingested.items, known, batch)? {
            return Err(Error::History(Box::new(broken)));
        }
        chain::note_claims(&ingested.items, &keys.me, batch);
        Ok(ingested)
    }

    /// The relay says positions up to `expired.through` of `stream` are
    /// gone (its retention policy, or their author removed). Past this
    /// device's cursor, that is reported, the cursor moves past them, and
    /// each device's last expired envelope counts as known so that what
    /// follows it still checks; a stream that never expires (the user's
    /// private or own direct stream) is a history break.
    fn note_expired(
        &self,
        stream: StreamId,
        expired: &Expired,
        known: &mut HashSet<EnvelopeId>,
        batch: &mut Batch,
        ingested: &mut Ingested,
    ) -> Result<(), Error> {
        let cursor = self.cursor(stream)?;
        if expired.through <= cursor {
            return Ok(());
        }
        if !chain::may_expire(&stream) {
            return Err(Error::History(Box::new(HistoryBreak::Unexpirable {
                stream,
                through: expired.through,
            })));
        }
        batch.cursors.push((stream, expired.through));
        for head in expired.heads.iter() {
            known.insert(head.id);
            batch.expired.push((head.device, head.seq, head.id));
        }
        ingested.expired += expired.through - cursor;
        Ok(())
    }

    /// Applies one opened envelope; returns whether keys changed.
    fn apply(
        &mut self,
        keys: &mut KeyState,
        envelope: &Envelope,
        batch: &mut Batch,
        ingested: &mut Ingested,
        waiting: &mut Vec<Envelope>,
    ) -> Result<bool, Error> {
        match keys.open(envelope) {
            Opened::Item(item) => {
                keys.added.note(&item);
                keys.revoked.note(&item);
                keys.vouch(&item);
                let own_audience = match &item.record.body {
                    RecordBody::Audience(audience) if item.header.author == keys.me => {
                        keys.add_own(audience);
                        true
                    }
                    _ => false,
                };
                self.local.save_item(&item, batch)?;
                ingested.items.push(*item);
                Ok(own_audience)
            }
            Opened::Keys(owner, grants) => {
                keys.add_grants(owner, grants);
                Ok(true)
            }
            Opened::Link(bundle) => self.relink(keys, &bundle, batch),
            Opened::Pending => {
                waiting.push(envelope.clone());
                Ok(false)
            }
            Opened::Foreign | Opened::Invalid | Opened::Stranger | Opened::Revoked => Ok(false),
        }
    }

    /// A bundle from the user (after a device was revoked, the private
    /// audience and the user exchange key rotated): adopt both when its
    /// private audience is of a newer epoch, so that a replayed older
    /// bundle changes nothing.
    fn relink(
        &mut self,
        keys: &mut KeyState,
        bundle: &cairn_crypto::LinkBundle,
        batch: &mut Batch,
    ) -> Result<bool, Error> {
        if bundle.user != keys.me {
            return Ok(false);
        }
        keys.add_own(&bundle.private);
        let linked = self.identity.linked_mut()?;
        if bundle.private.id() == linked.private.id()
            && bundle.private.epoch() > linked.private.epoch()
        {
            linked.private = bundle.private.clone();
            linked.exchange = bundle.exchange.clone();
            keys.user_exchange = bundle.exchange.clone();
            self.save_identity(batch)?;
        }
        Ok(true)
    }

    /// Tries the envelopes that just arrived, then the stored waiting ones
    /// a page at a time, again while anything opens (keys can unlock keys),
    /// and keeps what still does not open as waiting.
    fn retry_waiting(
        &mut self,
        keys: &mut KeyState,
        batch: &mut Batch,
        ingested: &mut Ingested,
        waiting: Vec<Envelope>,
    ) -> Result<(), Error> {
        let mut opened = HashSet::new();
        let (mut still, _) = self.try_open(keys, batch, ingested, waiting)?;
        for _ in 0..RETRY_PASSES {
            let stored_progress = self.retry_stored(keys, batch, ingested, &mut opened)?;
            let before = still.len();
            let (again, progressed) = self.try_open(keys, batch, ingested, still)?;
            still = again;
            if !stored_progress && !progressed && still.len() == before {
                break;
            }
        }
        self.keep_waiting(&still, batch)
    }

    /// Applies each envelope once; those that still do not open, and
    /// whether anything opened or keys changed.
    fn try_open(
        &mut self,
        keys: &mut KeyState,
        batch: &mut Batch,
        ingested: &mut Ingested,
        envelopes: Vec<Envelope>,
    ) -> Result<(Vec<Envelope>, bool), Error> {
        let mut still = Vec::new();
        let mut progressed = false;
        for envelope in envelopes {
            let mut again = Vec::new();
            progressed |= self.apply(keys, &envelope, batch, ingested, &mut again)?;
            progressed |= again.is_empty();
            still.extend(again);
        }
        Ok((still, progressed))
    }

    /// One pass over the stored waiting envelopes, a page at a time; those
    /// that open leave the waiting set. Whether anything opened.
    fn retry_stored(
        &mut self,
        keys: &mut KeyState,
        batch: &mut Batch,
        ingested: &mut Ingested,
        opened: &mut HashSet<EnvelopeId>,
    ) -> Result<bool, Error> {
        let mut progressed = false;
        let mut after = None;
        loop {
            let page = self.local.store().pending_page(after, PENDING_PAGE)?;
            let Some(last) = page.last().map(Envelope::id) else {
                return Ok(progressed);
            };
            after = Some(last);
            for envelope in page {
                let id = envelope.id();
                if opened.contains(&id) {
                    continue;
                }
                let mut again = Vec::new();
                progressed |= self.apply(keys, &envelope, batch, ingested, &mut again)?;
                if again.is_empty() {
                    progressed = true;
                    opened.insert(id);
                    batch.pending_remove.push(id);
                }
            }
        }
    }

    /// Records envelopes that did not open as waiting, up to
    /// [`MAX_PENDING`] in all; past it they are dropped, with a warning:
    /// they stay in the relay's log and a later sync from scratch can try
    /// them again.
    pub(crate) fn keep_waiting(&self, still: &[Envelope], batch: &mut Batch) -> Result<(), Error> {
        let held = self.local.store().pending_len()?;
        let room = MAX_PENDING.saturating_sub(held);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        batch
            .pending_add
            .extend(still.iter().take(room).map(Envelope::id));
        if still.len() > room {
            tracing::warn!(
                dropped = still.len() - room,
                held,
                "too many envelopes wait for keys; the newest are not kept"
            );
        }
        Ok(())
    }

    /// Tells the relay how far this device has synced, so that `device
    /// list` shows it and a hello without cursors starts there. Best
    /// effort: the local cursors are what this device syncs from.
    async fn acknowledge(&self, connection: &Connection) {
        let Ok(cursors) = self.local.store().cursors() else {
            return;
        };
        for cursor in cursors {
            if let Err(e) = connection.request(&Request::Ack(cursor)).await {
                tracing::debug!(error = %e, "ack failed");
                return;
            }
        }
    }

    /// The cursor of `stream`, 0 when nothing was synced.
    pub(crate) fn cursor(&self, stream: StreamId) -> Result<u64, Error> {
        Ok(self
            .local
            .store()
            .cursors()?
            .into_iter()
            .find(|c: &Cursor| c.stream == stream)
            .map_or(0, |c| c.position))
    }
}

/// Streams whose page says more is waiting, with the last position the
/// page carried: each is caught up by subscription.
fn streams_behind(pages: &[StreamPage]) -> Vec<(StreamId, u64)> {
    pages
        .iter()
        .filter(|page| page.more)
        .filter_map(|page| Some((page.stream, page.entries.as_slice().last()?.position)))
        .collect()
}

/// Matches acknowledgements to the outbox: acknowledged envelopes leave
/// it. Returns how many did, and the first refusal.
fn settle(
    outbox: &[(u64, Envelope)],
    acks: &BoundedVec<AppendOutcome, MAX_BATCH>,
    batch: &mut Batch,
) -> Result<(u64, Option<(u64, WireError)>), Error> {
    if acks.len() != outbox.len() {
        return Err(Error::Protocol(format!(
            "{} acknowledgements for {} envelopes",
            acks.len(),
            outbox.len()
        )));
    }
    let mut pushed = 0;
    for ((seq, _), outcome) in outbox.iter().zip(acks.iter()) {
        match outcome {
            AppendOutcome::Stored(_) | AppendOutcome::Duplicate(_) => {
                batch.outbox_remove.push(*seq);
                pushed += 1;
            }
            AppendOutcome::Refused(e) => return Ok((pushed, Some((*seq, e.clone())))),
        }
    }
    Ok((pushed, None))
}

/// The recipient of the queued envelope `seq`, when the relay refused it
/// as `forbidden` and it is a direct envelope to another user: only their
/// consent (a current grant of this user) lets it in, and they withdrew
/// it, so sending it again can never succeed.
fn undeliverable(
    outbox: &[(u64, Envelope)],
    seq: u64,
    refused: &WireError,
    me: UserId,
) -> Option<UserId> {
    if refused.code != ErrorCode::FORBIDDEN {
        return None;
    }
    let (_, envelope) = outbox.iter().find(|(s, _)| *s == seq)?;
    match envelope.header().scope {
        Scope::Direct(to) if to != me => Some(to),
        _ => None,
    }
}

impl Client {
    /// A relay that expects an earlier seq from this device than the
    /// outbox holds lost envelopes this device sent (restored from a
    /// backup): they are queued again, from the copies this device keeps,
    /// in seq order before the outbox, and the sync carries on. Any other
    /// refusal, or envelopes this device no longer holds, stops the sync.
    fn resend_lost(
        &self,
        first_queued: u64,
        refused: &WireError,
        batch: &mut Batch,
        report: &mut SyncReport,
    ) -> Result<Option<WireError>, Error> {
        let (ErrorCode::SEQ_GAP, ErrorDetail::ExpectedSeq(expected)) =
            (refused.code, refused.detail)
        else {
            return Ok(Some(refused.clone()));
        };
        // Once per sync: a relay that refuses what was sent again is not
        // answered with the same envelopes forever.
        if expected >= first_queued || report.resent > 0 {
            return Ok(Some(refused.clone()));
        }
        let lost = self
            .local
            .store()
            .own_envelopes(&self.device(), expected, first_queued)?;
        let missing = (expected..first_queued).find(|seq| !lost.contains_key(seq));
        if let Some(seq) = missing {
            return Ok(Some(WireError::new(
                ErrorCode::SEQ_GAP,
                &format!(
                    "the relay lost this device's envelopes from seq {expected} (restored from \
                     a backup?) and this device no longer holds seq {seq} to send again"
                ),
            )));
        }
        let count = u64::try_from(lost.len()).unwrap_or(u64::MAX);
        tracing::warn!(
            from = expected,
            count,
            "the relay lost envelopes this device sent (restored from a backup?); sending them again"
        );
        report.resent += count;
        batch.outbox_add.extend(lost);
        Ok(None)
    }
}

/// Adds what to do to a refusal of an outbox envelope.
fn explain(seq: u64, error: &WireError) -> WireError {
    match (error.code, error.detail) {
        (ErrorCode::SEQ_GAP, ErrorDetail::ExpectedSeq(expected)) => WireError::new(
            error.code,
            &match expected > seq {
                true => format!(
                    "the relay already holds this device's envelopes up to seq {} but this \
                     device's next is {seq}: this home was restored from an older copy",
                    expected.saturating_sub(1)
                ),
                false => format!(
                    "the relay expects seq {expected} from this device but the outbox holds \
                     {seq}: the relay lost envelopes this device no longer holds"
                ),
            },
        )
        .with_detail(error.detail),
        (ErrorCode::EQUIVOCATION, ErrorDetail::Stored(stored)) => WireError::new(
            error.code,
            &format!(
                "the relay already holds {stored} as this device's envelope {seq}: this home \
                 was restored from an older copy, or copied"
            ),
        )
        .with_detail(error.detail),
        (ErrorCode::BROKEN_CHAIN, ErrorDetail::Stored(stored)) => WireError::new(
            error.code,
            &format!(
                "the relay holds {stored} as this device's last envelope in that stream, which \
                 this device's envelope {seq} does not follow: this home was restored from an \
                 older copy, or copied"
            ),
        )
        .with_detail(error.detail),
        _ => error.clone(),
    }
}

fn retry_after(error: &WireError) -> Option<Duration> {
    match (error.code, error.detail) {
        (ErrorCode::RATE_LIMITED, ErrorDetail::RetryAfterMs(ms)) => {
            Some(Duration::from_millis(ms).min(MAX_RETRY_AFTER))
        }
        _ => None,
    }
}
