//! The single writer thread and its group commit.
//!
//! Callers queue requests on a channel whose depth a semaphore bounds (so
//! an async caller waits for room without blocking its runtime). The writer
//! takes the first waiting request, then keeps taking requests until the
//! group holds `max_batch_envelopes` envelopes or `max_batch_bytes` bytes,
//! the queue is empty and `max_wait` has passed, or the channel closes. It
//! applies the whole group in one write transaction, commits it durably,
//! publishes what was stored, and only then answers each caller. Under load
//! requests pile up while a commit runs, so one fsync serves many of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_wire::{Cursor, DeviceId, UserId};
use redb::Database;
use tokio::sync::{OwnedSemaphorePermit, broadcast, oneshot};

use crate::api::{
    CommitBatch, CommitCounters, Committed, Cutoffs, Effect, Expiry, ItemOutcome, Quota, Removal,
    Restore, StatementOutcome,
};
use crate::apply::{BanOp, InviteAnswer, InviteOp, Prepared, StatementIn, WriteTables};
use crate::log::{LogAnswer, LogWrite, OutOfOrder};
use crate::schema;
use crate::slot::{DbSlot, Failure, classify};

/// Group commit limits.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    /// Most envelopes in one commit (a single larger append is not split).
    pub max_batch_envelopes: usize,
    /// Most envelope bytes in one commit (likewise).
    pub max_batch_bytes: usize,
    /// How long the writer waits for more requests after the first one
    /// when the queue runs dry. Zero: commit whatever is queued.
    pub max_wait: Duration,
    /// Whether commits are durable (fsync). Only tests turn it off.
    pub durable: bool,
    /// What each author may store.
    pub quota: Quota,
}

/// One write request in the queue: what to write, with the typed reply
/// its caller waits on, and its room in the queue (given back when the
/// writer takes it).
#[derive(Debug)]
pub struct Queued {
    /// The request.
    pub request: Request,
    /// Room in the queue.
    pub permit: OwnedSemaphorePermit,
}

