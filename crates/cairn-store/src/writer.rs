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

use cairn_wire::{Cursor, DeviceId};
use redb::Database;
use tokio::sync::{OwnedSemaphorePermit, broadcast, oneshot};

use crate::api::{CommitBatch, CommitCounters, Committed, ItemOutcome, Quota, StatementOutcome};
use crate::apply::{InviteAnswer, InviteOp, Prepared, StatementIn, WriteTables};
use crate::schema;

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

/// One write request, with the reply for its caller.
#[derive(Debug)]
pub struct Queued {
    /// What to write.
    pub work: Work,
    /// Where the answer goes.
    pub reply: Reply,
    /// Room in the queue, given back when the writer takes the request.
    pub permit: OwnedSemaphorePermit,
}

/// What a request writes.
#[derive(Debug)]
pub enum Work {
    /// Envelopes to append.
    Append(Vec<Prepared>),
    /// A signed statement.
    Statement(StatementIn),
    /// An acknowledged cursor.
    Ack(DeviceId, Cursor),
    /// A change to the operator's invites.
    Invite(InviteOp),
}

/// A failed commit, told to every caller of the group.
pub type Failure = String;

/// The reply channel of a request, typed by its work.
#[derive(Debug)]
pub enum Reply {
    /// For [`Work::Append`].
    Append(oneshot::Sender<Result<Vec<ItemOutcome>, Failure>>),
    /// For [`Work::Statement`].
    Statement(oneshot::Sender<Result<StatementOutcome, Failure>>),
    /// For [`Work::Ack`].
    Ack(oneshot::Sender<Result<u64, Failure>>),
    /// For [`Work::Invite`].
    Invite(oneshot::Sender<Result<InviteAnswer, Failure>>),
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
    /// The database.
    pub db: Arc<Database>,
    /// Incoming requests.
    pub requests: Receiver<Queued>,
    /// Group limits.
    pub limits: GroupLimits,
    /// Where commits are published.
    pub publish: broadcast::Sender<CommitBatch>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// Commit latencies in microseconds, if someone measures them.
    pub latencies: Option<Arc<Mutex<Vec<u32>>>>,
}

impl Writer {
    /// Runs until every sender is gone, then returns.
    pub fn run(self) {
        let mut carry = None;
        loop {
            let first = match carry.take() {
                Some(first) => first,
                None => match self.requests.recv() {
                    Ok(first) => first,
                    Err(_) => return,
                },
            };
            let (group, next) = self.collect(first);
            carry = next;
            self.commit(group);
        }
    }

    /// Gathers a group after `first`; returns a request that did not fit.
    fn collect(&self, first: Queued) -> (Vec<Queued>, Option<Queued>) {
        let deadline = Instant::now() + self.limits.max_wait;
        let mut weight = Weight::of(&first.work);
        let mut group = vec![first];
        while let Some(next) = self.next_request(deadline) {
            let added = weight.plus(Weight::of(&next.work));
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
        let mut works = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        for queued in group {
            works.push(queued.work);
            replies.push(queued.reply);
            drop(queued.permit);
        }
        match apply_and_commit(&self.db, works, &self.limits) {
            Ok((answers, committed)) => {
                self.record(started, replies.len(), committed.len());
                if !committed.is_empty() {
                    // No receivers is fine: nobody is subscribed.
                    let _ = self
                        .publish
                        .send(committed.into_iter().map(Arc::new).collect());
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    reply.answer(answer);
                }
            }
            Err(err) => {
                self.counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                let message = err.to_string();
                for reply in replies {
                    reply.fail(message.clone());
                }
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

/// The answer to one request.
#[derive(Debug)]
enum Answer {
    Append(Vec<ItemOutcome>),
    Statement(StatementOutcome),
    Ack(u64),
    Invite(InviteAnswer),
}

impl Reply {
    /// Sends the answer; a caller that went away is fine (its write is
    /// durable all the same).
    fn answer(self, answer: Answer) {
        match (self, answer) {
            (Self::Append(tx), Answer::Append(outcomes)) => drop(tx.send(Ok(outcomes))),
            (Self::Statement(tx), Answer::Statement(outcome)) => drop(tx.send(Ok(outcome))),
            (Self::Ack(tx), Answer::Ack(position)) => drop(tx.send(Ok(position))),
            (Self::Invite(tx), Answer::Invite(answer)) => drop(tx.send(Ok(answer))),
            // Answers are made from the request's own work, so kinds always
            // match; dropping the sender would tell the caller "closed".
            _ => {}
        }
    }

    fn fail(self, message: Failure) {
        match self {
            Self::Append(tx) => drop(tx.send(Err(message))),
            Self::Statement(tx) => drop(tx.send(Err(message))),
            Self::Ack(tx) => drop(tx.send(Err(message))),
            Self::Invite(tx) => drop(tx.send(Err(message))),
        }
    }
}

fn apply_and_commit(
    db: &Database,
    works: Vec<Work>,
    limits: &GroupLimits,
) -> Result<(Vec<Answer>, Vec<Committed>), redb::Error> {
    let txn = schema::begin_write(db, limits.durable)?;
    let mut answers = Vec::with_capacity(works.len());
    let mut committed = Vec::new();
    {
        let mut tables = WriteTables::open(&txn, limits.quota)?;
        for work in works {
            answers.push(apply(&mut tables, work, &mut committed)?);
        }
        tables.finish()?;
    }
    txn.commit()?;
    Ok((answers, committed))
}

fn apply(
    tables: &mut WriteTables<'_>,
    work: Work,
    committed: &mut Vec<Committed>,
) -> Result<Answer, redb::Error> {
    match work {
        Work::Append(items) => {
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                let (outcome, stored) = tables.append(item)?;
                outcomes.push(outcome);
                committed.extend(stored);
            }
            Ok(Answer::Append(outcomes))
        }
        Work::Statement(statement) => tables.statement(&statement).map(Answer::Statement),
        Work::Ack(device, cursor) => tables.ack(&device, &cursor).map(Answer::Ack),
        Work::Invite(op) => tables.invite(op).map(Answer::Invite),
    }
}

/// Size of a group so far.
#[derive(Debug, Clone, Copy)]
struct Weight {
    envelopes: usize,
    bytes: usize,
}

impl Weight {
    fn of(work: &Work) -> Self {
        match work {
            Work::Append(items) => Self {
                envelopes: items.len(),
                bytes: items.iter().map(|i| i.bytes.len()).sum(),
            },
            Work::Statement(_) | Work::Ack(..) | Work::Invite(_) => Self {
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