/// What a request writes, each kind with the reply its answer goes to.
#[derive(Debug)]
pub enum Request {
    /// Envelopes to append.
    Append(Vec<Prepared>, Replier<Vec<ItemOutcome>>),
    /// A signed statement.
    Statement(StatementIn, Replier<StatementOutcome>),
    /// An acknowledged cursor.
    Ack(DeviceId, Cursor, Replier<u64>),
    /// A change to the operator's invites.
    Invite(InviteOp, Replier<InviteAnswer>),
    /// The operator removes a user, at a time (Unix ms).
    RemoveUser(UserId, u64, Replier<Removal>),
    /// Expire what is older than the cutoffs, at most so many envelopes.
    Expire(Cutoffs, u64, Replier<Expiry>),
    /// Put back what an export says is gone.
    Restore(Restore, Replier<Result<(), &'static str>>),
    /// A ban or its lifting.
    Ban(BanOp, Replier<bool>),
    /// Records of a replicated log, the first at the given sequence.
    Log(
        u64,
        Vec<LogWrite>,
        Replier<Result<Vec<LogAnswer>, OutOfOrder>>,
    ),
}

/// A commit failed: every caller of its group gets this, with the engine's
/// error as its source. Nothing of the group was written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the commit failed: {0}")]
pub struct CommitFailed(#[source] Arc<redb::Error>);

impl CommitFailed {
    /// What the engine's error says about the disk.
    pub fn kind(&self) -> Failure {
        classify(&*self.0)
    }

    /// Whether the disk, or the database's size limit, is full.
    pub fn is_full(&self) -> bool {
        self.kind() == Failure::Full
    }
}

/// Where one request's answer goes.
#[derive(Debug)]
pub struct Replier<T>(oneshot::Sender<Result<T, CommitFailed>>);

impl<T> Replier<T> {
    /// A replier and the receiver its caller awaits.
    pub fn new() -> (Self, oneshot::Receiver<Result<T, CommitFailed>>) {
        let (tx, rx) = oneshot::channel();
        (Self(tx), rx)
    }

    /// Sends the answer; a caller that went away is fine (its write is
    /// durable all the same).
    fn answer(self, answer: T) {
        drop(self.0.send(Ok(answer)));
    }

    fn fail(self, failure: &CommitFailed) {
        drop(self.0.send(Err(failure.clone())));
    }
}

/// Shared counters of the commit path.
#[derive(Debug, Default)]
pub struct Counters {
    commits: AtomicU64,
    requests: AtomicU64,
    envelopes: AtomicU64,
    failed_commits: AtomicU64,
}

impl Counters {
    /// A snapshot.
    pub fn snapshot(&self) -> CommitCounters {
        CommitCounters {
            commits: self.commits.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            envelopes: self.envelopes.load(Ordering::Relaxed),
            failed_commits: self.failed_commits.load(Ordering::Relaxed),
        }
    }
}

/// Everything the writer thread owns.
#[derive(Debug)]
pub struct Writer {
    /// The database, opened again after an I/O failure.
    pub slot: Arc<DbSlot>,
    /// Incoming requests.
    pub requests: Receiver<Queued>,
    /// Group limits.
    pub limits: GroupLimits,
    /// Where commits are published.
    pub publish: broadcast::Sender<CommitBatch>,
    /// Where the effects of commits are published.
    pub effects: broadcast::Sender<Effect>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Commit latencies in microseconds, if someone measures them.
    pub latencies: Option<Arc<Mutex<Vec<u32>>>>,
}

impl Writer {
    /// Runs until every sender is gone, then returns.
    pub fn run(self) {
        self.commit_while(|| self.requests.recv().ok());
    }

    /// Commits what is queued now, in groups as [`run`](Self::run) would,
    /// on the caller's thread, and returns once the queue is empty: the
    /// store's inline mode, where each caller runs the writer for itself
    /// (its `max_wait` is zero: nobody else could fill the queue).
    pub fn drain(&self) {
        self.commit_while(|| self.requests.try_recv().ok());
    }

    /// Commits groups, each starting with what `next` gives or with the
    /// request the last group had no room for, until `next` gives nothing.
    fn commit_while(&self, mut next: impl FnMut() -> Option<Queued>) {
        let mut carry = None;
        while let Some(first) = carry.take().or_else(&mut next) {
            let (group, left) = self.collect(first);
            carry = left;
            self.commit(group);
        }
    }

    /// Gathers a group after `first`; returns a request that did not fit.
    fn collect(&self, first: Queued) -> (Vec<Queued>, Option<Queued>) {
        let deadline = Instant::now() + self.limits.max_wait;
        let mut weight = Weight::of(&first.request);
        let mut group = vec![first];
        while let Some(next) = self.next_request(deadline) {
            let added = weight.plus(Weight::of(&next.request));
            if !added.within(&self.limits) {
                return (group, Some(next));
            }
            weight = added;
            group.push(next);
        }
        (group, None)
    }

    fn next_request(&self, deadline: Instant) -> Option<Queued> {
        match self.requests.try_recv() {
            Ok(next) => return Some(next),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.requests.recv_timeout(left).ok()
    }

    /// Applies and commits a group, then publishes and answers.
    fn commit(&self, group: Vec<Queued>) {
        let started = Instant::now();
        let requests: Vec<Request> = group
            .into_iter()
            .map(|queued| {
                drop(queued.permit);
                queued.request
            })
            .collect();
        let count = requests.len();
        let (db, generation) = match self.slot.get() {
            Ok(held) => held,
            Err(e) => {
                self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                let failure = CommitFailed(Arc::new(redb::Error::Io(std::io::Error::other(
                    e.to_string(),
                ))));
                requests.into_iter().for_each(|r| r.fail(&failure));
                return;
            }
        };
        let outcome = apply_and_commit(&db, requests, &self.limits);
        drop(db);
        match outcome {
            Ok((applied, changes)) => {
                let Changes { committed, effects } = changes;
                self.record(started, count, committed.len());
                if !committed.is_empty() {
                    // No receivers is fine: nobody is subscribed.
                    let _ = self
                        .publish
                        .send(committed.into_iter().map(Arc::new).collect());
                }
                for effect in effects {
                    let _ = self.effects.send(effect);
                }
                applied.into_iter().for_each(Applied::answer);
            }
            Err(failed) => {
                self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                // After an I/O failure redb refuses everything until the
                // file is opened again: do it before the next group. If it
                // cannot be yet, the next group (or read) tries again.
                if failed.failure.kind() != Failure::Other {
                    let _ = self.slot.reopen(generation);
                }
                failed.tell_everyone();
            }
        }
    }

    fn record(&self, started: Instant, requests: usize, envelopes: usize) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        self.counters
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        self.counters
            .envelopes
            .fetch_add(envelopes as u64, Ordering::Relaxed);
        if let Some(latencies) = &self.latencies {
            let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
            if let Ok(mut latencies) = latencies.lock() {
                latencies.push(micros);
            }
        }
    }
}

/// A request applied inside the group's transaction: its answer, paired
/// with its own replier (so an answer can only go to a caller of its kind),
/// sent once the group has committed.
enum Applied {
    Append(Replier<Vec<ItemOutcome>>, Vec<ItemOutcome>),
    Statement(Replier<StatementOutcome>, StatementOutcome),
    Ack(Replier<u64>, u64),
    Invite(Replier<InviteAnswer>, InviteAnswer),
    RemoveUser(Replier<Removal>, Removal),
    Expire(Replier<Expiry>, Expiry),
    Restore(Replier<Result<(), &'static str>>, Result<(), &'static str>),
    Log(
        Replier<Result<Vec<LogAnswer>, OutOfOrder>>,
        Result<Vec<LogAnswer>, OutOfOrder>,
    ),
    Ban(Replier<bool>, bool),
}

impl Applied {
    fn answer(self) {
        match self {
            Self::Append(reply, outcomes) => reply.answer(outcomes),
            Self::Statement(reply, outcome) => reply.answer(outcome),
            Self::Ack(reply, position) => reply.answer(position),
            Self::Invite(reply, answer) => reply.answer(answer),
            Self::RemoveUser(reply, removal) => reply.answer(removal),
            Self::Expire(reply, expiry) => reply.answer(expiry),
            Self::Restore(reply, outcome) => reply.answer(outcome),
            Self::Log(reply, answers) => reply.answer(answers),
            Self::Ban(reply, changed) => reply.answer(changed),
        }
    }

    fn fail(self, failure: &CommitFailed) {
        match self {
            Self::Append(reply, _) => reply.fail(failure),
            Self::Statement(reply, _) => reply.fail(failure),
            Self::Ack(reply, _) => reply.fail(failure),
            Self::Invite(reply, _) => reply.fail(failure),
            Self::RemoveUser(reply, _) => reply.fail(failure),
            Self::Expire(reply, _) => reply.fail(failure),
            Self::Restore(reply, _) => reply.fail(failure),
            Self::Log(reply, _) => reply.fail(failure),
            Self::Ban(reply, _) => reply.fail(failure),
        }
    }
}

impl Request {
    /// Applies the request; on an engine error, fails its own caller
    /// before returning the error.
    fn apply(
        self,
        tables: &mut WriteTables<'_>,
        changes: &mut Changes,
    ) -> Result<Applied, CommitFailed> {
        let failed = |error: redb::Error| CommitFailed(Arc::new(error));
        match self {
            Self::Append(items, reply) => match append(tables, items, &mut changes.committed) {
                Ok(outcomes) => Ok(Applied::Append(reply, outcomes)),
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Statement(statement, reply) => match tables.statement(&statement) {
                Ok(outcome) => {
                    changes.statement(&statement, outcome);
                    Ok(Applied::Statement(reply, outcome))
                }
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Ack(device, cursor, reply) => match tables.ack(&device, &cursor) {
                Ok(position) => Ok(Applied::Ack(reply, position)),
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Invite(op, reply) => match tables.invite(op) {
                Ok(answer) => Ok(Applied::Invite(reply, answer)),
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::RemoveUser(user, now_ms, reply) => match tables.remove_user(user, now_ms) {
                Ok(removal) => {
                    changes.removal(user, &removal);
                    Ok(Applied::RemoveUser(reply, removal))
                }
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Expire(cutoffs, budget, reply) => match tables.expire(cutoffs, budget) {
                Ok(expiry) => Ok(Applied::Expire(reply, expiry)),
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Restore(what, reply) => match tables.restore(what) {
                Ok(outcome) => Ok(Applied::Restore(reply, outcome)),
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Ban(op, reply) => match tables.ban(op) {
                Ok(changed) => {
                    changes.ban(op, changed);
                    Ok(Applied::Ban(reply, changed))
                }
                Err(e) => Err(failing(reply, failed(e))),
            },
            Self::Log(first, writes, reply) => match log(tables, first, writes, changes) {
                Ok(answers) => Ok(Applied::Log(reply, answers)),
                Err(e) => Err(failing(reply, failed(e))),
            },
        }
    }

    fn fail(self, failure: &CommitFailed) {
        match self {
            Self::Append(_, reply) => reply.fail(failure),
            Self::Statement(_, reply) => reply.fail(failure),
            Self::Ack(_, _, reply) => reply.fail(failure),
            Self::Invite(_, reply) => reply.fail(failure),
            Self::RemoveUser(_, _, reply) => reply.fail(failure),
            Self::Expire(_, _, reply) => reply.fail(failure),
            Self::Restore(_, reply) => reply.fail(failure),
            Self::Log(_, _, reply) => reply.fail(failure),
            Self::Ban(_, reply) => reply.fail(failure),
        }
    }
}

/// Applies log records `first..` in order, then records the last one
/// applied, in the same transaction; refuses records that do not continue
/// what is applied.
fn log(
    tables: &mut WriteTables<'_>,
    first: u64,
    writes: Vec<LogWrite>,
    changes: &mut Changes,
) -> Result<Result<Vec<LogAnswer>, OutOfOrder>, redb::Error> {
    let applied = tables.log_applied()?;
    if first != applied.saturating_add(1) || writes.is_empty() {
        return Ok(Err(OutOfOrder { applied, first }));
    }
    let last = first.saturating_add(writes.len() as u64 - 1);
    let mut answers = Vec::with_capacity(writes.len());
    for write in writes {
        answers.push(write.apply(tables, changes)?);
    }
    tables.set_log_applied(last)?;
    Ok(Ok(answers))
}

/// Tells `reply` of `failure`, and hands the failure on.
fn failing<T>(reply: Replier<T>, failure: CommitFailed) -> CommitFailed {
    reply.fail(&failure);
    failure
}

/// A group that did not commit, with every caller still to tell.
struct GroupFailed {
    failure: CommitFailed,
    applied: Vec<Applied>,
    unapplied: Vec<Request>,
}

impl GroupFailed {
    fn tell_everyone(self) {
        for applied in self.applied {
            applied.fail(&self.failure);
        }
        for request in self.unapplied {
            request.fail(&self.failure);
        }
    }
}

fn apply_and_commit(
    db: &Database,
    requests: Vec<Request>,
    limits: &GroupLimits,
) -> Result<(Vec<Applied>, Changes), GroupFailed> {
    let mut applied = Vec::with_capacity(requests.len());
    let mut requests = requests.into_iter();
    let engine = |error: redb::Error| CommitFailed(Arc::new(error));
    let outcome = (|| {
        let txn = schema::begin_write(db, limits.durable).map_err(engine)?;
        let mut changes = Changes::default();
        {
            let mut tables = WriteTables::open(&txn, limits.quota);
            for request in requests.by_ref() {
                applied.push(request.apply(&mut tables, &mut changes)?);
            }
            tables.finish().map_err(engine)?;
        }
        txn.commit().map_err(|e| engine(e.into()))?;
        Ok(changes)
    })();
    match outcome {
        Ok(changes) => Ok((applied, changes)),
        Err(failure) => Err(GroupFailed {
            failure,
            applied,
            unapplied: requests.collect(),
        }),
    }
}

fn append(
    tables: &mut WriteTables<'_>,
    items: Vec<Prepared>,
    committed: &mut Vec<Committed>,
) -> Result<Vec<ItemOutcome>, redb::Error> {
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let (outcome, stored) = tables.append(item)?;
        outcomes.push(outcome);
        committed.extend(stored);
    }
    Ok(outcomes)
}

/// What a group changed, published once it has committed: the entries it
/// stored, and what its writes mean for connected clients.
#[derive(Debug, Default)]
pub struct Changes {
    /// Entries stored, in commit order.
    pub committed: Vec<Committed>,
    /// Effects, in commit order.
    pub effects: Vec<Effect>,
}

impl Changes {
    /// Notes the effect of `statement` if it was applied.
    pub fn statement(&mut self, statement: &StatementIn, outcome: StatementOutcome) {
        if outcome != StatementOutcome::Applied {
            return;
        }
        match statement {
            StatementIn::DeviceRevocation(revocation) => {
                let body = revocation.body();
                self.effects.push(Effect::DeviceRevoked {
                    user: body.user,
                    device: body.device,
                });
            }
            StatementIn::FriendRevocation(revocation) => {
                let body = revocation.body();
                self.effects.push(Effect::FriendRevoked {
                    granter: body.granter,
                    grantee: body.grantee,
                });
            }
            StatementIn::Certificate(_) | StatementIn::Grant(_) => {}
        }
    }

    /// Notes a ban or unban that changed something.
    pub fn ban(&mut self, op: BanOp, changed: bool) {
        if changed {
            self.effects.push(match op {
                BanOp::Ban(device, _) => Effect::DeviceBanned(device),
                BanOp::Unban(device) => Effect::DeviceUnbanned(device),
            });
        }
    }

    /// Notes a removal that removed someone.
    pub fn removal(&mut self, user: UserId, removal: &Removal) {
        if !removal.already {
            self.effects.push(Effect::UserRemoved(user));
        }
    }
}

/// Size of a group so far.
#[derive(Debug, Clone, Copy)]
struct Weight {
    envelopes: usize,
    bytes: usize,
}

impl Weight {
    fn of(request: &Request) -> Self {
        match request {
            Request::Append(items, _) => Self {
                envelopes: items.len(),
                bytes: items.iter().map(|i| i.bytes.len()).sum(),
            },
            Request::Log(_, writes, _) => writes.iter().map(LogWrite::weight).fold(
                Self {
                    envelopes: 0,
                    bytes: 0,
                },
                |sum, (envelopes, bytes)| sum.plus(Self { envelopes, bytes }),
            ),
            Request::Statement(..)
            | Request::Ack(..)
            | Request::Invite(..)
            | Request::RemoveUser(..)
            | Request::Expire(..)
            | Request::Ban(..)
            | Request::Restore(..) => Self {
                envelopes: 1,
                bytes: 256,
            },
        }
    }

    fn plus(self, other: Self) -> Self {
        Self {
            envelopes: self.envelopes.saturating_add(other.envelopes),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    fn within(&self, limits: &GroupLimits) -> bool {
        self.envelopes <= limits.max_batch_envelopes && self.bytes <= limits.max_batch_bytes
    }
}
